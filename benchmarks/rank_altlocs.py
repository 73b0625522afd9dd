"""Where do the residues with observed altlocs rank in a prediction? (docs/flexibility.md)

    python benchmarks/rank_altlocs.py WEIGHTS STRUCTURE [STRUCTURE ...]

Ranks every residue with a χ by the flexibility score that the app and residues.csv use
(`p_flexible`, or the mixture fallback for weights without a flexibility head), and by the
mixture's entropy, and prints where the residues with ≥ 2 side-chain conformers in the input
land. A structure the model has not trained on shows what a user would see.
"""

import argparse

import torch

from qfitlatent.checkpoint import load_model
from qfitlatent.predict import predict


def ranks(score: torch.Tensor, scored: torch.Tensor, marked: torch.Tensor) -> list[int]:
    """1-based ranks (highest score first, ties by index) of the `marked` residues among the
    `scored` ones; score, scored, marked [N]."""
    idx = torch.nonzero(scored).flatten()
    order = idx[torch.argsort(-score[idx].double(), stable=True)]
    position = {int(i): r + 1 for r, i in enumerate(order.tolist())}
    return sorted(position[int(i)] for i in torch.nonzero(marked & scored).flatten())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights")
    p.add_argument("structures", nargs="+")
    args = p.parse_args()
    model, _ = load_model(args.weights)
    for path in args.structures:
        pred = predict(model, path)
        f = pred.features
        scored = f.chi_defined.any(-1)
        marked = f.n_obs >= 2
        name = "p_flexible" if pred.p_flexible is not None else "mixture fallback"
        print(
            f"{path}: {int(scored.sum())} residues with χ, {int((marked & scored).sum())} "
            f"with observed side-chain altlocs"
        )
        for label, score in ((name, pred.flexibility), ("entropy", pred.entropy)):
            r = ranks(score, scored, marked)
            print(f"  by {label:17} ranks {r}  median {r[len(r) // 2]}")


if __name__ == "__main__":
    main()
