"""Training and fine-tuning: one protein per step, AdamW, cosine annealing to lr/100 (SPEC §3).

A run folder holds split.json, metrics.jsonl (written through runlog), last.pt and best.pt.
Everything random is derived from (seed, step), so a run resumed from last.pt reaches the same
weights as one never stopped. Under `torchrun` each process trains on its share of the proteins
(DistributedDataParallel) and only rank 0 writes files.

`train` sets a run up (_start_process, _model_to_train, _prepare_data, _optimizer, _restore) and
hands it to `_loop`, which runs `_optimise_step`, logs (`_log_window`), validates and saves at
each epoch's end (`_end_epoch`) and stops every rank at the same step (`_all_agree_to_stop`).

CPU threads: $QFITLATENT_THREADS, else $OMP_NUM_THREADS, else all cores (shared among torchrun
processes). On a machine that other jobs keep busy, 1 thread is often several times faster than
2: a parallel region waits for its slowest thread, and a descheduled thread stalls all of them.
"""

import csv
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from ..atomic import remove_stale_temporaries
from ..checkpoint import (
    load_checkpoint,
    metadata,
    network_from_checkpoint,
    resolve_device,
    save_checkpoint,
)
from ..config import ModelConfig, TrainConfig
from ..dataset import (
    choose_split,
    list_structure_files,
    load_dataset,
    pdb_group,
    refused_links,
    structure_id,
    write_json,
)
from ..errors import CheckpointError
from ..eval.metrics import chi1_mode_hit, per_structure_auroc
from ..features import Features
from ..library import LibraryOptions, fit_library
from ..loss import flex_labels, mixture_nll, protein_loss
from ..model import QFitLatent
from . import runlog


class OutputFolderError(ValueError):
    """The run folder cannot be written (read-only, full, gone); the message names it."""


def _output_error(path: Path, err: Exception) -> OutputFolderError:
    reason = getattr(err, "strerror", None) or str(err)
    return OutputFolderError(f"cannot write {path}: {reason}")


# --- pieces of a step --------------------------------------------------------------------------


def spatial_crop(
    feats: Features, crop_size: int, min_altlocs: int, generator: torch.Generator
) -> Features:
    """At most `crop_size` residues nearest (by CA) to a random centre in R (training only)."""
    if crop_size <= 0 or feats.n_res <= crop_size:
        return feats
    candidates = feats.in_loss(min_altlocs).nonzero().squeeze(-1)
    if len(candidates) == 0:
        candidates = torch.arange(feats.n_res)
    centre = candidates[torch.randint(len(candidates), (1,), generator=generator)]
    dist2 = (feats.trans - feats.trans[centre]).square().sum(-1)  # [N]
    return feats.select(dist2.topk(crop_size, largest=False).indices)


def hide_resolution(feats: Features, share: float, generator: torch.Generator) -> Features:
    """The crop with its resolution set to unknown (0), in `share` of the calls (training
    only); a share of 0 draws nothing, so runs without it keep their random stream."""
    if share <= 0 or float(torch.rand((), generator=generator)) >= share:
        return feats
    return feats.without_resolution()


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """One seed per (run seed, step, rank): dropout and crops never depend on what ran before."""
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63)


def epoch_order(n_items: int, epoch: int, seed: int, world: int, rank: int) -> list[int]:
    """This rank's protein order for `epoch`: a seeded permutation padded to a multiple of world."""
    perm = torch.randperm(
        n_items, generator=torch.Generator().manual_seed(seed * 7_919 + epoch)
    ).tolist()
    pad = (-len(perm)) % world
    perm = perm + perm[:pad]
    return perm[rank::world]


def cosine_scheduler(optimizer, total_steps: int):
    """Cosine annealing from lr to lr/100 over the whole run (one step per optimizer step)."""
    lr = optimizer.param_groups[0]["lr"]
    return torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(total_steps, 1), eta_min=lr / 100.0
    )


@torch.no_grad()
def validate(
    model, items: list[Features], min_altlocs: int, device, world: int = 1
) -> tuple[float | None, dict]:
    """Mean L_i over R of the held-out proteins (pooled over residues), and what a user meets:
    {"val_chi1_acc40": share of residues with χ1 whose heaviest altloc is within 40° of the
    predicted mode, "val_flex_auroc": mean over structures with both classes of the
    p_flexible AUROC (None without a flexibility head)}.
    """
    model.eval()
    total = torch.zeros(4, dtype=torch.float64, device=device)  # Σ L_i, |R|, χ1 hits, χ1 n
    scores, labels = [], []  # per structure: p_flexible logits and labels of labelled residues
    for f in items:
        on_device = f.to(device)
        out = model(on_device)
        _, per_residue, valid = mixture_nll(out.mixture, on_device, min_altlocs)
        total[0] += per_residue[valid].double().sum()
        total[1] += valid.sum()
        hit, defined = chi1_mode_hit(
            out.mixture.to("cpu"), f.chi, f.chi_mask, f.occ, tol=math.radians(40.0)
        )
        total[2] += hit.sum()
        total[3] += defined.sum()
        if out.flex_logit is not None:
            label, mask = flex_labels(f)
            scores.append(out.flex_logit.cpu()[mask])
            labels.append(label[mask])
    if world > 1:
        dist.all_reduce(total)
    model.train()
    nll = float(total[0] / total[1]) if total[1] > 0 else None
    extra = {
        "val_chi1_acc40": float(total[2] / total[3]) if total[3] > 0 else None,
        # Rank 0's structures only under DDP: a monitor for the log, not the selection rule.
        "val_flex_auroc": _finite(per_structure_auroc(scores, labels)[0]),
    }
    return nll, extra


# 90%-identity clusters (the pretraining MANIFEST's cluster90) that no run trains on: the
# bundled unseen example (qfitlatent/data/1atg.pdb.gz) and its close relatives, so a first-time
# user sees the model on a protein it has not memorised.
HELD_OUT_CLUSTERS = frozenset({"1ATG_A"})


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def pretrain_names(pretrain_dir, val_names: list[str]) -> tuple[list[str], list[str]]:
    """(names to train on, names left out) of an extra training folder.

    With the folder's MANIFEST.tsv (columns filename, closest_multiconf,
    max_identity_to_multiconf, cluster90), a structure with a chain at least 50% identical to
    one of a validation structure is left out: otherwise validation would report memory, not
    skill. So is every member of HELD_OUT_CLUSTERS.
    """
    names = [structure_id(p) for p in list_structure_files(pretrain_dir)]
    manifest = Path(pretrain_dir) / "MANIFEST.tsv"
    if not manifest.is_file():
        return names, []
    val_ids = {pdb_group(n) for n in val_names}
    close = set()
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    for row in rows:
        ident = float(row.get("max_identity_to_multiconf") or 0.0)
        if ident >= 0.5 and pdb_group(row.get("closest_multiconf", "")) in val_ids:
            close.add(structure_id(row["filename"]))
        if row.get("cluster90") in HELD_OUT_CLUSTERS:
            close.add(structure_id(row["filename"]))
    return [n for n in names if n not in close], sorted(close & set(names))


def fit_library_prior(model, train_feats: list[Features], out=None) -> None:
    """Fit the backbone-dependent library on the training structures into the model's head.

    The same fit, on the same structures and options, as `qfitlatent evaluate`'s bb_dependent
    baseline: the evaluation then measures exactly what the network adds to the library.
    """
    cfg = model.cfg
    options = LibraryOptions(n_components=cfg.prior_components, bin_deg=cfg.prior_bin_deg)
    t0 = time.perf_counter()
    library = fit_library(train_feats, options)
    model.head.prior.load_library(library)
    if out is not None:
        out.line(
            f"fitted the rotamer-library prior ({cfg.prior_components} components per amino "
            f"acid, {cfg.prior_bin_deg:g}° φ/ψ bins) on {len(train_feats)} training structures "
            f"in {time.perf_counter() - t0:.0f} s"
        )


# --- the run -----------------------------------------------------------------------------------


class _StopFlag:
    """SIGTERM / SIGINT ask the loop to stop after the current step (and save last.pt)."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no signal handling
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C means now
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _set_threads(local_world: int) -> None:
    """$QFITLATENT_THREADS, else $OMP_NUM_THREADS (the app caps it), else the cores per process."""
    env = os.environ.get("QFITLATENT_THREADS") or os.environ.get("OMP_NUM_THREADS")
    n = int(env) if env else max(1, (os.cpu_count() or 1) // max(local_world, 1))
    torch.set_num_threads(n)


class _Printer:
    """A progress bar on a terminal, plain flushed lines otherwise (logs, the app)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = enabled and sys.stdout.isatty()

    def line(self, text: str) -> None:
        if self.enabled:
            print(("\r\033[K" if self.tty else "") + text, flush=True)

    def progress(self, text: str) -> None:
        if self.tty:
            print("\r\033[K" + text, end="", flush=True)


@dataclass
class _Run:
    """What a run trains with, fixed once its loop starts."""

    out_dir: Path
    dev: torch.device
    world: int
    rank: int
    out: _Printer
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    model: QFitLatent
    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper under torchrun
    params: list[torch.nn.Parameter]  # the ones that train
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    split: dict
    train_items: list[Features]
    val_items: list[Features]
    steps_per_epoch: int
    command: str | None
    preset: str | None

    @property
    def main_rank(self) -> bool:  # only rank 0 writes files
        return self.rank == 0

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.train_cfg.epochs

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / runlog.FILE_NAME


@dataclass
class _State:
    """What changes from step to step. last.pt carries all of it, so a resumed run continues
    exactly where the saved one was."""

    step: int = 0
    elapsed: float = 0.0  # training seconds; validation is not counted
    best: float | None = None  # lowest validation NLL so far
    history: list[dict] = field(default_factory=list)  # epoch records, as metrics.jsonl has them
    epoch_loss: float = 0.0  # running sum and count for the epoch's mean training loss
    epoch_n: int = 0

    @classmethod
    def from_checkpoint(cls, extra: dict, step: int) -> "_State":
        return cls(
            step=step,
            elapsed=extra.get("seconds", 0.0),
            best=extra.get("best_val_nll"),
            history=extra.get("history", []),
            epoch_loss=extra.get("epoch_loss", 0.0),
            epoch_n=extra.get("epoch_n", 0),
        )


@dataclass
class _Window:
    """The steps since the last step record: their summed loss, count and start time."""

    t: float
    loss: float = 0.0
    n: int = 0


def train(
    data_dir,
    out_dir,
    model_cfg: ModelConfig | None = None,
    train_cfg: TrainConfig | None = None,
    init_from=None,
    resume: bool = False,
    device: str = "auto",
    max_structures: int | None = None,
    cache_dir=None,
    pretrain_dir=None,
    command: str | None = None,
    on_step=None,
    preset: str | None = None,
) -> dict:
    """Train (or fine-tune, or resume) a model on a folder of multiconformer structures.

    `on_step(record)` is called after every step with a runlog.Record of kind "step" whose
    train_loss is that step's; returning True stops the run as SIGTERM would (last.pt saved).
    `preset` names the PRESETS entry the configs started from; checkpoints record it (a resumed
    run keeps its own). Returns {"status": "finished" | "stopped" | "failed", "step", "epoch",
    "best_val_nll", "last", "best", "message"}.
    """
    out_dir = Path(out_dir)
    world, rank, dev = _start_process(device)
    out = _Printer(rank == 0)
    made = rank == 0 and not out_dir.exists()
    try:
        if rank == 0:
            _check_writable(out_dir)
        ckpt, init_ckpt, model, model_cfg, train_cfg = _model_to_train(
            out_dir, model_cfg, train_cfg or TrainConfig(), init_from, resume, out
        )
        if ckpt is not None:
            preset = (ckpt.get("meta") or {}).get("preset")
        model.to(dev)
        split, train_items, val_items = _prepare_data(
            data_dir, out_dir, model, train_cfg, ckpt, init_ckpt, out, rank == 0,
            max_structures=max_structures, cache_dir=cache_dir, pretrain_dir=pretrain_dir,
        )  # fmt: skip
    except BaseException:
        if made:  # a run that failed before it started leaves nothing behind
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    out.line(
        f"{len(train_items)} training and {len(val_items)} validation structures; "
        f"{sum(p.numel() for p in model.parameters())} parameters on {dev}"
        + (f", {world} processes" if world > 1 else "")
    )
    params, optimizer = _optimizer(model, train_cfg)
    steps_per_epoch = math.ceil(len(train_items) / (world * train_cfg.batch_proteins))
    scheduler = cosine_scheduler(optimizer, steps_per_epoch * train_cfg.epochs)
    run = _Run(
        out_dir=out_dir, dev=dev, world=world, rank=rank, out=out, model_cfg=model_cfg,
        train_cfg=train_cfg, model=model, net=model, params=params, optimizer=optimizer,
        scheduler=scheduler, split=split, train_items=train_items, val_items=val_items,
        steps_per_epoch=steps_per_epoch, command=command, preset=preset,
    )  # fmt: skip
    state = _State() if ckpt is None else _restore(run, ckpt)
    if world > 1:
        run.net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None
        )
    try:
        status, message = _loop(run, state, on_step)
    except OutputFolderError as err:
        # Everything saved before stays (checkpoints are written atomically).
        status = "failed"
        message = f"{err}; the run stopped at step {state.step}, checkpoints saved before are kept"
        out.line(message)
    if status == "finished":
        out.line(f"done: {state.step} steps, best val NLL {state.best}")
    if world > 1:
        dist.barrier()
    return {
        "status": status,
        "message": message,
        "step": state.step,
        "epoch": state.step / max(steps_per_epoch, 1),
        "best_val_nll": state.best,
        "last": str(out_dir / "last.pt"),
        "best": str(out_dir / "best.pt"),
    }


# --- setting a run up --------------------------------------------------------------------------


def _start_process(device: str) -> tuple[int, int, torch.device]:
    """(world size, rank, device) of this process; joins the torchrun group and sets CPU
    threads."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    dev = resolve_device(device, int(os.environ.get("LOCAL_RANK", "0")))
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    if dev.type == "cpu":
        _set_threads(int(os.environ.get("LOCAL_WORLD_SIZE", world)))
        # Tiny attention weights and their gradients become denormal floats, which x86 CPUs
        # handle many times slower; flushing them to zero changes nothing measurable.
        torch.set_flush_denormal(True)
    return world, rank, dev


def _check_writable(out_dir: Path) -> None:
    """Make the run folder and write a file into it now, so a folder that cannot be written is
    one clear line before any data is read, not a traceback afterwards."""
    probe = out_dir / f".write-test.{os.getpid()}"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise _output_error(out_dir, err) from None


def _model_to_train(out_dir: Path, model_cfg, train_cfg, init_from, resume: bool, out):
    """(last.pt or None, init checkpoint or None, model, model config, train config): configs
    and weights from last.pt (resume), a checkpoint (fine-tune) or fresh."""
    ckpt, init_ckpt = None, None
    if not resume and any((out_dir / f).exists() for f in ("last.pt", runlog.FILE_NAME)):
        raise FileExistsError(
            f"{out_dir} already holds a run; continue it with --resume or choose another --out"
        )
    saved = [out_dir / f for f in ("last.pt", "best.pt")]
    if resume and (out_dir / runlog.FILE_NAME).exists() and not any(p.exists() for p in saved):
        # Killed before its first checkpoint: there is nothing to continue, so it starts over
        # (the old log's steps would otherwise be read as this run's).
        out.line(f"{out_dir} holds no checkpoint yet (stopped before the first); starting over")
        (out_dir / runlog.FILE_NAME).unlink(missing_ok=True)  # every torchrun rank gets here
        resume = False
    if resume:
        last = out_dir / "last.pt"
        if not last.exists():
            raise FileNotFoundError(f"cannot resume: {last} does not exist")
        ckpt = load_checkpoint(last)
        model, model_cfg = network_from_checkpoint(ckpt)
        train_cfg = TrainConfig.from_dict(ckpt["train_config"])
        out.line(f"resuming {out_dir} at step {ckpt['step']} with its saved settings")
    elif init_from is not None:
        init_ckpt = load_checkpoint(init_from)
        model, model_cfg = network_from_checkpoint(init_ckpt, overrides=model_cfg)
        out.line(f"initialised from {init_from}")
    else:
        model_cfg = model_cfg or ModelConfig()
        torch.manual_seed(train_cfg.seed)
        model = QFitLatent(model_cfg)
    return ckpt, init_ckpt, model, model_cfg, train_cfg


def _prepare_data(data_dir, out_dir: Path, model, train_cfg, ckpt, init_ckpt, out,
                  main_rank: bool, *, max_structures, cache_dir, pretrain_dir):  # fmt: skip
    """(split, training structures, validation structures), each with a residue to train on.

    Writes split.json, and fits the library prior of a fresh model on the training split.
    """
    files = list_structure_files(data_dir)
    for name in refused_links(data_dir):  # never opened, so none of its text reaches the log
        out.line(f"skipped {name}: a link to a file outside this server's allowed data folders")
    if max_structures:
        files = files[:max_structures]
    names = sorted({structure_id(p) for p in files})
    if ckpt is not None:
        split = ckpt["split"]
    else:
        split = choose_split(
            names, train_cfg.val_fraction, train_cfg.seed, init_ckpt["split"] if init_ckpt else None
        )
        if pretrain_dir is not None:
            split["pretrain"], split["pretrain_left_out"] = pretrain_names(
                pretrain_dir, split["val"]
            )
    if split.get("pretrain") and pretrain_dir is None:
        raise ValueError("this run trains on a --pretrain folder too; pass it again to resume")
    if main_rank:
        remove_stale_temporaries(out_dir)  # .last.pt.<pid>-<thread>.tmp of a save killed by kill -9

    feats, skipped = load_dataset(data_dir, cache_dir, names=names)
    for name, reason in skipped:
        out.line(f"skipped {name}: {reason}")
    by_name = {f.name: f for f in feats}
    min_alt = train_cfg.min_altlocs
    usable = [by_name[n] for n in split["train"] if n in by_name]
    train_items = [f for f in usable if f.in_loss(min_alt).any()]
    val_items = [
        by_name[n] for n in split["val"] if n in by_name and by_name[n].in_loss(min_alt).any()
    ]
    library_feats = usable
    if split.get("pretrain"):
        extra, extra_skipped = load_dataset(pretrain_dir, cache_dir, names=split["pretrain"])
        out.line(
            f"pretraining folder: {len(extra)} structures ({len(extra_skipped)} unreadable, "
            f"{len(split.get('pretrain_left_out', []))} left out: close to a validation "
            "structure, or held out)"
        )
        train_items += [f for f in extra if f.in_loss(min_alt).any()]
        library_feats = usable + extra
    if ckpt is None and init_ckpt is None and model.cfg.prior_components > 0:
        fit_library_prior(model, library_feats, out)
    n_empty = sum(1 for f in feats if not f.in_loss(min_alt).any())
    if n_empty:
        out.line(f"skipped {n_empty} structures with no residue in R (min_altlocs={min_alt})")
    if not train_items:
        raise ValueError(
            f"no training structure in {data_dir} has a residue in R (min_altlocs={min_alt})"
        )
    if main_rank:  # only once the run can start: a refused run leaves no split.json behind
        try:
            write_json(out_dir / "split.json", split)
        except OSError as err:
            raise _output_error(out_dir / "split.json", err) from None
    return split, train_items, val_items


def _optimizer(model, train_cfg: TrainConfig):
    """(trainable parameters, AdamW over them): everything, or only the head when fine-tuning
    a frozen trunk."""
    if train_cfg.freeze_trunk:
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("head."))
    params = [p for p in model.parameters() if p.requires_grad]
    return params, torch.optim.AdamW(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)


def _restore(run: _Run, ckpt: dict) -> _State:
    """Optimizer, schedule and progress from last.pt; metrics.jsonl loses what came after it."""
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    if ckpt["extra"].get("steps_per_epoch") != run.steps_per_epoch:
        raise CheckpointError("the training data changed since last.pt was written; cannot resume")
    if run.main_rank:
        runlog.truncate(run.metrics_path, ckpt["step"])
    return _State.from_checkpoint(ckpt["extra"], ckpt["step"])


# --- the loop ----------------------------------------------------------------------------------


def _loop(run: _Run, state: _State, on_step) -> tuple[str, str]:
    """Steps until the run's end, a stop request or a non-finite loss: (status, message)."""
    cfg, spe = run.train_cfg, run.steps_per_epoch
    window = _Window(time.perf_counter())
    with _StopFlag() as stop:
        t_last = time.perf_counter()
        while state.step < run.total_steps:
            epoch, pos = divmod(state.step, spe)
            loss, protein = _optimise_step(run, state.step, epoch, pos)
            if not math.isfinite(loss):
                message = (
                    f"loss became {loss} at step {state.step} (protein {protein}); stopped. "
                    f"The last good checkpoint is {run.out_dir / 'last.pt'}; try a lower --lr."
                )
                run.out.line(message)
                return "failed", message
            state.step += 1
            now = time.perf_counter()
            state.elapsed += now - t_last
            t_last = now
            window.loss, window.n = window.loss + loss, window.n + 1
            state.epoch_loss, state.epoch_n = state.epoch_loss + loss, state.epoch_n + 1
            lr = run.optimizer.param_groups[0]["lr"]
            epoch_done = state.step % spe == 0
            if state.step % cfg.log_every == 0 or epoch_done:
                window = _log_window(run, state, window, now, lr)
            run.out.progress(_bar(epoch + 1, cfg.epochs, pos + 1, spe, loss))
            if epoch_done:
                _end_epoch(run, state, epoch + 1, lr)
                t_last = window.t = time.perf_counter()  # validation time is not training time
            elif state.step % cfg.save_every == 0:
                _save(run, state, "last.pt", epoch)
            record = runlog.Record(runlog.STEP, state.step, round(state.step / spe, 4), loss,
                                   lr, round(state.elapsed, 2))  # fmt: skip
            if on_step is not None and on_step(record):
                stop.requested = True
            stop.requested = _all_agree_to_stop(run, stop.requested)
            if stop.requested and state.step < run.total_steps:
                _save(run, state, "last.pt", state.step // spe)
                message = f"stopped at step {state.step}; resume with --resume"
                run.out.line(message)
                return "stopped", message
    return "finished", ""


def _optimise_step(run: _Run, step: int, epoch: int, pos: int) -> tuple[float, str]:
    """One optimizer step over `batch_proteins` crops per process: (loss averaged over the
    processes, name of the last protein). A non-finite loss leaves the weights untouched."""
    cfg = run.train_cfg
    order = epoch_order(len(run.train_items), epoch, cfg.seed, run.world, run.rank)
    run.net.train()
    run.optimizer.zero_grad(set_to_none=True)
    loss_value = torch.zeros((), device=run.dev)
    n_micro = cfg.batch_proteins
    for b in range(n_micro):
        micro = step * n_micro + b
        item = run.train_items[order[(pos * n_micro + b) % len(order)]]
        # Crops and dropout from (seed, step, rank) alone: a resumed run draws the same ones.
        g = torch.Generator().manual_seed(step_seed(cfg.seed, micro, run.rank))
        torch.manual_seed(step_seed(cfg.seed, micro, run.rank))
        f = spatial_crop(item, cfg.crop_size, cfg.min_altlocs, g)
        f = hide_resolution(f, cfg.resolution_dropout, g).to(run.dev)
        loss = protein_loss(run.net(f), f, cfg) / n_micro
        loss.backward()
        loss_value += loss.detach()
    if run.world > 1:
        dist.all_reduce(loss_value)
        loss_value /= run.world
    value = float(loss_value)
    if math.isfinite(value):
        torch.nn.utils.clip_grad_norm_(run.params, cfg.grad_clip)
        run.optimizer.step()
        run.scheduler.step()
    return value, item.name


def _log_window(run: _Run, state: _State, window: _Window, now: float, lr: float) -> _Window:
    """A step record of the mean loss since the last one (and a plain progress line when the
    output is no terminal); returns the next, empty window."""
    rate = window.n * run.world * run.train_cfg.batch_proteins / max(now - window.t, 1e-9)
    mean = window.loss / window.n
    record = runlog.Record(
        runlog.STEP,
        step=state.step,
        epoch=round(state.step / run.steps_per_epoch, 4),
        train_loss=mean,
        lr=lr,
        seconds=round(state.elapsed, 2),
        proteins_per_s=round(rate, 3),
    )
    _log(run, record)
    if not run.out.tty:
        run.out.line(
            f"step {state.step}/{run.total_steps} epoch {record.epoch:.2f} "
            f"loss {mean:.4f} lr {lr:.2e} {rate:.2f} proteins/s"
        )
    return _Window(now)


def _end_epoch(run: _Run, state: _State, epoch: int, lr: float) -> None:
    """Validate after epoch `epoch` (1-based), log its record, save best.pt and last.pt."""
    # Model selection always scores R (SPEC §8), whatever min_altlocs trains on, so runs with
    # min_altlocs 1 and 2 are compared on the same footing.
    val, val_extra = validate(run.net, run.val_items, 2, run.dev, run.world)
    train_mean = state.epoch_loss / max(state.epoch_n, 1)
    state.epoch_loss, state.epoch_n = 0.0, 0
    improved = val is not None and (state.best is None or val < state.best)
    state.best = val if improved else state.best
    record = runlog.Record(
        runlog.EPOCH,
        step=state.step,
        epoch=epoch,
        train_loss=train_mean,
        val_nll=val,
        **val_extra,
        lr=lr,
        seconds=round(state.elapsed, 2),
        best_val_nll=state.best,
    )
    state.history.append(record.to_dict())
    _log(run, record)
    val_text = "n/a (no validation structures)" if val is None else f"{val:.4f}"
    run.out.line(
        f"epoch {epoch}/{run.train_cfg.epochs} train {train_mean:.4f} val NLL {val_text}"
        + "".join(f" {k[4:]} {v:.3f}" for k, v in val_extra.items() if v is not None)
        + f" ({state.elapsed:.0f} s)"
    )
    if improved or val is None:  # without validation, best.pt is simply the latest epoch
        _save(run, state, "best.pt", epoch)
    _save(run, state, "last.pt", epoch)


def _all_agree_to_stop(run: _Run, requested: bool) -> bool:
    """Under torchrun, a stop asked of any process stops all: every rank must leave the loop at
    the same step, or the others would wait forever in the next all_reduce."""
    if run.world == 1:
        return requested
    flag = torch.tensor([float(requested)], device=run.dev)
    dist.all_reduce(flag)
    return bool(flag.item())


def _log(run: _Run, record: runlog.Record) -> None:
    if run.main_rank:
        try:
            runlog.append(run.metrics_path, record)
        except OSError as err:
            raise _output_error(run.metrics_path, err) from None


def _save(run: _Run, state: _State, name: str, epoch: int) -> None:
    """Write checkpoint `name` (rank 0 only) with all `state`, so a resume continues from it."""
    if not run.main_rank:
        return
    try:
        _write_checkpoint(run, state, name, epoch)
    except (OSError, RuntimeError) as err:
        # torch.save reports an unwritable file as a RuntimeError ("cannot be opened"); the
        # previous checkpoint is intact (written atomically).
        raise _output_error(run.out_dir / name, err) from None


def _write_checkpoint(run: _Run, state: _State, name: str, epoch: int) -> None:
    save_checkpoint(
        run.out_dir / name,
        model_cfg=run.model_cfg,
        model=run.model,
        train_cfg=run.train_cfg.to_dict(),
        optimizer=run.optimizer,
        scheduler=run.scheduler,
        step=state.step,
        epoch=epoch,
        split=run.split,
        meta=metadata(
            run.command, metrics=state.history, best_val_nll=state.best, preset=run.preset
        ),
        extra={
            "seconds": state.elapsed,
            "best_val_nll": state.best,
            "history": state.history,
            "steps_per_epoch": run.steps_per_epoch,
            "epoch_loss": state.epoch_loss,
            "epoch_n": state.epoch_n,
        },
    )


def _bar(epoch: int, epochs: int, pos: int, n: int, loss: float, width: int = 30) -> str:
    done = int(width * pos / max(n, 1))
    return f"epoch {epoch}/{epochs} [{'#' * done}{'.' * (width - done)}] {pos}/{n} loss {loss:.4f}"
