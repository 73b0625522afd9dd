"""Types and ranges of every setting a user can type, checked where the value comes in.

`ModelConfig` and `TrainConfig` call `check_config` when they are built, so the command line's
`--set`, the Train page's "More settings", checkpoints and code all meet the same rules, and a
bad value is a `SettingsError` (a ValueError) naming the setting, never a ZeroDivisionError
thousands of steps later. Fields with no row in `BOUNDS` are only type-checked, so a new config
field works before anyone gives it a range.
"""

import math
import numbers
from argparse import ArgumentTypeError
from dataclasses import fields
from typing import NamedTuple


class SettingsError(ValueError):
    """A setting with the wrong type or out of its range; the message names it and the range."""


class Bound(NamedTuple):
    lo: float
    hi: float
    lo_open: bool = False  # True: lo itself is not allowed (a rate or a floor that must be > lo)


# Upper ends are generous: they catch typos (n_blocks=800) and values that would exhaust the
# server (crop_size=10**9), not choices a researcher could reasonably make.
BOUNDS: dict[str, Bound] = {
    # ModelConfig
    "d_s": Bound(1, 4096),
    "d_z": Bound(1, 1024),
    "n_blocks": Bound(1, 64),
    "n_heads": Bound(1, 64),
    "c_head": Bound(1, 512),
    "n_qk_points": Bound(1, 64),
    "n_v_points": Bound(1, 64),
    "n_components": Bound(1, 64),
    "n_chi": Bound(4, 4),  # the features always carry four χ slots
    "kappa_min": Bound(0.0, 100.0, lo_open=True),  # κ > 0 keeps von Mises sampling finite
    "dropout": Bound(0.0, 0.95),
    "transition_mult": Bound(1, 16),
    "relpos_clip": Bound(1, 4096),
    "n_rbf": Bound(1, 256),
    "rbf_max": Bound(0.0, 1000.0, lo_open=True),
    "max_neighbours": Bound(0, 100_000),  # 0: every residue attends to every other
    "prior_components": Bound(0, 256),
    "prior_bin_deg": Bound(1.0, 180.0),
    # TrainConfig
    "epochs": Bound(1, 100_000),
    "lr": Bound(0.0, 1.0, lo_open=True),
    "weight_decay": Bound(0.0, 10.0),
    "grad_clip": Bound(0.0, 1e6, lo_open=True),  # clipping to 0 would zero every gradient
    "min_altlocs": Bound(1, 26),
    "r_share": Bound(0.0, 1.0),
    "flex_weight": Bound(0.0, 100.0),
    "flex_rank_weight": Bound(0.0, 100.0),
    "resolution_dropout": Bound(0.0, 1.0),
    "batch_proteins": Bound(1, 1024),
    "crop_size": Bound(16, 100_000),  # 0 used to mean "no crop" silently; a whole-structure
    # step is a memory hazard on a shared server, so say crop_size=100000 to get that.
    "val_fraction": Bound(0.0, 0.9),
    "seed": Bound(0, 2**63 - 1),
    "save_every": Bound(1, 10**9),  # steps; the trainer divides by it
    "log_every": Bound(1, 10**9),
}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _kind(field_type) -> type:
    if isinstance(field_type, type):
        return field_type
    return {"int": int, "float": float, "bool": bool, "str": str}.get(str(field_type), object)


def _range_text(b: Bound) -> str:
    return f"{'above' if b.lo_open else 'from'} {b.lo:g} {'up ' if b.lo_open else ''}to {b.hi:g}"


def check_value(key: str, kind: type, value) -> None:
    """Raise SettingsError unless `value` has type `kind` and lies in BOUNDS[key] (if any)."""
    if kind is bool:
        if not isinstance(value, bool):
            raise SettingsError(f"setting {key} must be true or false, not {value!r}")
        return
    if kind is int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if not ok:
            raise SettingsError(f"setting {key} must be a whole number, not {value!r}")
    elif kind is float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not ok or not math.isfinite(value):
            raise SettingsError(f"setting {key} must be a finite number, not {value!r}")
    b = BOUNDS.get(key)
    if b is None or kind not in (int, float):
        return
    too_low = value <= b.lo if b.lo_open else value < b.lo
    if too_low or value > b.hi:
        raise SettingsError(f"setting {key}={value!r} is out of range: use {_range_text(b)}")


def parse_value(key: str, field_type, text: str):
    """The typed value of `key=text` as the command line or the Train page gives it."""
    kind, text = _kind(field_type), str(text).strip()
    if kind is bool:
        if text.lower() in _TRUE:
            value = True
        elif text.lower() in _FALSE:
            value = False
        else:
            raise SettingsError(f"setting {key} must be true or false, not {text!r}")
    elif kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise SettingsError(f"setting {key} must be {what}, not {text!r}") from None
    else:
        value = text
    check_value(key, kind, value)
    return value


def check_config(cfg) -> None:
    """Every field of a config dataclass has its type and lies in its range."""
    for f in fields(cfg):
        check_value(f.name, _kind(f.type), getattr(cfg, f.name))


# argparse types: ArgumentTypeError's message is printed as is, with the usage, and exit code 2.


def _number(text: str, kind: type, ok, must: str):
    """`text` as `kind` (int or float) when `ok(value)`, else ArgumentTypeError saying `must`."""
    try:
        value = kind(text)
    except ValueError:
        noun = "whole number" if kind is int else "number"
        raise ArgumentTypeError(f"{text!r} is not a {noun}") from None
    if not ok(value):  # nan fails every comparison, so it is refused too
        raise ArgumentTypeError(f"{text!r} must be {must}")
    return value


def positive_int(text: str) -> int:
    """A whole number ≥ 1."""
    return _number(text, int, lambda v: v >= 1, "at least 1")


def positive_float(text: str) -> float:
    """A finite number > 0 (nan, inf, 0 and negatives are refused)."""
    return _number(text, float, lambda v: math.isfinite(v) and v > 0, "a finite number above 0")


def fraction(text: str) -> float:
    """A number from 0 to 1 (thresholds, occupancies)."""
    return _number(text, float, lambda v: 0.0 <= v <= 1.0, "a number from 0 to 1")


def non_negative_int(text: str) -> int:
    """A whole number ≥ 0 (seeds)."""
    return _number(text, int, lambda v: v >= 0, "0 or more")


def check_overrides(items: list[str]) -> None:
    """Check `key=value` items as `qfitlatent train --set` will read them (the Train page calls
    this before launching, so a bad value is refused in the page, not in the background)."""
    from .config import ModelConfig, TrainConfig, with_overrides

    model_keys = {f.name for f in fields(ModelConfig)}
    train_keys = {f.name for f in fields(TrainConfig)}
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or key.strip() not in model_keys | train_keys:
            known = ", ".join(sorted(model_keys | train_keys))
            raise SettingsError(
                f"unknown setting {key.strip()!r} (write KEY=VALUE); known: {known}"
            )
    with_overrides(ModelConfig(), [i for i in items if i.partition("=")[0].strip() in model_keys])
    with_overrides(TrainConfig(), [i for i in items if i.partition("=")[0].strip() in train_keys])


# --- model size ----------------------------------------------------------------------------------
# Counted from the config alone, without building the network (that needs torch, and 4 G
# parameters would be allocated before they could be refused). tests/test_settings_check.py
# checks the count against the real network for many configs, so it cannot drift silently.

_N_TOKENS = 21  # residues.N_TOKENS: 20 amino acids and unknown
_N_ENV = 48  # environment.N_ENV: 12 χ1 probes × 2 radii × 2 counts
_TRAIN_BYTES_PER_PARAMETER = 16  # fp32 weight, gradient and AdamW's two moments


def parameter_count(cfg) -> int:
    """Trainable parameters of QFitLatent(cfg) (a ModelConfig)."""

    def linear(n_in: int, n_out: int) -> int:
        return n_in * n_out + n_out

    s, z, h = cfg.d_s, cfg.d_z, cfg.n_heads
    single = _N_TOKENS * s + 2 * s  # embedding and LayerNorm
    single += sum(
        linear(n, s)
        for n, used in ((9, cfg.use_backbone_angles), (3, cfg.use_burial),
                        (_N_ENV, cfg.use_environment), (2, cfg.use_resolution))
        if used
    )  # fmt: skip
    pair = (2 * cfg.relpos_clip + 2) * z + 2 * z
    pair += linear(cfg.n_rbf + (12 if cfg.use_frame_pair_features else 0), z)
    ipa = (
        linear(s, 3 * h * cfg.c_head)
        + linear(s, 6 * h * cfg.n_qk_points)
        + linear(s, 3 * h * cfg.n_v_points)
        + h  # head weights
        + linear(h * (cfg.c_head + z + 4 * cfg.n_v_points), s)
    )
    block = ipa + 4 * s + linear(s, cfg.transition_mult * s) + linear(cfg.transition_mult * s, s)
    k, d = cfg.n_components, cfg.n_chi
    head = linear(s, k) + 2 * linear(s, k * d)
    if cfg.prior_components > 0:
        head += linear(s, cfg.prior_components) + linear(s, d)
    flex = linear(s, 1) if cfg.flex_head else 0
    return single + pair + cfg.n_blocks * block + linear(z, cfg.n_blocks * h) + head + flex


def _count_text(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f}"


def check_model_size(cfg, max_parameters: int, holder: str = "this server trains") -> int:
    """The parameter count of `cfg`, or SettingsError when it is above `max_parameters` (0: no
    cap), naming the count, the memory training it would take and who sets the cap (`holder`:
    "this server trains", or "this machine's memory can train")."""
    n = parameter_count(cfg)
    if max_parameters and n > max_parameters:
        gib = n * _TRAIN_BYTES_PER_PARAMETER / 2**30
        memory = f"{gib / 1024:.3g} TiB" if gib >= 1024 else f"{gib:.3g} GiB"
        raise SettingsError(
            f"these settings make a model of {_count_text(n)} parameters (about {memory} "
            f"to train, before activations); {holder} at most "
            f"{_count_text(max_parameters)} parameters: lower d_s, d_z, n_blocks or n_heads"
        )
    return n
