"""Settings typed and range-checked at the edge: `--set`, CLI flags and the configs themselves.

The CLI cases run `python -m qfitlatent` as a real subprocess: a user's typo must end in a
one-line message and exit code 2, with no traceback.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qfitlatent.config import ModelConfig, TrainConfig, with_overrides
from qfitlatent.settings_check import BOUNDS, SettingsError, check_overrides

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "qfitlatent" / "data" / "train_sample" / "2ppn.pdb.gz"


@pytest.mark.parametrize(
    "item, words",
    [
        ("save_every=0", "save_every=0 is out of range"),
        ("log_every=0", "log_every=0 is out of range"),
        ("n_blocks=0", "n_blocks=0 is out of range"),
        ("crop_size=0", "crop_size=0 is out of range"),
        ("lr=0", "above 0"),
        ("lr=nan", "finite number"),
        ("grad_clip=-1", "grad_clip"),
        ("dropout=1.5", "dropout"),
        ("val_fraction=inf", "finite number"),
        ("n_blocks=two", "whole number"),
        ("n_blocks=1.5", "whole number"),
        ("freeze_trunk=maybe", "true or false"),
        ("no_such=1", "unknown setting"),
        ("n_blocks", "unknown setting"),
    ],
)
def test_bad_set_items_are_refused_with_the_setting_named(item, words):
    with pytest.raises(SettingsError, match=words):
        check_overrides([item])


def test_good_set_items_pass_and_cast():
    check_overrides(["n_blocks=1", "d_s=16", "crop_size=96", "freeze_trunk=yes", "lr=3e-4"])
    cfg = with_overrides(TrainConfig(), ["freeze_trunk=off", "val_fraction=0.25", "epochs=3"])
    assert cfg.freeze_trunk is False and cfg.val_fraction == 0.25 and cfg.epochs == 3


def test_configs_check_themselves_whoever_builds_them():
    with pytest.raises(SettingsError, match="save_every"):
        TrainConfig(save_every=0)
    with pytest.raises(SettingsError, match="must be a whole number"):
        ModelConfig(n_blocks=2.0)
    with pytest.raises(SettingsError, match="true or false"):
        ModelConfig(flex_head=1)
    ModelConfig(d_s=16, d_z=8, n_blocks=1, dropout=0.0)  # the tests' tiny model is fine


def test_every_bound_names_a_real_field_and_defaults_lie_inside():
    names = {f for c in (ModelConfig, TrainConfig) for f in c.__dataclass_fields__}
    assert set(BOUNDS) <= names
    ModelConfig(), TrainConfig()  # the defaults pass their own bounds


def cli(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "qfitlatent", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args, words",
    [
        (["--samples", "0"], "must be at least 1"),
        (["--samples", "-5"], "must be at least 1"),
        (["--samples", "ten"], "not a whole number"),
        (["--temperature", "0"], "finite number above 0"),
        (["--temperature", "-1"], "finite number above 0"),
        (["--temperature", "nan"], "finite number above 0"),
        (["--seed", "-1"], "0 or more"),
        (["--threshold", "1.5"], "from 0 to 1"),
        (["--threshold", "nan"], "from 0 to 1"),
        (["--min-occupancy", "-0.1"], "from 0 to 1"),
        (["--max-conformers", "0"], "must be at least 1"),
    ],
)
def test_predict_flags_out_of_range_exit_2_without_traceback(tmp_path, args, words):
    r = cli("predict", str(SAMPLE), "--out", str(tmp_path), *args)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "sets, words",
    [
        (["save_every=0"], "save_every=0 is out of range"),
        (["batch_proteins=0"], "batch_proteins=0 is out of range"),
        (["log_every=0"], "log_every=0 is out of range"),
        (["n_blocks=0"], "n_blocks=0 is out of range"),
        (["crop_size=0"], "crop_size=0 is out of range"),
        (["lr=abc"], "must be a number"),
    ],
)
def test_train_set_out_of_range_exits_2_before_any_work(tmp_path, capsys, sets, words):
    from qfitlatent.cli import main

    code = main(["train", "--data", str(SAMPLE.parent), "--out", str(tmp_path / "run"),
                 "--set", *sets])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and words in err, err
    assert not (tmp_path / "run").exists()


def test_train_set_zero_in_a_real_process_is_a_message_not_a_zero_division(tmp_path):
    r = cli("train", "--data", str(SAMPLE.parent), "--out", str(tmp_path / "run"),
            "--epochs", "0", "--set", "save_every=0")  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    r = cli("train", "--data", str(SAMPLE.parent), "--out", str(tmp_path / "run"),
            "--set", "save_every=0")  # fmt: skip
    assert r.returncode == 2 and "save_every=0 is out of range" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "run").exists()


# --- model size (issue 21 item 8) ---------------------------------------------------------------


SIZES = ("d_s", "d_z", "n_blocks", "n_heads", "c_head", "n_qk_points", "n_v_points",
         "n_components", "transition_mult", "relpos_clip", "n_rbf")  # fmt: skip
FLAGS = ("use_frame_pair_features", "use_backbone_angles", "use_burial", "use_environment",
         "use_resolution", "flex_head")  # fmt: skip


def test_the_parameter_count_is_the_real_networks_for_many_configs():
    """parameter_count reads only the config (no torch); here it meets the network it counts."""
    import random

    from qfitlatent.config import PRESETS
    from qfitlatent.model import QFitLatent
    from qfitlatent.settings_check import parameter_count

    rng = random.Random(0)
    configs = [ModelConfig(), *(m for m, _ in PRESETS.values())]
    for _ in range(12):
        flags = {k: rng.random() < 0.5 for k in FLAGS}
        sizes = {k: rng.randint(1, 9) for k in SIZES}
        configs.append(ModelConfig(**flags, **sizes, prior_components=rng.choice([0, 3])))
    for cfg in configs:
        real = sum(p.numel() for p in QFitLatent(cfg).parameters())
        assert parameter_count(cfg) == real, cfg


def test_a_model_over_the_cap_is_refused_with_its_size():
    from qfitlatent.settings_check import check_model_size

    huge = ModelConfig(d_s=4096, n_blocks=64)
    with pytest.raises(SettingsError, match=r"4\.45 G parameters \(about 66\.\d GiB .* at most 20"):
        check_model_size(huge, 20_000_000)
    assert check_model_size(ModelConfig(), 20_000_000) == 1_145_742
    assert check_model_size(huge, 0) > 4e9  # 0: no cap


def test_train_with_every_size_at_its_maximum_is_a_message_before_any_allocation(tmp_path):
    """The largest model the bounds allow (about 1.3 TiB to train) must be refused before it is
    built. The child may reserve at most 8 GB, so a regression fails here, not the machine."""
    import resource

    def cap_memory():
        resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, 8 * 2**30))

    sets = [f"{k}={int(BOUNDS[k].hi)}" for k in SIZES if k not in ("relpos_clip", "n_rbf")]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    r = subprocess.run(
        [sys.executable, "-m", "qfitlatent", "train", "--data", str(SAMPLE.parent),
         "--out", str(tmp_path / "run"), "--set", *sets],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, preexec_fn=cap_memory,
    )  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "G parameters" in r.stderr and "this machine's memory can train at most" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_train_settings_that_do_not_fit_the_start_checkpoint_are_one_line(tmp_path, capsys):
    from conftest import tiny_checkpoint

    from qfitlatent.cli import main

    start = tiny_checkpoint(tmp_path / "start.pt")  # one block
    code = main(["train", "--data", str(SAMPLE.parent), "--out", str(tmp_path / "run"),
                 "--init-from", str(start), "--set", "n_blocks=2"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "n_blocks: checkpoint 1 vs requested 2" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
