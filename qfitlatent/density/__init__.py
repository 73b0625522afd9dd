"""The map as a second input: read it, put it in σ units, and ask it about side chains.

One module per job, dependencies running one way:

    labels.py     which MTZ columns are map coefficients or observed data (pure, on names)
    grid.py       DensityMap: a gemmi grid in σ units plus its origin; sampling at positions
    sigmaa.py     2mFo-DFc / mFo-DFc from observed data and a model (servalcat, σA-weighted)
    read.py       read_maps(path, model): MTZ or CCP4/MRC → MapPair, with the checks and limits
    reduce.py     a model's single-conformer reduction (heaviest altloc per residue)
    ringer.py     Ringer scans: density at γ (and δ) as χ1 turns, built from ideal geometry
    evidence.py   density at each candidate conformer's side-chain atoms against the modelled one
    occupancy.py  occupancies of candidate conformers by non-negative least squares
    pairing.py    which map in a folder belongs to which structure (predict --maps DIR)

docs/density.md says what each number means and what is not wired in yet.
"""

from .grid import DensityMap, MapPair, sample
from .read import read_maps

__all__ = ["DensityMap", "MapPair", "read_maps", "sample"]
