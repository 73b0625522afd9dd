"""A Prediction as viz records: the 3D view and χ figures built from a real prediction; viz
itself never reaches for a Prediction."""

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
    import json

    scene = json.dumps(view.message())
    from qfitlatent.predict import residue_proposals

    n_conf = len(residue_proposals(pred, i))  # written alternatives, or the selector's proposals
    assert n_conf >= 1
    assert len(legend) == n_conf + 1 and legend[-1][1] == colours.OBSERVED_CARBON
    chain, resnum, _ = display.residue_id(pred, i)
    assert f'"chain": "{chain}", "resi": {resnum}' in scene
    circle, torus = display.residue_figures(pred, i)
    n_chi = int(pred.features.chi_defined[i].sum())
    assert sum(k.startswith("polar") for k in circle.to_dict()["layout"]) == n_chi
    assert torus is not None
    obs = [t for t in circle.data if t.name == "input altloc (occupancy)"]
    assert len(obs[0].theta) == pred.parsed.residues[i].n_obs
