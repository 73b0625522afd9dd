"""The network: SE(3) invariance, attention at initialisation, the neighbour path, and learning."""

import math
from dataclasses import replace

import pytest
import torch
from conftest import data_file

from qfitlatent.config import ModelConfig
from qfitlatent.features import load_features
from qfitlatent.geometry import random_rotation
from qfitlatent.loss import mixture_nll
from qfitlatent.model import QFitLatent
from qfitlatent.model.embed import neighbours

TINY = ModelConfig(
    d_s=16, d_z=8, n_blocks=2, n_heads=2, c_head=4, n_qk_points=2, n_v_points=2, n_rbf=8
)


@pytest.fixture(scope="module")
def protein():
    """4NPD: 58 residues, 33 of them with 2–4 side-chain altlocs."""
    return load_features(data_file("4npd.pdb.gz"))


def moved(f, seed=0):
    """The same structure after a random rotation and translation of every coordinate."""
    g = torch.Generator().manual_seed(seed)
    rot = random_rotation(g, dtype=torch.float32)  # acts on column vectors: x' = rot @ x
    shift = torch.randn(3, generator=g) * 50.0
    return replace(f, rot=f.rot @ rot.T, trans=f.trans @ rot.T + shift)


@pytest.mark.parametrize("max_neighbours", [0, 16])
def test_outputs_invariant_under_rotation_and_translation(protein, max_neighbours):
    torch.manual_seed(0)
    model = QFitLatent(replace(TINY, max_neighbours=max_neighbours)).eval()
    with torch.no_grad():
        a = model(protein).mixture
        b = model(moved(protein)).mixture
    weights_a, weights_b = torch.softmax(a.logits, -1), torch.softmax(b.logits, -1)
    assert torch.allclose(weights_a, weights_b, atol=1e-4)
    assert torch.allclose(a.mu, b.mu, atol=1e-4)
    assert torch.allclose(a.kappa, b.kappa, atol=1e-4)
    # Invariance must not come from ignoring the geometry.
    shuffled = replace(protein, trans=protein.trans[torch.randperm(protein.n_res)])
    with torch.no_grad():
        assert not torch.allclose(model(shuffled).mixture.mu, a.mu, atol=1e-3)


def test_resolution_input_is_read_only_when_configured(protein):
    torch.manual_seed(0)
    with_res = QFitLatent(replace(TINY, use_resolution=True)).eval()
    torch.manual_seed(0)
    without = QFitLatent(TINY).eval()
    at = lambda r: replace(protein, resolution=torch.full((protein.n_res,), r))  # noqa: E731
    with torch.no_grad():
        fine, coarse, unknown = (with_res(at(r)) for r in (1.0, 2.5, 0.0))
        assert not torch.allclose(fine.flex_logit, coarse.flex_logit, atol=1e-4)
        assert not torch.allclose(fine.flex_logit, unknown.flex_logit, atol=1e-4)
        assert torch.isfinite(unknown.flex_logit).all() and torch.isfinite(unknown.mixture.mu).all()
        assert torch.equal(without(at(1.0)).flex_logit, without(at(2.5)).flex_logit)


def test_output_ranges(protein):
    cfg = replace(TINY, kappa_min=0.05)
    out = QFitLatent(cfg).eval()(protein)
    mix = out.mixture
    n = protein.n_res
    assert out.flex_logit.shape == (n,) and out.flex_logit.dtype == torch.float32
    assert mix.logits.shape == (n, cfg.n_components)
    assert mix.mu.shape == mix.kappa.shape == (n, cfg.n_components, cfg.n_chi)
    assert (mix.mu.abs() < math.pi).all() and (mix.kappa >= cfg.kappa_min).all()
    assert all(t.dtype == torch.float32 for t in mix)


def test_attention_entropy_at_init_is_well_above_zero(protein):
    """SPEC §3: with nm positions, w_L, w_C and softplus(γ) = 1 attention starts spread out."""
    torch.manual_seed(0)
    model = QFitLatent(ModelConfig()).eval()  # the default, full-size network
    with torch.no_grad():
        s = model.single(protein)
        bias = model.pair_bias(model.pair(protein, None))[..., : model.cfg.n_heads]  # block 0
        a = model.blocks[0].ipa.attention(
            s, bias.transpose(1, 2), protein.rot, protein.trans
        )  # [N, H, N]
    entropy = -(a * a.clamp_min(1e-30).log()).sum(-1)  # [N, H]
    assert torch.allclose(a.sum(-1), torch.ones_like(entropy), atol=1e-5)
    # log N = 4.06 nats is uniform attention; one-hot attention would be 0.
    assert entropy.mean() > 0.5 * math.log(protein.n_res), entropy.mean()
    assert entropy.min() > 0.5
    assert a.max(-1).values.mean() < 0.5


def test_neighbour_path_equals_dense_path_when_every_residue_is_a_neighbour(protein):
    """Gathered keys in any order give the dense result: the sparse maths, not just its shapes."""
    torch.manual_seed(0)
    model = QFitLatent(TINY).eval()
    n = protein.n_res
    nbr = torch.stack(
        [torch.randperm(n) for _ in range(n)]
    )  # [N, N], every key, shuffled per query
    with torch.no_grad():
        s = model.single(protein)
        z_dense, z_sparse = model.pair(protein, None), model.pair(protein, nbr)
        b_dense, b_sparse = (
            model.pair_bias(z)[..., : model.cfg.n_heads].transpose(1, 2)
            for z in (z_dense, z_sparse)
        )
        dense = model.blocks[0](s, z_dense, b_dense, protein.rot, protein.trans, None)
        sparse = model.blocks[0](s, z_sparse, b_sparse, protein.rot, protein.trans, nbr)
    assert torch.allclose(dense, sparse, atol=1e-5)


def test_neighbours_are_nearest_by_ca_distance(protein):
    nbr = neighbours(protein.trans, 10)  # [N, 10]
    assert nbr.shape == (protein.n_res, 10)
    assert torch.equal(nbr[:, 0], torch.arange(protein.n_res))  # itself first, at distance 0
    d = torch.cdist(protein.trans, protein.trans)
    tenth = d.sort(-1).values[:, 9]
    assert (d.gather(1, nbr) <= tenth[:, None] + 1e-5).all()
    assert neighbours(protein.trans, 0) is None and neighbours(protein.trans, 100) is None


def test_other_chain_bin_differs_from_same_chain():
    """Two residues with the same numbers are neighbours in one chain, strangers across chains."""
    torch.manual_seed(0)
    model = QFitLatent(TINY).eval()
    f = load_features(data_file("4npd.pdb.gz"))
    split = replace(f, chain_index=(torch.arange(f.n_res) >= f.n_res // 2).long())
    with torch.no_grad():
        z_one, z_two = model.pair(f, None), model.pair(split, None)
    half = f.n_res // 2
    assert torch.allclose(z_one[:half, :half], z_two[:half, :half])
    assert not torch.allclose(z_one[:half, half:], z_two[:half, half:])


def test_tiny_model_overfits_one_real_protein(protein):
    torch.manual_seed(0)
    model = QFitLatent(replace(TINY, dropout=0.0))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    with torch.no_grad():
        start = float(mixture_nll(model(protein).mixture, protein)[0])
    for _ in range(100):
        loss, _, _ = mixture_nll(model(protein).mixture, protein)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = float(mixture_nll(model.eval()(protein).mixture, protein)[0])
    assert end < start - 2.0, (start, end)


def test_bf16_autocast_keeps_head_and_loss_in_fp32(protein):
    """The CUDA path runs the trunk under bf16 autocast; CPU autocast exercises the same code."""
    torch.manual_seed(0)
    model = QFitLatent(TINY)
    with torch.no_grad():
        reference = model.eval()(protein).mixture
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mix = model.train()(protein).mixture
        loss, _, _ = mixture_nll(mix, protein)
    assert all(t.dtype == torch.float32 for t in mix) and loss.dtype == torch.float32
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = model.eval()(protein).mixture
    assert torch.allclose(low.mu, reference.mu, atol=0.1)
    assert torch.allclose(
        torch.softmax(low.logits, -1), torch.softmax(reference.logits, -1), atol=0.05
    )
