"""Checkpoints: round trip, weights_only loading, refusing what does not fit."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from test_loss import random_features

import qfitlatent
from qfitlatent.checkpoint import (
    load_checkpoint,
    load_model,
    metadata,
    network_from_checkpoint,
    save_checkpoint,
)
from qfitlatent.config import ModelConfig, TrainConfig
from qfitlatent.errors import CheckpointError
from qfitlatent.model import QFitLatent
from qfitlatent.train.loop import cosine_scheduler

TINY = ModelConfig(
    d_s=16, d_z=8, n_blocks=1, n_heads=2, c_head=4, n_qk_points=2, n_v_points=2, n_rbf=8
)
SPLIT = {"train": ["1abc", "2xyz"], "val": ["3def"]}


def saved(tmp_path, cfg=TINY, **kw) -> tuple[Path, QFitLatent]:
    torch.manual_seed(0)
    model = QFitLatent(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = cosine_scheduler(opt, 10)
    f = random_features(n=12)
    model(f).mixture.mu.sum().backward()  # gives the optimizer state to save
    opt.step()
    sched.step()
    path = save_checkpoint(
        tmp_path / "ckpt.pt", model_cfg=cfg, model=model, train_cfg=TrainConfig().to_dict(),
        optimizer=opt, scheduler=sched, step=7, epoch=1, split=SPLIT,
        meta=metadata("qfitlatent train --data d --out o", metrics=[{"epoch": 1, "val_nll": 2.5}],
                      best_val_nll=2.5), **kw,
    )  # fmt: skip
    return path, model


def test_round_trip_restores_model_optimizer_and_run_state(tmp_path):
    path, model = saved(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left behind
    ckpt = load_checkpoint(path)
    assert ckpt["step"] == 7 and ckpt["epoch"] == 1 and ckpt["split"] == SPLIT
    assert ckpt["train_config"] == TrainConfig().to_dict()
    assert ckpt["meta"]["qfitlatent_version"] == qfitlatent.__version__
    assert ckpt["meta"]["torch_version"] == torch.__version__
    assert ckpt["meta"]["best_val_nll"] == 2.5 and ckpt["meta"]["command"].startswith(
        "qfitlatent train"
    )
    assert ckpt["rng"]["torch"].dtype == torch.uint8  # torch's RNG state, restorable as is
    assert ckpt["optimizer"]["state"] and ckpt["scheduler"]["last_epoch"] == 1

    loaded, info = load_model(path)
    assert not loaded.training and info["config"] == TINY and info["split"] == SPLIT
    f = random_features(n=12, seed=3)
    model.eval()
    with torch.no_grad():
        for a, b in zip(model(f).mixture, loaded(f).mixture, strict=True):
            assert torch.equal(a, b)
    # The optimizer resumes exactly.
    opt = torch.optim.AdamW(loaded.parameters(), lr=1e-3)
    opt.load_state_dict(ckpt["optimizer"])
    assert opt.state_dict()["state"][0]["step"] == 1


def test_architecture_change_is_refused_but_dropout_may_change(tmp_path):
    path, _ = saved(tmp_path)
    ckpt = load_checkpoint(path)
    with pytest.raises(CheckpointError, match="n_blocks"):
        network_from_checkpoint(ckpt, overrides=replace(TINY, n_blocks=2))
    with pytest.raises(CheckpointError, match="d_s"):
        network_from_checkpoint(ckpt, overrides=replace(TINY, d_s=32))
    changed = replace(TINY, dropout=0.0, max_neighbours=8)
    model, cfg = network_from_checkpoint(ckpt, overrides=changed)
    assert cfg.dropout == 0.0 and model.cfg.max_neighbours == 8


def test_checkpoint_from_a_newer_version_is_refused(tmp_path):
    path, model = saved(tmp_path)
    ckpt = load_checkpoint(path)
    ckpt["config"]["triangle_updates"] = True  # a setting this version does not know
    torch.save(ckpt, tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match="triangle_updates"):
        load_model(tmp_path / "newer.pt")
    # Weights that do not match the config they came with.
    ckpt = load_checkpoint(path)
    ckpt["config"]["n_blocks"] = 2
    torch.save(ckpt, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(tmp_path / "mismatch.pt")


class Payload:
    """An arbitrary object: weights_only loading must refuse to unpickle it."""


def test_non_checkpoints_are_refused(tmp_path):
    (tmp_path / "text.pt").write_text("not a checkpoint")
    torch.save({"format": "qfitlatent-checkpoint-1", "x": Payload()}, tmp_path / "code.pt")
    torch.save({"model": {}}, tmp_path / "other.pt")
    for name in ("text.pt", "code.pt", "other.pt"):
        with pytest.raises(CheckpointError):
            load_checkpoint(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
