"""A multiconformer model reduced to one conformer per residue: what most users refine.

The heaviest altloc of each residue (mean occupancy of its atoms; ties to the first letter) is
kept at occupancy 1, the others are removed. Used to make the single-conformer input of the
fair comparison (../shared/data/maps/README.md) and, later, the phases of synthetic training maps.
"""

import gemmi


def single_conformer(st: gemmi.Structure) -> gemmi.Structure:
    """A copy of `st` (first model, no hydrogens) with one conformer per residue, occupancy 1."""
    out = st.clone()  # the caller's model is left as it was
    for i in range(len(out) - 1, 0, -1):
        del out[i]
    out.remove_hydrogens()
    for chain in out[0]:
        for res in chain:
            occ: dict[str, list[float]] = {}
            for atom in res:
                if atom.has_altloc():
                    occ.setdefault(atom.altloc, []).append(atom.occ)
            if not occ:
                continue
            keep = max(sorted(occ), key=lambda alt: (sum(occ[alt]) / len(occ[alt]), -ord(alt)))
            for k in range(len(res) - 1, -1, -1):
                if res[k].has_altloc() and res[k].altloc != keep:
                    del res[k]
            for atom in res:
                atom.altloc = "\0"
                atom.occ = 1.0
    return out
