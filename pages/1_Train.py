"""Fine-tune qfitlatent on your own multiconformer structures: launch, watch live, stop, list.

A run belongs to the browser that launched it (a cookie, so a reload keeps it): only that browser
stops or deletes it, and its model is that browser's alone unless an operator publishes it
(docs/deploy.md).
"""

import time
from pathlib import Path

import streamlit as st

from qfitlatent import data_roots, server_config, settings_check, ui, ui_train

ui.page_setup("fine-tune")
ui.remember_browser()  # a reload keeps this browser's runs its own
st.title("Fine-tune on your multiconformer structures")
config = server_config.load()
st.caption(
    "Runs in the background on this server, one at a time; closing the page does not stop it. "
    "A finished run's best.pt appears in your model choice on the main page."
    + ui_train.run_limits_note(config)
)

active = ui_train.active_run()
if active is not None:
    st.subheader(f"Running: {active.name}")

    @st.fragment(run_every=2.0)
    def live(name: str) -> None:
        job = ui_train.load_run(name)
        mine = ui_train.owns(job)
        ui_train.job_report(job, key="live", show_log=mine or job.public)
        if job.active and not job.stop_requested and mine:
            if st.button(
                "Stop this run",
                key="stop",
                icon=":material/stop:",
                help="SIGTERM: the trainer saves last.pt (resumable) and exits",
            ):
                ui_train.stop_run(job)
        elif job.active and not mine:
            st.caption("Started by another visitor: you can watch it, not stop it.")
        elif not job.active:
            st.rerun(scope="app")  # widgets outside the fragment (the form) need the news

    live(active.name)

SCRATCH = "from scratch (random initialisation)"


def start_options() -> dict[str, Path | None]:
    return {**ui.weights_options(), SCRATCH: None}


BUNDLED, UPLOAD, FOLDER = (
    "bundled sample (4 small structures)",
    "upload structures or a .zip",
    "folder on this server",
)
# Server folders only where the operator named allowed roots (off by default).
KINDS = [BUNDLED, UPLOAD] + ([FOLDER] if config.data_roots else [])


def run_overrides(kind: str, extra_text: str) -> list[str]:
    """The `--set` items of a run: the visitor's, and for the bundled sample a validation
    share that holds one of its 4 structures out (unless the visitor set one)."""
    extra = extra_text.split()
    if kind == BUNDLED and not any(x.startswith("val_fraction=") for x in extra):
        extra.append(f"val_fraction={ui_train.BUNDLED_VAL_FRACTION}")
    return extra


def automatic_name(kind: str, data) -> str:
    """The run's name when the visitor gives none: what it trains on, from what, how long."""
    if kind == BUNDLED:
        label = "sample"
    elif kind == UPLOAD:  # (file name, bytes) pairs
        label = data[0][0].split(".")[0] if len(data) == 1 else f"{len(data)}-uploads"
    else:
        label = Path(data).name
    weights = start_options()[st.session_state.init]
    if weights is None:
        start = "scratch"
    else:  # a fine-tune's weights are <run>/best.pt: its run names them
        start = weights.parent.name if weights.name == "best.pt" else weights.stem
    if st.session_state.freeze:
        start += "-head"  # only the output head trains
    return ui_train.default_run_name(label, start, int(st.session_state.epochs))


def start() -> None:
    """Form callback: runs before the page is drawn, so it may reset the run-name field."""
    s = st.session_state
    kind = s.data_kind if s.data_kind in KINDS else BUNDLED
    extra = run_overrides(kind, s.extra)
    try:
        if kind == FOLDER:
            data = data_roots.resolve_data_folder(s.get("folder", ""), config.data_roots)
        elif kind == UPLOAD:
            data = [(f.name, f.getvalue()) for f in s.train_upload or []]
        else:
            data = ui_train.bundled_training_data()
        if not data:
            raise ValueError("choose training data: upload files or give a folder")
        settings_check.check_overrides(extra)  # bad keys and values fail here, not later
        ui_train.launch_run(
            s.run_name.strip() or automatic_name(kind, data),
            data=data,
            epochs=int(s.epochs),
            lr=float(s.lr),
            init_from=start_options()[s.init],
            freeze_trunk=s.freeze,
            overrides=extra,
            public=kind == BUNDLED,  # nothing private in the bundled sample
            limits=config,
        )
    except (ValueError, RuntimeError, OSError) as err:
        s.train_error = str(err)
    else:
        s.run_name = ""
        time.sleep(0.3)  # let the supervisor write its pid before the page shows the run


st.subheader("New run")
# Outside the form: a form's widgets rerun nothing until it is submitted, and the inputs below
# depend on this choice (only the chosen source's inputs are shown).
st.radio(
    "Training data",
    KINDS,
    key="data_kind",
    horizontal=True,
    help="the bundled sample trains in about a minute, for trying the page; your own "
    "multiconformer structures (with altlocs) are what make a useful fine-tune",
)
# Outside the form too: what the form says the bundled sample holds out depends on it.
st.selectbox(
    "Start from", list(start_options()), key="init",
    help="the weights training begins from: a model you can already choose on the main "
    "page, or random numbers",
)  # fmt: skip
kind = st.session_state.get("data_kind", BUNDLED)
kind = kind if kind in KINDS else BUNDLED
with st.form("new_run", border=True):
    if kind == BUNDLED:
        try:  # the trainer's split rule, with the settings last submitted (the defaults first)
            init_from = start_options()[st.session_state.init]
            val = ui_train.held_out(
                ui_train.bundled_training_data(),
                init_from,
                run_overrides(kind, st.session_state.get("extra", "")),
            )
            held = ui_train.held_out_note(val, from_model=init_from is not None)
        except (ValueError, OSError):  # bad settings, or the start file just went: Start says
            held = ""
        st.caption(
            "4 small X-ray structures with side-chain altlocs (qfitlatent/data/train_sample); "
            + held
        )
    elif kind == UPLOAD:
        st.file_uploader(
            "Structures (.pdb/.cif, .gz) or a .zip of them",
            accept_multiple_files=True,
            key="train_upload",
            help=ui_train.upload_limits_note(config),
        )
    else:
        st.text_input(
            "Folder on this server",
            key="folder",
            placeholder=str(config.data_roots[0] / "my-structures"),
            help="allowed: folders under "
            + ", ".join(str(r) for r in config.data_roots)
            + "; links to files outside them are skipped",
        )
    c1, c2, c3 = st.columns(3)
    c1.text_input(
        "Run name",
        key="run_name",
        placeholder="automatic: data-start-epochs-time",
        help="the run's folder name; letters, digits, . _ -. Left empty, it names the data, "
        "the start model, the epochs and the time, e.g. sample-qfitlatent-v3-5ep-20261202-1430",
    )
    c2.number_input(
        "Epochs", 1, 1000, 5, key="epochs",
        help="passes over the training structures; best.pt keeps the epoch with the lowest "
        "validation NLL",
    )  # fmt: skip
    c3.number_input(
        "Learning rate", 1e-6, 1e-1, 1e-4, format="%.1e", key="lr",
        help="peak AdamW step size, annealed to a hundredth by the end; lower it to fine-tune "
        "gently from trained weights",
    )  # fmt: skip
    c1.checkbox(
        "Freeze the trunk (train the output head only)", key="freeze",
        help="keeps the structure encoder as it is and retrains only the layers that output "
        "the mixtures: faster, and safer with few structures",
    )  # fmt: skip
    c3.text_input(
        "More settings (KEY=VALUE …)",
        key="extra",
        help="passed to `qfitlatent train --set`, e.g. min_altlocs=1 crop_size=256; a model "
        f"may have at most {config.max_train_parameters:,} parameters here, and from trained "
        "weights only dropout and max_neighbours may change",
    )
    st.form_submit_button(
        "Start training", type="primary", disabled=active is not None, on_click=start
    )
if error := st.session_state.pop("train_error", None):
    st.error(error)


def delete(job) -> None:
    try:
        ui_train.delete_run(job)
    except (ValueError, OSError) as err:  # PermissionError is an OSError
        st.session_state.delete_error = str(err)


st.subheader("Runs")


# While a run is going the table polls with the live panel: drawn once, a running run's duration
# stayed at what it was when the page was drawn ("0 s" right after Start).
@st.fragment(run_every=2.0 if active is not None else None)
def runs() -> None:
    if listed := ui_train.list_runs():
        ui_train.runs_table(listed)
    else:
        st.caption("No runs yet.")


runs()
listed = ui_train.list_runs()
if listed:
    ended = [j for j in listed if not j.active]
    if ended:
        names = [j.name for j in ended]
        # A run that just ended becomes the one shown; otherwise the visitor's choice stays.
        if st.session_state.get("detail_newest") != names[0]:
            st.session_state.detail_newest = st.session_state.detail = names[0]
        if st.session_state.get("detail") not in names:
            st.session_state.detail = names[0]
        shown = st.selectbox("Details of run", names, key="detail")
        job = next(j for j in ended if j.name == shown)
        mine = ui_train.owns(job)
        ui_train.job_report(job, key="detail", show_log=mine or job.public)
        if mine:
            st.button(
                "Delete this run",
                key="delete",
                icon=":material/delete:",
                on_click=delete,
                args=(job,),
                help="removes its folder: checkpoints, log and uploaded structures",
            )
if error := st.session_state.pop("delete_error", None):
    st.error(error)
