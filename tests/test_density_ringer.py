"""Ringer scans and conformer evidence: against an independent interpolation, on a hand-built
map with a known second peak, and against gemmi's geometry."""

import math

import gemmi
import numpy as np
import pytest
from test_density_read import COARSE, map_file

from qfitlatent.density import MapPair, read_maps, sample
from qfitlatent.density.evidence import score_conformers
from qfitlatent.density.grid import TWO_FOFC, DensityMap, to_sigma
from qfitlatent.density.ringer import away_from, scan, scan_positions, second_peak
from qfitlatent.structure import read_structure


def wrap_deg(x):
    """Degrees into [-180, 180)."""
    return (np.asarray(x) + 180.0) % 360.0 - 180.0


def trilinear(grid: gemmi.FloatGrid, xyz: np.ndarray) -> np.ndarray:
    """Periodic trilinear interpolation written out in numpy: the independent reference."""
    arr = np.asarray(grid.array, dtype=np.float64)  # [nu, nv, nw]
    frac = xyz @ np.array(grid.unit_cell.frac.mat).T  # [P, 3]
    g = frac * np.array(arr.shape)
    i0 = np.floor(g).astype(int)
    t = g - i0
    out = np.zeros(len(xyz))
    for corner in np.ndindex(2, 2, 2):
        c = np.array(corner)
        idx = (i0 + c) % np.array(arr.shape)
        w = np.prod(np.where(c == 1, t, 1 - t), axis=1)
        out += w * arr[idx[:, 0], idx[:, 1], idx[:, 2]]
    return out


@pytest.fixture(scope="module")
def sb3():
    st = gemmi.read_structure(str(map_file("3sb3.pdb.gz")))
    maps = read_maps(map_file("3sb3_data.mtz.gz"), st, sample_rate=COARSE)
    return read_structure(map_file("3sb3.pdb.gz")), maps


def chi_residues(parsed, names=("LEU", "MET", "LYS", "GLU", "GLN", "ARG", "PHE", "SER")):
    for rec in parsed.residues:
        atoms = rec.conformers[0].atoms
        if rec.parent in names and ("CG" in atoms or "OG" in atoms):
            yield rec, atoms


def test_scan_matches_an_independent_trilinear_interpolation(sb3):
    parsed, maps = sb3
    checked = 0
    for rec, atoms in list(chi_residues(parsed))[:10]:
        ringer = scan(atoms, rec.parent, maps)
        gamma, delta, _ = scan_positions(atoms, rec.parent, ringer.chi1)
        for dmap in (maps.two_fofc, maps.fofc):
            np.testing.assert_allclose(
                ringer.gamma[dmap.label], trilinear(dmap.grid, gamma), atol=1e-4
            )
            if delta is not None:
                np.testing.assert_allclose(
                    ringer.delta[dmap.label], trilinear(dmap.grid, delta), atol=1e-4
                )
        checked += 1
    assert checked == 10


def test_scan_geometry_against_gemmi(sb3):
    parsed, _ = sb3
    rec, atoms = next(r for r in chi_residues(parsed, ("LEU",)) if "CD1" in r[1])
    chi1 = np.array([0.0, 65.0, 180.0, 300.0])
    gamma, delta, modelled = scan_positions(atoms, "LEU", chi1)
    pos = {k: gemmi.Position(*v) for k, v in atoms.items()}
    measured = math.degrees(gemmi.calculate_dihedral(pos["N"], pos["CA"], pos["CB"], pos["CG"]))
    assert modelled == pytest.approx(measured, abs=1e-6)
    for k, want in enumerate(chi1):
        g = gemmi.Position(*gamma[k])
        got = math.degrees(gemmi.calculate_dihedral(pos["N"], pos["CA"], pos["CB"], g))
        assert wrap_deg(got - want) == pytest.approx(0.0, abs=1e-6)
        assert pos["CB"].dist(g) == pytest.approx(1.53, abs=0.01)  # ideal CB-CG, not the file's
        d = gemmi.Position(*delta[k])
        chi2 = gemmi.calculate_dihedral(pos["CA"], pos["CB"], g, d)
        want2 = gemmi.calculate_dihedral(pos["CA"], pos["CB"], pos["CG"], pos["CD1"])
        assert wrap_deg(math.degrees(chi2 - want2)) == pytest.approx(0.0, abs=1e-6)


def hand_built_map(centres: np.ndarray, heights: np.ndarray, cell: float = 40.0) -> DensityMap:
    """A P1 cubic box with Gaussian blobs (σ 0.6 Å) at `centres` [B, 3], in σ units."""
    grid = gemmi.FloatGrid(100, 100, 100)
    grid.set_unit_cell(gemmi.UnitCell(cell, cell, cell, 90, 90, 90))
    grid.spacegroup = gemmi.find_spacegroup_by_name("P 1")
    axis = np.arange(100) * cell / 100
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    arr = np.zeros(x.shape)
    for (cx, cy, cz), h in zip(centres, heights, strict=True):
        arr += h * np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * 0.6**2))
    grid.array[:] = arr.astype(np.float32)
    return DensityMap(to_sigma(grid, "hand-built"), np.zeros(3), TWO_FOFC, periodic=True)


def rotate(p, axis_from, axis_to, degrees):
    """p turned about the line axis_from → axis_to (Rodrigues), in plain numpy."""
    k = (axis_to - axis_from) / np.linalg.norm(axis_to - axis_from)
    v = p - axis_to
    a = math.radians(degrees)
    v = v * math.cos(a) + np.cross(k, v) * math.sin(a) + k * (k @ v) * (1 - math.cos(a))
    return v + axis_to


def a_serine_in_a_box():
    """SER's own atoms, moved into the middle of a 40 Å box."""
    parsed = read_structure(map_file("3sb3.pdb.gz"))
    rec = next(r for r in parsed.residues if r.parent == "SER" and r.n_obs == 1)
    atoms = dict(rec.conformers[0].atoms)
    atoms["C"] = rec.backbone["C"]
    centre = atoms["CA"].copy()
    return {k: v - centre + 20.0 for k, v in atoms.items()}


def test_scan_finds_a_hand_built_second_peak():
    atoms = a_serine_in_a_box()
    modelled = math.degrees(
        gemmi.calculate_dihedral(*(gemmi.Position(*atoms[n]) for n in ("N", "CA", "CB", "OG")))
    )
    second = rotate(atoms["OG"], atoms["CA"], atoms["CB"], 120.0)  # χ1 + 120°: a rotamer away
    backbone = np.stack([atoms[n] for n in ("N", "CA", "C", "CB")])
    dmap = hand_built_map(
        np.concatenate([backbone, atoms["OG"][None], second[None]]),
        np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.4]),
    )
    ringer = scan(atoms, "SER", MapPair(two_fofc=dmap, fofc=None, source="hand-built"))
    values = ringer.gamma[TWO_FOFC]
    assert abs(wrap_deg(ringer.chi1[np.argmax(values)] - modelled)) <= 2.5
    height, where = second_peak(values, ringer.chi1, ringer.modelled_chi1)
    want = (modelled + 120.0) % 360
    assert abs(wrap_deg(where - want)) <= 2.5  # on the 5° grid
    # Lower than the modelled peak, and well above the solvent half-way between the two.
    assert height < values.max()
    halfway = values[np.argmin(np.abs(wrap_deg(ringer.chi1 - (modelled + 60))))]
    assert height > halfway + 0.5


def test_away_from_is_on_the_circle():
    chi1 = np.array([0.0, 20.0, 40.0, 340.0, 300.0])
    np.testing.assert_array_equal(away_from(chi1, 355.0), [False, False, True, False, True])


def test_conformer_evidence_prefers_the_supported_rotamer():
    atoms = a_serine_in_a_box()
    modelled = gemmi.calculate_dihedral(
        *(gemmi.Position(*atoms[n]) for n in ("N", "CA", "CB", "OG"))
    )
    second = rotate(atoms["OG"], atoms["CA"], atoms["CB"], 120.0)
    dmap = hand_built_map(np.stack([atoms["CB"], atoms["OG"], second]), np.array([1.0, 1.0, 0.5]))
    pair = MapPair(two_fofc=dmap, fofc=None, source="hand-built")
    chi = np.zeros((3, 4))
    chi[:, 0] = [modelled, modelled + math.radians(120), modelled - math.radians(120)]
    ev = score_conformers(atoms, "SER", chi, pair)
    assert ev.atoms == ("OG",) and ev.difference is None
    assert ev.relative[0] == pytest.approx(0.0, abs=1e-3)  # the modelled one, rebuilt
    assert ev.candidates[1] > ev.candidates[2] + 1.0  # the half-height blob against solvent
    np.testing.assert_allclose(
        ev.candidates,
        sample(
            dmap,
            np.stack([atoms["OG"], second, rotate(atoms["OG"], atoms["CA"], atoms["CB"], -120.0)]),
        ),
        atol=1e-3,
    )
