"""Our multiconformer model against qFit's, on the qFit models in ../shared/data/multiconf.

    python benchmarks/qfit_comparison.py [--weights weights/qfitlatent-v3.pt] \
        [--data ../shared/data/multiconf] [--thresholds 0.5]

Each qFit model (MANIFEST.tsv: qfit_refined yes or likely) is reduced to a single conformer,
its heaviest altloc per residue, and run through `predict`. Over residues we can rebuild (a χ,
not proline), the residues qFit split (≥ 2 distinct side-chain conformers) are compared with
the ones we split: precision and recall. Then, for every qFit altloc of a residue qFit split
other than the heaviest one (which is our input, so trivially matched), whether one of our
conformers lies within 20° of it on every χ (π-folded where symmetric): the input side chain
alone (what an unsplit model gives; qFit's altlocs are often small shifts), the conformers
written in multiconformer.pdb (input included), and the selector's top 3, written or not.

These structures are training data of the shipped weights: a comparison, not a held-out score.

With `--maps DIR` (../shared/data/maps), only the qFit models whose entry has observed data
there (3K0N, 1G8A) are run, once without and once with the map: 2mFo-DFc and mFo-DFc computed
from the data with the single-conformer input's phases (servalcat), as a user would have them;
the map also proposes conformers (ensemble/map_proposals.py) unless --no-map-proposals.
"""

import argparse
import csv
import io
import math
from pathlib import Path

import gemmi
import torch

from qfitlatent.checkpoint import default_weights, load_model
from qfitlatent.ensemble.build import keep_heaviest_conformer, rebuildable
from qfitlatent.ensemble.conformers import chi_distance
from qfitlatent.ensemble.multiconf import SplitOptions
from qfitlatent.features import featurize
from qfitlatent.predict import predict
from qfitlatent.structure import read_structure

TOL = math.radians(20.0)


def qfit_files(data: Path) -> list[Path]:
    with open(data / "MANIFEST.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [data / r["filename"] for r in rows if r["qfit_refined"] in ("yes", "likely")]


def single_conformer(path: Path) -> bytes:
    """The model with only its heaviest altloc per residue, as PDB text."""
    st = read_structure(path).structure.clone()
    for chain in st[0]:
        for res in chain:
            keep_heaviest_conformer(res)
    return st.make_pdb_string(gemmi.PdbWriteOptions(minimal=True)).encode()


def data_file(maps: Path, path: Path) -> Path | None:
    """The MTZ of observed data in `maps` for the entry of qFit model `path`, if any."""
    entry = path.name.split("_")[0].split(".")[0].lower()
    found = sorted(maps.glob(f"{entry}_data.mtz*"))
    return found[0] if found else None


def compare(
    model, path: Path, threshold: float | None, map_file: Path | None = None, proposals: bool = True
) -> dict:
    parsed = read_structure(path)
    f = featurize(parsed)
    key = {(r.chain, r.resnum, r.icode): i for i, r in enumerate(parsed.residues)}
    pred = predict(
        model,
        single_conformer(path),
        name=path.name,
        options=SplitOptions(threshold=threshold, map_proposals=proposals),
        map_file=map_file,
        map_from_data=map_file is not None,
    )
    ours_idx = {}  # our residue index -> original residue index
    for j, r in enumerate(pred.parsed.residues):
        if (r.chain, r.resnum, r.icode) in key:
            ours_idx[j] = key[(r.chain, r.resnum, r.icode)]
    usable = {j for j, i in ours_idx.items() if rebuildable(pred.parsed.residues[j])}
    qfit_split = {j for j in usable if parsed.residues[ours_idx[j]].n_obs >= 2}
    our_split = set(pred.multiconformer.conformers) & usable
    both = qfit_split & our_split
    n_alt = hit_input = hit_written = hit_top3 = 0
    for j in qfit_split:
        i = ours_idx[j]
        defined, sym = f.chi_defined[i], f.pi_symmetric[i]
        occ = f.occ[i]
        heaviest = int(occ.argmax())
        written = pred.multiconformer.conformers.get(j)
        ours = (
            torch.stack([c for _, _, c in written])
            if written
            else pred.features.chi[j, :1]  # unsplit: the single (input) conformer
        )
        top3, _ = pred.selection.conformers(j)
        for a in range(int(parsed.residues[i].n_obs)):
            if a == heaviest or not f.chi_mask[i, a, 0]:
                continue
            mask = f.chi_mask[i, a] & defined
            n_alt += 1
            obs = f.chi[i, a]
            hit_written += bool((chi_distance(ours, obs[None], mask, sym) <= TOL).any())
            hit_input += bool(chi_distance(ours[:1], obs[None], mask, sym)[0] <= TOL)
            hit_top3 += bool((chi_distance(top3[:3], obs[None], mask, sym) <= TOL).any())
    return {
        "structure": path.name + (" + map" if map_file else ""),
        # with a map and the default, the map head's own threshold (SplitOptions.resolved)
        "threshold": pred.multiconformer.options.threshold,
        "residues": len(usable),
        "qfit_split": len(qfit_split),
        "ours_split": len(our_split),
        "both": len(both),
        "expected": pred.multiconformer.expected_flexible,
        "alts": n_alt,
        "hit_input": hit_input,
        "hit_written": hit_written,
        "hit_top3": hit_top3,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=default_weights())
    p.add_argument("--data", type=Path, default=Path("../shared/data/multiconf"))
    p.add_argument(
        "--thresholds", type=float, nargs="+", default=[None],
        help="default: predict's own (the network's; with a map, the map head's)",
    )  # fmt: skip
    p.add_argument("--maps", type=Path, default=None, help="compare with and without maps")
    p.add_argument(
        "--no-map-proposals",
        action="store_true",
        help="with a map, only the network's conformers (before issue 22's proposals)",
    )
    args = p.parse_args()
    torch.set_num_threads(1)
    model, _ = load_model(args.weights, "cpu")
    files = qfit_files(args.data)
    runs = [(path, None) for path in files]
    if args.maps:
        paired = [(path, data_file(args.maps, path)) for path in files]
        paired = [(path, m) for path, m in paired if m is not None]
        runs = [(path, None) for path, _ in paired] + paired
    out = io.StringIO()
    for t in args.thresholds:
        rows = [compare(model, path, t, m, not args.no_map_proposals) for path, m in runs]
        for suffix, label in (("", "all"), (" + map", "all + map")):
            group = [r for r in rows if r["structure"].endswith(".gz" + suffix)]
            if group:
                total = {k: sum(r[k] for r in group) for k in group[0]
                         if k not in ("structure", "threshold")}  # fmt: skip
                rows.append({"structure": label, "threshold": math.nan, **total})
        out.write(
            f"\nweights {args.weights.name}, threshold "
            + ("predict's default (with a map, the map head's)" if t is None else f"{t:g}")
            + "\n\n"
        )
        out.write("| structure | split threshold | residues | qFit split | we split | both "
                  "| precision | recall | Σ flexibility | other qFit altlocs "
                  "| within 20°: input alone | written | selector top 3 |\n"
                  + "|---" * 13 + "|\n")  # fmt: skip
        for r in rows:
            prec = r["both"] / r["ours_split"] if r["ours_split"] else float("nan")
            rec = r["both"] / r["qfit_split"] if r["qfit_split"] else float("nan")
            w = r["hit_written"] / r["alts"] if r["alts"] else float("nan")
            i0 = r["hit_input"] / r["alts"] if r["alts"] else float("nan")
            t3 = r["hit_top3"] / r["alts"] if r["alts"] else float("nan")
            out.write(
                f"| {r['structure']} | {r['threshold']:g} | {r['residues']} "
                f"| {r['qfit_split']} | {r['ours_split']} "
                f"| {r['both']} | {prec:.2f} | {rec:.2f} | {r['expected']:.1f} | {r['alts']} "
                f"| {i0:.2f} | {w:.2f} | {t3:.2f} |\n"
            )
    print(out.getvalue())


if __name__ == "__main__":
    main()
