"""The map's say in the multiconformer model (ensemble/map_support.py): the support rule, the
rounding, and occupancies fitted to a map computed by gemmi from a real structure in which one
leucine holds two conformers at known occupancies."""

import dataclasses
import math

import gemmi
import numpy as np
import pytest
import torch
from conftest import SHARED

from qfitlatent.density.evidence import ConformerEvidence
from qfitlatent.density.grid import TWO_FOFC, DensityMap, MapPair, to_sigma
from qfitlatent.ensemble.map_support import (
    FIXED_REACH,
    SUPPORT_FOFC,
    SUPPORT_TWO_FOFC,
    MapJudge,
    rounded,
)
from qfitlatent.ensemble.multiconf import Environment
from qfitlatent.ensemble.sidechains import measure_chis, set_chis
from qfitlatent.ideal import moved_by

STRUCTURE = SHARED / "maps" / "3sb3.pdb.gz"
D_MIN = 1.8


def evidence(two, diff):
    return ConformerEvidence(("CG",), 1.0, np.array(two, float),
                             None if diff is None else np.array(diff, float))  # fmt: skip


def test_support_rule():
    hi, lo = SUPPORT_TWO_FOFC + 0.1, SUPPORT_TWO_FOFC - 0.1
    ev = evidence([hi, hi, lo, lo], [0.1, -0.1, SUPPORT_FOFC + 0.1, SUPPORT_FOFC - 0.1])
    assert [MapJudge.supports(ev, k) for k in range(4)] == [True, False, True, False]
    no_difference = evidence([hi, lo], None)  # a CCP4 map: the 2mFo-DFc test alone
    assert [MapJudge.supports(no_difference, k) for k in range(2)] == [True, False]


@pytest.mark.parametrize(
    "fit, expected",
    [([0.6, 0.3, 0.1], [0.6, 0.3, 0.1]), ([0.333, 0.333, 0.334], [0.34, 0.33, 0.33]),
     ([0.02, 0.98], [0.1, 0.9]), ([1.0], [1.0])],
)  # fmt: skip
def test_rounded_occupancies_sum_to_one(fit, expected):
    out = rounded(np.array(fit), 0.1)
    assert out == pytest.approx(expected, abs=1e-9)
    assert math.isclose(sum(out), 1.0, abs_tol=1e-12)


def first_leucine(st: gemmi.Structure):
    for ci, chain in enumerate(st[0]):
        for ri, res in enumerate(chain):
            if res.name == "LEU" and not any(a.has_altloc() for a in res):
                return ci, ri
    raise AssertionError("no leucine")


@pytest.mark.parametrize("major", [0.7, 0.5])
def test_occupancies_from_a_two_conformer_map(major):
    st = gemmi.read_structure(str(STRUCTURE))
    st.remove_hydrogens()
    st.remove_alternative_conformations()
    ci, ri = first_leucine(st)
    res = st[0][ci][ri]
    names = list(moved_by("LEU", 0))  # CG, CD1, CD2
    atoms = {a.name: torch.tensor(a.pos.tolist(), dtype=torch.float64) for a in res}
    # the mt and tp rotamers: whichever the modelled one is not
    chi = torch.tensor([[math.radians(-65.0), math.radians(175.0), 0.0, 0.0],
                        [math.radians(-177.0), math.radians(65.0), 0.0, 0.0]],
                       dtype=torch.float64)  # fmt: skip
    built = set_chis(atoms, "LEU", chi)
    here = np.stack([atoms[n].numpy() for n in names])
    rotamers = np.stack([built[n].numpy() for n in names], axis=1)  # [2, 3, 3]
    far = int(np.argmax(np.linalg.norm(rotamers - here, axis=-1).max(-1)))
    alt = rotamers[far]
    assert np.linalg.norm(alt - here, axis=1).max() > 1.5  # a different rotamer

    # The "crystal": the leucine's side chain at `major`, the alternative at 1 - major.
    crystal = st.clone()
    r = crystal[0][ci][ri]
    for a in r:
        if a.name in names:
            a.altloc, a.occ = "A", major
    for n, xyz in zip(names, alt, strict=True):
        b = r[n][0].clone()
        b.altloc, b.occ, b.pos = "B", 1.0 - major, gemmi.Position(*xyz)
        r.add_atom(b)
    dc = gemmi.DensityCalculatorX()
    dc.d_min = D_MIN
    dc.rate = 3.0
    dc.set_grid_cell_and_spacegroup(crystal)
    dc.put_model_density_on_grid(crystal[0])
    grid = to_sigma(dc.grid, "test")
    maps = MapPair(DensityMap(grid, np.zeros(3), TWO_FOFC, True), None, "gemmi")

    judge = MapJudge.of(st, Environment(st), maps, D_MIN)  # the single-conformer model
    order = [(c, r_, a.name) for c, ch in enumerate(st[0]) for r_, rr in enumerate(ch)
             for a in rr]  # fmt: skip
    own = np.array([(c, r_) == (ci, ri) and n in names for c, r_, n in order])
    z = np.array([6.0, 6.0, 6.0])
    b_iso = np.array([res[n][0].b_iso for n in names])
    occ = judge.occupancies([here, alt], z, b_iso, own)
    assert occ.sum() == pytest.approx(1.0)
    assert occ == pytest.approx([major, 1.0 - major], abs=0.08)


def crystal_map(st: gemmi.Structure) -> MapPair:
    """The 2mFo-DFc stand-in: gemmi's calculated density of `st` over its unit cell, symmetry
    copies included (as a crystal's map has them)."""
    dc = gemmi.DensityCalculatorX()
    dc.d_min = D_MIN
    dc.rate = 3.0
    dc.set_grid_cell_and_spacegroup(st)
    dc.put_model_density_on_grid(st[0])
    return MapPair(DensityMap(to_sigma(dc.grid, "test"), np.zeros(3), TWO_FOFC, True), None, "")


def symmetry_copies_near(st: gemmi.Structure, xyz: np.ndarray, reach: float) -> np.ndarray:
    """[S, 3] every copy of every atom by the space group's operations and lattice shifts of
    ±1 cell, within `reach` Å of xyz [P, 3], the model's own atoms left out: plain numpy, the
    independent reference for MapJudge.symmetry_mates."""
    pos = np.array([a.pos.tolist() for ch in st[0] for r in ch for a in r])  # [A, 3]
    frac = pos @ np.array(st.cell.frac.mat).T
    orth = np.array(st.cell.orth.mat)
    out = []
    for op in st.find_spacegroup().operations():
        rot = np.array(op.rot, float) / op.DEN
        tran = np.array(op.tran, float) / op.DEN
        moved = frac @ rot.T + tran  # [A, 3]
        for shift in np.ndindex(5, 5, 5):
            copy = (moved + np.array(shift) - 2) @ orth.T
            d = np.linalg.norm(copy[:, None] - xyz[None], axis=-1).min(1)  # [A]
            same = np.linalg.norm(copy - pos, axis=1) < 1e-3
            out.append(copy[(d <= reach) & ~same])
    return np.concatenate(out)


def lysine_36():
    """3SB3's single-conformer model and Lys36, whose side chain turned χ1 + 120° points into a
    symmetry copy of the molecule (1.1 Å from its atoms)."""
    st = gemmi.read_structure(str(STRUCTURE))
    st.remove_hydrogens()
    st.remove_alternative_conformations()
    ci, ri = next((c, r) for c, ch in enumerate(st[0]) for r, res in enumerate(ch)
                  if res.seqid.num == 36)  # fmt: skip
    return st, ci, ri


def test_symmetry_mates_are_the_crystals_copies_within_reach():
    st, ci, ri = lysine_36()
    judge = MapJudge.of(st, Environment(st), crystal_map(st), D_MIN)
    names = list(moved_by("LYS", 0))
    here = np.stack([st[0][ci][ri][n][0].pos.tolist() for n in names])
    got, z, b = judge.symmetry_mates(here)
    want = symmetry_copies_near(st, here, FIXED_REACH)
    assert len(got) > 0 and len(got) == len(want) and len(z) == len(b) == len(got)
    # The same positions, each once.
    np.testing.assert_allclose(np.sort(np.linalg.norm(got[:, None] - want[None], axis=-1)
                                       .min(1)), 0.0, atol=1e-3)  # fmt: skip
    # A cryo-EM box has no symmetry: none.
    boxed = MapPair(dataclasses.replace(judge.maps.two_fofc, periodic=False), None, "")
    assert len(MapJudge.of(st, Environment(st), boxed, D_MIN).symmetry_mates(here)[0]) == 0


def test_symmetry_mates_hold_each_copy_once():
    """A copy found from several points is one atom, not one per point: around all of Lys36's
    atoms the old search (gemmi's, keyed on positions rounded to 0.01 Å) counted some copies
    twice, where their coordinate sat on a rounding boundary (x.xx5) and two points' images
    differed in the last bit. Twice an atom in the fixed column is twice its density."""
    st, ci, ri = lysine_36()
    here = np.array([a.pos.tolist() for a in st[0][ci][ri]])  # [P, 3] every atom of the residue
    got = MapJudge.of(st, Environment(st), crystal_map(st), D_MIN).symmetry_mates(here)[0]
    gap = np.linalg.norm(got[:, None] - got[None], axis=-1) + np.eye(len(got)) * 1e9  # [S, S]
    assert gap.min() > 1e-3  # no copy twice
    assert len(got) == len(symmetry_copies_near(st, here, FIXED_REACH))


def test_an_atom_on_a_symmetry_axis_is_not_its_own_copy():
    """P 2: a water on the 2-fold axis is mapped onto itself (it is in the model already, not a
    copy); a water 2 Å off the axis has a copy 4 Å from itself, 2 Å from the first."""
    st = gemmi.Structure()
    st.cell = gemmi.UnitCell(20, 20, 20, 90, 90, 90)
    st.spacegroup_hm = "P 1 2 1"
    chain = gemmi.Chain("W")
    for k, x in enumerate((0.0, 2.0)):
        res = gemmi.Residue()
        res.name, res.seqid = "HOH", gemmi.SeqId(k + 1, " ")
        atom = gemmi.Atom()
        atom.name, atom.element, atom.occ = "O", gemmi.Element("O"), 1.0
        atom.pos = gemmi.Position(x, 5.0, 0.0)
        res.add_atom(atom)
        chain.add_residue(res)
    model = gemmi.Model("1")
    model.add_chain(chain)
    st.add_model(model)
    atom, where = Environment(st).symmetry_copies(np.array([[0.0, 5.0, 0.0]]), 3.0)
    assert atom.tolist() == [1]
    np.testing.assert_allclose(where, [[-2.0, 5.0, 0.0]], atol=1e-9)


def test_occupancies_do_not_credit_a_symmetry_copys_density_to_a_conformer():
    st, ci, ri = lysine_36()
    res = st[0][ci][ri]
    names = list(moved_by("LYS", 0))
    atoms = {a.name: torch.tensor(a.pos.tolist(), dtype=torch.float64) for a in res}
    chi = measure_chis(atoms, "LYS")
    chi[0] += math.radians(120.0)
    built = set_chis(atoms, "LYS", chi[None])
    here = np.stack([atoms[n].numpy() for n in names])
    alt = np.stack([built[n][0].numpy() for n in names])  # points into the neighbour
    # The crystal holds only the modelled side chain: the alternative's true occupancy is 0.
    judge = MapJudge.of(st, Environment(st), crystal_map(st), D_MIN)
    order = [(c, r_, a.name) for c, ch in enumerate(st[0]) for r_, rr in enumerate(ch)
             for a in rr]  # fmt: skip
    own = np.array([(c, r_) == (ci, ri) and n in names for c, r_, n in order])
    z = np.array([6.0, 6.0, 6.0, 7.0])  # CG, CD, CE, NZ
    b_iso = np.array([res[n][0].b_iso for n in names])
    occ = judge.occupancies([here, alt], z, b_iso, own)
    assert occ == pytest.approx([1.0, 0.0], abs=0.03)
