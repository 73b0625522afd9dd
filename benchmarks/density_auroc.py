"""How well the map alone ranks the residues that have a second conformer (docs/density.md).

    python benchmarks/density_auroc.py [MAPS_DIR] [--sample-rate 3]

The fair case of ../shared/data/maps/README.md: each multiconformer model is reduced to one
conformer per residue (the heaviest altloc), 2mFo-DFc and mFo-DFc are computed from the observed
data with that model's phases (servalcat, σA-weighted; B-factors as deposited, not re-refined),
and each residue with a χ1 is scanned over χ1 in 5° steps. Two scores per residue, both the
height (σ) of the highest peak at the γ atom ≥ 30° from the modelled χ1:
  - "mFo-DFc peak": on the difference map;
  - "2mFo-DFc Ringer": on the 2mFo-DFc map.
Labels come from the multiconformer model: "χ1 alt" = two conformers ≥ 30° apart in χ1,
"altloc" = any side-chain altlocs. Per-structure AUROC of each score for each label; the
composite-omit entries (maps made with the multiconformer model, no difference map) are a
second table, biased toward their models' altlocs, so not comparable with the first.
A last column fits the occupancies of the deposited conformers of each two-conformer χ1-alternate
residue to the single-conformer model's 2mFo-DFc map (`occupancy.fit_occupancies`) and gives the
mean absolute error against the deposited occupancy, beside that of an even 0.5/0.5 split.
Validation numbers only: nothing here is tuned on them.
"""

import argparse
import math
import time
from pathlib import Path

import gemmi
import numpy as np
import torch

from qfitlatent.density import read_maps, sample
from qfitlatent.density.grid import FOFC, TWO_FOFC
from qfitlatent.density.occupancy import ELECTRONS, fit_occupancies
from qfitlatent.density.reduce import single_conformer
from qfitlatent.density.ringer import MIN_SEPARATION_DEG, scan, second_peak
from qfitlatent.ensemble.sidechains import can_rebuild
from qfitlatent.eval.metrics import auroc
from qfitlatent.ideal import moved_by
from qfitlatent.residues import element_of
from qfitlatent.structure import from_gemmi

# entry, multiconformer model (labels), single-conformer input (None: reduce the labels'
# model), map file, maps from the data (True) or the file's coefficients
FAIR = (
    ("3K0N", "3k0n_refine.pdb.gz", None, "3k0n_data.mtz.gz", True),
    ("3SB3", "3sb3.pdb.gz", None, "3sb3_data.mtz.gz", True),
    # Labels from qFit's model; the input is the deposited single-conformer refinement.
    ("1G8A (qFit labels)", "1g8a_qfit.pdb.gz", "1g8a_refined.pdb.gz", "1g8a_data.mtz.gz", True),
)
COMPOSITE_OMIT = tuple(
    (e.upper(), f"{m}.pdb.gz", None, f"{e}_composite_omit.mtz.gz", False)
    for e, m in (("2pkc", "2pkc_qfit_pruned"), ("4ms6", "4ms6"), ("5c40", "5c40"), ("5agk", "5agk"))
)


def chi1_of(conf_atoms: dict[str, np.ndarray], resname: str) -> float:
    from qfitlatent.residues import CHI_ATOMS

    quad = CHI_ATOMS[resname][0]
    if not all(n in conf_atoms for n in quad):
        return math.nan
    return math.degrees(gemmi.calculate_dihedral(*(gemmi.Position(*conf_atoms[n]) for n in quad)))


def labels_of(parsed) -> dict:
    """ResidueId -> (has a second χ1 rotamer ≥ 30° away, has side-chain altlocs, χ1s)."""
    out = {}
    for rec in parsed.residues:
        if not can_rebuild(rec.parent):
            continue
        chis = [chi1_of(c.atoms, rec.parent) for c in rec.conformers]
        chis = [c for c in chis if not math.isnan(c)]
        far = any(abs((a - b + 180) % 360 - 180) >= MIN_SEPARATION_DEG for a in chis for b in chis)
        out[rec.id] = (far, rec.n_obs > 1, chis)
    return out


def occupancy_error(multi: gemmi.Structure, parsed, maps, d_min: float, labels: dict) -> list:
    """|NNLS − deposited| of the first conformer's occupancy, per residue with two conformers
    ≥ 30° apart in χ1: candidates are the deposited side chains (atoms beyond CB), the fixed
    atoms N, CA, C, CB, the map the single-conformer model's 2mFo-DFc."""
    out = []
    for rec in parsed.residues:
        if rec.id not in labels or not labels[rec.id][0] or rec.n_obs != 2:
            continue
        names = [n for n in moved_by(rec.parent, 0) if all(n in c.atoms for c in rec.conformers)]
        res = multi[0][rec.chain_idx][rec.res_idx]
        b = np.array([np.mean([a.b_iso for a in res if a.name == n]) for n in names])  # [A]
        fixed = [rec.backbone[n] for n in ("N", "CA", "C")] + [rec.conformers[0].atoms["CB"]]
        occ = fit_occupancies(
            lambda p: sample(maps.two_fofc, p),
            [np.stack([c.atoms[n] for n in names]) for c in rec.conformers],
            np.array([ELECTRONS[element_of(n)] for n in names]),
            b,
            d_min,
            fixed=np.stack(fixed),
            fixed_z=np.array([7.0, 6.0, 6.0, 6.0]),
            fixed_b=np.full(4, b.mean()),
        )
        out.append((abs(occ[0] - rec.conformers[0].occ), abs(0.5 - rec.conformers[0].occ)))
    return out  # (NNLS error, error of an even split) per residue


def score_entry(root: Path, entry, sample_rate: float, examples: bool = False) -> dict:
    name, labels_file, single_file, map_name, from_data = entry
    t0 = time.perf_counter()
    multi = gemmi.read_structure(str(root / labels_file))
    single = gemmi.read_structure(str(root / single_file)) if single_file else multi
    single = single_conformer(single)
    maps = read_maps(root / map_name, single, from_data=from_data, sample_rate=sample_rate)
    labels = labels_of(from_gemmi(multi.clone(), labels_file))
    rows = []
    for rec in from_gemmi(single.clone(), name).residues:
        if rec.id not in labels:
            continue
        ringer = scan(rec.conformers[0].atoms, rec.parent, maps)
        if math.isnan(ringer.modelled_chi1):
            continue  # truncated side chain: no modelled χ1 to look away from
        found = {
            label: second_peak(values, ringer.chi1, ringer.modelled_chi1)
            for label, values in ringer.gamma.items()
        }
        far, split, chis = labels[rec.id]
        rows.append(({k: v[0] for k, v in found.items()}, far, split))
        if examples and far:
            # Where the second peak lies against the multiconformer model's χ1 values.
            height, where = found[FOFC] if FOFC in found else found[TWO_FOFC]
            print(
                f"{name} {rec.id.label()} {rec.parent}: modelled χ1 {ringer.modelled_chi1:.0f}°, "
                f"altloc χ1 {', '.join(f'{c:.0f}°' for c in chis)}; "
                f"peak {height:.1f}σ at {where if where <= 180 else where - 360:.0f}°"
            )
    out = {"entry": name, "n": len(rows), "source": maps.source, "seconds": 0.0}
    d_min = gemmi.read_mtz_file(str(root / map_name), with_data=False).resolution_high()
    errors = occupancy_error(multi, from_gemmi(multi.clone(), labels_file), maps, d_min, labels)
    err = np.array(errors).reshape(-1, 2)  # [R, 2]: NNLS, even split
    out["occ_error"], out["occ_even"] = err.mean(0) if len(err) else (math.nan, math.nan)
    out["n_occ"] = len(err)
    for score in (FOFC, TWO_FOFC):
        if maps.fofc is None and score == FOFC:
            continue
        s = torch.tensor([r[0][score] for r in rows])
        for i, label in ((1, "chi1_alt"), (2, "altloc")):
            y = torch.tensor([r[i] for r in rows])
            out[f"{score}|{label}"] = auroc(s, y)
            out[f"n_{label}"] = int(y.sum())
    out["seconds"] = time.perf_counter() - t0
    return out


def table(results: list[dict], title: str) -> None:
    print(f"\n{title}")
    head = "| entry | residues | χ1 alt | altloc | mFo-DFc peak: χ1 alt | altloc "
    head += "| 2mFo-DFc Ringer: χ1 alt | altloc | occupancy error: NNLS | 0.5/0.5 (n) | s |"
    print(head)
    print("|" + "---|" * 11)

    def f(x):
        return "–" if x is None or math.isnan(x) else f"{x:.2f}"

    for r in results:
        print(
            f"| {r['entry']} | {r['n']} | {r['n_chi1_alt']} | {r['n_altloc']} "
            f"| {f(r.get(f'{FOFC}|chi1_alt'))} | {f(r.get(f'{FOFC}|altloc'))} "
            f"| {f(r.get(f'{TWO_FOFC}|chi1_alt'))} | {f(r.get(f'{TWO_FOFC}|altloc'))} "
            f"| {f(r['occ_error'])} | {f(r['occ_even'])} ({r['n_occ']}) | {r['seconds']:.0f} |"
        )
    for key in (f"{FOFC}|chi1_alt", f"{FOFC}|altloc", f"{TWO_FOFC}|chi1_alt", f"{TWO_FOFC}|altloc"):
        vals = [r[key] for r in results if key in r and not math.isnan(r[key])]
        if vals:
            print(f"mean per-structure AUROC {key}: {np.mean(vals):.3f} over {len(vals)}")


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("maps", nargs="?", type=Path, default=here.parent / "shared/data/maps")
    parser.add_argument("--sample-rate", type=float, default=3.0)
    parser.add_argument("--skip-omit", action="store_true", help="only the fair entries")
    parser.add_argument(
        "--examples", action="store_true", help="print each χ1-alternate residue's peak"
    )
    args = parser.parse_args()
    fair = [score_entry(args.maps, e, args.sample_rate, args.examples) for e in FAIR]
    for r in fair:
        print(f"{r['entry']}: {r['source']}")
    table(fair, "Single-conformer model, maps from the data with its phases (fair)")
    if not args.skip_omit:
        omit = [score_entry(args.maps, e, args.sample_rate) for e in COMPOSITE_OMIT]
        table(omit, "Composite omit maps of the multiconformer model (biased; 2mFo-DFc only)")


if __name__ == "__main__":
    main()
