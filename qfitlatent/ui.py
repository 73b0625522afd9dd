"""Streamlit glue for the predict page: cached model and predictions, structure input, viewer,
errors. With ui_map.py (the map) and ui_train.py (the Train page), the only modules that import
streamlit. Science lives elsewhere (predict, display and viz, train). This file decides what is
cached, what a visitor sees when something goes wrong, and how widgets map onto those functions.
"""

import math
import os
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import streamlit as st

from . import display, server_config
from .checkpoint import default_weights as shipped_weights
from .checkpoint import weights_label
from .errors import CheckpointError, OutputError, StructureError
from .prediction_cache import (
    Cancelled,
    KeptResults,
    PredictionJobs,
    PredictionQueue,
)
from .progress import ticker
from .train import jobs
from .viz import summary, table, viewer

WEIGHTS_ENV = "QFITLATENT_WEIGHTS"  # overrides the shipped weights (tests, private models)


@dataclass(frozen=True)
class Example:
    file: str  # in qfitlatent/data (provenance in its README.md)
    button: str
    title: str
    seen: bool  # in the shipped model's training split
    note: str  # what a first-time user should know about it
    map_file: str | None = None  # its density map, in qfitlatent/data too (ui_map opens it)


EXAMPLES = {
    "example": Example(
        "3k0n_qfit.pdb.gz",
        "Example: cyclophilin A (3K0N) · seen in training",
        "Cyclophilin A (PDB 3K0N), qFit multiconformer model, 163 residues, 43 with side-chain "
        "altlocs",
        True,
        "3K0N is a **training structure**: the shipped model has seen its altlocs, so its "
        "agreement here is memory as much as skill.",
    ),
    "example_unseen": Example(
        "1atg.pdb.gz",
        "Example: 1ATG binding protein · never seen",
        "Periplasmic binding protein (PDB 1ATG), 231 residues, 8 with side-chain altlocs",
        False,
        "1ATG is **held out of every training run** with its 90%-identity cluster: this is the "
        "model on a protein it has not seen.",
    ),
    "example_map": Example(
        "3k0n_single.pdb.gz",
        "Example with its map: 3K0N, one conformer",
        "Cyclophilin A (PDB 3K0N) reduced to one conformer per residue, with the σA-weighted "
        "2mFo-DFc and mFo-DFc maps servalcat computed from its data: what a crystallographer "
        "has before building altlocs",
        True,
        "3K0N is a **training structure** (the network's prior has seen its altlocs; the map "
        "has not been used in training). This is the deposited model reduced to one conformer: "
        "the map shows where the minor conformers were.",
        map_file="3k0n_maps.mtz.gz",
    ),
}
EXAMPLE_FILE = EXAMPLES["example"].file
EXAMPLE_TITLE = EXAMPLES["example"].title
# Named after the file, so the label follows the weights that actually ship.
SHIPPED = f"{shipped_weights().stem.replace('-', ' ')} (shipped weights)"


# Widgets whose values outlive a visit to the other page: Streamlit forgets the state of a widget
# that a run does not draw, so coming back from Train reset every setting, toggle and the residue
# (and settings that change the prediction then computed another one). Not buttons or uploaders
# (their state cannot be set; kept_file keeps an upload), nor components: a component's state
# gone is how _held knows its iframe is new.
KEPT_WIDGETS = ("weights", "samples", "temperature", "seed", "threshold", "max_conformers",
                "input_altlocs", "top_n", "flex_colour", "observed", "whole", "map_mesh",
                "data_kind", "init", "folder", "run_name", "epochs", "lr", "freeze", "extra",
                "detail")  # fmt: skip
KEPT_PREFIXES = ("residue:", "chains:")  # per result


def keep_widgets() -> None:
    """Keep the KEPT_WIDGETS' values through runs that do not draw them (Streamlit's own
    recipe: a value set by the script is the script's, not the widget's, and stays)."""
    state = st.session_state
    for key in list(state.keys()):
        if key in KEPT_WIDGETS or key.startswith(KEPT_PREFIXES):
            state[key] = state[key]


def kept_file(key: str, upload) -> tuple[str, bytes] | None:
    """(name, bytes) of the file in uploader `key`, kept beyond the uploader: Streamlit forgets
    an uploader's file on a page that does not draw it, so a visitor back from Train found their
    structure gone. The uploader's on_change calls forget_file (a new file, or the box
    cleared)."""
    state = st.session_state
    kept = state.get(f"{key}:kept")
    if upload is not None and (kept is None or kept[0] != upload.file_id):
        kept = state[f"{key}:kept"] = (upload.file_id, upload.name, upload.getvalue())
    return kept[1:] if kept else None


def forget_file(key: str) -> None:
    st.session_state.pop(f"{key}:kept", None)


def kept_note(key: str, upload, what: str) -> None:
    """Under an uploader whose box is empty while its file is kept (after the Train page): say
    which file is in use, and offer to drop it."""
    kept = st.session_state.get(f"{key}:kept")
    if upload is None and kept is not None:
        st.sidebar.caption(f"In use: your {what} **{kept[1]}** (uploaded before).")
        st.sidebar.button(f"Remove this {what}", key=f"{key}:forget", on_click=forget_file,
                          args=(key,), icon=":material/close:")  # fmt: skip


def page_setup(title: str) -> None:
    st.set_page_config(page_title=f"qfitlatent · {title}", page_icon="🧬", layout="wide")
    keep_widgets()
    # Tighter top padding: this is a dense scientific page.
    st.markdown(
        "<style>.block-container{padding-top:2.2rem}</style>",
        unsafe_allow_html=True,
    )


def device() -> str:
    """Where predictions run: the GPU when torch sees one, else the CPU (predict's own rule)."""
    from .checkpoint import resolve_device

    return str(resolve_device("auto"))


def device_label(dev: str) -> str:
    if dev == "cuda":
        import torch

        return f"GPU ({torch.cuda.get_device_name(0)})"
    return "CPU"


# --- models ------------------------------------------------------------------------------------


def default_weights() -> Path:
    return Path(os.environ.get(WEIGHTS_ENV) or shipped_weights())


# The owner token lives in a cookie too, so a page reload (a new Streamlit session) still owns the
# runs this browser launched; another browser has another cookie, so ownership never crosses.
OWNER_COOKIE = "qfitlatent_owner"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")  # secrets.token_urlsafe(24)


def session_token() -> str:
    """This browser's secret: it owns the runs launched from it. Read from the browser's cookie
    when it has one (remember_browser sets it), else made for this session."""
    import secrets

    if "owner_token" not in st.session_state:
        cookie = (st.context.cookies or {}).get(OWNER_COOKIE, "")
        st.session_state.owner_token = (
            cookie if _TOKEN.fullmatch(cookie) else secrets.token_urlsafe(24)
        )
    return st.session_state.owner_token


def remember_browser() -> None:
    """Store this session's token in a browser cookie (a year, this site only, never sent to
    another) unless the browser sent it already. A script in the page, since Streamlit sets no
    cookies itself."""
    token = session_token()
    if (st.context.cookies or {}).get(OWNER_COOKIE) == token:
        return
    st.html(
        f"<script>document.cookie = '{OWNER_COOKIE}={token}; path=/; max-age=31536000; "
        "SameSite=Strict' + (location.protocol === 'https:' ? '; Secure' : '');</script>",
        unsafe_allow_javascript=True,
    )


def weights_options() -> dict[str, Path]:
    """{label: checkpoint} for the model choice: shipped weights, then the finished fine-tunes
    this visitor may use (public ones and their own)."""
    options = {}
    if default_weights().is_file():
        options[SHIPPED] = default_weights()
    for name, path in jobs.finished_checkpoints(token=session_token()).items():
        options[f"fine-tune: {name}"] = path
    return options


@st.cache_resource(show_spinner=False, max_entries=4)
def _load_model(path: str, mtime: float, dev: str):
    """(model, info), loaded once per server for each (file, version on disk, device)."""
    from .checkpoint import load_model

    return load_model(path, dev)


# --- predictions -------------------------------------------------------------------------------


@dataclass
class Result:
    """A prediction plus everything the page draws or offers for download, computed once."""

    pred: object  # predict.Prediction
    viewer_pdb: object  # viewer.PdbIndex of the input re-written by gemmi (never the raw upload)
    downloads: dict[str, bytes]  # file name -> bytes: predict.outputs
    # The chain profile figures' JSON, by the chains shown, built on first use (profile_json).
    profiles: dict = field(default_factory=dict)
    chain_stats: list | None = None  # display.chain_flexibility, on first use (profile_chains)


@st.cache_resource(show_spinner=False)
def _results() -> KeptResults:
    """The server's kept predictions, bounded by bytes (server_config `max_kept_mb`). A
    resource rather than st.cache_data: a kept value is then handed out as is (st.cache_data
    unpickles a copy on every rerun, which costs seconds per residue click on a structure of
    thousands of residues). Running predictions are `_jobs`', not kept here until done."""
    return KeptResults()


@st.cache_resource(show_spinner=False)
def _queue() -> PredictionQueue:
    """Every visitor's predictions share this one queue (server_config
    `max_running_predictions` at once)."""
    return PredictionQueue()


@st.cache_resource(show_spinner=False)
def _jobs() -> PredictionJobs:
    """The server's running predictions, each in a thread of its own, so a rerun of the page
    (any widget touched) follows the running one on instead of starting it again."""
    return PredictionJobs(_results(), _queue())


# predict's steps fill the bar up to here; writing the files and the viewer's index follow.
PREDICT_SHARE = 0.85


def _compute(data, name, weights: Path, dev: str, progress, split: dict, **settings) -> Result:
    from . import predict
    from .ensemble.multiconf import SplitOptions

    say = progress or (lambda fraction, text: None)

    def step(fraction: float, text: str) -> None:
        if fraction < 1.0:  # predict's last step says "Done"; the files and the page come after
            say(PREDICT_SHARE * fraction, text)

    model, _ = _load_model(str(weights), weights.stat().st_mtime, dev)
    pred = predict.predict(model, data, name=name, device=dev, progress=step,
                           options=SplitOptions(**split), **settings)  # fmt: skip
    writing = "Writing the multiconformer model, the ensemble and the tables"
    say(PREDICT_SHARE, writing)
    files = ticker(progress, PREDICT_SHARE, 0.95, writing, "files")
    try:
        downloads = predict.outputs(pred, weights_label(weights), files)  # what `predict` writes
    except Exception as err:
        raise OutputError(f"the prediction ran, but its files could not be made "
                          f"({type(err).__name__}: {err})") from err  # fmt: skip
    say(0.95, "Preparing the 3D viewer")
    return Result(pred, viewer.viewer_index(pred.parsed.structure), downloads)


APPLY = "Apply: recompute the prediction"
APPLY_NOTE = (
    "Model, sampling and multiconformer settings change the prediction: they take effect with "
    "**Apply**, which predicts again (seconds; minutes for thousands of residues; kept ones "
    "come back at once). Display settings below apply at once."
)
MIME = {".pdb": "chemical/x-pdb", ".cif": "chemical/x-mmcif", ".csv": "text/csv",
        ".json": "application/json"}  # fmt: skip
POLL_S = 0.25  # how often a page looks at the prediction it follows


def predict_cached(
    data: bytes,
    name: str,
    weights: Path,
    *,
    n_samples: int,
    seed: int,
    temperature: float,
    threshold: float | None = None,
    max_conformers: int | None = None,
    input_altlocs: str = "keep",
    map_data: bytes | None = None,
    map_name: str | None = None,
    progress=None,
) -> Result:
    """Prediction for (file bytes, model file and its mtime, settings, device, map bytes), kept
    across reruns and visitors. The multiconformer settings default to `multiconf.SplitOptions`'s.
    It runs in a thread of its own (`_jobs`): a rerun of the page follows the same job on, and
    `progress(fraction, text)` hears where it is. Raises StructureError for unusable input
    (MapError, one, for an unusable map: `ui_map.predict` handles that)."""
    import hashlib

    settings = dict(n_samples=int(n_samples), seed=int(seed), temperature=float(temperature))
    if map_data is not None:  # the map's bytes are in the key through their hash
        settings.update(map_file=bytes(map_data), map_name=map_name or "upload.map")
    split = {"input_altlocs": input_altlocs}
    if threshold is not None:
        split["threshold"] = float(threshold)
    if max_conformers is not None:
        split["max_conformers"] = int(max_conformers)
    dev = device()
    kept_settings = {k: v for k, v in settings.items() if k != "map_file"}
    map_hash = hashlib.sha1(map_data).hexdigest() if map_data is not None else None
    key = (hashlib.sha1(data).hexdigest(), name, str(weights), weights.stat().st_mtime, dev,
           map_hash, *sorted(kept_settings.items()), *sorted(split.items()))  # fmt: skip

    def queued(ahead: int, limit: int) -> str:
        return (f"Queued: {ahead} prediction(s) ahead of yours on this server, which runs "
                f"{limit} at a time; yours starts when a place is free")  # fmt: skip

    while True:
        kept, job = _jobs().find(key)
        if kept is not None:
            _left_behind(None)
            return kept
        if job is None:
            job = _jobs().start(
                key,
                lambda report: _compute(data, name, weights, dev, report, split, **settings),
                limit=lambda: server_config.load().max_running_predictions,
                budget=lambda: server_config.load().max_kept_mb * 2**20,
                queued=queued,
            )
        _left_behind(job)
        try:
            return follow(job, progress)
        except Cancelled:  # it stopped, unfollowed, just as this page came back to it
            continue


def follow(job, progress=None):
    """Wait for `job`, telling `progress` where it is on each poll, and return its value (or
    raise its error). Each poll sends the bar to the browser, which is also where Streamlit
    stops this script run when the visitor touches a widget; the job runs on, and the next
    run follows it again."""
    while not job.done.wait(POLL_S):
        job.follow()
        if progress is not None:
            progress(job.fraction, job.text)
    if job.error is not None:
        raise job.error
    return job.result


def _left_behind(job) -> None:
    """Say so when this visitor leaves a running prediction for another (other settings or
    another file): it stops unless chosen again soon. Remembers the job this session follows
    (None: a kept prediction)."""
    # A weak reference: a session holding the job would hold its result past `max_kept_mb`.
    before = (st.session_state.get("following") or (lambda: None))()
    st.session_state["following"] = None if job is None else weakref.ref(job)
    if before is not None and before is not job and not before.done.is_set():
        again = "choose its file and settings again"
        left = (
            f"stops unless you {again} within {before.grace:.0f} s"
            if before.grace
            else f"runs on to its end: {again} to see it"
        )
        st.toast(
            f"The prediction you started before (at {before.fraction:.0%}: {before.text}) {left}.",
            icon="⏸️",
        )


def result_key(data: bytes, weights_choice: str, **settings) -> str:
    """A short id of (file, model, settings): keys widgets and the per-residue figure cache."""
    import hashlib

    text = f"{hashlib.sha1(data).hexdigest()}|{weights_choice}|{sorted(settings.items())}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


PROFILE_CHAINS = 10  # a structure of more chains shows these many, the user picks which
PROFILES_KEPT = 8  # profile figures kept per result (each a choice of chains)


def figure_json(figure) -> str:
    """A plotly figure as the JSON text show_figures sends: not validated again (the viz
    functions built it from validated traces), numpy arrays as packed binary."""
    import plotly.io as pio

    return pio.to_json(figure, validate=False)


def profile_json(result: Result, chains: list[str] | None = None) -> str:
    """The chain profile of a result (all chains, or `chains`) as figure JSON, built once per
    choice of chains: it does not mark the selected residue, so it stays the same while the
    user moves between residues and the browser does not draw it again (thousands of bars
    across many chains take seconds to draw on 2 cores)."""
    key = None if chains is None else tuple(chains)
    if key not in result.profiles:
        while len(result.profiles) >= PROFILES_KEPT:
            result.profiles.pop(next(iter(result.profiles)))
        result.profiles[key] = figure_json(display.profile_figure(result.pred, chains=chains))
    return result.profiles[key]


def profile_section(result: Result, tag: str) -> None:
    """The profile: every chain's track, or, beyond PROFILE_CHAINS chains, a row per chain and
    the tracks of the chains the user picks (first the ten most flexible). A click on a bar is
    read by profile_pick."""
    chains = profile_chains(result, tag)
    st.markdown(
        "**Flexibility along each chain** · click a bar to show that residue"
        if chains is None
        else f"**Flexibility along the {len(chains)} chosen chain(s)** · click a bar to show "
        "that residue"
    )
    st.caption(display.profile_caption(result.pred))
    if chains == []:
        st.info("No chain chosen: pick one or more above to draw their tracks.")
        return
    show_figures([("profile", profile_json(result, chains))], key=PROFILE, clickable=True)


def profile_chains(result: Result, tag: str) -> list[str] | None:
    """None for a structure of at most PROFILE_CHAINS chains (every track drawn). Else the
    chains to draw, in file order: the user's choice in a multiselect (first the
    PROFILE_CHAINS with the most expected flexible residues), changed by a click on a chain's
    row of the overview drawn above it."""
    if result.chain_stats is None:  # once per result: the fragment reruns on every residue
        result.chain_stats = display.chain_flexibility(result.pred)
    stats = result.chain_stats
    if len(stats) <= PROFILE_CHAINS:
        return None
    names = [s["chain"] for s in stats]
    key = f"chains:{tag}"
    if key not in st.session_state:
        st.session_state[key] = display.most_flexible_chains(stats, PROFILE_CHAINS)
    clicked = _new_click(OVERVIEW)
    chain = clicked["customdata"][0] if clicked else None
    if chain in names:
        flip = set(st.session_state[key]) ^ {chain}
        st.session_state[key] = [c for c in names if c in flip]
    shown = st.session_state[key]
    st.markdown(
        f"**{len(names)} chains** · bar: expected flexible residues (Σ flexibility), colour: "
        "mean flexibility · click a chain to show or hide its track below"
    )
    overview = figure_json(display.chain_overview_figure(stats, shown))
    show_figures([("chain-overview", overview)], key=OVERVIEW, clickable=True)
    st.multiselect(
        f"chains in the profile (first: the {PROFILE_CHAINS} with the most expected flexible "
        "residues)",
        names,
        key=key,
    )
    picked = set(st.session_state[key])
    return [c for c in names if c in picked]


@st.cache_resource(show_spinner=False, max_entries=128)
def residue_figures(key: str, i: int, _result: Result) -> list[tuple[str, str]]:
    """display.residue_figures as [(name, figure JSON)] for show_figures, built once per (result
    key, residue): building and writing the plotly figures costs 0.05-0.2 s, so revisiting a
    residue or toggling a display option stays instant. A resource, not st.cache_data: the
    texts are only read, so one shared copy is safe and a hit copies nothing."""
    figures = zip(("circle", "torus"), display.residue_figures(_result.pred, i), strict=True)
    return [(name, figure_json(fig)) for name, fig in figures if fig is not None]


# --- structure input ---------------------------------------------------------------------------


def example_bytes(key: str = "example") -> bytes:
    return resources.files("qfitlatent").joinpath("data", EXAMPLES[key].file).read_bytes()


def example_for(name: str) -> Example | None:
    """The bundled example a file name is, or None for an upload."""
    return next((e for e in EXAMPLES.values() if e.file == name), None)


def _choose(source: str) -> None:
    st.session_state["source"] = source
    if source == "upload":  # a new file, or the box cleared
        forget_file("upload")
    if source in EXAMPLES:  # an example opened after a map upload brings its own map, if any
        st.session_state.pop("map_choice", None)


def structure_input() -> tuple[str, bytes] | None:
    """Sidebar: upload a file or open a bundled example. Returns (file name, bytes) or None.

    The most recent action wins: opening an example after an upload shows the example, and a
    new upload replaces it.
    """
    st.sidebar.caption("Open an example")
    for key, ex in EXAMPLES.items():
        st.sidebar.button(
            ex.button,
            key=key,
            type="primary" if key == "example" else "secondary",
            on_click=_choose,
            args=(key,),
            width="stretch",
            help=ex.title + (" · in the training split" if ex.seen else " · held out of training"),
        )
    max_mb = server_config.load().max_mb  # the reader's limit, as the operator set it
    upload = st.sidebar.file_uploader(
        "…or upload a structure",
        key="upload",
        on_change=_choose,
        args=("upload",),
        help=f"PDB or mmCIF (.pdb, .cif, .ent; .gz too), up to {max_mb} MB uncompressed. "
        "Waters, ligands and hydrogens are ignored; altlocs are kept and shown.",
    )
    st.sidebar.caption(f"PDB or mmCIF, optionally gzipped · up to {max_mb} MB uncompressed")
    kept = kept_file("upload", upload)
    source = st.session_state.get("source")
    if source in EXAMPLES:
        return EXAMPLES[source].file, example_bytes(source)
    kept_note("upload", upload, "structure")
    return kept


class Progress:
    """The progress bar in `slot` (an st.empty), drawn at the first step, so a page that finds
    its prediction kept shows none; called as `progress(fraction, text)` by predict_cached."""

    def __init__(self, slot):
        self.slot, self.bar = slot, None

    def __call__(self, fraction: float, text: str) -> None:
        fraction = min(1.0, max(0.0, fraction))
        if self.bar is None:
            self.bar = self.slot.progress(fraction, text=f"{text}…")
        else:
            self.bar.progress(fraction, text=f"{text}…")

    @property
    def shown(self) -> bool:
        return self.bar is not None


def drawing(progress: Progress, tag: str) -> None:
    """The last step, the page itself: shown after a prediction, and when this session draws a
    result it has not drawn before (a kept one takes seconds to draw on a big structure). The
    bar stays until the end of the script (`finish`): "Done" never shows early."""
    if progress.shown or st.session_state.get("drawn") != tag:
        progress(1.0, "Drawing the page")
    st.session_state["drawn"] = tag
    st.session_state["plots:drawn"] = 0  # the plots components this run shows (show_figures)


# Hides the note once the browser has drawn the page: each plots component (profile, χ figures)
# and the viewer component has drawn in its iframe (viz/*_component count their draws). The
# script's end is not that: a page of 1,486 residues then stayed blank for 9 s in the browser.
# The components draw inside their iframes, which no mutation of this document reports, so this
# polls (5 times a second, for 10 minutes at most). PLOTS is how many plots components the run
# showed: an iframe the browser has not made yet is not in the page, so "all drawn" over the
# iframes there could hide the note before the χ figures were drawn.
_DRAWN_JS = """(() => {
  const drew = (kind, count) => [...document.querySelectorAll(`iframe[title$="${kind}"]`)]
    .map(f => { try { return f.contentWindow[count] || 0; } catch (e) { return 0; } });
  const drawn = () => { const plots = drew('qfitlatent_plots', 'qfitPlotRenders');
    return plots.length >= PLOTS && plots.every(n => n > 0)
      && drew('qfitlatent_viewer', 'qfitRenders').some(n => n > 0); };
  const hide = () => { if (!drawn()) return false;
    const note = document.getElementById('NOTE'); if (note) note.style.display = 'none';
    return true; };
  let left = 3000;
  const poll = setInterval(() => { if (hide() || --left <= 0) clearInterval(poll); }, 200);
})();"""


def finish(progress: Progress) -> None:
    """End of the script: the bar goes. Where it showed, a "Drawing the page…" line takes its
    place until the browser has drawn the page (it receives everything at the script's end and
    then draws for seconds on a big structure)."""
    if not progress.shown:
        progress.slot.empty()
        return
    import secrets

    note = f"qfit-drawing-{secrets.token_hex(4)}"
    plots = max(1, st.session_state.get("plots:drawn", 1))
    progress.slot.html(
        f'<div id="{note}" class="qfit-drawing" style="font-size:14px">Drawing the page…</div>'
        f"<script>{_DRAWN_JS.replace('NOTE', note).replace('PLOTS', str(plots))}</script>",
        unsafe_allow_javascript=True,
    )


def warnings_box(warnings: list[str]) -> None:
    """Everything the reader dropped or skipped, in one collapsed box (none: nothing shown)."""
    if warnings:
        with st.expander(f"⚠️ {len(warnings)} note(s) on reading this structure"):
            st.markdown("\n".join(f"- {w}" for w in warnings))


def new_pick(key: str, value) -> bool:
    """True once per new value of a selection widget (a table row, a profile point), so only a
    fresh click moves the residue box and an unchanged selection leaves the user's choice."""
    if value is None or value == st.session_state.get(f"picked:{key}"):
        return False
    st.session_state[f"picked:{key}"] = value
    return True


PROFILE, OVERVIEW = "profile", "chain-overview"  # the keys of their plots components


def _new_click(key: str) -> dict | None:
    """The value of the component `key` (a plots or the table component) once per click on it:
    its value counts the clicks within the iframe's life (`view`), so the same bar twice is two
    picks; None otherwise (no click, or a value that asks for data: no "click")."""
    value = st.session_state.get(key)
    if not value or "click" not in value:
        return None
    return value if new_pick(key, (value.get("view"), value.get("click"))) else None


def profile_pick() -> int | None:
    """The residue index (customdata[0]) of a bar clicked on the profile since the last run,
    or None."""
    value = _new_click(PROFILE)
    return int(value["customdata"][0]) if value else None


def error_box(err: Exception, log: bool = False) -> None:
    """A plain-language error, never a traceback on the page. `log` also writes the traceback
    to the server log, for errors that are ours rather than the file's."""
    if isinstance(err, StructureError):
        st.error(f"**This file cannot be used.** {err}", icon="⚠️")
    elif isinstance(err, OutputError):
        st.error(f"**The results could not be written.** {err}. The fault is in qfitlatent "
                 "rather than in your file; please report it with the file attached.",
                 icon="⚠️")  # fmt: skip
    elif isinstance(err, CheckpointError):
        st.error(f"**The model weights cannot be loaded** (the structure is not the problem; "
                 f"choose other weights or ask the operator). {err}", icon="⚠️")  # fmt: skip
    else:
        st.error(f"**Something went wrong with this file** ({type(err).__name__}: {err}). "
                 "Please report it with the file attached.", icon="⚠️")  # fmt: skip
    if log:
        import logging

        logging.getLogger("qfitlatent.app").exception("prediction failed", exc_info=err)


# --- residue and table widgets ------------------------------------------------------------------


def residue_summary(pred, row: dict) -> None:
    """Key numbers of the selected residue, χ of its input conformers, and what the
    multiconformer model did with it (written and rejected alternatives): one st.html
    (viz/summary.py)."""
    p_flex = row["p_flexible"]
    metrics = [
        ("flexibility", f"{row['flexibility']:.2f}",
         "Does the crystal show a second conformer? Probability of ≥ 2 side-chain conformers: "
         "p_flexible"
         + (" given the network and the map" if row.get("call_from") == "map" else
            " (the network's)" if isinstance(p_flex, float) and not math.isnan(p_flex) else
            " (these weights have none: mixture weight off the dominant rotamer)")),
        ("entropy / χ", f"{row['entropy_per_chi']:.2f}",
         f"How much does this side chain move? {row['entropy']:.2f} nats over {row['n_chi']} χ; "
         "entropy grows with the χ count"),
        ("χ1 spread", f"{row['chi1_spread_deg']:.0f}°",
         "How much does this side chain move? Circular SD of the χ1 marginal"),
        ("altlocs", str(row["n_obs"]), "side-chain conformers modelled in the input file"),
    ]  # fmt: skip
    n_chi, i = row["n_chi"], row["index"]

    def chis(chi, mask) -> dict:
        return {f"χ{d + 1}": round(math.degrees(float(chi[d])), 1) for d in range(n_chi) if mask[d]}

    observed = [
        {"input": c["altloc"] or "–", "occ": round(c["occ"], 2), **chis(c["chi"], c["mask"])}
        for c in display.observed_altlocs(pred, i)
    ]
    parts = [
        summary.STYLE,
        summary.metrics_html(metrics),
        summary.table_html(observed, "Input side-chain conformers (χ in degrees)"),
    ]
    report = [r for r in pred.multiconformer.rows if r["index"] == i]
    if report:
        shown = [{"altloc": r["altloc"] or "–", "occ": r["occupancy"], "mass": r["mass"],
                  **{f"χ{d + 1}": r[f"chi{d + 1}"] for d in range(n_chi)},
                  "source": r["source"], "status": r["status"], "overlap (Å)": r["overlap"],
                  "partner": r["partner"], "note": r["note"]} for r in report]  # fmt: skip
        parts.append(summary.table_html(
            shown, "In multiconformer.pdb (the report's rows for this residue)"))  # fmt: skip
    else:
        t = pred.multiconformer.options.threshold
        chi, mass = pred.selection.conformers(i)
        m = pred.multiconformer.options.max_conformers
        proposed = [{"proposed": k + 1, "mass": round(float(o), 2), **chis(c, [True] * n_chi)}
                    for k, (c, o) in enumerate(zip(chi[:m], mass[:m], strict=True))]  # fmt: skip
        parts.append(summary.table_html(
            proposed, f"Not split in multiconformer.pdb (flexibility below {t:g}, or kept as "
            "observed). The selector's conformers, with their mixture mass:"))  # fmt: skip
    st.html("".join(parts))


def split_summary(pred) -> str:
    """One line: residues split next to the expected number of flexible residues."""
    m = pred.multiconformer
    return (
        f"**multiconformer.pdb**: {m.n_split} residues split "
        f"(expected flexible: Σ flexibility = {m.expected_flexible:.1f}; "
        f"{m.n_above_threshold} at or above the threshold {m.options.threshold:g}; "
        f"{sum(r['status'] == 'rejected: clash' for r in m.rows)} alternatives rejected for "
        f"clashes; {m.n_observed_kept} residues keep the input's altlocs)"
    )


@st.cache_resource(show_spinner=False, max_entries=16)
def _table_payload(key: str, _rows, _labels, _extra) -> dict:
    """viz.table.payload, made once per result `key` (fig_key), not on every residue change:
    50,000 rows took 0.7 s to make and hash (3.1 MB of JSON; 2 shared cores). The extra columns
    are made here too, on a miss only."""
    return table.payload(_rows, _labels, _extra(_rows) if _extra else None)


def flexibility_table(
    rows: list[dict],
    labels: list[str],
    key: str,
    shown: int,
    result_key: str,
    extra: Callable[[list[dict]], tuple[list[dict], list]] | None = None,
) -> None:
    """The sortable per-residue table (viz/table_component), with row `shown` (a position in
    `rows`) highlighted; a click on a row is the component's value (read it with table_pick).
    `extra(rows)`: ([per row {column: value}], [viz.table.Column]) after flexibility (the map's:
    ui_map.table_columns). The rows go only to an iframe that does not hold them."""
    body = _table_payload(result_key, rows, labels, extra)
    send = _held(key) != body["hash"]
    st.session_state[f"{key}:held"] = body["hash"]
    _table_component()(
        columns=body["columns"] if send else None,
        rows=body["rows"] if send else None,
        hash=body["hash"],
        selected=shown,
        height=TABLE_HEIGHT,
        key=key,
        default=None,
    )


def table_pick(key: str) -> int | None:
    """The position (in the rows sent) of a row clicked in the table `key` since the last run,
    or None."""
    value = _new_click(key)
    return int(value["row"]) if value else None


def downloads(result: Result) -> None:
    """The files `qfitlatent predict` writes, from the same functions, four to a row."""
    items = list(result.downloads.items())
    cols = [c for _ in range(0, len(items), 4) for c in st.columns(4)]
    for col, (fname, data) in zip(cols, items, strict=False):
        col.download_button(
            fname,
            data,
            file_name=fname,
            mime=MIME[Path(fname).suffix],
            key=f"dl-{fname}",
            on_click="ignore",
            icon=":material/download:",
            width="stretch",
        )


# --- viewer ------------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def _viewer_component():
    """The viewer component (viz/viewer_component: an index.html and its script, no build step),
    declared once per server."""
    import streamlit.components.v1 as components

    path = resources.files("qfitlatent.viz").joinpath("viewer_component")
    return components.declare_component("qfitlatent_viewer", path=str(path))


PLOTLY_JS = "/app/static/plotly.min.js"  # plotly.js 4.1.1 (plotly 7.1's), served with the app


@st.cache_resource(show_spinner=False)
def _plots_component():
    """The plots component (viz/plots_component: an index.html and its script, no build step),
    declared once per server."""
    import streamlit.components.v1 as components

    path = resources.files("qfitlatent.viz").joinpath("plots_component")
    return components.declare_component("qfitlatent_plots", path=str(path))


TABLE_HEIGHT = 320  # px: the flexibility table's frame; its rows scroll inside


@st.cache_resource(show_spinner=False)
def _table_component():
    """The table component (viz/table_component: an index.html and its script, no build step),
    declared once per server."""
    import streamlit.components.v1 as components

    path = resources.files("qfitlatent.viz").joinpath("table_component")
    return components.declare_component("qfitlatent_table", path=str(path))


def show_figures(figures: list[tuple[str, str]], key: str, clickable: bool = False):
    """Draw plotly figures ([(name, figure JSON)]) in the plots component `key`: its iframe and
    plotly.js stay across reruns, a changed figure is one Plotly.react into its div and an
    unchanged one is not drawn. With `clickable`, a click on a point is its value
    ({figure, customdata, click, view}; read it with _new_click)."""
    st.session_state["plots:drawn"] = st.session_state.get("plots:drawn", 0) + 1
    return _plots_component()(figures=figures, js_url=PLOTLY_JS, clickable=clickable, key=key,
                              default=None)  # fmt: skip


def _held(key: str) -> str | None:
    """The hash of the data the iframe of component `key` holds, as far as the server knows
    (the caller sets f"{key}:held" to what it sends). None for an iframe that holds none: a new
    one on a reload (a new session), after a page without the component (Streamlit then forgets
    its state, so `key` is not in session_state), and one whose value names a request not
    answered yet ({"ask": ...}: any other rebuild)."""
    state = st.session_state
    ask = (state.get(key) or {}).get("ask")
    if key not in state or ask != state.get(f"{key}:answered"):
        state[f"{key}:held"], state[f"{key}:answered"] = None, ask
    return state.get(f"{key}:held")


def show_view(scene: viewer.Scene, structure: str, focus: tuple[str, int, str]) -> None:
    """Draw a viewer scene in the page's one 3D viewer. Its iframe, 3Dmol.js and WebGL context
    stay across reruns (a constant key): a new residue only sends the new scene, and the user's
    rotation is kept while `structure` (the result's key) stays the same.

    The structure's text goes only to an iframe that does not hold it (_held: not after the
    Train page or a prediction's progress, which have no viewer, nor when the iframe asks)."""
    message = scene.message(structure, focus, held=_held("viewer"))
    st.session_state["viewer:held"] = message["base_hash"]
    _viewer_component()(**message, key="viewer", default=None)
