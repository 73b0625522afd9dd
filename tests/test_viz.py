"""Pure picture builders: densities against scipy, figure contents, viewer HTML safety/stability."""

import math
from pathlib import Path

import gemmi
import numpy as np
import pytest
from scipy import stats

from qfitlatent import viz

ROOT = Path(__file__).resolve().parents[1]
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
    total, per = viz.chi_density(logits, mu, kappa, sym, GRID)
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
    joint = viz.joint_density(logits, mu, kappa, sym, grid)  # [χ2, χ1]
    assert joint.sum() * step**2 == pytest.approx(1.0, abs=1e-5)
    total, _ = viz.chi_density(logits, mu, kappa, sym, grid)
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
    fig = viz.chi_circle_figure(
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
    spokes = [
        t for t in fig.data if t.mode == "lines" and len(t.theta) == 2 and t.subplot == "polar"
    ]
    np.testing.assert_allclose(
        sorted(s.theta[0] for s in spokes), sorted(viz._wrap_deg(np.degrees(mu[:, 0]))), atol=1e-9
    )


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
        out.append((text, viz.text_box(x, y, text, a.font.size, a.xanchor, a.yanchor)))
    return out


def crowded_altlocs(n=5, spread=8.0):
    """Altlocs a few degrees apart on χ1 and χ2: the case where labels used to overprint."""
    mask = np.array([1, 1, 0, 0], bool)
    return [
        {"chi": np.radians([-60.0 + spread * a, 175.0 - spread * a, 0, 0]), "mask": mask,
         "occ": round(1 / n, 2), "altloc": "ABCDEFGH"[a]}
        for a in range(n)
    ]  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_circle_and_torus_labels_never_overlap_and_stay_inside(seed):
    logits, mu, kappa = mixture(k=6, seed=seed)
    observed = crowded_altlocs()
    circle = viz.chi_circle_figure(logits, mu, kappa, 4, np.array([0, 1, 0, 0], bool),
                                   observed=observed, title="A69 ARG: predicted χ densities",
                                   resname="ARG", chi_atoms=viz_chi_atoms("ARG"))  # fmt: skip
    torus = viz.torus_figure(logits, mu, kappa, np.zeros(4, bool), observed=observed,
                             resname="ARG", n_chi=4)  # fmt: skip
    for fig in (circle, torus):
        boxes = annotation_boxes(fig)
        for k, (text, (a0, b0, a1, b1)) in enumerate(boxes):
            assert a0 >= 0 and b0 >= 0 and a1 <= fig.layout.width and b1 <= fig.layout.height, text
            for other, box in boxes[k + 1 :]:
                assert not viz.boxes_overlap((a0, b0, a1, b1), box, pad=0.0), (text, other)
    labelled = {a.text for a in circle.layout.annotations}
    assert {"A", "B", "C", "D", "E"} <= labelled  # every altloc got its letter somewhere


def viz_chi_atoms(resname):
    from qfitlatent.residues import CHI_ATOMS

    return CHI_ATOMS[resname]


def test_rotamer_names_follow_the_library_convention():
    assert viz.rotamer_name("LEU", [-65.0, 175.0]) == "mt"
    assert viz.rotamer_name("SER", [62.0]) == "p"
    assert viz.rotamer_name("GLN", [-65.0, 180.0, -78.0]) == "mt−80"
    # PHE χ2 is π-symmetric: 100° and −80° are one ring orientation, folded to −90…90°.
    assert viz.rotamer_name("PHE", [-65.0, 100.0], (False, True)) == "m−80"
    assert viz.rotamer_name("ARG", [-65.0, 180.0, 180.0, 85.0]) == "mtt90"


def test_components_shown_carry_weight_and_a_rotamer_name():
    logits = np.log(np.array([0.6, 0.3, 0.07, 0.03]))
    mu = np.radians([[-65.0, 175.0], [60.0, 80.0], [180.0, 60.0], [-60.0, -60.0]])
    kappa = np.full((4, 2), 8.0)
    fig = viz.chi_circle_figure(logits, mu, kappa, 2, np.zeros(2, bool), resname="LEU")
    legend = [t.name for t in fig.data if t.showlegend]
    assert legend[:3] == ["mt · 60%", "pp · 30%", "tp · 7%"]  # 3% is under the threshold
    assert not any(n.startswith("component") or "mm" in n for n in legend)
    titles = [a.text for a in fig.layout.annotations if a.text.startswith("χ")]
    assert titles == ["χ1", "χ2"]  # no atoms given here; with them: "χ1 · N–CA–CB–CG"


def test_pi_symmetric_chi_draws_both_means():
    logits, mu, kappa = np.zeros(1), np.zeros((1, 4)), np.full((1, 4), 5.0)
    fig = viz.chi_circle_figure(logits, mu, kappa, 2, np.array([False, True, False, False]))
    spokes2 = [
        t.theta[0]
        for t in fig.data
        if t.mode == "lines" and len(t.theta) == 2 and t.subplot == "polar2"
    ]
    assert sorted(spokes2) == [0.0, 180.0]


def test_torus_figure_heatmap_is_the_joint_density():
    logits, mu, kappa = mixture(seed=2)
    fig = viz.torus_figure(logits, mu, kappa, np.zeros(4, bool), n_grid=60)
    z = np.asarray(fig.data[0].z)
    assert z.shape == (60, 60) and (z > 0).all()
    assert z.sum() * (2 * math.pi / 60) ** 2 == pytest.approx(1.0, rel=1e-3)


def test_flexibility_colours_run_from_rigid_to_flexible():
    assert viz.flexibility_colour(0.0).lower() == viz.FLEX_STOPS[0].lower()
    assert viz.flexibility_colour(1.0).lower() == viz.FLEX_STOPS[-1].lower()


def test_atoms_pdb_reads_back_with_gemmi_and_has_no_angle_brackets():
    atoms = {
        "CA": np.array([1.0, 2.0, 3.0]),
        "CB": np.array([2.5, 2.0, 3.0]),
        "SG": np.array([3.0, 3.5, 3.0]),
    }
    text = viz.atoms_pdb(atoms, "</s", "A", 42, "B", occ=0.35)
    assert "<" not in text and ">" not in text
    st = gemmi.read_pdb_string(text)
    res = st[0]["A"][0]
    assert (res.seqid.num, res.seqid.icode) == (42, "B")
    assert [a.name for a in res] == ["CA", "CB", "SG"]
    assert res["SG"][0].pos.dist(gemmi.Position(3.0, 3.5, 3.0)) < 1e-3
    assert res["CB"][0].occ == pytest.approx(0.35)


def test_viewer_pdb_drops_remarks_so_uploaded_text_cannot_run():
    text = (
        "REMARK   1 </script><script>alert(1)</script>\n"
        "ATOM      1  N   GLY A   1       0.000   0.000   0.000  1.00  0.00           N\n"
        "ATOM      2  CA  GLY A   1       1.458   0.000   0.000  1.00  0.00           C\n"
        "END\n"
    )
    out = viz.viewer_pdb(gemmi.read_pdb_string(text))
    assert "script" not in out and "REMARK" not in out and "<" not in out
    assert out.count("ATOM") == 2


def small_view(sampled_colour="#E69F00"):
    pdb = viz.atoms_pdb(
        {"N": np.zeros(3), "CA": np.array([1.46, 0, 0]), "C": np.array([2.0, 1.4, 0])},
        "GLY",
        "A",
        1,
    )
    side = viz.atoms_pdb(
        {"CA": np.array([1.46, 0, 0]), "CB": np.array([2.0, -1.4, 0])}, "ALA", "A", 1
    )
    return viz.ensemble_view(
        pdb,
        focus=("A", 1, ""),
        sampled=[{"pdb": side, "colour": sampled_colour}],
        observed=[{"pdb": side}],
        labels=[(("A", 1, ""), "A1 ALA")],
    )


def test_view_html_is_offline_and_stable_across_builds():
    a, b = viz.view_html(small_view()), viz.view_html(small_view())
    assert a == b  # py3Dmol's own ids come from time.time(); ours from the content
    assert viz.view_html(small_view("#56B4E9")) != a
    assert "/app/static/3Dmol-min.js" in a and "cdn.jsdelivr" not in a
    assert a.count("addModel") == 3 and "zoomTo" in a and "#E69F00" in a


def test_legend_html_escapes_labels():
    html = viz.legend_html([("<b>A</b>", "#000")])
    assert "<b>A</b>" not in html and "&lt;b&gt;" in html


@pytest.fixture(scope="module")
def prediction(tmp_path_factory):
    import torch

    from qfitlatent.checkpoint import load_model, save_checkpoint
    from qfitlatent.config import ModelConfig
    from qfitlatent.model import QFitLatent
    from qfitlatent.predict import predict

    torch.manual_seed(0)
    cfg = ModelConfig(d_s=16, d_z=8, n_blocks=1, dropout=0.0)
    path = save_checkpoint(
        tmp_path_factory.mktemp("viz") / "tiny.pt",
        model_cfg=cfg,
        model=QFitLatent(cfg),
        meta={"note": "test"},
    )
    model, _ = load_model(path, "cpu")
    return predict(
        model, ROOT / "qfitlatent" / "data" / "train_sample" / "2ppn.pdb.gz", n_samples=8
    )


def test_structure_view_and_figures_from_a_prediction(prediction):
    pred = prediction
    i = next(
        j
        for j in range(pred.features.n_res)
        if pred.parsed.residues[j].n_obs >= 2 and pred.features.chi_defined[j].sum() >= 2
    )
    view, legend = viz.structure_view(
        pred,
        viz.viewer_pdb(pred.parsed.structure),
        i,
        also=[pred.table[0]["index"]],
        colour_by_flexibility=True,
    )
    html = viz.view_html(view)
    from qfitlatent.predict import residue_proposals

    n_conf = len(residue_proposals(pred, i))  # written alternatives, or the selector's proposals
    assert n_conf >= 1
    assert len(legend) == n_conf + 1 and legend[-1][1] == viz.OBSERVED_CARBON
    chain, resnum, _ = viz.residue_id(pred, i)
    assert f'"chain": "{chain}", "resi": {resnum}' in html
    circle, torus = viz.residue_figures(pred, i)
    n_chi = int(pred.features.chi_defined[i].sum())
    assert sum(k.startswith("polar") for k in circle.to_dict()["layout"]) == n_chi
    assert torus is not None
    obs = [t for t in circle.data if t.name == "input altloc (occupancy)"]
    assert len(obs[0].theta) == pred.parsed.residues[i].n_obs


def test_training_curves_split_step_and_epoch_records():
    records = [
        {"step": 2, "epoch": 0.5, "train_loss": 5.0, "val_nll": None},
        {"step": 4, "epoch": 1.0, "train_loss": 4.5, "val_nll": None},
        {"step": 4, "epoch": 1, "train_loss": 4.7, "val_nll": 4.9, "best_val_nll": 4.9},
    ]
    fig = viz.training_curves(records)
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["training loss (window)"].x) == [2, 4]
    assert list(by_name["validation NLL"].y) == [4.9]  # one epoch: still drawn, as a marker
    assert "markers" in by_name["validation NLL"].mode


def test_coinciding_altlocs_share_one_label():
    mask = np.array([1, 1, 0, 0], bool)
    observed = [
        {"chi": np.radians([-67.0, 170.0, 0, 0]), "mask": mask, "occ": 0.37, "altloc": "A"},
        {"chi": np.radians([-66.0, -60.0, 0, 0]), "mask": mask, "occ": 0.32, "altloc": "B"},
        {"chi": np.radians([180.0, -179.0, 0, 0]), "mask": mask, "occ": 0.31, "altloc": "C"},
    ]
    assert [o["text"] for o in viz.merge_altlocs(observed, [0])] == ["A+B 0.69", "C 0.31"]
    assert len(viz.merge_altlocs(observed, [0, 1])) == 3
    assert [o["text"] for o in viz.merge_altlocs(observed, [1])] == ["A 0.37", "B 0.32", "C 0.31"]


def test_view_html_escapes_markup_from_any_data_field():
    # A chain id or label from an mmCIF can be any string; none may close the script tag.
    pdb = viz.atoms_pdb({"N": np.zeros(3), "CA": np.array([1.46, 0, 0])}, "GLY", "A", 1)
    view = viz.ensemble_view(pdb, focus=("</script><script>alert(1)//", 1, ""),
                             labels=[(("A", 1, ""), "</script><b>x</b>")])  # fmt: skip
    html = viz.view_html(view)
    script = html[html.index("<script>") + 8 : html.rindex("</script>")]
    assert "<" not in script and "\\u003c/script>" in script
    # py3Dmol's own script has no '<' (so every escaped one was inside a JSON string).
    plain = viz.view_html(viz.ensemble_view(pdb, focus=("A", 1, "")))
    assert "\\u003c" not in plain


def test_neighbourhood_pdb_keeps_exactly_the_residues_within_the_radius():
    full = viz.viewer_pdb(gemmi.read_structure(str(ROOT / "qfitlatent/data/3k0n_qfit.pdb.gz")))
    index = viz.pdb_index(full)
    st = gemmi.read_pdb_string(full)
    focus = ("A", 99, "")
    text = viz.neighbourhood_pdb(index, focus, 8.0)
    kept = {(r.name, r.seqid.num) for r in gemmi.read_pdb_string(text)[0]["A"]}
    # Reference: gemmi's own distances, residue by residue, over every atom of every altloc.
    res = {r.seqid.num: r for r in st[0]["A"]}
    centre = [a.pos for a in res[99]]
    expected = {(r.name, r.seqid.num) for r in st[0]["A"]
                if min(a.pos.dist(c) for a in r for c in centre) <= 8.0}  # fmt: skip
    assert kept == expected and 5 < len(kept) < 60  # a neighbourhood, not the protein
