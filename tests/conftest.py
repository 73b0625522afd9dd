"""Shared fixtures: the real multiconformer structures beside the repository (../shared/data)."""

import os
import re
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DATA = SHARED / "multiconf"
PRETRAIN = SHARED / "pretrain"
# Without ../shared the real-structure oracles (χ against gemmi, builds, invariance, training on
# real files) would skip and the suite would pass having checked far less. So a missing folder
# stops the run, unless someone opts out knowingly.
ALLOW_MISSING = "QFITLATENT_ALLOW_MISSING_DATA"


def pytest_sessionstart(session):
    missing = [str(p) for p in (DATA, PRETRAIN) if not p.is_dir()]
    if missing and os.environ.get(ALLOW_MISSING) != "1":
        raise pytest.UsageError(
            f"real structures missing: {', '.join(missing)}. The tests read ../shared/data "
            f"beside the repository; without it they would check far less. Put the data there, "
            f"or set {ALLOW_MISSING}=1 to skip those tests deliberately."
        )


# Tests run small tensors, where torch's second thread costs more than it gives on a 2-core
# machine (predict on 300 residues: 1.3 s with one thread, 6-10 s with two under load).
os.environ.setdefault("OMP_NUM_THREADS", "1")


def data_file(name: str, folder: Path = DATA) -> Path:
    """A real file of ../shared/data (multiconf unless `folder` says otherwise)."""
    path = folder / name
    if not path.exists():
        message = f"real data {name} not found in {folder}"
        if os.environ.get(ALLOW_MISSING) == "1":
            pytest.skip(message)
        pytest.fail(message)
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own feature cache, so no test reads another's results."""
    monkeypatch.setenv("QFITLATENT_CACHE", str(tmp_path_factory.mktemp("feature-cache")))


def tiny_model():
    """A seeded, untrained one-block network: fast real outputs for predict and the writers."""
    import torch

    from qfitlatent.config import ModelConfig
    from qfitlatent.model import QFitLatent

    torch.manual_seed(0)
    cfg = ModelConfig(
        d_s=16, d_z=8, n_blocks=1, n_heads=2, c_head=4, n_qk_points=2, n_v_points=2, dropout=0.0
    )
    return QFitLatent(cfg).eval()


def tiny_checkpoint(path: Path) -> Path:
    """A seeded, untrained checkpoint file standing in for the shipped weights (app tests)."""
    import torch

    from qfitlatent.checkpoint import save_checkpoint
    from qfitlatent.config import ModelConfig
    from qfitlatent.model import QFitLatent

    torch.manual_seed(0)
    cfg = ModelConfig(d_s=16, d_z=8, n_blocks=1, dropout=0.0)
    return save_checkpoint(path, model_cfg=cfg, model=QFitLatent(cfg), meta={"note": "test"})


@contextmanager
def tiny_app_env(tmp: Path):
    """The environment of an AppTest page: tiny_checkpoint for the shipped weights, runs and the
    prediction cache under `tmp`, one torch thread, and Streamlit's caches emptied (they outlive
    AppTest instances within one pytest process). Undone when the block ends."""
    import streamlit as st

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QFITLATENT_WEIGHTS", str(tiny_checkpoint(tmp / "tiny.pt")))
        mp.setenv("QFITLATENT_RUNS", str(tmp / "runs"))
        mp.setenv("QFITLATENT_CACHE", str(tmp / "cache"))
        mp.setenv("OMP_NUM_THREADS", "1")
        st.cache_data.clear()
        st.cache_resource.clear()
        yield


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """tiny_checkpoint as a file, once per test module (a module may define its own)."""
    return tiny_checkpoint(tmp_path_factory.mktemp("w") / "tiny.pt")


def job_on_a_fake_clock(compute, page, grace: float = 30.0):
    """`compute(step)` (a prediction, `step(fraction, text)` its progress) run as the app runs
    one: a job of prediction_cache.PredictionJobs whose clock is fake, the grace period `grace`
    s. Each report goes to the job first (which raises Cancelled once no page has followed it
    for `grace` s), then `page(text)` says what happens before the next: (seconds that pass,
    whether a page follows the job now, as a page's poll does).

    Returns (job, jobs, said): the finished job, its PredictionJobs, every text reported."""
    from qfitlatent.prediction_cache import KeptResults, PredictionJobs, PredictionQueue

    now = [0.0]
    jobs = PredictionJobs(KeptResults(), PredictionQueue(), grace=grace, clock=lambda: now[0])
    said: list[str] = []

    def work(report):
        def step(fraction, text):
            report(fraction, text)
            said.append(text)
            seconds, follows = page(text)
            now[0] += seconds
            if follows:
                jobs.find("key")[1].follow()

        return compute(step)

    job = jobs.start("key", work, limit=lambda: 1, budget=lambda: 2**30, queued=str)
    assert job.done.wait(120), "the job did not finish"
    return job, jobs, said


def header_resolution(text: str) -> float | None:
    """The resolution as a reader of the raw header text sees it (no gemmi); None without one."""
    pdb = re.search(r"^REMARK   2 RESOLUTION\.\s+([0-9.]+)\s+ANGSTROMS", text, re.MULTILINE)
    cif = re.search(r"^_refine\.ls_d_res_high\s+([0-9.]+)", text, re.MULTILINE)
    found = pdb or cif
    return float(found.group(1)) if found else None


@pytest.fixture
def root(tmp_path, monkeypatch):
    """An empty runs folder of the Train page's background runs (test_runs, test_run_faults)."""
    from qfitlatent.train import jobs

    monkeypatch.setenv(jobs.RUNS_ENV, str(tmp_path / "runs"))
    return tmp_path / "runs"


@pytest.fixture
def data_dir(tmp_path):
    """A data folder that is enough for a fake trainer: one (unreadable) structure file."""
    d = tmp_path / "data"
    d.mkdir()
    (d / "x.pdb").write_text("ATOM\n")
    return d


_asks = iter(range(1, 1_000_000))


def flex_table(at):
    """The flexibility table an AppTest page sent its table component (viz.table.payload), as
    a DataFrame. Rows the component holds already are not sent again: they are asked for, as a
    new iframe asks (table_component/table.js), and the page run again."""
    import json

    import pandas as pd

    def sent() -> dict:
        return next(json.loads(c.proto.json_args) for c in at.get("component_instance")
                    if c.proto.component_name.endswith("qfitlatent_table"))  # fmt: skip

    args = sent()
    if args["rows"] is None:
        box = next(s for s in at.selectbox if s.key and s.key.startswith("residue:"))
        key = "table:" + box.key.split(":", 1)[1]  # both keyed by the result's tag (app.py)
        at.session_state[key] = {"ask": f"test:{next(_asks)}", "hash": args["hash"]}
        at.run()
        args = sent()
    return pd.DataFrame(args["rows"], columns=[c["name"] for c in args["columns"]])
