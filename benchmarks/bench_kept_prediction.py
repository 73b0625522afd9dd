"""Memory one kept app prediction holds, measured against prediction_cache.estimate_bytes.

    python benchmarks/bench_kept_prediction.py                 # 5,868 residues and 163
    python benchmarks/bench_kept_prediction.py --residues 2000

For each size: builds the structure as bench_predict_memory.py does (copies of the bundled
cyclophilin A), computes what the app keeps for it (`ui._compute`: the prediction, the viewer's
PDB index, the seven download files, then the chain profile figure the page adds), and reads the
process's resident memory (glibc's free memory returned with malloc_trim) before and after, with
only the kept object alive. Also measures gemmi's bytes per atom (prediction_cache's constant)
from 20 clones of the largest structure. Prints a markdown table.
"""

import argparse
import ctypes
import gc
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
os.environ.setdefault("OMP_NUM_THREADS", "1")


def rss() -> int:
    """Resident bytes now, after handing freed heap back to the system."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    from bench_predict_memory import EXAMPLE, big_structure

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--residues", type=int, nargs="+", default=[5800, 163])
    args = p.parse_args()

    import gemmi

    from qfitlatent import ui
    from qfitlatent.prediction_cache import estimate_bytes

    weights = ui.default_weights()
    split = {"input_altlocs": "keep"}
    settings = dict(n_samples=10, seed=0, temperature=1.0)
    # Warm up: model load, lazy tables, allocator arenas, so the first size is not charged.
    ui._compute(EXAMPLE.read_bytes(), EXAMPLE.name, weights, "cpu", None, split, **settings)
    rows, largest = [], EXAMPLE
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.residues:
            path = Path(tmp) / f"big{n}.cif"
            n_res = big_structure(n, path) if n > 163 else 163
            if n > 163:
                largest = path
            data = (path if n > 163 else EXAMPLE).read_bytes()
            before = rss()
            result = ui._compute(data, path.name, weights, "cpu", None, split, **settings)
            ui.profile_json(result)  # what the page adds: the profile, kept as figure JSON
            held = rss() - before
            files = sum(len(b) for b in result.downloads.values())
            rows.append((n_res, held, estimate_bytes(result), files))
            del result
        big = gemmi.read_structure(str(largest))
        atoms = big[0].count_atom_sites()
        before = rss()
        clones = [big.clone() for _ in range(20)]
        per_atom = (rss() - before) / (20 * atoms)
        del clones
    print("| residues | held (RSS) MB | estimate MB | of which download files MB |")
    print("|---:|---:|---:|---:|")
    for n_res, held, est, files in rows:
        print(f"| {n_res} | {held / 2**20:.0f} | {est / 2**20:.0f} | {files / 2**20:.0f} |")
    print(f"\ngemmi: {per_atom:.0f} bytes per atom (residues included), {atoms} atoms x 20 clones")


if __name__ == "__main__":
    main()
