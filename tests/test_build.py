"""Side-chain building: requested χ are hit, bond geometry is kept, missing atoms are ideal."""

import math
import statistics

import gemmi
import pytest
import torch
from conftest import data_file

from qfitlatent import residues
from qfitlatent.ensemble.build import base_atoms
from qfitlatent.ensemble.sidechains import (
    can_rebuild,
    complete_sidechain,
    measure_chis,
    place_atom,
    set_chis,
)
from qfitlatent.ideal import IDEAL, moved_by
from qfitlatent.structure import read_structure

# 1.0 Å, 107 residues, every one of the 20 standard types present.
ALL_TYPES = "2i4a.pdb.gz"


def _pos(x: torch.Tensor) -> gemmi.Position:
    return gemmi.Position(*x.tolist())


def _gemmi_dihedral(atoms, names) -> float:
    return math.degrees(gemmi.calculate_dihedral(*(_pos(atoms[n]) for n in names)))


def _bonds(atoms, cutoff=1.95):
    """Covalent bonds of a residue from its input geometry (S–C bonds are ~1.8 Å)."""
    names = list(atoms)
    return [
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if (atoms[a] - atoms[b]).norm() < cutoff
    ]


def _angles(bonds):
    out = []
    for a, b in bonds:
        for c, d in bonds:
            if (a, b) == (c, d):
                continue
            shared = {a, b} & {c, d}
            if shared:
                (j,) = shared
                out.append((({a, b} - shared).pop(), j, ({c, d} - shared).pop()))
    return out


def _angle(atoms, i, j, k) -> float:
    return math.degrees(gemmi.calculate_angle(_pos(atoms[i]), _pos(atoms[j]), _pos(atoms[k])))


@pytest.fixture(scope="module")
def records():
    return read_structure(data_file(ALL_TYPES)).residues


def test_place_atom_matches_gemmi_geometry():
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        a, b, c = (torch.randn(3, generator=g, dtype=torch.float64) * 2 for _ in range(3))
        bond, angle, torsion = (
            1.2 + torch.rand(1, generator=g).item(),
            math.radians(100 + 30 * torch.rand(1, generator=g).item()),
            3 * (torch.rand(1, generator=g).item() - 0.5) * 2,
        )
        d = place_atom(a, b, c, bond, angle, torsion)
        assert (d - c).norm().item() == pytest.approx(bond, abs=1e-9)
        assert gemmi.calculate_angle(_pos(b), _pos(c), _pos(d)) == pytest.approx(angle, abs=1e-9)
        assert gemmi.calculate_dihedral(_pos(a), _pos(b), _pos(c), _pos(d)) == pytest.approx(
            torsion, abs=1e-9
        )


def test_atoms_beyond_each_chi_bond():
    assert moved_by("ILE", 0) == ("CG1", "CG2", "CD1")
    assert moved_by("ILE", 1) == ("CD1",)
    assert moved_by("THR", 0) == ("OG1", "CG2")
    assert moved_by("VAL", 0) == ("CG1", "CG2")
    assert moved_by("ARG", 3) == ("CZ", "NH1", "NH2")
    for name, rows in IDEAL.items():
        assert {r.name for r in rows} == set(residues.SIDECHAIN_ATOMS[name])
        for d, quad in enumerate(residues.CHI_ATOMS[name]):
            assert quad[3] in moved_by(name, d) and quad[2] not in moved_by(name, d)


def test_set_chis_hits_targets_and_keeps_bond_geometry_on_every_residue_type(records):
    g = torch.Generator().manual_seed(0)
    seen = set()
    for rec in records:
        if not can_rebuild(rec.resname) or rec.resname in seen:
            continue
        atoms = base_atoms(rec)
        if not all(a in atoms for a in residues.SIDECHAIN_ATOMS[rec.resname]):
            continue
        seen.add(rec.resname)
        target = (torch.rand(4, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
        out = set_chis(atoms, rec.resname, target)
        for d, quad in enumerate(residues.CHI_ATOMS[rec.resname]):
            got = _gemmi_dihedral(out, quad)
            want = math.degrees(target[d])
            assert abs((got - want + 180) % 360 - 180) < 0.01, (rec.resname, d, got, want)
        bonds = _bonds(atoms)
        for a, b in bonds:
            assert (out[a] - out[b]).norm().item() == pytest.approx(
                (atoms[a] - atoms[b]).norm().item(), abs=1e-9
            )
        for i, j, k in _angles(bonds):
            assert _angle(out, i, j, k) == pytest.approx(_angle(atoms, i, j, k), abs=1e-6)
        for name in ("N", "CA", "C", "CB"):
            assert torch.equal(out[name], atoms[name])  # nothing before the χ1 bond moves
    assert seen == {n for n in residues.AA3 if can_rebuild(n)}


def test_proline_is_kept_as_observed(records):
    pro = next(r for r in records if r.resname == "PRO")
    assert not can_rebuild("PRO")
    with pytest.raises(ValueError, match="kept as observed"):
        set_chis(base_atoms(pro), "PRO", torch.zeros(4))


def test_missing_atoms_follow_the_ideal_table(records):
    for rec in records:
        if not can_rebuild(rec.resname):
            continue
        bare = {n: x for n, x in base_atoms(rec).items() if n in ("N", "CA", "C")}
        chi = torch.tensor([1.0, -2.0, 2.5, -0.5], dtype=torch.float64)
        built = complete_sidechain(bare, rec.resname, chi)
        for row in IDEAL[rec.resname]:
            assert (built[row.name] - built[row.c]).norm().item() == pytest.approx(
                row.bond, abs=1e-9
            )
            assert _angle(built, row.b, row.c, row.name) == pytest.approx(row.angle, abs=1e-6)
            torsion = _gemmi_dihedral(built, (row.a, row.b, row.c, row.name))
            want = math.degrees(chi[row.group - 1]) if row.torsion is None else row.torsion
            assert abs((torsion - want + 180) % 360 - 180) < 1e-6
        assert torch.allclose(
            measure_chis(built, rec.resname)[: residues.n_chi(rec.resname)],
            chi[: residues.n_chi(rec.resname)],
        )


def test_rebuilt_side_chains_match_real_ones(records):
    """Independent check of the ideal table: rebuild each real side chain from N, CA, C, CB at its
    observed χ and compare with the deposited atoms (1.0 Å data; real angles differ from ideal
    by a few degrees, which moves the far atoms of long side chains by a few tenths of an Å)."""
    rmsd = []
    for rec in records:
        if not can_rebuild(rec.resname):
            continue
        atoms = base_atoms(rec)
        names = residues.SIDECHAIN_ATOMS[rec.resname]
        if not all(a in atoms for a in names):
            continue
        bare = {n: x for n, x in atoms.items() if n in ("N", "CA", "C", "CB")}
        built = complete_sidechain(bare, rec.resname, measure_chis(atoms, rec.resname))
        d = torch.stack([(built[a] - atoms[a]).norm() for a in names])
        rmsd.append(d.pow(2).mean().sqrt().item())
    assert len(rmsd) > 60
    assert statistics.median(rmsd) < 0.2
    assert max(rmsd) < 0.6


def test_set_chis_builds_truncated_side_chains(records):
    lys = next(r for r in records if r.resname == "LYS")
    atoms = {n: x for n, x in base_atoms(lys).items() if n in ("N", "CA", "C", "O", "CB", "CG")}
    target = torch.tensor([-1.1, 3.0, -3.0, 1.2], dtype=torch.float64)
    out = set_chis(atoms, "LYS", target)
    assert set(residues.SIDECHAIN_ATOMS["LYS"]) <= set(out)
    assert torch.allclose(measure_chis(out, "LYS"), target, atol=1e-9)
    assert (out["CB"] - out["CG"]).norm().item() == pytest.approx(
        (atoms["CB"] - atoms["CG"]).norm().item(), abs=1e-9
    )


def test_batched_conformers_equal_one_at_a_time(records):
    arg = next(r for r in records if r.resname == "ARG")
    atoms = base_atoms(arg)
    chi = torch.tensor([[1.0, 2.0, -1.0, 0.5], [-1.0, 3.0, 3.0, -2.0], [0.2, -0.2, 1.5, 3.1]])
    batched = set_chis(atoms, "ARG", chi)
    for m in range(3):
        one = set_chis(atoms, "ARG", chi[m])
        assert all(torch.allclose(batched[n][m], one[n], atol=1e-12) for n in one)
    assert torch.allclose(measure_chis(batched, "ARG"), chi.double(), atol=1e-9)
