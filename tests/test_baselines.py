import math

import numpy as np
import pytest
import torch
from scipy.special import i0e, i1e

from qfitlatent import residues
from qfitlatent.environment import N_ENV
from qfitlatent.eval.baselines import (
    FlexRows,
    LogisticFlexibility,
    ResidueTypeRate,
    UniformBaseline,
    fit_baselines,
    fit_flex_baselines,
    flex_rows,
)
from qfitlatent.features import Features
from qfitlatent.library import (
    BackboneDependentMixture,
    LibraryOptions,
    PerResidueTypeMixture,
    fit_library,
    fit_von_mises_mixture,
    training_samples,
)
from qfitlatent.mixture import Mixture, kappa_from_resultant_length, log_prob, sample


def make_features(aatype, chi, chi_mask, occ, n_obs, bb_angles=None) -> Features:
    """Synthetic Features with only the fields the baselines and metrics read filled in."""
    n = len(aatype)
    bb = torch.zeros(n, 3) if bb_angles is None else bb_angles
    return Features(
        name="synthetic", aatype=torch.as_tensor(aatype), rot=torch.eye(3).expand(n, 3, 3),
        trans=torch.zeros(n, 3), chi=chi.float(), chi_mask=chi_mask.bool(), occ=occ.float(),
        n_obs=torch.as_tensor(n_obs), chain_index=torch.zeros(n, dtype=torch.long),
        resnum=torch.arange(n), chain_break=torch.zeros(n, dtype=torch.bool), bb_angles=bb,
        bb_mask=torch.full((n, 3), bb_angles is not None), burial=torch.zeros(n, 3),
        environment=torch.zeros(n, N_ENV),
        resolution=torch.zeros(n),
        chain_id=["A"] * n, icode=[""] * n, resname=[residues.AA3[a] for a in aatype],
    )  # fmt: skip


def draw(mix: Mixture, m: int, sym, seed=0) -> torch.Tensor:
    """m samples [m, D] of one mixture (logits [K], mu/kappa [K, D])."""
    many = Mixture(*(t[None].expand(m, *t.shape) for t in mix))
    g = torch.Generator().manual_seed(seed)
    chi, _ = sample(many, 1, sym[None].expand(m, -1), generator=g)
    return chi[0]


def match(fitted_mu, true_mu, sym):
    """Index of the fitted component nearest each true one (circular, π-folded where symmetric)."""
    freq = torch.where(sym, 2.0, 1.0)
    d = (1 - torch.cos(freq * (fitted_mu[None] - true_mu[:, None]))).sum(-1)  # [K_true, K_fit]
    return d.argmin(-1)


def circ_err(a, b, sym):
    d = torch.remainder(a - b + math.pi, 2 * math.pi) - math.pi
    d = d.abs()
    return torch.where(sym, torch.minimum(d, math.pi - d), d)


def test_kappa_from_resultant_length_matches_scipy():
    kappa = np.array([0.05, 0.5, 2.0, 10.0, 50.0, 300.0])
    rbar = torch.tensor(i1e(kappa) / i0e(kappa))
    np.testing.assert_allclose(kappa_from_resultant_length(rbar).numpy(), kappa, rtol=1e-4)


def test_em_recovers_known_mixture_with_symmetric_and_masked_chi():
    sym = torch.tensor([False, True, False, False])
    true = Mixture(
        torch.log(torch.tensor([0.5, 0.3, 0.2])),
        torch.tensor([[1.05, 1.2, 0.0, 0.0], [-1.05, -0.4, 0.0, 0.0], [3.0, 0.5, 0.0, 0.0]]),
        torch.tensor([[20.0, 8.0, 0.01, 0.01], [30.0, 15.0, 0.01, 0.01], [10.0, 5.0, 0.01, 0.01]]),
    )
    m = 4000
    chi = draw(true, m, sym)
    mask = torch.zeros(m, 4, dtype=torch.bool)
    mask[:, 0] = True
    mask[:, 1] = (
        torch.rand(m, generator=torch.Generator().manual_seed(1)) > 0.3
    )  # χ2 missing for 30%
    chi = torch.where(mask, chi, torch.full_like(chi, 2.5))  # garbage where masked: must be ignored
    fit, ll = fit_von_mises_mixture(chi, mask, torch.ones(m), sym, n_components=3, n_iter=100)
    assert math.isfinite(ll)
    idx = match(fit.mu[:, :2], true.mu[:, :2], sym[:2])
    assert sorted(idx.tolist()) == [0, 1, 2]
    weights = torch.softmax(fit.logits, -1)[idx]
    np.testing.assert_allclose(weights.numpy(), [0.5, 0.3, 0.2], atol=0.03)
    err = circ_err(fit.mu[idx, :2], true.mu[:, :2], sym[:2])
    assert (err < math.radians(3.0)).all(), err
    ratio = fit.kappa[idx, :2] / true.kappa[:, :2]
    assert ((ratio > 0.75) & (ratio < 1.33)).all(), ratio
    # χ3, χ4 are never defined: uniform.
    assert (fit.kappa[:, 2:] <= 0.01 + 1e-9).all()


def test_em_uses_occupancy_weights():
    sym = torch.zeros(4, dtype=torch.bool)
    m = 2000
    chi = torch.zeros(m, 4)
    chi[: m // 2, 0] = 1.0 + 0.1 * torch.randn(m // 2, generator=torch.Generator().manual_seed(0))
    chi[m // 2 :, 0] = -2.0 + 0.1 * torch.randn(m // 2, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(m, 4, dtype=torch.bool)
    mask[:, 0] = True
    w = torch.cat(
        [torch.full((m // 2,), 0.8), torch.full((m // 2,), 0.2)]
    )  # equal counts, 4:1 weight
    fit, _ = fit_von_mises_mixture(chi, mask, w, sym, n_components=2)
    idx = match(fit.mu[:, :1], torch.tensor([[1.0], [-2.0]]), sym[:1])
    np.testing.assert_allclose(torch.softmax(fit.logits, -1)[idx].numpy(), [0.8, 0.2], atol=0.01)


def test_em_is_deterministic():
    sym = torch.zeros(4, dtype=torch.bool)
    chi = torch.rand(300, 4, generator=torch.Generator().manual_seed(0)) * 6 - 3
    mask = torch.ones(300, 4, dtype=torch.bool)
    a, _ = fit_von_mises_mixture(chi, mask, torch.ones(300), sym, n_components=4, n_iter=10, seed=3)
    b, _ = fit_von_mises_mixture(chi, mask, torch.ones(300), sym, n_components=4, n_iter=10, seed=3)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


def test_fewer_samples_than_components_gives_dead_components():
    sym = torch.zeros(4, dtype=torch.bool)
    chi = torch.tensor([[1.0, 0, 0, 0], [1.1, 0, 0, 0]])
    mask = torch.tensor([[True, False, False, False]] * 2)
    fit, _ = fit_von_mises_mixture(chi, mask, torch.ones(2), sym, n_components=5)
    assert fit.logits.shape == (5,)
    assert torch.isfinite(fit.kappa).all()
    assert (torch.softmax(fit.logits, -1)[2:] < 1e-6).all()


def _ser_features(n, seed):
    """SER residues whose χ1 rotamer depends on the sign of φ: g+ for φ<0 w.p. 0.9, t for φ>0."""
    g = torch.Generator().manual_seed(seed)
    phi = torch.where(torch.rand(n, generator=g) < 0.5, -1.2, 1.0)
    p_gplus = torch.where(phi < 0, 0.9, 0.1)
    centre = torch.where(torch.rand(n, generator=g) < p_gplus, 1.05, 3.1)
    chi = torch.zeros(n, 1, 4)
    chi[:, 0, 0] = centre + 0.15 * torch.randn(n, generator=g)
    mask = torch.zeros(n, 1, 4, dtype=torch.bool)
    mask[:, 0, 0] = True
    bb = torch.stack([phi, torch.full((n,), 2.3), torch.full((n,), math.pi)], -1)
    return make_features([residues.TOKEN["SER"]] * n, chi, mask, torch.ones(n, 1), [1] * n, bb)


def test_backbone_dependent_weights_follow_phi_and_back_off():
    train = _ser_features(2000, 0)
    samples = training_samples([train])
    per_aa = PerResidueTypeMixture.fit(samples, n_components=2)
    bb = BackboneDependentMixture.fit(samples, per_aa, bin_deg=30.0, prior_strength=5.0)
    ser = residues.TOKEN["SER"]
    gplus = match(per_aa.table.mu[ser, :, :1], torch.tensor([[1.05]]), torch.tensor([False]))[0]
    assert abs(torch.softmax(per_aa.table.logits[ser], -1)[gplus] - 0.5) < 0.05
    test = _ser_features(4, 7)
    test.bb_angles[:, 0] = torch.tensor([-1.2, 1.0, -1.2, 1.0])
    test.bb_mask[2] = False  # no φ/ψ: the per-AA mixture
    test.bb_angles[3, 1] = -2.0  # an empty bin: backs off to the per-AA weights
    w = torch.softmax(bb.predict(test).logits, -1)[:, gplus]
    assert w[0] > 0.85 and w[1] < 0.15
    assert abs(w[2] - 0.5) < 0.05 and abs(w[3] - 0.5) < 0.05


def test_baselines_predict_one_mixture_per_residue():
    train = _ser_features(300, 0)
    fitted = fit_baselines([train], LibraryOptions(n_components=3))
    test = _ser_features(7, 1)
    for name, base in fitted.items():
        mix = base.predict(test)
        assert mix.mu.shape[0] == 7 and mix.mu.shape[-1] == 4, name
        lp = log_prob(test.chi[:, 0], mix, test.chi_mask[:, 0], test.pi_symmetric)
        assert torch.isfinite(lp).all(), name
    # The network's prior starts from this very fit, so evaluation measures what it adds.
    lib = fit_library([train], LibraryOptions(n_components=3))
    assert torch.equal(lib.bin_logits, fitted["bb_dependent"].bin_logits)
    tables = zip(lib.per_aa.table, fitted["per_aa"].table, strict=True)
    assert all(torch.equal(a, b) for a, b in tables)
    uni = UniformBaseline().predict(test)
    lp = log_prob(test.chi[:, 0], uni, test.chi_mask[:, 0], test.pi_symmetric)
    np.testing.assert_allclose(lp.numpy(), -math.log(2 * math.pi), rtol=1e-6)


def test_training_samples_min_altlocs():
    chi = torch.zeros(3, 2, 4)
    mask = torch.zeros(3, 2, 4, dtype=torch.bool)
    mask[:, :, 0] = True
    mask[0, 1] = False  # residue 0 single-conformer: one altloc
    occ = torch.tensor([[1.0, 0.0], [0.6, 0.4], [0.5, 0.5]])
    f = make_features([15, 15, 15], chi, mask, occ, [1, 2, 2])
    assert training_samples([f], 1).weight.tolist() == pytest.approx([1.0, 0.6, 0.4, 0.5, 0.5])
    assert training_samples([f], 2).weight.tolist() == pytest.approx([0.6, 0.4, 0.5, 0.5])


def _flex_structure(aatype, n_obs, burial=None) -> Features:
    """Residues with χ1 observed in one altloc each; n_obs sets the flexibility label."""
    n = len(aatype)
    mask = torch.zeros(n, 1, 4, dtype=torch.bool)
    mask[:, 0, 0] = True
    f = make_features(aatype, torch.zeros(n, 1, 4), mask, torch.ones(n, 1), n_obs)
    if burial is not None:
        f.burial = burial
    return f


def test_flex_rows_take_labels_only_from_structures_with_altlocs():
    ser, leu, ala = (residues.TOKEN[x] for x in ("SER", "LEU", "ALA"))
    with_alt = _flex_structure([ser, ser, ala, leu], [2, 1, 1, 1])
    without = _flex_structure([ser, leu, leu], [1, 1, 1])
    rows = flex_rows([with_alt, without])
    assert rows.aatype.tolist() == [ser, ser, leu]  # ALA has no χ1; `without` gives nothing
    assert rows.label.tolist() == [1.0, 0.0, 0.0]


def test_residue_type_rate_by_hand():
    ser, leu, val = (residues.TOKEN[x] for x in ("SER", "LEU", "VAL"))
    rows = flex_rows([_flex_structure([ser, ser, ser, leu, leu], [2, 1, 1, 2, 2])])
    rate = ResidueTypeRate.fit(rows)
    # SER 1 of 3, LEU 2 of 2; VAL unseen gets the overall 3 of 5.
    got = rate.predict_flex(_flex_structure([ser, leu, val], [1, 1, 1]))
    np.testing.assert_allclose(got.numpy(), [1 / 3, 1.0, 3 / 5], rtol=1e-6)


def _synthetic_flex_rows(m: int, seed: int) -> FlexRows:
    """Labels from a known logistic model: buried residues move less, LYS/ARG more."""
    g = torch.Generator().manual_seed(seed)
    aatype = torch.randint(0, 19, (m,), generator=g)  # VAL (19) and UNK (20) never occur
    burial = torch.randint(0, 40, (m, 3), generator=g).float()
    z = -1.0 - 0.08 * (burial[:, 1] - 20) + 1.5 * ((aatype == 1) | (aatype == 11)).float()
    label = (torch.rand(m, generator=g) < torch.sigmoid(z)).float()
    return FlexRows(aatype, burial, label)


def test_logistic_baseline_matches_an_independent_scipy_fit():
    from scipy.optimize import minimize

    rows = _synthetic_flex_rows(1500, 0)
    l2 = 0.01
    fitted = LogisticFlexibility.fit(rows, l2=l2)
    # The same penalised log-likelihood, written in numpy and minimised by L-BFGS.
    logb = np.log1p(rows.burial.numpy().astype(np.float64))
    b = (logb - logb.mean(0)) / logb.std(0, ddof=1)
    x = np.hstack([np.ones((len(b), 1)), np.eye(21)[rows.aatype.numpy()], b])
    y = rows.label.numpy().astype(np.float64)
    pen = np.r_[0.0, np.full(x.shape[1] - 1, l2)]

    def objective(w):
        z = x @ w
        p = 1 / (1 + np.exp(-z))
        f = np.mean(np.logaddexp(0, z) - y * z) + 0.5 * np.sum(pen * w**2)
        return f, x.T @ (p - y) / len(y) + pen * w

    ref = minimize(objective, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 10000})  # fmt: skip
    np.testing.assert_allclose(fitted.weight.numpy(), ref.x, atol=1e-5)
    # VAL and UNK (one-hot columns 1 + 19, 1 + 20) never occur: the penalty holds them at 0.
    assert fitted.weight[20:22].abs().max() < 1e-12
    # Probabilities on new structures come from the same weights.
    f = _flex_structure(rows.aatype[:5].tolist(), [1] * 5, rows.burial[:5])
    np.testing.assert_allclose(
        fitted.predict_flex(f).numpy(), 1 / (1 + np.exp(-(x[:5] @ ref.x))), atol=1e-6
    )


def test_logistic_baseline_ranks_better_than_residue_type_when_burial_matters():
    from qfitlatent.eval.metrics import auroc

    def structure(rows):  # label 1 <=> n_obs 2
        return _flex_structure(rows.aatype.tolist(), (rows.label + 1).long().tolist(), rows.burial)

    test = _synthetic_flex_rows(1000, 2)
    f = structure(test)
    fitted = fit_flex_baselines([structure(_synthetic_flex_rows(3000, 1))])
    logistic = auroc(fitted["logistic"].predict_flex(f), test.label)
    by_type = auroc(fitted["residue_type"].predict_flex(f), test.label)
    assert logistic > by_type + 0.1 and by_type > 0.55
