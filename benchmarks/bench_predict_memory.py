"""Peak memory and time of `qfitlatent predict` against structure size (issue #12: bounded
memory; issue #20: structures of any size, memory and time linear in residues).

    OMP_NUM_THREADS=1 python benchmarks/bench_predict_memory.py            # 1k, 5k, 15k, 50k
    python benchmarks/bench_predict_memory.py --residues 15000 --max-residues 12000
    python benchmarks/bench_predict_memory.py --residues 1000 15000 --steps
    python benchmarks/bench_predict_memory.py --residues 300 1000 5000 15000 --base 8ed855d

Builds each test structure by copying the chains of the bundled cyclophilin A model (163
residues) side by side, 60 Å apart so copies do not touch, into one mmCIF (the first copy with
its altlocs, the rest single-conformer). Then runs
`/usr/bin/time -v python -m qfitlatent predict` on it in a fresh process and reads "Maximum
resident set size". The file-size cap (QFITLATENT_MAX_MB, 10 MB by default) is raised to fit
each file, since the size is what is measured here; `--max-residues` sets
QFITLATENT_MAX_RESIDUES for the run, to show the refusal path. Prints a markdown table:
residues, file size, exit code, peak RSS, wall time, CPU time (user + system) and CPU time per
residue, and the last line the command printed. CPU time is what says whether cost is linear on
a shared machine: wall time there grows with everyone else's load.

`--base REV` runs the same command of that commit of this repository (exported with `git
archive` to a temporary folder) on each structure as well, with that commit's own residue cap
(the one before issue 20 refused more than 6,000 residues), and adds its columns and the ratio
of CPU times. The file-size cap is raised for both.

`--steps` adds, per structure, a second fresh process that calls `predict.predict` and
`predict.outputs` (the files the command writes) with the shipped weights and prints each
step's CPU and wall time and peak resident memory (Linux VmHWM, reset at each step by
/proc/self/clear_refs): where time and memory go, without the command's start-up.
"""

import argparse
import math
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
COUNT = re.compile(r": [\d,]+ / [\d,]+ ")  # "Building …: 1,200 / 3,400 side chains"


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


def fresh_env(path: Path, code: Path = ROOT) -> dict:
    """The environment of a fresh process measured on `path`: one thread unless
    OMP_NUM_THREADS says otherwise, the tree at `code` first on the path, and the file-size cap
    (QFITLATENT_MAX_MB) raised to fit the file, whose size is not what is measured."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env["PYTHONPATH"] = str(code) + os.pathsep + env.get("PYTHONPATH", "")
    env["QFITLATENT_MAX_MB"] = str(math.ceil(path.stat().st_size / 1e6) + 1)
    return env


def vm(key: str) -> float:
    """This process's /proc/self/status `key` (VmRSS, VmHWM) in GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 2**20  # kB → GB
    return float("nan")


def measure(path: Path, weights: str | None, max_residues: int | None, code: Path = ROOT) -> dict:
    """The whole command of the tree at `code` on `path` in a fresh process."""
    env = fresh_env(path, code)
    if max_residues is not None:
        env["QFITLATENT_MAX_RESIDUES"] = str(max_residues)
    with tempfile.TemporaryDirectory() as out:
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "qfitlatent", "predict", str(path)]
        weights = weights or str(ROOT / "weights" / "qfitlatent-v3.pt")  # the same for a base
        cmd += ["--out", out, "--device", "cpu", "--weights", weights]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=code)
        wall = time.perf_counter() - t0
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    cpu = sum(
        float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr)
    )
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
        "cpu_s": cpu,
        "said": (said[-1] if said else "").replace(str(path), path.name)[:110],
    }


def export(rev: str, tmp: Path) -> Path:
    """Commit `rev` of this repository as a folder (git archive), to run its command."""
    code = tmp / "base"
    code.mkdir()
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(code)], input=tar.stdout, check=True)
    return code


def steps_worker(path: str) -> None:
    """In a fresh process: predict `path` step by step; print one JSON line per step with its
    wall seconds and peak resident GB (VmHWM, reset when the step starts)."""
    import json

    from qfitlatent.checkpoint import load_model
    from qfitlatent.predict import outputs, predict

    rows = []

    def step(_fraction, text):
        if COUNT.search(text):  # a count within a step (progress.Ticker), not a step
            return
        now, cpu = time.perf_counter(), time.process_time()
        if rows and "t0" in rows[-1]:  # the step before ends here
            last = rows[-1]
            last.update(s=now - last.pop("t0"), cpu_s=cpu - last.pop("c0"), peak_gb=vm("VmHWM"))
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
        name = text.split(" of ")[0].split(" for ")[0].split(",")[0]
        rows.append({"step": name, "t0": now, "c0": cpu})

    model, _ = load_model()
    step(0, "Loading done")
    rows.clear()
    pred = predict(model, path, progress=step, device="cpu")
    rows.pop()  # "Done": no work after it
    step(0, "Writing the output files")
    outputs(pred, "bench")
    step(0, "end")
    rows.pop()
    for r in rows:
        print(json.dumps(r))


def measure_steps(path: Path) -> list[dict]:
    import json

    env = fresh_env(path)
    env["QFITLATENT_MAX_RESIDUES"] = "0"
    code = f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); "
    code += f"import bench_predict_memory as b; b.steps_worker({str(path)!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--residues", type=int, nargs="+", default=[1000, 5000, 15000, 50000])
    p.add_argument("--weights", default=None, help="default: the shipped weights")
    p.add_argument("--max-residues", type=int, default=None, help="default: the server's cap")
    p.add_argument("--steps", action="store_true", help="also time each step in-process")
    p.add_argument("--base", default=None, help="a commit to run side by side, e.g. 8ed855d")
    args = p.parse_args()
    rows, steps, based = [], {}, {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        base_code = export(args.base, Path(tmp)) if args.base else None
        for n in args.residues:  # one at a time: each run has the machine's memory to itself
            path = Path(tmp) / f"big{n}.cif"
            n_res = big_structure(n, path)
            r = measure(path, args.weights, args.max_residues)
            rows.append((n_res, path.stat().st_size / 2**20, r))
            print(f"{n_res} residues: {r}", file=sys.stderr, flush=True)
            if base_code is not None:
                based[n_res] = measure(path, args.weights, None, base_code)
                print(f"{n_res} residues, {args.base}: {based[n_res]}", file=sys.stderr, flush=True)
            if args.steps:
                steps[n_res] = measure_steps(path)
                print(f"{n_res} residues, steps: {steps[n_res]}", file=sys.stderr, flush=True)
    print(
        "| residues | file MB | exit | peak RSS GB | wall s | CPU s | CPU ms per residue "
        "| last line |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for n_res, mb, r in rows:
        print(
            f"| {n_res:,} | {mb:.1f} | {r['rc']} | {r['peak_gb']:.2f} | {r['wall_s']:.0f} "
            f"| {r['cpu_s']:.0f} | {1000 * r['cpu_s'] / n_res:.1f} | {r['said']} |"
        )
    print(f"\nload average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    if based:
        print(f"\n| residues | this tree: exit, peak GB, CPU s, CPU ms/res | {args.base}: exit, "
              "peak GB, CPU s, CPU ms/res | CPU time, base / this tree |")  # fmt: skip
        print("|---:|---|---|---:|")
        for n_res, _, r in rows:
            b = based[n_res]
            ratio = f"{b['cpu_s'] / r['cpu_s']:.2f}×" if b["rc"] == 0 and r["rc"] == 0 else "–"
            cells = [f"{x['rc']}, {x['peak_gb']:.2f}, {x['cpu_s']:.0f}, "
                     f"{1000 * x['cpu_s'] / n_res:.1f}" for x in (r, b)]  # fmt: skip
            print(f"| {n_res:,} | {cells[0]} | {cells[1]} | {ratio} |")
            if b["rc"]:
                print(f"|  | | {args.base} said: {b['said']} | |")
    if steps:
        names = list(next(iter(steps.values())))
        print()
        head = " | ".join(f"{n:,} res: CPU s, CPU ms/res, peak GB" for n in steps)
        print(f"| step | {head} |")
        print("|---|" + "---:|" * len(steps))
        for i, first in enumerate(names):
            cells = [
                f"{rs[i]['cpu_s']:.1f}, {1000 * rs[i]['cpu_s'] / n:.2f}, {rs[i]['peak_gb']:.2f}"
                for n, rs in steps.items()
            ]
            print(f"| {first['step']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
