"""Sampling from the mixture, conformer clustering and the flexibility statistics."""

import math

import numpy as np
import pytest
import torch
from scipy import special, stats

from qfitlatent.ensemble.sample import cluster_conformers, sample_chis
from qfitlatent.flexibility import chi1_spread, n_modes
from qfitlatent.mixture import Mixture

# One residue, two components: χ1 bimodal, χ2 π-symmetric (a PHE-like residue).
WEIGHTS = torch.tensor([0.3, 0.7])
MU = torch.tensor([[-1.0, 0.4, 0.0, 0.0], [2.0, -1.2, 0.0, 0.0]])
KAPPA = torch.tensor([[5.0, 8.0, 1.0, 1.0], [20.0, 3.0, 1.0, 1.0]])
SYM = torch.tensor([[False, True, False, False]])


def _mix(n=1) -> Mixture:
    return Mixture(
        WEIGHTS.log().expand(n, 2).clone(),
        MU.expand(n, 2, 4).clone(),
        KAPPA.expand(n, 2, 4).clone(),
    )


def _marginal_density(x, d, periodic):
    """Independent of qfitlatent.mixture: scipy's I0 and the textbook von Mises density."""
    w, mu, kappa = WEIGHTS.numpy(), MU[:, d].numpy(), KAPPA[:, d].numpy()
    delta = x[:, None] - mu[None]
    if periodic:
        delta = 2 * delta
    return (w * np.exp(kappa * np.cos(delta)) / (2 * np.pi * special.i0(kappa))).sum(-1)


@pytest.mark.parametrize("d, periodic", [(0, False), (1, True)])
def test_sample_frequencies_match_the_mixture(d, periodic):
    chi = sample_chis(_mix(), SYM, n_samples=15000, seed=3)[:, 0, d].numpy()  # [S]
    edges = np.linspace(-np.pi, np.pi, 37)
    observed, _ = np.histogram(chi, edges)
    grid = np.linspace(-np.pi, np.pi, 36 * 200 + 1)
    dens = _marginal_density(grid, d, periodic)
    cdf = np.concatenate([[0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(grid))])
    expected = np.diff(np.interp(edges, grid, cdf)) * len(chi)
    assert expected.sum() == pytest.approx(len(chi), rel=1e-4)  # the density integrates to 1
    keep = expected > 5  # χ² needs populated bins; pool the rest
    obs, exp = observed[keep], expected[keep]
    if not keep.all():
        obs, exp = np.append(obs, observed[~keep].sum()), np.append(exp, expected[~keep].sum())
    exp = exp * obs.sum() / exp.sum()
    assert stats.chisquare(obs, exp).pvalue > 1e-3


def test_same_seed_same_draws_and_temperature_flattens():
    mix = _mix(3)
    sym = SYM.expand(3, 4)
    a = sample_chis(mix, sym, n_samples=50, seed=7)
    assert a.shape == (50, 3, 4)
    assert torch.equal(a, sample_chis(mix, sym, n_samples=50, seed=7))
    assert not torch.equal(a, sample_chis(mix, sym, n_samples=50, seed=8))

    def resultant(t):  # mean resultant length of χ1 within the heavier mode's draws
        chi = sample_chis(mix, sym, n_samples=1500, seed=1, temperature=t)[:, 0, 0]
        return torch.sqrt(torch.cos(chi).mean() ** 2 + torch.sin(chi).mean() ** 2).item()

    assert resultant(3.0) < resultant(1.0) < resultant(0.3)
    with pytest.raises(ValueError):
        sample_chis(mix, sym, n_samples=5, temperature=0.0)


def test_cluster_conformers_groups_near_draws_and_counts_them():
    deg = torch.tensor(
        [
            [60, 0],
            [62, 5],
            [58, -5],
            [65, 3],
            [55, 1],
            [61, 2],
            [180, 90],
            [-178, 95],
            [175, 85],
            [-100, 0],
        ],
        dtype=torch.float64,
    )
    chi = torch.deg2rad(deg)
    chi = torch.cat([chi, torch.zeros(10, 2, dtype=torch.float64)], 1)  # [S, D]
    defined = torch.tensor([True, True, False, False])
    no_sym = torch.zeros(4, dtype=torch.bool)
    centres, occ = cluster_conformers(chi, defined, no_sym)
    assert occ.tolist() == pytest.approx([0.6, 0.3, 0.1])
    assert torch.rad2deg(centres[0, 0]).item() == pytest.approx(60, abs=6)
    assert abs(abs(torch.rad2deg(centres[1, 0]).item()) - 180) < 6
    # Capped at two: the lone draw at −100° joins the nearest kept conformer (180°).
    _, occ2 = cluster_conformers(chi, defined, no_sym, max_conformers=2)
    assert occ2.tolist() == pytest.approx([0.6, 0.4])
    # χ2 = 0° and 180° are the same structure where χ2 is π-symmetric.
    flip = chi.clone()
    flip[:3, 1] += math.pi
    assert len(cluster_conformers(flip, defined, torch.tensor([False, True, False, False]))[1]) == 3
    assert len(cluster_conformers(flip, defined, no_sym)[1]) == 4


def test_chi1_spread_matches_samples_and_single_von_mises():
    mix = _mix()
    chi = sample_chis(mix, SYM, n_samples=15000, seed=5)[:, 0, 0].double()
    r = torch.sqrt(torch.cos(chi).mean() ** 2 + torch.sin(chi).mean() ** 2)
    from_samples = math.degrees(math.sqrt(-2 * math.log(r)))
    assert chi1_spread(mix).item() == pytest.approx(from_samples, rel=0.03)
    # One sharp component: circular std ≈ 1/sqrt(κ) radians.
    sharp = Mixture(torch.zeros(1, 1), torch.zeros(1, 1, 4), torch.full((1, 1, 4), 400.0))
    assert chi1_spread(sharp).item() == pytest.approx(math.degrees(1 / 20), rel=0.01)
    assert n_modes(mix).tolist() == [2]
    assert n_modes(mix, threshold=0.5).tolist() == [1]


def test_rare_conformers_join_a_kept_one():
    # 300 draws: 299 at χ1 = 60°, one at −60°, which alone would be written at occupancy 0.00.
    chi = torch.zeros(300, 4, dtype=torch.float64)
    chi[:, 0] = math.radians(60)
    chi[0, 0] = math.radians(-60)
    defined = torch.tensor([True, False, False, False])
    centres, occ = cluster_conformers(chi, defined, torch.zeros(4, dtype=torch.bool))
    assert occ.tolist() == [1.0] and torch.rad2deg(centres[0, 0]).item() == pytest.approx(60)
