"""What determinate progress costs (issue 20): conformer selection in chunks of residues (which
reports between chunks) against the whole structure at once (SELECT_CHUNK above N, as before),
CPU seconds and the step's peak resident memory; how many reports a whole predict makes and its
wall time; and what the counts inside reading and featurising cost.

    OMP_NUM_THREADS=1 python benchmarks/bench_progress.py --residues 5000 15000
    OMP_NUM_THREADS=1 python benchmarks/bench_progress.py --residues 5000 15000 --base 4ba9a9d

Each measurement runs in a fresh process (peak memory is VmHWM, reset when the step starts) on
a tiling of the bundled example (bench_predict_memory.big_structure), shipped weights. The
reading and featurising rows time `read_structure` + `featurize` in one process (CPU time,
which other work on a shared machine does not inflate as it does wall time), best of 5,
without progress (the command line's, `no_tick`) and with a followed one (a Ticker whose
report does nothing), in alternation. `--base REV` also runs the whole predict of that commit
(git archive), for its number of reports and wall time side by side.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The tree measured: this one, or a --base export (the parent process says which).
CODE_ENV = "QFITLATENT_BENCH_CODE"
sys.path[:0] = [os.environ.get(CODE_ENV, str(ROOT)), str(Path(__file__).resolve().parent)]

from bench_predict_memory import big_structure, export, fresh_env, vm  # noqa: E402


def worker(path: str, chunk: int) -> None:
    """In a fresh process: the mixture of `path`, then select_conformers with residue chunks
    of `chunk`; prints one JSON line."""
    from qfitlatent.checkpoint import load_model
    from qfitlatent.ensemble import conformers
    from qfitlatent.predict import N_PROPOSED, predict_many, prepare

    model, _ = load_model()
    prep = prepare(model, path)
    (out,) = predict_many(model, [prep])
    f = prep.features
    conformers.SELECT_CHUNK = chunk
    ticks = []
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
    base = vm("VmRSS")
    cpu = time.process_time()
    conformers.select_conformers(out.mixture, f.chi_defined, f.pi_symmetric, N_PROPOSED,
                                 tick=lambda d, t: ticks.append(d))  # fmt: skip
    cpu = time.process_time() - cpu
    print(json.dumps({"n": f.n_res, "chunk": chunk, "cpu_s": round(cpu, 2),
                      "peak_gb_above_start": round(vm("VmHWM") - base, 3),
                      "ticks": len(ticks)}))  # fmt: skip


def reports(path: str) -> None:
    """In a fresh process: a whole predict with a counting progress; prints one JSON line."""
    from qfitlatent.checkpoint import load_model
    from qfitlatent.predict import predict

    model, _ = load_model()
    said = []
    t0, c0 = time.perf_counter(), time.process_time()
    pred = predict(model, path, progress=lambda f, t: said.append(t))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"n": pred.features.n_res, "reports": len(said), "wall_s": round(wall, 1),
                      "cpu_s": round(cpu, 1)}))  # fmt: skip


def overhead(path: str) -> None:
    """In a fresh process: read_structure + featurize without progress and with a followed one
    (a Ticker that reports to nothing), alternating, best CPU time of 5; prints one JSON line."""
    from qfitlatent.features import featurize
    from qfitlatent.progress import ticker
    from qfitlatent.structure import read_structure

    def once(progress) -> float:
        t0 = time.process_time()
        tick = ticker(progress, 0.0, 0.1, "Reading the structure", "residues")
        parsed = read_structure(path, tick=tick)
        featurize(parsed, ticker(progress, 0.1, 0.25, "Computing features", "residues"))
        return time.process_time() - t0

    said = []
    plain, counted = [], []
    for _ in range(5):
        plain.append(once(None))
        said.clear()
        counted.append(once(lambda f, t: said.append(t)))
    print(json.dumps({"plain_s": round(min(plain), 2), "counted_s": round(min(counted), 2),
                      "reports": len(said)}))  # fmt: skip


def run(path: Path, *args: str, code: Path = ROOT) -> dict:
    """This script with `args` in a fresh process on `path`, measuring the tree at `code`."""
    env = fresh_env(path, code)
    env[CODE_ENV] = str(code)
    out = subprocess.run([sys.executable, __file__, *args], env=env, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--residues", type=int, nargs="+", default=[5000, 15000])
    ap.add_argument("--base", default=None, help="a commit whose whole predict to run as well")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--reports", help=argparse.SUPPRESS)
    ap.add_argument("--overhead", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker[0], int(args.worker[1]))
    if args.reports:
        return reports(args.reports)
    if args.overhead:
        return overhead(args.overhead)
    from qfitlatent.ensemble.conformers import SELECT_CHUNK

    selection, whole, reading = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        base = export(args.base, Path(tmp)) if args.base else None
        for n in args.residues:
            path = Path(tmp) / f"tiled{n}.cif"
            n_real = big_structure(n, path)
            said = run(path, "--reports", str(path))
            before = run(path, "--reports", str(path), code=base) if base else None
            whole.append((n_real, said, before))
            reading.append((n_real, run(path, "--overhead", str(path))))
            for chunk, label in (
                (10**9, "whole (before)"),
                (SELECT_CHUNK, f"{SELECT_CHUNK} at a time"),
            ):
                r = run(path, "--worker", str(path), str(chunk))
                selection.append((n_real, label, r))
            print(f"{n_real:,} residues measured", file=sys.stderr, flush=True)
    print("| N | selection | CPU s | peak GB above start | ticks |")
    print("|---:|---|---:|---:|---:|")
    for n_real, label, r in selection:
        print(f"| {n_real:,} | {label} | {r['cpu_s']} | {r['peak_gb_above_start']} | "
              f"{r['ticks']} |")  # fmt: skip
    based = f" {args.base}: reports, wall s, CPU s |" if base else ""
    print(f"\n| N | reports of a whole predict | wall s | CPU s |{based}")
    print("|---:|---:|---:|---:|" + ("---|" if base else ""))
    for n_real, r, b in whole:
        cell = f" {b['reports']}, {b['wall_s']}, {b['cpu_s']} |" if b else ""
        print(f"| {n_real:,} | {r['reports']} | {r['wall_s']} | {r['cpu_s']} |{cell}")
    print("\n| N | read + featurise CPU s, no progress | with progress | its reports |")
    print("|---:|---:|---:|---:|")
    for n_real, r in reading:
        print(f"| {n_real:,} | {r['plain_s']} | {r['counted_s']} | {r['reports']} |")
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
