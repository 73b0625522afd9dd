"""Fine-tune qfitlatent on your own multiconformer structures: launch, watch live, stop, list."""

import time
from pathlib import Path

import streamlit as st

from qfitlatent import runs, ui

ui.page_setup("fine-tune")
st.title("Fine-tune on your multiconformer structures")
st.caption(
    "Runs in the background on this server, one at a time; closing the page does not stop it. "
    f"Runs are kept in `{runs.runs_root()}`; a finished run's best.pt appears in the main "
    "page's model choice."
)

active = runs.active_job()
if active is not None:
    st.subheader(f"Running: {active.name}")

    @st.fragment(run_every=2.0)
    def live(name: str) -> None:
        job = runs.load_job(runs.runs_root() / name)
        ui.job_report(job, key="live")
        if job.active and not job.stop_requested:
            if st.button(
                "Stop this run",
                key="stop",
                icon=":material/stop:",
                help="SIGTERM: the trainer saves last.pt (resumable) and exits",
            ):
                runs.stop(job)
        else:
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


def start() -> None:
    """Form callback: runs before the page is drawn, so it may reset the run-name field."""
    s = st.session_state
    extra = s.extra.split()
    if s.data_kind == BUNDLED and not any(x.startswith("val_fraction=") for x in extra):
        extra.append("val_fraction=0.25")  # 4 structures: hold one out so there is a val curve
    data = {
        BUNDLED: ui.bundled_training_data(),
        UPLOAD: [(f.name, f.getvalue()) for f in s.train_upload or []],
        FOLDER: Path(s.folder.strip()) if s.folder.strip() else None,
    }[s.data_kind]
    try:
        if not data:
            raise ValueError("choose training data: upload files or give a folder")
        from qfitlatent.train import split_overrides

        split_overrides(extra)  # unknown keys fail here, not in the background
        runs.launch(
            s.run_name,
            data=data,
            epochs=int(s.epochs),
            lr=float(s.lr),
            init_from=start_options()[s.init],
            freeze_trunk=s.freeze,
            overrides=extra,
        )
    except (ValueError, RuntimeError, OSError) as err:
        s.train_error = str(err)
    else:
        s.run_name = runs.default_name()
        time.sleep(0.3)  # let the supervisor write its pid before the page shows the run


st.subheader("New run")
with st.form("new_run", border=True):
    st.radio("Training data", [BUNDLED, UPLOAD, FOLDER], key="data_kind", horizontal=True)
    st.file_uploader(
        "Structures (.pdb/.cif, .gz) or a .zip of them",
        accept_multiple_files=True,
        key="train_upload",
    )
    st.text_input("Folder on this server", key="folder", placeholder="/data/my-structures")
    c1, c2, c3 = st.columns(3)
    st.session_state.setdefault("run_name", runs.default_name())
    c1.text_input("Run name", key="run_name")
    c2.number_input("Epochs", 1, 1000, 5, key="epochs")
    c3.number_input("Learning rate", 1e-6, 1e-1, 1e-4, format="%.1e", key="lr")
    c1.selectbox("Start from", list(start_options()), key="init")
    c2.checkbox("Freeze the trunk (train the output head only)", key="freeze")
    c3.text_input(
        "More settings (KEY=VALUE …)",
        key="extra",
        help="passed to `qfitlatent train --set`, e.g. min_altlocs=1 crop_size=256",
    )
    st.form_submit_button(
        "Start training", type="primary", disabled=active is not None, on_click=start
    )
if error := st.session_state.pop("train_error", None):
    st.error(error)

st.subheader("Runs")
jobs = runs.list_jobs()
if not jobs:
    st.caption("No runs yet.")
else:
    ui.runs_table(jobs)
    ended = [j for j in jobs if not j.active]
    if ended:
        shown = st.selectbox("Details of run", [j.name for j in ended], key="detail")
        ui.job_report(next(j for j in ended if j.name == shown), key="detail")
