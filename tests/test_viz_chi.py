"""χ pictures: densities against scipy, figure contents, rotamer names, labels kept apart."""

import math

import numpy as np
import pytest
from scipy import stats

from qfitlatent.residues import CHI_ATOMS
from qfitlatent.viz import chi, placement, rotamers

GRID = np.linspace(-math.pi, math.pi, 3600, endpoint=False)
STEP = 2 * math.pi / GRID.size


def mixture(k=3, d=4, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=k)
    mu = rng.uniform(-math.pi, math.pi, size=(k, d))
    kappa = np.exp(rng.uniform(np.log(0.05), np.log(60.0), size=(k, d)))
    return logits, mu, kappa


def test_chi_density_matches_scipy_von_mises_and_integrates_to_one():
    logits, mu, kappa = mixture()
    sym = np.array([False, True, False, False])
    total, per = chi.chi_density(logits, mu, kappa, sym, GRID)
    w = np.exp(logits) / np.exp(logits).sum()
    for d in range(4):
        if sym[d]:  # π-periodic density exp(κ cos 2Δ) / (2π I0(κ)) = vonmises.pdf(2x; 2μ, κ)
            ref = sum(
                w[k] * stats.vonmises.pdf(2 * GRID, kappa[k, d], loc=2 * mu[k, d]) for k in range(3)
            )
        else:
            ref = sum(w[k] * stats.vonmises.pdf(GRID, kappa[k, d], loc=mu[k, d]) for k in range(3))
        np.testing.assert_allclose(total[d], ref, rtol=1e-6, atol=1e-9)
        assert total[d].sum() * STEP == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(per.sum(0), total, rtol=1e-12)
    assert per[:, 0].sum(-1) * STEP == pytest.approx(w, abs=1e-6)  # each curve carries π_k


def test_joint_density_is_normalised_and_marginalises_to_chi1():
    logits, mu, kappa = mixture(seed=1)
    sym = np.zeros(4, dtype=bool)
    grid = np.linspace(-math.pi, math.pi, 720, endpoint=False)
    step = 2 * math.pi / grid.size
    joint = chi.joint_density(logits, mu, kappa, sym, grid)  # [χ2, χ1]
    assert joint.sum() * step**2 == pytest.approx(1.0, abs=1e-5)
    total, _ = chi.chi_density(logits, mu, kappa, sym, grid)
    np.testing.assert_allclose(joint.sum(0) * step, total[0], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(joint.sum(1) * step, total[1], rtol=1e-5, atol=1e-8)


def test_circle_figure_has_one_panel_per_chi_with_wells_means_and_altlocs():
    logits, mu, kappa = mixture(k=2)
    logits = np.array([0.0, 0.0])
    observed = [
        {
            "chi": np.radians([-65.0, 170.0, 0, 0]),
            "mask": np.array([1, 1, 0, 0], bool),
            "occ": 0.6,
            "altloc": "A",
        },
        {
            "chi": np.radians([178.0, 60.0, 0, 0]),
            "mask": np.array([1, 1, 0, 0], bool),
            "occ": 0.4,
            "altloc": "B",
        },
    ]
    fig = chi.chi_circle_figure(
        logits,
        mu,
        kappa,
        2,
        np.zeros(4, bool),
        observed=observed,
        samples=np.zeros((5, 4)),
        title="A99 LEU",
    )
    layout = fig.to_dict()["layout"]
    assert "polar" in layout and "polar2" in layout and "polar3" not in layout
    notes = [a["text"] for a in layout["annotations"]]
    assert notes.count("g+ 60°") == 2 and notes.count("t 180°") == 2 and notes.count("g− −60°") == 2
    obs = [t for t in fig.data if t.name == "input altloc (occupancy)"]
    assert len(obs) == 2  # one per panel
    np.testing.assert_allclose(obs[0].theta, [-65.0, 178.0])
    assert list(obs[0].customdata) == ["A 0.60", "B 0.40"]
    assert notes.count("A") == 2 and notes.count("B") == 2  # letters inside each circle
    assert "A 0.60 · B 0.40" in notes  # occupancies under the panel
    means = sorted(rotamers.wrap_deg(np.degrees(mu[:, 0])))
    np.testing.assert_allclose(sorted(spokes(fig, "polar")), means, atol=1e-9)
    # One trace per component and panel (its curve and spoke), not one per curve and spoke.
    assert len(fig.data) == 2 * (len(mu) + 1 + 1 + 1)  # components, density, samples, altlocs


def spokes(fig, subplot: str) -> list[float]:
    """The angles (°) of the component spokes in a panel: the segments from r = 0 after a gap
    in each component's trace (its curve first, then a NaN, then the spoke)."""
    out = []
    for t in fig.data:
        if t.subplot != subplot or not (t.legendgroup or "").startswith("c"):
            continue
        r, theta = list(t.r), list(t.theta)
        out += [theta[k + 1] for k, v in enumerate(r[:-1]) if np.isnan(v) and r[k + 1] == 0.0]
    return out


def annotation_boxes(fig) -> list[tuple]:
    """Pixel boxes of a fixed-size figure's annotations, as the placer estimates them."""
    lay = fig.layout
    m = lay.margin
    x0, y0 = (m.l or 0), (m.t or 0)
    w, h = lay.width - x0 - (m.r or 0), lay.height - y0 - (m.b or 0)
    out = []
    for a in lay.annotations:
        x, y = x0 + a.x * w, y0 + (1 - a.y) * h
        text = a.text.replace("<b>", "").replace("</b>", "")
        out.append((text, placement.text_box(x, y, text, a.font.size, a.xanchor, a.yanchor)))
    return out


def crowded_altlocs(n=5, spread=8.0):
    """Altlocs a few degrees apart on χ1 and χ2: the case where labels used to overprint."""
    mask = np.array([1, 1, 0, 0], bool)
    return [
        {"chi": np.radians([-60.0 + spread * a, 175.0 - spread * a, 0, 0]), "mask": mask,
         "occ": round(1 / n, 2), "altloc": "ABCDEFGH"[a]}
        for a in range(n)
    ]  # fmt: skip


def ringer_curves(seed=0, peak=4.0):
    """A Ringer-like scan: a 2mFo-DFc peak at the modelled χ1 and a difference peak 120° away."""
    t = np.arange(0.0, 360.0, 5.0)
    rng = np.random.default_rng(seed)
    two = (
        peak * np.exp(2 * (np.cos(np.radians(t - 300.0)) - 1)) - 0.6 + 0.1 * rng.normal(size=t.size)
    )
    diff = 3.2 * np.exp(4 * (np.cos(np.radians(t - 180.0)) - 1)) - 1.5 * np.exp(
        4 * (np.cos(np.radians(t - 300.0)) - 1)
    )
    return {"chi1": t, "curves": {"2mFo-DFc": two, "mFo-DFc": diff}}


@pytest.mark.parametrize("seed,with_ringer", [(0, False), (1, False), (2, False), (0, True),
                                              (1, True)])  # fmt: skip
def test_circle_and_torus_labels_never_overlap_and_stay_inside(seed, with_ringer):
    logits, mu, kappa = mixture(k=6, seed=seed)
    observed = crowded_altlocs()
    n_chi = 1 if with_ringer and seed == 1 else 4  # the narrowest figure holds the σ lines too
    circle = chi.chi_circle_figure(logits, mu, kappa, n_chi, np.array([0, 1, 0, 0], bool),
                                   observed=observed, title="A69 ARG: predicted χ densities",
                                   resname="ARG", chi_atoms=CHI_ATOMS["ARG"],
                                   ringer=ringer_curves(seed) if with_ringer else None)  # fmt: skip
    torus = chi.torus_figure(logits, mu, kappa, np.zeros(4, bool), observed=observed,
                             resname="ARG", n_chi=4)  # fmt: skip
    for fig in (circle, torus):
        boxes = annotation_boxes(fig)
        for k, (text, (a0, b0, a1, b1)) in enumerate(boxes):
            assert a0 >= 0 and b0 >= 0 and a1 <= fig.layout.width and b1 <= fig.layout.height, text
            for other, box in boxes[k + 1 :]:
                assert not placement.boxes_overlap((a0, b0, a1, b1), box, pad=0.0), (text, other)
    labelled = {a.text for a in circle.layout.annotations}
    assert {"A", "B", "C", "D", "E"} <= labelled  # every altloc got its letter somewhere


def test_ringer_curves_overlay_the_chi1_panel_on_their_own_sigma_scale():
    logits, mu, kappa = mixture(k=2, seed=3)
    ringer = ringer_curves(peak=5.5)
    fig = chi.chi_circle_figure(logits, mu, kappa, 2, np.zeros(4, bool), ringer=ringer)
    plain = chi.chi_circle_figure(logits, mu, kappa, 2, np.zeros(4, bool))
    curves = [t for t in fig.data if t.meta == "ringer"]
    assert [t.name for t in curves] == ["2mFo-DFc at γ (σ, Ringer)", "mFo-DFc at γ (σ, Ringer)"]
    assert {t.subplot for t in curves} == {"polar3"}  # its own axis, not the density's
    for t, values in zip(curves, ringer["curves"].values(), strict=True):
        np.testing.assert_allclose(t.r[:-1], values)  # the scan as given, closed on itself
        np.testing.assert_allclose(t.theta[:-1], ringer["chi1"])
    over, under = fig.layout.polar3, fig.layout.polar
    assert over.domain.x == under.domain.x and over.domain.y == under.domain.y
    assert over.angularaxis.rotation == 90 and over.angularaxis.direction == "counterclockwise"
    lo, hi = over.radialaxis.range
    every = np.concatenate(list(ringer["curves"].values()))
    assert lo <= min(every.min(), 0.0) and hi >= every.max()  # nothing clipped, 0σ inside
    assert list(over.radialaxis.tickvals) == [1.0]
    notes = [a.text for a in fig.layout.annotations]
    assert "1σ" in notes
    scale_line = next(n for n in notes if n.startswith("radius"))
    assert f"{lo:+.1f}σ at the centre" in scale_line and f"{hi:+.1f}σ at the rim" in scale_line
    assert fig.layout.height == plain.layout.height + chi.RINGER_FOOT_H
    # The mixture itself is drawn exactly as without the map.
    assert [t.name for t in plain.data] == [t.name for t in fig.data if t.meta != "ringer"]


def test_rotamer_names_follow_the_library_convention():
    assert rotamers.rotamer_name("LEU", [-65.0, 175.0]) == "mt"
    assert rotamers.rotamer_name("SER", [62.0]) == "p"
    assert rotamers.rotamer_name("GLN", [-65.0, 180.0, -78.0]) == "mt−80"
    # PHE χ2 is π-symmetric: 100° and −80° are one ring orientation, folded to −90…90°.
    assert rotamers.rotamer_name("PHE", [-65.0, 100.0], (False, True)) == "m−80"
    assert rotamers.rotamer_name("ARG", [-65.0, 180.0, 180.0, 85.0]) == "mtt90"


def test_components_shown_carry_weight_and_a_rotamer_name():
    logits = np.log(np.array([0.6, 0.3, 0.07, 0.03]))
    mu = np.radians([[-65.0, 175.0], [60.0, 80.0], [180.0, 60.0], [-60.0, -60.0]])
    kappa = np.full((4, 2), 8.0)
    fig = chi.chi_circle_figure(logits, mu, kappa, 2, np.zeros(2, bool), resname="LEU")
    legend = [t.name for t in fig.data if t.showlegend]
    assert legend[:3] == ["mt · 60%", "pp · 30%", "tp · 7%"]  # 3% is under the threshold
    assert not any(n.startswith("component") or "mm" in n for n in legend)
    titles = [a.text for a in fig.layout.annotations if a.text.startswith("χ")]
    assert titles == ["χ1", "χ2"]  # no atoms given here; with them: "χ1 · N–CA–CB–CG"


def test_pi_symmetric_chi_draws_both_means():
    logits, mu, kappa = np.zeros(1), np.zeros((1, 4)), np.full((1, 4), 5.0)
    fig = chi.chi_circle_figure(logits, mu, kappa, 2, np.array([False, True, False, False]))
    assert sorted(spokes(fig, "polar2")) == [0.0, 180.0]


def test_torus_figure_heatmap_is_the_joint_density():
    logits, mu, kappa = mixture(seed=2)
    fig = chi.torus_figure(logits, mu, kappa, np.zeros(4, bool), n_grid=60)
    z = np.asarray(fig.data[0].z)
    assert z.shape == (60, 60) and (z > 0).all()
    assert z.sum() * (2 * math.pi / 60) ** 2 == pytest.approx(1.0, rel=1e-3)


def test_coinciding_altlocs_share_one_label():
    mask = np.array([1, 1, 0, 0], bool)
    observed = [
        {"chi": np.radians([-67.0, 170.0, 0, 0]), "mask": mask, "occ": 0.37, "altloc": "A"},
        {"chi": np.radians([-66.0, -60.0, 0, 0]), "mask": mask, "occ": 0.32, "altloc": "B"},
        {"chi": np.radians([180.0, -179.0, 0, 0]), "mask": mask, "occ": 0.31, "altloc": "C"},
    ]
    assert [o["text"] for o in chi.merge_altlocs(observed, [0])] == ["A+B 0.69", "C 0.31"]
    assert len(chi.merge_altlocs(observed, [0, 1])) == 3
    assert [o["text"] for o in chi.merge_altlocs(observed, [1])] == ["A 0.37", "B 0.32", "C 0.31"]
