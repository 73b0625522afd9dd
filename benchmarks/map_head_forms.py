"""Which form of map head: logistic fits on different inputs, and a small MLP, side by side.

    python benchmarks/map_head_forms.py RUN_DIR [MAPS_DIR]

RUN_DIR is the cache `python -m qfitlatent.train.map_head RUN_DIR` filled (one .npz of
network p_flexible, map evidence and labels per synthetic-map structure). Every form is fitted
on all of it and scored on the real maps of MAPS_DIR (../shared/data/maps by default) exactly as
`qfitlatent evaluate --maps` pairs and reduces them: per-structure AUROC for "χ1 alt" / "altloc".
The synthetic column is the 5-fold cross-validated mean per-structure AUROC (grouped by
structure). For choosing the form only: nothing is fitted on the real maps.
"""

import argparse
import sys
from pathlib import Path

import gemmi
import numpy as np
import torch

from qfitlatent.checkpoint import default_weights, load_model
from qfitlatent.density import read_maps
from qfitlatent.density.posterior import NETWORK, VARIANTS, fit_logistic, inputs
from qfitlatent.density.residue_evidence import FEATURES, residue_evidence
from qfitlatent.eval import map_eval
from qfitlatent.eval.metrics import auroc
from qfitlatent.features import featurize
from qfitlatent.structure import from_gemmi
from qfitlatent.train.map_head import FOLDS, mean_auroc, stacked


def real_entries(maps_dir: Path, model) -> dict:
    out = {}
    for e in map_eval.entries(maps_dir):
        multi = gemmi.read_structure(str(e["labels"]))
        single = map_eval.input_model(e, multi)  # reduced inputs: B refined against the data
        maps = read_maps(e["map"], single, from_data=e["from_data"])
        parsed = from_gemmi(single.clone(), e["id"])
        with torch.no_grad():
            p = torch.sigmoid(model(featurize(parsed)).flex_logit.float()).numpy()
        ev = residue_evidence(parsed, maps)
        lab = map_eval.residue_labels(multi, e["labels"].name)
        keep = np.array(
            [ok and r.id in lab for r, ok in zip(parsed.residues, ev.scanned, strict=True)]
        )
        recs = [r for r, k in zip(parsed.residues, keep, strict=True) if k]
        out[e["id"] + ("" if e["from_data"] else "*")] = {
            "p": p.astype(np.float64)[keep],
            "x": ev.features[keep],
            "y": {k: np.array([lab[r.id][k] for r in recs]) for k in map_eval.LABELS},
        }
        print(f"  read {e['id']}", file=sys.stderr, flush=True)
    return out


class MLP:
    """2 hidden layers of 32, Adam, 400 full-batch steps: the non-linear alternative."""

    def __init__(self, names, p, x, y, seed=0):
        torch.manual_seed(seed)
        self.names = names
        a = inputs(names, p, x)
        self.mean, self.scale = np.nanmean(a, 0), np.nanstd(a, 0) + 1e-8
        self.net = torch.nn.Sequential(
            torch.nn.Linear(len(names), 32), torch.nn.GELU(),
            torch.nn.Linear(32, 32), torch.nn.GELU(), torch.nn.Linear(32, 1),
        )  # fmt: skip
        opt = torch.optim.Adam(self.net.parameters(), 1e-2, weight_decay=1e-4)
        z, t = self._z(a), torch.tensor(y, dtype=torch.float32)
        for _ in range(400):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(self.net(z)[:, 0], t)
            loss.backward()
            opt.step()

    def _z(self, a):
        a = (a - self.mean) / self.scale
        return torch.tensor(np.where(np.isfinite(a), a, 0.0), dtype=torch.float32)

    def logit(self, p, x):
        with torch.no_grad():
            return self.net(self._z(inputs(self.names, p, x)))[:, 0].double().numpy()


class Logistic:
    def __init__(self, names, p, x, y):
        self.fit = fit_logistic(inputs(names, p, x), y, names)

    def logit(self, p, x):
        return self.fit.logit(inputs(self.fit.inputs, p, x))


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("maps", nargs="?", type=Path, default=here.parent / "shared/data/maps")
    args = parser.parse_args()
    torch.set_num_threads(1)
    structures = [dict(np.load(f)) for f in sorted(args.run.glob("*.npz"))]
    p, x, y, g = stacked(structures)
    model, _ = load_model(default_weights(), "cpu")
    model.eval()
    real = real_entries(args.maps, model)
    forms = {f"logistic {k}": (Logistic, v) for k, v in VARIANTS.items()}
    forms["MLP network + every evidence feature"] = (MLP, (NETWORK, *FEATURES))
    print(f"{len(structures)} synthetic-map structures, {len(y)} residues; * = coefficient maps")
    print(
        "| form | synthetic CV | maps from data, mean χ1 alt / altloc | "
        + " | ".join(f"{k} χ1 alt / altloc" for k in real)
        + " |"
    )
    print("|---|---|---|" + "---|" * len(real))
    for name, (kind, names) in forms.items():
        fold = g % FOLDS
        score = np.empty_like(y)
        for k in range(FOLDS):
            m = kind(names, p[fold != k], x[fold != k], y[fold != k])
            score[fold == k] = m.logit(p[fold == k], x[fold == k])
        m = kind(names, p, x, y)
        cells, from_data = [], []
        for entry, d in real.items():
            s = torch.tensor(m.logit(d["p"], d["x"]))
            a = [auroc(s, torch.tensor(d["y"][k])) for k in map_eval.LABELS]
            cells.append(f"{a[0]:.2f} / {a[1]:.2f}".replace("nan", "–"))
            if not entry.endswith("*"):
                from_data.append(a)
        # the means `evaluate --maps` reports: entries with maps from data, NaN (no positives) out
        means = " / ".join(f"{np.nanmean(c):.3f}" for c in np.array(from_data).T)
        print(
            f"| {name} | {mean_auroc(score, y, g):.3f} | {means} | " + " | ".join(cells) + " |",
            flush=True,
        )


if __name__ == "__main__":
    main()
