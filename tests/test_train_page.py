"""The Train page's own defects (issue 20): the time-left estimate, the runs table's duration of a
running run, what the form says about the bundled sample's validation structure, run names.

Progress is computed from synthetic metrics.jsonl records written through runlog's API, with the
clock an argument: nothing here waits or depends on how fast the machine is.
"""

import json
import time
from pathlib import Path

import pytest
import streamlit as st
from conftest import tiny_checkpoint
from streamlit.testing.v1 import AppTest

from qfitlatent import ui_train
from qfitlatent.train import jobs, runlog

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120


@pytest.fixture
def page_env(tmp_path, monkeypatch):
    monkeypatch.setenv("QFITLATENT_WEIGHTS", str(tiny_checkpoint(tmp_path / "tiny.pt")))
    monkeypatch.setenv("QFITLATENT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("QFITLATENT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    st.cache_data.clear()
    st.cache_resource.clear()
    return tmp_path


def train_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "1_Train.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def duration_of(at, run: str) -> str:
    """The runs table's duration cell of `run` (the page's only dataframe with a "run" column)."""
    table = next((d.value for d in at.dataframe if "run" in d.value.columns), None)
    assert table is not None, "no runs table drawn"
    return table.loc[table.run == run, "duration"].item()


def wait_for(predicate, timeout=300.0):  # a limit on a hang, not a guess at speed
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def running_job(tmp_path, epochs: int, started: float, status: str = "running") -> jobs.Job:
    return jobs.Job(name="r", dir=str(tmp_path), command=[], settings={"epochs": epochs},
                    status=status, started=started)  # fmt: skip


def test_time_left_comes_from_measured_step_time_not_from_start_up(tmp_path):
    # 5 epochs at 60 s each, after 10 min of reading and featurising structures: the first step
    # record (a tenth of an epoch, 6 s of training) must say about 4.9 min, not 41 or 490.
    job = running_job(tmp_path, epochs=5, started=time.time() - 600)
    first = runlog.Record(runlog.STEP, step=10, epoch=0.1, train_loss=2.0, lr=1e-4, seconds=6.0)
    runlog.append(job.metrics_path, first)
    done, eta = jobs.progress(job)
    assert done == pytest.approx(0.02)
    assert eta == pytest.approx(4.9 * 60)
    # Later records refine the rate: 2 epochs in 100 s leave 3 epochs at 50 s.
    epoch = runlog.Record(runlog.EPOCH, step=200, epoch=2, train_loss=1.5, lr=1e-4, seconds=100.0)
    runlog.append(job.metrics_path, epoch)
    assert jobs.progress(job) == (pytest.approx(0.4), pytest.approx(150.0))


def test_no_time_left_before_the_first_timed_step(tmp_path):
    job = running_job(tmp_path, epochs=5, started=time.time() - 600)
    assert jobs.progress(job) == (0.0, None)  # no metrics.jsonl yet: still reading structures
    runlog.append(job.metrics_path, runlog.Record(runlog.STEP, step=1, epoch=0.01,
                                                  train_loss=2.0))  # fmt: skip
    assert jobs.progress(job) == (pytest.approx(0.002), None)  # a position but no time
    job.status = "finished"
    assert jobs.progress(job) == (1.0, None)


def tick(at, monkeypatch):
    """What the browser does every `run_every` seconds: rerun the page's fragments only. AppTest
    has no public call for it, so its script runner gets the fragment ids the page registered;
    the element tree then holds only what those fragments draw."""
    from streamlit.testing.v1 import local_script_runner

    ids = list(at._fragment_storage._fragments)
    assert ids, "the page registered no fragment"
    plain = local_script_runner.RerunData
    with monkeypatch.context() as mp:
        mp.setattr(local_script_runner, "RerunData",
                   lambda **kw: plain(fragment_id_queue=ids, is_auto_rerun=True, **kw))  # fmt: skip
        return at.run()


def test_the_runs_table_counts_a_running_runs_time_as_it_goes(page_env, monkeypatch):
    import sys

    # Going until stopped below (10 min at most, should the test die first): a run that ended
    # while a loaded machine drew the page would have a fixed duration.
    going = [sys.executable, "-c", "import time; time.sleep(600)"]
    monkeypatch.setattr(jobs, "train_command", lambda *a, **k: going)
    job = jobs.launch("long-one", data=ui_train.bundled_training_data(), epochs=1, lr=1e-3)
    try:
        at = train_page()
        first = duration_of(at, "long-one")
        time.sleep(2.0)  # the clock moves on by 2 s at least, however fast the machine is
        assert duration_of(tick(at, monkeypatch), "long-one") != first
    finally:
        jobs.stop(job, operator=True)
        wait_for(lambda: not jobs.load_job(job.path).active)


def bundled_caption(at) -> str:
    return next(c.value for c in at.caption if "train_sample" in c.value)


def split_of_run_started_from(at) -> dict:
    """Start a run from the page and read the split.json its trainer writes (before training
    starts); then stop it: what it holds out is all this needs."""
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.error, [e.value for e in at.error]
    (job,) = [j for j in jobs.list_jobs() if j.active]
    split = job.path / "split.json"
    wait_for(lambda: split.exists() or not jobs.load_job(job.path).active, timeout=300)
    jobs.stop(job, operator=True)
    wait_for(lambda: not jobs.load_job(job.path).active)
    assert split.exists(), jobs.log_tail(jobs.load_job(job.path))
    return json.loads(split.read_text())


@pytest.mark.parametrize("start", ["shipped", "scratch"])
def test_the_form_says_which_bundled_structure_the_run_holds_out(page_env, monkeypatch, start):
    # The page's defaults start from the shipped model, which trained on all 4 bundled structures:
    # the trainer keeps them out of validation, and the form said one was held out.
    monkeypatch.setenv("QFITLATENT_WEIGHTS", str(ROOT / "weights" / "qfitlatent-v3.pt"))
    at = train_page()
    if start == "scratch":
        at.selectbox(key="init").set_value("from scratch (random initialisation)").run()
        at.text_input(key="extra").set_value("n_blocks=1 d_s=16 d_z=8")  # a quick start
    caption = bundled_caption(at)
    val = split_of_run_started_from(at)["val"]
    assert val == ([] if start == "shipped" else ["1fqt"])
    assert ("none of them is held out" in caption) == (not val)
    assert all(f"{name} held out" in caption for name in val)


def test_a_default_run_name_says_what_the_run_is_and_is_new(tmp_path):
    when = time.mktime((2026, 12, 2, 14, 30, 0, 0, 0, -1))
    name = jobs.default_name("sample", "qfitlatent-v3", 5, when=when, root=tmp_path)
    assert name == "sample-qfitlatent-v3-5ep-20261202-1430"
    (tmp_path / name).mkdir()  # taken: the next one in that minute gets a counter
    assert jobs.default_name("sample", "qfitlatent-v3", 5, when=when, root=tmp_path) == name + "-2"
    # Whatever a file or folder is called, the name is a safe folder name of at most 64 chars.
    odd = jobs.default_name("../my data é/x" * 9, ".hidden..run " * 9, 1000, when=when)
    assert jobs.clean_name(odd) == odd and len(odd) <= 64 and ".." not in odd
    assert odd.startswith("my-data-x-my-data-")


def test_a_run_started_without_a_name_is_named_by_its_data_start_and_epochs(page_env, monkeypatch):
    import sys

    monkeypatch.setattr(jobs, "train_command", lambda *a, **k: [sys.executable, "-c", "pass"])
    at = train_page()
    at.selectbox(key="init").set_value("from scratch (random initialisation)").run()
    at.number_input(key="epochs").set_value(3)
    at.checkbox(key="freeze").check()
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.error, [e.value for e in at.error]
    (job,) = jobs.list_jobs()
    assert job.name.startswith("sample-scratch-head-3ep-"), job.name
    wait_for(lambda: not jobs.load_job(job.path).active)
