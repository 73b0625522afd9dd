"""The rotamer-library prior in the head: it is the bb_dependent baseline until trained, it
travels inside checkpoints, and a fresh training run fits it on the training split only."""

import json
from dataclasses import replace

import pytest
import torch
from conftest import DATA, data_file

from qfitlatent.checkpoint import load_model, save_checkpoint
from qfitlatent.config import ModelConfig, TrainConfig
from qfitlatent.eval.baselines import LibraryOptions, fit_baselines
from qfitlatent.features import load_features
from qfitlatent.loss import mixture_nll
from qfitlatent.mixture import log_prob
from qfitlatent.model import QFitLatent
from qfitlatent.train.loop import train

TINY = ModelConfig(
    d_s=16, d_z=8, n_blocks=1, n_heads=2, c_head=4, n_qk_points=2, n_v_points=2, n_rbf=8,
    n_components=3, prior_components=4, prior_bin_deg=30.0,
)  # fmt: skip
TRAIN = ["1ab1.pdb.gz", "1ejg.pdb.gz", "2igd.pdb.gz", "1g6x.pdb.gz"]


@pytest.fixture(scope="module")
def train_feats():
    return [load_features(data_file(n)) for n in TRAIN]


@pytest.fixture(scope="module")
def protein():
    return load_features(data_file("4npd.pdb.gz"))


@pytest.fixture(scope="module")
def library(train_feats):
    options = LibraryOptions(n_components=TINY.prior_components, bin_deg=TINY.prior_bin_deg)
    return fit_baselines(train_feats, options)["bb_dependent"]


def _with_library(library, cfg=TINY):
    torch.manual_seed(0)
    model = QFitLatent(cfg).eval()
    model.head.prior.load_library(library)
    return model


def test_untrained_library_components_are_the_bb_dependent_baseline(library, protein):
    model = _with_library(library)
    with torch.no_grad():
        mix = model(protein).mixture
    k, m = TINY.n_components, TINY.prior_components
    assert mix.logits.shape == (protein.n_res, k + m)
    assert mix.mu.shape == mix.kappa.shape == (protein.n_res, k + m, TINY.n_chi)
    base = library.predict(protein)
    lib_logits = mix.logits[:, k:]
    # Relative weights, means and concentrations of the library part equal the baseline's.
    assert torch.allclose(
        torch.log_softmax(lib_logits, -1), torch.log_softmax(base.logits, -1), atol=1e-5
    )
    assert torch.allclose(mix.mu[:, k:], base.mu)
    assert torch.allclose(mix.kappa[:, k:], base.kappa.clamp_min(TINY.kappa_min))
    # The free components start with about a tenth of the mass.
    free_share = torch.softmax(mix.logits, -1)[:, :k].sum(-1)
    assert 0.02 < float(free_share.median()) < 0.3


def test_model_with_prior_stays_se3_invariant(library, protein):
    from test_model import moved

    model = _with_library(library)
    with torch.no_grad():
        a, b = model(protein).mixture, model(moved(protein)).mixture
    assert torch.allclose(torch.softmax(a.logits, -1), torch.softmax(b.logits, -1), atol=1e-4)
    assert torch.allclose(a.kappa, b.kappa, atol=1e-3)


def test_prior_corrections_move_weights_and_concentrations(library, protein):
    model = _with_library(library)
    with torch.no_grad():
        before = model(protein).mixture
        model.head.prior.reweight.bias[0] = 2.0
        model.head.prior.kappa_scale.bias[0] = 1.0
        after = model(protein).mixture
    k = TINY.n_components
    assert torch.allclose(after.logits[:, k], before.logits[:, k] + 2.0)
    # κ of χ1 scaled by e (bounded tanh: 3·tanh(1/3)), floored at κ_min.
    scale = torch.exp(3.0 * torch.tanh(torch.tensor(1.0 / 3.0)))
    expected = (before.kappa[:, k:, 0] * scale).clamp_min(TINY.kappa_min)
    assert torch.allclose(after.kappa[:, k:, 0], expected, rtol=1e-5)


def test_mixture_with_prior_is_a_density(library, protein):
    """Every residue's χ1 marginal integrates to 1 on a fine grid (the others are masked)."""
    model = _with_library(library)
    with torch.no_grad():
        mix = model(protein).mixture
    grid = torch.linspace(-torch.pi, torch.pi, 4001)[:-1]  # [G]
    n = protein.n_res
    chi = torch.zeros(grid.numel(), n, TINY.n_chi)
    chi[..., 0] = grid[:, None]
    mask = torch.zeros(grid.numel(), n, TINY.n_chi, dtype=torch.bool)
    mask[..., 0] = True
    p = log_prob(chi, mix, mask, protein.pi_symmetric[None].expand_as(mask)).exp()  # [G, N]
    integral = p.sum(0) * (2 * torch.pi / grid.numel())
    assert torch.allclose(integral, torch.ones(n), atol=1e-3)


def test_library_travels_inside_the_checkpoint(library, protein, tmp_path):
    model = _with_library(library)
    path = save_checkpoint(tmp_path / "prior.pt", model_cfg=TINY, model=model)
    loaded, info = load_model(path, "cpu")
    with torch.no_grad():
        a, b = model(protein).mixture, loaded(protein).mixture
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    # A fresh model of the same config predicts something else: the buffers carried the library.
    with torch.no_grad():
        fresh = QFitLatent(TINY).eval()(protein).mixture
    assert not torch.allclose(fresh.kappa, a.kappa)


def test_load_library_refuses_another_shape(library):
    model = QFitLatent(replace(TINY, prior_bin_deg=20.0))
    with pytest.raises(ValueError, match="bins"):
        model.head.prior.load_library(library)


def test_head_with_prior_needs_the_features(library, protein):
    model = _with_library(library)
    s = torch.zeros(3, TINY.d_s)
    with pytest.raises(ValueError, match="features"):
        model.head(s)


def test_training_fits_the_prior_on_the_training_split_and_improves_it(tmp_path):
    if not DATA.is_dir():
        pytest.skip("../shared/data is absent")
    data = tmp_path / "data"
    data.mkdir()
    for name in [*TRAIN, "4npd.pdb.gz"]:
        (data / name).symlink_to(DATA / name)
    cfg = TrainConfig(epochs=4, lr=3e-3, crop_size=64, val_fraction=0.2, seed=0, min_altlocs=1)
    result = train(data, tmp_path / "run", TINY, cfg, device="cpu", cache_dir=tmp_path / "c")
    assert result["status"] == "finished"
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    model, info = load_model(result["last"], "cpu")
    train_feats = [load_features(data / f"{n}.pdb.gz") for n in split["train"]]
    options = LibraryOptions(n_components=TINY.prior_components, bin_deg=TINY.prior_bin_deg)
    lib = fit_baselines(train_feats, options)["bb_dependent"]
    assert torch.allclose(model.head.prior.bin_logits, lib.bin_logits)
    assert torch.allclose(model.head.prior.mu, lib.per_aa.table.mu)
    # Training moved the corrections away from zero and lowered the loss on the training
    # residues below that of the same network before training (same seed, same library).
    assert model.head.prior.reweight.weight.abs().max() > 0
    untrained = _with_library(lib)
    with torch.no_grad():
        after = sum(float(mixture_nll(model(f).mixture, f, 1)[0]) for f in train_feats)
        before = sum(float(mixture_nll(untrained(f).mixture, f, 1)[0]) for f in train_feats)
    assert after < before
