"""From a mixture to structures: select or sample conformers, set side chains to them, and
build the models that are written."""
