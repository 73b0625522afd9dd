"""Fine-tune qfitlatent on your own multiconformer structures: launch, watch live, stop, list."""

import time
from pathlib import Path

import pandas as pd
import streamlit as st

from qfitlatent import runs, ui

ui.page_setup("fine-tune")
st.title("Fine-tune on your multiconformer structures")
st.caption("Runs in the background on this server, one at a time; closing the page does not stop it. "
           f"Runs are kept in `{runs.runs_root()}`; a finished run's best.pt appears in the main "
           "page's model choice.")  # fmt: skip

active = runs.active_job()
if active is not None:
    st.subheader(f"Running: {active.name}")

    @st.fragment(run_every=2.0)
    def live(name: str) -> None:
        job = runs.load_job(runs.runs_root() / name)
        ui.job_report(job)
        if job.active:
            if st.button("Stop this run", key="stop", icon=":material/stop:",
                         help="SIGTERM: the trainer saves last.pt (resumable) and exits"):  # fmt: skip
                runs.stop(job)
        else:
            st.rerun(scope="app")  # widgets outside the fragment (the form) need the news

    live(active.name)

st.subheader("New run")
with st.form("new_run", border=True):
    data_kind = st.radio("Training data", ["bundled sample (4 small structures)",
                         "upload structures or a .zip", "folder on this server"],
                         key="data_kind", horizontal=True)  # fmt: skip
    uploads = st.file_uploader("Structures (.pdb/.cif, .gz) or a .zip of them",
                               accept_multiple_files=True, key="train_upload")  # fmt: skip
    folder = st.text_input("Folder on this server", key="folder", placeholder="/data/my-structures")
    c1, c2, c3 = st.columns(3)
    name = c1.text_input("Run name", runs.default_name(), key="run_name")
    epochs = c2.number_input("Epochs", 1, 1000, 5, key="epochs")
    lr = c3.number_input("Learning rate", 1e-6, 1e-1, 1e-4, format="%.1e", key="lr")
    starts = {**ui.weights_options(), "from scratch (random initialisation)": None}
    start = c1.selectbox("Start from", list(starts), key="init")
    freeze = c2.checkbox("Freeze the trunk (train the output head only)", key="freeze")
    extra = c3.text_input("More settings (KEY=VALUE …)", key="extra",
                          help="passed to `qfitlatent train --set`, e.g. min_altlocs=1 crop_size=256")  # fmt: skip
    go = st.form_submit_button("Start training", type="primary", disabled=active is not None)
if go:
    data = {"bundled sample (4 small structures)": ui.bundled_training_data(),
            "upload structures or a .zip": [(f.name, f.getvalue()) for f in uploads or []],
            "folder on this server": Path(folder.strip()) if folder.strip() else None}[data_kind]  # fmt: skip
    try:
        if data is None or data == []:
            raise ValueError("choose training data: upload files or give a folder")
        from qfitlatent.train import split_overrides

        split_overrides(extra.split())  # unknown keys fail here, not in the background
        runs.launch(name, data=data, epochs=int(epochs), lr=float(lr), init_from=starts[start],
                    freeze_trunk=freeze, overrides=extra.split())  # fmt: skip
    except (ValueError, RuntimeError, OSError) as err:
        st.error(str(err))
    else:
        time.sleep(0.3)  # let the supervisor write its pid before the page shows the run
        st.rerun()

st.subheader("Runs")
jobs = runs.list_jobs()
if not jobs:
    st.caption("No runs yet.")
else:
    table = pd.DataFrame([{
        "run": j.name, "status": f"{ui.STATUS_ICON.get(j.status, '')} {j.status}",
        "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(j.started)),
        "duration": ui.format_seconds((j.ended or time.time()) - j.started),
        "epochs": j.settings.get("epochs"), "lr": j.settings.get("lr"),
        "best val NLL": next((r.get("best_val_nll") for r in reversed(runs.read_metrics(j))
                              if "best_val_nll" in r), None),
        "best.pt": j.best_path.is_file(),
    } for j in jobs])  # fmt: skip
    st.dataframe(table, hide_index=True, width="stretch", key="runs_table")
    shown = st.selectbox("Details of run", [j.name for j in jobs], key="detail")
    ui.job_report(next(j for j in jobs if j.name == shown))
