"""The backbone-dependent rotamer library: von Mises mixtures per amino acid, weights per φ/ψ.

Fitted on training structures only, by occupancy-weighted EM (each altloc a sample with weight
o_a; π-periodic density on π-symmetric χ; per-χ masks for χ an altloc lacks). Two users share
this one fit: the network's prior (`model/prior.py`, its M extra components) and evaluation's
baselines (`eval/baselines.py`), so the evaluation measures exactly what the network adds.

- `PerResidueTypeMixture`: one K-component mixture per amino acid.
- `BackboneDependentMixture`: those components with mixing weights re-estimated per φ/ψ bin
  (20° by default), shrunk towards the per-amino-acid weights by a Dirichlet prior, so a thin bin
  backs off to the per-amino-acid mixture. This is the shape of Dunbrack's library: rotamer
  populations move with φ/ψ far more than rotamer centres do.

Training samples (`training_samples`): every altloc of every residue with a defined χ, including
single-conformer residues (one altloc, occupancy 1). Rotamer populations are better estimated from
all residues than from the ~5% that have altlocs; `min_altlocs=2` restricts to SPEC §5's R.
"""

import math
from dataclasses import asdict, dataclass

import torch

from . import residues
from .config import KAPPA_MIN
from .features import Features
from .mixture import (
    Mixture,
    kappa_from_resultant_length,
    log_von_mises,
    uniform_mixture,
)

KAPPA_MAX = 500.0  # σ ≈ 2.6°: stops a component collapsing onto a few identical altlocs


@dataclass
class TrainingSamples:
    """One row per (residue, altloc) with a defined χ, pooled over structures (M rows)."""

    aatype: torch.Tensor  # [M] long
    chi: torch.Tensor  # [M, D] radians
    chi_mask: torch.Tensor  # [M, D] bool
    weight: torch.Tensor  # [M] occupancy; sums to 1 per residue
    phi_psi: torch.Tensor  # [M, 2] radians
    bb_ok: torch.Tensor  # [M] bool, φ and ψ both defined


def training_samples(feats: list[Features], min_altlocs: int = 1) -> TrainingSamples:
    """Pool the altlocs of residues with n_obs ≥ `min_altlocs` and at least one defined χ."""
    parts = []
    for f in feats:
        keep = f.in_loss(min_altlocs)  # [N]
        alt = keep[:, None] & f.chi_mask.any(-1) & (f.occ > 0)  # [N, A]
        n_idx, a_idx = alt.nonzero(as_tuple=True)
        parts.append(
            (
                f.aatype[n_idx],
                f.chi[n_idx, a_idx].double(),
                f.chi_mask[n_idx, a_idx],
                f.occ[n_idx, a_idx].double(),
                f.bb_angles[n_idx, :2].double(),
                f.bb_mask[n_idx, :2].all(-1),
            )
        )
    if not parts:
        raise ValueError("no training structures to fit the baselines on")
    return TrainingSamples(*(torch.cat(p) for p in zip(*parts, strict=True)))


# --- EM for one von Mises mixture ---------------------------------------------------------------


def _component_log_density(x, mask, mu, kappa, sym) -> torch.Tensor:
    """Σ over masked χ of log vM: x, mask [M, D]; mu, kappa [K, D]; sym [D]. Returns [M, K]."""
    lv = log_von_mises(x[:, None, :], mu[None], kappa[None], sym[None, None, :])  # [M, K, D]
    return (lv * mask[:, None, :]).sum(-1)


def _init_means(x, mask, weight, sym, n_components, generator) -> torch.Tensor:
    """k-means++ seeding on the circle (1 − cos distance), from fully defined samples only."""
    full = mask.sum(-1) == mask.sum(-1).max()
    xs, ws = x[full], weight[full]
    freq = torch.where(sym, 2.0, 1.0)  # π-symmetric χ live on the doubled circle
    first = torch.multinomial(ws, 1, generator=generator)
    centres = [xs[first[0]]]
    dist = torch.full_like(ws, float("inf"))
    for _ in range(1, n_components):
        d = (1 - torch.cos(freq * (xs - centres[-1]))).sum(-1)  # [M']
        dist = torch.minimum(dist, d)
        p = ws * dist
        pick = torch.multinomial(p if p.sum() > 0 else ws, 1, generator=generator)
        centres.append(xs[pick[0]])
    return torch.stack(centres)  # [K, D]


def fit_von_mises_mixture(
    chi: torch.Tensor,  # [M, D]
    chi_mask: torch.Tensor,  # [M, D] bool
    weight: torch.Tensor,  # [M] ≥ 0
    pi_symmetric: torch.Tensor,  # [D] bool
    n_components: int = 5,
    n_iter: int = 100,
    seed: int = 0,
    pseudo_count: float = 0.3,
) -> tuple[Mixture, float]:
    """Weighted EM for a mixture of products of von Mises (π-periodic on symmetric χ).

    Deterministic for a given seed. χ that no sample defines keep κ = κ_min (uniform).
    `pseudo_count` adds that many uniformly spread samples to every component's mean resultant
    length (R̄ = |Σ w e^{iχ}| / (Σ w + n0)): a component that owns two identical altlocs gets
    κ ≈ 2, not κ_max, so a held-out altloc a little off it is not scored at −500 nats.
    Returns the fitted Mixture (logits [K], mu [K, D], kappa [K, D]) and the weighted mean
    log-likelihood per sample on the data.
    """
    x = chi.double()
    m = chi_mask.bool()
    mf = m.double()
    w = weight.double()
    sym = pi_symmetric.bool()
    freq = torch.where(sym, 2.0, 1.0).double()  # [D]
    n_dim = x.shape[-1]
    g = torch.Generator().manual_seed(seed)
    k = min(n_components, int((w > 0).sum()))
    mu = _init_means(x, m, w, sym, k, g)  # [K, D]
    kappa = torch.full((k, n_dim), 10.0, dtype=torch.float64)
    log_pi = torch.full((k,), -math.log(k), dtype=torch.float64)
    sin, cos = torch.sin(freq * x), torch.cos(freq * x)  # [M, D]
    for _ in range(n_iter):
        # E-step: responsibilities [M, K]
        resp = torch.softmax(log_pi + _component_log_density(x, mf, mu, kappa, sym), dim=-1)
        # M-step: every χ of every sample weighted by w_i r_ik where it is defined.
        wr = w[:, None] * resp  # [M, K]
        log_pi = torch.log(wr.sum(0).clamp_min(1e-12) / w.sum())
        n_kd = wr.T @ mf  # [K, D]
        s_kd = wr.T @ (sin * mf)
        c_kd = wr.T @ (cos * mf)
        seen = n_kd > 1e-9
        mu = torch.where(seen, torch.atan2(s_kd, c_kd) / freq, mu)
        rbar = torch.sqrt(s_kd**2 + c_kd**2) / (n_kd + pseudo_count).clamp_min(1e-12)
        fitted = kappa_from_resultant_length(rbar).clamp(KAPPA_MIN, KAPPA_MAX)
        kappa = torch.where(seen, fitted, kappa)
    # Dimensions no sample defines carry no information: make them uniform.
    undefined = ~m.any(0)  # [D]
    kappa = torch.where(undefined[None], torch.full_like(kappa, KAPPA_MIN), kappa)
    mu = torch.where(undefined[None], torch.zeros_like(mu), mu)
    loglik = torch.logsumexp(log_pi + _component_log_density(x, mf, mu, kappa, sym), dim=-1)
    mean_ll = float((w * loglik).sum() / w.sum())
    if k < n_components:  # pad with dead components so every residue type has the same K
        pad = n_components - k
        log_pi = torch.cat([log_pi, torch.full((pad,), -1e4, dtype=torch.float64)])
        mu = torch.cat([mu, torch.zeros(pad, n_dim, dtype=torch.float64)])
        kappa = torch.cat([kappa, torch.full((pad, n_dim), KAPPA_MIN, dtype=torch.float64)])
    return Mixture(log_pi, mu, kappa), mean_ll


# --- the library --------------------------------------------------------------------------------


class PerResidueTypeMixture:
    """One von Mises mixture per amino acid, fitted on the training altlocs (SPEC §8)."""

    name = "per_aa"

    def __init__(self, table: Mixture, train_loglik: dict[str, float]):
        self.table = table  # logits [21, K], mu/kappa [21, K, D]
        self.train_loglik = train_loglik  # residue name → weighted mean log-likelihood

    @classmethod
    def fit(
        cls,
        samples: TrainingSamples,
        n_components: int = 5,
        n_iter: int = 100,
        seed: int = 0,
        pseudo_count: float = 0.3,
    ):
        _, symmetric = residues.chi_table_tensors()
        uniform = uniform_mixture(residues.N_TOKENS, n_components)
        logits, mu, kappa = (t.double().clone() for t in uniform)
        kappa.fill_(KAPPA_MIN)
        train_ll = {}
        for tok, name in enumerate(residues.AA3):
            sel = (samples.aatype == tok) & (samples.weight > 0)
            if residues.n_chi(name) == 0 or not sel.any():
                continue
            mix, ll = fit_von_mises_mixture(
                samples.chi[sel], samples.chi_mask[sel], samples.weight[sel], symmetric[tok],
                n_components, n_iter, seed, pseudo_count,
            )  # fmt: skip
            logits[tok], mu[tok], kappa[tok] = mix
            train_ll[name] = ll
        return cls(Mixture(logits.float(), mu.float(), kappa.float()), train_ll)

    def predict(self, feats: Features) -> Mixture:
        return self.table.index(feats.aatype)


def phi_psi_bins(phi_psi: torch.Tensor, bin_deg: float) -> torch.Tensor:
    """Flat φ/ψ bin index [...] of angles [..., 2] in (−π, π], with 360/bin_deg bins per axis."""
    n_bins = round(360.0 / bin_deg)
    b = ((phi_psi + math.pi) / (2 * math.pi) * n_bins).long().clamp(0, n_bins - 1)  # [..., 2]
    return b[..., 0] * n_bins + b[..., 1]


class BackboneDependentMixture:
    """Per-amino-acid components, mixing weights per φ/ψ bin with back-off to the per-AA weights.

    The weights of bin b are the MAP estimate under a Dirichlet prior centred on the per-AA
    weights with `prior_strength` pseudo-residues: a bin with few residues stays close to the
    per-AA mixture, a well-populated bin follows its own data. Residues without φ or ψ (chain
    ends, breaks) get the per-AA mixture.
    """

    name = "bb_dependent"

    def __init__(self, per_aa: PerResidueTypeMixture, bin_logits: torch.Tensor, bin_deg: float):
        self.per_aa = per_aa
        self.bin_logits = bin_logits  # [21, B², K]
        self.bin_deg = bin_deg

    @classmethod
    def fit(
        cls,
        samples: TrainingSamples,
        per_aa: PerResidueTypeMixture,
        bin_deg: float = 20.0,
        prior_strength: float = 30.0,
        n_iter: int = 30,
    ):
        _, symmetric = residues.chi_table_tensors()
        n_bins2 = round(360.0 / bin_deg) ** 2
        base = torch.log_softmax(per_aa.table.logits.double(), -1)  # [21, K]
        bin_logits = base[:, None, :].expand(-1, n_bins2, -1).clone()  # [21, B², K]
        sel = samples.bb_ok & (samples.weight > 0)
        bins = phi_psi_bins(samples.phi_psi, bin_deg)
        for tok in samples.aatype[sel].unique().tolist():
            s = sel & (samples.aatype == tok)
            comp = Mixture(*(t[tok].double() for t in per_aa.table))
            lc = _component_log_density(
                samples.chi[s], samples.chi_mask[s].double(), comp.mu, comp.kappa, symmetric[tok]
            )  # [M, K]
            b, w = bins[s], samples.weight[s]
            prior = prior_strength * base[tok].exp()  # [K] pseudo-counts
            log_w = bin_logits[tok]  # [B², K]
            for _ in range(n_iter):
                resp = torch.softmax(log_w[b] + lc, -1)  # [M, K]
                counts = torch.zeros_like(log_w).index_add_(0, b, w[:, None] * resp)  # [B², K]
                log_w = torch.log((counts + prior).clamp_min(1e-12))
                log_w = log_w - torch.logsumexp(log_w, -1, keepdim=True)
            bin_logits[tok] = log_w
        return cls(per_aa, bin_logits.float(), bin_deg)

    def predict(self, feats: Features) -> Mixture:
        mix = self.per_aa.predict(feats)
        logits = backbone_dependent_logits(self.bin_logits, mix.logits, feats, self.bin_deg)
        return Mixture(logits, mix.mu, mix.kappa)


def backbone_dependent_logits(
    bin_logits: torch.Tensor,  # [21, B², K]
    fallback: torch.Tensor,  # [N, K]: the per-AA logits of each residue
    feats: Features,
    bin_deg: float,
) -> torch.Tensor:
    """Each residue's φ/ψ-bin weights [N, K]; chain ends and breaks (no φ or ψ) keep `fallback`."""
    bins = phi_psi_bins(feats.bb_angles[:, :2].float(), bin_deg)  # [N]
    has_bb = feats.bb_mask[:, :2].all(-1)  # [N]
    return torch.where(has_bb[:, None], bin_logits[feats.aatype, bins], fallback)


@dataclass(frozen=True)
class LibraryOptions:
    """Rotamer-library settings. Defaults were chosen on the training split alone: fitted on 80%
    of the training structures, scored by NLL over R of the other 20% (never on the validation
    split)."""

    # 1: every residue with a χ (single conformers too); 2: SPEC §5's R only. All residues gave
    # 2.38 vs 2.63 nats on R at K = 16: rotamer populations need the ~95% single conformers.
    min_altlocs: int = 1
    # Components per amino acid: 5 → 2.69, 12 → 2.44, 16 → 2.38, 24 → 2.36 nats. 16 is most of
    # the gain at two thirds of 24's cost (scoring is linear in K); ARG and LYS have 81 rotamers.
    n_components: int = 16
    # φ/ψ bin width (SPEC: 10°–30°) and the Dirichlet pseudo-residues that pull a bin towards
    # the per-AA weights; backbone-dependent NLL at K = 16: 10° 2.31, 15° 2.31, 20° 2.29,
    # 30° 2.31 (prior 30); prior 10 / 30 / 100 at 30°: 2.316 / 2.306 / 2.307.
    bin_deg: float = 20.0
    prior_strength: float = 30.0
    # Uniform pseudo-samples in each component's κ estimate; per-AA NLL at K = 5: 0 → 2.72,
    # 1 → 2.69; at K = 12: 1 → 2.44, 3 → 2.45; at K = 16: 0.3 → 2.378, 1 → 2.382.
    pseudo_count: float = 0.3
    n_iter: int = 100  # EM iterations, fixed: no convergence test, so the fit is reproducible
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def fit_library(train: list[Features], options: LibraryOptions | None = None):
    """The backbone-dependent library fitted on `train`: a `BackboneDependentMixture`."""
    o = options or LibraryOptions()
    samples = training_samples(train, o.min_altlocs)
    per_aa = PerResidueTypeMixture.fit(samples, o.n_components, o.n_iter, o.seed, o.pseudo_count)
    return BackboneDependentMixture.fit(samples, per_aa, o.bin_deg, o.prior_strength)
