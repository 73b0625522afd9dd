"""Evaluation metrics for any per-residue `Mixture`: the model and the baselines are scored alike.

Per structure, `score_structure` returns per-item tensors (per residue in R, per altloc, per
residue with χ1); `summarize` pools them over structures, so means are over residues and altlocs
of the whole set, not means of per-structure means.

- NLL: L_i = −Σ_a o_a log p(χ_a) over the altloc's defined χ (loss.residue_nll), mean over R.
- coverage@S: share of observed altlocs in R with at least one of S samples within 20° on every
  defined χ (circular distance, π-folded where symmetric). Reported twice: for S iid draws, and
  for the S conformers of `conformers.select_conformers` (the selector the app and the
  multiconformer model use), key `coverage@S_selected`.
- χ1 mode accuracy: share of residues in R whose highest-occupancy altloc has χ1 within 20° of
  the heaviest component's mean χ1.
- packer-style χ1 accuracy: share of every residue with χ1 whose highest-occupancy altloc has χ1
  within 20° (40°) of the predicted mode (the heaviest component's mean, `mixture.mode`).
- flexibility AUROC: a per-residue score (the model's p_flexible, or the mixture's entropy)
  separating n_obs ≥ 2 from n_obs = 1, over the residues `loss.flex_labels` labels (χ1 observed,
  in structures with side-chain altlocs somewhere): pooled over all structures, and as the mean
  over the structures that hold both classes, since a user ranks residues within one structure.
- calibration: for nominal level q, the share of observed altlocs inside the predicted
  highest-density region of mass q (HDR thresholds from Monte Carlo samples per residue).
"""

import math

import torch

from ..features import Features
from ..geometry import circ_diff
from ..loss import flex_labels, residue_nll
from ..mixture import Mixture, entropy, log_prob, mode, sample

TOLERANCE = math.radians(20.0)
PACKER_TOLERANCES_DEG = (20, 40)  # χ1 accuracy thresholds side-chain packers report
ENTROPY_CHUNK = 512  # residues per Monte Carlo entropy call
CALIBRATION_LEVELS = tuple(round(0.1 * i, 1) for i in range(1, 10))


def altloc_covered(
    samples: torch.Tensor,  # [S, N, D]
    chi: torch.Tensor,  # [N, A, D]
    chi_mask: torch.Tensor,  # [N, A, D] bool
    pi_symmetric: torch.Tensor,  # [N, D] bool
    tol: float = TOLERANCE,
) -> torch.Tensor:
    """[N, A] bool: some sample is within `tol` of the altloc on every χ the altloc defines."""
    d = circ_diff(samples[:, :, None, :], chi[None], pi_symmetric[None, :, None, :])  # [S, N, A, D]
    close = (d <= tol) | ~chi_mask[None]
    return close.all(-1).any(0)


def selected_covered(
    mix: Mixture,  # logits [R, K], mu/kappa [R, K, D]
    chi: torch.Tensor,  # [R, A, D]
    chi_mask: torch.Tensor,  # [R, A, D] bool
    chi_defined: torch.Tensor,  # [R, D] bool
    pi_symmetric: torch.Tensor,  # [R, D] bool
    n_select: int,
    seed: int = 0,
) -> torch.Tensor:
    """[R, A] bool: `altloc_covered` by the selector's S conformers instead of S iid draws."""
    from ..ensemble.conformers import select_conformers

    sel = select_conformers(mix, chi_defined, pi_symmetric, n_select, seed=seed)
    # Invalid rows repeat the first conformer, so they cover nothing new.
    return altloc_covered(sel.chi.transpose(0, 1), chi, chi_mask, pi_symmetric)


def chi1_mode_hit(
    mix: Mixture,
    chi: torch.Tensor,
    chi_mask: torch.Tensor,
    occ: torch.Tensor,
    tol: float = TOLERANCE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Heaviest component's mean χ1 vs the highest-occupancy altloc's χ1.

    Returns hit [N] bool and defined [N] bool (the top altloc has a χ1).
    """
    # Ties in occupancy go to the first altloc; padding has occupancy 0.
    top = occ.argmax(-1)  # [N]
    rows = torch.arange(chi.shape[0])
    obs = chi[rows, top, 0]  # [N]
    defined = chi_mask[rows, top, 0] & (occ[rows, top] > 0)
    pred = mode(mix)[:, 0]  # [N]
    return (circ_diff(pred, obs) <= tol) & defined, defined


def chi1_error(
    mix: Mixture,  # logits [N, K], mu [N, K, D]
    chi: torch.Tensor,  # [N, A, D]
    chi_mask: torch.Tensor,  # [N, A, D] bool
    occ: torch.Tensor,  # [N, A]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Circular distance [N] (radians, in [0, π]) between the predicted mode's χ1 and the
    highest-occupancy altloc's χ1, and defined [N] bool (that altloc has a χ1).

    χ1 is never π-symmetric, so the distance is the plain one on the circle.
    """
    # Ties in occupancy go to the first altloc; padding has occupancy 0.
    top = occ.argmax(-1)  # [N]
    rows = torch.arange(chi.shape[0])
    obs = chi[rows, top, 0]  # [N]
    defined = chi_mask[rows, top, 0] & (occ[rows, top] > 0)
    err = circ_diff(mode(mix)[:, 0].float(), obs.float())  # [N]
    return err, defined


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count ½.

    Mann–Whitney U from mid-ranks; NaN where either class is empty.
    """
    scores = scores.double().flatten()
    labels = labels.bool().flatten()
    n_pos = int(labels.sum())
    n_neg = labels.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # Mid-ranks: every member of a tie group gets the mean of the ranks the group spans.
    _, inverse, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    start = torch.cumsum(counts, 0) - counts  # ranks below each group
    mid = (start + (counts + 1) / 2.0).double()[inverse]
    u = mid[labels].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def per_structure_auroc(
    scores: list[torch.Tensor], labels: list[torch.Tensor]
) -> tuple[float, int]:
    """Mean AUROC over the structures that hold both classes, and how many structures that is.

    NaN (and 0) when no structure holds both classes.
    """
    values = [auroc(s, y) for s, y in zip(scores, labels, strict=True)]
    values = [v for v in values if not math.isnan(v)]
    return (sum(values) / len(values) if values else float("nan")), len(values)


def hdr_rank(
    mix: Mixture,  # logits [N, K], mu/kappa [N, K, D]
    chi: torch.Tensor,  # [N, A, D]
    chi_mask: torch.Tensor,  # [N, A, D] bool
    pi_symmetric: torch.Tensor,  # [N, D] bool
    n_samples: int = 200,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """u [N, A]: the predicted mass of χ with lower density than the altloc's (Monte Carlo).

    The altloc lies inside the highest-density region of mass q exactly when u ≥ 1 − q. Each
    altloc is judged on the marginal over the χ it defines (a product of von Mises per component
    marginalises by dropping factors, so log_prob with the altloc's mask is that marginal). Ties
    (a flat density) are broken uniformly at random, so a flat prediction scores u ~ U(0, 1).
    """
    draws, _ = sample(mix, n_samples, pi_symmetric, generator=generator)  # [S, N, D]
    mix64 = mix.detach().to("cpu", torch.float64)
    sym = pi_symmetric.cpu()[:, None, :].expand_as(chi_mask)  # [N, A, D]
    per_alt = Mixture(mix64.logits[:, None], mix64.mu[:, None], mix64.kappa[:, None])
    lp_obs = log_prob(chi.double().cpu(), per_alt, chi_mask.cpu(), sym)  # [N, A]
    lp_draw = log_prob(
        draws.double()[:, :, None, :].expand(-1, -1, chi.shape[1], -1), per_alt, chi_mask.cpu(), sym
    )  # [S, N, A]
    below = (lp_draw < lp_obs).double().mean(0)
    tied = (lp_draw == lp_obs).double().mean(0)
    jitter = torch.rand(below.shape, generator=generator, dtype=torch.float64)
    return below + jitter * tied


def calibration_curve(
    u: torch.Tensor, weight: torch.Tensor | None = None, levels=CALIBRATION_LEVELS
) -> list[dict]:
    """[{level q, observed}]: the (weighted) share of altlocs with u ≥ 1 − q, i.e. inside HDR_q."""
    u = u.double().flatten()
    w = torch.ones_like(u) if weight is None else weight.double().flatten()
    out = []
    for q in levels:
        inside = (u >= 1.0 - q - 1e-12).double()
        out.append(
            {
                "level": q,
                "observed": float((w * inside).sum() / w.sum()) if w.sum() > 0 else float("nan"),
            }
        )
    return out


def unique_entropy(
    mix: Mixture,  # logits [N, K], mu/kappa [N, K, D]
    chi_defined: torch.Tensor,  # [N, D] bool
    pi_symmetric: torch.Tensor,  # [N, D] bool
    seed: int = 0,
) -> torch.Tensor:
    """mixture.entropy [N], estimated once per distinct (mixture, χ set) and in chunks.

    A rotamer library gives every residue of a type (and φ/ψ bin) the same mixture, so its
    Monte Carlo entropy costs a few estimates instead of thousands; chunks bound the
    [256, n, K, D] tensors of large structures.
    """
    key = torch.cat(
        [mix.logits, mix.mu.flatten(1), mix.kappa.flatten(1), chi_defined, pi_symmetric], -1
    )  # [N, K(1 + 2D) + 2D]
    uniq, inverse = torch.unique(key.float(), dim=0, return_inverse=True)
    first = torch.zeros(len(uniq), dtype=torch.long).scatter_(0, inverse, torch.arange(len(key)))
    parts = [
        entropy(mix.index(c), chi_defined[c], pi_symmetric[c], seed=seed)
        for c in first.split(ENTROPY_CHUNK)
    ]
    return torch.cat([torch.zeros(0), *parts])[inverse]


def score_flexibility(score: torch.Tensor, feats: Features) -> dict[str, torch.Tensor]:
    """A per-residue flexibility score [N] on the residues `loss.flex_labels` labels.

    Returns {"flex_score": [L], "flexible": [L] bool}; a structure without side-chain altlocs
    gives L = 0 (no label says "rigid" where nobody modelled altlocs).
    """
    label, labelled = flex_labels(feats)  # [N], [N]
    return {"flex_score": score.float().cpu()[labelled], "flexible": label[labelled].bool()}


def score_structure(
    mix: Mixture,
    feats: Features,
    n_samples: int = 10,
    n_calibration_samples: int = 200,
    seed: int = 0,
    flex_score: torch.Tensor | None = None,  # [N] e.g. p_flexible; None: the entropy
) -> dict[str, torch.Tensor]:
    """Per-item scores of one structure's prediction; pool with `summarize`."""
    mix = mix.detach().to("cpu", torch.float32)
    g = torch.Generator().manual_seed(seed)
    nll = residue_nll(mix, feats)  # [N], the training loss's L_i
    hit, has_chi1 = chi1_mode_hit(mix, feats.chi, feats.chi_mask, feats.occ)
    chi1_err, top_has_chi1 = chi1_error(mix, feats.chi, feats.chi_mask, feats.occ)  # [N], [N]
    _, labelled = flex_labels(feats)  # [N]
    # Entropy of the labelled residues only: the rest do not enter the AUROC.
    ent = torch.zeros(feats.n_res)
    ent[labelled] = unique_entropy(
        mix.index(labelled), feats.chi_defined[labelled], feats.pi_symmetric[labelled], seed
    )
    flex = score_flexibility(ent if flex_score is None else flex_score, feats)
    # Sampling metrics only on R (a few percent of residues): the rest cannot count.
    in_r = feats.in_r  # [N] SPEC §5's R
    mix_r = mix.index(in_r)
    chi, chi_mask, occ = feats.chi[in_r], feats.chi_mask[in_r], feats.occ[in_r]
    sym = feats.pi_symmetric[in_r]
    alt = chi_mask.any(-1) & (occ > 0)  # [R, A] observed altlocs
    draws, _ = sample(mix_r, n_samples, sym, generator=g)  # [S, R, D]
    covered = altloc_covered(draws, chi, chi_mask, sym)  # [R, A]
    defined_r = feats.chi_defined[in_r]
    covered_sel = selected_covered(mix_r, chi, chi_mask, defined_r, sym, n_samples, seed)  # [R, A]
    u = hdr_rank(mix_r, chi, chi_mask, sym, n_calibration_samples, g)  # [R, A]
    # Each residue in R counts once in the occupancy-weighted calibration, as in the NLL.
    return {
        "nll": nll[in_r],
        "covered": covered[alt],
        "covered_selected": covered_sel[alt],
        "chi1_hit": hit[in_r & has_chi1],
        "chi1_err": chi1_err[top_has_chi1],
        "entropy": ent[labelled],
        **flex,
        "hdr_u": u[alt],
        "hdr_occ": occ[alt],
    }


def summarize_flexibility(scores: list[dict[str, torch.Tensor]], key: str = "flex_score") -> dict:
    """Flexibility AUROC of `key` pooled, and its mean over structures with both classes."""
    score = [s[key] for s in scores]
    label = [s["flexible"] for s in scores]
    per_structure, n_structures = per_structure_auroc(score, label)
    return {
        "flex_auroc": auroc(torch.cat(score), torch.cat(label)),
        "flex_auroc_per_structure": per_structure,
        "flex_auroc_structures": n_structures,
        "flex_residues": sum(int(y.numel()) for y in label),
    }


def summarize_flex_probability(scores: list[dict[str, torch.Tensor]] | None) -> dict:
    """Calibration of a flexibility score that is a probability: its Brier score, and its sum
    (the expected number of flexible residues) beside the observed number. None for each where
    `scores` is None (a score that is no probability, such as entropy)."""
    keys = ("flex_brier", "flex_expected", "flex_observed")
    if scores is None:
        return dict.fromkeys(keys)
    p = torch.cat([s["flex_score"] for s in scores]).double()
    y = torch.cat([s["flexible"] for s in scores]).double()
    brier = float((p - y).square().mean()) if p.numel() else float("nan")
    return dict(zip(keys, (brier, float(p.sum()), int(y.sum())), strict=True))


def summarize(scores: list[dict[str, torch.Tensor]], n_samples: int = 10) -> dict:
    """Pool per-structure scores into the reported numbers (means over residues/altlocs)."""
    cat = {k: torch.cat([s[k] for s in scores]) for k in scores[0]}

    def mean(t):
        return float(t.double().mean()) if t.numel() else float("nan")

    entropy_flex = summarize_flexibility(scores, "entropy")
    return {
        "nll": mean(cat["nll"]),
        f"coverage@{n_samples}": mean(cat["covered"]),
        f"coverage@{n_samples}_selected": mean(cat["covered_selected"]),
        "chi1_mode_acc": mean(cat["chi1_hit"]),
        **{
            f"chi1_acc@{t}": mean(cat["chi1_err"] <= math.radians(t)) for t in PACKER_TOLERANCES_DEG
        },
        **summarize_flexibility(scores),
        "entropy_auroc": entropy_flex["flex_auroc"],
        "entropy_auroc_per_structure": entropy_flex["flex_auroc_per_structure"],
        "residues": int(cat["nll"].numel()),
        "altlocs": int(cat["covered"].numel()),
        "chi1_residues": int(cat["chi1_err"].numel()),
        "calibration": calibration_curve(cat["hdr_u"]),
        "calibration_occ_weighted": calibration_curve(cat["hdr_u"], cat["hdr_occ"]),
    }
