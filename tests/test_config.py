"""Configs: presets, the shipped weights' settings, overrides, and what unknown keys do."""

import pytest

from qfitlatent.checkpoint import default_weights, load_checkpoint
from qfitlatent.config import PRESETS, ModelConfig, TrainConfig, with_overrides
from qfitlatent.errors import CheckpointError
from qfitlatent.settings_check import SettingsError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_a_checkpoint_dict(name):
    model_cfg, train_cfg = PRESETS[name]
    assert ModelConfig.from_dict(model_cfg.to_dict()) == model_cfg
    assert TrainConfig.from_dict(train_cfg.to_dict()) == train_cfg


def test_the_shipped_weights_are_the_preset_of_their_name():
    """`--preset qfitlatent-vN` reproduces the shipped file's settings, field for field."""
    path = default_weights()
    ckpt = load_checkpoint(path)
    model_cfg, train_cfg = PRESETS[path.stem]
    assert ModelConfig.from_dict(ckpt["config"]) == model_cfg
    assert TrainConfig.from_dict(ckpt["train_config"]) == train_cfg
    # The preset is not the class defaults: a checkpoint is needed to say what shipped.
    assert model_cfg != ModelConfig() and train_cfg != TrainConfig()


def test_an_unknown_model_setting_in_a_checkpoint_is_refused_by_name():
    d = {**ModelConfig().to_dict(), "n_wings": 2}
    with pytest.raises(CheckpointError, match="n_wings"):
        ModelConfig.from_dict(d)


def test_checkpoints_from_before_a_feature_existed_load_without_it():
    old = ModelConfig().to_dict()
    for key in ("flex_head", "use_burial"):
        del old[key]
    cfg = ModelConfig.from_dict(old)
    assert cfg.flex_head is False and cfg.use_burial is False


def test_overrides_are_typed_range_checked_and_unknown_keys_rejected():
    cfg = with_overrides(ModelConfig(), ["n_blocks=3", "use_burial=false", "dropout=0.05"])
    assert (cfg.n_blocks, cfg.use_burial, cfg.dropout) == (3, False, 0.05)
    assert isinstance(cfg.n_blocks, int)
    with pytest.raises(ValueError, match="unknown setting 'n_wings'.*n_blocks"):
        with_overrides(ModelConfig(), ["n_wings=2"])
    with pytest.raises(SettingsError, match="dropout"):
        with_overrides(ModelConfig(), ["dropout=1.5"])
    with pytest.raises(SettingsError, match="whole number"):
        with_overrides(TrainConfig(), ["epochs=2.5"])
    with pytest.raises(SettingsError):  # a frozen config checks itself on construction too
        TrainConfig(lr=-1.0)
