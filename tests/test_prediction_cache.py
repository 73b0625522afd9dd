"""The app's predictions on a shared server: kept ones bounded by bytes, running ones queued,
each in a thread of its own that a rerun of the page follows on and that stops once no page
follows it, and a writer failure reported as what it is. Real predictions with a tiny real
checkpoint."""

import threading
from pathlib import Path

import gemmi
import numpy as np
import pytest
import streamlit as st
import torch
from conftest import data_file, job_on_a_fake_clock, tiny_checkpoint

from qfitlatent.prediction_cache import (
    GEMMI_ATOM_BYTES,
    Cancelled,
    KeptResults,
    PredictionJobs,
    PredictionQueue,
    estimate_bytes,
)

ROOT = Path(__file__).resolve().parents[1]
SMALL = "1ab1.pdb.gz"  # 46 residues
OTHER = "1ejg.pdb.gz"  # 48 residues


@pytest.fixture
def ui(tmp_path, monkeypatch):
    """qfitlatent.ui with fresh server-wide caches and a tiny checkpoint."""
    from qfitlatent import ui

    monkeypatch.setenv("QFITLATENT_WEIGHTS", str(tiny_checkpoint(tmp_path / "tiny.pt")))
    st.cache_resource.clear()
    yield ui
    for job in ui._jobs().running:  # no prediction thread outlives its test
        job.done.wait(120)
    st.cache_resource.clear()


def predict_in_page(ui, name: str, progress=None, seed: int = 0):
    path = data_file(name)
    return ui.predict_cached(path.read_bytes(), path.name, ui.default_weights(), n_samples=2,
                             seed=seed, temperature=1.0, progress=progress)  # fmt: skip


def test_estimate_counts_tensors_arrays_bytes_and_structures_once():
    t = torch.zeros(2**10, 2**8)  # 1 MiB of float32
    a = np.zeros(2**17)  # 1 MiB of float64
    base = estimate_bytes({"t": t, "a": a, "b": b"x" * 2**20})
    assert 3 * 2**20 <= base < 3 * 2**20 + 10_000
    # The same storage through a view and a second reference adds only their headers.
    assert estimate_bytes([{"t": t, "a": a, "b": b"x" * 2**20}, t[:10], t]) < base + 2_000
    st_ = gemmi.read_structure(str(data_file(SMALL)))
    n_atoms = st_[0].count_atom_sites()
    assert estimate_bytes(st_) >= GEMMI_ATOM_BYTES * n_atoms
    grid = gemmi.FloatGrid(64, 64, 64)  # a density map a prediction with a map keeps: 1 MiB
    assert 2**20 <= estimate_bytes({"map": grid}) < 2**20 + 2_000


def test_a_kept_prediction_is_estimated_at_least_at_what_it_visibly_holds(ui):
    result = predict_in_page(ui, SMALL)
    files = sum(len(b) for b in result.downloads.values())
    tensors = sum(t.numel() * t.element_size() for t in (result.pred.samples,
                  result.pred.selection.draws, *result.pred.mixture))  # fmt: skip
    assert estimate_bytes(result) > files + tensors + 2 * GEMMI_ATOM_BYTES * 700


def test_kept_results_are_bounded_by_bytes_and_keep_the_newest():
    kept = KeptResults()
    for key in "abc":
        kept.put(key, key.upper(), nbytes=400, budget=1000)
    assert kept.get("a") is None and kept.get("b") == "B" and kept.total_bytes == 800
    kept.put("huge", "H", nbytes=5000, budget=1000)  # alone above the budget: still kept
    assert len(kept) == 1 and kept.get("huge") == "H"


def test_the_page_keeps_predictions_up_to_the_operators_byte_budget(ui, monkeypatch):
    """A budget of 0 MB keeps only the newest prediction: the second one pushes the first out
    (the count limit of 8 kept both). Asking again for the newest costs nothing."""
    monkeypatch.setenv("QFITLATENT_MAX_KEPT_MB", "0")
    first = predict_in_page(ui, SMALL)
    second = predict_in_page(ui, OTHER)
    kept = ui._results()
    assert len(kept) == 1 and kept.total_bytes == estimate_bytes(second)
    assert predict_in_page(ui, OTHER) is second
    assert predict_in_page(ui, SMALL) is not first  # predicted again


def test_predictions_beyond_the_limit_queue_and_the_page_says_so(ui, monkeypatch):
    """With one place, a second visitor's prediction waits for the first, and their progress
    bar says it is queued (before, both ran at once)."""
    from qfitlatent import predict

    monkeypatch.setenv("QFITLATENT_MAX_RUNNING_PREDICTIONS", "1")
    running, most = [0], [0]
    lock = threading.Lock()
    second_queued = threading.Event()
    real = predict.predict

    def counted(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            if kwargs["seed"] == 0:  # the first visitor holds its place until the second waits
                second_queued.wait(timeout=60)
            return real(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(predict, "predict", counted)
    said: list[str] = []

    def progress(fraction, text):
        said.append(text)
        if text.startswith("Queued"):
            second_queued.set()

    first = threading.Thread(target=predict_in_page, args=(ui, SMALL))
    first.start()
    while ui._queue().running == 0 and first.is_alive():
        threading.Event().wait(0.01)
    predict_in_page(ui, OTHER, progress=progress, seed=1)
    first.join()
    assert most[0] == 1
    assert said[0].startswith("Queued: 1 prediction(s) ahead") and "1 at a time" in said[0]


def counting_predictions(monkeypatch) -> list:
    """predict.predict, counted: one entry per prediction started."""
    from qfitlatent import predict

    calls, real = [], predict.predict

    def counted(*args, **kwargs):
        calls.append(kwargs.get("seed"))
        return real(*args, **kwargs)

    monkeypatch.setattr(predict, "predict", counted)
    return calls


class Rerun(Exception):
    """What streamlit raises in a page's script run when its visitor touches any widget."""


def test_a_rerun_of_the_page_follows_the_running_prediction_on(ui, monkeypatch):
    """A display toggle reruns the script, which stops the page's run where it shows progress.
    The prediction goes on, and the next run follows it to its end: predicted once (it was
    computed in the script run, so it stopped with it and the next run started it again)."""
    from qfitlatent import predict

    calls, release, real = [], threading.Event(), predict.predict

    def held(*args, **kwargs):  # runs until the page has been stopped
        calls.append(kwargs["seed"])
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(predict, "predict", held)

    def touched(fraction, text):
        release.set()
        raise Rerun

    with pytest.raises(Rerun):
        predict_in_page(ui, SMALL, progress=touched)
    result = predict_in_page(ui, SMALL)
    assert calls == [0]
    assert predict_in_page(ui, SMALL) is result  # kept
    assert ui._jobs().running == []


def test_pages_with_the_same_inputs_share_one_prediction(ui, monkeypatch):
    """Two visitors asking for the same bytes and settings at once follow one job (with places
    free, both were computed); other settings are another job."""
    calls = counting_predictions(monkeypatch)
    out: list = []
    pages = [threading.Thread(target=lambda: out.append(predict_in_page(ui, SMALL)))
             for _ in range(2)]  # fmt: skip
    for page in pages:
        page.start()
    for page in pages:
        page.join()
    assert calls == [0] and out[0] is out[1]
    assert predict_in_page(ui, SMALL, seed=1) is not out[0] and calls == [0, 1]


def test_a_prediction_no_page_follows_stops_at_its_next_report(ui):
    """The visitor left (or chose another file): nobody follows the job for longer than the
    grace period, so the report after that (a step, or a count within one) raises Cancelled,
    the queue place is given back and nothing is kept. A followed job goes on to the end. A
    fake clock: 20 s pass after each report."""
    path = data_file(SMALL)
    data, weights = path.read_bytes(), ui.default_weights()

    def run(followed: bool):
        def compute(step):
            return ui._compute(data, path.name, weights, "cpu", step, {"input_altlocs": "keep"},
                               n_samples=2, seed=0, temperature=1.0)  # fmt: skip

        return job_on_a_fake_clock(compute, lambda text: (20.0, followed))

    job, jobs, said = run(followed=False)
    assert isinstance(job.error, Cancelled) and job.result is None
    assert said == ["Reading the structure", "Reading the structure: 0 / 46 residues"]
    assert jobs.find("key") == (None, None) and jobs.queue.running == 0 and len(jobs.kept) == 0
    job, jobs, said = run(followed=True)
    assert job.error is None and jobs.find("key")[0] is job.result
    assert said[-1] == "Preparing the 3D viewer"


def test_the_progress_of_a_prediction_never_says_done_before_the_page(ui):
    """predict's last step says "Done", but the files, the viewer's index and the page come
    after it; the page says "Drawing the page" itself and then removes the bar."""
    path = data_file(SMALL)
    said: list[tuple[float, str]] = []
    ui._compute(path.read_bytes(), path.name, ui.default_weights(), "cpu",
                lambda f, text: said.append((f, text)), {"input_altlocs": "keep"}, n_samples=2,
                seed=0, temperature=1.0)  # fmt: skip
    texts = [text for _, text in said]
    writing = "Writing the multiconformer model, the ensemble and the tables"
    files = len(predict_in_page(ui, SMALL).downloads)
    assert "Done" not in texts and texts[-files - 3 :] == [
        writing,
        *(f"{writing}: {k} / {files} files" for k in range(files + 1)),
        "Preparing the 3D viewer",
    ]
    fractions = [f for f, _ in said]
    assert fractions == sorted(fractions) and fractions[-1] < 1.0


def test_a_queued_visitor_who_leaves_gives_up_the_place():
    q = PredictionQueue()

    class Left(Exception):
        pass

    def leave(ahead, limit):
        raise Left  # what streamlit raises in a script whose visitor reran or left

    with q.slot(lambda: 1):
        with pytest.raises(Left), q.slot(lambda: 1, on_wait=leave):
            pass
    with q.slot(lambda: 1):  # the queue is not stuck behind the one who left
        assert q.running == 1
    assert q.running == 0


def test_a_writer_failure_in_the_app_reads_as_such(ui, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from qfitlatent import predict

    def broken(pred, label, tick=None):
        raise RuntimeError("chain name too long for the PDB format")

    monkeypatch.setattr(predict, "outputs", broken)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.button(key="example").click().run()
    assert not at.exception
    text = at.error[0].value
    assert "results could not be written" in text and "chain name too long" in text
    assert "Something went wrong with this file" not in text


def test_limits_that_would_stop_every_prediction_are_refused(monkeypatch):
    from qfitlatent import server_config

    monkeypatch.setenv("QFITLATENT_MAX_RUNNING_PREDICTIONS", "0")
    with pytest.raises(server_config.ServerConfigError, match="max_running_predictions"):
        server_config.load()
    monkeypatch.setenv("QFITLATENT_MAX_RUNNING_PREDICTIONS", "3")
    monkeypatch.setenv("QFITLATENT_MAX_KEPT_MB", "0")  # allowed: keep only the newest
    cfg = server_config.load()
    assert cfg.max_running_predictions == 3 and cfg.max_kept_mb == 0 and cfg.max_mb == 64


def test_leaving_a_running_prediction_for_other_settings_says_so(ui, monkeypatch):
    """Other settings applied while a prediction runs: the page says the first one stops
    unless chosen again soon, rather than dropping it silently."""
    from qfitlatent import predict

    release, real = threading.Event(), predict.predict

    def held(*args, **kwargs):
        if kwargs["seed"] == 0:
            release.wait(60)  # the first prediction is still running when the page moves on
        return real(*args, **kwargs)

    monkeypatch.setattr(predict, "predict", held)
    told: list[str] = []
    monkeypatch.setattr(ui.st, "toast", lambda text, **kwargs: told.append(text))
    st.session_state.pop("following", None)

    def touched(fraction, text):
        raise Rerun

    try:
        with pytest.raises(Rerun):
            predict_in_page(ui, SMALL, progress=touched)
        assert not told
        predict_in_page(ui, SMALL, seed=1)
        assert len(told) == 1 and "stops unless you choose its file and settings again" in told[0]
    finally:
        release.set()


def test_a_value_kept_since_the_page_looked_is_not_predicted_again():
    """Between a page's `find` and its `start` the job may finish: start hands out the kept
    value, done, rather than a second prediction."""
    kept = KeptResults()
    jobs = PredictionJobs(kept, PredictionQueue())
    kept.put("key", "value", nbytes=1, budget=10)

    def work(report):
        raise AssertionError("predicted again")

    job = jobs.start("key", work, limit=lambda: 1, budget=lambda: 10, queued=str)
    assert job.done.is_set() and job.result == "value" and job.error is None
    assert jobs.running == []
