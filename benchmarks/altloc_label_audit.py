"""Why 1G8A ranks below chance on "all side-chain altlocs": the labels and the evidence, in numbers.

    python benchmarks/altloc_label_audit.py [MAPS_DIR]

For every entry whose maps are computed from its data (as `qfitlatent evaluate --maps` pairs
them), two tables:

1. What the labels are. For each labelled residue (side-chain altlocs in the labels model), the
   largest side-chain RMSD between two of its conformers over the atoms beyond CB, and the
   largest χ1 difference: how many labels are near-copies (< 0.1 / 0.3 / 0.5 Å) that no map at
   this resolution separates from one conformer with a larger B.
2. What ranks them. Per-structure AUROC of every evidence number (residue_evidence.FEATURES),
   the network's p_flexible, and the input model's own B-factors: side chain (beyond CB) mean B
   over backbone mean B, and their difference. The B of the single-conformer input is what a
   refinement of it left: for 1G8A a real single-conformer refinement, for 3K0N/3SB3 the B
   refined WITH the altlocs (the multiconformer model reduced to one conformer), unless B are
   refined against the data (the default, as `evaluate` does; --keep-b to see the former).
   And burial (CA atoms within 10 Å).

Each AUROC is computed on the residues `evaluate` scores (the map speaks for them), for the
labels as defined ("altloc") and for the labels whose conformers differ by ≥ 0.3 Å RMSD beyond CB
("altloc ≥0.3Å"), to see what the near-copies do to each score.
"""

import argparse
import itertools
import math
import sys
from pathlib import Path

import gemmi
import numpy as np
import torch

from qfitlatent.checkpoint import default_weights, load_model
from qfitlatent.density import read_maps
from qfitlatent.density.residue_evidence import (
    BACKBONE,
    FEATURES,
    residue_evidence,
    side_chain_b_ratio,
)
from qfitlatent.eval import map_eval
from qfitlatent.eval.metrics import auroc
from qfitlatent.features import featurize
from qfitlatent.structure import from_gemmi

RMSD_CUTS = (0.1, 0.3, 0.5)


def side_chain_spread(rec) -> tuple[float, float, float]:
    """(largest RMSD beyond CB between two conformers in Å, largest χ1 difference in °, largest
    CA shift in Å: a split that only rides on a backbone move shows as CA ≈ RMSD)."""
    rmsd, dchi, ca_shift = 0.0, 0.0, 0.0
    chis = [map_eval.chi1_deg(c.atoms, rec.parent) for c in rec.conformers]
    for (a, ca), (b, cb) in itertools.combinations(zip(rec.conformers, chis, strict=True), 2):
        names = [n for n in a.atoms if n in b.atoms and n not in (*BACKBONE, "CB")]
        if names:
            d = np.stack([a.atoms[n] - b.atoms[n] for n in names])  # [P, 3]
            rmsd = max(rmsd, float(np.sqrt((d**2).sum(1).mean())))
        if "CA" in a.atoms and "CA" in b.atoms:
            ca_shift = max(ca_shift, float(np.linalg.norm(a.atoms["CA"] - b.atoms["CA"])))
        if ca == ca and cb == cb:
            dchi = max(dchi, abs((ca - cb + 180) % 360 - 180))
    return rmsd, dchi, ca_shift


def b_difference(st: gemmi.Structure, parsed) -> np.ndarray:
    """[N] mean B of the side chain beyond CB minus that of the backbone (Å²) of the input model;
    the ratio is residue_evidence.side_chain_b_ratio."""
    diff = np.full(len(parsed.residues), np.nan)
    for i, rec in enumerate(parsed.residues):
        res = st[0][rec.chain_idx][rec.res_idx]
        side = [a.b_iso for a in res if a.name not in (*BACKBONE, "CB", "OXT")]
        bb = [a.b_iso for a in res if a.name in BACKBONE]
        if side and bb:
            diff[i] = np.mean(side) - np.mean(bb)
    return diff


def neighbours(parsed, radius: float = 10.0) -> np.ndarray:
    """[N] CA atoms within `radius` Å of each residue's CA: burial (a buried residue has ~20+)."""
    ca = np.stack([r.backbone["CA"] for r in parsed.residues])  # [N, 3]
    d = np.linalg.norm(ca[:, None] - ca[None], axis=-1)  # [N, N]
    return (d < radius).sum(1).astype(float) - 1


def audit(entry: dict, model, refine_b: bool) -> None:
    multi = gemmi.read_structure(str(entry["labels"]))
    given = entry["input"]
    single = map_eval.input_model(entry, multi, refine_b)
    maps = read_maps(entry["map"], single, from_data=True)
    parsed = from_gemmi(single.clone(), entry["id"])
    with torch.no_grad():
        p = torch.sigmoid(model(featurize(parsed)).flex_logit.float()).numpy().astype(float)
    ev = residue_evidence(parsed, maps)
    labels_by_id = {r.id: r for r in from_gemmi(multi.clone(), entry["id"]).residues}
    keep = np.array(
        [ok and r.id in labels_by_id for r, ok in zip(parsed.residues, ev.scanned, strict=True)]
    )
    recs = [labels_by_id[r.id] for r, k in zip(parsed.residues, keep, strict=True) if k]
    alt = np.array([r.n_obs > 1 for r in recs])
    spread = np.array([side_chain_spread(r) if r.n_obs > 1 else (0.0,) * 3 for r in recs])
    print(f"\n## {entry['id']}: {keep.sum()} residues scored, {alt.sum()} with side-chain altlocs")
    reduced = "reduced" + (
        ", B refined against the data" if refine_b else ", B as refined with altlocs"
    )
    print(f"labels {entry['labels'].name}, input {given.name if given else reduced}")
    rm, dchi = spread[alt, 0], spread[alt, 1]
    counts = ", ".join(f"< {c} Å: {(rm < c).sum()}" for c in RMSD_CUTS)
    print(f"labelled residues by RMSD beyond CB between conformers: {counts}")
    print(
        f"  median RMSD {np.median(rm):.2f} Å, CA shift {np.median(spread[alt, 2]):.2f} Å; "
        f"χ1 apart ≥ 30°: {(dchi >= 30).sum()}, < 10°: {(dchi < 10).sum()}"
    )
    ratio, diff = side_chain_b_ratio(parsed), b_difference(single, parsed)
    scores = {f: ev.features[keep, FEATURES.index(f)] for f in FEATURES}
    # b_side_vs_bb (FEATURES) is the side-chain/backbone B ratio; the difference beside it.
    scores |= {"network": p[keep], "B side-bb": diff[keep]}
    scores["CA within 10 Å (burial)"] = neighbours(parsed)[keep]
    wide = alt & (spread[:, 0] >= 0.3)
    print(f"| score | AUROC altloc ({alt.sum()}) | AUROC altloc ≥0.3Å ({wide.sum()}) |")
    print("|---|---|---|")
    for name, s in scores.items():
        ok = np.isfinite(s)
        row = [
            auroc(torch.tensor(s[ok]), torch.tensor(y[ok])) if y[ok].any() else math.nan
            for y in (alt, wide)
        ]
        print(f"| {name} | {row[0]:.2f} | {row[1]:.2f} |")
    bb = ratio[keep]
    print(
        f"B side/bb: median {np.nanmedian(bb[alt]):.2f} with altlocs, "
        f"{np.nanmedian(bb[~alt]):.2f} without"
    )


def main(argv=None) -> int:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("maps", type=Path, nargs="?", default=here.parent / "shared/data/maps")
    parser.add_argument(
        "--keep-b", action="store_true",
        help="read reduced inputs with the B refined with their altlocs (evaluate before issue 22)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, _ = load_model(default_weights(), "cpu")
    model.eval()
    for entry in map_eval.entries(args.maps):
        if entry["from_data"]:
            audit(entry, model, not args.keep_b)
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
