import json
import math
import shutil

import pytest
import torch
from conftest import data_file

from qfitlatent.checkpoint import metadata, save_checkpoint
from qfitlatent.cli import main
from qfitlatent.config import ModelConfig, TrainConfig
from qfitlatent.evaluate import evaluation_split
from qfitlatent.model import QFitLatent

TINY = ModelConfig(
    d_s=16, d_z=8, n_blocks=1, n_heads=2, c_head=4, n_qk_points=2, n_v_points=2, n_rbf=8
)
# Three small real structures with side-chain altlocs (46–58 residues).
FILES = ("1ejg.pdb.gz", "1g6x.pdb.gz", "4npd.pdb.gz")
METRICS = ("nll", "coverage@10", "chi1_mode_acc", "flex_auroc", "residues", "calibration")


@pytest.fixture
def run(tmp_path):
    """A folder of three structures and a random tiny model whose split holds out 4npd."""
    data = tmp_path / "data"
    data.mkdir()
    for name in FILES:
        shutil.copy(data_file(name), data / name)
    torch.manual_seed(0)
    ckpt = save_checkpoint(
        tmp_path / "tiny.pt", model_cfg=TINY, model=QFitLatent(TINY),
        train_cfg=TrainConfig().to_dict(),
        split={"train": ["1ejg", "1g6x"], "val": ["4npd"]}, meta=metadata("test"),
    )  # fmt: skip
    return data, ckpt


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

    # --split all scores every structure; the table prints without --json.
    assert main([*argv, "--split", "all"]) == 0
    out = capsys.readouterr().out
    assert "3 structures" in out and "bb_dependent" in out and "calibration" in out
    assert "conformer selector" in out


def test_split_falls_back_to_split_names_and_needs_training_structures():
    names = [f"{i}abc" for i in range(1, 10)]
    train, val, note = evaluation_split(
        {"split": {}, "train_config": {"val_fraction": 0.3}}, names, "val"
    )
    assert sorted(train + val) == names and val and "recomputed" in note
    from qfitlatent.errors import CheckpointError

    with pytest.raises(CheckpointError):
        evaluation_split({"split": {"train": ["9zzz"], "val": ["1abc"]}}, names, "val")


def test_figures_write_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    from qfitlatent.figures import calibration_plot, learning_curve
    from qfitlatent.figures import main as figures_main

    rows = [{"step": 1, "epoch": 0, "train_loss": 3.0, "lr": 3e-4}, {"step": 2, "train_loss": 2.5},
            {"step": 2, "epoch": 1, "val_nll": 2.7}]  # fmt: skip
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(json.dumps(r) for r in rows) + '\n{"step": 3, "trai')  # a live run
    curve = [{"level": q / 10, "observed": q / 12} for q in range(1, 10)]
    results = {"calibration": curve, "baselines": {"uniform": {"calibration": curve}}}
    (tmp_path / "eval.json").write_text(json.dumps(results))
    assert learning_curve(metrics, tmp_path / "lc.png").read_bytes()[:4] == b"\x89PNG"
    assert calibration_plot(results, tmp_path / "cal.png").read_bytes()[:4] == b"\x89PNG"
    assert (
        figures_main(["calibration", str(tmp_path / "eval.json"), str(tmp_path / "cal2.png")]) == 0
    )
    assert (tmp_path / "cal2.png").stat().st_size > 1000


def test_learning_curve_series_drops_history_a_resume_replaced():
    from qfitlatent.figures import _series

    rows = [
        {"step": 10, "train_loss": 3.0},
        {"step": 20, "train_loss": 2.9},
        {"step": 30, "train_loss": 2.8, "val_nll": None},
        {"step": 20, "train_loss": 2.7},  # resumed from the step-20 checkpoint
        {"step": 30, "lr": 1e-4},  # no loss on this row
        {"step": 40, "train_loss": float("nan")},
        {"step": 50, "train_loss": 2.5},
    ]
    assert _series(rows, "train_loss", "step") == ([10, 20, 50], [3.0, 2.7, 2.5])
