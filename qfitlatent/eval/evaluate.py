"""`qfitlatent evaluate`: metrics of a checkpoint against three rotamer-library baselines and
two flexibility-only baselines.

The baselines are fitted on the checkpoint's training split only and scored by the same code as
the model (metrics.score_structure, metrics.score_flexibility), on the validation split or on
every structure in a folder.
"""

import torch

from ..checkpoint import load_model, resolve_device
from ..dataset import list_structure_files, load_dataset, split_names, structure_id
from ..errors import CheckpointError
from ..features import Features
from .baselines import FLEX_L2, LibraryOptions, fit_baselines, fit_flex_baselines
from .metrics import (
    PACKER_TOLERANCES_DEG,
    score_flexibility,
    score_structure,
    summarize,
    summarize_flex_probability,
    summarize_flexibility,
)

N_SAMPLES = 10  # coverage@S with S = 10
BASELINE_NAMES = ("uniform", "per_aa", "bb_dependent")
FLEX_BASELINE_NAMES = ("residue_type", "logistic")
# Metrics a flexibility-only predictor has no value for (null in JSON, "–" in the table).
CHI_METRICS = (
    "nll",
    "chi1_mode_acc",
    *(f"chi1_acc@{t}" for t in PACKER_TOLERANCES_DEG),
    "entropy_auroc",
    "entropy_auroc_per_structure",
    "residues",
    "altlocs",
    "chi1_residues",
    "calibration",
    "calibration_occ_weighted",
)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module | None,
    feats_val: list[Features],
    feats_train: list[Features],
    *,
    device: str = "cpu",
    n_samples: int = N_SAMPLES,
    seed: int = 0,
    baseline_options: LibraryOptions | None = None,
) -> dict:
    """Metrics of `model` (skipped when None) and of the baselines fitted on `feats_train`.

    Returns {nll, coverage@S, chi1_mode_acc, chi1_acc@20, chi1_acc@40, flex_score, flex_auroc,
    flex_auroc_per_structure, flex_auroc_structures, entropy_auroc, entropy_auroc_per_structure,
    residues, altlocs, chi1_residues, flex_residues, calibration, calibration_occ_weighted,
    structures, baselines: {name: same keys}, flex_baselines: {name: same keys, χ ones null}}.
    The model's flex_score is p_flexible where it has a flexibility head, else the entropy.
    """
    if not feats_val:
        raise ValueError("no structures to evaluate")
    options = baseline_options or LibraryOptions()
    baselines = fit_baselines(feats_train, options)
    flex_baselines = fit_flex_baselines(feats_train)
    scores: dict[str, list] = {n: [] for n in ("model", *BASELINE_NAMES, *FLEX_BASELINE_NAMES)}
    model_flex = "entropy"
    if model is not None:
        model.eval()
    # One seed per structure, shared by the model and the baselines (common random numbers);
    # a single seed for all would repeat the same draws in every structure.
    for i, f in enumerate(feats_val):
        if model is not None:
            pred = model(f.to(device))
            mix = pred.mixture.to("cpu", torch.float32)
            p_flex = None
            if pred.flex_logit is not None:
                p_flex, model_flex = torch.sigmoid(pred.flex_logit.float()).cpu(), "p_flexible"
            scores["model"].append(
                score_structure(mix, f, n_samples, seed=seed + i, flex_score=p_flex)
            )
        for name in BASELINE_NAMES:
            scores[name].append(
                score_structure(baselines[name].predict(f), f, n_samples, seed=seed + i)
            )
        for name in FLEX_BASELINE_NAMES:
            scores[name].append(score_flexibility(flex_baselines[name].predict_flex(f), f))
    out = {}
    if model is not None:
        probability = scores["model"] if model_flex == "p_flexible" else None
        out = {
            **summarize(scores["model"], n_samples),
            **summarize_flex_probability(probability),
            "flex_score": model_flex,
        }
    out["structures"] = len(feats_val)
    out["baselines"] = {
        name: {
            **summarize(scores[name], n_samples),
            **summarize_flex_probability(None),
            "flex_score": "entropy",
        }
        for name in BASELINE_NAMES
    }
    out["flex_baselines"] = {
        name: {
            **dict.fromkeys((*CHI_METRICS, f"coverage@{n_samples}")),
            **summarize_flexibility(scores[name]),
            **summarize_flex_probability(scores[name]),
            "flex_score": name,
        }
        for name in FLEX_BASELINE_NAMES
    }
    out["baseline_fit"] = {
        "train_structures": len(feats_train),
        "per_aa_train_loglik": baselines["per_aa"].train_loglik,
        **options.to_dict(),
    }
    out["flex_baseline_fit"] = {
        "l2": FLEX_L2,
        **{name: flex_baselines[name].to_dict() for name in FLEX_BASELINE_NAMES},
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


def _cell(value, width: int) -> str:
    """A number to 3 decimals, or "–" where the metric does not apply (None)."""
    return f"{'–':>{width}}" if value is None else f"{value:{width}.3f}"


def format_table(res: dict, n_samples: int = N_SAMPLES) -> str:
    cov = f"coverage@{n_samples}"
    columns = (  # (key, header, width)
        ("nll", "NLL", 8), (cov, f"cov@{n_samples}", 8),
        (f"{cov}_selected", f"sel@{n_samples}", 8), ("chi1_mode_acc", "chi1 mode", 10),
        ("chi1_acc@20", "chi1<=20", 9), ("chi1_acc@40", "chi1<=40", 9),
        ("flex_auroc", "AUROC", 7), ("flex_auroc_per_structure", "AUROC/str", 10),
        ("flex_brier", "Brier", 7), ("flex_expected", "sum p", 10),
    )  # fmt: skip
    rows = [("model", res)] if "nll" in res else []
    if res.get("flex_score") == "p_flexible":
        # The flexibility head against the entropy ranking it replaces, on the same residues.
        entropy_row = {
            "flex_auroc": res["entropy_auroc"],
            "flex_auroc_per_structure": res["entropy_auroc_per_structure"],
        }
        rows.append(("model entropy", entropy_row))
    rows += list(res["baselines"].items()) + list(res.get("flex_baselines", {}).items())
    first = res["baselines"]["uniform"]
    lines = [
        f"{res['structures']} structures: {first['residues']} residues in R (n_obs >= 2) with "
        f"{first['altlocs']} altlocs; {first['chi1_residues']} residues with chi1",
        f"cov@{n_samples}: altlocs in R within 20 deg on every chi of one of {n_samples} iid draws;"
        f" sel@{n_samples}: of the conformer selector's {n_samples} distinct peaks instead;",
        "chi1 mode: heaviest altloc's chi1 within 20 deg of the predicted mode, over R;",
        "chi1<=20, chi1<=40: the same over every residue with chi1 (as side-chain packers report);",
        f"AUROC: flexibility (n_obs >= 2) over {first['flex_residues']} residues with chi1 in "
        "structures with side-chain altlocs;",
        f"AUROC/str: its mean over the {first['flex_auroc_structures']} structures holding both "
        "classes.",
        f"Brier, sum p: of a flexibility score that is a probability, against the "
        f"{res['flex_baselines']['logistic']['flex_observed']} flexible residues among them.",
        f"Flexibility score: {res.get('flex_score', '–')} for the model, entropy for the chi "
        "baselines.",
        "",
        f"{'':14}" + "".join(f"{h:>{w}}" for _, h, w in columns),
    ]
    for name, r in rows:
        lines.append(f"{name:14}" + "".join(_cell(r.get(k), w) for k, _, w in columns))
    curves = [(n, r) for n, r in rows if r.get("calibration")]
    levels = [c["level"] for c in curves[0][1]["calibration"]]
    lines += ["", "calibration: share of altlocs inside the predicted HDR of mass q",
              f"{'q':14}" + "".join(f"{q:6.1f}" for q in levels)]  # fmt: skip
    for name, r in curves:
        lines.append(f"{name:14}" + "".join(f"{c['observed']:6.2f}" for c in r["calibration"]))
    return "\n".join(lines)


def evaluate_folder(
    weights, data, split: str = "val", device="auto", cache=None, without_resolution=False
) -> dict:
    """Score a checkpoint on the `split` structures ("val" or "all") of the folder it was
    trained on, the baselines fitted on its training structures. `without_resolution` scores
    them as if no header gave a resolution. The result carries `split`, `split_note`,
    `resolution` and `skipped` files. ValueError when the folder holds none of them."""
    device = resolve_device(device)
    model, info = load_model(weights, device)
    names = [structure_id(p) for p in list_structure_files(data)]
    train_names, eval_names, note = evaluation_split(info, names, split)
    if not eval_names:
        raise ValueError(f"no {split} structures of the checkpoint in {data}")
    feats_train, _ = load_dataset(data, cache, names=train_names)
    feats_eval, skipped = load_dataset(data, cache, names=eval_names)
    if without_resolution:
        feats_eval = [f.without_resolution() for f in feats_eval]
    res = evaluate(model, feats_eval, feats_train, device=device)
    res["split"] = split
    res["resolution"] = "hidden" if without_resolution else "from the file headers"
    res["split_note"] = note
    res["skipped"] = [{"file": n, "reason": r} for n, r in skipped]
    return res
