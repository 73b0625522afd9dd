"""A multiconformer model reduced to one conformer per residue: what most users refine.

The heaviest altloc of each residue (mean occupancy of its atoms; ties to the first letter) is
kept at occupancy 1, the others are removed. Used to make the single-conformer input of the
fair comparison (../shared/data/maps/README.md) and, later, the phases of synthetic training maps.
"""

import gemmi

from ..ensemble.build import keep_heaviest_conformer


def single_conformer(st: gemmi.Structure) -> gemmi.Structure:
    """A copy of `st` (first model, no hydrogens) with one conformer per residue, occupancy 1."""
    out = st.clone()  # the caller's model is left as it was
    for i in range(len(out) - 1, 0, -1):
        del out[i]
    out.remove_hydrogens()
    for chain in out[0]:
        for res in chain:
            if any(atom.has_altloc() for atom in res):  # a residue without altlocs stays as read
                keep_heaviest_conformer(res)
                for atom in res:
                    atom.occ = 1.0
    return out
