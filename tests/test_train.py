"""Training runs on a few small real structures: resume equality, stop, NaN, fine-tuning, DDP."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import DATA, ROOT

from qfitlatent.checkpoint import load_checkpoint
from qfitlatent.config import ModelConfig, TrainConfig, split_overrides
from qfitlatent.dataset import split_names
from qfitlatent.train import loop as train_module
from qfitlatent.train import runlog
from qfitlatent.train.loop import epoch_order, hide_resolution, spatial_crop, train

TINY = ModelConfig(
    d_s=16, d_z=8, n_blocks=1, n_heads=2, c_head=4, n_qk_points=2, n_v_points=2, n_rbf=8
)
# Small real structures with side-chain altlocs (46–61 residues); crop_size 32 exercises the crop.
FILES = ["1ab1.pdb.gz", "1ejg.pdb.gz", "4npd.pdb.gz", "2igd.pdb.gz", "1g6x.pdb.gz"]
FAST = TrainConfig(epochs=2, crop_size=32, save_every=2, log_every=1, val_fraction=0.3, seed=3)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    if not DATA.is_dir():
        pytest.skip(f"real structures not found in {DATA} (../shared/data is absent)")
    d = tmp_path_factory.mktemp("data")
    for name in FILES:
        (d / name).symlink_to(DATA / name)
    return d


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One feature cache for this module: the structures are parsed once, not once per run."""
    return tmp_path_factory.mktemp("cache")


def weights(path: Path) -> dict:
    return load_checkpoint(path)["model"]


def test_resumed_run_reaches_the_same_weights_as_an_uninterrupted_one(data_dir, cache, tmp_path):
    full = train(data_dir, tmp_path / "full", TINY, FAST, device="cpu", cache_dir=cache)
    assert full["status"] == "finished"
    stop_at = 3  # mid-epoch, between two save_every checkpoints' worth of steps
    part = train(
        data_dir,
        tmp_path / "part",
        TINY,
        FAST,
        device="cpu",
        cache_dir=cache,
        on_step=lambda r: r.step >= stop_at,
        preset="a-preset",
    )
    assert part["status"] == "stopped" and part["step"] == stop_at
    assert load_checkpoint(tmp_path / "part" / "last.pt")["step"] == stop_at
    resumed = train(data_dir, tmp_path / "part", resume=True, device="cpu", cache_dir=cache)
    assert resumed["status"] == "finished" and resumed["step"] == full["step"]
    a, b = weights(tmp_path / "full" / "last.pt"), weights(tmp_path / "part" / "last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["best_val_nll"] == full["best_val_nll"]
    assert load_checkpoint(tmp_path / "part" / "last.pt")["meta"]["preset"] == "a-preset"
    assert load_checkpoint(tmp_path / "full" / "last.pt")["meta"]["preset"] is None
    history = [
        load_checkpoint(tmp_path / run / "last.pt")["meta"]["metrics"] for run in ("full", "part")
    ]
    assert [h["train_loss"] for h in history[0]] == [h["train_loss"] for h in history[1]]
    # metrics.jsonl: one record per logged step, none duplicated by the resume (the file itself,
    # not runlog.read, which would hide duplicates), and the same records as the unbroken run's
    # but for the time they took.
    rows = [json.loads(x) for x in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if r["kind"] == "step"]
    assert steps == sorted(set(steps)) and steps[-1] == full["step"]

    def losses(run):
        return [(r.kind, r.step, r.train_loss, r.val_nll)
                for r in runlog.read(tmp_path / run / "metrics.jsonl")]  # fmt: skip

    assert losses("part") == losses("full")
    split = json.loads((tmp_path / "full" / "split.json").read_text())
    assert split == load_checkpoint(tmp_path / "full" / "best.pt")["split"]
    assert not set(split["train"]) & set(split["val"])


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    data_dir, cache, tmp_path, monkeypatch
):
    real = train_module.protein_loss
    calls = {"n": 0}

    def poisoned(pred, feats, train_cfg):
        calls["n"] += 1
        loss = real(pred, feats, train_cfg)
        return loss * float("nan") if calls["n"] == 4 else loss

    monkeypatch.setattr(train_module, "protein_loss", poisoned)
    result = train(
        data_dir,
        tmp_path / "run",
        TINY,
        replace(FAST, val_fraction=0.0),
        device="cpu",
        cache_dir=cache,
    )
    assert result["status"] == "failed" and "nan" in result["message"]
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["step"] == 2  # written at save_every, before the bad step
    assert all(torch.isfinite(t).all() for t in last["model"].values())


def test_fine_tuning_with_a_frozen_trunk_changes_only_the_head(data_dir, cache, tmp_path):
    base = train(
        data_dir, tmp_path / "base", TINY, replace(FAST, epochs=1), device="cpu", cache_dir=cache
    )
    tuned = train(
        data_dir,
        tmp_path / "tuned",
        replace(TINY, dropout=0.0),
        replace(FAST, epochs=1, freeze_trunk=True),
        init_from=base["last"],
        device="cpu",
        cache_dir=cache,
    )
    assert tuned["status"] == "finished"
    a, b = weights(Path(base["last"])), weights(Path(tuned["last"]))
    for k in a:
        assert torch.equal(a[k], b[k]) != k.startswith("head."), k
    # The split of the checkpoint is kept for the same data.
    assert (
        json.loads((tmp_path / "tuned" / "split.json").read_text())
        == load_checkpoint(base["last"])["split"]
    )
    assert load_checkpoint(tuned["last"])["config"]["dropout"] == 0.0


def test_settings_go_to_the_right_config():
    model_sets, train_sets = split_overrides(["n_blocks=2", "min_altlocs=1", "dropout=0.1"])
    assert model_sets == ["n_blocks=2", "dropout=0.1"] and train_sets == ["min_altlocs=1"]
    with pytest.raises(ValueError, match="unknown setting"):
        split_overrides(["n_block=2"])


def test_preset_is_the_base_that_flags_and_settings_override():
    from argparse import Namespace

    from qfitlatent.cli import configs_from_args
    from qfitlatent.config import PRESETS

    args = Namespace(
        preset="qfitlatent-v2", set=["n_blocks=2", "r_share=0.5"], epochs=1, lr=None, seed=None,
        freeze_trunk=False, init_from=None,
    )  # fmt: skip
    model_cfg, train_cfg = configs_from_args(args)
    shipped_model, shipped_train = PRESETS["qfitlatent-v2"]
    assert model_cfg == replace(shipped_model, n_blocks=2)
    assert train_cfg == replace(shipped_train, r_share=0.5, epochs=1)
    with pytest.raises(ValueError, match="unknown preset"):
        configs_from_args(Namespace(**{**vars(args), "preset": "v0"}))


def test_train_config_from_a_checkpoint_refuses_settings_it_does_not_know():
    from qfitlatent.checkpoint import default_weights
    from qfitlatent.errors import CheckpointError

    saved = FAST.to_dict()
    assert TrainConfig.from_dict(saved) == FAST
    with pytest.raises(CheckpointError, match="warmup_steps"):
        TrainConfig.from_dict({**saved, "warmup_steps": 100})
    if default_weights().is_file():  # the shipped weights' settings still load
        shipped = TrainConfig.from_dict(load_checkpoint(default_weights())["train_config"])
        assert shipped.batch_proteins == 4


def test_crop_keeps_nearest_residues_around_a_centre_in_r(data_dir):
    from qfitlatent.features import load_features

    f = load_features(data_dir / "4npd.pdb.gz")
    crop = spatial_crop(f, 20, 2, torch.Generator().manual_seed(0))
    assert crop.n_res == 20 and crop.in_r.any()
    assert spatial_crop(f, 1000, 2, torch.Generator()) is f
    orders = [epoch_order(7, 0, 1, 2, r) for r in (0, 1)]
    assert len(orders[0]) == len(orders[1]) == 4 and set(orders[0] + orders[1]) == set(range(7))


def test_hide_resolution_hides_the_share_asked_and_draws_nothing_at_zero(data_dir):
    from qfitlatent.features import load_features

    f = load_features(data_dir / "4npd.pdb.gz")
    assert bool((f.resolution > 0).all())
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    assert hide_resolution(f, 0.0, g) is f
    assert torch.equal(g.get_state(), state)  # v3-style runs keep their crops
    assert torch.equal(hide_resolution(f, 1.0, g).resolution, torch.zeros(f.n_res))
    hidden = [bool((hide_resolution(f, 0.2, g).resolution == 0).all()) for _ in range(400)]
    assert 50 <= sum(hidden) <= 110  # Binomial(400, 0.2): mean 80, sd 8
    assert torch.equal(f.resolution, load_features(data_dir / "4npd.pdb.gz").resolution)


def _cli(args, **kw):
    env = {**os.environ, "QFITLATENT_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "qfitlatent", "train", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def tiny_sets(**extra):
    sets = {
        "d_s": 16,
        "d_z": 8,
        "n_blocks": 1,
        "n_heads": 2,
        "c_head": 4,
        "n_qk_points": 2,
        "n_v_points": 2,
        "n_rbf": 8,
        "crop_size": 32,
        "log_every": 1,
        **extra,
    }
    return ["--set", *[f"{k}={v}" for k, v in sets.items()]]


def test_sigterm_saves_last_checkpoint_before_exiting(data_dir, cache, tmp_path):
    out = tmp_path / "run"
    proc = _cli(
        [
            "--data",
            str(data_dir),
            "--out",
            str(out),
            "--epochs",
            "1000",
            "--cache",
            str(cache),
            *tiny_sets(),
        ]
    )
    deadline = time.time() + 120
    while not (out / "metrics.jsonl").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    text, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, text
    assert "stopped at step" in text
    assert load_checkpoint(out / "last.pt")["step"] >= 1


@pytest.mark.skipif(os.environ.get("QFITLATENT_SKIP_SLOW") == "1", reason="QFITLATENT_SKIP_SLOW=1")
def test_distributed_training_with_two_gloo_processes(data_dir, cache, tmp_path):
    """torchrun with 2 CPU processes: each trains on its share, both end with identical weights."""
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        "-m",
        "qfitlatent",
        "train",
        "--data",
        str(data_dir),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--cache",
        str(cache),
        *tiny_sets(val_fraction=0.3, seed=3),
    ]
    env = {**os.environ, "QFITLATENT_THREADS": "1"}
    # Own session, so a hung run can be killed with all its worker processes.
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, stdout + stderr
    assert "2 processes" in stdout
    ckpt = load_checkpoint(out / "last.pt")
    # 5 structures, 1 or 2 held out: each process takes a share, so an epoch has fewer steps.
    n_train = len(ckpt["split"]["train"])
    assert ckpt["step"] == 2 * -(-n_train // 2)
    assert stdout.count("epoch 2/2") == 1  # only rank 0 prints


def test_a_new_run_never_overwrites_an_old_one(data_dir, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(FileExistsError, match="--resume"):
        train(data_dir, tmp_path / "run", TINY, FAST, device="cpu")
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train(data_dir, tmp_path / "other", resume=True, device="cpu")


PRETRAIN = DATA.parent / "pretrain"


def test_pretraining_folder_trains_leaves_out_validation_homologs_and_resumes(
    data_dir, cache, tmp_path
):
    """A --pretrain folder joins training; a structure whose closest multiconf chain belongs to
    a validation structure stays out; several proteins per step resume to the same weights."""
    if not PRETRAIN.is_dir():
        pytest.skip("../shared/data/pretrain is absent")
    extra = tmp_path / "pretrain"
    extra.mkdir()
    for name in ("1bpi.pdb.gz", "1duc.pdb.gz", "1bx8.pdb.gz", "1atg.pdb.gz"):
        (extra / name).symlink_to(PRETRAIN / name)
    val = split_names([f.split(".")[0] for f in FILES], 0.3, 3)["val"]
    assert val, "the split of FILES must hold a validation structure for this test"
    (extra / "MANIFEST.tsv").write_text(
        "filename\tmax_identity_to_multiconf\tclosest_multiconf\tcluster90\n"
        f"1bpi.pdb.gz\t1.000\t{val[0]}\t1BPI_A\n"  # a homolog of a validation structure: out
        "1duc.pdb.gz\t0.400\t1ab1\t1DUC_A\n"  # below 50% identity: kept
        "1bx8.pdb.gz\t0.000\t\t1BX8_A\n"
        "1atg.pdb.gz\t0.000\t\t1ATG_A\n"  # the bundled unseen example's cluster: out
    )
    cfg = replace(FAST, batch_proteins=2)
    kw = dict(device="cpu", cache_dir=cache, pretrain_dir=extra)
    full = train(data_dir, tmp_path / "full", TINY, cfg, **kw)
    split = json.loads((tmp_path / "full" / "split.json").read_text())
    assert split["pretrain"] == ["1bx8", "1duc"]
    assert split["pretrain_left_out"] == ["1atg", "1bpi"]
    assert not set(split["pretrain"]) & set(split["val"])
    # (3 multiconf training structures with R + 2 pretraining ones with χ) / 2 per step, 2 epochs.
    assert full["step"] == 2 * 3
    part = train(data_dir, tmp_path / "part", TINY, cfg, on_step=lambda r: r.step >= 2, **kw)
    assert part["status"] == "stopped"
    with pytest.raises(ValueError, match="--pretrain"):
        train(data_dir, tmp_path / "part", resume=True, device="cpu", cache_dir=cache)
    resumed = train(data_dir, tmp_path / "part", resume=True, **kw)
    assert resumed["status"] == "finished"
    a, b = weights(tmp_path / "full" / "last.pt"), weights(tmp_path / "part" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    epochs = runlog.of_kind(runlog.read(tmp_path / "full" / "metrics.jsonl"), runlog.EPOCH)
    assert len(epochs) == 2 and all(0.0 <= r.val_chi1_acc40 <= 1.0 for r in epochs)


# --- issue 21: faults around a run -------------------------------------------------------------


class _Crash(Exception):
    """Stands in for a kill -9: the process ends where it is, nothing more is written."""


def _crash_after_first_step(record):
    raise _Crash


def test_a_run_killed_before_its_first_checkpoint_can_be_resumed(data_dir, cache, tmp_path):
    out = tmp_path / "run"
    cfg = replace(FAST, epochs=1, save_every=10**6)  # no last.pt before the epoch ends
    with pytest.raises(_Crash):
        train(data_dir, out, TINY, cfg, device="cpu", cache_dir=cache,
              on_step=_crash_after_first_step)  # fmt: skip
    # The state the probe left with kill -9: a metrics line, no checkpoint.
    assert runlog.read(out / "metrics.jsonl") and not (out / "last.pt").exists()
    with pytest.raises(FileExistsError, match="--resume"):  # a plain start still protects it
        train(data_dir, out, TINY, cfg, device="cpu", cache_dir=cache)
    result = train(data_dir, out, TINY, cfg, resume=True, device="cpu", cache_dir=cache)
    assert result["status"] == "finished"
    steps = [r.step for r in runlog.read(out / "metrics.jsonl") if r.kind == runlog.STEP]
    assert steps == sorted(set(steps)) and steps[0] == 1  # started over, no doubled rows
    assert load_checkpoint(out / "last.pt")["step"] == result["step"]


def test_a_run_that_fails_before_it_starts_leaves_nothing_behind(tmp_path, cache):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no training structure"):
        train(empty, tmp_path / "new", TINY, FAST, device="cpu", cache_dir=cache)
    assert not (tmp_path / "new").exists()
    given = tmp_path / "given"  # a folder the user made: kept, but nothing left in it
    given.mkdir()
    with pytest.raises(ValueError, match="no training structure"):
        train(empty, given, TINY, FAST, device="cpu", cache_dir=cache)
    assert list(given.iterdir()) == []


def test_an_unwritable_run_folder_is_one_line_from_the_cli(data_dir, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    proc = _cli(["--data", str(data_dir), "--out", str(tmp_path / "a-file" / "run"),
                 *tiny_sets()])  # fmt: skip
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2, text
    assert "Traceback" not in text
    assert text.strip().splitlines() == [
        f"qfitlatent train: cannot write {tmp_path / 'a-file' / 'run'}: Not a directory"
    ]


@pytest.mark.parametrize(
    "log_every, failing",
    [(1, "metrics.jsonl"), (10**6, "last.pt")],  # the log's OSError, torch.save's RuntimeError
)
def test_a_run_folder_that_stops_being_writable_mid_run_ends_with_a_message(
    data_dir, cache, tmp_path, log_every, failing
):
    out, moved = tmp_path / "run", tmp_path / "moved"

    def lose_the_folder(record):
        if record.step == 1:  # after step 1 has saved last.pt (save_every=1)
            out.rename(moved)
            out.write_text("now a file")  # every later write into `out` fails

    cfg = replace(FAST, epochs=3, save_every=1, log_every=log_every, val_fraction=0.0)
    result = train(data_dir, out, TINY, cfg, device="cpu", cache_dir=cache,
                   on_step=lose_the_folder)  # fmt: skip
    assert result["status"] == "failed"
    assert result["message"].startswith(f"cannot write {out / failing}: ")
    assert "the run stopped at step 2, checkpoints saved before are kept" in result["message"]
    # Nothing lost: the checkpoint written before the folder went is whole and loads.
    assert load_checkpoint(moved / "last.pt")["step"] == 1


def test_an_unwritable_run_folder_is_refused_before_any_work(data_dir, tmp_path):
    """What the probe met as a non-root user (root writes into a read-only folder regardless)."""
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions; the Not-a-directory case covers root")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(train_module.OutputFolderError, match="Permission denied"):
        train(data_dir, locked / "run", TINY, FAST, device="cpu")


def test_a_link_to_a_file_outside_the_data_roots_is_never_opened(
    data_dir, cache, tmp_path, monkeypatch, capsys
):
    root = tmp_path / "allowed"
    folder = root / "set"
    folder.mkdir(parents=True)
    for name in FILES[:3]:
        (folder / name).symlink_to(DATA / name)  # DATA is no root: refused as well
    secret = tmp_path / "secret.txt"
    secret.write_text("root:SECRET-HASH:19000:0:99999:7:::\n")
    (folder / "evil.pdb").symlink_to(secret)
    for name in FILES:
        (folder / f"copy-{name}").write_bytes((DATA / name).read_bytes())
    monkeypatch.setenv("QFITLATENT_DATA_ROOTS", str(root))
    from qfitlatent.dataset import list_structure_files, refused_links

    assert [p.name for p in list_structure_files(folder)] == [f"copy-{n}" for n in sorted(FILES)]
    assert refused_links(folder) == sorted(["evil.pdb", *FILES[:3]])
    train(folder, tmp_path / "run", TINY, replace(FAST, epochs=1), device="cpu", cache_dir=cache)
    log = capsys.readouterr().out
    assert "SECRET" not in log
    assert "skipped evil.pdb: a link to a file outside this server's allowed data folders" in log
    # Without roots (a folder of one's own on the command line) links are followed as before.
    monkeypatch.delenv("QFITLATENT_DATA_ROOTS")
    assert "evil.pdb" in [p.name for p in list_structure_files(folder)]
