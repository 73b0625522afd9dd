"""`qfitlatent` command line: data-report, train, evaluate, predict, sample.

Thin: each `cmd_<name>` parses nothing itself and calls package functions that the app uses too.
"""

import argparse
import json
import sys
from pathlib import Path

from .errors import CheckpointError, DeviceError, StructureError


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
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--lr", type=float, default=None)
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
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    t.add_argument("--max-structures", type=int, default=None, help="use only the first N files")
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
        q.add_argument("--samples", type=int, default=10)
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--temperature", type=float, default=1.0)
        q.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
        q.add_argument(
            "--threshold",
            type=float,
            default=None,
            help="split a residue in multiconformer.pdb where its flexibility is at least this "
            "(default: qfitlatent.multiconf.DEFAULT_THRESHOLD)",
        )
        q.add_argument(
            "--max-conformers",
            type=int,
            default=None,
            help="conformers per split residue, the input's side chain included (default 3)",
        )
        q.add_argument(
            "--min-occupancy", type=float, default=None, help="lightest alternative (0.1)"
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (StructureError, CheckpointError, DeviceError, FileNotFoundError) as err:
        print(f"qfitlatent {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
