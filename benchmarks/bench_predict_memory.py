"""Peak memory of `qfitlatent predict` on very large structures (issue #12: bounded memory).

    python benchmarks/bench_predict_memory.py                       # 5k and 15k residues
    python benchmarks/bench_predict_memory.py --residues 15000 --max-residues 12000

Builds each test structure by copying the chains of the bundled cyclophilin A model (163
residues) side by side, 60 Å apart so copies do not touch, into one mmCIF (the first copy with
its altlocs, the rest single-conformer). Then runs
`/usr/bin/time -v python -m qfitlatent predict` on it in a fresh process and reads "Maximum
resident set size". `--max-residues` sets QFITLATENT_MAX_RESIDUES for the run, to show the
refusal path. Prints a markdown table: residues, file size, exit code, peak RSS, wall time, and
the last line the command printed.
"""

import argparse
import os
import re
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "qfitlatent" / "data" / "3k0n_qfit.pdb.gz"


def big_structure(n_residues: int, out: Path) -> int:
    """Write an mmCIF with at least `n_residues` protein residues; returns the residue count."""
    import gemmi

    src = gemmi.read_structure(str(EXAMPLE))
    src.setup_entities()
    src.remove_ligands_and_waters()
    src.remove_hydrogens()
    model = src[0]
    # Further copies without altlocs, as most deposited structures are: the file then stays
    # under the reader's 10 MB limit at 15k residues, like the one that ran out of memory.
    plain = src.clone()
    plain.remove_alternative_conformations()
    per_copy = sum(len(ch) for ch in model)
    copies = -(-n_residues // per_copy)
    side = max(1, round(copies ** (1 / 3) + 0.5))
    st = gemmi.Structure()
    st.cell = gemmi.UnitCell(60.0 * side, 60.0 * side, 60.0 * side, 90, 90, 90)
    st.spacegroup_hm = "P 1"
    new = gemmi.Model("1")
    # Two-character chain names (AA, AB, ...), which the PDB format holds, so every output is
    # written and the run measures the whole command.
    letters = string.ascii_uppercase + string.ascii_lowercase + string.digits
    names = (a + b for a in letters for b in letters)
    for c in range(copies):
        shift = gemmi.Position(60.0 * (c % side), 60.0 * (c // side % side), 60.0 * (c // side**2))
        for ch in model if c == 0 else plain[0]:
            copy = gemmi.Chain(next(names))
            for res in ch:
                copy.add_residue(res)
            for res in copy:
                for atom in res:
                    atom.pos = atom.pos + shift
            new.add_chain(copy)
    st.add_model(new)
    st.setup_entities()
    doc = st.make_mmcif_document()
    doc.write_file(str(out))
    return copies * per_copy


def measure(path: Path, weights: str | None, max_residues: int | None) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if max_residues is not None:
        env["QFITLATENT_MAX_RESIDUES"] = str(max_residues)
    with tempfile.TemporaryDirectory() as out:
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "qfitlatent", "predict", str(path)]
        cmd += ["--out", out, "--device", "cpu"] + (["--weights", weights] if weights else [])
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    said = [
        ln
        for ln in (proc.stdout + proc.stderr).splitlines()
        if ln and ln[0] != "\t" and not ln.startswith("Command ")  # /usr/bin/time's own lines
    ]
    said = [ln for ln in said if ln.startswith("skipped ")] or said  # a refusal's reason
    return {
        "rc": proc.returncode,
        "peak_gb": int(peak.group(1)) / 2**20 if peak else float("nan"),
        "wall_s": wall,
        "said": (said[-1] if said else "").replace(str(path), path.name)[:110],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--residues", type=int, nargs="+", default=[5000, 15000])
    p.add_argument("--weights", default=None, help="default: the shipped weights")
    p.add_argument("--max-residues", type=int, default=None, help="default: the server's cap")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.residues:
            path = Path(tmp) / f"big{n}.cif"
            n_res = big_structure(n, path)
            r = measure(path, args.weights, args.max_residues)
            rows.append((n_res, path.stat().st_size / 2**20, r))
    print("| residues | file MB | exit | peak RSS GB | wall s | last line |")
    print("|---:|---:|---:|---:|---:|---|")
    for n_res, mb, r in rows:
        print(
            f"| {n_res} | {mb:.1f} | {r['rc']} | {r['peak_gb']:.2f} | {r['wall_s']:.0f} "
            f"| {r['said']} |"
        )


if __name__ == "__main__":
    main()
