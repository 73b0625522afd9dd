"""Featurising time and memory against structure size, this tree side by side with another
revision (default `main`), as a ratio (issue #20: structures of any size).

    OMP_NUM_THREADS=1 python benchmarks/bench_featurize.py
    python benchmarks/bench_featurize.py --residues 300 5000 --baseline-max 5000 --repeat 1

Each structure is the bundled cyclophilin A model tiled to N residues, copies 60 Å apart
(bench_predict_memory.big_structure). Every (tree, N) runs in a fresh process with one thread:
it reads the file with gemmi (not timed), then times `features.featurize` (median of
`--repeat`) and reads the growth of peak resident memory during the first call (Linux VmHWM,
reset before it). The baseline is exported with `git archive` into a temporary folder and
imported from there; above `--baseline-max` residues it is skipped, as its distance matrices
take minutes. `same` says whether both trees gave identical burial and environment counts.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(path: str, repeat: int, out: str) -> None:
    """In a fresh process: featurize `path` with the qfitlatent on PYTHONPATH, print JSON."""
    import statistics
    import time

    import gemmi
    import numpy as np

    import qfitlatent
    from qfitlatent.features import featurize
    from qfitlatent.structure import from_gemmi

    parsed = from_gemmi(gemmi.read_structure(path), Path(path).name)
    status = Path("/proc/self/status")

    def rss_kb(field: str) -> int:
        line = next(ln for ln in status.read_text().splitlines() if ln.startswith(field))
        return int(line.split()[1])

    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = rss_kb("VmRSS:")
    times = []
    for k in range(repeat):
        t0 = time.perf_counter()
        f = featurize(parsed)
        times.append(time.perf_counter() - t0)
        if k == 0:
            peak = rss_kb("VmHWM:") - before
    np.savez(out, burial=f.burial.numpy(), environment=f.environment.numpy())
    print(
        json.dumps(
            {
                "package": str(Path(qfitlatent.__file__).parent),
                "n": f.n_res,
                "s": statistics.median(times),
                "peak_mb": peak / 1024,
            }
        )
    )


def run(tree: Path, path: Path, repeat: int, out: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(tree))
    cmd = [sys.executable, __file__, "--worker", str(path), str(repeat), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree)
    if proc.returncode:
        raise SystemExit(f"featurising {path.name} with {tree} failed:\n{proc.stderr}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(r["package"]) == tree / "qfitlatent", r["package"]  # measured the right code
    return r


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        return worker(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--residues", type=int, nargs="+", default=[300, 1000, 5000, 15000, 50000])
    p.add_argument("--baseline", default="main", help="git revision to compare with")
    p.add_argument("--baseline-max", type=int, default=15000, help="largest N for the baseline")
    p.add_argument("--repeat", type=int, default=3, help="timed calls per (tree, N); median")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_predict_memory import big_structure

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = tmp / "baseline"
        base.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.baseline, "qfitlatent"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        for n in args.residues:
            path = tmp / f"tiled{n}.cif"
            big_structure(n, path)
            new = run(ROOT, path, args.repeat, tmp / "new.npz")
            old, same = None, None
            if n <= args.baseline_max:
                old = run(base, path, args.repeat, tmp / "old.npz")
                import numpy as np

                a, b = np.load(tmp / "new.npz"), np.load(tmp / "old.npz")
                same = all(np.array_equal(a[k], b[k]) for k in ("burial", "environment"))
            rows.append((new, old, same))
    base_name = args.baseline
    print(
        f"| residues | this tree s | {base_name} s | speed-up | this tree peak MB "
        f"| {base_name} peak MB | same counts |"
    )
    print("|---:|---:|---:|---:|---:|---:|:---:|")
    for new, old, same in rows:
        o = old or {}
        print(
            f"| {new['n']:,} | {new['s']:.2f} | {o.get('s', float('nan')):.2f} "
            f"| {o.get('s', float('nan')) / new['s']:.1f}× | {new['peak_mb']:.0f} "
            f"| {o.get('peak_mb', float('nan')):.0f} | {'—' if same is None else same} |"
        )


if __name__ == "__main__":
    main()
