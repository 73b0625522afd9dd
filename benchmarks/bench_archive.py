"""Archive throughput of `qfitlatent predict --table`: structures per minute with 1 and 2 workers,
each structure in its own forward pass and packed several to a pass (--batch-residues).

    python benchmarks/bench_archive.py       # 40 files of ../shared/data/pretrain, 1 and 2 workers
    python benchmarks/bench_archive.py --n 200 --workers 1 2 4 --weights weights/qfitlatent-v3.pt
    python benchmarks/bench_archive.py --batch-residues 0 1024 4096 --base 8ed855d
    python benchmarks/bench_archive.py --network-only --batch-residues 0 1024 4096

The first --n structure files of --data (sorted by name) go into one list file; each worker
count runs the real command line into a fresh OUT: 1 worker as `python -m qfitlatent predict`,
N workers under `python -m torch.distributed.run --standalone --nproc-per-node N` (torchrun),
every process with OMP_NUM_THREADS=1. Wall time includes starting Python, loading the weights
and merging the table, as a user sees it. Each worker count runs once per --batch-residues value
(0: a forward pass per structure). The tables must agree: equal residues, numbers equal to
residues.csv's rounding (packing changes float rounding only; the script stops if not). With
--base REV (e.g. main) that commit of this repository is exported to a temporary folder first
and its `predict` runs the same files in one process (files on the command line, no table: what
it offers) as the reference row. Numbers depend on the machine's
load: compare rows run back to back, not with numbers from another day.

--network-only times the network alone in this process instead (the files featurised first, not
timed): for each budget the structures in packed passes as `predict` forms them, the budgets
interleaved --repeat times, the medians of wall and process CPU time reported (on a GPU the
wall time is what counts). Far less noisy than whole runs, where the
network is a small part of the time.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qfitlatent import archive, outdir  # noqa: E402
from qfitlatent.dataset import list_structure_files  # noqa: E402


def run(workers: int, batch: int, listing: Path, out: Path, table: Path, args) -> float:
    launch = [sys.executable]
    if workers > 1:
        launch += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={workers}"]
    cmd = [*launch, "-m", "qfitlatent", "predict", "--list", str(listing), "--out", str(out),
           "--table", str(table), "--samples", str(args.samples), "--device", "cpu",
           "--batch-residues", str(batch)]  # fmt: skip
    if args.weights:
        cmd += ["--weights", str(args.weights)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    start, cpu = time.perf_counter(), children_cpu()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)  # fmt: skip
    wall, cpu = time.perf_counter() - start, children_cpu() - cpu
    if not table.is_file():
        sys.exit(f"{workers} worker(s): no table\n{done.stderr[-3000:]}")
    return wall, cpu


def children_cpu() -> float:
    """User + system CPU seconds of every finished child process and its descendants: what a
    run cost, which other jobs on a shared machine change far less than its wall time."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_base(rev: str, files: list[Path], out: Path, tmp: Path, args) -> float:
    """Wall seconds of commit `rev`'s `predict FILES... --out OUT` (one process, no table)."""
    code = tmp / "base"
    code.mkdir()
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(code)], input=tar.stdout, check=True)
    cmd = [sys.executable, "-m", "qfitlatent", "predict", *map(str, files), "--out", str(out),
           "--samples", str(args.samples), "--device", "cpu"]  # fmt: skip
    if args.weights:
        cmd += ["--weights", str(args.weights.resolve())]
    else:
        cmd += ["--weights", str(ROOT / "weights" / "qfitlatent-v3.pt")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(code)}
    start, cpu = time.perf_counter(), children_cpu()
    subprocess.run(cmd, env=env, cwd=code, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, children_cpu() - cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "pretrain")
    p.add_argument("--n", type=int, default=40, help="structures (the first n by name)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--weights", type=Path, default=None, help="default: the shipped weights")
    p.add_argument("--samples", type=int, default=10)
    p.add_argument("--batch-residues", type=int, nargs="+", default=[0, 4096],
                   help="packing budgets to run (0: one structure per forward pass)")  # fmt: skip
    p.add_argument("--base", default=None, help="a commit to compare with, e.g. main")
    p.add_argument("--network-only", action="store_true", help="time the forward passes alone")
    p.add_argument("--repeat", type=int, default=3, help="with --network-only")
    p.add_argument("--device", default="cpu", help="with --network-only: cpu, cuda or auto")
    args = p.parse_args()
    load_before = os.getloadavg()
    if args.network_only:
        return network_only(list_structure_files(args.data)[: args.n], args, load_before)

    files = list_structure_files(args.data)[: args.n]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        listing = tmp / "list.txt"
        listing.write_text("".join(f"{f.resolve()}\n" for f in files))
        rows, first = [], None
        if args.base:
            wall, cpu = run_base(args.base, files, tmp / "out-base", tmp, args)
            n = sum((tmp / "out-base" / name).is_dir() for name in outdir.folder_names(files))
            rows.append((f"{args.base} (1 process, no table)", "–", n, None, wall, cpu))
        for workers in args.workers:
            for batch in args.batch_residues:
                table = tmp / f"t{workers}-{batch}.parquet"
                wall, cpu = run(workers, batch, listing, tmp / f"out{workers}-{batch}", table, args)
                t = archive.read_table(table)
                if first is None:
                    first = t
                else:
                    check_same(t, first, f"{workers} worker(s), --batch-residues {batch}")
                rows.append((workers, batch, t["structure"].nunique(), len(t), wall, cpu))
    base_wall, base_cpu = rows[0][-2:]
    print(f"{len(files)} files of {args.data.name}, --samples {args.samples}, "
          f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} before and "
          f"{os.getloadavg()[0]:.1f} after\n")  # fmt: skip
    print("| workers | --batch-residues | structures predicted | residues in table | wall (s) "
          "| structures/min | speed-up vs first row | CPU s | CPU s per structure "
          "| CPU, first row / this |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workers, batch, n, res, wall, cpu in rows:
        res = "–" if res is None else f"{res:,}"
        print(f"| {workers} | {batch} | {n} | {res} | {wall:.1f} | {n / wall * 60:.1f} | "
              f"{base_wall / wall:.2f}× | {cpu:.0f} | {cpu / n:.2f} | "
              f"{base_cpu / cpu:.2f}× |")  # fmt: skip


def network_only(files: list[Path], args, load_before) -> None:
    import statistics

    import torch

    from qfitlatent.checkpoint import default_weights, load_model, resolve_device
    from qfitlatent.features import load_features
    from qfitlatent.model.packing import forward_many

    torch.set_num_threads(1)
    device = resolve_device(args.device)
    feats = [load_features(f) for f in files]
    model = load_model(args.weights or default_weights(), device)[0].eval()

    def forward(batch):
        out = forward_many(model, batch, device)
        if device.type == "cuda":
            torch.cuda.synchronize()  # the pass, not its launch
        return out

    times = {b: [] for b in args.batch_residues}  # (wall s, CPU s of this process)
    with torch.no_grad():
        forward(feats[:1])  # warm-up
        for _ in range(args.repeat):
            for budget in args.batch_residues:
                start, cpu = time.perf_counter(), time.process_time()
                for batch in archive.packed([(f, f.n_res) for f in feats], budget):
                    forward(batch)
                times[budget].append((time.perf_counter() - start, time.process_time() - cpu))
    n_res = sum(f.n_res for f in feats)
    print(f"{len(files)} files of {args.data.name} ({n_res:,} residues), the network alone on "
          f"{device}, one CPU thread, median of {args.repeat}, load average "
          f"{load_before[0]:.1f} before and {os.getloadavg()[0]:.1f} after\n")  # fmt: skip
    print("| --batch-residues | forward passes | wall s | CPU s | CPU ms per residue "
          "| CPU, first row / this |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|")
    first = statistics.median(c for _, c in times[args.batch_residues[0]])
    for budget, runs in times.items():
        wall, cpu = (statistics.median(x) for x in zip(*runs, strict=True))
        passes = len(list(archive.packed([(f, f.n_res) for f in feats], budget)))
        print(f"| {budget} | {passes} | {wall:.2f} | {cpu:.2f} | {1000 * cpu / n_res:.2f} | "
              f"{first / cpu:.2f}× |")  # fmt: skip


def check_same(t, first, what: str) -> None:
    """Same residues and identities; numbers equal to residues.csv's 4 decimals (a packed pass
    agrees with a structure's own pass to float rounding, which can move a last digit)."""
    import numpy as np

    numbers = t.select_dtypes("number").columns
    if not t.drop(columns=numbers).equals(first.drop(columns=numbers)) or not np.allclose(
        t[numbers], first[numbers], rtol=0, atol=2e-4, equal_nan=True
    ):
        sys.exit(f"the table of {what} differs from the first run's")


if __name__ == "__main__":
    main()
