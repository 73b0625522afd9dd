import json
import math
import shutil
from dataclasses import replace

import pytest
import torch
from conftest import data_file

from qfitlatent.checkpoint import metadata, save_checkpoint
from qfitlatent.cli import main
from qfitlatent.config import ModelConfig, TrainConfig
from qfitlatent.eval.evaluate import evaluation_split
from qfitlatent.model import QFitLatent

TINY = ModelConfig(
    d_s=16, d_z=8, n_blocks=1, n_heads=2, c_head=4, n_qk_points=2, n_v_points=2, n_rbf=8
)
# Three small real structures with side-chain altlocs (46–58 residues).
FILES = ("1ejg.pdb.gz", "1g6x.pdb.gz", "4npd.pdb.gz")
# Metrics a flexibility-only baseline has no value for (null), and those every predictor has.
CHI_ONLY = ("nll", "coverage@10", "chi1_mode_acc", "chi1_acc@20", "chi1_acc@40", "calibration")
FLEX = ("flex_auroc", "flex_auroc_per_structure", "flex_auroc_structures", "flex_score")
METRICS = (*CHI_ONLY, *FLEX, "entropy_auroc", "entropy_auroc_per_structure", "residues")


@pytest.fixture
def run(tmp_path):
    """A folder of three structures and a random tiny model whose split holds out 4npd."""
    data = tmp_path / "data"
    data.mkdir()
    for name in FILES:
        shutil.copy(data_file(name), data / name)
    return data, random_checkpoint(tmp_path / "tiny.pt", TINY)


def random_checkpoint(path, cfg):
    """A randomly initialised model of `cfg` whose split trains on 1ejg and 1g6x and holds out
    4npd."""
    torch.manual_seed(0)
    return save_checkpoint(
        path, model_cfg=cfg, model=QFitLatent(cfg), train_cfg=TrainConfig().to_dict(),
        split={"train": ["1ejg", "1g6x"], "val": ["4npd"]}, meta=metadata("test"),
    )  # fmt: skip


def test_evaluate_json_scores_model_and_baselines(run, capsys, tmp_path):
    data, ckpt = run
    argv = ["evaluate", "--weights", str(ckpt), "--data", str(data), "--device", "cpu",
            "--cache", str(tmp_path / "cache")]  # fmt: skip
    assert main([*argv, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["structures"] == 1 and res["split"] == "val"
    assert set(res["baselines"]) == {"uniform", "per_aa", "bb_dependent"}
    for r in (res, *res["baselines"].values()):
        for key in METRICS:
            assert key in r
        assert r["residues"] == res["residues"] > 0
        assert math.isfinite(r["nll"]) and 0 <= r["coverage@10"] <= 1
        assert 0 <= r["coverage@10_selected"] <= 1  # the same, with the conformer selector
        assert [c["level"] for c in r["calibration"]] == pytest.approx(
            [0.1 * i for i in range(1, 10)]
        )
    # Uniform: L_i = D_i log 2π, so its mean lies between 1 and 4 times log 2π.
    assert (
        math.log(2 * math.pi) - 1e-6
        <= res["baselines"]["uniform"]["nll"]
        <= 4 * math.log(2 * math.pi)
    )
    # A rotamer library fitted on two structures still beats uniform on the third.
    assert res["baselines"]["per_aa"]["nll"] < res["baselines"]["uniform"]["nll"]
    assert res["baseline_fit"]["train_structures"] == 2
    # The tiny model has a flexibility head: its p_flexible is the score, entropy rides along.
    assert res["flex_score"] == "p_flexible" and res["chi1_residues"] > res["residues"]
    assert res["baselines"]["per_aa"]["flex_auroc"] == res["baselines"]["per_aa"]["entropy_auroc"]
    # Flexibility-only baselines: every metric key, null where it does not apply.
    assert set(res["flex_baselines"]) == {"residue_type", "logistic"}
    for r in res["flex_baselines"].values():
        assert set(METRICS) <= set(r)
        assert all(r[k] is None for k in (*CHI_ONLY, "entropy_auroc", "chi1_residues"))
        assert 0 <= r["flex_auroc"] <= 1 and r["flex_residues"] == res["flex_residues"]
        assert 0 <= r["flex_brier"] <= 1 and r["flex_observed"] == res["flex_observed"]
    # p_flexible and the flexibility baselines are probabilities; entropy is not.
    assert 0 < res["flex_expected"] < res["flex_residues"] and res["flex_observed"] > 0
    assert all(r["flex_brier"] is None for r in res["baselines"].values())
    assert len(res["flex_baseline_fit"]["logistic"]["weight"]) == 25

    # --split all scores every structure; the table prints without --json.
    assert main([*argv, "--split", "all"]) == 0
    out = capsys.readouterr().out
    assert "3 structures" in out and "bb_dependent" in out and "calibration" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "model entropy" in out and rows["logistic"].count("–") == 6
    assert "conformer selector" in out


def test_without_resolution_hides_it_from_the_model_only(run, capsys, tmp_path):
    data, _ = run
    ckpt = random_checkpoint(tmp_path / "res.pt", replace(TINY, use_resolution=True))
    argv = ["evaluate", "--weights", str(ckpt), "--data", str(data), "--device", "cpu",
            "--cache", str(tmp_path / "cache"), "--json"]  # fmt: skip
    results = []
    for extra in ([], ["--without-resolution"]):
        assert main([*argv, *extra]) == 0
        results.append(json.loads(capsys.readouterr().out))
    seen, hidden = results
    assert (seen["resolution"], hidden["resolution"]) == ("from the file headers", "hidden")
    assert seen["nll"] != pytest.approx(hidden["nll"], abs=1e-6)
    assert seen["baselines"] == hidden["baselines"]


def _auroc_by_pairs(scores, labels) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("flex_head", [True, False])
def test_model_flexibility_score_is_p_flexible_or_entropy(flex_head):
    from qfitlatent.eval.evaluate import evaluate
    from qfitlatent.features import load_features

    torch.manual_seed(0)
    model = QFitLatent(ModelConfig(**{**TINY.__dict__, "flex_head": flex_head}))
    train = [load_features(data_file(n)) for n in FILES[:2]]
    val = load_features(data_file(FILES[2]))
    res = evaluate(model, [val], train)
    # Labels by hand: χ1 observed, n_obs >= 2; 4npd has side-chain altlocs, so all count.
    labelled = val.chi_mask[:, :, 0].any(-1)
    flexible = (val.n_obs >= 2)[labelled].tolist()
    assert 0 < sum(flexible) < len(flexible) == res["flex_residues"]
    if flex_head:
        with torch.no_grad():
            p = torch.sigmoid(model(val).flex_logit)[labelled].tolist()
        assert res["flex_score"] == "p_flexible"
        assert res["flex_auroc"] == pytest.approx(_auroc_by_pairs(p, flexible), abs=1e-12)
    else:  # old weights: the entropy ranking, as before the head existed
        assert res["flex_score"] == "entropy" and res["flex_auroc"] == res["entropy_auroc"]
    # One structure: its own AUROC is the per-structure mean.
    assert res["flex_auroc_per_structure"] == res["flex_auroc"]
    assert res["flex_auroc_structures"] == 1


def test_split_falls_back_to_split_names_and_needs_training_structures():
    names = [f"{i}abc" for i in range(1, 10)]
    train, val, note = evaluation_split(
        {"split": {}, "train_config": {"val_fraction": 0.3}}, names, "val"
    )
    assert sorted(train + val) == names and val and "recomputed" in note
    from qfitlatent.errors import CheckpointError

    with pytest.raises(CheckpointError):
        evaluation_split({"split": {"train": ["9zzz"], "val": ["1abc"]}}, names, "val")


def test_figures_draw_the_logged_series_and_write_pngs_a_reader_opens(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    from qfitlatent.eval.figures import (
        calibration_figure,
        calibration_plot,
        learning_curve,
        learning_curve_figure,
    )
    from qfitlatent.eval.figures import main as figures_main
    from qfitlatent.train import runlog

    rows = [
        {"step": 1, "epoch": 0, "train_loss": 3.0, "lr": 3e-4},
        {"step": 2, "train_loss": 2.5},
        {"step": 2, "epoch": 1, "val_nll": 2.7, "best_val_nll": 2.7, "val_chi1_acc40": 0.8},
    ]
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(json.dumps(r) for r in rows) + '\n{"step": 3, "trai')  # live run
    fig = learning_curve_figure(runlog.read(metrics))
    lines = {ln.get_label(): ln for ax in fig.axes for ln in ax.get_lines()}
    # The half-written row is not drawn; the loss comes from the step rows, by step.
    assert list(lines["training loss"].get_xdata()) == [1, 2]
    assert list(lines["training loss"].get_ydata()) == [3.0, 2.5]
    assert list(lines["validation NLL"].get_ydata()) == [2.7]
    assert len(fig.axes) == 2 and list(lines["χ1 within 40° (all residues)"].get_ydata()) == [0.8]
    curve = [{"level": q / 10, "observed": q / 12} for q in range(1, 10)]
    results = {"calibration": curve, "baselines": {"uniform": {"calibration": curve[:3]}}}
    cal = {ln.get_label(): ln for ln in calibration_figure(results).axes[0].get_lines()}
    assert set(cal) == {"calibrated", "model", "uniform"}
    assert list(cal["model"].get_ydata()) == [c["observed"] for c in curve]
    assert len(cal["uniform"].get_xdata()) == 3
    # The files: PNGs that an image reader opens at the figures' sizes (11×4 in, 4.5² at 120 dpi).
    assert imread(learning_curve(metrics, tmp_path / "lc.png")).shape[:2] == (480, 1320)
    assert imread(calibration_plot(results, tmp_path / "cal.png")).shape[:2] == (540, 540)
    (tmp_path / "eval.json").write_text(json.dumps(results))
    assert figures_main(["calibration", str(tmp_path / "eval.json"), str(tmp_path / "c2.png")]) == 0
    assert imread(tmp_path / "c2.png").shape[:2] == (540, 540)
