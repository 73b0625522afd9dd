"""The network's neighbour lists (model.embed.neighbours, from neighbours.nearest's k-d tree)
against all-pairs references.

What "the same" means: each residue's M nearest residues, as a list ordered by (distance,
index). The network sums attention over that list, so only the set reaches its output: the
order changes it by float rounding alone (checked below with the shipped weights). The former
all-pairs code (torch.cdist + topk in row chunks) is kept here as the reference it replaced.
"""

import numpy as np
import pytest
import torch
from conftest import data_file

from qfitlatent.checkpoint import load_model
from qfitlatent.features import load_features
from qfitlatent.model import ipa, network
from qfitlatent.model.embed import neighbours
from qfitlatent.neighbours import nearest

M = 64  # the shipped network's max_neighbours


def topk_neighbours(trans: torch.Tensor, m: int) -> torch.Tensor:
    """The code neighbours() replaced: float32 all-pairs distances, row chunks, topk."""
    rows = [
        torch.cdist(trans[s : s + 1024], trans).topk(m, dim=-1, largest=False).indices
        for s in range(0, len(trans), 1024)
    ]
    return torch.cat(rows)  # [N, m]


def sorted_neighbours(points: np.ndarray, m: int) -> np.ndarray:
    """[N, m] by (distance, index) from every pair's float64 distance: the definition itself."""
    d2 = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)  # [N, N]
    index = np.broadcast_to(np.arange(len(points)), d2.shape)
    return np.lexsort((index, d2), axis=-1)[:, :m]


@pytest.fixture(scope="module")
def big():
    """5BP2: 1,134 residues, real crystal contacts between chains, so 64 is well below N."""
    f = load_features(data_file("5bp2.cif.gz"))
    trans = f.trans.float()
    return f, trans - trans.mean(0)  # centred, as the network's trunk does


def test_lists_equal_the_all_pairs_definition_on_a_real_structure(big):
    _, trans = big
    got = neighbours(trans, M)  # [N, M]
    want = sorted_neighbours(trans.double().numpy(), M)
    assert got.shape == (len(trans), M) and got.dtype == torch.int64
    assert np.array_equal(got.numpy(), want)  # same residues, same order
    assert np.array_equal(nearest(trans.double().numpy(), M, chunk=100), want)  # 12 chunks
    # And the same sets as the cdist + topk code it replaced (topk's order within a row differs).
    old = topk_neighbours(trans, M)
    assert torch.equal(got.sort(-1).values, old.sort(-1).values)


def test_ties_at_the_last_place_go_to_the_lower_index():
    """On a lattice many distances are equal: the k-th place is decided by index, and a tie that
    runs past the tree's spare candidates is still resolved over every point."""
    g = np.stack(np.meshgrid(*[np.arange(6.0)] * 3, indexing="ij"), -1).reshape(-1, 3)  # [216, 3]
    for k in (7, 10, 19, 33):  # 7: a full shell; 10, 19, 33: shells cut mid-way
        assert np.array_equal(nearest(g, k), sorted_neighbours(g, k)), k
    with pytest.raises(ValueError):
        nearest(g, len(g) + 1)


def test_network_output_depends_on_the_set_not_its_order(big):
    """The shipped network with the k-d tree lists, the replaced topk lists, and the lists'
    columns shuffled: the same prediction to float rounding (measured here: ≤ 5e-6)."""
    f, _ = big
    model, _ = load_model()

    def run(pick):
        original = network.neighbours
        network.neighbours = pick
        try:
            with torch.no_grad():
                return model(f)
        finally:
            network.neighbours = original

    shuffle = torch.randperm(M, generator=torch.Generator().manual_seed(0))
    base = run(neighbours)
    for other in (run(topk_neighbours), run(lambda t, m: neighbours(t, m)[:, shuffle])):
        assert torch.allclose(other.flex_logit, base.flex_logit, atol=1e-4)
        assert torch.allclose(other.mixture.logits, base.mixture.logits, atol=1e-4)
        assert torch.allclose(other.mixture.mu, base.mixture.mu, atol=1e-4)
        assert torch.allclose(other.mixture.kappa, base.mixture.kappa, rtol=1e-4)
    # The lists matter at all: a different set (every residue's farthest 64) changes the output.
    far = run(lambda t, m: torch.from_numpy(nearest(t.double().numpy(), len(t))[:, -m:]))
    assert not torch.allclose(far.flex_logit, base.flex_logit, atol=1e-2)


def test_neighbour_lists_form_no_distance_matrix(big, monkeypatch):
    """No all-pairs distances (torch.cdist) for the network either: 50,000 residues would need
    50,000 × 50,000 of them."""

    def refuse(*args, **kwargs):
        raise AssertionError("neighbours computed a distance matrix")

    monkeypatch.setattr(torch, "cdist", refuse)
    assert neighbours(big[1], M).shape == (len(big[1]), M)


def test_attention_in_query_chunks_gives_the_whole_pass_result(big, monkeypatch):
    """Huge structures attend a chunk of query rows at a time (ipa.QUERY_CHUNK), so the gathered
    keys and values stay small; rows are independent, so chunks must not change the output.
    Here 1,134 residues in chunks of 100 (12 passes, the last one short) against one pass."""
    f, _ = big
    model, _ = load_model()
    with torch.no_grad():
        monkeypatch.setattr(ipa, "QUERY_CHUNK", 100_000)
        whole = model(f)
        monkeypatch.setattr(ipa, "QUERY_CHUNK", 100)
        chunked = model(f)
    assert torch.allclose(chunked.flex_logit, whole.flex_logit, rtol=0, atol=1e-6)
    for a, b in zip(chunked.mixture, whole.mixture, strict=True):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-6)
