"""Checkpoints: one file holding everything needed to rebuild, resume or audit a model.

Only plain types are stored (dicts, lists, tensors, strings, numbers), so every load goes through
`torch.load(weights_only=True)` and a checkpoint file can never run code. Each file carries a
sha256 of its tensors (`tensor_checksum`), checked on load, so bytes damaged on disk or in
transfer are refused instead of predicting garbage; files written before the checksum existed
load without that check. Every way a file can be unusable is one CheckpointError that names it.
"""

import datetime
import hashlib
import re
from pathlib import Path

import torch

from . import __version__
from .atomic import write_atomic
from .config import ModelConfig
from .errors import CheckpointError, DeviceError
from .settings_check import SettingsError

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
    state["checksum"] = tensor_checksum(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, lambda tmp: torch.save(state, tmp))


def tensor_checksum(ckpt: dict) -> str:
    """sha256 over every tensor in the checkpoint (model, optimizer, RNG states), walked in key
    order with each tensor's place, dtype and shape: a flipped byte, a swapped or a missing
    tensor all change it. "sha256:<hex>"."""
    digest = hashlib.sha256()
    for where, t in _tensors({k: v for k, v in ckpt.items() if k != "checksum"}, ""):
        t = t.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{where}|{t.dtype}|{t.numel()}|".encode())
        digest.update(t.view(torch.uint8).numpy())
    return "sha256:" + digest.hexdigest()


def _tensors(obj, where: str):
    if isinstance(obj, torch.Tensor):
        yield where, obj
    elif isinstance(obj, dict):
        for key in sorted(obj, key=str):
            yield from _tensors(obj[key], f"{where}/{key}")
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            yield from _tensors(item, f"{where}/{i}")


def load_checkpoint(path, map_location="cpu") -> dict:
    """The checkpoint dict, loaded with weights_only=True and checked (format, config, weights,
    checksum, finite values). Raises CheckpointError with one line that names the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # random bytes, a truncated or damaged file, a pickle with code
        raise CheckpointError(
            f"{path.name} is not a readable qfitlatent checkpoint ({_load_failure(err, path)})"
        ) from None  # torch's own text (kept off the chain too) advises weights_only=False
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = repr(ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__)
        raise CheckpointError(f"{path.name} is not a {FORMAT} file (found {_clip(found, 120)})")
    problem = _malformed(ckpt)
    if problem:
        raise CheckpointError(f"{path.name} cannot be used: {problem}")
    return ckpt


def _malformed(ckpt: dict) -> str | None:
    """What makes a loaded checkpoint dict unusable, in words; None when nothing does."""
    config, model = ckpt.get("config"), ckpt.get("model")
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        what = "missing" if config is None else f"a {type(config).__name__}"
        return f"its model settings (config) are {what}, not a table of settings"
    if not isinstance(model, dict) or not model:
        return "it holds no model weights"
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items()):
        return "its model weights are not all named tensors"
    saved = ckpt.get("checksum")
    if saved is not None and saved != tensor_checksum(ckpt):
        return (
            "its tensors do not match the checksum saved with them, so the file was damaged "
            "on disk or in transfer; copy it again"
        )
    for name, t in model.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            return (
                f"its weights hold NaN or infinite values (first in {name}): it comes from a "
                "run that diverged, or was damaged"
            )
    return None


def _clip(text: str, limit: int = 300) -> str:
    """A message kept to one readable line, however much a hostile file put into it."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _load_failure(err: Exception, path: Path) -> str:
    """Why torch.load refused a file, without torch's advice to retry with weights_only=False:
    for a file from someone else that is the one thing that must not be done. "Could run code"
    is said only of a real pickle that names code to call; anything else is damaged or no
    checkpoint at all."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head != b"PK\x03\x04" and head[:1] != b"\x80":  # torch.save's zip, or its legacy pickle
        return "not a file that torch.save writes: no checkpoint, or damaged from its start"
    text = str(err)
    m = re.search(r"GLOBAL ([\w.]+)|reduce for unrecognized function (\S+)", text)
    if m:
        return (
            f"it holds Python objects ({m.group(1) or m.group(2)}) beyond plain tensors and "
            "numbers; loading those could run code, so it was refused"
        )
    first = next((ln for ln in text.splitlines() if ln.strip()), type(err).__name__)
    if "weights_only" in first or "Weights only load failed" in first:
        lines = [ln for ln in text.splitlines() if ln.strip() and "weights_only" not in ln]
        first = lines[-1] if lines else "unreadable"
    return f"the file is damaged or unreadable: {_clip(first, 200)}"


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
    """(model, cfg) from a loaded checkpoint; `overrides` may differ in non-architecture fields.

    The config is checked against the weights on the meta device first (no memory), so a
    config that describes a huge model beside small weights is refused, not allocated.
    """
    from .model import QFitLatent

    try:
        cfg = ModelConfig.from_dict(ckpt["config"])
    except CheckpointError as err:  # settings this version does not know
        raise CheckpointError(_clip(str(err))) from None
    except (SettingsError, TypeError) as err:
        raise CheckpointError(f"its model settings are unusable: {_clip(str(err))}") from None
    if overrides is not None:
        check_compatible(cfg, overrides)
        cfg = overrides
    with torch.device("meta"):
        wanted = {k: tuple(v.shape) for k, v in QFitLatent(cfg).state_dict().items()}
    held = {k: tuple(v.shape) for k, v in ckpt["model"].items()}
    if wanted != held:
        differ = sorted(k for k in wanted.keys() | held.keys() if wanted.get(k) != held.get(k))
        meta = ckpt.get("meta")
        version = meta.get("qfitlatent_version", "?") if isinstance(meta, dict) else "?"
        raise CheckpointError(_clip(
            f"checkpoint weights do not fit the model its config describes (written by "
            f"qfitlatent {version}): {len(differ)} tensors differ in name or shape, e.g. "
            f"{', '.join(differ[:3])}"
        ))  # fmt: skip
    model = QFitLatent(cfg)
    model.load_state_dict(ckpt["model"])
    return model, cfg


def load_model(path=None, device="cpu"):
    """(model in eval mode on `device`, info dict) from a checkpoint; default: the shipped weights.

    info holds config, train_config, split, meta, step and epoch.
    """
    path = Path(path) if path is not None else default_weights()
    ckpt = load_checkpoint(path, map_location="cpu")
    try:
        model, cfg = network_from_checkpoint(ckpt)
    except CheckpointError as err:
        raise CheckpointError(f"{path.name}: {err}") from None
    model.to(device).eval()
    # As in training: denormal floats (tiny attention weights) slow x86 CPUs many times over.
    torch.set_flush_denormal(True)
    info = {k: ckpt.get(k) for k in ("train_config", "split", "meta", "step", "epoch")}
    info["config"] = cfg
    info["path"] = str(path)
    return model, info
