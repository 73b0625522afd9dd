"""How far the per-residue inputs alone go at ranking flexible residues (docs/flexibility.md).

    python benchmarks/flex_inputs.py WEIGHTS DATA [--hidden 64] [--steps 400]

Fits small classifiers of `p_flexible` on the inputs the network reads per residue (residue
type, burial counts, environment counts, the header's resolution), on the checkpoint's training
structures in DATA, with the flexibility head's labels (`loss.flex_labels`), and scores them on
its validation structures with the metrics `qfitlatent evaluate` reports. Rows add one input at
a time; "linear" is a logistic regression, "mlp" has one hidden layer. If the network ranks no
better than a small MLP on the same inputs, the inputs, not the network, are what limit it.
"""

import argparse

import torch
import torch.nn.functional as F

from qfitlatent.checkpoint import load_checkpoint
from qfitlatent.dataset import load_dataset
from qfitlatent.eval.metrics import auroc, per_structure_auroc
from qfitlatent.features import Features
from qfitlatent.loss import flex_labels
from qfitlatent.model.embed import counts_input, resolution_input
from qfitlatent.residues import N_TOKENS

INPUTS = ("type", "burial", "environment", "resolution")


def design(f: Features, inputs: tuple[str, ...]) -> torch.Tensor:
    """[N, C] the named inputs of every residue, as the network's embedding sees them."""
    parts = {
        "type": lambda: F.one_hot(f.aatype, N_TOKENS).float(),
        "burial": lambda: counts_input(f.burial.float()),
        "environment": lambda: counts_input(f.environment.float()),
        "resolution": lambda: resolution_input(f.resolution),
    }
    return torch.cat([parts[k]() for k in inputs], dim=-1)


def labelled(feats: list[Features], inputs) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(x [L, C], label [L] bool) per structure that has labels."""
    out = []
    for f in feats:
        label, mask = flex_labels(f)
        if mask.any():
            out.append((design(f, inputs)[mask], label[mask].bool()))
    return out


def fit(rows, hidden: int, steps: int, seed: int = 0):
    """A classifier over standardised inputs, trained full-batch with Adam on the BCE."""
    x = torch.cat([r[0] for r in rows])
    y = torch.cat([r[1] for r in rows]).float()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-3)
    torch.manual_seed(seed)
    c = x.shape[1]
    layers = [torch.nn.Linear(c, hidden), torch.nn.ReLU(), torch.nn.Dropout(0.2)] if hidden else []
    net = torch.nn.Sequential(*layers, torch.nn.Linear(hidden or c, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2 if hidden == 0 else 3e-3, weight_decay=1e-4)
    z = (x - mean) / std
    for _ in range(steps):
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(net(z).squeeze(-1), y).backward()
        opt.step()
    net.eval()
    return lambda xs: net((xs - mean) / std).squeeze(-1).detach()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights")
    p.add_argument("data", help="the folder the checkpoint was trained on")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--steps", type=int, default=400)
    args = p.parse_args()
    split = load_checkpoint(args.weights)["split"]
    train, _ = load_dataset(args.data, names=split["train"])
    val, _ = load_dataset(args.data, names=split["val"])
    print(f"{len(train)} training and {len(val)} validation structures of {args.data}")
    print(f"{'inputs':<41} {'model':<7} {'AUROC per structure':>20} {'pooled':>7} {'BCE':>6}")
    for k in range(1, len(INPUTS) + 1):
        inputs = INPUTS[:k]
        rows_train, rows_val = labelled(train, inputs), labelled(val, inputs)
        for kind, hidden in (("linear", 0), ("mlp", args.hidden)):
            predict = fit(rows_train, hidden, args.steps)
            scores = [predict(x) for x, _ in rows_val]
            labels = [y for _, y in rows_val]
            per, n = per_structure_auroc(scores, labels)
            pooled = auroc(torch.cat(scores), torch.cat(labels))
            bce = F.binary_cross_entropy_with_logits(torch.cat(scores), torch.cat(labels).float())
            row = f"{' + '.join(inputs):<41} {kind:<7} {per:>13.3f} ({n:>2})"
            print(f"{row} {pooled:>7.3f} {bce:>6.3f}")


if __name__ == "__main__":
    main()
