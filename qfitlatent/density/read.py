"""Read a user's map file against their model: MTZ (coefficients or observed data) or CCP4/MRC.

`read_maps` is the one entry point. It decides what the file holds, checks it against the
model (cell, space group, overlap, size) before anything large is built, and returns a MapPair
in σ units. Every failure is a MapError whose message names the file and what to do.
"""

import math
import re
import tempfile
from pathlib import Path

import gemmi
import numpy as np

from .. import server_config
from ..errors import MapError
from . import labels
from .grid import FOFC, TWO_FOFC, DensityMap, MapPair, box_around, sample, to_sigma

MTZ_SUFFIXES = (".mtz",)
CCP4_SUFFIXES = (".ccp4", ".map", ".mrc")
CELL_LENGTH_TOL = 0.01  # relative: a re-integrated data set moves the cell by far less
CELL_ANGLE_TOL = 1.0  # degrees
EM_MARGIN = 5.0  # Å of map kept around the model's atoms when a cryo-EM map is boxed
MIN_OVERLAP = 0.5  # fraction of the model's atoms that must lie inside a boxed map


def map_kind(name: str) -> str:
    """ "mtz" or "ccp4" from the file name (gzipped or not); MapError for anything else."""
    low = name.lower().removesuffix(".gz")
    if low.endswith(MTZ_SUFFIXES):
        return "mtz"
    if low.endswith(CCP4_SUFFIXES):
        return "ccp4"
    raise MapError(
        f"{name}: not a map file qfitlatent reads; give an MTZ (.mtz) with map coefficients or "
        "observed data, or a CCP4/MRC map (.ccp4, .map, .mrc), gzipped or not"
    )


def read_maps(
    source: str | Path | bytes,
    model: gemmi.Structure,
    *,
    name: str | None = None,
    from_data: bool = False,
    sample_rate: float = 3.0,
) -> MapPair:
    """The 2mFo-DFc (and, where there is one, mFo-DFc) map of `source` for `model`, in σ.

    Args:
        source: a path, or the file's bytes with `name` giving its file name.
        model: the model the map belongs to, as gemmi read it (waters kept: they help when
            maps are computed from observed data).
        from_data: for an MTZ with both coefficients and observed data, compute the maps from
            the data with this model's phases instead of using the coefficients.
        sample_rate: grid points per d_min for maps from MTZ coefficients (3 is usual).
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise MapError(f"{path}: no such file")
        return _read_path(path, path.name, model, from_data, sample_rate)
    name = name or "upload.map"
    kind = map_kind(name)  # before anything is written
    suffix = (".mtz" if kind == "mtz" else ".ccp4") + (
        ".gz" if name.lower().endswith(".gz") else ""
    )
    with tempfile.TemporaryDirectory(prefix="qfitlatent-map-") as tmp:
        path = Path(tmp) / ("upload" + suffix)
        path.write_bytes(bytes(source))
        return _read_path(path, name, model, from_data, sample_rate)


def _read_path(path: Path, name: str, model, from_data: bool, sample_rate: float) -> MapPair:
    kind = map_kind(name)
    cap_mb = server_config.load().max_map_mb
    _check_size(path.stat().st_size, name, cap_mb, "as stored")
    if kind == "mtz":
        return _from_mtz(path, name, model, from_data, sample_rate, cap_mb)
    return _from_ccp4(path, name, model, cap_mb)


def _check_size(n_bytes: float, name: str, cap_mb: int, what: str) -> None:
    if cap_mb and n_bytes > cap_mb * 2**20:
        raise MapError(
            f"{name}: {n_bytes / 2**20:,.0f} MB {what}, over this server's limit of {cap_mb:,} MB "
            "for a map; cut the map to a box around the model (e.g. phenix.map_box, "
            "ChimeraX 'volume ... region'), or raise QFITLATENT_MAX_MAP_MB"
        )


def _check_cell(cell: gemmi.UnitCell, model: gemmi.Structure, name: str) -> None:
    """MapError unless the map's cell is the model's (where the model has a crystal cell)."""
    if not model.cell.is_crystal():
        return
    a, b = np.array(cell.parameters), np.array(model.cell.parameters)
    if np.any(np.abs(a[:3] - b[:3]) > CELL_LENGTH_TOL * b[:3]) or np.any(
        np.abs(a[3:] - b[3:]) > CELL_ANGLE_TOL
    ):
        raise MapError(
            f"{name}: the map's unit cell ({_cell_text(cell)}) does not match the model's "
            f"({_cell_text(model.cell)}); the map belongs to another crystal or another model"
        )


def _cell_text(cell: gemmi.UnitCell) -> str:
    return " ".join(f"{x:.2f}" for x in cell.parameters)


def _check_spacegroup(sg: gemmi.SpaceGroup | None, model: gemmi.Structure, name: str) -> None:
    own = model.find_spacegroup()
    if sg is not None and own is not None and model.cell.is_crystal() and sg.number != own.number:
        raise MapError(
            f"{name}: the data are in space group {sg.hm}, the model in {own.hm}; "
            "they do not belong together"
        )


# --- MTZ ---------------------------------------------------------------------------------


def _read_mtz(path: Path, name: str, with_data: bool) -> gemmi.Mtz:
    try:
        return gemmi.read_mtz_file(str(path), with_data=with_data)
    except (RuntimeError, ValueError, OSError, EOFError) as err:
        raise MapError(f"{name}: not a readable MTZ file, or cut short ({_short(err)})") from None


def _from_mtz(path, name, model, from_data, sample_rate, cap_mb) -> MapPair:
    header = _read_mtz(path, name, with_data=False)
    _check_size(4.0 * header.nreflections * len(header.columns), name, cap_mb, "of reflections")
    d_min = header.resolution_high()
    if not d_min > 0:
        raise MapError(f"{name}: the MTZ holds no reflections: it is empty, or cut short")
    # The FFT grid (one float per point over the cell) is what memory holds afterwards.
    points = math.prod(math.ceil(x * sample_rate / d_min) for x in header.cell.parameters[:3])
    _check_size(4.0 * points, name, cap_mb, "as a map grid at this resolution")
    _check_cell(header.cell, model, name)
    _check_spacegroup(header.spacegroup, model, name)

    mtz = _read_mtz(path, name, with_data=True)
    columns = {c.label: c.type for c in mtz.columns}
    two = labels.pick_pair(columns, labels.TWO_FOFC_LABELS)
    obs = labels.pick_observations(columns)
    if two is not None and not (from_data and obs is not None):
        diff = labels.pick_pair(columns, labels.FOFC_LABELS)
        source = f"map coefficients {'/'.join(two)}" + (f" and {'/'.join(diff)}" if diff else "")
        return _pair_from_coefficients(mtz, two, diff, sample_rate, name, source)
    if obs is None:
        raise MapError(
            f"{name}: no usable columns: neither map coefficients (2FOFCWT/PH2FOFCWT, FWT/PHWT) "
            f"nor observed data (F/SIGF or I/SIGI). Its columns: {labels.describe(columns)}"
        )
    from .sigmaa import maps_from_data

    free = labels.pick_free_flags(columns)
    out, r_work, r_free = maps_from_data(mtz, model, [*obs, *([free] if free else [])], name)
    r_text = ", ".join(
        f"{k} {v:.3f}" for k, v in (("R-work", r_work), ("R-free", r_free)) if v is not None
    )
    source = (
        f"σA-weighted 2mFo-DFc and mFo-DFc computed by servalcat from {'/'.join(obs)} with this "
        f"model's phases ({r_text or 'R not reported'})"
    )
    pair = _pair_from_coefficients(
        out, ("FWT", "PHWT"), ("DELFWT", "PHDELWT"), sample_rate, name, source
    )
    pair.r_work, pair.r_free = r_work, r_free
    return pair


def _pair_from_coefficients(mtz, two, diff, sample_rate, name, source) -> MapPair:
    def one(pair, label):
        grid = mtz.transform_f_phi_to_map(*pair, sample_rate=sample_rate)
        return DensityMap(to_sigma(grid, name), np.zeros(3), label, periodic=True)

    return MapPair(
        two_fofc=one(two, TWO_FOFC), fofc=one(diff, FOFC) if diff else None, source=source
    )


# --- CCP4 / MRC --------------------------------------------------------------------------


def _from_ccp4(path, name, model, cap_mb) -> MapPair:
    try:
        header = gemmi.read_ccp4_header(str(path))
    except (RuntimeError, ValueError, OSError, EOFError) as err:
        raise MapError(f"{name}: not a readable CCP4/MRC map ({_short(err)})") from None
    dims = [header.header_i32(i) for i in (1, 2, 3)]
    mode = header.header_i32(4)
    if mode not in (0, 1, 2, 6, 12):
        raise MapError(f"{name}: CCP4/MRC data mode {mode} is not a density map qfitlatent reads")
    _check_size(4.0 * math.prod(dims), name, cap_mb, "as a map grid")
    try:
        ccp4 = gemmi.read_ccp4_map(str(path))
        full = ccp4.full_cell()
        ccp4.setup(float("nan"), gemmi.MapSetup.Full)
    except (RuntimeError, ValueError, OSError, EOFError) as err:
        raise MapError(
            f"{name}: the map could not be read, or is cut short ({_short(err)})"
        ) from None
    grid = ccp4.grid
    if model.cell.is_crystal() and not _looks_like_em(model):
        # A crystal model: the map must be of its cell, and is periodic over it.
        _check_cell(grid.unit_cell, model, name)
        covered = float(np.isfinite(grid.array).mean())
        note = "" if full else f", covering {covered:.0%} of the cell"
        dmap = DensityMap(to_sigma(grid, name), np.zeros(3), TWO_FOFC, periodic=True)
        return MapPair(two_fofc=dmap, fofc=None, source=f"CCP4/MRC map of the crystal{note}")
    # A cryo-EM model (no crystal cell, or so its header says): the map is a box in its frame.
    xyz = np.array([a.pos.tolist() for ch in model[0] for res in ch for a in res])  # [N, 3]
    box, box_origin = box_around(grid, _mrc_origin(ccp4), xyz, EM_MARGIN)
    dmap = DensityMap(to_sigma(box, name), box_origin, TWO_FOFC, periodic=False)
    inside = float(np.isfinite(sample(dmap, xyz)).mean())
    if inside < MIN_OVERLAP:
        raise MapError(
            f"{name}: only {inside:.0%} of the model's atoms lie inside the map; the map and "
            "the model are not in the same frame"
        )
    return MapPair(two_fofc=dmap, fofc=None, source="cryo-EM map, boxed around the model")


def _looks_like_em(model: gemmi.Structure) -> bool:
    methods = " ".join(e.method for e in model.meta.experiments).upper()
    return "MICROSCOPY" in methods or "CRYO" in methods


def _mrc_origin(ccp4: gemmi.Ccp4Map) -> np.ndarray:
    """[3] Å: the MRC-2014 ORIGIN (words 50-52), used by EM maps whose NSTART is zero."""
    nstart = [ccp4.header_i32(i) for i in (5, 6, 7)]
    origin = np.array([ccp4.header_float(i) for i in (50, 51, 52)], dtype=np.float64)
    if any(nstart) or not np.all(np.isfinite(origin)):
        return np.zeros(3)  # gemmi's setup already placed the grid by NSTART
    return origin


def _short(err: Exception) -> str:
    """gemmi's first line, without the folders of any path in it: on a shared server an upload
    sits in a temporary folder whose path is not the visitor's business."""
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return re.sub(r"(?:/[^\s/:'\"()]+)*/([^\s/:'\"()]+)", r"\1", text)[:200]
