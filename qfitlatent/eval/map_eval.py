"""`qfitlatent evaluate --maps DIR`: how well p_flexible ranks the residues that move, with the
map and without it, on real crystallographic data.

DIR holds models and MTZ/CCP4 files; files belong to one entry when their names start with the
same id (the text before the first "_" or "."): `3k0n_refine.pdb.gz` and `3k0n_data.mtz.gz`.
Per entry, as a user would have it:
  - labels: the entry's model with the most side-chain altloc residues;
  - input: a single-conformer model of the entry if there is one (1G8A's deposited refinement),
    else the labels model reduced to its heaviest altloc per residue (`density.reduce`) with
    its B-factors refined against the entry's data (`density.bfactor`: the reduced model's B
    were refined with its altlocs, which no user's single-conformer model has);
  - map: an MTZ with observed data is preferred, and maps are then computed from the data with
    the input's phases (servalcat); a file that has only map coefficients is used as it is and
    the entry is marked `maps_from_data: false` (such maps were made with some model, often the
    multiconformer one, so they lean toward its altlocs: reported apart, not in the means).
Scored residues: those the map speaks for (a χ1 to scan). Labels: "chi1_alt", two conformers
≥ 30° apart in χ1; "altloc", any side-chain altlocs. Scores: p_flexible with the map (the map
head's posterior), the network's p_flexible alone, the head's map-only ablation, and the raw
Ringer heights (mFo-DFc and 2mFo-DFc second peak at γ).
"""

import math
import re
import time
from pathlib import Path

import gemmi
import numpy as np
import torch

from ..checkpoint import load_model, resolve_device, weights_label
from ..density import read_maps
from ..density.bfactor import refine_b_against
from ..density.labels import TWO_FOFC_LABELS, pick_observations, pick_pair
from ..density.posterior import inputs as head_inputs
from ..density.posterior import load_map_head, posterior
from ..density.read import map_kind
from ..density.reduce import single_conformer
from ..density.residue_evidence import FEATURES, residue_evidence
from ..density.ringer import MIN_SEPARATION_DEG
from ..features import featurize
from ..residues import CHI_ATOMS
from ..structure import from_gemmi
from .metrics import auroc

LABELS = ("chi1_alt", "altloc")
SCORES = ("with_map", "network", "map_alone", "fofc_peak", "two_fofc_peak")
STRUCTURE_SUFFIXES = (".pdb", ".cif", ".ent", ".mmcif")


def entry_id(name: str) -> str:
    return re.split(r"[_.]", name, maxsplit=1)[0].lower()


def chi1_deg(atoms: dict[str, np.ndarray], resname: str) -> float:
    quad = CHI_ATOMS[resname][0] if CHI_ATOMS.get(resname) else ()
    if not quad or not all(n in atoms for n in quad):
        return math.nan
    pos = [gemmi.Position(*atoms[n]) for n in quad]
    return math.degrees(gemmi.calculate_dihedral(*pos))


def residue_labels(st: gemmi.Structure, name: str) -> dict:
    """ResidueId -> {"chi1_alt": bool, "altloc": bool} from a multiconformer model."""
    out = {}
    for rec in from_gemmi(st.clone(), name).residues:
        chis = [c for c in (chi1_deg(x.atoms, rec.parent) for x in rec.conformers) if c == c]
        far = any(abs((a - b + 180) % 360 - 180) >= MIN_SEPARATION_DEG for a in chis for b in chis)
        out[rec.id] = {"chi1_alt": far, "altloc": rec.n_obs > 1}
    return out


def altloc_residues(st: gemmi.Structure) -> int:
    return sum(
        1
        for ch in st[0]
        for res in ch
        if len({a.altloc for a in res if a.altloc != "\0" and a.name not in ("N", "CA", "C", "O")})
        > 1
    )


def entries(folder: Path) -> list[dict]:
    """The entries of `folder`: id, labels model, input model (None: reduce the labels model),
    map file and whether maps are computed from its data."""
    by_id: dict[str, dict] = {}
    for path in sorted(folder.iterdir()):
        low = path.name.lower().removesuffix(".gz")
        group = by_id.setdefault(entry_id(path.name), {"models": [], "maps": []})
        if low.endswith(STRUCTURE_SUFFIXES):
            group["models"].append(path)
        elif low.endswith((".mtz", ".ccp4", ".map", ".mrc")):
            group["maps"].append(path)
    out = []
    for key, group in sorted(by_id.items()):
        if not group["models"] or not group["maps"]:
            continue
        models = [(altloc_residues(gemmi.read_structure(str(p))), p) for p in group["models"]]
        n_alt, labels = max(models, key=lambda m: m[0])
        if n_alt == 0:
            continue
        singles = [p for n, p in models if n == 0]
        map_path, from_data = _best_map(group["maps"])
        out.append(
            {
                "id": key.upper(),
                "labels": labels,
                "input": singles[0] if singles else None,
                "map": map_path,
                "from_data": from_data,
            }
        )
    return out


def _best_map(paths: list[Path]) -> tuple[Path, bool]:
    """(map file, compute maps from its data): observed data first, raw data before refined."""

    def rank(path: Path):
        if map_kind(path.name) != "mtz":
            return (0, 0)
        cols = {c.label: c.type for c in gemmi.read_mtz_file(str(path), with_data=False).columns}
        has_data = pick_observations(cols) is not None
        has_coefficients = pick_pair(cols, TWO_FOFC_LABELS) is not None
        return (int(has_data), int(not has_coefficients))

    best = max(paths, key=rank)
    return best, rank(best)[0] == 1


def input_model(entry: dict, multi: gemmi.Structure, refine: bool = True) -> gemmi.Structure:
    """The single-conformer model a user would bring: the entry's own single-conformer model,
    else the labels model reduced to one conformer and, where the entry has observed data, its
    B-factors refined against them (`density.bfactor`: the reduced model's B were refined with
    the altlocs, a single-conformer refinement's are not)."""
    if entry["input"]:
        return single_conformer(gemmi.read_structure(str(entry["input"])))
    single = single_conformer(multi)
    if refine and entry["from_data"]:
        single = refine_b_against(entry["map"], single)
    return single


def reduced_name(entry: dict, refine_b: bool) -> str:
    refined = refine_b and entry["from_data"]
    return f"{entry['labels'].name} reduced to one conformer" + (
        ", B-factors refined against the data" if refined else ""
    )


def score_entry(model, head, entry: dict, sample_rate: float, refine_b: bool = True) -> dict:
    t0 = time.perf_counter()
    multi = gemmi.read_structure(str(entry["labels"]))
    given = entry["input"]
    single = input_model(entry, multi, refine_b)
    maps = read_maps(entry["map"], single, from_data=entry["from_data"], sample_rate=sample_rate)
    parsed = from_gemmi(single.clone(), entry["id"])
    with torch.no_grad():
        out = model(featurize(parsed).to(next(model.parameters()).device))
    p_net = torch.sigmoid(out.flex_logit.float()).cpu().numpy().astype(np.float64)
    ev = residue_evidence(parsed, maps)
    alone = head.ablations.get("map_alone" if ev.has_difference else "map_alone_two_fofc_only")
    scores = {
        "with_map": posterior(head, p_net, ev),
        "network": p_net,
        "fofc_peak": ev.features[:, FEATURES.index("fofc_peak")],
        "two_fofc_peak": ev.features[:, FEATURES.index("two_fofc_peak")],
    }
    if alone is not None:
        scores["map_alone"] = alone.logit(head_inputs(alone.inputs, p_net, ev.features))
    labels = residue_labels(multi, entry["labels"].name)
    keep = np.array(
        [ok and rec.id in labels for rec, ok in zip(parsed.residues, ev.scanned, strict=True)]
    )
    res = {
        "entry": entry["id"],
        "labels_model": entry["labels"].name,
        "input_model": given.name if given else reduced_name(entry, refine_b),
        "map": entry["map"].name,
        "maps_from_data": entry["from_data"],
        "map_source": maps.source,
        "fit": "with mFo-DFc" if ev.has_difference else "2mFo-DFc only",
        "residues": int(keep.sum()),
    }
    recs = [rec for rec, k in zip(parsed.residues, keep, strict=True) if k]
    for label in LABELS:
        y = torch.tensor([labels[rec.id][label] for rec in recs])
        res[f"n_{label}"] = int(y.sum())
        for name in SCORES:
            if name in scores and np.isfinite(scores[name][keep]).all():
                res[f"auroc_{name}|{label}"] = auroc(torch.tensor(scores[name][keep]), y)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def evaluate_maps(
    folder: Path, weights: Path, device="auto", head_path=None, sample_rate=3.0, refine_b=True
) -> dict:
    """Score `weights` with and without the maps of every entry in `folder` (module docstring)."""
    found = entries(Path(folder))
    if not found:
        raise ValueError(f"{folder}: no entry with a multiconformer model and a map")
    device = resolve_device(device)
    model, _ = load_model(weights, device)
    model.eval()
    head = load_map_head(head_path)
    rows = [score_entry(model, head, e, sample_rate, refine_b) for e in found]
    means = {}
    for group, use in (("maps_from_data", True), ("map_coefficients", False)):
        chosen = [r for r in rows if r["maps_from_data"] is use]
        for label in LABELS:
            for name in SCORES:
                vals = [r.get(f"auroc_{name}|{label}", math.nan) for r in chosen]
                vals = [v for v in vals if v == v]
                if vals:
                    means[f"{group}|{name}|{label}"] = {
                        "mean": float(np.mean(vals)),
                        "n": len(vals),
                    }
    return {
        "weights": weights_label(weights),
        "map_head": head.trained_on,
        "entries": rows,
        "mean_per_structure_auroc": means,
    }


def format_table(res: dict) -> str:
    lines = [f"weights {res['weights']}; map head: {res['map_head']}", ""]
    head = "| entry | maps | residues | χ1 alt | altloc |"
    for name in SCORES:
        head += f" {name}: χ1 alt | altloc |"
    lines += [head, "|" + "---|" * (5 + 2 * len(SCORES))]

    def f(x):
        return "–" if x is None or x != x else f"{x:.2f}"

    for r in res["entries"]:
        row = f"| {r['entry']} | {'from data' if r['maps_from_data'] else 'coefficients'} "
        row += f"| {r['residues']} | {r['n_chi1_alt']} | {r['n_altloc']} |"
        for name in SCORES:
            row += f" {f(r.get(f'auroc_{name}|chi1_alt'))} | {f(r.get(f'auroc_{name}|altloc'))} |"
        lines.append(row)
    lines.append("")
    for key, v in res["mean_per_structure_auroc"].items():
        lines.append(f"mean per-structure AUROC {key}: {v['mean']:.3f} over {v['n']}")
    return "\n".join(lines)
