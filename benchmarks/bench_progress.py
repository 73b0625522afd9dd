"""What determinate progress costs (issue 20): conformer selection in chunks of residues (which
reports between chunks) against the whole structure at once (SELECT_CHUNK above N, as before),
CPU seconds and the step's peak resident memory; and how many reports a whole predict makes.

    OMP_NUM_THREADS=1 python benchmarks/bench_progress.py --residues 5000 15000

Each measurement runs in a fresh process (peak memory is VmHWM, reset when the step starts) on
a tiling of the bundled example (bench_predict_memory.big_structure), shipped weights.
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
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]  # this tree, its benchmarks


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
    base = _vm("VmRSS")
    cpu = time.process_time()
    conformers.select_conformers(out.mixture, f.chi_defined, f.pi_symmetric, N_PROPOSED,
                                 tick=lambda d, t: ticks.append(d))  # fmt: skip
    cpu = time.process_time() - cpu
    print(json.dumps({"n": f.n_res, "chunk": chunk, "cpu_s": round(cpu, 2),
                      "peak_gb_above_start": round(_vm("VmHWM") - base, 3),
                      "ticks": len(ticks)}))  # fmt: skip


def _vm(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 2**20  # kB -> GB
    return float("nan")


def reports(path: str) -> None:
    """In a fresh process: a whole predict with a counting progress; prints one JSON line."""
    from qfitlatent.checkpoint import load_model
    from qfitlatent.predict import predict

    model, _ = load_model()
    said = []
    pred = predict(model, path, progress=lambda f, t: said.append(t))
    print(json.dumps({"n": pred.features.n_res, "reports": len(said)}))


def run(*args: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("QFITLATENT_MAX_MB", "512")
    out = subprocess.run([sys.executable, __file__, *args], env=env, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    from bench_predict_memory import big_structure

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--residues", type=int, nargs="+", default=[5000, 15000])
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--reports", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker[0], int(args.worker[1]))
    if args.reports:
        return reports(args.reports)
    from qfitlatent.ensemble.conformers import SELECT_CHUNK

    print("| N | selection | CPU s | peak GB above start | ticks | reports of a whole predict |")
    print("|---:|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.residues:
            path = Path(tmp) / f"tiled{n}.cif"
            n_real = big_structure(n, path)
            said = run("--reports", str(path))["reports"]
            for chunk, label in (
                (10**9, "whole (before)"),
                (SELECT_CHUNK, f"{SELECT_CHUNK} at a time"),
            ):
                r = run("--worker", str(path), str(chunk))
                print(f"| {n_real:,} | {label} | {r['cpu_s']} | {r['peak_gb_above_start']} | "
                      f"{r['ticks']} | {said} |")  # fmt: skip


if __name__ == "__main__":
    main()
