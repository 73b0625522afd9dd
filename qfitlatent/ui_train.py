"""Streamlit glue for the Train page: the bundled data, what a run would hold out, and the
page's view of runs (train.jobs), each call acting as this browser (ui.session_token).

Split from ui.py, which serves the predict page; the Train page reaches training only through
the functions here.
"""

from importlib import resources
from pathlib import Path

import streamlit as st

from .train import jobs, runlog
from .ui import session_token
from .viz import curves


def bundled_training_data() -> Path:
    return Path(str(resources.files("qfitlatent").joinpath("data", "train_sample")))


def held_out(data: Path, init_from: Path | None, overrides: list[str]) -> list[str]:
    """The structures of folder `data` that a run with these settings validates on, by the
    trainer's own rule (dataset.choose_split): a start model keeps the structures it trained on
    out of validation, so from the shipped weights the bundled sample holds none out."""
    from .config import TrainConfig, split_overrides, with_overrides
    from .dataset import choose_split, list_structure_files, structure_id

    cfg = with_overrides(TrainConfig(), split_overrides(overrides)[1])
    names = sorted({structure_id(p) for p in list_structure_files(data)})
    start = (
        _checkpoint_split(str(init_from), Path(init_from).stat().st_mtime) if init_from else None
    )
    return choose_split(names, cfg.val_fraction, cfg.seed, start)["val"]


@st.cache_resource(show_spinner=False, max_entries=8)
def _checkpoint_split(path: str, mtime: float) -> dict | None:
    """The split a checkpoint was trained on, read once per server for each file version."""
    from .checkpoint import load_checkpoint

    return load_checkpoint(path).get("split")


def held_out_note(val: list[str], from_model: bool) -> str:
    """What the Train form says about the validation structures of the run it would start."""
    if val:
        return f"{', '.join(val)} held out for the validation curve."
    if not from_model:
        return "none of them is held out for validation (val_fraction is too small)."
    return ("none of them is held out for validation: the start model trained on them, so a "
            "validation curve would measure memory. Start from scratch for one.")  # fmt: skip


# The Train page's view of runs (train.jobs): every call acts as this browser, whose
# token owns the runs it launches, so the page never handles tokens or imports train itself.


def list_runs() -> list[jobs.Job]:
    """Every run in the runs folder, newest first."""
    return jobs.list_jobs()


def active_run() -> jobs.Job | None:
    """The run going now (one at a time per runs folder), or None."""
    return jobs.active_job()


def load_run(name: str) -> jobs.Job:
    """A run's current state from disk, by name."""
    return jobs.load_job(jobs.runs_root() / name)


def default_run_name(data: str, start: str, epochs: int) -> str:
    """A new run's name when the visitor gives none: data, start, epochs and time (jobs)."""
    return jobs.default_name(data, start, epochs, root=jobs.runs_root())


def owns(job: jobs.Job) -> bool:
    """Whether this session launched `job` (and so may stop, delete and read its log)."""
    return jobs.is_owner(job, session_token())


def launch_run(name: str, **options) -> jobs.Job:
    """jobs.launch as this session: `options` are launch's keyword arguments but `owner`.
    Raises ValueError, RuntimeError or OSError with a message for the visitor."""
    return jobs.launch(name, owner=session_token(), **options)


def stop_run(job: jobs.Job) -> jobs.Job:
    """SIGTERM to this session's run (PermissionError for another's)."""
    return jobs.stop(job, token=session_token())


def delete_run(job: jobs.Job) -> None:
    """Remove this session's ended run (PermissionError for another's, ValueError if live)."""
    jobs.delete(job, token=session_token())


# The split hashes PDB ids (dataset.split_names): with seed 0, 0.25 put none of the 4 bundled
# structures in validation (no val curve, "best val NLL" None); 0.35 holds out exactly one (1fqt).
BUNDLED_VAL_FRACTION = 0.35


def run_limits_note(config) -> str:
    """The Train page's line on how long a run may hold the one-at-a-time lock."""
    if not config.max_run_seconds:
        return ""
    return (
        f" So that everyone gets a turn, a run stops after {format_seconds(config.max_run_seconds)}"
        " (its best.pt is kept)."
    )


def upload_limits_note(config) -> str:
    """The upload field's help: the operator's limits on what a visitor may stage."""
    note = (
        f"up to {config.max_upload_mb} MB unpacked and {config.max_structures} structures per "
        f"run, {config.max_file_mb} MB per file"
    )
    if config.max_staged_mb_visitor:
        note += f"; your runs keep at most {config.max_staged_mb_visitor} MB of uploads in all"
    return note + " (delete runs you no longer need; a failed run's uploads are removed)"


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


STATUS_ICON = {
    "running": ":material/sync:",
    "starting": ":material/hourglass_top:",
    "finished": ":material/check_circle:",
    "stopped": ":material/stop_circle:",
    "failed": ":material/error:",
}


def runs_table(listed: list[jobs.Job]) -> None:
    """One row per run: status, timing, settings, best validation NLL, whether best.pt exists.
    A running run has lasted until now: the page redraws this while a run is going."""
    import time

    import pandas as pd

    rows = [{"run": j.name, "status": j.status,
             "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(j.started)),
             "duration": format_seconds((j.ended or time.time()) - j.started),
             "epochs": j.settings.get("epochs"), "lr": j.settings.get("lr"),
             "best val NLL": runlog.best_val_nll(runlog.read(j.metrics_path)),
             "best.pt": j.best_path.is_file()}
            for j in listed]  # fmt: skip
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="runs_table")


def validation_note(records: list[runlog.Record]) -> str:
    """What the per-epoch curve shows, or why it has no validation points."""
    note = ("Loss = negative log-likelihood (nats per residue) of the observed χ under the "
            "predicted mixtures; lower is better. ")  # fmt: skip
    if runlog.has_validation(records):
        return note + ("Validation NLL is the same on structures held out of training: if it "
                       "rises while the training loss falls, the model is memorising.")  # fmt: skip
    if not runlog.of_kind(records, runlog.EPOCH):
        return note + "The validation point appears when the first epoch ends."
    return note + ("No validation curve: this run holds out no structure (too few structures, "
                   "val_fraction=0, or its start model trained on them all), so best.pt is "
                   "simply the last epoch.")  # fmt: skip


def job_report(job: jobs.Job, key: str, show_log: bool = True) -> None:
    """Progress, loss curves and log tail of one run (inside the polling fragment while live).
    `show_log` False hides train.log, which names the files of a private run."""
    records = runlog.read(job.metrics_path)
    done, eta = jobs.progress(job, records)
    status = (
        "stopping (the trainer saves last.pt first)…"
        if job.active and job.stop_requested
        else job.status
    )
    eta_text = f" · about {format_seconds(eta)} left" if job.active and eta is not None else ""
    st.progress(
        done,
        text=f"{STATUS_ICON.get(job.status, '')} **{job.name}**: {status} · {done:.0%}{eta_text}",
    )
    if job.message:
        (st.error if job.status == "failed" else st.caption)(job.message)
    if records:
        st.plotly_chart(curves.training_curves(runlog.loss_series(records)), key=f"curves:{key}")
        st.caption(validation_note(records))
    else:
        st.caption("Waiting for the first logged step (reading the structures comes first)…")
    if not show_log:
        st.caption("train.log is shown to the visitor who started this run.")
        return
    with st.expander("train.log (last lines)", expanded=job.status == "failed"):
        st.code(jobs.log_tail(job) or "(empty)", language=None)
