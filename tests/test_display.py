"""A Prediction as viz records: the 3D view and χ figures built from a real prediction; viz
itself never reaches for a Prediction."""

import ast
from pathlib import Path

import pytest

from qfitlatent import display
from qfitlatent.viz import colours, viewer

ROOT = Path(__file__).resolve().parents[1]


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
        tmp_path_factory.mktemp("display") / "tiny.pt",
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
    view, legend = display.structure_view(
        pred,
        viewer.viewer_pdb(pred.parsed.structure),
        i,
        also=[pred.table[0]["index"]],
        colour_by_flexibility=True,
    )
    html = viewer.view_html(view)
    from qfitlatent.predict import residue_proposals

    n_conf = len(residue_proposals(pred, i))  # written alternatives, or the selector's proposals
    assert n_conf >= 1
    assert len(legend) == n_conf + 1 and legend[-1][1] == colours.OBSERVED_CARBON
    chain, resnum, _ = display.residue_id(pred, i)
    assert f'"chain": "{chain}", "resi": {resnum}' in html
    circle, torus = display.residue_figures(pred, i)
    n_chi = int(pred.features.chi_defined[i].sum())
    assert sum(k.startswith("polar") for k in circle.to_dict()["layout"]) == n_chi
    assert torus is not None
    obs = [t for t in circle.data if t.name == "input altloc (occupancy)"]
    assert len(obs[0].theta) == pred.parsed.residues[i].n_obs


def imported_modules(tree: ast.Module) -> list[str]:
    """Every module an import in a qfitlatent/viz/ file names, relative imports resolved
    (lazy imports inside functions too)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            package = ["qfitlatent", "viz"][: 2 - node.level + 1] if node.level else []
            module = ".".join(package + ([node.module] if node.module else []))
            out += [module] + [f"{module}.{a.name}" for a in node.names]  # "from .. import x"
    return out


def test_viz_imports_neither_predict_train_ui_nor_streamlit_and_takes_no_prediction():
    banned = ("qfitlatent.predict", "qfitlatent.train", "qfitlatent.ui", "qfitlatent.display",
              "streamlit")  # fmt: skip
    files = sorted((ROOT / "qfitlatent" / "viz").glob("*.py"))
    assert len(files) >= 5
    for path in files:
        tree = ast.parse(path.read_text())
        for name in imported_modules(tree):
            assert not name.startswith(banned), f"{path.name} imports {name}"
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                given = node.args
                args = [a.arg for a in given.posonlyargs + given.args + given.kwonlyargs]
                assert "pred" not in args, f"{path.name}: {node.name} takes a Prediction"


def test_the_import_check_sees_a_relative_import_of_predict():
    # The check above could pass by resolving nothing: "from ..predict import x" in viz/ must
    # come out as qfitlatent.predict, "from . import chi" as qfitlatent.viz.chi.
    tree = ast.parse("from ..predict import x\nfrom . import chi\ndef f():\n    import streamlit")
    names = imported_modules(tree)
    assert "qfitlatent.predict" in names and "qfitlatent.viz.chi" in names
    assert "streamlit" in names
