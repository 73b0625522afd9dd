"""A Prediction as the arrays and records the viz functions draw.

`viz` never sees a `predict.Prediction`: this module reads one (features, mixtures, samples,
the multiconformer model) and hands viz plain numbers: residue ids and labels, mixture arrays,
altloc records, conformers as PDB text, per-residue values for the profile.
"""

import numpy as np
import plotly.graph_objects as go

from .residues import CHI_ATOMS
from .viz import chi, profile, viewer
from .viz.colours import OBSERVED_CARBON, flexibility_colour, occupancy_colour

# --- one residue ---------------------------------------------------------------------------------


def residue_id(pred, i: int) -> tuple[str, int, str]:
    f = pred.features
    return f.chain_id[i], int(f.resnum[i]), f.icode[i]


def residue_label(pred, i: int) -> str:
    """The "A99 SER" style label (chain, number, insertion code, name)."""
    chain, resnum, icode = residue_id(pred, i)
    return f"{chain}{resnum}{icode} {pred.features.resname[i]}"


def observed_altlocs(pred, i: int) -> list[dict]:
    """The input's side-chain conformers of residue i: χ [D] rad, mask [D], occupancy, altloc.

    The occupancy is the file's (coinciding altlocs summed, "A+B"), as multiconformer.pdb and
    report.csv hold it, not the normalised one the network trains on."""
    f, rec = pred.features, pred.parsed.residues[i]
    return [
        {
            "chi": f.chi[i, a].numpy(),
            "mask": f.chi_mask[i, a].numpy(),
            "occ": float(conf.file_occ),
            "altloc": "+".join(conf.altlocs) or conf.altloc,
        }
        for a, conf in enumerate(rec.conformers)
    ]


def mixture_arrays(pred, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Residue i's mixture: logits [K], mu [K, D] rad, kappa [K, D], pi_symmetric [D] bool."""
    mix = pred.mixture.index(i)
    return (
        mix.logits.numpy(),
        mix.mu.numpy(),
        mix.kappa.numpy(),
        pred.features.pi_symmetric[i].numpy(),
    )


def ringer_curves(pred, i: int) -> dict | None:
    """Residue i's Ringer scan as the χ plot draws it ({"chi1": [T] deg, "curves": {map label:
    [T] σ at γ}}), None where the prediction has no map or the map cannot speak for it."""
    evidence = getattr(pred, "evidence", None)
    scan = evidence.scans[i] if evidence is not None else None
    if scan is None:
        return None
    return {"chi1": scan.chi1, "curves": dict(scan.gamma)}


def residue_figures(pred, i: int) -> tuple[go.Figure | None, go.Figure | None]:
    """(χ circle figure, χ1–χ2 torus or None) for residue i; (None, None) without χ."""
    n_chi = int(pred.features.chi_defined[i].sum())
    if n_chi == 0:
        return None, None
    logits, mu, kappa, sym = mixture_arrays(pred, i)
    observed = observed_altlocs(pred, i)
    samples = pred.samples[:, i].numpy()  # [S, D]
    label = residue_label(pred, i)
    rec = pred.parsed.residues[i]
    resname = getattr(rec, "parent", None) or pred.features.resname[i]
    circle = chi.chi_circle_figure(
        logits,
        mu,
        kappa,
        n_chi,
        sym,
        observed=observed,
        samples=samples,
        title=f"{label}: predicted χ densities",
        resname=resname,
        chi_atoms=CHI_ATOMS.get(resname, []),
        ringer=ringer_curves(pred, i),
    )
    torus = None
    if n_chi >= 2:
        torus = chi.torus_figure(
            logits,
            mu,
            kappa,
            sym,
            observed=observed,
            samples=samples,
            title=f"{label}: χ1–χ2 joint density",
            resname=resname,
            n_chi=n_chi,
        )
    return circle, torus


# --- the 3D view ---------------------------------------------------------------------------------


def structure_view(
    pred,
    viewer_text: "str | viewer.PdbIndex",
    i: int,
    *,
    also: list[int] = (),
    colour_by_flexibility: bool = False,
    show_observed: bool = True,
    whole: bool = False,
    height: int = 480,
) -> tuple[viewer.Scene, list[tuple[str, str]]]:
    """The 3D view of residue i (and residues `also`) with sampled and observed conformers.

    `viewer_text` is the viewer's index of the prediction's structure (`viewer.viewer_index`),
    or `viewer.viewer_pdb` text of a structure whose chain names are one character.
    Returns the view and legend items (label, colour) for the selected residue's conformers.
    """
    # Imported on use: predict loads the ensemble builders, which every page importing ui (and
    # through it this module), the Train page too, would otherwise wait for at start.
    from .predict import residue_proposals

    shown = [i, *[j for j in also if j != i]]
    index = (viewer_text if isinstance(viewer_text, viewer.PdbIndex)
             else viewer.pdb_index(viewer_text))  # fmt: skip
    drawn = viewer.drawn_pdb(index, [residue_id(pred, j) for j in shown], whole)
    sampled, observed, legend = [], [], []
    for j in shown:
        chain, resnum, icode = residue_id(pred, j)
        chain = drawn.chain_ids.get(chain, chain)  # the ID the drawn text names the chain by
        resname = pred.features.resname[j]
        for label, occ, atoms, written in residue_proposals(pred, j):
            colour = occupancy_colour(occ)
            text = viewer.atoms_pdb(
                viewer.side_chain_atoms(atoms), resname, chain, resnum, icode, occ
            )
            sampled.append({"pdb": text, "colour": colour})
            if j == i:
                what = f"written {label}" if written else f"proposed {label} (not written)"
                legend.append((f"{what} · {occ:.0%}", colour))
        if show_observed:
            for conf in pred.parsed.residues[j].conformers:
                side = viewer.side_chain_atoms(conf.atoms)
                text = viewer.atoms_pdb(side, resname, chain, resnum, icode, conf.file_occ)
                observed.append({"pdb": text})
    if show_observed:
        n_obs = pred.parsed.residues[i].n_obs
        legend.append(
            (
                f"input side chain{'s' if n_obs > 1 else ''} ({n_obs} altloc"
                f"{'s' if n_obs > 1 else ''})",
                OBSERVED_CARBON,
            )
        )
    colours = None
    if colour_by_flexibility:  # the flexibility score is a probability: an absolute scale
        idx = [r["index"] for r in pred.table]
        scaled = np.clip(pred.flexibility[idx].numpy(), 0.0, 1.0)
        colours = {
            residue_id(pred, j): flexibility_colour(v) for j, v in zip(idx, scaled, strict=True)
        }
    labels = [(residue_id(pred, j), residue_label(pred, j)) for j in shown]
    view = viewer.ensemble_view(
        drawn.text,
        focus=residue_id(pred, i),
        index=index,
        chain_ids=drawn.chain_ids,
        sampled=sampled,
        observed=observed,
        residue_colours=colours,
        labels=labels,
        whole=whole,
        height=height,
    )
    return view, legend


# --- the chain profile ---------------------------------------------------------------------------


def profile_figure(pred, chains: list[str] | None = None) -> go.Figure:
    """`flexibility_profile` of a prediction in file order, one track per chain (only `chains`,
    when given); each point's customdata[0] is its residue index in the prediction."""
    f = pred.features
    order = sorted(r["index"] for r in pred.table)  # residues with χ, in file order
    if chains is not None:
        keep = set(chains)
        order = [j for j in order if f.chain_id[j] in keep]
    # The flexibility score (`conformers.flexibility_score`): p_flexible, or the mixture's
    # distinct mass without a flexibility head; a probability either way.
    values = pred.flexibility.float().numpy()
    return profile.flexibility_profile(
        [f.chain_id[j] for j in order],
        f.resnum[order].numpy(),
        [residue_label(pred, j) for j in order],
        values[order],
        f.n_obs[order].numpy(),
        index=order,
        split=np.array([j in pred.multiconformer.conformers for j in order]),
    )


def chain_flexibility(pred) -> list[dict]:
    """Per chain, in file order, over its residues with χ: `chain`, `residues`, `expected` (Σ of
    the flexibility score: the expected number of flexible residues) and `mean` score."""
    values = pred.flexibility.float().numpy()
    per: dict[str, list[float]] = {}
    for r in sorted(pred.table, key=lambda r: r["index"]):
        per.setdefault(pred.features.chain_id[r["index"]], []).append(values[r["index"]])
    return [{"chain": c, "residues": len(v), "expected": float(np.sum(v)),
             "mean": float(np.mean(v))} for c, v in per.items()]  # fmt: skip


def most_flexible_chains(stats: list[dict], n: int) -> list[str]:
    """The n chains with the most expected flexible residues (a chain of many residues with
    some flexible ones before a short peptide that moves), in file order."""
    top = sorted(range(len(stats)), key=lambda k: -stats[k]["expected"])[:n]
    return [stats[k]["chain"] for k in sorted(top)]


def chain_overview_figure(stats: list[dict], shown: list[str]) -> go.Figure:
    """`chain_overview` of a prediction's `chain_flexibility`: one row per chain, the chains in
    `shown` stand out."""
    return profile.chain_overview(
        [s["chain"] for s in stats],
        np.array([s["residues"] for s in stats]),
        np.array([s["expected"] for s in stats]),
        np.array([s["mean"] for s in stats]),
        shown=shown,
    )


def profile_caption(pred) -> str:
    """What the profile's bars are, in words and units (p_flexible, or the fallback score)."""
    if getattr(pred, "evidence", None) is not None:
        what = ("Bars: p(flexible), the probability (0–1) that the side chain has two or more "
                "distinct conformers given the network and the map (the network's alone where "
                "the map cannot speak for it); also the cartoon's colour.")  # fmt: skip
    elif getattr(pred, "p_flexible", None) is not None:
        what = ("Bars: p(flexible), the network's probability (0–1) that the side chain has two "
                "or more distinct conformers; also the cartoon's colour.")  # fmt: skip
    else:
        what = (
            "Bars: flexibility (0–1) from the χ mixture, as these weights have no "
            "flexibility head: the weight on rotamers other than the most likely one, i.e. "
            "the chance that a draw is not the dominant rotamer; also the cartoon's colour."
        )
    return what + (" ▼ residues the input models with side-chain altlocs; ■ residues split in "
                   "multiconformer.pdb.")  # fmt: skip
