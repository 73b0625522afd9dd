"""Side chains at given χ (SPEC §7): rotate the atoms beyond each χ bond, build missing atoms.

A residue's atoms are a dict name -> [3] float64 tensor (Å), with names of the standard parent
residue (MSE's SE is called SD here; the writer renames it back).

`set_chis` starts from the input side chain and turns χ1, then χ2, … to the requested values,
each by a rigid rotation of every atom beyond that bond (`ideal.moved_by`) about the bond axis.
A rotation about the b–c axis leaves every bond length and bond angle unchanged, so the input
geometry is kept exactly; only dihedrals change. Atoms the file lacks are first built from ideal
internal coordinates (`ideal.IDEAL`), placed directly at the requested χ.

Proline cannot be turned this way: its ring closes back on N, so rotating χ1 or χ2 would stretch
the CD–N bond. qfitlatent keeps proline as observed (`can_rebuild` is False for it) and says so
in the written model's flexibility table.
"""

import math

import torch

from .. import residues
from ..geometry import dihedral, place_atom, rotate_about
from ..ideal import IDEAL, moved_by

Atoms = dict[str, torch.Tensor]  # atom name -> [3] float64, Å

# Rings that close on the backbone: χ rotation would break a bond.
KEPT_AS_OBSERVED = ("PRO",)


def can_rebuild(resname: str) -> bool:
    """True where `set_chis` can set this standard residue's χ (not PRO, not χ-less ones)."""
    return residues.n_chi(resname) > 0 and resname not in KEPT_AS_OBSERVED


def complete_sidechain(atoms: Atoms, resname: str, chi: torch.Tensor | None = None) -> Atoms:
    """A copy of `atoms` with every missing side-chain atom built from ideal geometry.

    Atoms that define a χ are placed at `chi` [..., D] (radians) where given, else at 180°.
    N, CA and C must be present. Positions may carry leading dims [..., 3] (several conformers
    at once). Returns the input atoms unchanged where nothing is missing.
    """
    out = dict(atoms)
    for row in IDEAL.get(resname, ()):
        if row.name in out:
            continue
        if row.torsion is None:
            torsion = chi[..., row.group - 1] if chi is not None else math.pi
        else:
            torsion = math.radians(row.torsion)
        out[row.name] = place_atom(
            out[row.a], out[row.b], out[row.c], row.bond, math.radians(row.angle), torsion
        )
    return out


def measure_chis(atoms: Atoms, resname: str) -> torch.Tensor:
    """χ of a residue [..., D] in radians, NaN where the residue lacks the χ or its atoms."""
    batch = next(iter(atoms.values())).shape[:-1] if atoms else ()
    out = torch.full((*batch, residues.N_CHI_MAX), float("nan"), dtype=torch.float64)
    for d, quad in enumerate(residues.CHI_ATOMS.get(resname, ())):
        if all(x in atoms for x in quad):
            out[..., d] = dihedral(*(atoms[x] for x in quad))
    return out


def set_chis(atoms: Atoms, resname: str, chi: torch.Tensor) -> Atoms:
    """The residue with its side chain turned to `chi` [..., D] (radians); slots past n_chi unused.

    Starts from the given side chain (missing atoms built first) and rotates, in order χ1→χn,
    the atoms beyond each χ bond about that bond. With chi [M, D] and atoms [3] each, returns M
    conformers at once (positions [M, 3]). Returns a new dict; `atoms` is not modified.
    """
    if not can_rebuild(resname):
        raise ValueError(f"{resname}: χ cannot be set by rotation (kept as observed)")
    chi = torch.as_tensor(chi, dtype=torch.float64)
    out = {k: v.expand(*chi.shape[:-1], 3) for k, v in atoms.items()}
    out = complete_sidechain(out, resname, chi)
    for d, quad in enumerate(residues.CHI_ATOMS[resname]):
        b, c = out[quad[1]], out[quad[2]]
        delta = chi[..., d] - dihedral(*(out[x] for x in quad))  # [...]
        names = moved_by(resname, d)
        # [..., P, 3]: everything beyond the b–c bond turns rigidly about it.
        turned = rotate_about(torch.stack([out[x] for x in names], dim=-2), c, c - b, delta)
        out.update(zip(names, turned.unbind(-2), strict=True))
    return out
