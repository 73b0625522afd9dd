"""Streamlit glue for the map: its upload beside the structure's, the bundled example's map, the
prediction with a map (and, when the map cannot be used, the prediction without it and the
reason), the mesh toggle, the map's lines on the page and its columns in the table.

Science lives in `density` (reading, scans, evidence) and `viz.density_mesh` (the box and its
cube text); this module decides what a visitor sees.
"""

import hashlib
import logging
import threading
from collections import OrderedDict
from importlib import resources

import streamlit as st

from . import server_config, ui
from .errors import CheckpointError, MapError, StructureError
from .viz import density_mesh
from .viz.table import Column

# The two questions a visitor may ask, and the numbers that answer each: said in the table's
# caption, its column help and the residue's metrics, so one is never read as the other.
SECOND_CONFORMER = "Does the crystal show a second conformer?"
HOW_MUCH = "How much does this side chain move?"
TWO_QUESTIONS = (
    f"Two questions, two numbers. *{SECOND_CONFORMER}* is **flexibility** (`p_flexible`: with a "
    "map, the posterior given the network and the map's evidence; **call from** says which). "
    f"*{HOW_MUCH}* is the mixture's spread: **entropy / χ** and **χ1 spread**. They differ: "
    "p_flexible learned where modellers build altlocs; on NMR order parameters of 10 proteins "
    "the mixture's entropy tracks motion in solution (Spearman 0.44 with methyl S²) and "
    "p_flexible does not (0.22)."
)
CALL_FROM_HELP = (
    "map: the map speaks for this side chain (its Ringer scan and difference density), so "
    "flexibility is the posterior given the map; model: no map, or the map cannot speak for it "
    "(no χ1 to scan, a truncated side chain, outside a cryo-EM box): the network alone"
)
NETWORK_HELP = (
    "the network's own p_flexible, before the map: the prior that the map's evidence updates "
    "into the flexibility column"
)
REFUSED_KEPT = 64  # unusable maps remembered by (structure, map, weights): a rerun reads none again


def _chose_map_upload() -> None:
    st.session_state["map_choice"] = "upload"
    ui.forget_file("map_upload")  # a new file, or the box cleared


def map_input() -> tuple[str, bytes] | None:
    """Sidebar, under the structure's upload: a map for it. Returns (file name, bytes) or None.

    The example with a map brings its own; a map uploaded after it was opened replaces it, and
    an uploaded map goes with any other structure (a map of another crystal gets the reader's
    message, and the page shows the structure without it).
    """
    cap = server_config.load().max_map_mb
    # 0 lifts the map cap; the upload box then has Streamlit's own (server.maxUploadSize).
    limit = f"up to {cap:,} MB" if cap else "up to this server's upload limit"
    upload = st.sidebar.file_uploader(
        "…and its map (optional)",
        key="map_upload",
        on_change=_chose_map_upload,
        max_upload_size=cap or None,
        help="MTZ with map coefficients (2FOFCWT/PH2FOFCWT or FWT/PHWT, and the difference map "
        "FOFCWT or DELFWT) or with observed data only (F/SIGF or I/SIGI: the maps are computed "
        f"from your model), or a CCP4/MRC map (.ccp4, .map, .mrc); .gz too; {limit}. With a "
        "map, flexibility becomes the posterior given the map's evidence.",
    )
    st.sidebar.caption(f"MTZ, CCP4/MRC map, optionally gzipped · {limit}")
    kept = ui.kept_file("map_upload", upload)
    ui.kept_note("map_upload", upload, "map")
    # The example opened last (ui.structure_input's choice), not a file of the same name: an
    # upload called 3k0n_single.pdb.gz is the visitor's own and gets no map of ours.
    example = ui.EXAMPLES.get(st.session_state.get("source"))
    own = example is not None and example.map_file is not None
    if kept is not None and (st.session_state.get("map_choice") == "upload" or not own):
        return kept
    if own:
        return example.map_file, _bundled(example.map_file)
    return None


def _bundled(file: str) -> bytes:
    return resources.files("qfitlatent").joinpath("data", file).read_bytes()


@st.cache_resource(show_spinner=False)
def _refused() -> tuple[OrderedDict, threading.Lock]:
    """(structure, map, weights) whose map could not be used, with the reason: a rerun of the
    page shows the reason again without reading the map again."""
    return OrderedDict(), threading.Lock()


def _pair_key(data: bytes, map_name: str, map_data: bytes, weights) -> tuple:
    return (hashlib.sha1(data).hexdigest(), map_name, hashlib.sha1(map_data).hexdigest(),
            str(weights))  # fmt: skip


def predict(data: bytes, name: str, weights, map_source, **settings):
    """(result, None) with the map; (result without it, the reason) where the map cannot be
    used: a broken map never costs the visitor the structure's prediction. `settings` are
    ui.predict_cached's; structure and model errors are raised as they are without a map."""
    if map_source is None:
        return ui.predict_cached(data, name, weights, **settings), None
    map_name, map_data = map_source
    refused, lock = _refused()
    key = _pair_key(data, map_name, map_data, weights)
    with lock:
        why = refused.get(key)
    if why is None:
        try:
            result = ui.predict_cached(
                data, name, weights, map_data=map_data, map_name=map_name, **settings
            )
            return result, None
        except (MapError, CheckpointError) as err:  # MapError before StructureError: it is one
            # A CheckpointError here may be the map's alone (weights without a flexibility
            # head have nothing for a map to refine); if the weights are broken, the
            # prediction without the map below raises it again and the page says so.
            why = str(err)
        except StructureError:
            raise  # the structure: the page says so as without a map
        except Exception as err:  # ours, not the visitor's: logged, and the page goes on
            logging.getLogger("qfitlatent.app").exception("map failed", exc_info=err)
            why = f"{map_name}: the map could not be used ({type(err).__name__}: {err})"
        with lock:
            refused[key] = why
            while len(refused) > REFUSED_KEPT:
                refused.popitem(last=False)
    return ui.predict_cached(data, name, weights, **settings), why


def map_key(map_source, refused: str | None) -> str | None:
    """The map's part of the page's figure key: its hash where the prediction used it."""
    if map_source is None or refused is not None:
        return None
    return hashlib.sha1(map_source[1]).hexdigest()


def map_status(pred, map_name: str | None, why: str | None) -> None:
    """The map's line under the structure's: what was read and what it speaks for, or why the
    page shows the model alone."""
    if why is not None:
        st.warning(
            f"**The map cannot be used; everything below is from the model alone.** {why}",
            icon="⚠️",
        )
        return
    maps = getattr(pred, "maps", None)
    evidence = getattr(pred, "evidence", None)
    if maps is None or evidence is None:
        return
    scanned = int(evidence.scanned.sum())
    diff = "" if maps.fofc is not None else " (no difference map in this file)"
    st.markdown(
        f"**Map** {map_name}: {maps.source}{diff} · it speaks for **{scanned:,}** of "
        f"{len(evidence.scans):,} residues (call from map); the rest are the network's calls"
    )


def residue_map_text(row: dict, scan) -> str | None:
    """One line on what the map says about a residue: where its call comes from, the network's
    value before the map, and the highest difference (else 2mFo-DFc) peak at γ ≥ 30° from the
    modelled χ1 with its χ1. None without a map. `scan`: the residue's RingerScan or None."""
    from .density.grid import FOFC, TWO_FOFC
    from .density.ringer import second_peak

    if "call_from" not in row:
        return None
    if row["call_from"] != "map" or scan is None:
        return ("**Map**: it cannot speak for this side chain (no χ1 to scan, a truncated side "
                "chain, or outside the map): flexibility is the network's")  # fmt: skip
    label = FOFC if FOFC in scan.gamma else TWO_FOFC
    height, chi1 = second_peak(scan.gamma[label], scan.chi1, scan.modelled_chi1)
    wrap = (chi1 + 180.0) % 360.0 - 180.0
    return (
        f"**Map** (call from map): network {row['p_flexible_network']:.2f} → "
        f"{row['flexibility']:.2f} with the map · {label} at γ away from the modelled χ1 "
        f"({scan.modelled_chi1:.0f}°): highest {height:+.1f}σ at χ1 {wrap:.0f}°"
    )


def residue_map_line(pred, row: dict) -> None:
    """residue_map_text of the selected residue, under its numbers; nothing without a map."""
    evidence = getattr(pred, "evidence", None)
    scan = evidence.scans[row["index"]] if evidence is not None else None
    text = residue_map_text(row, scan)
    if text:
        st.markdown(text)


def mesh_toggle(pred) -> bool:
    """Sidebar (Display): whether the viewer draws the map; False, and no toggle, without one."""
    if getattr(pred, "maps", None) is None:
        return False
    return st.sidebar.toggle(
        "show the map around the residue",
        True,
        key="map_mesh",
        help=f"2mFo-DFc at {density_mesh.TWO_FOFC_LEVEL:g}σ (blue mesh) and the difference map "
        f"at ±{density_mesh.FOFC_LEVEL:g}σ (green +, red −), in a "
        f"{2 * density_mesh.BOX_HALF_A:g} Å box around the selected residue",
    )


@st.cache_data(show_spinner=False, max_entries=64)
def residue_meshes(key: str, i: int, _pred) -> list[dict]:
    """density_mesh.residue_meshes of residue i, cached per (result key, residue)."""
    from .density.residue_evidence import modelled_atoms

    rec = _pred.parsed.residues[i]
    return density_mesh.residue_meshes(_pred.maps, modelled_atoms(rec) if rec.conformers else {})


def add_meshes(view, legend: list, key: str, i: int, pred) -> None:
    """The map's meshes around residue i on the view, and their legend chips."""
    items = residue_meshes(key, i, pred)
    density_mesh.add_meshes(view, items)
    legend += [(m["name"], m["colour"]) for m in items]


def table_columns(rows: list[dict]) -> tuple[list[dict], list[Column]]:
    """The map's columns of the flexibility table: ([per row {name: value}], their columns);
    none without a map."""
    if not rows or "call_from" not in rows[0]:
        return [{} for _ in rows], []
    values = [
        {"call from": r["call_from"], "network p_flexible": r["p_flexible_network"]} for r in rows
    ]
    columns = [Column("call from", "text", help=CALL_FROM_HELP),
               Column("network p_flexible", help=NETWORK_HELP)]  # fmt: skip
    return values, columns
