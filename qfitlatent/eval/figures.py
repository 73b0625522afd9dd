"""Model-card figures as PNG: learning curve of a run and calibration of an evaluation.

matplotlib is an optional dependency (the `docs` extra), so it is imported inside the functions.

    python -m qfitlatent.eval.figures learning-curve RUN/metrics.jsonl out.png
    python -m qfitlatent.eval.figures calibration eval.json out.png
"""

import argparse
import json
import sys
from pathlib import Path

from ..train import runlog


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


# Per-epoch validation scores beside the NLL, when the run logged them (train.validate).
USER_METRICS = (
    ("val_chi1_acc40", "χ1 within 40° (all residues)"),
    ("val_flex_auroc", "flexibility AUROC (per structure)"),
)


def learning_curve(metrics_path, path) -> Path:
    """The learning curve of a run's metrics.jsonl as a PNG at `path`."""
    return _save(learning_curve_figure(runlog.read(metrics_path)), path)


def calibration_plot(results: dict, path) -> Path:
    """The calibration curves of an evaluation as a PNG at `path`."""
    return _save(calibration_figure(results), path)


def _save(fig, path) -> Path:
    fig.savefig(path)
    _pyplot().close(fig)
    return Path(path)


def learning_curve_figure(records: list[runlog.Record]):
    """Training loss and validation NLL against step (or epoch when records carry no step), and a
    second panel with the per-epoch validation χ1 accuracy and flexibility AUROC when logged."""
    x_key = runlog.x_axis(records)
    # Epoch records repeat the epoch's mean training loss at its last step; the step records
    # already draw it, so the training loss comes from those when the file has any.
    loss_kind = runlog.STEP if runlog.of_kind(records, runlog.STEP) else runlog.EPOCH
    plt = _pyplot()
    scores = [(label, runlog.series(records, runlog.EPOCH, key, x_key))
              for key, label in USER_METRICS]  # fmt: skip
    scores = [s for s in scores if s[1][0]]
    fig, axes = plt.subplots(1, 2 if scores else 1, figsize=(11 if scores else 6, 4), dpi=120)
    ax = axes[0] if scores else axes
    plotted = False
    for key, label, style, kind in (
        ("train_loss", "training loss", "-", loss_kind),
        ("val_nll", "validation NLL", "o-", runlog.EPOCH),
    ):
        xs, ys = runlog.series(records, kind, key, x_key)
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
        for label, (xs, ys) in scores:
            axes[1].plot(xs, ys, "o-", label=label, markersize=3, linewidth=1)
        axes[1].set_xlabel(x_key)
        axes[1].set_ylabel("validation score")
        axes[1].set_title("what a user meets")
        axes[1].legend()
    fig.tight_layout()
    return fig


def calibration_figure(results: dict):
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
    return fig


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
