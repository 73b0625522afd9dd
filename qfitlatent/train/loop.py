"""Training and fine-tuning: one protein per step, AdamW, cosine annealing to lr/100 (SPEC §3).

A run folder holds split.json, metrics.jsonl, last.pt and best.pt. Everything random is derived
from (seed, step), so a run resumed from last.pt reaches the same weights as one never stopped.
Under `torchrun` each process trains on its share of the proteins (DistributedDataParallel) and
only rank 0 writes files.

CPU threads: $QFITLATENT_THREADS, else $OMP_NUM_THREADS, else all cores (shared among torchrun
processes). On a
machine that other jobs keep busy, 1 thread is often several times faster than 2: a parallel
region waits for its slowest thread, and a descheduled thread stalls all of them.
"""

import csv
import json
import math
import os
import shlex
import signal
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import torch
import torch.distributed as dist

from ..checkpoint import build_model, load_checkpoint, metadata, resolve_device, save_checkpoint
from ..config import PRESETS, ModelConfig, TrainConfig, with_overrides
from ..dataset import (
    list_structure_files,
    load_dataset,
    pdb_group,
    split_names,
    structure_id,
    write_json,
)
from ..errors import CheckpointError
from ..eval.metrics import chi1_mode_hit, per_structure_auroc
from ..features import Features
from ..library import LibraryOptions, fit_library
from ..loss import flex_labels, mixture_nll, protein_loss
from ..model import QFitLatent

# --- command line ------------------------------------------------------------------------------


def split_overrides(items: list[str]) -> tuple[list[str], list[str]]:
    """`key=value` strings sorted into (ModelConfig ones, TrainConfig ones); unknown keys fail."""
    model_keys = {f.name for f in fields(ModelConfig)}
    train_keys = {f.name for f in fields(TrainConfig)}
    model_sets, train_sets = [], []
    for item in items:
        key = item.partition("=")[0].strip()
        if key in model_keys:
            model_sets.append(item)
        elif key in train_keys:
            train_sets.append(item)
        else:
            raise ValueError(
                f"unknown setting {key!r}; known: {', '.join(sorted(model_keys | train_keys))}"
            )
    return model_sets, train_sets


def train_from_args(args) -> int:
    """`qfitlatent train`: returns the process exit status (2 for settings a user can fix)."""
    try:
        model_cfg, train_cfg = configs_from_args(args)
        result = train(
            args.data,
            args.out,
            model_cfg,
            train_cfg,
            init_from=args.init_from,
            resume=args.resume,
            device=args.device,
            max_structures=args.max_structures,
            cache_dir=args.cache,
            pretrain_dir=args.pretrain,
            command="qfitlatent " + shlex.join(sys.argv[1:]),
        )
    except (FileExistsError, ValueError) as err:  # CheckpointError is a ValueError too
        print(f"qfitlatent train: {err}", file=sys.stderr)
        return 2
    return 1 if result["status"] == "failed" else 0


def configs_from_args(args) -> tuple[ModelConfig, TrainConfig]:
    """ModelConfig and TrainConfig from the flags and `--set key=value` items."""
    model_sets, train_sets = split_overrides(list(args.set or []))
    model_base, train_base = ModelConfig(), TrainConfig()
    if getattr(args, "preset", None):
        if args.preset not in PRESETS:
            raise ValueError(f"unknown preset {args.preset!r}; known: {', '.join(PRESETS)}")
        model_base, train_base = PRESETS[args.preset]
    train_cfg = with_overrides(train_base, train_sets)
    for key in ("epochs", "lr", "seed"):
        if getattr(args, key, None) is not None:
            train_cfg = replace(train_cfg, **{key: getattr(args, key)})
    if args.freeze_trunk:
        train_cfg = replace(train_cfg, freeze_trunk=True)
    if args.init_from is not None:
        # Architecture comes from the checkpoint; --set may change what check_compatible allows.
        saved = ModelConfig.from_dict(load_checkpoint(args.init_from)["config"])
        return with_overrides(saved, model_sets), train_cfg
    return with_overrides(model_base, model_sets), train_cfg


# --- pieces of a step --------------------------------------------------------------------------


def spatial_crop(
    feats: Features, crop_size: int, min_altlocs: int, generator: torch.Generator
) -> Features:
    """At most `crop_size` residues nearest (by CA) to a random centre in R (training only)."""
    if crop_size <= 0 or feats.n_res <= crop_size:
        return feats
    candidates = feats.valid(min_altlocs).nonzero().squeeze(-1)
    if len(candidates) == 0:
        candidates = torch.arange(feats.n_res)
    centre = candidates[torch.randint(len(candidates), (1,), generator=generator)]
    dist2 = (feats.trans - feats.trans[centre]).square().sum(-1)  # [N]
    return feats.select(dist2.topk(crop_size, largest=False).indices)


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


def _choose_split(names, train_cfg, ckpt_split=None) -> dict:
    """Reuse a checkpoint's split for the names it knows (no leakage when fine-tuning on the same
    data); names it does not know are split by PDB id as usual."""
    fresh = split_names(names, train_cfg.val_fraction, train_cfg.seed)
    if not ckpt_split:
        return fresh
    known_val, known_train = set(ckpt_split.get("val", [])), set(ckpt_split.get("train", []))
    val = [n for n in names if n in known_val or (n not in known_train and n in set(fresh["val"]))]
    return {"train": [n for n in names if n not in set(val)], "val": val}


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
) -> dict:
    """Train (or fine-tune, or resume) a model on a folder of multiconformer structures.

    `on_step(record)` is called after every step with the step's record; returning True stops the
    run as SIGTERM would (last.pt saved). Returns {"status": "finished" | "stopped" | "failed",
    "step", "epoch", "best_val_nll", "last", "best", "message"}.
    """
    out_dir = Path(out_dir)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    if dev.type == "cpu":
        _set_threads(int(os.environ.get("LOCAL_WORLD_SIZE", world)))
        # Tiny attention weights and their gradients become denormal floats, which x86 CPUs
        # handle many times slower; flushing them to zero changes nothing measurable.
        torch.set_flush_denormal(True)
    main_rank = rank == 0
    out = _Printer(main_rank)
    train_cfg = train_cfg or TrainConfig()

    # Configs, weights and split: from last.pt (resume), a checkpoint (fine-tune) or fresh.
    ckpt, init_ckpt = None, None
    if not resume and any((out_dir / f).exists() for f in ("last.pt", "metrics.jsonl")):
        raise FileExistsError(
            f"{out_dir} already holds a run; continue it with --resume or choose another --out"
        )
    if resume:
        last = out_dir / "last.pt"
        if not last.exists():
            raise FileNotFoundError(f"cannot resume: {last} does not exist")
        ckpt = load_checkpoint(last)
        model, model_cfg = build_model(ckpt)
        train_cfg = TrainConfig.from_dict(ckpt["train_config"])
        out.line(f"resuming {out_dir} at step {ckpt['step']} with its saved settings")
    elif init_from is not None:
        init_ckpt = load_checkpoint(init_from)
        model, model_cfg = build_model(init_ckpt, overrides=model_cfg)
        out.line(f"initialised from {init_from}")
    else:
        model_cfg = model_cfg or ModelConfig()
        torch.manual_seed(train_cfg.seed)
        model = QFitLatent(model_cfg)
    model.to(dev)

    files = list_structure_files(data_dir)
    if max_structures:
        files = files[:max_structures]
    names = sorted({structure_id(p) for p in files})
    if ckpt is not None:
        split = ckpt["split"]
    else:
        split = _choose_split(names, train_cfg, init_ckpt["split"] if init_ckpt else None)
        if pretrain_dir is not None:
            split["pretrain"], split["pretrain_left_out"] = pretrain_names(
                pretrain_dir, split["val"]
            )
    if split.get("pretrain") and pretrain_dir is None:
        raise ValueError("this run trains on a --pretrain folder too; pass it again to resume")
    if main_rank:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "split.json", split)
        from ..atomic import remove_stale_temporaries

        remove_stale_temporaries(out_dir)  # .last.pt.<pid>-<thread>.tmp of a save killed by kill -9

    feats, skipped = load_dataset(data_dir, cache_dir, names=names)
    for name, reason in skipped:
        out.line(f"skipped {name}: {reason}")
    by_name = {f.name: f for f in feats}
    min_alt = train_cfg.min_altlocs
    train_items = [
        by_name[n] for n in split["train"] if n in by_name and by_name[n].valid(min_alt).any()
    ]
    val_items = [
        by_name[n] for n in split["val"] if n in by_name and by_name[n].valid(min_alt).any()
    ]
    library_feats = [by_name[n] for n in split["train"] if n in by_name]
    if split.get("pretrain"):
        extra, extra_skipped = load_dataset(pretrain_dir, cache_dir, names=split["pretrain"])
        out.line(
            f"pretraining folder: {len(extra)} structures ({len(extra_skipped)} unreadable, "
            f"{len(split.get('pretrain_left_out', []))} left out: close to a validation "
            "structure, or held out)"
        )
        train_items += [f for f in extra if f.valid(min_alt).any()]
        library_feats += extra
    if ckpt is None and init_ckpt is None and model_cfg.prior_components > 0:
        fit_library_prior(model, library_feats, out)
    n_empty = sum(1 for f in feats if not f.valid(min_alt).any())
    if n_empty:
        out.line(f"skipped {n_empty} structures with no residue in R (min_altlocs={min_alt})")
    if not train_items:
        raise ValueError(
            f"no training structure in {data_dir} has a residue in R (min_altlocs={min_alt})"
        )
    out.line(
        f"{len(train_items)} training and {len(val_items)} validation structures; "
        f"{sum(p.numel() for p in model.parameters())} parameters on {dev}"
        + (f", {world} processes" if world > 1 else "")
    )

    # Optimizer over what trains: everything, or only the head when fine-tuning a frozen trunk.
    if train_cfg.freeze_trunk:
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("head."))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    per_step = world * train_cfg.batch_proteins
    steps_per_epoch = math.ceil(len(train_items) / per_step)
    total_steps = steps_per_epoch * train_cfg.epochs
    scheduler = cosine_scheduler(optimizer, total_steps)
    step, elapsed, best, history = 0, 0.0, None, []
    epoch_loss, epoch_n = 0.0, 0  # running sum for the epoch's mean train loss
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        step = ckpt["step"]
        elapsed = ckpt["extra"].get("seconds", 0.0)
        best = ckpt["extra"].get("best_val_nll")
        history = ckpt["extra"].get("history", [])
        epoch_loss, epoch_n = ckpt["extra"].get("epoch_loss", 0.0), ckpt["extra"].get("epoch_n", 0)
        if ckpt["extra"].get("steps_per_epoch") != steps_per_epoch:
            raise CheckpointError(
                "the training data changed since last.pt was written; cannot resume"
            )
        if main_rank:
            _truncate_metrics(out_dir / "metrics.jsonl", step)

    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None
        )

    def save(name: str, epoch: int) -> Path:
        path = out_dir / name
        if main_rank:
            save_checkpoint(
                path,
                model_cfg=model_cfg,
                model=model,
                train_cfg=train_cfg.to_dict(),
                optimizer=optimizer,
                scheduler=scheduler,
                step=step,
                epoch=epoch,
                split=split,
                meta=metadata(command, metrics=history, best_val_nll=best),
                extra={
                    "seconds": elapsed,
                    "best_val_nll": best,
                    "history": history,
                    "steps_per_epoch": steps_per_epoch,
                    "epoch_loss": epoch_loss,
                    "epoch_n": epoch_n,
                },
            )
        return path

    def log(record: dict) -> None:
        if main_rank:
            with open(out_dir / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")

    status, message = "finished", ""
    window_loss, window_n, window_t = 0.0, 0, time.perf_counter()
    with _StopFlag() as stop:
        t_last = time.perf_counter()
        while step < total_steps:
            epoch, pos = divmod(step, steps_per_epoch)
            order = epoch_order(len(train_items), epoch, train_cfg.seed, world, rank)
            net.train()
            optimizer.zero_grad(set_to_none=True)
            loss_value = torch.zeros((), device=dev)
            n_micro = train_cfg.batch_proteins
            for b in range(n_micro):
                micro = step * n_micro + b
                item = train_items[order[(pos * n_micro + b) % len(order)]]
                g = torch.Generator().manual_seed(step_seed(train_cfg.seed, micro, rank))
                torch.manual_seed(step_seed(train_cfg.seed, micro, rank))
                f = spatial_crop(item, train_cfg.crop_size, min_alt, g).to(dev)
                loss = protein_loss(net(f), f, train_cfg) / n_micro
                loss.backward()
                loss_value += loss.detach()
            if world > 1:
                dist.all_reduce(loss_value)
                loss_value /= world
            loss_value = float(loss_value)
            if not math.isfinite(loss_value):
                status = "failed"
                message = (
                    f"loss became {loss_value} at step {step} (protein {item.name}); stopped. "
                    f"The last good checkpoint is {out_dir / 'last.pt'}; try a lower --lr."
                )
                out.line(message)
                break
            torch.nn.utils.clip_grad_norm_(params, train_cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            now = time.perf_counter()
            elapsed += now - t_last
            t_last = now
            window_loss += loss_value
            window_n += 1
            epoch_loss += loss_value
            epoch_n += 1
            lr_now = optimizer.param_groups[0]["lr"]
            record = {
                "step": step,
                "epoch": round(step / steps_per_epoch, 4),
                "train_loss": loss_value,
                "val_nll": None,
                "lr": lr_now,
                "seconds": round(elapsed, 2),
            }
            epoch_done = step % steps_per_epoch == 0
            if step % train_cfg.log_every == 0 or epoch_done:
                rate = window_n * per_step / max(now - window_t, 1e-9)
                log(
                    {
                        **record,
                        "train_loss": window_loss / window_n,
                        "proteins_per_s": round(rate, 3),
                    }
                )
                if not out.tty:
                    out.line(
                        f"step {step}/{total_steps} epoch {record['epoch']:.2f} "
                        f"loss {window_loss / window_n:.4f} lr {lr_now:.2e} {rate:.2f} proteins/s"
                    )
                window_loss, window_n, window_t = 0.0, 0, now
            out.progress(_bar(epoch + 1, train_cfg.epochs, pos + 1, steps_per_epoch, loss_value))
            if epoch_done:
                # Model selection always scores R (SPEC §8), whatever min_altlocs trains on, so
                # runs with min_altlocs 1 and 2 are compared on the same footing.
                val, val_extra = validate(net, val_items, 2, dev, world)
                train_mean = epoch_loss / max(epoch_n, 1)
                epoch_loss, epoch_n = 0.0, 0
                t_last = window_t = time.perf_counter()  # validation time is not training time
                improved = val is not None and (best is None or val < best)
                best = val if improved else best
                summary = {
                    "step": step,
                    "epoch": epoch + 1,
                    "train_loss": train_mean,
                    "val_nll": val,
                    **val_extra,
                    "lr": lr_now,
                    "seconds": round(elapsed, 2),
                    "best_val_nll": best,
                }
                history.append(summary)
                log(summary)
                val_text = "n/a (no validation structures)" if val is None else f"{val:.4f}"
                out.line(
                    f"epoch {epoch + 1}/{train_cfg.epochs} train {train_mean:.4f} "
                    f"val NLL {val_text}"
                    + "".join(f" {k[4:]} {v:.3f}" for k, v in val_extra.items() if v is not None)
                    + f" ({elapsed:.0f} s)"
                )
                if improved or (val is None):
                    save("best.pt", epoch + 1)
                save("last.pt", epoch + 1)
            elif step % train_cfg.save_every == 0:
                save("last.pt", epoch)
            if on_step is not None and on_step(record):
                stop.requested = True
            if world > 1:  # every rank must leave the loop at the same step
                flag = torch.tensor([float(stop.requested)], device=dev)
                dist.all_reduce(flag)
                stop.requested = bool(flag.item())
            if stop.requested and step < total_steps:
                save("last.pt", step // steps_per_epoch)
                status, message = "stopped", f"stopped at step {step}; resume with --resume"
                out.line(message)
                break
    if status == "finished":
        out.line(f"done: {step} steps, best val NLL {best}")
    if world > 1:
        dist.barrier()
    return {
        "status": status,
        "message": message,
        "step": step,
        "epoch": step / max(steps_per_epoch, 1),
        "best_val_nll": best,
        "last": str(out_dir / "last.pt"),
        "best": str(out_dir / "best.pt"),
    }


def _bar(epoch: int, epochs: int, pos: int, n: int, loss: float, width: int = 30) -> str:
    done = int(width * pos / max(n, 1))
    return f"epoch {epoch}/{epochs} [{'#' * done}{'.' * (width - done)}] {pos}/{n} loss {loss:.4f}"


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records written after the checkpoint we resume from: they will be written again."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except ValueError:
            continue
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(k + "\n" for k in keep))
    os.replace(tmp, path)
