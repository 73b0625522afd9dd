"""NNLS occupancies on a synthetic two-conformer map made by gemmi's density calculation."""

import gemmi
import numpy as np
import pytest
from test_density_read import map_file

from qfitlatent.density import sample
from qfitlatent.density.evidence import candidate_atoms
from qfitlatent.density.grid import TWO_FOFC, DensityMap, to_sigma
from qfitlatent.density.occupancy import atom_density, fit_occupancies, lattice_near
from qfitlatent.residues import element_of

D_MIN = 1.5
B = 15.0


def two_conformer_map(atoms, resname, chi, occ):
    """A P1 box holding the residue's backbone and CB at occupancy 1 and one side chain per
    row of chi [2, D] at occupancies occ [2]; density by gemmi.DensityCalculatorX."""
    names, xyz = candidate_atoms(atoms, resname, chi)  # [2, P, 3]
    st = gemmi.Structure()
    st.cell = gemmi.UnitCell(30, 30, 30, 90, 90, 90)
    st.spacegroup_hm = "P 1"
    st.add_model(gemmi.Model("1"))
    st[0].add_chain(gemmi.Chain("A"))
    res = gemmi.Residue()
    res.name, res.seqid = resname, gemmi.SeqId(1, " ")

    def add(name, pos, altloc="\0", o=1.0):
        atom = gemmi.Atom()
        atom.name, atom.element = name, gemmi.Element(element_of(name))
        atom.pos, atom.occ, atom.b_iso, atom.altloc = gemmi.Position(*pos), o, B, altloc
        res.add_atom(atom)

    for name in ("N", "CA", "C", "CB"):
        add(name, atoms[name])
    for k, alt in enumerate("AB"):
        for name, pos in zip(names, xyz[k], strict=True):
            add(name, pos, alt, occ[k])
    st[0]["A"].add_residue(res)
    calc = gemmi.DensityCalculatorX()
    calc.d_min = D_MIN
    calc.set_grid_cell_and_spacegroup(st)
    calc.put_model_density_on_grid(st[0])
    dmap = DensityMap(to_sigma(calc.grid, "synthetic"), np.zeros(3), TWO_FOFC, periodic=True)
    return names, xyz, dmap


@pytest.fixture(scope="module")
def leucine():
    st = gemmi.read_structure(str(map_file("3sb3.pdb.gz")))
    res = next(r for ch in st[0] for r in ch if r.name == "LEU" and not r[0].has_altloc())
    atoms = {a.name: np.array(a.pos.tolist()) for a in res}
    centre = atoms["CA"].copy()
    return {k: v - centre + 15.0 for k, v in atoms.items()}  # the middle of a 30 Å box


@pytest.mark.parametrize("occ", [(0.7, 0.3), (0.5, 0.5), (0.2, 0.8)])
def test_nnls_recovers_two_conformer_occupancies(leucine, occ):
    chi = np.radians([[-65.0, 175.0, 0, 0], [-177.0, 65.0, 0, 0]])  # mt and tp: two rotamers
    names, xyz, dmap = two_conformer_map(leucine, "LEU", chi, occ)
    z = np.array([6.0] * len(names))
    fixed = np.stack([leucine[n] for n in ("N", "CA", "C", "CB")])
    got = fit_occupancies(
        lambda p: sample(dmap, p),
        list(xyz),
        z,
        np.full(len(names), B),
        D_MIN,
        fixed=fixed,
        fixed_z=np.array([7.0, 6.0, 6.0, 6.0]),
        fixed_b=np.full(4, B),
    )
    assert got.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(got, occ, atol=0.05)


def test_a_conformer_in_solvent_gets_no_occupancy(leucine):
    chi = np.radians([[-65.0, 175.0, 0, 0], [-177.0, 65.0, 0, 0]])
    names, xyz, dmap = two_conformer_map(leucine, "LEU", chi, (1.0, 0.0))
    # A third candidate (gp: χ1 +60°) has no density at all.
    _, third = candidate_atoms(leucine, "LEU", np.radians([[62.0, 80.0, 0, 0]]))
    got = fit_occupancies(
        lambda p: sample(dmap, p), [*xyz, third[0]], np.full(3, 6.0), np.full(3, B), D_MIN
    )
    assert got[0] > 0.9 and got[2] < 0.05


def test_atom_density_integrates_to_its_electrons():
    pts = lattice_near(np.zeros((1, 3)), reach=4.0, step=0.1)
    rho = atom_density(pts, np.zeros((1, 3)), np.array([20.0]), np.array([8.0]), 2.0)
    assert rho.sum() * 0.1**3 == pytest.approx(8.0, rel=0.01)
