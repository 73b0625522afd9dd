"""From a mixture to structures: select or sample conformers, set side chains to them, write models."""
