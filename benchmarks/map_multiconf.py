"""Does the multiconformer model built with a map fit that map better than its input?

    python benchmarks/map_multiconf.py [ENTRY ...] [--maps DIR] [--candidates] [--no-map-proposals]

The fair case of ../shared/data/maps/README.md: each deposited multiconformer model is reduced
to one conformer per residue (the heaviest altloc; for 1G8A the deposited single-conformer
refinement, with qFit's model as the labels), `predict` reads it with the entry's data
(2mFo-DFc and mFo-DFc computed by servalcat with the reduced model's phases, as a user would
have them) and writes its multiconformer model, keeping only alternatives the map supports at
occupancies fitted to it (ensemble/map_support.py). For every residue it split, the real-space
correlation (RSCC) of the residue's atoms with the 2mFo-DFc map, before (input) and after (our
model): gemmi's DensityCalculatorX puts the residue's density (every conformer at its occupancy,
B-factors as written) on a grid at the data's resolution, and it is correlated with the map over
the points of a 0.4 Å lattice within 2 Å of the atoms of either version, the same points for
both. Also: how many written alternatives lie within 30° on every χ of a deposited altloc of
the multiconformer model (which the map was never computed from).

--candidates lists every alternative the map judged, the network's and the map's own (its
density numbers and whether it matches a deposited altloc) and, over all entries given, how
many of them each of a few support rules would keep and how many of those match: the numbers
the support rule was chosen from (ensemble/map_support.py, docs/density.md). An alternative is
judged until its residue holds max_conformers, so the set judged depends a little on the rule
in force.
The shipped network weights have seen 3K0N and 1G8A in training (docs/density.md).
"""

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import gemmi
import numpy as np
import torch

from qfitlatent import residues
from qfitlatent.checkpoint import default_weights, load_model
from qfitlatent.density import sample
from qfitlatent.density.occupancy import lattice_near
from qfitlatent.density.reduce import single_conformer
from qfitlatent.ensemble.multiconf import SplitOptions
from qfitlatent.ensemble.sidechains import measure_chis
from qfitlatent.predict import predict
from qfitlatent.structure import from_gemmi

# entry: (multiconformer model: the labels, single-conformer input or None (reduce the labels'
# model), data)
ENTRIES = {
    "3K0N": ("3k0n_refine.pdb.gz", None, "3k0n_data.mtz.gz"),
    "3SB3": ("3sb3.pdb.gz", None, "3sb3_data.mtz.gz"),
    # labels: qFit's model; input: the deposited single-conformer refinement
    "1G8A": ("1g8a_qfit.pdb.gz", "1g8a_refined.pdb.gz", "1g8a_data.mtz.gz"),
}
MATCH_DEG = 30.0
# Support rules compared (2mFo-DFc and mFo-DFc means in σ at the alternative's moving atoms);
# the shipped one is ensemble/map_support.MapJudge.supports.
RULES = {
    "every alternative (no map)": lambda two, diff: True,
    "2mFo-DFc >= 1 or mFo-DFc >= 3": lambda two, diff: two >= 1 or diff >= 3,
    "2mFo-DFc >= 1.5 alone": lambda two, diff: two >= 1.5,
    "2mFo-DFc >= 2 alone (no difference map)": lambda two, diff: two >= 2,
    "mFo-DFc >= 2.5 alone": lambda two, diff: diff >= 2.5,
    "2mFo-DFc >= 1.5 & mFo-DFc >= 0, or mFo-DFc >= 2.5": lambda two, diff: (
        (two >= 1.5 and diff >= 0) or diff >= 2.5
    ),
    "2mFo-DFc >= 2 & mFo-DFc >= 0, or mFo-DFc >= 2.5 (shipped)": lambda two, diff: (
        (two >= 2 and diff >= 0) or diff >= 2.5
    ),
}
RSCC_REACH = 2.0  # Å around the atoms


def residue_density(res: gemmi.Residue, cell: gemmi.UnitCell, d_min: float) -> gemmi.FloatGrid:
    """The residue's calculated density (all its conformers at their occupancies) on a grid."""
    st = gemmi.Structure()
    st.cell = cell
    st.spacegroup_hm = "P 1"
    model = gemmi.Model("1")
    chain = gemmi.Chain("A")
    chain.add_residue(res)
    model.add_chain(chain)
    st.add_model(model)
    dc = gemmi.DensityCalculatorX()
    dc.d_min = d_min
    dc.rate = 2.0
    dc.set_grid_cell_and_spacegroup(st)
    dc.put_model_density_on_grid(st[0])
    return dc.grid


def rscc(res: gemmi.Residue, points: np.ndarray, cell, d_min: float, two_fofc) -> float:
    calc = residue_density(res, cell, d_min).interpolate_position_array(
        np.ascontiguousarray(points), order=1
    )
    obs = sample(two_fofc, points)
    return float(np.corrcoef(calc, obs)[0, 1])


def heavy_xyz(res: gemmi.Residue) -> np.ndarray:
    return np.array([a.pos.tolist() for a in res if not a.is_hydrogen()])


def deposited_chis(multi_parsed) -> dict:
    """ResidueId -> [χ [D] radians] of each deposited side-chain conformer."""
    out = {}
    for rec in multi_parsed.residues:
        if not rec.parent:
            continue
        chis = []
        for conf in rec.conformers:
            atoms = {n: torch.tensor(x) for n, x in {**rec.backbone, **conf.atoms}.items()}
            chis.append(measure_chis(atoms, rec.parent).numpy())
        out[rec.id.label()] = (rec.parent, chis)
    return out


def matches(chi_deg: list, resname: str, deposited: list) -> bool:
    """Within MATCH_DEG on every χ of a deposited conformer (π-symmetric χ folded)."""
    sym = residues.pi_symmetric(resname)
    for dep in deposited:
        ok = True
        for k, c in enumerate(chi_deg):
            if c == "" or math.isnan(dep[k]):
                continue
            d = abs((float(c) - math.degrees(dep[k]) + 180.0) % 360.0 - 180.0)
            if sym[k]:
                d = min(d, 180.0 - d)
            ok &= d <= MATCH_DEG
        if ok:
            return True
    return False


def run(entry: str, maps_dir: Path, model, show_candidates: bool, proposals: bool = True) -> dict:
    multi_name, input_name, data_name = ENTRIES[entry]
    multi = gemmi.read_structure(str(maps_dir / multi_name))
    multi.setup_entities()
    single = single_conformer(multi)
    if input_name is not None:
        single = single_conformer(gemmi.read_structure(str(maps_dir / input_name)))
    deposited = deposited_chis(from_gemmi(multi.clone(), multi_name))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{entry.lower()}_single.pdb"
        single.write_pdb(str(path))
        t0 = time.perf_counter()
        pred = predict(model, path, map_file=maps_dir / data_name, map_from_data=True,
                       options=SplitOptions(map_proposals=proposals))  # fmt: skip
        seconds = time.perf_counter() - t0
    d_min = gemmi.read_mtz_file(str(maps_dir / data_name), with_data=False).resolution_high()
    before = pred.parsed.input_structure()
    after = pred.multiconformer.structure
    cell = before.cell
    rows = []
    for i, written in sorted(pred.multiconformer.conformers.items()):
        ci, ri = pred.parsed.input_position(pred.parsed.residues[i])
        r0, r1 = before[0][ci][ri], after[0][ci][ri]
        points = lattice_near(np.concatenate([heavy_xyz(r0), heavy_xyz(r1)]), RSCC_REACH)
        rec = pred.parsed.residues[i]
        rows.append({
            "residue": f"{rec.id.label()} {rec.resname}",
            "occupancies": "/".join(f"{o:.2f}" for _, o, _ in written),
            "before": rscc(r0, points, cell, d_min, pred.maps.two_fofc),
            "after": rscc(r1, points, cell, d_min, pred.maps.two_fofc),
            "deposited_altlocs": len(deposited.get(rec.id.label(), ("", []))[1]),
            "from_map": "".join(r["altloc"] for r in pred.multiconformer.rows if r["index"] == i
                                and r["source"] == "map" and r["status"] == "written"),
        })  # fmt: skip
    judged = [r for r in pred.multiconformer.rows  # the network's alternatives and the map's
              if r["source"] in ("predicted", "map")
              and r.get("density_2fofc", "") != ""]  # fmt: skip
    for r in judged:
        key = f"{r['chain']}{r['resnum']}{r['icode']}".strip()
        resname, dep = next(((v[0], v[1]) for k, v in deposited.items()
                             if k.replace(" ", "") == key), ("", []))  # fmt: skip
        chis = [r[f"chi{k}"] for k in range(1, residues.n_chi(resname) + 1)] if resname else []
        r["matches"] = bool(resname) and len(dep) > 1 and matches(chis, resname, dep)
    written = [r for r in judged if r["status"] == "written"]
    if show_candidates:
        print(f"\n{entry}: every alternative the map judged (matches: within {MATCH_DEG:g}° of a "
              "deposited conformer on every χ, the residue having ≥ 2)")  # fmt: skip
        print(f"{'residue':<14}{'source':<10}{'status':<26}{'2fofc':>7}{'fofc':>7}{'vs in':>7}"
              "  matches")  # fmt: skip
        for r in judged:
            print(f"{r['chain']}{r['resnum']:<5}{r['resname']:<8}{r['source']:<10}{r['status']:<26}"
                  f"{r['density_2fofc']:>7}{r['density_fofc']!s:>7}{r['density_vs_input']:>7}  "
                  f"{r['matches']}")  # fmt: skip
    return {"entry": entry, "rows": rows, "seconds": seconds, "source": pred.maps.source,
            "written": len(written), "written_matching": sum(r["matches"] for r in written),
            "written_map": sum(r["source"] == "map" for r in written),
            "written_map_matching": sum(r["matches"] for r in written if r["source"] == "map"),
            "judged": judged}  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("entries", nargs="*", help=f"of {', '.join(ENTRIES)} (default: 3K0N)")
    ap.add_argument("--maps", type=Path, default=Path("../shared/data/maps"))
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--candidates", action="store_true", help="list every judged alternative")
    ap.add_argument(
        "--no-map-proposals",
        action="store_true",
        help="only the network's conformers (before issue 22's map proposals)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model, _ = load_model(args.weights or default_weights(), "cpu")
    summary = []
    for entry in [e.upper() for e in args.entries] or ["3K0N"]:
        res = run(entry, args.maps, model, args.candidates, not args.no_map_proposals)
        print(f"\n{entry}: {res['source']} (predict {res['seconds']:.1f} s)")
        print(f"{'residue':<16}{'occupancies':<18}{'RSCC in':>9}{'RSCC out':>9}{'change':>8}"
              f"{'dep. altlocs':>14}{'from map':>10}")  # fmt: skip
        for r in res["rows"]:
            print(f"{r['residue']:<16}{r['occupancies']:<18}{r['before']:>9.3f}{r['after']:>9.3f}"
                  f"{r['after'] - r['before']:>+8.3f}{r['deposited_altlocs']:>14}"
                  f"{r['from_map'] or '-':>10}")  # fmt: skip
        summary.append(res)
    if args.candidates:
        judged = [r for res in summary for r in res["judged"] if r["density_fofc"] != ""]
        total = sum(r["matches"] for r in judged)
        print(f"\nsupport rules over {len(judged)} judged alternatives, {total} matching a "
              "deposited conformer")  # fmt: skip
        print(f"{'rule':<62}{'kept':>6}{'match':>7}{'precision':>11}{'recall':>8}")
        for name, rule in RULES.items():
            kept = [r for r in judged if rule(r["density_2fofc"], r["density_fofc"])]
            hit = sum(r["matches"] for r in kept)
            print(f"{name:<62}{len(kept):>6}{hit:>7}{hit / max(1, len(kept)):>11.2f}"
                  f"{hit / max(1, total):>8.2f}")  # fmt: skip
    print("\nentry  split  mean RSCC in  out  change  worst change  alternatives written "
          "(matching a deposited altloc) [of them proposed by the map (matching)]")  # fmt: skip
    for res in summary:
        rows = res["rows"]
        if not rows:
            print(f"{res['entry']:<6} 0")
            continue
        b = np.mean([r["before"] for r in rows])
        a = np.mean([r["after"] for r in rows])
        worst = min(r["after"] - r["before"] for r in rows)
        print(f"{res['entry']:<6} {len(rows):>5}  {b:>13.3f}  {a:.3f}  {a - b:+.3f}  {worst:+12.3f}"
              f"  {res['written']} ({res['written_matching']}) "
              f"[{res['written_map']} ({res['written_map_matching']})]")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
