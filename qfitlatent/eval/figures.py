"""Model-card figures as PNG: learning curve of a run and calibration of an evaluation.

matplotlib is an optional dependency (the `docs` extra), so it is imported inside the functions.

    python -m qfitlatent.eval.figures learning-curve RUN/metrics.jsonl out.png
    python -m qfitlatent.eval.figures calibration eval.json out.png
"""

import argparse
import json
import math
import sys
from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def read_metrics(path) -> list[dict]:
    """Rows of a run's metrics.jsonl; blank or half-written lines (a live run) are skipped."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _series(rows: list[dict], key: str, x_key: str) -> tuple[list[float], list[float]]:
    """(x, y) of the rows that carry both, in file order, without the history a resume replaced.

    A resumed run continues from its checkpoint's step, so rows logged after that step by the
    interrupted process are stale: a row whose x does not advance drops the earlier rows at or
    beyond its x.
    """
    points: list[tuple[float, float]] = []
    for r in rows:
        x, y = r.get(x_key), r.get(key)
        if _number(x) and _number(y):
            while points and points[-1][0] >= x:
                points.pop()
            points.append((x, y))
    return [p[0] for p in points], [p[1] for p in points]


# Per-epoch validation scores beside the NLL, when the run logged them (train.validate).
USER_METRICS = (
    ("val_chi1_acc40", "χ1 within 40° (all residues)"),
    ("val_flex_auroc", "flexibility AUROC (per structure)"),
)


def learning_curve(metrics_path, path) -> Path:
    """Training loss and validation NLL against step (or epoch when rows carry no step), and a
    second panel with the per-epoch validation χ1 accuracy and flexibility AUROC when logged."""
    rows = read_metrics(metrics_path)
    x_key = "step" if any(_number(r.get("step")) for r in rows) else "epoch"
    # Epoch summaries (rows with a val_nll) repeat the epoch's mean training loss at the last
    # step; the per-step rows already draw it, so take the training loss from those when present.
    step_rows = [r for r in rows if not _number(r.get("val_nll"))]
    plt = _pyplot()
    scores = [(key, label, _series(rows, key, x_key)) for key, label in USER_METRICS]
    scores = [s for s in scores if s[2][0]]
    fig, axes = plt.subplots(1, 2 if scores else 1, figsize=(11 if scores else 6, 4), dpi=120)
    ax = axes[0] if scores else axes
    plotted = False
    for key, label, style, source in (
        ("train_loss", "training loss", "-", step_rows or rows),
        ("val_nll", "validation NLL", "o-", rows),
    ):
        xs, ys = _series(source, key, x_key)
        if xs:
            ax.plot(xs, ys, style, label=label, markersize=3, linewidth=1)
            plotted = True
    ax.set_xlabel(x_key)
    ax.set_ylabel("NLL (nats per residue)")
    ax.set_title("learning curve")
    if plotted:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no train_loss or val_nll rows yet", ha="center", transform=ax.transAxes)
    if scores:
        for _, label, (xs, ys) in scores:
            axes[1].plot(xs, ys, "o-", label=label, markersize=3, linewidth=1)
        axes[1].set_xlabel(x_key)
        axes[1].set_ylabel("validation score")
        axes[1].set_title("what a user meets")
        axes[1].legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def calibration_plot(results: dict, path) -> Path:
    """Observed share of altlocs inside the predicted HDR vs its nominal mass, model and baselines.

    `results` is evaluate()'s dict (or its JSON); a calibrated predictor lies on the diagonal,
    an over-confident one below it.
    """
    curves = {}
    if "calibration" in results:
        curves["model"] = results["calibration"]
    for name, r in results.get("baselines", {}).items():
        if "calibration" in r:
            curves[name] = r["calibration"]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    ax.plot([0, 1], [0, 1], ":", color="grey", label="calibrated")
    for name, curve in curves.items():
        ax.plot([c["level"] for c in curve], [c["observed"] for c in curve], "o-", label=name,
                markersize=3, linewidth=1.5 if name == "model" else 1)  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal mass q of the highest-density region")
    ax.set_ylabel("observed share of altlocs inside")
    ax.set_title("calibration")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m qfitlatent.eval.figures", description=__doc__.split("\n")[0]
    )
    sub = p.add_subparsers(dest="figure", required=True)
    lc = sub.add_parser("learning-curve", help="train loss and val NLL from RUN/metrics.jsonl")
    lc.add_argument("metrics", type=Path)
    lc.add_argument("out", type=Path)
    cal = sub.add_parser(
        "calibration", help="reliability plot from `qfitlatent evaluate --json` output"
    )
    cal.add_argument("results", type=Path)
    cal.add_argument("out", type=Path)
    args = p.parse_args(argv)
    if args.figure == "learning-curve":
        learning_curve(args.metrics, args.out)
    else:
        calibration_plot(json.loads(args.results.read_text()), args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
