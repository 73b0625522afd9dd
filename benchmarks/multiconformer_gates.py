"""Issue 11's numbers on the 20 smallest validation structures (the ones the gate test uses).

    python benchmarks/multiconformer_gates.py [--weights W] [--data ../shared/data/multiconf]

Per structure, at the default settings with input altlocs replaced (every residue is ours to
split) and kept (the default): Σ flexibility (expected flexible residues), residues split and
the ratio, alternatives written, rejected for clashes, and the largest overlap among written
alternatives (from the screen; tests/test_multiconf.py recounts it independently).
"""

import argparse
from pathlib import Path

import torch

from qfitlatent.checkpoint import default_weights, load_model
from qfitlatent.ensemble.multiconf import SplitOptions
from qfitlatent.predict import predict

N_STRUCTURES = 20


def n_protein(path: Path) -> int:
    """Protein residues the network reads (the written model holds waters and ligands too)."""
    from qfitlatent.structure import read_structure

    return len(read_structure(path).residues)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=default_weights())
    p.add_argument("--data", type=Path, default=Path("../shared/data/multiconf"))
    p.add_argument(
        "--threshold",
        type=float,
        default=SplitOptions().resolved().threshold,
        help="split threshold to check (default: the shipped default)",
    )
    args = p.parse_args()
    torch.set_num_threads(1)
    model, info = load_model(args.weights, "cpu")
    names = set(info["split"]["val"])
    files = sorted(f for f in args.data.iterdir() if f.name.split(".")[0] in names)
    files = sorted(files, key=lambda f: f.stat().st_size)[:N_STRUCTURES]
    print(f"weights {args.weights.name}, threshold {args.threshold:g}\n")
    print(
        "| structure | residues | Σ flexibility | split (replace) | split / Σ | alternatives "
        "written | rejected: clash | max written overlap (Å) | ≥ 2 conformers (keep) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    total = [0.0, 0, 0, 0]
    replace = SplitOptions(threshold=args.threshold, input_altlocs="replace")
    keep = SplitOptions(threshold=args.threshold)
    for path in files:
        m = predict(model, path, n_samples=2, options=replace).multiconformer
        kept = predict(model, path, n_samples=2, options=keep).multiconformer
        alts = [r for r in m.rows if r["source"] == "predicted" and r["status"] == "written"]
        clash = sum(r["status"] == "rejected: clash" for r in m.rows)
        worst = max((r["overlap"] for r in alts if r["overlap"] != ""), default=float("nan"))
        n_res = n_protein(path)
        print(f"| {path.name.split('.')[0]} | {n_res} | {m.expected_flexible:.1f} | {m.n_split} "
              f"| {m.n_split / m.expected_flexible:.2f} | {len(alts)} | {clash} | {worst:.2f} "
              f"| {kept.n_multiconformer} |")  # fmt: skip
        total[0] += m.expected_flexible
        total[1] += m.n_split
        total[2] += len(alts)
        total[3] += clash
    print(f"| all | | {total[0]:.1f} | {total[1]} | {total[1] / total[0]:.2f} | {total[2]} "
          f"| {total[3]} | | |")  # fmt: skip


if __name__ == "__main__":
    main()
