"""The map head: per-residue evidence on hand-built and real maps, the logistic fit against an
independent Newton solver, the posterior's bookkeeping, and synthetic training maps."""

import dataclasses
import math

import gemmi
import numpy as np
import pytest
from test_density_read import COARSE, map_file
from test_density_ringer import hand_built_map, rotate

from qfitlatent.density import MapPair, read_maps
from qfitlatent.density.grid import FOFC
from qfitlatent.density.posterior import (
    NETWORK,
    LogisticFit,
    MapHead,
    fit_logistic,
    inputs,
    load_map_head,
    posterior,
)
from qfitlatent.density.residue_evidence import (
    DIFFERENCE_FEATURES,
    FEATURES,
    ResidueEvidence,
    residue_evidence,
    residue_features,
)
from qfitlatent.density.synthetic import observed_amplitudes, synthetic_maps, thin_side_chains
from qfitlatent.ensemble.multiconf import DEFAULT_THRESHOLD, SplitOptions
from qfitlatent.structure import from_gemmi, read_structure
from qfitlatent.train.map_head import choose_threshold


def serine_record_in_a_box():
    """A real SER record of 3SB3 with its atoms moved into the middle of a 40 Å box."""
    parsed = read_structure(map_file("3sb3.pdb.gz"))
    rec = next(r for r in parsed.residues if r.parent == "SER" and r.n_obs == 1)
    shift = 20.0 - rec.conformers[0].atoms["CA"]
    conf = rec.conformers[0]
    moved = dataclasses.replace(conf, atoms={k: v + shift for k, v in conf.atoms.items()})
    backbone = {k: v + shift for k, v in rec.backbone.items()}
    return dataclasses.replace(rec, conformers=[moved], backbone=backbone)


def test_features_read_a_hand_built_difference_map():
    rec = serine_record_in_a_box()
    atoms = rec.conformers[0].atoms
    second = rotate(atoms["OG"], atoms["CA"], atoms["CB"], 120.0)  # a rotamer away
    beside = atoms["OG"] + np.array([1.2, 0.0, 0.0])  # where a near-copy would put OG
    two = hand_built_map(np.stack([atoms[n] for n in ("N", "CA", "CB", "OG")]), np.ones(4))
    # Unexplained density at the second rotamer, a lump beside OG, too many electrons at OG.
    diff = hand_built_map(np.stack([second, beside, atoms["OG"]]), np.array([1.0, 0.6, -0.8]))
    diff = dataclasses.replace(diff, label=FOFC)
    row, ringer = residue_features(rec, MapPair(two, diff, "hand-built"))
    f = dict(zip(FEATURES, row, strict=True))
    assert ringer is not None and math.isnan(f["fofc_delta_peak"])  # SER has no δ
    # The γ scan passes through the blob at +120°: it is the second peak, and the highest value.
    assert f["fofc_peak"] == pytest.approx(float(np.max(ringer.gamma[FOFC])), abs=1e-6)
    assert f["fofc_peak"] > 3.0
    assert f["fofc_modelled_min"] < -2.0  # OG sits on the negative blob
    assert f["fofc_near_max"] > 1.5  # the lump 1.2 Å from OG, not on the χ1 circle


def test_features_on_a_real_map_speak_only_for_residues_with_a_chi1():
    st = gemmi.read_structure(str(map_file("3sb3.pdb.gz")))
    maps = read_maps(map_file("3sb3_data.mtz.gz"), st, sample_rate=COARSE)
    parsed = read_structure(map_file("3sb3.pdb.gz"))
    ev = residue_evidence(parsed, maps)
    assert ev.features.shape == (len(parsed.residues), len(FEATURES)) and ev.has_difference
    for rec, ok, row in zip(parsed.residues, ev.scanned, ev.features, strict=True):
        if rec.parent in ("GLY", "ALA", "PRO"):
            assert not ok and np.isnan(row).all()
        if ok:
            assert np.isfinite(row[FEATURES.index("fofc_peak")])
    assert ev.scanned.sum() > 0.5 * len(parsed.residues)
    # Without the difference map, its columns are empty and the others unchanged.
    only = residue_evidence(parsed, MapPair(maps.two_fofc, None, "2mFo-DFc only"))
    cols = [FEATURES.index(n) for n in DIFFERENCE_FEATURES]
    assert np.isnan(only.features[:, cols]).all() and not only.has_difference
    rest = [i for i in range(len(FEATURES)) if i not in cols]
    np.testing.assert_array_equal(only.features[:, rest], ev.features[:, rest])


def newton_logistic(z: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """Penalised logistic regression by Newton's method in numpy: [w..., b]."""
    a = np.column_stack([z, np.ones(len(z))])
    theta = np.zeros(a.shape[1])
    pen = np.full(a.shape[1], 2 * l2 * len(z))
    pen[-1] = 0.0  # the intercept is not penalised
    for _ in range(50):
        p = 1 / (1 + np.exp(-a @ theta))
        grad = a.T @ (p - y) + pen * theta
        hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(pen)
        theta -= np.linalg.solve(hess, grad)
    return theta


def test_fit_logistic_matches_newton_and_recovers_the_coefficients():
    rng = np.random.default_rng(0)
    x = rng.normal([1.0, -2.0], [2.0, 0.5], size=(4000, 2))
    y = (rng.random(4000) < 1 / (1 + np.exp(-(0.8 * x[:, 0] - 3.0 * x[:, 1] - 5.0)))).astype(float)
    fit = fit_logistic(x, y, ("a", "b"), l2=1e-3)
    z = (x - x.mean(0)) / x.std(0)
    ref = newton_logistic(z, y, 1e-3)
    np.testing.assert_allclose(fit.coef, ref[:2], atol=1e-4)
    assert fit.intercept == pytest.approx(ref[2], abs=1e-4)
    # Unpenalised, on the raw scale, the generating coefficients come back (4000 draws).
    free = fit_logistic(x, y, ("a", "b"), l2=0.0)
    np.testing.assert_allclose(np.array(free.coef) / np.array(free.scale), [0.8, -3.0], rtol=0.1)


def test_posterior_keeps_the_network_where_the_map_is_silent(tmp_path):
    fit = LogisticFit((NETWORK, "fofc_peak"), (0.0, 0.0), (1.0, 1.0), (1.0, 2.0), -1.0)
    head = MapHead(fit, LogisticFit((NETWORK,), (0.0,), (1.0,), (1.0,), 0.0), "test")
    feats = np.full((3, len(FEATURES)), np.nan)
    feats[0, FEATURES.index("fofc_peak")] = 2.0
    feats[1, FEATURES.index("fofc_peak")] = 2.0
    ev = ResidueEvidence(feats, [object(), object(), None], has_difference=True)
    p = np.array([0.5, 0.9, 0.3])
    out = posterior(head, p, ev)
    logit = lambda q: math.log(q / (1 - q))  # noqa: E731
    assert out[0] == pytest.approx(1 / (1 + math.exp(-(0 + 4.0 - 1.0))))
    assert out[1] == pytest.approx(1 / (1 + math.exp(-(logit(0.9) + 4.0 - 1.0))))
    assert out[2] == 0.3  # not scanned: the network's own value
    head.save(tmp_path / "head.json")
    assert load_map_head(tmp_path / "head.json") == head
    np.testing.assert_allclose(inputs((NETWORK,), p, feats)[:, 0], np.log(p / (1 - p)))


def test_the_split_threshold_with_a_map_is_the_heads_unless_the_caller_chose_one(tmp_path):
    fit = LogisticFit((NETWORK,), (0.0,), (1.0,), (1.0,), 0.0)
    head = MapHead(fit, fit, "test", split_threshold=0.31)
    head.save(tmp_path / "head.json")
    assert load_map_head(tmp_path / "head.json").split_threshold == 0.31
    assert SplitOptions().resolved(head.split_threshold).threshold == 0.31
    assert SplitOptions(threshold=0.5).resolved(head.split_threshold).threshold == 0.5
    # A threshold given equal to the network's default is the caller's choice, kept.
    given = SplitOptions(threshold=DEFAULT_THRESHOLD).resolved(head.split_threshold)
    assert given.threshold == DEFAULT_THRESHOLD
    v1 = dataclasses.replace(head, split_threshold=None)  # a head without one: the network's
    assert SplitOptions().resolved(v1.split_threshold).threshold == DEFAULT_THRESHOLD


def test_choose_threshold_matches_the_count_to_the_expected_number():
    # 100 residues: 10 at 0.9, 90 at 0.02. Σp = 10.8: any threshold in (0.02, 0.9] puts 10
    # residues at or above it (nearest), the grid's first such is 0.05.
    prob = np.array([0.9] * 10 + [0.02] * 90)
    assert choose_threshold(prob) == 0.05
    # 20 at 0.6 and 20 at 0.3, Σp 18: 20 above from 0.31 to 0.6, 40 at or below 0.3.
    assert choose_threshold(np.array([0.6] * 20 + [0.3] * 20)) == 0.31


def test_synthetic_amplitudes_are_the_models_structure_factors():
    st = gemmi.read_structure(str(map_file("3sb3.pdb.gz")))
    rng = np.random.default_rng(1)
    mtz = observed_amplitudes(st, 2.5, rng, jitter=0.0, noise=0.0)
    hkl = np.array(mtz.make_miller_array())
    fp = mtz.column_with_label("FP").array
    # gemmi's direct summation over the atoms, hydrogens left out as the FFT path does.
    ref_st = st.clone()
    ref_st.remove_hydrogens()
    calc = gemmi.StructureFactorCalculatorX(ref_st.cell)
    pick = np.linspace(0, len(hkl) - 1, 40).astype(int)
    direct = np.array(
        [abs(calc.calculate_sf_from_model(ref_st[0], list(map(int, hkl[i])))) for i in pick]
    )
    assert np.median(np.abs(fp[pick] - direct) / direct) < 0.03


def test_synthetic_maps_show_the_minor_conformers():
    """3SB3's side-chain altlocs, left out of the phasing model, leave mFo-DFc peaks."""
    multi = gemmi.read_structure(str(map_file("3sb3.pdb.gz")))
    single, maps = synthetic_maps(multi, 1.8, seed=0, jitter=0.05)
    assert maps.fofc is not None and 0.05 < maps.r_work < 0.35
    parsed = from_gemmi(single.clone(), "3sb3")
    ev = residue_evidence(parsed, maps)
    split = {r.id for r in from_gemmi(multi.clone(), "3sb3").residues if r.n_obs > 1}
    peak = ev.features[:, FEATURES.index("fofc_peak")]
    is_split = np.array([r.id in split for r in parsed.residues])
    ok = ev.scanned
    assert (is_split & ok).sum() >= 3
    assert np.mean(peak[is_split & ok]) > np.mean(peak[~is_split & ok]) + 1.0


def test_thinned_side_chains_leave_backbone_and_altloc_residues_alone():
    st = gemmi.read_structure(str(map_file("3sb3.pdb.gz")))
    before = st.clone()
    thin_side_chains(st, np.random.default_rng(0), fraction=1.0)
    thinned = 0
    for ch0, ch1 in zip(before[0], st[0], strict=True):
        for r0, r1 in zip(ch0, ch1, strict=True):
            altloc = any(a.has_altloc() for a in r0)
            ratios = {a1.name: a1.occ / a0.occ for a0, a1 in zip(r0, r1, strict=True) if a0.occ > 0}
            side = {n: v for n, v in ratios.items() if n not in ("N", "CA", "C", "O", "CB", "OXT")}
            assert all(ratios[n] == 1.0 for n in ratios if n not in side)
            if altloc or not side:
                assert all(v == 1.0 for v in side.values())
            else:
                assert len({round(v, 6) for v in side.values()}) == 1  # one factor per residue
                assert 0.4 <= next(iter(side.values())) <= 0.9
                thinned += 1
    assert thinned > 50
