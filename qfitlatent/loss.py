"""Training loss (SPEC §5): occupancy-weighted von Mises mixture NLL over the residues in R, and
the flexibility head's binary cross-entropy (SPEC §5b)."""

import torch
import torch.nn.functional as F

from .features import Features
from .mixture import Mixture, log_prob


def residue_nll(mix: Mixture, feats: Features) -> torch.Tensor:
    """L_i = −Σ_a o_a log p(χ_a) for every residue [N] (0 where nothing is observed).

    χ [N, A, D] are scored against the residue's mixture broadcast over altlocs; only the χ
    defined for each altloc enter the product (chi_mask), and π-symmetric χ use the π-periodic
    density.
    """
    # At least fp32 whatever the network ran in (SPEC: loss in fp32); float64 stays float64.
    logits, mu, kappa = (t if t.dtype == torch.float64 else t.float() for t in mix)
    params = Mixture(logits[:, None], mu[:, None], kappa[:, None])  # [N, 1, K, (D)]
    sym = feats.pi_symmetric.to(mu.device)[:, None, :].expand_as(feats.chi)  # [N, A, D]
    lp = log_prob(feats.chi.to(mu.dtype), params, feats.chi_mask, sym)  # [N, A]
    # An altloc with no defined χ has an empty product, log Σ_k π_k = 0: it adds nothing.
    return -(feats.occ.to(lp.dtype) * lp).sum(-1)


def mixture_nll(mix: Mixture, feats: Features, min_altlocs: int = 2):
    """Mean L_i over R = feats.in_loss(min_altlocs).

    Returns (loss scalar, per-residue L [N], valid [N] bool). With no residue in R the loss is
    0 times the graph (finite, zero gradient) so distributed ranks still run backward together.
    """
    per_residue = residue_nll(mix, feats)  # [N]
    valid = feats.in_loss(min_altlocs).to(per_residue.device)
    total = torch.where(valid, per_residue, torch.zeros_like(per_residue)).sum()
    return total / valid.sum().clamp_min(1), per_residue, valid


def training_loss(
    mix: Mixture, feats: Features, min_altlocs: int = 2, r_share: float = 0.0
) -> torch.Tensor:
    """The training objective: mean L_i over feats.in_loss(min_altlocs), or with `r_share` > 0
    (and min_altlocs 1) a blend that gives the residues in R that share of the loss.

    With min_altlocs 1, R is ~4% of the residues, so the plain mean mostly teaches rigid side
    chains and sharpens every prediction; the blend keeps that teaching while the flexible
    residues, the ones the NLL metric scores, keep a fixed say.
    """
    loss, per_residue, valid = mixture_nll(mix, feats, min_altlocs)
    if r_share <= 0.0 or min_altlocs >= 2:
        return loss
    in_r = feats.in_r.to(per_residue.device)
    loss_r = torch.where(in_r, per_residue, torch.zeros_like(per_residue)).sum()
    loss_r = loss_r / in_r.sum().clamp_min(1)
    return (1.0 - r_share) * loss + r_share * loss_r


def flex_labels(feats: Features) -> tuple[torch.Tensor, torch.Tensor]:
    """(label [N] float, mask [N] bool) for the flexibility head.

    Label 1: the side chain has >= 2 distinct observed conformers. Counted only for residues
    with χ1 whose side chain was observed, and only in structures whose modellers built
    side-chain altlocs somewhere: a structure with none says more about its refinement than
    about its side chains, so it teaches nothing about "rigid".
    """
    observed = feats.chi_mask[:, :, 0].any(-1)  # [N] χ1 seen in some altloc
    flexible = feats.n_obs >= 2
    modelled = bool((flexible & observed).any())
    mask = observed & feats.chi_defined[:, 0].to(observed.device) & modelled
    return flexible.float(), mask


def flex_loss(flex_logit: torch.Tensor, feats: Features) -> torch.Tensor:
    """Mean binary cross-entropy over the labelled residues (0 times the graph when none)."""
    label, mask = flex_labels(feats)
    label, mask = label.to(flex_logit.device), mask.to(flex_logit.device)
    bce = F.binary_cross_entropy_with_logits(flex_logit.float(), label, reduction="none")  # [N]
    return torch.where(mask, bce, torch.zeros_like(bce)).sum() / mask.sum().clamp_min(1)


def flex_rank_loss(flex_logit: torch.Tensor, feats: Features) -> torch.Tensor:
    """Mean pairwise logistic loss log(1 + e^(s_rigid − s_flexible)) over every (flexible, rigid)
    pair of labelled residues in this structure: a smooth 1 − AUROC. 0 times the graph when
    either class is absent."""
    label, mask = flex_labels(feats)
    label, mask = label.to(flex_logit.device), mask.to(flex_logit.device)
    logit = flex_logit.float()
    pos, neg = logit[mask & (label > 0)], logit[mask & (label == 0)]  # [P], [Q]
    if pos.numel() == 0 or neg.numel() == 0:
        return logit.sum() * 0.0
    return F.softplus(neg[None, :] - pos[:, None]).mean()  # [P, Q] pairs


def protein_loss(pred, feats: Features, train_cfg) -> torch.Tensor:
    """The training objective of one crop: the χ NLL blended as `train_cfg` says (min_altlocs,
    r_share) plus `flex_weight` times the flexibility BCE when the model has that head.
    `pred` is the model's ModelOutput."""
    loss = training_loss(pred.mixture, feats, train_cfg.min_altlocs, train_cfg.r_share)
    if pred.flex_logit is not None:
        loss = loss + train_cfg.flex_weight * flex_loss(pred.flex_logit, feats)
        if train_cfg.flex_rank_weight > 0:
            loss = loss + train_cfg.flex_rank_weight * flex_rank_loss(pred.flex_logit, feats)
    return loss
