"""Checkpoints: one file holding everything needed to rebuild, resume or audit a model.

Only plain types are stored (dicts, lists, tensors, strings, numbers), so every load goes through
`torch.load(weights_only=True)` and a checkpoint file can never run code.
"""

import datetime
import re
from pathlib import Path

import torch

from . import __version__
from .atomic import write_atomic
from .config import ModelConfig
from .errors import CheckpointError, DeviceError

FORMAT = "qfitlatent-checkpoint-1"
# Settings that change no parameter shape or meaning; everything else is architecture.
NON_ARCHITECTURE = ("dropout", "max_neighbours")


def resolve_device(device: "str | torch.device" = "auto", local_rank: int = 0) -> torch.device:
    """The device to run on: "auto" is this rank's GPU when torch sees one, else the CPU;
    "cuda" without CUDA is an error.

    A torch.device passes through unchanged, so resolved devices can be handed on.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda was asked for, but torch sees no CUDA device here")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def default_weights() -> Path:
    """The shipped weights: weights/qfitlatent-v3.pt beside the package (may not exist yet)."""
    return Path(__file__).resolve().parents[1] / "weights" / "qfitlatent-v3.pt"


RUN_FILES = ("best.pt", "last.pt")  # what every training run folder holds


def weights_label(path) -> str:
    """How outputs name the weights that made them: the file name ("qfitlatent-v3.pt"), or
    "<run>/best.pt" for a run's file, since every run's best is called best.pt."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}" if path.name in RUN_FILES else path.name


def metadata(command: str | None = None, **extra) -> dict:
    meta = {
        "qfitlatent_version": __version__,
        "torch_version": str(torch.__version__),  # TorchVersion is not a plain type
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command or "",
    }
    meta.update(extra)
    return meta


def save_checkpoint(
    path,
    *,
    model_cfg: ModelConfig,
    model: torch.nn.Module,
    train_cfg: dict | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler=None,
    step: int = 0,
    epoch: int = 0,
    split: dict | None = None,
    meta: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Write the checkpoint atomically (temporary file, then os.replace): a crash or a Stop
    during the write leaves the previous file intact.
    """
    path = Path(path)
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    state = {
        "format": FORMAT,
        "config": model_cfg.to_dict(),
        "train_config": dict(train_cfg or {}),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "step": int(step),
        "epoch": int(epoch),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
        "split": {k: list(v) for k, v in (split or {}).items()},
        "meta": meta or metadata(),
        "extra": extra or {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path, map_location="cpu") -> dict:
    """The checkpoint dict, loaded with weights_only=True. Raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a truncated file, a pickle with code, or not a checkpoint at all
        raise CheckpointError(
            f"{path.name} is not a readable qfitlatent checkpoint ({_load_failure(err)})"
        ) from None  # torch's own text (kept off the chain too) advises weights_only=False
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path.name} is not a {FORMAT} file (found {found!r})")
    return ckpt


def _load_failure(err: Exception) -> str:
    """Why torch.load refused a file, without torch's advice to retry with weights_only=False:
    for a file from someone else that is the one thing that must not be done."""
    text = str(err)
    if "weights_only" in text or "WeightsUnpickler" in text or "Unsupported global" in text:
        m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        what = f" ({m.group(1)})" if m else ""
        return (
            f"it holds Python objects{what} beyond plain tensors and numbers; loading those "
            "could run code, so it was refused"
        )
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return first[:200]


def check_compatible(saved: ModelConfig, wanted: ModelConfig) -> None:
    """Refuse architecture changes between a checkpoint's config and the one asked for."""
    diff = {
        k: (v, getattr(wanted, k))
        for k, v in saved.to_dict().items()
        if k not in NON_ARCHITECTURE and getattr(wanted, k) != v
    }
    if diff:
        detail = ", ".join(
            f"{k}: checkpoint {a!r} vs requested {b!r}" for k, (a, b) in diff.items()
        )
        raise CheckpointError(
            f"checkpoint is incompatible with the requested model ({detail}); "
            f"only {', '.join(NON_ARCHITECTURE)} may change when loading a checkpoint"
        )


def network_from_checkpoint(ckpt: dict, overrides: ModelConfig | None = None):
    """(model, cfg) from a loaded checkpoint; `overrides` may differ in non-architecture fields."""
    from .model import QFitLatent

    cfg = ModelConfig.from_dict(ckpt["config"])
    if overrides is not None:
        check_compatible(cfg, overrides)
        cfg = overrides
    model = QFitLatent(cfg)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise CheckpointError(
            f"checkpoint weights do not fit the model its config describes "
            f"(written by qfitlatent {ckpt.get('meta', {}).get('qfitlatent_version', '?')}): {err}"
        ) from err
    return model, cfg


def load_model(path=None, device="cpu"):
    """(model in eval mode on `device`, info dict) from a checkpoint; default: the shipped weights.

    info holds config, train_config, split, meta, step and epoch.
    """
    path = Path(path) if path is not None else default_weights()
    ckpt = load_checkpoint(path, map_location="cpu")
    model, cfg = network_from_checkpoint(ckpt)
    model.to(device).eval()
    # As in training: denormal floats (tiny attention weights) slow x86 CPUs many times over.
    torch.set_flush_denormal(True)
    info = {k: ckpt.get(k) for k in ("train_config", "split", "meta", "step", "epoch")}
    info["config"] = cfg
    info["path"] = str(path)
    return model, info
