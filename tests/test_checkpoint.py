"""Checkpoints: round trip, weights_only loading, refusing what does not fit."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import tiny_checkpoint
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


# --- damaged and malformed files (issue 21): one line that names the checkpoint -----------------


def _storage_spans(path: Path) -> list[tuple[int, int]]:
    """(start, end) in the file of every tensor storage torch.save wrote (zip entries data/N)."""
    import struct
    import zipfile

    raw = path.read_bytes()
    spans = []
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if "/data/" in info.filename and info.file_size:
                n, e = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
                start = info.header_offset + 30 + n + e
                spans.append((start, start + info.file_size))
    return spans


def _flip(path: Path, out: Path, positions) -> Path:
    raw = bytearray(path.read_bytes())
    for i in positions:
        raw[i] ^= 0xFF
    out.write_bytes(bytes(raw))
    return out


def _one_line_naming(err: pytest.ExceptionInfo, path: Path) -> str:
    text = str(err.value)
    assert path.name in text and "\n" not in text and "structure" not in text
    assert len(text) < 500
    return text


def test_flipped_tensor_bytes_are_refused_by_the_checksum(tmp_path):
    import random

    path = tiny_checkpoint(tmp_path / "tiny.pt")
    start, end = max(_storage_spans(path), key=lambda s: s[1] - s[0])
    bad = _flip(path, tmp_path / "flipped.pt", random.Random(0).sample(range(start, end), 64))
    torch.load(bad, weights_only=True)  # torch itself reads it without complaint
    with pytest.raises(CheckpointError) as err:
        load_model(bad)
    assert "checksum" in _one_line_naming(err, bad)


@pytest.mark.parametrize("seed", range(12))
def test_bytes_flipped_anywhere_never_load_as_other_weights(tmp_path, seed):
    """64 bytes flipped at random places: either a one-line refusal, or (where they hit only
    padding) exactly the saved weights."""
    import random

    path = tiny_checkpoint(tmp_path / "tiny.pt")
    size = path.stat().st_size
    bad = _flip(path, tmp_path / "flipped.pt", random.Random(seed).sample(range(size), 64))
    try:
        model, _ = load_model(bad)
    except CheckpointError as err:
        text = str(err)
        assert bad.name in text and "\n" not in text and "could run code" not in text
        return
    original, _ = load_model(path)
    for (k, a), b in zip(original.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def _edited(tmp_path, name: str, edit) -> Path:
    """The tiny checkpoint with `edit(ckpt)` applied, re-saved as torch.save would."""
    ckpt = load_checkpoint(tiny_checkpoint(tmp_path / "tiny.pt"))
    edit(ckpt)
    torch.save(ckpt, tmp_path / name)
    return tmp_path / name


def _nan(ckpt):
    key = next(k for k, v in ckpt["model"].items() if v.is_floating_point())
    ckpt["model"][key][0] = float("nan")
    ckpt.pop("checksum")  # as a diverged run would have saved it: consistent, and NaN


@pytest.mark.parametrize(
    "name, edit, expect",
    [
        ("no-config.pt", lambda c: c.pop("config"), "config"),
        ("no-model.pt", lambda c: c.pop("model"), "no model weights"),
        ("list-config.pt", lambda c: c.update(config=[1, 2, 3]), "a list"),
        ("nan.pt", _nan, "NaN"),
        ("huge.pt", lambda c: c["config"].update(d_s=4096, n_blocks=64), "do not fit"),
        ("bad-value.pt", lambda c: c["config"].update(d_s=-3), "d_s"),
        ("many-keys.pt", lambda c: c["config"].update({f"k{i}": i for i in range(10**5)}),
         "does not know"),
    ],
)  # fmt: skip
def test_malformed_checkpoints_are_one_line_that_names_them(tmp_path, name, edit, expect):
    path = _edited(tmp_path, name, edit)
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    assert expect in _one_line_naming(err, path)


def test_random_bytes_are_not_a_checkpoint_and_code_still_could_run(tmp_path):
    import os

    noise = tmp_path / "noise.pt"
    noise.write_bytes(os.urandom(20_000))
    with pytest.raises(CheckpointError) as err:
        load_model(noise)
    text = _one_line_naming(err, noise)
    assert "not a file that torch.save writes" in text and "run code" not in text
    torch.save({"format": "qfitlatent-checkpoint-1", "x": Payload()}, tmp_path / "code.pt")
    with pytest.raises(CheckpointError, match="could run code"):
        load_model(tmp_path / "code.pt")


def test_checkpoints_from_before_the_checksum_still_load(tmp_path):
    path = tiny_checkpoint(tmp_path / "tiny.pt")
    assert load_checkpoint(path)["checksum"].startswith("sha256:")
    old = _edited(tmp_path, "old.pt", lambda c: c.pop("checksum"))
    a, _ = load_model(path)
    b, _ = load_model(old)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                b.state_dict().values(), strict=True))  # fmt: skip


def test_the_shipped_weights_load_and_their_checksum_holds():
    from qfitlatent.checkpoint import default_weights, tensor_checksum

    ckpt = load_checkpoint(default_weights())
    assert ckpt["checksum"] == tensor_checksum(ckpt)
    model, info = load_model(default_weights())
    assert info["config"].n_blocks == 4 and not model.training


def test_in_the_app_a_malformed_checkpoint_reads_as_a_problem_with_the_weights(
    tmp_path, monkeypatch
):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    bad = _edited(tmp_path, "no-config.pt", lambda c: c.pop("config"))
    monkeypatch.setenv("QFITLATENT_WEIGHTS", str(bad))
    monkeypatch.setenv("QFITLATENT_RUNS", str(tmp_path / "runs"))
    st.cache_resource.clear()
    root = Path(__file__).resolve().parents[1]
    at = AppTest.from_file(str(root / "app.py"), default_timeout=120).run()
    at.button(key="example").click().run()
    assert not at.exception
    text = at.error[0].value
    assert "weights" in text and "no-config.pt" in text and "This file cannot be used" not in text
    assert "Please report it" not in text
