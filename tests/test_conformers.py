"""The conformer selector and the flexibility score, on hand-made mixtures with known answers."""

import math

import torch

from qfitlatent.ensemble.conformers import (
    chi_distance,
    distinct_mass,
    flexibility_score,
    iid_selection,
    nearest_mass,
    select_conformers,
)
from qfitlatent.ensemble.sample import sample_chis
from qfitlatent.eval.metrics import altloc_covered
from qfitlatent.geometry import circ_diff
from qfitlatent.mixture import Mixture


def deg(*v):
    return torch.tensor([math.radians(x) for x in v])


def mixture(weights, mus_deg, kappa=50.0):
    """One residue, K components, D = 4 (only χ1, χ2 used)."""
    k = len(weights)
    mu = torch.zeros(1, k, 4)
    for j, m in enumerate(mus_deg):
        mu[0, j, : len(m)] = deg(*m)
    return Mixture(torch.log(torch.tensor([weights])), mu, torch.full((1, k, 4), float(kappa)))


DEFINED_2 = torch.tensor([[True, True, False, False]])
NO_SYM = torch.zeros(1, 4, dtype=torch.bool)


def test_chi_distance_is_circ_diff_max_over_defined_chi():
    g = torch.Generator().manual_seed(0)
    a = (torch.rand(500, 4, generator=g) * 2 - 1) * math.pi
    b = (torch.rand(500, 4, generator=g) * 2 - 1) * math.pi
    sym = torch.tensor([False, True, False, True])
    defined = torch.tensor([True, True, True, False])
    ref = (circ_diff(a, b, sym) * defined).amax(-1)
    assert torch.allclose(chi_distance(a, b, defined, sym), ref, atol=1e-5)


def test_two_rotamers_are_picked_once_each_heaviest_first_with_their_mass():
    # g+ / t on χ1 (weights 0.7 / 0.3), sharp: iid draws would repeat g+ most of the time.
    mix = mixture([0.7, 0.3], [(60, 180), (180, 180)], kappa=200.0)
    sel = select_conformers(mix, DEFINED_2, NO_SYM, 4, seed=0, n_candidates=2000)
    chi, mass = sel.conformers(0)
    assert len(chi) == 2  # nothing else has density: no third peak 20° away is proposed
    assert circ_diff(chi[0, 0], deg(60)[0]) < math.radians(3)
    assert circ_diff(chi[1, 0], deg(180)[0]) < math.radians(3)
    assert abs(float(mass[0]) - 0.7) < 0.03 and abs(float(mass[1]) - 0.3) < 0.03
    assert abs(float(sel.mass[0].sum()) - 1.0) < 1e-6
    assert not sel.valid[0, 2:].any() and (sel.mass[0, 2:] == 0).all()


def test_selected_conformers_are_distinct_on_some_chi():
    # A broad density: many peaks are proposed, every pair at least 20° apart on some χ.
    mix = mixture([0.5, 0.5], [(60, 60), (-60, 180)], kappa=2.0)
    sel = select_conformers(mix, DEFINED_2, NO_SYM, 10, seed=1)
    chi, mass = sel.conformers(0)
    assert len(chi) == 10
    d = chi_distance(chi[:, None], chi[None], DEFINED_2[0], NO_SYM[0])
    off = ~torch.eye(len(chi), dtype=torch.bool)
    assert (d[off] >= math.radians(20) - 1e-6).all()
    assert (mass[:-1] >= mass[1:]).all()  # heaviest first


def test_pi_symmetric_chi_counts_chi_and_chi_plus_180_as_one():
    mix = mixture([1.0], [(60, 30)], kappa=200.0)
    sym = torch.tensor([[False, True, False, False]])
    sel = select_conformers(mix, DEFINED_2, sym, 4, seed=0)
    assert int(sel.valid[0].sum()) == 1  # draws at χ2 = 30° and 210° are the same conformer


def test_selector_covers_a_second_rotamer_that_iid_draws_often_miss():
    # 90% g+, 10% t: with S = 3 iid draws the t altloc is missed ~73% of the time.
    mix = mixture([0.9, 0.1], [(60, 180), (180, 180)], kappa=100.0)
    obs = deg(180, 180, 0, 0)[None, None]  # [R=1, A=1, D]
    mask = DEFINED_2[:, None]
    sel = select_conformers(mix, DEFINED_2, NO_SYM, 3, seed=0)
    assert altloc_covered(sel.chi.transpose(0, 1), obs, mask, NO_SYM).all()
    missed = 0
    for seed in range(50):
        draws = sample_chis(mix, NO_SYM, n_samples=3, seed=seed)
        missed += int(~altloc_covered(draws, obs, mask, NO_SYM).all())
    assert missed > 20


def test_nearest_mass_counts_voronoi_cells():
    draws = deg(0, 10, 50, 55, 60, 170)[:, None].expand(6, 4).clone()
    centres = deg(0, 60)[:, None].expand(2, 4).clone()
    defined = torch.tensor([True, False, False, False])
    m = nearest_mass(draws, centres, defined, torch.zeros(4, dtype=torch.bool))
    assert m.tolist() == [2 / 6, 4 / 6]


def test_flexibility_score_prefers_p_flexible_and_falls_back_to_distinct_mass():
    # Components: 0.6 at g+, 0.25 within 10° of it (same conformer), 0.15 at t.
    mix = mixture([0.6, 0.25, 0.15], [(60, 180), (70, 175), (180, 180)])
    assert abs(float(distinct_mass(mix, DEFINED_2, NO_SYM)[0]) - 0.15) < 1e-6
    assert abs(float(flexibility_score(mix, DEFINED_2, NO_SYM, None)[0]) - 0.15) < 1e-6
    p = torch.tensor([0.8])
    assert torch.equal(flexibility_score(mix, DEFINED_2, NO_SYM, p), p)
    none = torch.zeros(1, 4, dtype=torch.bool)  # a residue without χ scores 0 either way
    assert float(flexibility_score(mix, none, NO_SYM, p)[0]) == 0.0
    assert float(flexibility_score(mix, none, NO_SYM, None)[0]) == 0.0


def test_iid_selection_clusters_the_draws():
    mix = mixture([0.5, 0.5], [(60, 180), (180, 180)], kappa=500.0)
    draws = sample_chis(mix, NO_SYM, n_samples=20, seed=0)
    sel = iid_selection(draws, DEFINED_2, NO_SYM)
    chi, mass = sel.conformers(0)
    assert len(chi) == 2 and abs(float(mass.sum()) - 1.0) < 1e-6


def test_selector_density_is_mixture_log_prob():
    from qfitlatent.ensemble.conformers import _log_density
    from qfitlatent.mixture import log_prob

    g = torch.Generator().manual_seed(3)
    n, k, c = 6, 5, 40
    mix = Mixture(
        torch.randn(n, k, generator=g),
        (torch.rand(n, k, 4, generator=g) * 2 - 1) * math.pi,
        torch.rand(n, k, 4, generator=g) * 30 + 0.01,
    )
    defined = torch.tensor([[True] * (1 + i % 4) + [False] * (3 - i % 4) for i in range(n)])
    sym = torch.rand(n, 4, generator=g) > 0.6
    chi = (torch.rand(n, c, 4, generator=g) * 2 - 1) * math.pi
    per = Mixture(*(t[:, None].expand(n, c, *t.shape[1:]) for t in mix))
    ref = log_prob(chi.double(), per.to(torch.float64), defined[:, None].expand(n, c, 4),
                   sym[:, None].expand(n, c, 4))  # fmt: skip
    assert torch.allclose(_log_density(chi, mix, defined, sym).double(), ref, atol=1e-3)
