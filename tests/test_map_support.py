"""The map's say in the multiconformer model (ensemble/map_support.py): the support rule, the
rounding, and occupancies fitted to a map computed by gemmi from a real structure in which one
leucine holds two conformers at known occupancies."""

import math

import gemmi
import numpy as np
import pytest
import torch
from conftest import SHARED

from qfitlatent.density.evidence import ConformerEvidence
from qfitlatent.density.grid import TWO_FOFC, DensityMap, MapPair, to_sigma
from qfitlatent.ensemble.map_support import SUPPORT_FOFC, SUPPORT_TWO_FOFC, MapJudge, rounded
from qfitlatent.ensemble.sidechains import set_chis
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

    judge = MapJudge.of(st, maps, D_MIN)  # the single-conformer model, as predict has it
    order = [(c, r_, a.name) for c, ch in enumerate(st[0]) for r_, rr in enumerate(ch)
             for a in rr]  # fmt: skip
    own = np.array([(c, r_) == (ci, ri) and n in names for c, r_, n in order])
    z = np.array([6.0, 6.0, 6.0])
    b_iso = np.array([res[n][0].b_iso for n in names])
    occ = judge.occupancies([here, alt], z, b_iso, own)
    assert occ.sum() == pytest.approx(1.0)
    assert occ == pytest.approx([major, 1.0 - major], abs=0.08)
