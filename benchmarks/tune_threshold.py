"""Split threshold on the validation split: residues split vs the expected number, per threshold.

    python benchmarks/tune_threshold.py [--weights weights/qfitlatent-v3.pt] \
        [--data ../shared/data/multiconf] [--thresholds 0.3 0.4 0.5 0.6 0.7] [--limit N]

For each validation structure of the checkpoint (its stored split), runs `predict` once per
threshold with input altlocs replaced (so every residue is ours to split) and prints, summed
over the structures: Σ flexibility score (the expected number of flexible residues), residues
at or above the threshold, residues split, and their ratio; and, once, the flexibility score's
AUROC against the input's altlocs (pooled and mean per structure) next to entropy's, and
coverage@10 with the conformer selector against iid draws. Re-run it for new weights and set
`multiconf.DEFAULT_THRESHOLD` to the threshold whose split count is closest to the expected one.
"""

import argparse
import math
import time
from pathlib import Path

import torch

from qfitlatent.checkpoint import default_weights, load_model
from qfitlatent.dataset import list_structure_files, structure_id
from qfitlatent.ensemble.multiconf import SplitOptions
from qfitlatent.eval.metrics import altloc_covered, auroc, selected_covered
from qfitlatent.predict import predict


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=default_weights())
    p.add_argument("--data", type=Path, default=Path("../shared/data/multiconf"))
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.6, 0.7])
    p.add_argument("--limit", type=int, default=None, help="only the first N structures")
    args = p.parse_args()
    torch.set_num_threads(1)
    model, info = load_model(args.weights, "cpu")
    val = set(info["split"]["val"])
    files = [f for f in list_structure_files(args.data) if structure_id(f) in val][: args.limit]
    rows = {t: [0.0, 0, 0] for t in args.thresholds}
    scores, entropies, labels, per_structure = [], [], [], []
    cov_sel, cov_iid = [], []
    start = time.time()
    for path in files:
        for t in args.thresholds:
            options = SplitOptions(threshold=t, input_altlocs="replace")
            pred = predict(model, path, n_samples=10, options=options)
            m = pred.multiconformer
            rows[t][0] += m.expected_flexible
            rows[t][1] += m.n_above_threshold
            rows[t][2] += m.n_split
        f = pred.features
        has = f.chi_mask[:, :, 0].any(-1)
        flexible = (f.n_obs >= 2)[has]
        scores.append(pred.flexibility[has])
        entropies.append(pred.entropy[has])
        labels.append(flexible)
        per_structure.append(
            (auroc(pred.flexibility[has], flexible), auroc(pred.entropy[has], flexible))
        )
        in_r = f.in_r
        sym, chi, mask, occ = f.pi_symmetric[in_r], f.chi[in_r], f.chi_mask[in_r], f.occ[in_r]
        alt = mask.any(-1) & (occ > 0)
        mix_r = pred.mixture.index(in_r)
        cov_sel.append(selected_covered(mix_r, chi, mask, f.chi_defined[in_r], sym, 10)[alt])
        cov_iid.append(altloc_covered(pred.samples[:, in_r], chi, mask, sym)[alt])
    print(f"{len(files)} validation structures, weights {args.weights.name}, "
          f"{time.time() - start:.0f} s; input altlocs replaced\n")  # fmt: skip
    print(f"{'threshold':>10}{'Σ flexibility':>15}{'at/above':>10}{'split':>8}{'split / Σ':>11}")
    for t, (expected, above, split) in rows.items():
        print(f"{t:10.2f}{expected:15.1f}{above:10d}{split:8d}{split / expected:11.2f}")
    s, e, y = torch.cat(scores), torch.cat(entropies), torch.cat(labels)
    print(
        f"\nresidues with χ1: {y.numel()}; with side-chain altlocs in the deposited models: "
        f"{int(y.sum())} ({y.double().mean():.1%}); Σ flexibility over them: {s.sum():.1f}"
    )
    both = [(a, b) for a, b in per_structure if not math.isnan(a)]
    print(
        f"\nflexibility AUROC (residues with altlocs vs not): score {auroc(s, y):.3f} pooled, "
        f"{sum(a for a, _ in both) / len(both):.3f} mean per structure; entropy "
        f"{auroc(e, y):.3f} pooled, {sum(b for _, b in both) / len(both):.3f} per structure"
    )
    sel, iid = torch.cat(cov_sel).double().mean(), torch.cat(cov_iid).double().mean()
    print(f"coverage@10: selector {sel:.3f}, iid draws {iid:.3f} "
          f"({torch.cat(cov_sel).numel()} altlocs in R)")  # fmt: skip


if __name__ == "__main__":
    main()
