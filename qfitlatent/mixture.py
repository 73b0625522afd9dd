"""Von Mises mixture over χ1…χ4 (SPEC §4–§5): density, sampling, mode, entropy, and the
resultant length A(κ) with its inverse: one home each.

A mixture is (logits [..., K], mu [..., K, D], kappa [..., K, D]). Component k places an
independent von Mises on every χ; the mixture carries the correlations. π-symmetric χ use the
π-periodic density exp(κ cos 2Δ) / (2π I0(κ)), which integrates to 1 on the circle.
The loss, the metrics, the baselines, sampling and the app all use these functions.
"""

import math
from typing import NamedTuple

import torch

LOG_2PI = math.log(2.0 * math.pi)


class Mixture(NamedTuple):
    logits: torch.Tensor  # [..., K]
    mu: torch.Tensor  # [..., K, D] radians in (−π, π)
    kappa: torch.Tensor  # [..., K, D] > 0

    def index(self, i) -> "Mixture":
        return Mixture(self.logits[i], self.mu[i], self.kappa[i])

    def detach(self) -> "Mixture":
        return Mixture(self.logits.detach(), self.mu.detach(), self.kappa.detach())

    def to(self, *args, **kwargs) -> "Mixture":
        return Mixture(*(t.to(*args, **kwargs) for t in self))


def log_i0(kappa: torch.Tensor) -> torch.Tensor:
    """log I0(κ), finite for large κ: log i0e(κ) + κ."""
    return torch.log(torch.special.i0e(kappa)) + kappa


def resultant_length(kappa: torch.Tensor) -> torch.Tensor:
    """A(κ) = I1(κ)/I0(κ): the mean resultant length of a von Mises, from the exponentially
    scaled Bessel functions so large κ stays finite."""
    return torch.special.i1e(kappa) / torch.special.i0e(kappa)


def kappa_from_resultant_length(rbar: torch.Tensor, newton_steps: int = 3) -> torch.Tensor:
    """κ with A(κ) = R̄ (`resultant_length`): the von Mises maximum-likelihood concentration.

    Banerjee et al. (2005) start, R̄(2 − R̄²)/(1 − R̄²), then Newton steps on A(κ) − R̄.
    """
    rbar = rbar.clamp(1e-6, 1 - 1e-9)
    kappa = rbar * (2 - rbar**2) / (1 - rbar**2)
    for _ in range(newton_steps):
        a = resultant_length(kappa)
        da = 1 - a**2 - a / kappa
        kappa = (kappa - (a - rbar) / da).clamp_min(1e-6)
    return kappa


def uniform_mixture(n: int, n_components: int, n_dim: int = 4) -> Mixture:
    """n residues of the uniform density: κ = 0, so log vM = −log 2π exactly (log I0(0) = 0)."""
    return Mixture(
        torch.zeros(n, n_components), torch.zeros(n, n_components, n_dim),
        torch.zeros(n, n_components, n_dim),
    )  # fmt: skip


def log_von_mises(x, mu, kappa, pi_symmetric) -> torch.Tensor:
    """Log density of one von Mises per element; π-periodic where `pi_symmetric` is True.

    All arguments broadcast together; returns their broadcast shape.
    """
    delta = x - mu
    delta = torch.where(pi_symmetric, 2.0 * delta, delta)
    return kappa * torch.cos(delta) - LOG_2PI - log_i0(kappa)


def log_prob(
    chi: torch.Tensor,  # [..., D]
    mix: Mixture,  # logits [..., K], mu/kappa [..., K, D]
    chi_mask: torch.Tensor,  # [..., D] bool: which χ enter the product
    pi_symmetric: torch.Tensor,  # [..., D] bool
) -> torch.Tensor:
    """Log density of χ under the mixture, over the masked χ only. Returns [...]."""
    per_chi = log_von_mises(chi[..., None, :], mix.mu, mix.kappa, pi_symmetric[..., None, :])
    per_chi = per_chi * chi_mask[..., None, :]  # [..., K, D]
    log_weights = torch.log_softmax(mix.logits, dim=-1)  # [..., K]
    return torch.logsumexp(log_weights + per_chi.sum(-1), dim=-1)


def sample(
    mix: Mixture,  # logits [N, K], mu/kappa [N, K, D]
    n_samples: int,
    pi_symmetric: torch.Tensor | None = None,  # [N, D] bool
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw component k ~ π, then each χ_d ~ VonMises(μ_kd, κ_kd) (SPEC §7).

    `temperature` > 1 flattens the mixture (weights and concentrations), < 1 sharpens it.
    Returns χ [S, N, D] in (−π, π] and the drawn components [S, N].
    Sampling runs on the CPU in float64: torch's VonMises rejection sampler is slow on small
    float32 κ (pytorch#88443); κ_min keeps us clear of its hang and float64 keeps us well clear.
    """
    logits = mix.logits.detach().double().cpu() / temperature
    mu = mix.mu.detach().double().cpu()
    kappa = (mix.kappa.detach().double().cpu() / temperature).clamp_min(1e-4)
    n, k = logits.shape
    weights = torch.softmax(logits, -1)
    # A temperature so small that logits / T overflow: the limit is the heaviest component.
    bad = ~torch.isfinite(weights).all(-1)
    if bad.any():
        top = torch.nn.functional.one_hot(mix.logits.detach().cpu().argmax(-1), k).double()
        weights = torch.where(bad[:, None], top, weights)
    comp = torch.multinomial(weights, n_samples, replacement=True, generator=generator)
    comp = comp.T  # [S, N]
    idx = comp[..., None, None].expand(n_samples, n, 1, mu.shape[-1])
    mu_s = mu.expand(n_samples, n, k, -1).gather(2, idx).squeeze(2)  # [S, N, D]
    kappa_s = kappa.expand(n_samples, n, k, -1).gather(2, idx).squeeze(2)  # [S, N, D]
    delta = _von_mises_draw(kappa_s, generator)  # [S, N, D] around 0
    if pi_symmetric is not None:
        sym = pi_symmetric.cpu()[None].expand_as(delta)
        # π-periodic density: θ = 2Δ is von Mises(0, κ); each half-turn is equally likely.
        half = torch.randint(0, 2, delta.shape, generator=generator, dtype=torch.float64) * math.pi
        delta = torch.where(sym, delta / 2.0 + half, delta)
    chi = torch.atan2(torch.sin(mu_s + delta), torch.cos(mu_s + delta))
    return chi.float(), comp


# Above this κ a von Mises is a normal of σ = 1/√κ (to O(1/κ); here σ < 0.06°), and the
# rejection sampler's r = (1 + ρ²)/2ρ rounds to 1 in float64 as κ grows, so no draw is ever
# accepted (at κ = 1e20 it spun forever): such elements are drawn from the normal instead.
NORMAL_KAPPA = 1e6


def _von_mises_draw(kappa: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Samples of VonMises(0, κ) for every element of κ (Best & Fisher 1979 rejection; the
    normal limit above NORMAL_KAPPA, the mean itself for infinite κ).

    Each round redraws only the still-rejected elements: a full-size redraw per round made a
    million draws cost ~15 full passes (the slowest of a million geometric waits).
    """
    sharp = kappa > NORMAL_KAPPA
    if sharp.any():
        out = _von_mises_draw(torch.where(sharp, torch.ones_like(kappa), kappa), generator)
        normal = torch.randn(kappa.shape, generator=generator, dtype=kappa.dtype)
        return torch.where(sharp, normal / torch.sqrt(kappa), out)  # 1/√∞ = 0: the mean
    tau = 1.0 + torch.sqrt(1.0 + 4.0 * kappa**2)
    rho = (tau - torch.sqrt(2.0 * tau)) / (2.0 * kappa)
    r = ((1.0 + rho**2) / (2.0 * rho)).flatten()
    kappa_flat = kappa.flatten()
    out = torch.empty_like(kappa_flat)
    todo = torch.arange(kappa_flat.numel())
    while todo.numel():
        shape = todo.shape
        u1, u2, u3 = (torch.rand(shape, generator=generator, dtype=kappa.dtype) for _ in range(3))
        rt, kt = r[todo], kappa_flat[todo]
        z = torch.cos(math.pi * u1)
        f = (1.0 + rt * z) / (rt + z)
        c = kt * (rt - f)
        accept = (c * (2.0 - c) - u2 > 0) | (torch.log(c / u2) + 1.0 - c >= 0)
        theta = torch.sign(u3 - 0.5) * torch.acos(f.clamp(-1.0, 1.0))
        out[todo[accept]] = theta[accept]
        todo = todo[~accept]
    return out.view_as(kappa)


def heaviest(mix: Mixture) -> torch.Tensor:
    """Index of the heaviest component [...] (ties to the first)."""
    return mix.logits.argmax(-1)


def mode(mix: Mixture) -> torch.Tensor:
    """χ of the heaviest component [..., D]: the deterministic "most likely" conformer."""
    k = heaviest(mix)  # [...]
    return mix.mu.gather(-2, k[..., None, None].expand(*k.shape, 1, mix.mu.shape[-1])).squeeze(-2)


# Residues per entropy chunk: S × chunk × K × D float64 values per temporary (256 × 512 × 21 × 4
# doubles = 88 MB with the library prior's 21 components) instead of the whole structure at once,
# which took 7.5 GB at 15k residues. Structures up to this size draw exactly as before.
ENTROPY_CHUNK = 512


def entropy(
    mix: Mixture,  # logits [N, K], mu/kappa [N, K, D]
    chi_defined: torch.Tensor,  # [N, D] bool
    pi_symmetric: torch.Tensor,  # [N, D] bool
    n_samples: int = 256,
    seed: int = 0,
    chunk: int = ENTROPY_CHUNK,
) -> torch.Tensor:
    """Differential entropy (nats) over each residue's defined χ, Monte Carlo. Returns [N].

    Residues with no defined χ get 0. The same seed gives the same estimate. Residues are
    processed `chunk` at a time from one generator, so memory stays flat in N.
    """
    g = torch.Generator().manual_seed(seed)
    mix_cpu = mix.detach().to("cpu", torch.float64)
    defined, symmetric = chi_defined.cpu(), pi_symmetric.cpu()
    out = []
    for start in range(0, max(1, mix_cpu.logits.shape[0]), chunk):
        part = mix_cpu.index(slice(start, start + chunk))
        sym = symmetric[start : start + chunk]
        chi, _ = sample(part, n_samples, sym, generator=g)  # [S, n, D]
        lp = log_prob(chi.double(), part, defined[start : start + chunk], sym)  # [S, n]
        out.append(-lp.mean(0))
    h = torch.cat(out)
    return torch.where(defined.any(-1), h, torch.zeros_like(h)).float()
