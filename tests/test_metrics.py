import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import vonmises
from test_baselines import make_features

from qfitlatent.eval.metrics import (
    altloc_covered,
    auroc,
    calibration_curve,
    chi1_error,
    chi1_mode_hit,
    hdr_rank,
    per_structure_auroc,
    score_flexibility,
    score_structure,
    summarize,
    summarize_flex_probability,
    summarize_flexibility,
    unique_entropy,
)
from qfitlatent.mixture import Mixture, entropy, sample

NO_SYM = torch.zeros(1, 4, dtype=torch.bool)


def one_residue(logits, mu, kappa) -> Mixture:
    return Mixture(torch.tensor([logits]), torch.tensor([mu]), torch.tensor([kappa]))


def test_uniform_nll_is_d_log_2pi():
    mix = Mixture(torch.zeros(3, 1), torch.zeros(3, 1, 4), torch.zeros(3, 1, 4))
    chi = torch.rand(3, 2, 4) * 6 - 3
    mask = torch.zeros(3, 2, 4, dtype=torch.bool)
    mask[0, :, :1] = True  # D = 1
    mask[1, :, :2] = True  # D = 2
    mask[2, :, :4] = True  # D = 4
    occ = torch.tensor([[0.5, 0.5], [0.7, 0.3], [0.2, 0.8]])
    f = make_features([15, 10, 11], chi, mask, occ, [2, 2, 2])  # SER, LEU, LYS
    s = score_structure(mix, f)
    np.testing.assert_allclose(
        s["nll"].numpy(), np.array([1, 2, 4]) * math.log(2 * math.pi), rtol=1e-6
    )


def test_nll_matches_scipy_reference():
    mix = one_residue(
        [0.3, -0.2], [[1.0, -2.0, 0, 0], [-1.0, 0.5, 0, 0]], [[4.0, 2.0, 1, 1], [9.0, 0.5, 1, 1]]
    )
    chi = torch.tensor([[[0.8, -1.5, 0, 0], [-0.7, 2.9, 0, 0]]])
    mask = torch.tensor([[[True, True, False, False], [True, False, False, False]]])
    occ = torch.tensor([[0.65, 0.35]])
    f = make_features([3], chi, mask, occ, [2])  # ASP: χ2 π-periodic
    sym = f.pi_symmetric
    w = torch.softmax(mix.logits[0], -1).numpy()

    def dens(x, m, k, periodic):
        # SPEC §5's π-periodic density exp(κ cos 2Δ) / (2π I0(κ)) is scipy's formula at 2Δ.
        return vonmises.pdf(2 * (x - m), k) if periodic else vonmises.pdf(x - m, k)

    ref = 0.0
    for a in range(2):
        p = 0.0
        for k in range(2):
            term = w[k]
            for d in range(4):
                if mask[0, a, d]:
                    term *= dens(
                        float(chi[0, a, d]),
                        float(mix.mu[0, k, d]),
                        float(mix.kappa[0, k, d]),
                        bool(sym[0, d]),
                    )
            p += term
        ref -= float(occ[0, a]) * math.log(p)
    got = score_structure(mix, f)["nll"]
    np.testing.assert_allclose(got.numpy(), [ref], rtol=1e-5)


def test_tight_component_on_altloc_covers_it_and_far_one_does_not():
    chi = torch.tensor([[[1.0, -2.0, 0.5, 0.0]]])
    mask = torch.tensor([[[True, True, True, False]]])
    on = one_residue([0.0], [[1.0, -2.0, 0.5, 3.0]], [[500.0] * 4])
    off = one_residue([0.0], [[1.0, -2.0 + math.radians(40), 0.5, 3.0]], [[500.0] * 4])
    g = torch.Generator().manual_seed(0)
    s_on, _ = sample(on, 10, NO_SYM, generator=g)
    s_off, _ = sample(off, 10, NO_SYM, generator=g)
    assert altloc_covered(s_on, chi, mask, NO_SYM).item()
    assert not altloc_covered(s_off, chi, mask, NO_SYM).item()


def test_coverage_folds_symmetric_chi_and_ignores_undefined_chi():
    samples = torch.tensor([[[1.0, 0.3 + math.pi, 2.0, 0.0]]])  # [S=1, N=1, D]
    chi = torch.tensor([[[1.0, 0.3, -1.0, 0.0]]])
    mask = torch.tensor([[[True, True, False, False]]])  # χ3 undefined: its 3 rad gap is ignored
    sym = torch.tensor([[False, True, False, False]])
    assert altloc_covered(samples, chi, mask, sym).item()
    assert not altloc_covered(samples, chi, mask, NO_SYM).item()


def test_chi1_mode_uses_heaviest_component_and_top_altloc():
    mix = one_residue([2.0, 0.0], [[-1.05, 0, 0, 0], [3.1, 0, 0, 0]], [[10.0] * 4] * 2)
    chi = torch.tensor([[[3.1, 0, 0, 0], [-1.0, 0, 0, 0]]])
    mask = torch.zeros(1, 2, 4, dtype=torch.bool)
    mask[..., 0] = True
    hit, defined = chi1_mode_hit(mix, chi, mask, torch.tensor([[0.3, 0.7]]))
    assert hit.item() and defined.item()  # top altloc (0.7) at −1.0 vs heaviest mean −1.05
    hit, _ = chi1_mode_hit(mix, chi, mask, torch.tensor([[0.7, 0.3]]))
    assert not hit.item()
    # Wrap-around: 179° and −179° are 2° apart.
    mix = one_residue([0.0], [[math.radians(179), 0, 0, 0]], [[10.0] * 4])
    hit, _ = chi1_mode_hit(
        mix, torch.tensor([[[math.radians(-179), 0, 0, 0]]]), mask[:, :1], torch.ones(1, 1)
    )
    assert hit.item()


def test_auroc_with_ties_by_hand():
    # Positives {0.4, 0.8} vs negatives {0.1, 0.4}: pairs 1 + ½ + 1 + 1 = 3.5 of 4.
    assert auroc(torch.tensor([0.1, 0.4, 0.4, 0.8]), torch.tensor([0, 1, 0, 1])) == 0.875
    assert auroc(torch.tensor([1.0, 1.0, 1.0]), torch.tensor([1, 0, 0])) == 0.5
    assert auroc(torch.tensor([3.0, 1.0]), torch.tensor([0, 1])) == 0.0
    assert math.isnan(auroc(torch.tensor([1.0, 2.0]), torch.tensor([1, 1])))


def test_auroc_matches_pairwise_count():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (60,), generator=g).double()  # many ties
    labels = torch.rand(60, generator=g) < 0.3
    pos, neg = scores[labels].tolist(), scores[~labels].tolist()
    ref = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    assert auroc(scores, labels) == np.float64(ref / (len(pos) * len(neg))).item()


def test_calibrated_when_altlocs_come_from_the_prediction():
    n = 400
    g = torch.Generator().manual_seed(0)
    mix = Mixture(
        torch.randn(n, 3, generator=g), torch.rand(n, 3, 4, generator=g) * 6 - 3,
        torch.rand(n, 3, 4, generator=g) * 20 + 0.5,
    )  # fmt: skip
    sym = torch.zeros(n, 4, dtype=torch.bool)
    sym[:, 1] = True
    obs, _ = sample(mix, 2, sym, generator=g)  # two altlocs per residue, from the prediction
    chi = obs.permute(1, 0, 2)  # [N, A=2, D]
    mask = torch.ones(n, 2, 4, dtype=torch.bool)
    mask[: n // 2, :, 2:] = False  # marginal over χ1, χ2 for half the residues
    u = hdr_rank(mix, chi, mask, sym, n_samples=300, generator=g)
    for row in calibration_curve(u):
        assert abs(row["observed"] - row["level"]) < 0.05, row
    # Too sharp a prediction (κ × 10) puts the altlocs outside its small HDRs: under-coverage.
    sharp = Mixture(mix.logits, mix.mu, mix.kappa * 10)
    u = hdr_rank(sharp, chi, mask, sym, n_samples=300, generator=g)
    curve = calibration_curve(u)
    assert curve[4]["observed"] < 0.4


def test_flat_prediction_is_calibrated_by_tie_breaking():
    n = 500
    mix = Mixture(torch.zeros(n, 1), torch.zeros(n, 1, 4), torch.zeros(n, 1, 4))
    chi = torch.rand(n, 1, 4) * 6 - 3
    mask = torch.ones(n, 1, 4, dtype=torch.bool)
    u = hdr_rank(
        mix, chi, mask, torch.zeros(n, 4, dtype=torch.bool), 50, torch.Generator().manual_seed(0)
    )
    for row in calibration_curve(u):
        assert abs(row["observed"] - row["level"]) < 0.07, row


def test_score_and_summarize_pool_over_structures():
    chi = torch.zeros(3, 2, 4)
    chi[:, :, 0] = torch.tensor([[1.0, 1.1], [3.0, 0.0], [-1.0, 0.0]])
    mask = torch.zeros(3, 2, 4, dtype=torch.bool)
    mask[:2, :, 0] = True
    mask[2, 0, 0] = True
    occ = torch.tensor([[0.6, 0.4], [1.0, 0.0], [1.0, 0.0]])
    mask[1, 1] = False
    f = make_features([15, 15, 16], chi, mask, occ, [2, 1, 1])  # SER (in R), SER, THR
    mix = Mixture(torch.zeros(3, 1), chi[:, :1].clone(), torch.full((3, 1, 4), 200.0))
    s = score_structure(mix, f)
    assert s["nll"].shape == (1,) and s["covered"].tolist() == [True, True]
    out = summarize([s, s])
    assert out["residues"] == 2 and out["altlocs"] == 4
    assert out["coverage@10"] == 1.0 and out["chi1_mode_acc"] == 1.0
    assert out["flex_residues"] == 6 and len(out["calibration"]) == 9


def test_unique_entropy_estimates_each_distinct_mixture_once():
    g = torch.Generator().manual_seed(0)
    base = Mixture(
        torch.randn(3, 4, generator=g),
        torch.rand(3, 4, 4, generator=g) * 6 - 3,
        torch.rand(3, 4, 4, generator=g) * 10 + 0.1,
    )
    idx = torch.tensor([0, 1, 2, 1, 0, 0, 2])
    chi_defined = torch.ones(7, 4, dtype=torch.bool)
    chi_defined[:, 3] = False
    sym = torch.zeros(7, 4, dtype=torch.bool)
    got = unique_entropy(base.index(idx), chi_defined, sym)
    assert torch.equal(got[idx == 0], got[0].expand(3)) and got[1] == got[3]
    ref = entropy(base, chi_defined[:3], sym[:3], n_samples=4096)
    np.testing.assert_allclose(got[:3].numpy(), ref.numpy(), atol=0.2)
    # The same mixture with a different χ set is a different entropy.
    chi_defined[6, 2] = False
    assert unique_entropy(base.index(idx), chi_defined, sym)[6] < got[6] - 0.5


def test_per_structure_auroc_by_hand():
    # A: positive 0.9 above both negatives                          -> 1
    # B: positives {0.1, 0.6} vs negatives {0.3, 0.6}: 0 + 0 + 1 + ½ -> 1.5 / 4 = 0.375
    # C: no positive                                                 -> left out
    # Mean over the two structures with both classes: (1 + 0.375) / 2 = 0.6875.
    # Pooled, positives {0.9, 0.1, 0.6} vs negatives {0.2, 0.5, 0.3, 0.6, 0.95, 0.05}:
    # 0.9 beats 5, 0.1 beats 1 (0.05), 0.6 beats 4 and ties 1 -> 10.5 / 18.
    scores = [torch.tensor([0.9, 0.2, 0.5]), torch.tensor([0.1, 0.3, 0.6, 0.6]),
              torch.tensor([0.95, 0.05])]  # fmt: skip
    labels = [torch.tensor([1, 0, 0]), torch.tensor([1, 0, 1, 0]), torch.tensor([0, 0])]
    assert per_structure_auroc(scores, labels) == (0.6875, 2)
    out = summarize_flexibility(
        [{"flex_score": s, "flexible": y.bool()} for s, y in zip(scores, labels, strict=True)]
    )
    assert out["flex_auroc_per_structure"] == 0.6875 and out["flex_auroc_structures"] == 2
    assert out["flex_auroc"] == pytest.approx(10.5 / 18) and out["flex_residues"] == 9
    # The same scores read as probabilities, over the nine residues (three flexible):
    # Brier = mean (p − y)² = (0.01 + 0.04 + 0.25 + 0.81 + 0.09 + 0.16 + 0.36 + 0.9025 + 0.0025)/9
    cal = summarize_flex_probability(
        [{"flex_score": s, "flexible": y.bool()} for s, y in zip(scores, labels, strict=True)]
    )
    assert cal["flex_brier"] == pytest.approx(2.625 / 9)
    assert cal["flex_expected"] == pytest.approx(4.2) and cal["flex_observed"] == 3
    assert summarize_flex_probability(None) == dict.fromkeys(cal)
    nan, n = per_structure_auroc([torch.tensor([1.0])], [torch.tensor([1])])
    assert math.isnan(nan) and n == 0


def _chi1_structure():
    """SER, SER, SER, ALA with a two-component mixture each; χ1 only (degrees in comments)."""
    deg = math.radians
    chi = torch.zeros(4, 2, 4)
    chi[0, 0, 0] = deg(-179)  # one altloc
    chi[1, :, 0] = torch.tensor([deg(60), deg(-35)])  # top altloc (0.7) is the second
    chi[2, 0, 0] = deg(170)
    mask = torch.zeros(4, 2, 4, dtype=torch.bool)
    mask[0, 0, 0] = mask[1, :, 0] = mask[2, 0, 0] = True  # ALA has no χ1
    occ = torch.tensor([[1.0, 0.0], [0.3, 0.7], [1.0, 0.0], [1.0, 0.0]])
    f = make_features([15, 15, 15, 0], chi, mask, occ, [1, 2, 1, 1])
    mu = torch.zeros(4, 2, 4)
    mu[0, :, 0] = torch.tensor([deg(179), 0.0])  # heaviest 179°: 2° from −179° across ±180°
    # The light component sits on the altloc, the heavy one 25° away: the mode is the heavy one.
    mu[1, :, 0] = torch.tensor([deg(-35), deg(-60)])
    mu[2, :, 0] = torch.tensor([deg(-145), deg(170)])  # heavy −145°: 45° from 170° (wrapped)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    return Mixture(logits, mu, torch.full((4, 2, 4), 10.0)), f


def test_chi1_packer_accuracy_by_hand_with_wrap_around():
    mix, f = _chi1_structure()
    err, defined = chi1_error(mix, f.chi, f.chi_mask, f.occ)
    assert defined.tolist() == [True, True, True, False]
    np.testing.assert_allclose(np.degrees(err[:3].numpy()), [2.0, 25.0, 45.0], atol=1e-4)
    out = summarize([score_structure(mix, f)])
    # Over the 3 residues with χ1: within 20° only the first, within 40° the first two.
    assert out["chi1_residues"] == 3
    assert out["chi1_acc@20"] == pytest.approx(1 / 3) and out["chi1_acc@40"] == pytest.approx(2 / 3)
    # The old mode accuracy counts R only: residue 1, 25° off.
    assert out["chi1_mode_acc"] == 0.0


def test_flexibility_labels_follow_the_training_rule():
    mix, f = _chi1_structure()
    # Residue 1 is flexible; ALA has no χ1: three labelled residues, one positive.
    s = score_flexibility(torch.tensor([0.1, 0.9, 0.2, 5.0]), f)
    assert s["flexible"].tolist() == [False, True, False]
    assert s["flex_score"].tolist() == pytest.approx([0.1, 0.9, 0.2])
    # The same residues without altlocs: nobody modelled any, so nothing is labelled "rigid".
    f.n_obs = torch.ones(4, dtype=torch.long)
    assert score_flexibility(torch.rand(4), f)["flexible"].numel() == 0
    scored = score_structure(mix, f, flex_score=torch.rand(4))
    assert scored["flex_score"].numel() == scored["entropy"].numel() == 0


def test_model_flex_score_replaces_entropy_only_in_flex_auroc():
    mix, f = _chi1_structure()
    # A score that ranks the flexible residue first, against the mixture's own entropy.
    out = summarize([score_structure(mix, f, flex_score=torch.tensor([0.1, 0.9, 0.2, 0.0]))])
    assert out["flex_auroc"] == 1.0
    ent = summarize([score_structure(mix, f)])
    assert out["entropy_auroc"] == ent["flex_auroc"] == ent["entropy_auroc"]
    assert out["nll"] == ent["nll"]
