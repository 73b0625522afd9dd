"""Determinate progress inside predict's long steps (issue 20): counts that rise to each step's
total, at most about 100 reports a step, a cancel that stops a long step at its next tick, the
page's bar showing the count, and the operator's setting for unfollowed predictions. Real
structures, a tiny real network."""

import re
import threading
from pathlib import Path

import gemmi
import pytest
import streamlit as st
import torch
from conftest import SHARED, data_file, job_on_a_fake_clock, tiny_checkpoint, tiny_model

from qfitlatent import predict as predict_module
from qfitlatent import server_config
from qfitlatent.config import ModelConfig
from qfitlatent.ensemble import conformers
from qfitlatent.model import QFitLatent
from qfitlatent.prediction_cache import Cancelled, KeptResults, PredictionJobs, PredictionQueue
from qfitlatent.progress import REPORTS_PER_STEP, Ticker

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "qfitlatent" / "data" / "3k0n_qfit.pdb.gz"  # 163 residues, altlocs
SMALL = "1ab1.pdb.gz"  # 46 residues
COUNT = re.compile(r"^(?P<step>.+): (?P<done>[\d,]+) / (?P<total>[\d,]+) (?P<unit>[a-z ]+)$")


def counts(said: list[tuple[float, str]]) -> dict[str, list[tuple[float, int, int]]]:
    """{step text: [(fraction, done, total)]} of the reports that count within a step."""
    out: dict[str, list[tuple[float, int, int]]] = {}
    for fraction, text in said:
        m = COUNT.match(text)
        if m:
            done, total = (int(m[k].replace(",", "")) for k in ("done", "total"))
            out.setdefault(m["step"], []).append((fraction, done, total))
    return out


def tiled(out: Path, copies: int) -> int:
    """`copies` of the bundled example side by side in one mmCIF (altlocs dropped); returns
    its residue count. A structure large enough that a report per residue would be thousands."""
    src = gemmi.read_structure(str(EXAMPLE))
    src.setup_entities()
    src.remove_ligands_and_waters()
    src.remove_hydrogens()
    src.remove_alternative_conformations()
    st_ = gemmi.Structure()
    st_.cell = gemmi.UnitCell(60.0 * copies, 60.0, 60.0, 90, 90, 90)
    st_.spacegroup_hm = "P 1"
    model = gemmi.Model("1")
    names = iter(f"{a}{b}" for a in "ABCDEFGH" for b in "ABCDEFGH")
    for c in range(copies):
        for ch in src[0]:
            copy = gemmi.Chain(next(names))
            for res in ch:
                copy.add_residue(res)
            for res in copy:
                for atom in res:
                    atom.pos = atom.pos + gemmi.Position(60.0 * c, 0.0, 0.0)
            model.add_chain(copy)
    st_.add_model(model)
    st_.setup_entities()
    st_.make_mmcif_document().write_file(str(out))
    return sum(len(ch) for ch in model)


def test_a_ticker_reports_at_most_every_percent_rising_to_the_total():
    said: list[tuple[float, str]] = []
    tick = Ticker(lambda f, t: said.append((f, t)), 0.2, 0.6, "Selecting", "residues")
    for done in range(50_001):  # one tick per residue, as a loop would
        tick(done, 50_000)
    tick(50_000, 50_000)  # repeated: not reported again
    assert REPORTS_PER_STEP + 1 >= len(said) >= REPORTS_PER_STEP
    assert said[0] == (0.2, "Selecting: 0 / 50,000 residues")
    assert said[-1] == (pytest.approx(0.6), "Selecting: 50,000 / 50,000 residues")
    fractions = [f for f, _ in said]
    assert fractions == sorted(fractions) and all(0.2 <= f <= 0.6 for f in fractions)
    empty: list[tuple[float, str]] = []
    Ticker(lambda f, t: empty.append((f, t)), 0.2, 0.6, "Building", "side chains")(0, 0)
    assert empty == [(0.6, "Building: 0 / 0 side chains")]  # nothing to do is done at once


def test_predict_counts_within_its_long_steps_up_to_each_total():
    """The network's blocks, conformer selection and the multiconformer build each count from
    0 to their total, the bar within each step's share; the whole stays monotone."""
    said: list[tuple[float, str]] = []
    model = tiny_model()
    pred = predict_module.predict(model, EXAMPLE, n_samples=2,
                                  progress=lambda f, t: said.append((f, t)))  # fmt: skip
    steps = counts(said)
    n = pred.features.n_res
    tried = sum(1 for r in pred.multiconformer.rows if r["status"] != "observed")
    assert set(steps) == {
        "Reading the structure",
        "Computing features",
        f"Predicting χ mixtures for {n:,} residues",
        "Selecting distinct conformers",
        "Building the multiconformer model",
    }
    for step, start, end in (
        ("Reading the structure", 0.0, 0.1),
        ("Computing features", 0.1, 0.25),
    ):
        assert {t for _, _, t in steps[step]} == {n}, step
        assert all(start <= f <= end for f, _, _ in steps[step]), step
        assert steps[step][-1][0] == pytest.approx(end), step  # the step's whole share
    blocks = steps[f"Predicting χ mixtures for {n:,} residues"]
    assert [d for _, d, _ in blocks] == list(range(model.cfg.n_blocks + 1))
    assert {t for _, _, t in steps["Selecting distinct conformers"]} == {n}
    assert tried > 0
    for rows in steps.values():
        done = [d for _, d, _ in rows]
        assert done[0] == 0 and done == sorted(set(done)) and done[-1] == rows[0][2]
    fractions = [f for f, _ in said]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_the_maps_evidence_and_iid_clustering_count_too():
    """With a map (3SB3 and its coefficients) the map's evidence counts over the residues; with
    conformers="iid" so does the clustering of the draws."""
    from qfitlatent.density.posterior import NETWORK, LogisticFit, MapHead

    maps = SHARED / "maps"
    fit = LogisticFit((NETWORK,), (0.0,), (1.0,), (1.0,), 0.5)  # the test's own head
    said: list[tuple[float, str]] = []
    pred = predict_module.predict(
        tiny_model(), data_file("3sb3.pdb.gz", maps), n_samples=3, conformers="iid",
        map_file=data_file("3sb3_data.mtz.gz", maps), map_head=MapHead(fit, fit, "a test head"),
        progress=lambda f, t: said.append((f, t)),
    )  # fmt: skip
    steps = counts(said)
    n = pred.features.n_res
    for step in ("Reading the map's evidence", "Clustering the draws"):
        done = [d for _, d, _ in steps[step]]
        stride = -(-n // REPORTS_PER_STEP)  # every 1 % of the residues
        assert done == [*range(0, n, stride), n], step
    fractions = [f for f, _ in said]
    assert fractions == sorted(fractions)


def test_a_large_structure_reports_a_bounded_number_of_times(tmp_path):
    """On seven copies of the example (1,141 residues, hundreds of side chains tried) each
    step reports at most every 1 %, not once per residue or side chain."""
    path = tmp_path / "tiled.cif"
    n = tiled(path, 7)
    said: list[tuple[float, str]] = []
    pred = predict_module.predict(tiny_model(), path, n_samples=2,
                                  progress=lambda f, t: said.append((f, t)))  # fmt: skip
    assert pred.features.n_res == n
    build = counts(said)["Building the multiconformer model"]
    total = build[0][2]
    assert total > 4 * REPORTS_PER_STEP  # a report per side chain would be far more
    assert REPORTS_PER_STEP // 2 <= len(build) <= REPORTS_PER_STEP + 1
    assert build[-1][1] == total
    select = counts(said)["Selecting distinct conformers"]
    assert [d for _, d, _ in select] == [0, conformers.SELECT_CHUNK, n]  # a chunk at a time
    # Reading and featurising tick per residue (and per chunk): reported 1 % at a time at most.
    for step in ("Reading the structure", "Computing features"):
        rows = counts(said)[step]
        assert 10 <= len(rows) <= REPORTS_PER_STEP + 1, step
        assert rows[-1][1:] == (n, n), step


def test_counting_while_reading_and_featurising_changes_nothing_read_or_computed():
    """read_structure and featurize with a tick give the records and tensors they give without
    one, and count their residues from 0 up to the total, never back."""
    from qfitlatent.features import featurize
    from qfitlatent.structure import read_structure

    read: list[tuple[int, int]] = []
    parsed = read_structure(EXAMPLE, tick=lambda d, t: read.append((d, t)))
    plain = read_structure(EXAMPLE)
    n = len(parsed.residues)
    assert [r.id for r in parsed.residues] == [r.id for r in plain.residues]
    assert read == [(d, n) for d in range(n + 1)]  # every residue; Ticker throttles
    computed: list[tuple[int, int]] = []
    f = featurize(parsed, tick=lambda d, t: computed.append((d, t)))
    g = featurize(plain)
    for name in ("rot", "chi", "occ", "burial", "environment", "bb_angles"):
        assert torch.equal(getattr(f, name), getattr(g, name)), name
    done = [d for d, _ in computed]
    assert {t for _, t in computed} == {n} and done[0] == 0 and done[-1] == n
    assert done == sorted(done) and len(set(done)) > n // 10  # it rises through the passes


def test_selection_in_chunks_is_the_selection_whole(monkeypatch):
    """Chunking the selection over residues (bounded memory, progress between chunks) changes
    no number: every residue's selection is its own."""
    parsed = predict_module.prepare(tiny_model(), EXAMPLE)
    out = predict_module.predict_many(tiny_model(), [parsed])[0]
    f = parsed.features
    whole = conformers.select_conformers(out.mixture, f.chi_defined, f.pi_symmetric, 6, seed=3)
    monkeypatch.setattr(conformers, "SELECT_CHUNK", 7)
    ticks: list[tuple[int, int]] = []
    parts = conformers.select_conformers(out.mixture, f.chi_defined, f.pi_symmetric, 6, seed=3,
                                         tick=lambda d, t: ticks.append((d, t)))  # fmt: skip
    for name in ("chi", "mass", "valid", "draws", "entropy"):
        assert torch.equal(getattr(whole, name), getattr(parts, name)), name
    assert ticks == [(d, f.n_res) for d in range(0, f.n_res, 7)] + [(f.n_res, f.n_res)]


def test_a_raising_tick_stops_the_network_after_a_block_and_leaves_no_hooks():
    torch.manual_seed(0)
    model = QFitLatent(ModelConfig(d_s=16, d_z=8, n_blocks=3, n_heads=2, c_head=4,
                                   n_qk_points=2, n_v_points=2, dropout=0.0)).eval()  # fmt: skip
    prep = predict_module.prepare(model, data_file(SMALL))
    seen: list[int] = []

    class Stop(Exception):
        pass

    def tick(done, total):
        seen.append(done)
        if done == 1:
            raise Stop

    with pytest.raises(Stop):
        predict_module.predict_many(model, [prep], tick=tick)
    assert seen == [0, 1]  # blocks 2 and 3 never ran their hooks
    assert all(not block._forward_hooks for block in model.blocks)


def test_another_threads_forward_pass_is_not_this_predictions_progress():
    """The app's predictions share one model: a forward pass in another thread while this one's
    hooks are set neither counts for it nor can cancel it."""
    model = tiny_model()
    prep = predict_module.prepare(model, data_file(SMALL))
    seen: list[tuple[int, int]] = []
    inside, leave = threading.Event(), threading.Event()

    def hold():
        with predict_module._block_ticks(model, lambda d, t: seen.append((d, t))):
            inside.set()
            leave.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert inside.wait(60)
        predict_module.predict_many(model, [prep])  # this thread: no tick of the holder's
    finally:
        leave.set()
        holder.join()
    assert seen == [(0, 1)]  # only the holder's own start


def test_a_job_nobody_follows_stops_inside_a_long_step():
    """Nobody follows the job from the 5th side chain of the multiconformer build on: it stops
    at the next tick, mid-step, and keeps nothing (before, only at the next step's start, after
    the whole build)."""
    model = tiny_model()
    job, jobs, said = job_on_a_fake_clock(
        lambda step: predict_module.predict(model, EXAMPLE, n_samples=2, progress=step),
        gone_at("Building the multiconformer model: 5 /"),
    )
    assert isinstance(job.error, Cancelled) and job.result is None
    assert said[-1].startswith("Building the multiconformer model: 5 / ")
    assert jobs.find("key") == (None, None) and jobs.queue.running == 0 and len(jobs.kept) == 0


def gone_at(start: str):
    """A page that follows the job until a report starts with `start`, then goes away for 60 s
    (twice the grace period): job_on_a_fake_clock's `page`."""
    return lambda text: (60.0, False) if text.startswith(start) else (0.0, True)


@pytest.mark.parametrize(
    ("gone", "next_step"),
    [
        ("Reading the structure: 2 /", "Computing features"),
        ("Computing features: 2 /", "Predicting"),
    ],
)
def test_a_job_nobody_follows_stops_while_reading_or_featurising(gone, next_step):
    """The page goes away at a count inside reading (or featurising) the structure: the job
    stops at the next count, inside that step, and never starts the next one (before, reading
    and featurising had no count, so a job ran through each, ~8 s at 50,000 residues)."""
    model = tiny_model()
    job, jobs, said = job_on_a_fake_clock(
        lambda step: predict_module.predict(model, EXAMPLE, n_samples=2, progress=step),
        gone_at(gone),
    )
    assert isinstance(job.error, Cancelled) and job.result is None
    assert said[-1].startswith(gone)
    assert not [t for t in said if t.startswith(next_step)]
    assert jobs.find("key") == (None, None) and jobs.queue.running == 0 and len(jobs.kept) == 0


def test_the_operator_sets_how_long_an_unfollowed_prediction_runs(monkeypatch, tmp_path):
    monkeypatch.delenv("QFITLATENT_ABANDONED_AFTER_S", raising=False)
    monkeypatch.delenv(server_config.CONFIG_ENV, raising=False)
    assert server_config.load().abandoned_after_s == 30  # the safe default
    toml = tmp_path / "server.toml"
    toml.write_text("abandoned_after_s = 120\n")
    monkeypatch.setenv(server_config.CONFIG_ENV, str(toml))
    assert server_config.load().abandoned_after_s == 120
    monkeypatch.setenv("QFITLATENT_ABANDONED_AFTER_S", "5")  # the variable wins
    now = [0.0]
    jobs = PredictionJobs(KeptResults(), PredictionQueue(), clock=lambda: now[0])
    release = threading.Event()
    job = jobs.start("a", lambda report: release.wait(60), limit=lambda: 1,
                     budget=lambda: 2**30, queued=str)  # fmt: skip
    try:
        assert job.grace == 5
        now[0] = 6.0
        assert job.abandoned
        with pytest.raises(Cancelled, match="5 s"):
            job.report(0.5, "Predicting")
    finally:
        release.set()
        job.done.wait(60)
    monkeypatch.setenv("QFITLATENT_ABANDONED_AFTER_S", "0")  # 0: never stopped
    job = jobs.start("b", lambda report: report(0.5, "Predicting") or "value", limit=lambda: 1,
                     budget=lambda: 2**30, queued=str)  # fmt: skip
    now[0] = 1e9
    assert job.done.wait(60) and job.error is None and job.result == "value"
    monkeypatch.setenv("QFITLATENT_ABANDONED_AFTER_S", "soon")
    with pytest.raises(server_config.ServerConfigError, match="ABANDONED_AFTER_S"):
        server_config.load()


class Slot:
    """st.empty's part that ui.Progress uses: `progress(value, text)` gives a bar that takes
    the same call; every value and text the page would show is recorded."""

    def __init__(self):
        self.shown: list[tuple[float, str]] = []

    def progress(self, value, text):
        self.shown.append((value, text))
        return self


def test_the_pages_bar_shows_the_count_within_a_step(tmp_path, monkeypatch):
    """The app's prediction (`ui._compute`, what its job runs) reporting straight to the page's
    bar (`ui.Progress`; the page's poll shows the latest report): the bar reads "Selecting
    distinct conformers: 46 / 46 residues…" and counts of the other long steps, and moves within
    each step's share, never back."""
    from qfitlatent import ui

    monkeypatch.setenv("QFITLATENT_WEIGHTS", str(tiny_checkpoint(tmp_path / "tiny.pt")))
    st.cache_resource.clear()
    slot = Slot()
    path = data_file(SMALL)
    try:
        ui._compute(path.read_bytes(), path.name, ui.default_weights(), "cpu", ui.Progress(slot),
                    {"input_altlocs": "keep"}, n_samples=2, seed=0, temperature=1.0)  # fmt: skip
    finally:
        st.cache_resource.clear()
    counted = [t for _, t in slot.shown if COUNT.match(t.removesuffix("…"))]
    assert "Selecting distinct conformers: 46 / 46 residues…" in counted
    assert "Reading the structure: 23 / 46 residues…" in counted
    assert "Computing features: 46 / 46 residues…" in counted
    assert "Predicting χ mixtures for 46 residues: 1 / 1 network blocks…" in counted
    assert any(t.startswith("Building the multiconformer model: ") for t in counted)
    values = [v for v, _ in slot.shown]
    assert values == sorted(values) and all(0.0 <= v < 1.0 for v in values)
