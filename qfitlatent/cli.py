"""`qfitlatent` command line: data-report, train, evaluate, predict, sample, runs.

Thin: each `cmd_<name>` parses nothing itself and calls package functions that the app uses too.
Every number a user types is typed and range-checked by argparse (settings_check), so a bad value
is a usage message and exit code 2, never a traceback.
"""

import argparse
import json
import sys
from pathlib import Path

from .errors import CheckpointError, DeviceError, StructureError
from .settings_check import (
    SettingsError,
    fraction,
    non_negative_int,
    positive_float,
    positive_int,
)


def cmd_data_report(args) -> int:
    from .dataset import data_report, format_report

    report = data_report(args.data, cache_dir=args.cache)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0


def cmd_train(args) -> int:
    from .train import train_from_args

    return train_from_args(args)


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate_from_args

    return evaluate_from_args(args)


def cmd_predict(args) -> int:
    from .predict import predict_from_args

    return predict_from_args(args)


def cmd_runs(args) -> int:
    """The operator's side of the Train page: list runs, stop or delete any, publish one."""
    from . import runs

    root = Path(args.runs) if args.runs else runs.runs_root()
    if args.action == "list":
        for j in runs.list_jobs(root):
            seen = "public" if j.public else "private"
            print(f"{j.name}\t{j.status}\t{seen}\t{j.settings.get('data', '')}")
        return 0
    if not args.name:
        print(f"qfitlatent runs {args.action}: name the run", file=sys.stderr)
        return 2
    try:
        name = runs.clean_name(args.name)
        job = runs.load_job(root / name)
    except (ValueError, OSError):
        print(f"qfitlatent runs: no run called {args.name!r} in {root}", file=sys.stderr)
        return 2
    if args.action == "stop":
        job = runs.stop(job, operator=True)
        print(f"{job.name}: {'stop requested' if job.active else job.status}")
    elif args.action == "delete":
        try:
            runs.delete(job, operator=True)
        except ValueError as err:  # still running
            print(f"qfitlatent runs delete: {err}", file=sys.stderr)
            return 2
        print(f"{job.name}: deleted")
    else:
        job = runs.publish(job, args.action == "publish")
        print(f"{job.name}: {'public' if job.public else 'private'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qfitlatent",
        description="Side-chain conformational ensembles from protein structures.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("data-report", help="what a folder of structures holds for training")
    r.add_argument("data", type=Path, help="folder of .pdb/.cif(.gz) files")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.add_argument("--cache", type=Path, default=None, help="feature cache folder")
    r.set_defaults(func=cmd_data_report)

    t = sub.add_parser("train", help="train or fine-tune a model")
    t.add_argument("--data", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True, help="run folder")
    t.add_argument(
        "--pretrain",
        type=Path,
        default=None,
        help="extra folder of structures used for training only (never validation); with a "
        "MANIFEST.tsv, structures whose closest_multiconf (>= 50%% identity) is a validation "
        "structure are left out",
    )
    t.add_argument(
        "--preset",
        default=None,
        help="start from a named configuration, e.g. qfitlatent-v2 (the shipped weights'); "
        "--set and the flags below override it",
    )
    t.add_argument("--epochs", type=positive_int, default=None)
    t.add_argument("--lr", type=positive_float, default=None)
    t.add_argument("--init-from", type=Path, default=None, help="checkpoint to start from")
    t.add_argument("--freeze-trunk", action="store_true", help="train the output head only")
    t.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="model or training settings, e.g. n_blocks=2 min_altlocs=1",
    )
    t.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    t.add_argument("--seed", type=non_negative_int, default=None)
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    t.add_argument(
        "--max-structures", type=positive_int, default=None, help="use only the first N files"
    )
    t.add_argument("--cache", type=Path, default=None, help="feature cache folder")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser(
        "evaluate", help="metrics of a model against rotamer-library and flexibility baselines"
    )
    e.add_argument("--weights", type=Path, required=True)
    e.add_argument("--data", type=Path, required=True)
    e.add_argument("--split", choices=["val", "all"], default="val")
    e.add_argument("--json", action="store_true")
    e.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    e.add_argument("--cache", type=Path, default=None)
    e.set_defaults(func=cmd_evaluate)

    for name, helptext in (
        ("predict", "mixtures, flexibility table, multiconformer model, sampled ensemble"),
        ("sample", "alias of predict"),
    ):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("structures", nargs="+", type=Path, help="files or folders")
        q.add_argument("--weights", type=Path, default=None)
        q.add_argument("--out", type=Path, required=True)
        q.add_argument("--samples", type=positive_int, default=10)
        q.add_argument("--seed", type=non_negative_int, default=0)
        q.add_argument("--temperature", type=positive_float, default=1.0)
        q.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
        q.add_argument(
            "--threshold",
            type=fraction,
            default=None,
            help="split a residue in multiconformer.pdb where its flexibility is at least this "
            "(default: qfitlatent.multiconf.DEFAULT_THRESHOLD)",
        )
        q.add_argument(
            "--max-conformers",
            type=positive_int,
            default=None,
            help="conformers per split residue, the input's side chain included (default 3)",
        )
        q.add_argument(
            "--min-occupancy", type=fraction, default=None, help="lightest alternative (0.1)"
        )
        q.add_argument(
            "--input-altlocs",
            choices=["keep", "replace"],
            default="keep",
            help="residues with altlocs in the input: keep them as they are, or replace them",
        )
        q.add_argument(
            "--conformers",
            choices=["select", "iid"],
            default="select",
            help="alternatives from the selector's distinct peaks, or from clustered iid draws",
        )
        q.set_defaults(func=cmd_predict)

    u = sub.add_parser("runs", help="operator: list, stop, delete or publish Train-page runs")
    u.add_argument("action", choices=["list", "stop", "delete", "publish", "unpublish"])
    u.add_argument("name", nargs="?", help="run name (all actions but list)")
    u.add_argument("--runs", type=Path, default=None, help="runs folder (default $QFITLATENT_RUNS)")
    u.set_defaults(func=cmd_runs)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (StructureError, CheckpointError, DeviceError, SettingsError, FileNotFoundError) as err:
        print(f"qfitlatent {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
