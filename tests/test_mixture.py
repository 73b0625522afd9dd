"""The von Mises mixture (qfitlatent/mixture.py): normalisation, π-symmetry, stability, sampling."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from qfitlatent import residues
from qfitlatent.mixture import Mixture, heaviest, log_prob, mode, sample

GRID = torch.linspace(-math.pi, math.pi, 3601, dtype=torch.float64)[:-1]  # 3600 points, periodic


def random_mixture(n, k=5, d=4, seed=0, kappa_range=(0.01, 1000.0)) -> Mixture:
    g = torch.Generator().manual_seed(seed)
    lo, hi = (math.log(x) for x in kappa_range)
    return Mixture(
        torch.randn(n, k, generator=g, dtype=torch.float64),
        (torch.rand(n, k, d, generator=g, dtype=torch.float64) * 2 - 1) * math.pi,
        torch.exp(lo + (hi - lo) * torch.rand(n, k, d, generator=g, dtype=torch.float64)),
    )


def marginal_density(mix: Mixture, d: int, symmetric: bool) -> torch.Tensor:
    """Density of χ_d alone [G, N] on GRID: only χ_d enters the product."""
    n, _, n_d = mix.mu.shape
    chi = torch.zeros(len(GRID), n, n_d, dtype=torch.float64)
    chi[..., d] = GRID[:, None]
    mask = torch.zeros(n_d, dtype=torch.bool)
    mask[d] = True
    sym = torch.zeros(n_d, dtype=torch.bool)
    sym[d] = symmetric
    return log_prob(chi, mix, mask.expand(n, n_d), sym.expand(n, n_d)).exp()


@pytest.mark.parametrize("symmetric", [False, True])
def test_every_chi_density_integrates_to_one(symmetric):
    mix = random_mixture(8, kappa_range=(0.01, 1000.0))
    step = 2 * math.pi / len(GRID)
    for d in range(4):
        integral = marginal_density(mix, d, symmetric).sum(0) * step  # [N]
        assert torch.allclose(integral, torch.ones_like(integral), atol=1e-6), integral


def test_pi_shift_scores_the_same_only_for_the_four_symmetric_chi():
    defined, symmetric = residues.chi_table_tensors()  # [21, 4]
    mix = random_mixture(1, kappa_range=(0.5, 20.0))
    chi = (torch.rand(4, dtype=torch.float64) * 2 - 1) * math.pi
    n_symmetric = 0
    for token in range(residues.N_TOKENS):
        for d in range(4):
            if not defined[token, d]:
                continue
            mask = torch.zeros(4, dtype=torch.bool)
            mask[d] = True
            shifted = chi.clone()
            shifted[d] += math.pi
            a = log_prob(chi[None], mix, mask[None], symmetric[token][None])
            b = log_prob(shifted[None], mix, mask[None], symmetric[token][None])
            same = torch.allclose(a, b, atol=1e-9)
            assert same == bool(symmetric[token, d]), (residues.AA3[token], d)
            n_symmetric += same
    assert n_symmetric == 4  # ASP χ2, GLU χ3, PHE χ2, TYR χ2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_prob_and_gradients_finite_for_kappa_from_floor_to_1e4(dtype):
    kappa_values = torch.logspace(-2, 4, 25, dtype=dtype)  # 0.01 … 1e4
    n = len(kappa_values)
    logits = torch.randn(n, 3, dtype=dtype, requires_grad=True)
    mu = ((torch.rand(n, 3, 4, dtype=dtype) * 2 - 1) * math.pi).requires_grad_()
    kappa = kappa_values[:, None, None].expand(n, 3, 4).clone().requires_grad_()
    # χ exactly on a mean and exactly opposite it: the extremes of cos Δ.
    chi = torch.stack([mu[:, 0].detach(), mu[:, 1].detach() + math.pi], 0)  # [2, N, 4]
    sym = torch.zeros(n, 4, dtype=torch.bool)
    sym[:, 1] = True
    lp = log_prob(chi, Mixture(logits, mu, kappa), torch.ones(n, 4, dtype=torch.bool), sym)
    assert torch.isfinite(lp).all()
    lp.sum().backward()
    for t in (logits, mu, kappa):
        assert torch.isfinite(t.grad).all()


@pytest.mark.parametrize("symmetric", [False, True])
def test_sample_frequencies_match_the_density(symmetric):
    mix = Mixture(
        torch.tensor([[0.0, 1.0, -0.5]], dtype=torch.float64),
        torch.tensor([[[-2.0] * 4, [0.5] * 4, [2.5] * 4]], dtype=torch.float64),
        torch.tensor([[[4.0] * 4, [20.0] * 4, [0.3] * 4]], dtype=torch.float64),
    )
    sym = torch.full((1, 4), symmetric)
    g = torch.Generator().manual_seed(1)
    chi, comp = sample(mix, 8000, sym, generator=g)  # [S, 1, 4], [S, 1]
    # Components drawn in proportion to π.
    counts = np.bincount(comp[:, 0].numpy(), minlength=3)
    expected = torch.softmax(mix.logits[0], -1).numpy() * len(comp)
    assert stats.chisquare(counts, expected).pvalue > 1e-3
    # χ1 histogram against the density integrated over each of 36 bins.
    density = marginal_density(mix, 0, symmetric)[:, 0]  # [G]
    edges = np.linspace(-math.pi, math.pi, 37)
    per_bin = density.reshape(36, -1).sum(1).numpy()
    expected = per_bin / per_bin.sum() * len(chi)
    observed, _ = np.histogram(chi[:, 0, 0].double().numpy(), bins=edges)
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_sample_draws_at_kappa_min_and_is_near_uniform():
    n = 50
    mix = Mixture(torch.zeros(n, 2), torch.zeros(n, 2, 4), torch.full((n, 2, 4), 0.01))
    chi, _ = sample(mix, 400, generator=torch.Generator().manual_seed(0))  # [S, N, 4]
    assert chi.shape == (400, n, 4) and torch.isfinite(chi).all()
    assert (chi.abs() <= math.pi + 1e-6).all()
    ks = stats.kstest(chi.flatten().double().numpy(), stats.uniform(-math.pi, 2 * math.pi).cdf)
    assert ks.pvalue > 1e-3


def test_mode_is_the_mean_of_the_heaviest_component_for_any_batch_shape():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 3, 6, generator=g)  # [2, 3, K]
    logits[1, 2, 4] = logits[1, 2, 1] = 9.0  # a tie goes to the first
    mu = torch.rand(2, 3, 6, 4, generator=g) * 6 - 3  # [2, 3, K, D]
    mix = Mixture(logits, mu, torch.ones_like(mu))
    got = mode(mix)  # [2, 3, D]
    for b in range(2):
        for r in range(3):
            k = int(np.argmax(logits[b, r].numpy()))  # numpy: first maximum
            assert torch.equal(got[b, r], mu[b, r, k]) and int(heaviest(mix)[b, r]) == k
    assert int(heaviest(mix)[1, 2]) == 1


def test_sampling_cannot_spin_at_any_temperature_or_concentration():
    """Issue 21.4: at temperature 1e-20 the rejection sampler never accepted a draw (κ/T ~ 1e21:
    its r rounds to 1). Run in a child process with a time limit, so the old code fails instead
    of hanging the suite: temperature 1e-20 and 1e-300, κ up to 1e300 and infinite, all end,
    finite, at (or within a hair of) the mean of the heaviest component."""
    import subprocess
    import sys

    code = (
        "import math, torch\n"
        "from qfitlatent.mixture import Mixture, sample\n"
        "mix = Mixture(torch.tensor([[0.0, 2.0]]), torch.tensor([[[0.5, -1.0], [1.0, 2.0]]]),"
        " torch.tensor([[[3.0, 1e300], [5.0, math.inf]]]))\n"
        "for t in (1e-20, 1e-300, 1e-320, 1.0):\n"
        "    chi, comp = sample(mix, 50, generator=torch.Generator().manual_seed(0),"
        " temperature=t)\n"
        "    assert torch.isfinite(chi).all(), t\n"
        "    if t < 1: assert (comp == 1).all() and (chi - torch.tensor([1.0, 2.0])).abs().max()"
        " < 1e-6, (t, chi)\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
