"""Fit the map head on synthetic maps: the command that makes `weights/map-head-v*.json`.

    python -m qfitlatent.train.map_head RUN_DIR [--pretrain DIR] [--limit N] [--keep-b]
        [--fits v1|b|cv] [--out FILE]

By default the single-conformer model's B are refined against the synthetic data first, as a
user's refinement leaves them (`density.bfactor`), the fits are picked by the one-SE rule on
the grouped cross-validation (`choose_fit`), and the head is written to `map-head-v2.json` (the
shipped head). `--keep-b` rebuilds v1's kind of head instead: the B as refined with the
altlocs, v1's fits, written to `map-head-v1.json`. So a refit of either never overwrites the
other.

Structures: every X-ray entry of `pretrain/` with side-chain altlocs on at least 3 residues
(MANIFEST `n_sc_altloc_res`), at most 2.5 Å and 600 residues, none of the entries with real maps
(`../shared/data/maps`: those are for validation only). The network never saw their altlocs:
its flexibility head was trained on `multiconf/`. For each one (`synthetic.synthetic_maps`, a
coordinate error drawn between 0.05 and 0.15 Å so R-work spreads over what refinements reach),
the network's `p_flexible` on the single-conformer model, the map's evidence and the label (the
residue has side-chain altlocs in the deposited model) are cached in RUN_DIR, one file per
structure, so a killed run resumes where it stopped. Then every variant of
`posterior.VARIANTS` is scored by 5-fold cross-validation grouped by structure, and the shipped
fits are refitted on all rows.
"""

import argparse
import csv
import json
import time
from pathlib import Path

import gemmi
import numpy as np
import torch

from ..checkpoint import default_weights, load_model, weights_label
from ..density.posterior import (
    CANDIDATES,
    V1_PATH,
    V2_PATH,
    VARIANTS,
    MapHead,
    fit_logistic,
    inputs,
)
from ..density.residue_evidence import FEATURES, residue_evidence
from ..density.synthetic import synthetic_maps
from ..eval.metrics import auroc
from ..features import featurize
from ..structure import from_gemmi

MAP_ENTRIES = {"3K0N", "1G8A", "3SB3", "2PKC", "4MS6", "5C40", "5AGK"}
MAX_RESOLUTION = 2.5
MAX_RESIDUES = 600
MIN_ALTLOC_RESIDUES = 3
FOLDS = 5
UNMODELLED = 0.0
# The head's two fits (with mFo-DFc, 2mFo-DFc only), by the name of the inputs they use; "cv":
# chosen by `choose_fit` from posterior.CANDIDATES on the synthetic cross-validation.
SHIPPED = {"v1": ("both", "both_two_fofc_only"), "b": ("both_b", "both_two_fofc_only_b")}


def chosen(pretrain: Path) -> list[dict]:
    """MANIFEST rows of the structures the head is trained on, in file order."""
    rows = []
    with open(pretrain / "MANIFEST.tsv") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["pdb_id"].upper() in MAP_ENTRIES:
                continue
            if (
                int(row["n_sc_altloc_res"]) >= MIN_ALTLOC_RESIDUES
                and float(row["resolution"] or 99) <= MAX_RESOLUTION
                and int(row["n_protein_res"]) <= MAX_RESIDUES
            ):
                rows.append(row)
    return rows


def structure_rows(
    model, path: Path, d_min: float, seed: int, unmodelled: float, refine_b: bool = True
) -> dict:
    """Cached arrays of one structure: p_network [N], features [N, F], label [N], scanned [N]."""
    multi = gemmi.read_structure(str(path))
    rng = np.random.default_rng(seed)
    jitter = float(rng.uniform(0.05, 0.15))
    single, maps = synthetic_maps(
        multi, d_min, seed, jitter=jitter, unmodelled=unmodelled, refine=refine_b
    )
    parsed = from_gemmi(single.clone(), path.name)
    with torch.no_grad():
        out = model(featurize(parsed))
    p_net = torch.sigmoid(out.flex_logit.float()).numpy()
    evidence = residue_evidence(parsed, maps)
    labels = {rec.id: rec.n_obs > 1 for rec in from_gemmi(multi.clone(), path.name).residues}
    y = np.array([labels.get(rec.id, False) for rec in parsed.residues])
    return {
        "p_network": p_net.astype(np.float64),
        "features": evidence.features,
        "label": y.astype(np.float64),
        "scanned": evidence.scanned,
        "feature_names": np.array(FEATURES),
        "r_work": np.float64(maps.r_work if maps.r_work is not None else np.nan),
        "b_refined": np.bool_(refine_b),
    }


def collect(
    run: Path, pretrain: Path, limit: int | None, unmodelled: float, refine_b: bool = True
) -> list[dict]:
    model, _ = load_model(default_weights(), "cpu")
    model.eval()
    todo = chosen(pretrain)[:limit]
    out = []
    for k, row in enumerate(todo):
        cache = run / f"{row['filename'].split('.')[0]}.npz"
        if not _current(cache, refine_b):
            t0 = time.perf_counter()
            try:
                d_min = max(1.0, float(row["resolution"]))
                arrays = structure_rows(
                    model, pretrain / row["filename"], d_min, k, unmodelled, refine_b
                )
            except Exception as err:  # one bad structure must not end a long run
                print(f"{row['filename']}: skipped ({type(err).__name__}: {err})", flush=True)
                continue
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, **arrays)
            tmp.replace(cache)
            print(
                f"[{k + 1}/{len(todo)}] {row['filename']} {time.perf_counter() - t0:.0f} s "
                f"R-work {float(arrays['r_work']):.3f}",
                flush=True,
            )
        d = dict(np.load(cache))
        d.pop("feature_names")
        d.pop("b_refined")
        d["name"] = row["filename"]
        out.append(d)
    return out


def _current(cache: Path, refine_b: bool) -> bool:
    """The cached rows exist and hold today's features, from maps made the same way (a cache
    from an older feature set, or with the other B, is recomputed, never read as this one)."""
    if not cache.exists():
        return False
    with np.load(cache) as d:
        return (
            "feature_names" in d
            and tuple(d["feature_names"]) == FEATURES
            and "b_refined" in d
            and bool(d["b_refined"]) == refine_b
        )


def stacked(structures: list[dict]):
    """Scanned rows of every structure: (p [R], features [R, F], labels [R], group [R])."""
    keep = [s["scanned"].astype(bool) for s in structures]
    p = np.concatenate([s["p_network"][m] for s, m in zip(structures, keep, strict=True)])
    x = np.concatenate([s["features"][m] for s, m in zip(structures, keep, strict=True)])
    y = np.concatenate([s["label"][m] for s, m in zip(structures, keep, strict=True)])
    g = np.concatenate([np.full(int(m.sum()), i) for i, m in enumerate(keep)])
    return p, x, y, g


def per_structure_auroc(score: np.ndarray, y: np.ndarray, g: np.ndarray) -> np.ndarray:
    """[S] AUROC of each structure with both classes."""
    vals = [auroc(torch.tensor(score[g == i]), torch.tensor(y[g == i])) for i in np.unique(g)]
    return np.array([v for v in vals if v == v], dtype=np.float64)


def mean_auroc(score: np.ndarray, y: np.ndarray, g: np.ndarray) -> float:
    """Mean per-structure AUROC (structures with both classes)."""
    vals = per_structure_auroc(score, y, g)
    return float(vals.mean()) if len(vals) else float("nan")


def choose_fit(per_structure: dict[str, np.ndarray], candidates) -> str:
    """The one-standard-error rule (Breiman et al. 1984), fixed before the real maps are seen:
    the candidate with the fewest inputs whose cross-validated mean per-structure AUROC is within
    one standard error of the best one's; ties by the higher mean. per_structure: variant ->
    [S] held-out AUROC of each synthetic structure."""
    mean = {n: float(per_structure[n].mean()) for n in candidates}
    best = max(candidates, key=mean.get)
    v = per_structure[best]
    se = float(v.std(ddof=1) / np.sqrt(len(v)))
    near = [n for n in candidates if mean[n] >= mean[best] - se]
    return min(near, key=lambda n: (len(VARIANTS[n]), -mean[n]))


def cross_validated_logits(p, x, y, g, names) -> np.ndarray:
    """[R] posterior logit of each row from a fit without its structure's fold."""
    fold = g % FOLDS
    score = np.empty_like(y)
    for k in range(FOLDS):
        train, test = fold != k, fold == k
        fit = fit_logistic(inputs(names, p[train], x[train]), y[train], names)
        score[test] = fit.logit(inputs(names, p[test], x[test]))
    return score


THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.01), 2)


def choose_threshold(prob: np.ndarray) -> float:
    """The split threshold on a posterior, by the network's rule (ensemble.multiconf
    DEFAULT_THRESHOLD): the one whose count of residues at or above it is nearest the expected
    number of flexible residues, Σ p. prob: [R] held-out posteriors."""
    expected = float(prob.sum())
    counts = np.array([(prob >= t).sum() for t in THRESHOLDS])
    return float(THRESHOLDS[int(np.argmin(np.abs(counts - expected)))])


def threshold_table(prob: np.ndarray, y: np.ndarray) -> str:
    """Residues at or above each threshold, precision, recall and F1 against the labels."""
    lines = [f"expected flexible Σp {prob.sum():.0f}, labelled {int(y.sum())}",
             "threshold  above  precision  recall  F1"]  # fmt: skip
    for t in (0.05, 0.1, 0.15, 0.17, 0.2, 0.25, 0.3, 0.4, 0.5):
        above = prob >= t
        tp = float((above & (y == 1)).sum())
        prec, rec = tp / max(int(above.sum()), 1), tp / max(float(y.sum()), 1.0)
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        lines.append(f"{t:9.2f} {int(above.sum()):6d} {prec:10.3f} {rec:7.3f} {f1:.3f}")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    """The command line, with the defaults that --keep-b decides filled in: `refine_b`,
    `fits` and `out`."""
    here = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="folder for the per-structure cache (resumable)")
    parser.add_argument("--pretrain", type=Path, default=here.parent / "shared/data/pretrain")
    parser.add_argument("--limit", type=int, default=None, help="first N structures only")
    parser.add_argument(
        "--out", type=Path, default=None,
        help="default: weights/map-head-v2.json, or weights/map-head-v1.json with --keep-b "
        "(so a refit of one never overwrites the other)",
    )  # fmt: skip
    parser.add_argument(
        "--unmodelled", type=float, default=UNMODELLED,
        help="fraction of residues without altlocs given a thinned side chain in the crystal "
        "(density.synthetic.thin_side_chains); the cache of RUN_DIR was made with one value",
    )  # fmt: skip
    parser.add_argument(
        "--keep-b", action="store_true",
        help="keep the single-conformer model's B as refined with its altlocs (head v1) "
        "instead of refining them against the synthetic data (density.bfactor; head v2)",
    )  # fmt: skip
    parser.add_argument(
        "--fits", choices=[*sorted(SHIPPED), "cv"], default=None,
        help="which variants become the head's two fits (posterior.VARIANTS): v1's six map "
        "numbers, those and the model's side-chain B (b), or the one-SE rule on the synthetic "
        "cross-validation (cv, choose_fit); default: cv, or v1 with --keep-b",
    )  # fmt: skip
    args = parser.parse_args(argv)
    args.refine_b = not args.keep_b
    args.fits = args.fits or ("v1" if args.keep_b else "cv")
    args.out = args.out or (V1_PATH if args.keep_b else V2_PATH)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    args.run.mkdir(parents=True, exist_ok=True)
    structures = collect(args.run, args.pretrain, args.limit, args.unmodelled, args.refine_b)
    p, x, y, g = stacked(structures)
    print(f"{len(structures)} structures, {len(y)} residues scanned, {int(y.sum())} with altlocs")
    r = np.array([float(s["r_work"]) for s in structures])
    print(f"R-work of the single-conformer models: median {np.nanmedian(r):.3f}")
    # Each structure scored by a fit without its fold; [S] per-structure AUROC per variant
    logits = {name: cross_validated_logits(p, x, y, g, names) for name, names in VARIANTS.items()}
    per = {name: per_structure_auroc(logits[name], y, g) for name in VARIANTS}
    cv = {name: float(v.mean()) for name, v in per.items()}
    for name, v in per.items():
        se = v.std(ddof=1) / np.sqrt(len(v))
        print(f"{name:30s} cross-validated mean per-structure AUROC {v.mean():.3f} ± {se:.3f} SE")
    if args.fits == "cv":
        diff_fit, two_fit = (choose_fit(per, CANDIDATES[k]) for k in CANDIDATES)
    else:
        diff_fit, two_fit = SHIPPED[args.fits]
    print(f"fits: {diff_fit} (with mFo-DFc), {two_fit} (2mFo-DFc only)")
    held_out = 1.0 / (1.0 + np.exp(-logits[diff_fit]))
    threshold = choose_threshold(held_out)
    print(threshold_table(held_out, y))
    print(f"split threshold with a map: {threshold:g}")
    fits = {name: fit_logistic(inputs(n, p, x), y, n) for name, n in VARIANTS.items()}
    head = MapHead(
        difference=fits[diff_fit],
        two_fofc_only=fits[two_fit],
        trained_on=(
            f"{len(structures)} pretrain/ X-ray structures with side-chain altlocs, maps "
            f"synthesised from their multiconformer models (servalcat, median R-work "
            f"{np.nanmedian(r):.3f}; unmodelled disorder {args.unmodelled:g}; single-conformer "
            f"B {'refined against the data' if args.refine_b else 'as refined with altlocs'}; "
            f"fits {diff_fit} / {two_fit}"
            f"{' by the one-SE rule on grouped CV' if args.fits == 'cv' else ''}), network "
            f"{weights_label(default_weights())}"
        ),
        ablations={k: v for k, v in fits.items() if k not in (diff_fit, two_fit)},
        cross_validated_auroc=cv,
        split_threshold=threshold,
    )
    head.save(args.out)
    print(f"wrote {args.out}")
    (args.run / "summary.json").write_text(json.dumps({"cv": cv, "n": len(y)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
