"""The map box the viewer draws: values against gemmi's own interpolation, read back from the
cube text by an independent parser, on a real map and on a non-orthogonal hand-built one."""

from importlib import resources

import gemmi
import numpy as np
import pytest

from qfitlatent.density import read_maps
from qfitlatent.density.grid import FOFC, TWO_FOFC, DensityMap
from qfitlatent.viz import viewer
from qfitlatent.viz.density_mesh import add_meshes, cube_text, cut_box, meshes

BOHR = 0.529177


def parse_cube(text: str):
    """(origin [3] Å, axes [3, 3] Å, values [nx, ny, nz]) per the Gaussian cube format: a
    positive voxel count means Bohr, a negative one Å; x slowest, z fastest."""
    lines = text.splitlines()
    natoms, *origin = lines[2].split()
    counts, axes = [], []
    for line in lines[3:6]:
        n, *vec = line.split()
        counts.append(int(n))
        axes.append([float(v) for v in vec])
    unit = 1.0 if counts[0] < 0 else BOHR
    start = 6 + abs(int(natoms))
    values = np.array(" ".join(lines[start:]).split(), dtype=np.float64)
    shape = tuple(abs(n) for n in counts)
    return (np.array(origin, dtype=float) * unit, np.array(axes) * unit, values.reshape(shape))


def gemmi_at(dmap: DensityMap, xyz) -> float:
    """gemmi's scalar trilinear interpolation (a different entry point from the array one)."""
    p = np.asarray(xyz, dtype=float) - dmap.origin
    return dmap.grid.interpolate_value(gemmi.Position(*p))


@pytest.fixture(scope="module")
def example_maps():
    data = resources.files("qfitlatent").joinpath("data")
    st = gemmi.read_structure(str(data / "3k0n_single.pdb.gz"))
    return st, read_maps(str(data / "3k0n_maps.mtz.gz"), st)


def cb_of(st, seqid: int) -> list[float]:
    res = next(r for r in st[0]["A"] if r.seqid.num == seqid)
    return next(a for a in res if a.name == "CB").pos.tolist()


def check_box_against_gemmi(dmap: DensityMap, centre, tol=0.006):
    box = cut_box(dmap, centre)
    origin, axes, values = parse_cube(cube_text(box))
    assert np.allclose(origin, box.origin, atol=1e-4)
    assert np.allclose(axes, np.eye(3) * box.spacing, atol=1e-4)
    assert values.shape == box.values.shape
    rng = np.random.default_rng(0)
    for ijk in [
        (0, 0, 0),
        tuple(np.array(values.shape) - 1),
        *rng.integers(0, values.shape, (6, 3)),
    ]:
        xyz = origin + np.asarray(ijk) @ axes  # where the cube file says this value lies
        # Two decimals in the text: within 0.005 σ of gemmi's value at that position.
        assert values[tuple(ijk)] == pytest.approx(gemmi_at(dmap, xyz), abs=tol)
    return box, values


def test_real_map_box_matches_gemmi(example_maps):
    st, maps = example_maps
    cb = cb_of(st, 99)  # Ser99, of the active-site network
    box, values = check_box_against_gemmi(maps.two_fofc, cb)
    # A side chain's CB sits in density: the box is not flat and reaches past 1σ.
    assert values.max() > 1.0 and values.min() < 0.0
    assert box.values.shape[0] == 21  # 12 Å at 0.6 Å
    check_box_against_gemmi(maps.fofc, cb)


def test_non_orthogonal_cell_box_matches_gemmi():
    """A monoclinic cell: the box is orthogonal in Å while the map's grid is not, so a box read
    on the map's own grid axes would be sheared; gemmi's interpolation is the referee."""
    grid = gemmi.FloatGrid(24, 30, 36)
    grid.set_unit_cell(gemmi.UnitCell(30.0, 40.0, 50.0, 90.0, 107.0, 90.0))
    grid.spacegroup = gemmi.find_spacegroup_by_name("P 1")
    arr = np.random.default_rng(1).normal(size=(24, 30, 36)).astype(np.float32)
    np.copyto(np.array(grid, copy=False), arr)
    dmap = DensityMap(grid, np.zeros(3), TWO_FOFC, periodic=True)
    check_box_against_gemmi(dmap, [29.0, -3.0, 48.5])  # across the cell's edge: wraps


def test_outside_a_boxed_map_reads_as_the_mean():
    grid = gemmi.FloatGrid(np.ones((20, 20, 20), dtype=np.float32) * 2.0)
    grid.set_unit_cell(gemmi.UnitCell(10.0, 10.0, 10.0, 90, 90, 90))
    dmap = DensityMap(grid, np.zeros(3), TWO_FOFC, periodic=False)
    box = cut_box(dmap, [9.0, 5.0, 5.0], half=3.0)
    assert np.isfinite(box.values).all()
    assert (box.values == 0.0).any() and np.isclose(box.values, 2.0).any()


def test_meshes_levels_colours_and_view(example_maps):
    st, maps = example_maps
    centre = cb_of(st, 99)
    items = meshes(cut_box(maps.two_fofc, centre), cut_box(maps.fofc, centre))
    assert [m["level"] for m in items] == [1.0, 3.0, -3.0]
    assert [m["colour"] for m in items] == ["#3a6fd8", "#1a9e1a", "#d62728"]
    assert "σ" in items[0]["name"] and items[1]["name"].startswith(FOFC)
    assert [m["level"] for m in meshes(cut_box(maps.two_fofc, centre), None)] == [1.0]
    view = viewer.ensemble_view("END\n", focus=("A", 1, ""))
    add_meshes(view, items)
    drawn = view.calls_to("addVolumetricData")
    assert len(drawn) == 3 and all(d[1] == "cube" and d[2]["wireframe"] for d in drawn)
    assert [d[2]["isoval"] for d in drawn] == [1.0, 3.0, -3.0]
