"""Distinct conformers from a predicted mixture, and the per-residue flexibility score.

`select_conformers` is the deterministic-by-seed alternative to iid sampling (SPEC §7): per
residue it proposes candidates (every component mean plus C draws from the mixture), then keeps
the densest candidate, drops every candidate within `SEPARATION_DEG` of it on every defined χ,
and repeats. So each kept conformer is a distinct local peak of the density, at least 20° from
every other on some χ, and the heaviest rotamer is picked once instead of over and over. The
mass around each conformer is the share of the C draws closer to it than to any other kept
conformer (closeness = the largest circular χ difference, π-folded where symmetric), so the
conformers are ordered heaviest first and their masses sum to 1.

Coverage@S (metrics.py), the multiconformer model (multiconf.py) and the app all use this one
selector; iid draws (`sample.sample_chis`) stay available for an unbiased sample.

`flexibility_score` is the one place that decides "how likely is this side chain to have ≥ 2
conformers": the network's `p_flexible` where the weights have a flexibility head, else a
fallback computed from the mixture (see its docstring).
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..mixture import LOG_2PI, Mixture, log_i0, mode, sample
from ..progress import Tick, no_tick

SEPARATION_DEG = 20.0  # conformers closer than this on every χ are one (the coverage tolerance)
ECLIPSED_DEG = 20.0  # predicted alternatives with χ1 this close to 0° or ±120° are not written
N_CANDIDATES = 128  # draws per residue that propose peaks and weigh them (mass resolution 0.8%)
N_SELECT = 10  # conformers kept per residue by default (coverage@10)
# Residues selected at a time, so a long selection reports its progress between chunks. Each
# residue's selection is its own: chunks give the same numbers, in 9 % less CPU and the same
# peak memory at 15,159 residues (the candidate draws, drawn whole, set the peak;
# benchmarks/bench_progress.py).
SELECT_CHUNK = 1024


def eclipsed_chi1(chi: torch.Tensor) -> bool:
    """χ1 within ECLIPSED_DEG of 0° or ±120°: the CA–CB bond eclipsed, a strained rotamer. The
    mixtures put 4.4% of iid draws there (3.4% of deposited altlocs; benchmarks/eclipsed_chi1.py),
    half from components whose mean is itself eclipsed: no conformer to start refinement from."""
    return bool(eclipsed_deg(np.array([math.degrees(float(chi[0]))]))[0])


def eclipsed_deg(chi1_deg: np.ndarray) -> np.ndarray:
    """[T] bool: `eclipsed_chi1` of many χ1 values at once, in degrees."""
    eclipses = np.array([0.0, 120.0, -120.0])  # [3]
    gap = np.abs((np.asarray(chi1_deg, dtype=float)[..., None] - eclipses + 180.0) % 360.0 - 180.0)
    return (gap < ECLIPSED_DEG).any(-1)


@dataclass
class Selection:
    """Distinct conformers per residue, heaviest first (N residues, up to M each)."""

    chi: torch.Tensor  # [N, M, D] radians; rows past `valid` repeat the first conformer
    mass: torch.Tensor  # [N, M] share of the draws nearest each conformer; 0 where not valid
    valid: torch.Tensor  # [N, M] bool: fewer than M distinct peaks leave trailing rows invalid
    draws: torch.Tensor  # [C, N, D] the draws that weighed them (reused for occupancies)
    entropy: torch.Tensor  # [N] nats over defined χ: −mean log density of the draws (Monte Carlo)

    def conformers(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """χ [M_i, D] and masses [M_i] of residue i's valid conformers."""
        keep = self.valid[i]
        return self.chi[i][keep], self.mass[i][keep]


def chi_distance(
    a: torch.Tensor,  # [..., D]
    b: torch.Tensor,  # [..., D]
    defined: torch.Tensor,  # [..., D] bool
    pi_symmetric: torch.Tensor,  # [..., D] bool
) -> torch.Tensor:
    """Largest circular difference over the defined χ, radians [...] (0 with none defined).

    The same distance as geometry.circ_diff (π-folded where symmetric), written with remainder
    instead of atan2: the selector evaluates it on [N, C, M, D] grids, where atan2 dominated.
    """
    d = torch.remainder(a - b, 2.0 * math.pi)
    d = torch.minimum(d, 2.0 * math.pi - d)  # [0, π]
    d = torch.where(pi_symmetric, torch.minimum(d, math.pi - d), d)
    return torch.where(defined, d, torch.zeros_like(d)).amax(-1)  # NaN in unused slots is fine


def nearest_mass(
    draws: torch.Tensor,  # [C, D] draws of one residue
    centres: torch.Tensor,  # [M, D]
    defined: torch.Tensor,  # [D] bool
    pi_symmetric: torch.Tensor,  # [D] bool
) -> torch.Tensor:
    """[M] share of the draws closer to each centre than to any other (ties: the earlier)."""
    dist = chi_distance(draws[:, None], centres[None], defined, pi_symmetric)  # [C, M]
    near = dist.argmin(1)  # argmin returns the first of equal minima
    return torch.bincount(near, minlength=centres.shape[0]).double() / draws.shape[0]


def select_conformers(
    mix: Mixture,  # logits [N, K], mu/kappa [N, K, D]
    chi_defined: torch.Tensor,  # [N, D] bool
    pi_symmetric: torch.Tensor,  # [N, D] bool
    n_select: int = N_SELECT,
    *,
    seed: int = 0,
    n_candidates: int = N_CANDIDATES,
    separation_deg: float = SEPARATION_DEG,
    tick: Tick = no_tick,
) -> Selection:
    """Up to `n_select` distinct conformers per residue, densest peaks first, then by mass.
    `tick(done, total)` hears the residues done (a chunk at a time)."""
    if n_select < 1:
        raise ValueError("n_select must be at least 1")
    mix = mix.detach().to("cpu", torch.float32)
    defined, sym = chi_defined.cpu(), pi_symmetric.cpu()
    n = mix.mu.shape[0]
    g = torch.Generator().manual_seed(seed)
    # Drawn for every residue at once: the same draws whatever the chunks.
    draws, _ = sample(mix, n_candidates, sym, generator=g)  # [C, N, D]
    parts = []
    for start in range(0, max(n, 1), SELECT_CHUNK):
        tick(start, n)
        r = slice(start, start + SELECT_CHUNK)
        parts.append(
            _select_rows(mix.index(r), draws[:, r], defined[r], sym[r], n_select, separation_deg)
        )
    tick(n, n)
    chi, mass, valid, entropy = (torch.cat(x) for x in zip(*parts, strict=True))
    return Selection(chi=chi, mass=mass, valid=valid, draws=draws, entropy=entropy)


def _select_rows(
    mix: Mixture,  # logits [N, K], mu/kappa [N, K, D] of some residues
    draws: torch.Tensor,  # [C, N, D] their candidate draws
    defined: torch.Tensor,  # [N, D] bool
    sym: torch.Tensor,  # [N, D] bool
    n_select: int,
    separation_deg: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """`select_conformers` for these residues: χ [N, M, D], mass [N, M], valid [N, M], entropy
    [N], each row from that residue's numbers alone."""
    n, k, d = mix.mu.shape
    n_candidates = draws.shape[0]
    cand = torch.cat([mix.mu, draws.transpose(0, 1)], dim=1)  # [N, K + C, D]
    n_cand = cand.shape[1]
    lp = _log_density(cand, mix, defined, sym)  # [N, K + C]
    # The draws are a Monte Carlo sample of the mixture: their mean log density is −entropy.
    entropy = torch.where(defined.any(-1), -lp[:, k:].mean(1), torch.zeros(n))  # [N]
    mask = defined[:, None]  # [N, 1, D]
    alive = torch.ones(n, n_cand, dtype=torch.bool)
    rows = torch.arange(n)
    picked, valid = [], []
    sep = math.radians(separation_deg)
    for _ in range(n_select):
        score = lp.masked_fill(~alive, -math.inf)
        best = score.argmax(1)  # [N]
        ok = alive[rows, best]  # [N]
        centre = cand[rows, best]  # [N, D]
        picked.append(centre)
        valid.append(ok)
        # Everything within the separation of the new peak on every χ belongs to it.
        dist = chi_distance(cand, centre[:, None], mask, sym[:, None])  # [N, K + C]
        alive &= dist >= sep
    chi = torch.stack(picked, 1)  # [N, M, D]
    ok = torch.stack(valid, 1)  # [N, M]
    chi = torch.where(ok[..., None], chi, chi[:, :1])
    # Mass: the share of draws nearest each kept peak; invalid rows sit on the first peak and
    # lose its ties (argmin keeps the first), so they get none.
    dist = chi_distance(
        draws.transpose(0, 1)[:, :, None],
        chi[:, None],
        defined[:, None, None],
        sym[:, None, None],
    )  # [N, C, M]
    near = dist.argmin(-1)  # [N, C]
    mass = torch.zeros(n, n_select).scatter_add_(1, near, torch.ones(near.shape)) / n_candidates
    mass = torch.where(ok, mass, torch.zeros_like(mass))
    # Heaviest first; valid rows before invalid ones (stable sort keeps density order on ties).
    order = torch.sort(mass + ok.double(), dim=1, descending=True, stable=True).indices
    chi = chi.gather(1, order[..., None].expand(-1, -1, d))
    return chi, mass.gather(1, order), ok.gather(1, order), entropy


def _log_density(
    chi: torch.Tensor,  # [N, C, D]
    mix: Mixture,  # logits [N, K], mu/kappa [N, K, D]
    defined: torch.Tensor,  # [N, D] bool
    pi_symmetric: torch.Tensor,  # [N, D] bool
) -> torch.Tensor:
    """mixture.log_prob for C points per residue, [N, C], with the normalisers computed once per
    component rather than once per point (log I0 dominated the broadcast version)."""
    log_norm = (LOG_2PI + log_i0(mix.kappa)) * defined[:, None]  # [N, K, D]
    mult = 1.0 + pi_symmetric.float()  # [N, D]: cos 2Δ on π-symmetric χ
    x = chi * mult[:, None]  # [N, C, D]
    m = mix.mu * mult[:, None]  # [N, K, D]
    k = mix.kappa * defined[:, None]  # [N, K, D]: undefined χ drop out
    # Σ_d κ cos(x − m) = Σ_d κ (cos x cos m + sin x sin m): two batched matmuls, no [N, C, K, D].
    per_k = torch.einsum("ncd,nkd->nck", torch.cos(x), k * torch.cos(m))
    per_k = per_k + torch.einsum("ncd,nkd->nck", torch.sin(x), k * torch.sin(m))  # [N, C, K]
    per_k = per_k - log_norm.sum(-1)[:, None] + torch.log_softmax(mix.logits, -1)[:, None]
    return torch.logsumexp(per_k, -1)


def distinct_mass(
    mix: Mixture,  # logits [N, K], mu/kappa [N, K, D]
    chi_defined: torch.Tensor,  # [N, D] bool
    pi_symmetric: torch.Tensor,  # [N, D] bool
    separation_deg: float = SEPARATION_DEG,
) -> torch.Tensor:
    """[N] mixture weight on components whose mean is a different conformer from the heaviest
    component's (more than `separation_deg` away on some defined χ). 0 for residues without χ."""
    w = torch.softmax(mix.logits.double(), -1)  # [N, K]
    mu_top = mode(mix)  # [N, D]
    dist = chi_distance(
        mix.mu, mu_top[:, None], chi_defined[:, None], pi_symmetric[:, None]
    )  # [N, K]
    other = dist > math.radians(separation_deg)
    out = (w * other).sum(-1)
    return torch.where(chi_defined.any(-1), out, torch.zeros_like(out)).float()


def flexibility_score(
    mix: Mixture,  # logits [N, K], mu/kappa [N, K, D]
    chi_defined: torch.Tensor,  # [N, D] bool
    pi_symmetric: torch.Tensor,  # [N, D] bool
    p_flexible: torch.Tensor | None,  # [N] in [0, 1], or None for weights without the head
) -> torch.Tensor:
    """[N] probability-like score that residue i has ≥ 2 distinct side-chain conformers.

    The network's `p_flexible` where the weights have a flexibility head (SPEC §5b). Without
    one, the fallback is `distinct_mass`: the mixture weight on components that are a different
    conformer from the heaviest component, i.e. the chance that a draw is not the dominant
    rotamer. It ignores the width of each component, so it does not grow with the number of χ
    the way entropy does. Residues without χ score 0 either way.
    """
    if p_flexible is not None:
        out = p_flexible.detach().float().cpu()
        return torch.where(chi_defined.cpu().any(-1), out, torch.zeros_like(out))
    return distinct_mass(mix.detach().to("cpu"), chi_defined.cpu(), pi_symmetric.cpu())


def iid_selection(
    samples: torch.Tensor,  # [S, N, D] iid draws
    chi_defined: torch.Tensor,  # [N, D] bool
    pi_symmetric: torch.Tensor,  # [N, D] bool
    separation_deg: float = SEPARATION_DEG,
    tick: Tick = no_tick,
) -> Selection:
    """The iid alternative to `select_conformers`: the S draws clustered at `separation_deg`
    (sample.cluster_conformers), most frequent first, masses = frequencies among the S draws.
    `tick(done, total)` hears the residues done."""
    from .sample import ALTLOCS, cluster_conformers

    s, n, d = samples.shape
    m = min(s, len(ALTLOCS))
    chi = torch.zeros(n, m, d)
    mass = torch.zeros(n, m)
    valid = torch.zeros(n, m, dtype=torch.bool)
    for i in range(n):
        tick(i, n)
        c, o = cluster_conformers(samples[:, i], chi_defined[i], pi_symmetric[i], separation_deg, m)
        chi[i, : len(c)], mass[i, : len(c)], valid[i, : len(c)] = c, o, True
        chi[i, len(c) :] = c[0]
    tick(n, n)
    return Selection(chi=chi, mass=mass, valid=valid, draws=samples, entropy=torch.zeros(n))
