"""The training loss (SPEC §5) against an independent float64 reference written with scipy."""

import math

import numpy as np
import torch
from scipy import special, stats

from qfitlatent import residues
from qfitlatent.environment import N_ENV
from qfitlatent.features import Features
from qfitlatent.loss import flex_labels, flex_loss, flex_rank_loss, mixture_nll, training_loss
from qfitlatent.mixture import Mixture


def random_features(n=16, a=3, seed=0) -> Features:
    """Random χ observations with ragged altlocs and χ masks; frames are irrelevant to the loss."""
    g = torch.Generator().manual_seed(seed)
    defined, _ = residues.chi_table_tensors()
    # Cycle through tokens so every π-symmetric residue type appears.
    aatype = torch.arange(n) % residues.N_TOKENS
    n_obs = torch.randint(1, a + 1, (n,), generator=g)
    present = torch.arange(a)[None] < n_obs[:, None]  # [N, A]
    chi_mask = defined[aatype][:, None, :] & present[..., None]  # [N, A, D]
    chi_mask &= torch.rand(n, a, 4, generator=g) > 0.15  # some atoms missing in some altlocs
    chi = torch.where(chi_mask, (torch.rand(n, a, 4, generator=g) * 2 - 1) * math.pi, 0.0)
    occ = torch.rand(n, a, generator=g) * present
    occ = occ / occ.sum(-1, keepdim=True)
    return Features(
        name="random", aatype=aatype, rot=torch.eye(3).expand(n, 3, 3).clone(),
        trans=torch.randn(n, 3, generator=g) * 10, chi=chi, chi_mask=chi_mask, occ=occ, n_obs=n_obs,
        chain_index=torch.zeros(n, dtype=torch.long), resnum=torch.arange(n),
        chain_break=torch.zeros(n, dtype=torch.bool), bb_angles=torch.zeros(n, 3),
        bb_mask=torch.ones(n, 3, dtype=torch.bool), burial=torch.zeros(n, 3),
        environment=torch.zeros(n, N_ENV), resolution=torch.zeros(n),
        chain_id=["A"] * n, icode=[""] * n,
        resname=[residues.AA3[t] if t < 20 else "UNK" for t in aatype.tolist()],
    )  # fmt: skip


def random_mixture(n, k=5, seed=1) -> Mixture:
    """κ log-uniform over [0.01, 1e4], the range the loss must handle."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = math.log(0.01), math.log(1e4)
    return Mixture(
        torch.randn(n, k, generator=g, dtype=torch.float64),
        (torch.rand(n, k, 4, generator=g, dtype=torch.float64) * 2 - 1) * math.pi,
        torch.exp(lo + (hi - lo) * torch.rand(n, k, 4, generator=g, dtype=torch.float64)),
    )


def reference_loss(mix: Mixture, f: Features, min_altlocs: int) -> tuple[float, np.ndarray]:
    """L_i = −Σ_a o_a log Σ_k π_k Π_d p(χ_ad | μ_kd, κ_kd), mean over R; loops and scipy only."""
    logits, mu, kappa = (t.detach().double().numpy() for t in mix)
    _, symmetric = residues.chi_table_tensors()
    log_pi = logits - special.logsumexp(logits, axis=-1, keepdims=True)
    per_residue = np.zeros(f.n_res)
    for i in range(f.n_res):
        sym = symmetric[f.aatype[i]].numpy()
        for a in range(f.chi.shape[1]):
            terms = log_pi[i].copy()  # [K]
            for k in range(len(terms)):
                for d in range(4):
                    if not f.chi_mask[i, a, d]:
                        continue
                    delta = float(f.chi[i, a, d]) - mu[i, k, d]
                    # π-periodic density exp(κ cos 2Δ)/(2π I0(κ)) is the von Mises density of 2Δ.
                    x = 2 * delta if sym[d] else delta
                    x = math.atan2(math.sin(x), math.cos(x))  # scipy's support is (−π, π]
                    terms[k] += stats.vonmises.logpdf(x, kappa[i, k, d])
            per_residue[i] -= float(f.occ[i, a]) * special.logsumexp(terms)
    in_r = [i for i in range(f.n_res) if f.n_obs[i] >= min_altlocs and f.chi_mask[i].any()]
    return float(np.mean(per_residue[in_r])), per_residue


def test_loss_matches_float64_scipy_reference():
    for seed in range(3):
        f = random_features(seed=seed)
        mix = random_mixture(f.n_res, seed=seed + 10)
        for min_altlocs in (1, 2):
            loss, per_residue, valid = mixture_nll(mix, f, min_altlocs)
            ref, ref_per_residue = reference_loss(mix, f, min_altlocs)
            assert valid.sum() > 0
            assert abs(float(loss) - ref) < 1e-6 * max(1.0, abs(ref)), (float(loss), ref)
            assert np.allclose(per_residue.numpy(), ref_per_residue, atol=1e-6, rtol=1e-9)


def test_only_residues_in_r_count():
    f = random_features(seed=4)
    mix = random_mixture(f.n_res, seed=5)
    _, per_residue, valid = mixture_nll(mix, f, 2)
    assert torch.equal(valid, (f.n_obs >= 2) & f.chi_mask.any(dim=(1, 2)))
    # Changing a residue outside R leaves the loss unchanged; inside R it does not.
    outside = int((~valid).nonzero()[0])
    inside = int(valid.nonzero()[0])
    base = float(mixture_nll(mix, f, 2)[0])
    for i, should_change in ((outside, False), (inside, True)):
        mu = mix.mu.clone()
        mu[i] += 0.7
        changed = float(mixture_nll(Mixture(mix.logits, mu, mix.kappa), f, 2)[0]) != base
        assert changed == should_change


def test_loss_and_gradients_finite_for_kappa_from_floor_to_1e4():
    f = random_features(n=21, seed=6)
    for kappa_value in (0.01, 0.1, 1.0, 10.0, 1e2, 1e3, 1e4):
        logits = torch.randn(f.n_res, 5, requires_grad=True)
        mu = torch.zeros(f.n_res, 5, 4, requires_grad=True)
        kappa = torch.full((f.n_res, 5, 4), kappa_value, requires_grad=True)
        loss, _, _ = mixture_nll(Mixture(logits, mu, kappa), f, 1)  # float32, as in training
        assert torch.isfinite(loss)
        loss.backward()
        assert all(torch.isfinite(t.grad).all() for t in (logits, mu, kappa))


def test_no_residue_in_r_gives_zero_loss_with_a_graph():
    f = random_features(seed=7)
    f.n_obs = torch.ones_like(f.n_obs)
    mu = torch.zeros(f.n_res, 5, 4, requires_grad=True)
    loss, _, valid = mixture_nll(
        Mixture(torch.zeros(f.n_res, 5), mu, torch.ones(f.n_res, 5, 4)), f, 2
    )
    assert not valid.any() and float(loss.detach()) == 0.0
    loss.backward()  # distributed ranks must still be able to run backward
    assert torch.equal(mu.grad, torch.zeros_like(mu))


def test_blended_loss_gives_r_its_share():
    f = random_features(n=40, seed=3)
    mix = random_mixture(f.n_res, seed=3)
    _, per_residue, _ = mixture_nll(mix, f, 1)
    with_chi = f.in_loss(1)
    in_r = f.in_r
    assert in_r.any() and (with_chi & ~in_r).any()
    mean_all = per_residue[with_chi].mean()
    mean_r = per_residue[in_r].mean()
    assert torch.allclose(training_loss(mix, f, 1, 0.0), mean_all)
    assert torch.allclose(training_loss(mix, f, 1, 0.5), 0.5 * mean_all + 0.5 * mean_r)
    assert torch.allclose(training_loss(mix, f, 1, 1.0), mean_r)
    # With min_altlocs 2 the loss is already over R: the share changes nothing.
    assert torch.allclose(training_loss(mix, f, 2, 0.5), mean_r)


def test_flex_labels_count_only_residues_with_chi1_in_structures_with_altlocs():
    # GLY (no χ), SER flexible, SER rigid, VAL rigid but its χ1 atoms absent in the file.
    aatype = torch.tensor([residues.AA3.index(a) for a in ("GLY", "SER", "SER", "VAL")])
    chi_mask = torch.zeros(4, 2, 4, dtype=torch.bool)
    chi_mask[1, :, 0] = True
    chi_mask[2, 0, 0] = True
    n_obs = torch.tensor([1, 2, 1, 1])
    f = random_features(4, 2, seed=0)
    f.aatype, f.chi_mask, f.n_obs = aatype, chi_mask, n_obs
    label, mask = flex_labels(f)
    assert mask.tolist() == [False, True, True, False]
    assert label[mask].tolist() == [1.0, 0.0]
    # The same residues in a structure where nobody built an altloc teach nothing.
    f.n_obs = torch.ones(4, dtype=torch.long)
    assert not flex_labels(f)[1].any()
    logit = torch.zeros(4, requires_grad=True)
    loss = flex_loss(logit, f)
    loss.backward()
    assert float(loss.detach()) == 0.0 and logit.grad is not None


def test_flex_loss_is_the_mean_bce_over_labelled_residues():
    f = random_features(50, 3, seed=4)
    logit = torch.randn(50, generator=torch.Generator().manual_seed(0))
    label, mask = flex_labels(f)
    assert mask.any() and (~mask).any()
    p = 1.0 / (1.0 + np.exp(-logit.double().numpy()))
    y = label.double().numpy()
    m = mask.numpy()
    expected = -np.mean(y[m] * np.log(p[m]) + (1 - y[m]) * np.log(1 - p[m]))
    assert math.isclose(float(flex_loss(logit, f)), expected, rel_tol=1e-5)


def test_flex_rank_loss_against_a_loop_over_pairs_and_auroc():
    f = random_features(60, 3, seed=7)
    logit = torch.randn(60, generator=torch.Generator().manual_seed(1))
    label, mask = flex_labels(f)
    pos = [float(logit[i]) for i in range(60) if mask[i] and label[i] == 1]
    neg = [float(logit[i]) for i in range(60) if mask[i] and label[i] == 0]
    assert pos and neg
    expected = np.mean([math.log1p(math.exp(n - p)) for p in pos for n in neg])
    assert math.isclose(float(flex_rank_loss(logit, f)), expected, rel_tol=1e-5)
    # A perfect ranking, scaled up, drives it to 0; the reverse grows without bound.
    perfect = torch.where(label > 0, 50.0, -50.0)
    assert float(flex_rank_loss(perfect, f)) < 1e-6 < 50 < float(flex_rank_loss(-perfect, f))
    # No flexible residue at all: zero, with a gradient path.
    f.n_obs = torch.ones(60, dtype=torch.long)
    x = torch.zeros(60, requires_grad=True)
    flex_rank_loss(x, f).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) == 0.0
