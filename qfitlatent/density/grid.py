"""A density map in σ units and the one way to read values from it.

A crystal map covers the unit cell, so it is periodic and symmetry copies of the model sit in
it too; its σ is taken over the whole cell. A cryo-EM map is a box in the model's frame; it is
cut to the model plus a margin (so a 500³ map does not stay in memory) and its σ is taken over
that cut, so the number does not depend on how much empty solvent the deposited box held.
"""

from dataclasses import dataclass

import gemmi
import numpy as np

from ..errors import MapError

TWO_FOFC = "2mFo-DFc"
FOFC = "mFo-DFc"


@dataclass
class DensityMap:
    grid: gemmi.FloatGrid  # values in σ units (mean 0, σ 1 over the cell or the box)
    origin: np.ndarray  # [3] Å: where the grid's point (0, 0, 0) lies in the model's frame
    label: str  # TWO_FOFC, FOFC, or the CCP4 file's kind of map
    periodic: bool  # True: a crystal map over the unit cell; False: a box (cryo-EM)


@dataclass
class MapPair:
    """What a user's map file gives: the 2mFo-DFc map and, where the file has one, mFo-DFc."""

    two_fofc: DensityMap
    fofc: DensityMap | None  # None for a CCP4/MRC map or an MTZ with only 2mFo-DFc coefficients
    source: str  # one line a user reads: which columns or file, and how the map was made
    r_work: float | None = None  # of the model against the data, where maps were computed here
    r_free: float | None = None


def sample(dmap: DensityMap, xyz) -> np.ndarray:
    """Trilinear interpolation of the map at positions xyz [..., 3] (Å) → [...] in σ.

    NaN outside a boxed (cryo-EM) map; a crystal map wraps, as the crystal does.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    pts = np.ascontiguousarray(xyz.reshape(-1, 3) - dmap.origin)  # [P, 3]
    out = dmap.grid.interpolate_position_array(pts, order=1).astype(np.float64)  # [P]
    if not dmap.periodic:
        frac = pts @ np.array(dmap.grid.unit_cell.frac.mat).T  # [P, 3]
        spacing = np.array(dmap.grid.spacing) / np.array(dmap.grid.unit_cell.parameters[:3])
        # The last cell of the box would interpolate against the first plane (wrap): outside.
        inside = np.all((frac >= 0) & (frac <= 1 - spacing), axis=-1)
        out[~inside] = np.nan
    return out.reshape(xyz.shape[:-1])


def to_sigma(grid: gemmi.FloatGrid, what: str) -> gemmi.FloatGrid:
    """The grid rescaled in place to mean 0 and σ 1 over its points; returns it.

    Raises MapError for a map with no contrast (all one value), which no σ can describe.
    """
    arr = grid.array  # a view: rescaling it rescales the grid
    finite = np.isfinite(arr)
    if not finite.any():
        raise MapError(f"{what}: the map has no finite values")
    mean, std = float(arr[finite].mean()), float(arr[finite].std())
    if not std > 0:
        raise MapError(f"{what}: the map is flat (every point {mean:g}); it holds no density")
    arr -= mean
    arr /= std
    arr[~finite] = 0.0  # uncovered points read as the mean, not as NaN spreading by interpolation
    return grid


def box_around(grid: gemmi.FloatGrid, origin: np.ndarray, xyz: np.ndarray, margin: float):
    """The part of an orthogonal map around positions xyz [N, 3] (Å) plus `margin` Å.

    Returns (grid, origin [3]) of the cut, a P1 grid whose cell is the box. Maps whose cell is
    not orthogonal (cryo-EM maps always are) are returned whole.
    """
    cell = grid.unit_cell
    if any(abs(a - 90.0) > 1e-3 for a in cell.parameters[3:]):
        return grid, origin
    spacing = np.array(grid.spacing)  # [3] Å
    shape = np.array(grid.shape)
    lo = np.floor((xyz.min(axis=0) - origin - margin) / spacing).astype(int)
    hi = np.ceil((xyz.max(axis=0) - origin + margin) / spacing).astype(int) + 1
    lo, hi = np.maximum(lo, 0), np.minimum(hi, shape)  # never past the map's own edges
    if np.any(hi - lo < 2):
        raise MapError(
            "the model lies outside the map: they do not overlap (check that the map "
            "belongs to this model and is in the same frame)"
        )
    sub = grid.get_subarray(lo.tolist(), (hi - lo).tolist())
    out = gemmi.FloatGrid(np.ascontiguousarray(sub, dtype=np.float32))
    out.set_unit_cell(gemmi.UnitCell(*((hi - lo) * spacing), 90.0, 90.0, 90.0))
    out.spacegroup = gemmi.find_spacegroup_by_name("P 1")
    return out, origin + lo * spacing
