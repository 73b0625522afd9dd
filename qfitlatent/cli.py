"""`qfitlatent` command line: data-report, train, evaluate, predict, sample, runs.

Thin: each `cmd_<name>` parses nothing itself and calls package functions that the app uses too.
Every number a user types is typed and range-checked by argparse (settings_check), so a bad value
is a usage message and exit code 2, never a traceback.
"""

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import CheckpointError, DeviceError, OutputError, StructureError
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
    """Exit status 2 for settings a user can fix, 1 when the run failed."""
    import shlex

    from .settings_check import check_model_size
    from .train.loop import train

    try:
        model_cfg, train_cfg = configs_from_args(args)
        # Before the network is built: d_s=4096 n_blocks=64 would allocate 4 G parameters first.
        check_model_size(model_cfg, _trainable_here(), "this machine's memory can train")
        result = train(
            args.data, args.out, model_cfg, train_cfg, init_from=args.init_from,
            resume=args.resume, device=args.device, max_structures=args.max_structures,
            cache_dir=args.cache, pretrain_dir=args.pretrain,
            command="qfitlatent " + shlex.join(sys.argv[1:]), preset=args.preset,
        )  # fmt: skip
    except (FileExistsError, ValueError) as err:  # CheckpointError is a ValueError too
        print(f"qfitlatent train: {err}", file=sys.stderr)
        return 2
    return 1 if result["status"] == "failed" else 0


def _trainable_here() -> int:
    """Parameters this machine's memory could train at all (16 bytes each with AdamW): a
    bound for typos like d_s=4096 n_blocks=64, not a promise that smaller models fit."""
    import os

    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0
    return memory // 16


def configs_from_args(args):
    """(ModelConfig, TrainConfig) from --preset, the flags and `--set key=value` items: the
    preset is the base, --set overrides it, and the flags override both."""
    from dataclasses import replace

    from .checkpoint import load_checkpoint
    from .config import PRESETS, ModelConfig, TrainConfig, split_overrides, with_overrides

    model_sets, train_sets = split_overrides(list(args.set or []))
    model_base, train_base = ModelConfig(), TrainConfig()
    if args.preset:
        if args.preset not in PRESETS:
            raise ValueError(f"unknown preset {args.preset!r}; known: {', '.join(PRESETS)}")
        model_base, train_base = PRESETS[args.preset]
    train_cfg = with_overrides(train_base, train_sets)
    for key in ("epochs", "lr", "seed"):
        if getattr(args, key) is not None:
            train_cfg = replace(train_cfg, **{key: getattr(args, key)})
    if args.freeze_trunk:
        train_cfg = replace(train_cfg, freeze_trunk=True)
    if args.init_from is not None:
        # Architecture comes from the checkpoint; --set may change what check_compatible allows.
        saved = ModelConfig.from_dict(load_checkpoint(args.init_from)["config"])
        return with_overrides(saved, model_sets), train_cfg
    return with_overrides(model_base, model_sets), train_cfg


def cmd_evaluate(args) -> int:
    from .eval.evaluate import evaluate_folder, format_table

    if args.maps is not None:
        return _evaluate_maps(args)
    if args.data is None or args.weights is None:
        print("qfitlatent evaluate: give --weights and --data, or --maps (structures with maps)",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        res = evaluate_folder(
            args.weights, args.data, args.split, args.device, args.cache, args.without_resolution
        )
    except ValueError as err:
        print(f"qfitlatent evaluate: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print(
            f"qfitlatent evaluate: {args.weights.name} on {args.split} ({res['split_note']}; "
            f"resolution {res['resolution']})"
        )
        print(format_table(res))
    return 0


def cmd_predict(args) -> int:
    """Every structure given (files, folders, --list files) into OUT/<name>/ (outdir's naming
    rule), the model loaded once. One structure that fails, for whatever reason, is one line on
    stderr and in OUT/predict-failures.log, and the rest are still predicted; exit status 1 when
    any failed, 2 when nothing could start (weights, settings, an unwritable --out). Under
    torchrun each rank predicts its shard, and --table is written once all are done (archive.py)."""
    from . import archive, outdir
    from .checkpoint import default_weights, load_model, resolve_device, weights_label
    from .dataset import list_structure_files
    from .density.pairing import map_files
    from .ensemble.multiconf import SplitOptions
    from .predict import model_has_no_flex_head

    if args.resume and args.overwrite:
        print("qfitlatent predict: --resume keeps finished folders and --overwrite replaces "
              "them; choose one", file=sys.stderr)  # fmt: skip
        return 2
    if not args.structures and not args.list:
        print("qfitlatent predict: give structure files, folders or --list FILE",
              file=sys.stderr)  # fmt: skip
        return 2
    wrong = _map_arguments(args)
    if wrong:
        print(f"qfitlatent predict: {wrong}", file=sys.stderr)
        return 2
    weights = Path(args.weights) if args.weights is not None else default_weights()
    if not weights.is_file():
        raise CheckpointError(
            f"no model weights at {weights}; pass --weights PATH to a checkpoint "
            "(train one with `qfitlatent train`)"
        )
    ranks = archive.ranks_from_env()
    gpu = 0
    if ranks.world > 1 and args.device != "cpu":
        import torch

        if torch.cuda.is_available():  # one GPU per rank of a machine
            gpu = ranks.local_rank % torch.cuda.device_count()
            torch.cuda.set_device(gpu)
    device = resolve_device(args.device, gpu)  # "cuda" alone would be every rank's GPU 0
    if args.batch_residues is None:  # with maps, a batch would hold every structure's map at once
        with_maps = args.map is not None or args.maps is not None
        args.batch_residues = 0 if with_maps else archive.BATCH_RESIDUES[device.type]
    given = {"threshold": args.threshold, "max_conformers": args.max_conformers,
             "min_occupancy": args.min_occupancy, "input_altlocs": args.input_altlocs,
             "map_proposals": False if args.no_map_proposals else None}  # fmt: skip
    try:
        options = SplitOptions(**{k: v for k, v in given.items() if v is not None})
    except ValueError as err:
        print(f"qfitlatent predict: {err}", file=sys.stderr)
        return 2
    items = [*args.structures, *(p for f in args.list for p in archive.read_list(f))]
    model, _ = load_model(weights, device)
    if (args.map is not None or args.maps is not None) and model_has_no_flex_head(model):
        print(f"qfitlatent predict: {weights.name} predicts no p_flexible, which a map refines; "
              "use weights with a flexibility head (the shipped ones)",
              file=sys.stderr)  # fmt: skip
        return 2
    out = Path(args.out)
    outdir.prepare(out)  # before any prediction: an unwritable --out is one line, at once
    files, failed = [], []
    for item in items:
        try:
            files.extend(list_structure_files(item) if Path(item).is_dir() else [Path(item)])
        except OSError as err:  # a folder this user may not list
            failed.append(Path(item))
            if ranks.rank == 0:  # every rank lists the same folders; one line is enough
                _report_failure(out, Path(item), OutputError(f"cannot list it: {err.strerror}"))
    if args.map is not None and len(files) + len(failed) != 1:
        print(f"qfitlatent predict: --map goes with one structure ({len(files)} given); for "
              "several, put their maps in a folder and give --maps DIR",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        maps_listed = None if args.maps is None else map_files(args.maps)
    except OSError as err:
        print(f"qfitlatent predict: --maps {args.maps}: cannot list it ({err.strerror})",
              file=sys.stderr)  # fmt: skip
        return 2
    # Names for the whole list before sharding: every rank and every re-run agree on them.
    jobs = archive.shard(list(enumerate(zip(files, outdir.folder_names(files), strict=True))),
                         ranks)  # fmt: skip
    failed = failed if ranks.rank == 0 else []
    progress = archive.Progress(len(jobs), ranks.prefix)
    group = archive.Group(ranks)
    label = weights_label(weights)
    prepared = _prepared(model, jobs, out, args, maps_listed, progress, failed)
    for batch in archive.packed(prepared, args.batch_residues):
        for item, result in zip(batch, _network(model, batch, device), strict=True):
            try:
                if isinstance(result, Exception):
                    raise result
                print(_finish_one(model, item, result, args, options, label), flush=True)
                progress.step(ok=True)
            except Exception as err:  # one file's failure, whatever it is, never ends the batch
                failed.append(item.path)
                _report_failure(out, item.path, err)
                progress.step(ok=False)
    progress.finish()
    if args.table is not None:
        _write_table(archive, group, ranks, args.table,
                     [(i, out / name) for i, (_, name) in jobs])  # fmt: skip
    n_failed = group.total(len(failed))
    group.barrier()  # no rank exits (torchrun would stop the others) before all are done
    group.close()
    if n_failed and ranks.rank == 0:
        total = len(files) + sum(p not in files for p in failed)  # unlisted folders count too
        print(f"{n_failed} of {total} input(s) not predicted; the reasons are also in "
              f"{out / outdir.FAILURES_LOG}", file=sys.stderr)  # fmt: skip
    return 1 if n_failed else 0


def _write_table(archive, group, ranks, table: Path, folders) -> None:
    """Each rank writes its shard's rows (finished folders, this run's and earlier ones'), and
    rank 0 merges them once every rank has."""
    part = archive.part_path(table, ranks)
    archive.write_part(folders, part)
    group.barrier()
    if ranks.rank == 0:
        parts = [
            archive.part_path(table, archive.Ranks(r, ranks.world)) for r in range(ranks.world)
        ]
        rows = archive.merge(parts, table)
        print(f"{table}: {rows:,} residues", file=sys.stderr)


def _map_arguments(args) -> str | None:
    """What is wrong with --map / --maps / --map-from-data together, or None."""
    if args.map is not None and args.maps is not None:
        return "give --map FILE (one structure) or --maps DIR (several), not both"
    if args.map_from_data and args.map is None and args.maps is None:
        return "--map-from-data needs a map: --map FILE or --maps DIR"
    if args.maps is not None and not args.maps.is_dir():
        return f"--maps {args.maps}: not a folder"
    return None


@dataclass
class _Job:
    """One structure of the run, read and featurised, waiting for the network."""

    path: Path
    folder: Path
    map_path: Path | None
    prep: object  # predict.Prepared


def _prepared(model, jobs, out: Path, args, maps_listed, progress, failed: list):
    """The run's structures read and featurised, in order: finished ones skipped under
    --resume, and one that cannot be read reported (and counted) and left out."""
    from . import outdir
    from .density.pairing import pair_map
    from .predict import prepare

    for _, (path, name) in jobs:
        if args.resume and outdir.holds_results(out / name):
            progress.skip()  # finished by an earlier run: folders are written whole
            continue
        if args.resume:
            outdir.remove_stale_staging(out / name)  # a killed run's half-written folder
        try:
            map_path = args.map if maps_listed is None else pair_map(path, maps_listed, args.maps)
            outdir.check_free(out / name, args.overwrite)  # before predicting, not after
            prep = prepare(model, path, map_file=map_path, map_from_data=args.map_from_data,
                           all_evidence=args.all_evidence)  # fmt: skip
        except Exception as err:  # one file's failure, whatever it is, never ends the batch
            failed.append(path)
            _report_failure(out, path, err)
            progress.step(ok=False)
            continue
        yield _Job(path, out / name, map_path, prep), prep.features.n_res


def _network(model, batch: list, device) -> list:
    """The network's output for each job of `batch`, from one forward pass; where that pass
    fails, each job's own pass, so a failure is the one structure's (its exception in its place)."""
    from .predict import predict_many

    try:
        return predict_many(model, [job.prep for job in batch], device)
    except Exception as err:
        if len(batch) == 1:
            return [err]
    results = []
    for job in batch:
        try:
            results += predict_many(model, [job.prep], device)
        except Exception as err:
            results.append(err)
    return results


def _finish_one(model, job: _Job, result, args, options, label: str) -> str:
    """Sample and build one structure from the network's output, write its folder whole; the
    line that reports it."""
    from dataclasses import replace

    from . import outdir
    from .predict import finish, outputs
    from .structure import ResidueId

    pred = finish(model, job.prep, result, n_samples=args.samples, seed=args.seed,
                  temperature=args.temperature, options=options,
                  conformers=args.conformers)  # fmt: skip
    path, folder, map_path = job.path, job.folder, job.map_path
    for warning in pred.parsed.warnings:  # what the app shows under the structure
        print(f"{path.name}: warning: {warning}", file=sys.stderr)
    # Every file in OUT/<name>/ starts with <name>_, also where the folder got a suffix.
    pred = replace(pred, parsed=replace(pred.parsed, name=folder.name))
    try:
        files = outputs(pred, label)  # all bytes before any folder, so a failure leaves none
    except Exception as err:
        raise OutputError(f"the prediction ran, but its files could not be made "
                          f"({type(err).__name__}: {err})") from err  # fmt: skip
    outdir.write_folder(folder, files, overwrite=args.overwrite)
    top = ", ".join(
        f"{ResidueId(r['chain'], r['resnum'], r['icode']).label()} {r['resname']}"
        for r in pred.table[:5]
    )
    m = pred.multiconformer
    with_map = ""
    if pred.maps is not None:
        called = int(pred.evidence.scanned.sum())
        with_map = f"; map {map_path.name}: {called} residues called from it"
    return (f"{path.name}: {pred.features.n_res} residues → {folder}; {m.n_split} split "
            f"(expected flexible {m.expected_flexible:.1f}); most flexible: {top}"
            f"{with_map}")  # fmt: skip


def _report_failure(out: Path, path: Path, err: Exception) -> None:
    """One line on stderr; the same line in OUT/predict-failures.log, with the traceback where
    the failure is ours (not the file's, the disk's or the weights')."""
    import datetime
    import traceback

    from . import outdir

    said = isinstance(err, (StructureError, OutputError))  # messages written for the user
    # A bug: a writer failed (an OutputError with a cause), or anything else we did not expect.
    ours = not said or (isinstance(err, OutputError) and err.__cause__ is not None)
    what = "skipped" if isinstance(err, StructureError) else "failed"
    line = " ".join(f"{what} {path}: {err if said else f'{type(err).__name__}: {err}'}".split())
    print(line + (" (traceback in the log)" if ours else ""), file=sys.stderr)
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    detail = "".join(traceback.format_exception(err)) if ours else ""
    try:
        with open(out / outdir.FAILURES_LOG, "a") as log:
            log.write(f"{stamp} {line}\n{detail}")
    except OSError:
        pass  # the disk refused the log too; stderr has the line


def cmd_runs(args) -> int:
    """The operator's side of the Train page: list runs, stop or delete any, publish one."""
    from .train import jobs

    root = Path(args.runs) if args.runs else jobs.runs_root()
    if args.action == "list":
        for j in jobs.list_jobs(root):
            seen = "public" if j.public else "private"
            print(f"{j.name}\t{j.status}\t{seen}\t{j.settings.get('data', '')}")
        return 0
    if not args.name:
        print(f"qfitlatent runs {args.action}: name the run", file=sys.stderr)
        return 2
    try:
        name = jobs.clean_name(args.name)
        job = jobs.load_job(root / name)
    except (ValueError, OSError):
        print(f"qfitlatent runs: no run called {args.name!r} in {root}", file=sys.stderr)
        return 2
    if args.action == "stop":
        job = jobs.stop(job, operator=True)
        print(f"{job.name}: {'stop requested' if job.active else job.status}")
        return 0
    try:  # delete and publish refuse a run that is still going
        if args.action == "delete":
            jobs.delete(job, operator=True)
            print(f"{job.name}: deleted")
        else:
            job = jobs.publish(job, args.action == "publish")
            print(f"{job.name}: {'public' if job.public else 'private'}")
    except ValueError as err:
        print(f"qfitlatent runs {args.action}: {err}", file=sys.stderr)
        return 2
    return 0


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default, where the default is a value a user can read
    (an option whose default is "decided elsewhere" says so in its own help text)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        shown = not (default is None or default is False or default == [] or default is
                     argparse.SUPPRESS)  # fmt: skip
        if action.option_strings and shown and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def _add_device(parser) -> None:
    parser.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto",
        help="where the model runs: auto = the GPU when torch sees one, else the CPU",
    )  # fmt: skip


def _add_cache(parser) -> None:
    parser.add_argument(
        "--cache", type=Path, default=None,
        help="feature cache folder (default: $QFITLATENT_CACHE, else ~/.cache/qfitlatent)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qfitlatent",
        description="Side-chain conformational ensembles from protein crystal structures: per "
        "residue, a mixture over χ1…χ4, the probability that the side chain has two or more "
        "conformers, a multiconformer model and sampled ensembles.",
        epilog="`qfitlatent COMMAND --help` lists a command's options with their defaults. "
        "`sample` is another name for `predict` (same options, same files).",
        formatter_class=HelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, helptext: str, description: str | None = None):
        return sub.add_parser(name, help=helptext, description=description or helptext,
                              formatter_class=HelpFormatter)  # fmt: skip

    for add_command in (_data_report_parser, _train_parser, _evaluate_parser, _predict_parsers,
                        _runs_parser):  # fmt: skip
        add_command(add)
    return p


def _data_report_parser(add) -> None:
    """`qfitlatent data-report`."""
    r = add("data-report", "what a folder of structures holds for training")
    r.add_argument("data", type=Path, help="folder of .pdb/.cif(.gz) files")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    _add_cache(r)
    r.set_defaults(func=cmd_data_report)


def _train_parser(add) -> None:
    """`qfitlatent train`."""
    t = add(
        "train",
        "train or fine-tune a model",
        "Train a model on a folder of multiconformer structures (or fine-tune one with "
        "--init-from). Writes RUN_DIR/best.pt (best validation NLL), last.pt (resumable), "
        "metrics.jsonl and train.log. Unset options take the configuration's defaults "
        "(qfitlatent.config.TrainConfig, or the --preset's).",
    )
    t.add_argument(
        "--data", type=Path, required=True,
        help="folder of .pdb/.cif(.gz) multiconformer structures; a share is held out for "
        "validation (val_fraction, by PDB id)",
    )  # fmt: skip
    t.add_argument("--out", type=Path, required=True, help="run folder")
    t.add_argument(
        "--pretrain",
        type=Path,
        default=None,
        help="extra folder of structures used for training only (never validation); with a "
        "MANIFEST.tsv, structures whose closest_multiconf (>= 50%% identity) is a validation "
        "structure are left out (default: none)",
    )
    t.add_argument(
        "--preset",
        default=None,
        help="start from a named configuration, e.g. qfitlatent-v3 (the shipped weights'); "
        "--set and the flags below override it (default: none, the TrainConfig defaults)",
    )
    t.add_argument(
        "--epochs", type=positive_int, default=None,
        help="passes over the training structures (default: 20, or the preset's)",
    )  # fmt: skip
    t.add_argument(
        "--lr", type=positive_float, default=None,
        help="peak AdamW learning rate, cosine-annealed to lr/100 (default: 3e-4, or the "
        "preset's)",
    )  # fmt: skip
    t.add_argument(
        "--init-from", type=Path, default=None,
        help="checkpoint to start from, e.g. weights/qfitlatent-v3.pt (default: random "
        "initialisation)",
    )  # fmt: skip
    t.add_argument("--freeze-trunk", action="store_true", help="train the output head only")
    t.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="model or training settings, e.g. n_blocks=2 min_altlocs=1",
    )
    t.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    t.add_argument(
        "--seed", type=non_negative_int, default=None,
        help="seed of the split, the initialisation and the batches (default: 0)",
    )  # fmt: skip
    _add_device(t)
    t.add_argument(
        "--max-structures", type=positive_int, default=None,
        help="use only the first N files (default: all)",
    )  # fmt: skip
    _add_cache(t)
    t.set_defaults(func=cmd_train)


def _evaluate_maps(args) -> int:
    from .errors import StructureError
    from .eval import map_eval

    try:
        from .checkpoint import default_weights

        weights = args.weights or default_weights()
        res = map_eval.evaluate_maps(args.maps, weights, args.device, args.map_head)
    except (ValueError, StructureError) as err:
        print(f"qfitlatent evaluate: {err}", file=sys.stderr)
        return 2
    print(json.dumps(res, indent=1) if args.json else map_eval.format_table(res))
    return 0


def _evaluate_parser(add) -> None:
    """`qfitlatent evaluate`."""
    e = add(
        "evaluate",
        "metrics of a model against rotamer-library and flexibility baselines",
        "Score a checkpoint on held-out structures: χ negative log-likelihood per residue, χ1 "
        "and rotamer accuracy, coverage of the input's altlocs, flexibility AUROC and "
        "calibration, next to three rotamer-library baselines on the same residues. Prints one "
        "table (or JSON).",
    )
    e.add_argument(
        "--weights", type=Path,
        help="checkpoint to evaluate (.pt); needed with --data; default with --maps: the "
        "shipped weights",
    )  # fmt: skip
    e.add_argument(
        "--data", type=Path,
        help="the folder the checkpoint was trained on (the split is rebuilt from it); no default: "
        "needed unless --maps is given",
    )  # fmt: skip
    e.add_argument(
        "--maps", type=Path, metavar="DIR",
        help="score p_flexible with and without crystallographic maps instead: DIR holds "
        "multiconformer models (the labels) and their MTZ/CCP4 files, paired by the id their "
        "names start with; the input is each model reduced to one conformer and its maps are "
        "computed from the data (see docs/density.md); default: no maps, score --data",
    )  # fmt: skip
    e.add_argument(
        "--map-head", type=Path, default=None,
        help="map head (.json) for --maps; default: the shipped weights/map-head-v2.json",
    )  # fmt: skip
    e.add_argument(
        "--split", choices=["val", "all"], default="val",
        help="val: only the checkpoint's validation structures; all: every structure",
    )  # fmt: skip
    e.add_argument(
        "--without-resolution", action="store_true",
        help="score as if no file's header gave a resolution: how a model that reads it does "
        "on files without one",
    )  # fmt: skip
    e.add_argument("--json", action="store_true", help="print one JSON object, not a table")
    _add_device(e)
    _add_cache(e)
    e.set_defaults(func=cmd_evaluate)


def _within(kind: type, lo, hi, must: str):
    """An argparse type: a `kind` number from lo to hi (the limits of ensemble/sample.py)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            noun = "whole number" if kind is int else "number"
            raise argparse.ArgumentTypeError(f"{text!r} is not a {noun}") from None
        if not lo <= value <= hi:  # nan fails too
            raise argparse.ArgumentTypeError(f"{text!r} must be {must}")
        return value

    return parse


def _predict_parsers(add) -> None:
    """`qfitlatent predict` and its other name, `sample`."""
    from . import archive
    from .ensemble import sample as sampling
    from .ensemble.multiconf import SplitOptions

    split = SplitOptions().resolved()  # the defaults the help states (no map)
    predict_about = (
        "Predict every structure given: OUT/<name>/ gets <name>_mixture.json (the χ mixtures), "
        "<name>_residues.csv (flexibility per residue), <name>_multiconformer.pdb/.cif (altlocs "
        "where the model predicts them, for refinement), <name>_samples.pdb/.cif (one model per "
        "draw) and <name>_report.csv (why each residue was or was not split): the files the "
        "app offers for download."
    )
    for name, helptext in (
        ("predict", "mixtures, flexibility table, multiconformer model, sampled ensemble"),
        ("sample", "another name for predict: same options, same files"),
    ):
        q = add(name, helptext, predict_about)
        q.add_argument("structures", nargs="*", type=Path, help="PDB/mmCIF files (.gz too) or "
                       "folders of them")  # fmt: skip
        q.add_argument(
            "--list", type=Path, action="append", default=[], metavar="FILE",
            help="a text file of structure paths, one per line (relative to its folder), for "
            "archives too big for a command line; may be given more than once (default: none)",
        )  # fmt: skip
        q.add_argument(
            "--resume", action="store_true",
            help="skip structures whose OUT/<name>/ already holds results (folders are written "
            "whole, so those are finished): re-run a killed archive run with the same inputs "
            "(default: refuse such a structure and report it)",
        )  # fmt: skip
        q.add_argument(
            "--table", type=Path, default=None,
            help="also write one Parquet table of every finished structure of these inputs, one "
            "row per residue (structure, chain, resnum, icode, resname, flexibility, p_flexible, "
            "entropy, χ modes, n_conformers) (default: none)",
        )  # fmt: skip
        q.add_argument(
            "--batch-residues", type=non_negative_int, default=None, metavar="N",
            help="pack consecutive structures into one forward pass of the network, up to N "
            "residues (a larger structure goes alone); 0 passes each alone. Outputs equal "
            "unpacked ones to float rounding (default: "
            f"{archive.BATCH_RESIDUES['cpu']:,} on the CPU, "
            f"{archive.BATCH_RESIDUES['cuda']:,} on a GPU; 0 with maps, as a batch holds every "
            "structure's map at once)",
        )  # fmt: skip
        q.add_argument(
            "--weights", type=Path, default=None,
            help="checkpoint (default: the shipped weights/qfitlatent-v3.pt)",
        )  # fmt: skip
        q.add_argument(
            "--out", type=Path, required=True,
            help="folder for the results: OUT/<name>/ per structure, <name> its file name "
            "without extensions (made safe; -2, -3 where two inputs share it)",
        )  # fmt: skip
        q.add_argument(
            "--overwrite", action="store_true",
            help="replace OUT/<name>/ where it already holds results (default: refuse that "
            "structure and go on with the others)",
        )  # fmt: skip
        q.add_argument(
            "--samples", default=10,
            type=_within(int, 1, sampling.MAX_SAMPLES,
                         f"at least 1 and at most {sampling.MAX_SAMPLES:,}"),
            help=f"iid draws per residue, the models of samples.pdb (1 to "
            f"{sampling.MAX_SAMPLES:,})",
        )  # fmt: skip
        q.add_argument("--seed", type=_within(int, 0, sampling.MAX_SEED, "0 or more and below "
                       "2^64"), default=0, help="seed of the draws (0 to 2^64 - 1)")  # fmt: skip
        q.add_argument(
            "--temperature", default=1.0,
            type=_within(float, sampling.MIN_TEMPERATURE, sampling.MAX_TEMPERATURE,
                         f"a finite number above 0, from {sampling.MIN_TEMPERATURE:g} to "
                         f"{sampling.MAX_TEMPERATURE:g}"),
            help="above 1 flattens the mixtures before sampling, below 1 sharpens them "
            f"({sampling.MIN_TEMPERATURE:g} to {sampling.MAX_TEMPERATURE:g})",
        )  # fmt: skip
        _add_device(q)
        q.add_argument(
            "--threshold",
            type=fraction,
            default=None,
            help="split a residue in the multiconformer model where its flexibility is at least "
            f"this (default: {split.threshold:g}; with a map, the map head's own, see "
            "docs/density.md)",
        )
        q.add_argument(
            "--max-conformers",
            type=positive_int,
            default=None,
            help="conformers per split residue, the input's side chain included (default: "
            f"{split.max_conformers})",
        )
        q.add_argument(
            "--min-occupancy",
            type=fraction,
            default=None,
            help=f"lightest alternative written (default: {split.min_occupancy:g})",
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
        q.add_argument(
            "--map", type=Path, default=None, metavar="MAP",
            help="the structure's density map: an MTZ with map coefficients (2FOFCWT, FWT; "
            "DELFWT/FOFCWT too) or observed data (F/SIGF, I/SIGI: the maps are computed with "
            "servalcat), or a CCP4/MRC map. p_flexible then weighs the map's evidence, and the "
            "multiconformer model keeps only alternatives the map supports, at occupancies "
            "fitted to it. One structure only (default: none)",
        )  # fmt: skip
        q.add_argument(
            "--maps", type=Path, default=None, metavar="DIR",
            help="a folder of maps for several structures: each structure gets the map whose "
            "file name starts with its id (3k0n.pdb: 3k0n.mtz, 3k0n_data.mtz.gz), an MTZ "
            "before a CCP4/MRC map; a structure with none or several is reported and skipped "
            "(default: none)",
        )  # fmt: skip
        q.add_argument(
            "--map-from-data", action="store_true",
            help="compute 2mFo-DFc and mFo-DFc from the MTZ's observed data with this model's "
            "phases even where it holds map coefficients (made with another model); 5-25 s "
            "per structure (default: use the coefficients)",
        )  # fmt: skip
        q.add_argument(
            "--all-evidence", action="store_true",
            help="with a map, also read the near-copy evidence the map head does not use "
            "(residues.csv's fofc_chi2_peak, fofc_shift, two_fofc_side_vs_bb, "
            "two_fofc_tip_vs_bb; empty without this flag)",
        )  # fmt: skip
        q.add_argument(
            "--no-map-proposals", action="store_true",
            help="with a map, try only the network's conformers, not also the one the map "
            "proposes where its difference density peaks",
        )  # fmt: skip
        q.set_defaults(func=cmd_predict)


def _runs_parser(add) -> None:
    """`qfitlatent runs`, the operator's commands."""
    u = add("runs", "operator: list, stop, delete or publish Train-page runs")
    u.add_argument(
        "action", choices=["list", "stop", "delete", "publish", "unpublish"],
        help="list every run; stop or delete one; publish one (its model is then offered to "
        "every visitor) or unpublish it",
    )  # fmt: skip
    u.add_argument("name", nargs="?", help="run name (all actions but list)")
    u.add_argument("--runs", type=Path, default=None, help="runs folder (default $QFITLATENT_RUNS)")
    u.set_defaults(func=cmd_runs)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (StructureError, CheckpointError, DeviceError, OutputError, SettingsError,
            FileNotFoundError) as err:  # fmt: skip
        print(f"qfitlatent {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
