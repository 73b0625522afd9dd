"""`qfitlatent evaluate`: SPEC §8 metrics of a checkpoint against three rotamer-library baselines.

The baselines are fitted on the checkpoint's training split only and scored by the same code as
the model (metrics.score_structure), on the validation split or on every structure in a folder.
"""

import json
import sys

import torch

from .baselines import BaselineOptions, fit_baselines
from .checkpoint import load_model, resolve_device
from .dataset import list_structure_files, load_dataset, split_names, structure_id
from .errors import CheckpointError
from .features import Features
from .metrics import score_structure, summarize

N_SAMPLES = 10  # coverage@S with S = 10 (SPEC §8)
BASELINE_NAMES = ("uniform", "per_aa", "bb_dependent")


@torch.no_grad()
def evaluate(
    model: torch.nn.Module | None,
    feats_val: list[Features],
    feats_train: list[Features],
    *,
    device: str = "cpu",
    n_samples: int = N_SAMPLES,
    seed: int = 0,
    baseline_options: BaselineOptions | None = None,
) -> dict:
    """Metrics of `model` (skipped when None) and of the baselines fitted on `feats_train`.

    Returns {nll, coverage@S, chi1_mode_acc, flex_auroc, residues, altlocs, flex_residues,
    calibration, calibration_occ_weighted, structures, baselines: {name: same keys}}.
    """
    if not feats_val:
        raise ValueError("no structures to evaluate")
    options = baseline_options or BaselineOptions()
    baselines = fit_baselines(feats_train, options)
    scores: dict[str, list] = {name: [] for name in ("model", *BASELINE_NAMES)}
    if model is not None:
        model.eval()
    # One seed per structure, shared by the model and the baselines (common random numbers);
    # a single seed for all would repeat the same draws in every structure.
    for i, f in enumerate(feats_val):
        if model is not None:
            mix = model(f.to(device)).mixture.to("cpu", torch.float32)
            scores["model"].append(score_structure(mix, f, n_samples, seed=seed + i))
        for name in BASELINE_NAMES:
            scores[name].append(
                score_structure(baselines[name].predict(f), f, n_samples, seed=seed + i)
            )
    out = summarize(scores["model"], n_samples) if model is not None else {}
    out["structures"] = len(feats_val)
    out["baselines"] = {name: summarize(scores[name], n_samples) for name in BASELINE_NAMES}
    out["baseline_fit"] = {
        "train_structures": len(feats_train),
        "per_aa_train_loglik": baselines["per_aa"].train_loglik,
        **options.to_dict(),
    }
    return out


def evaluation_split(info: dict, names: list[str], which: str) -> tuple[list[str], list[str], str]:
    """(train names, evaluated names, a note) from the checkpoint's stored split."""
    split = info.get("split") or {}
    train, val = list(split.get("train", [])), list(split.get("val", []))
    note = "the checkpoint's split"
    if not train and not val:
        tc = info.get("train_config") or {}
        s = split_names(names, tc.get("val_fraction", 0.1), tc.get("seed", 0))
        train, val = s["train"], s["val"]
        note = "checkpoint holds no split: recomputed with split_names"
    present = set(names)
    train = [n for n in train if n in present]
    if not train:
        raise CheckpointError(
            "none of the checkpoint's training structures are in this folder; the baselines are "
            "fitted on them, so point --data at the folder the model was trained on"
        )
    if which == "all":
        return train, list(names), note + "; all structures (training ones included) evaluated"
    return train, [n for n in val if n in present], note


def format_table(res: dict, n_samples: int = N_SAMPLES) -> str:
    cov = f"coverage@{n_samples}"
    rows = ([("model", res)] if "nll" in res else []) + list(res["baselines"].items())
    first = rows[0][1]
    lines = [
        f"{res['structures']} structures, {first['residues']} residues in R (n_obs >= 2), "
        f"{first['altlocs']} altlocs, {first['flex_residues']} residues with chi1",
        "",
        f"{'':14}{'NLL (nats)':>12}{cov:>14}{'chi1 mode acc':>15}{'flex AUROC':>12}",
    ]
    for name, r in rows:
        lines.append(
            f"{name:14}{r['nll']:12.3f}{r[cov]:14.3f}"
            f"{r['chi1_mode_acc']:15.3f}{r['flex_auroc']:12.3f}"
        )
    sel = f"{cov}_selected"
    lines += ["", f"{cov} with the conformer selector (distinct peaks) instead of iid draws:"]
    lines += [f"{name:14}{r[sel]:12.3f}  (iid {r[cov]:.3f})" for name, r in rows]
    levels = [c["level"] for c in first["calibration"]]
    lines += ["", "calibration: share of altlocs inside the predicted HDR of mass q",
              f"{'q':14}" + "".join(f"{q:6.1f}" for q in levels)]  # fmt: skip
    for name, r in rows:
        lines.append(f"{name:14}" + "".join(f"{c['observed']:6.2f}" for c in r["calibration"]))
    return "\n".join(lines)


def evaluate_from_args(args) -> int:
    device = resolve_device(args.device)
    model, info = load_model(args.weights, device)
    names = [structure_id(p) for p in list_structure_files(args.data)]
    train_names, eval_names, note = evaluation_split(info, names, args.split)
    if not eval_names:
        print(f"qfitlatent evaluate: no {args.split} structures of the checkpoint in {args.data}",
              file=sys.stderr)  # fmt: skip
        return 2
    feats_train, _ = load_dataset(args.data, args.cache, names=train_names)
    feats_eval, skipped = load_dataset(args.data, args.cache, names=eval_names)
    res = evaluate(model, feats_eval, feats_train, device=device)
    res["split"] = args.split
    res["split_note"] = note
    res["skipped"] = [{"file": n, "reason": r} for n, r in skipped]
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print(f"qfitlatent evaluate: {args.weights.name} on {args.split} ({note})")
        print(format_table(res))
    return 0
