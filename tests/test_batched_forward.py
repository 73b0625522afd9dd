"""Several structures in one forward pass (model/packing.py, `predict --batch-residues`): each
structure's outputs equal its own forward pass to float rounding, on real structures of mixed
sizes, with the shipped weights (64-neighbour lists: structures below and above 64 residues) and
an all-pairs network; an archive run packed gives the unpacked run's table, a bad file in the
batch included."""

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import ROOT, data_file, tiny_model

from qfitlatent import archive, cli, outdir
from qfitlatent.checkpoint import load_model
from qfitlatent.features import load_features
from qfitlatent.model import packing

BUNDLED = ROOT / "qfitlatent" / "data"
# 46, 46, 63, 163 and 231 residues. 1ab1 and 1ejg are both crambin in nearly the same place: a
# pass that let structures see each other would mix them at once.
SMALL = ("1ab1.pdb.gz", "1ejg.pdb.gz", "7w2p.pdb.gz")
LARGER = ("3k0n_qfit.pdb.gz", "1atg.pdb.gz")


def structure_paths() -> list[Path]:
    return [data_file(n) for n in SMALL] + [BUNDLED / n for n in LARGER]


@pytest.fixture(scope="module")
def batch():
    # Mixed order: a large structure between small ones, so offsets are not all from row 0.
    f = [load_features(p) for p in structure_paths()]
    return [f[0], f[3], f[1], f[4], f[2]]


@pytest.fixture(scope="module")
def shipped():
    return load_model(ROOT / "weights" / "qfitlatent-v3.pt", "cpu")[0].eval()


def assert_close(alone, packed):
    logits, mu, kappa = alone.mixture
    torch.testing.assert_close(packed.mixture.logits, logits, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(packed.mixture.mu, mu, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(packed.mixture.kappa, kappa, atol=1e-4, rtol=1e-5)
    if alone.flex_logit is None:
        assert packed.flex_logit is None
    else:
        torch.testing.assert_close(packed.flex_logit, alone.flex_logit, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("which", ["shipped", "all-pairs"])
@torch.no_grad()
def test_one_packed_pass_gives_each_structure_its_own_outputs(which, batch, shipped):
    model = shipped if which == "shipped" else tiny_model()
    lengths = [f.n_res for f in batch]
    assert lengths == [46, 163, 46, 231, 63]
    if which == "shipped":  # both sides of the 64-neighbour width
        assert model.cfg.max_neighbours == 64
    else:
        assert model.cfg.max_neighbours == 0
    packed = packing.forward_many(model, batch, "cpu")
    assert [p.mixture.logits.shape[0] for p in packed] == lengths
    for f, p in zip(batch, packed, strict=True):
        assert_close(model(f), p)
    # The check can fail: the same rows in one pass without per-structure handling (one
    # centring, lists over all of them, no masks) are far from the structures' own outputs.
    naive = packing.unpack(model(packing.pack(batch)), lengths)
    worst = max(
        (n.mixture.mu - model(f).mixture.mu).abs().max() for f, n in zip(batch, naive, strict=True)
    )
    assert worst > 1e-2


def test_packed_features_hold_every_residue_in_order(batch):
    whole = packing.pack(batch)
    assert whole.n_res == sum(f.n_res for f in batch)
    assert whole.chain_id == [c for f in batch for c in f.chain_id]
    a_max = max(f.chi.shape[1] for f in batch)
    assert whole.chi.shape[1] == whole.occ.shape[1] == a_max
    start = 0
    for f in batch:  # each structure's own values, the padding slots empty
        rows = slice(start, start + f.n_res)
        a = f.chi.shape[1]
        assert torch.equal(whole.trans[rows], f.trans)
        assert torch.equal(whole.chi[rows, :a], f.chi)
        assert not whole.chi_mask[rows, a:].any() and not whole.occ[rows, a:].any()
        start += f.n_res


def test_key_lists_never_leave_their_structure(batch):
    lengths = [f.n_res for f in batch]
    trans = packing.pack(batch).trans
    centred, nbr, valid = packing.packed_lists(trans, lengths, 64)
    assert nbr.shape == valid.shape == (sum(lengths), 64)
    start = 0
    for n in lengths:
        rows = slice(start, start + n)
        assert ((nbr[rows] >= start) & (nbr[rows] < start + n)).all()
        # at most 64 residues: all of its own, once each, the rest masked
        assert (valid[rows].sum(1) == min(n, 64)).all()
        torch.testing.assert_close(centred[rows].mean(0), torch.zeros(3), atol=1e-4, rtol=0)
        start += n


def test_packing_groups_consecutive_structures_by_residue_budget():
    items = [("a", 100), ("b", 200), ("c", 5000), ("d", 50), ("e", 60)]
    assert list(archive.packed(items, 300)) == [["a", "b"], ["c"], ["d", "e"]]
    assert list(archive.packed(items, 0)) == [["a"], ["b"], ["c"], ["d"], ["e"]]
    assert list(archive.packed(items, 10_000)) == [["a", "b", "c", "d", "e"]]
    assert list(archive.packed([], 300)) == []


# --- the archive path ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The five structures and one file that is not a structure, in the list's order."""
    folder = tmp_path_factory.mktemp("in")
    names = [SMALL[0], LARGER[0], "broken.pdb", SMALL[1], LARGER[1], SMALL[2]]
    for path in structure_paths():
        shutil.copy(path, folder / path.name)
    (folder / "broken.pdb").write_text("HEADER    NOT A STRUCTURE\nEND\n")
    (folder / "list.txt").write_text("\n".join(names) + "\n")
    return folder


def run(weights, inputs, out: Path, budget: int, *extra) -> tuple[int, pd.DataFrame]:
    rc = cli.main(["predict", "--list", str(inputs / "list.txt"), "--out", str(out / "out"),
                   "--table", str(out / "t.parquet"), "--weights", str(weights), "--samples", "2",
                   "--batch-residues", str(budget), *extra])  # fmt: skip
    return rc, archive.read_table(out / "t.parquet")


@pytest.fixture(scope="module")
def unpacked(weights, inputs, tmp_path_factory):
    return run(weights, inputs, tmp_path_factory.mktemp("alone"), 0)


def test_a_packed_archive_run_gives_the_unpacked_table(
    weights, inputs, unpacked, tmp_path, monkeypatch
):
    passes = []
    forward_many = packing.forward_many

    def counting(model, feats, device):
        passes.append([f.n_res for f in feats])
        return forward_many(model, feats, device)

    monkeypatch.setattr(packing, "forward_many", counting)
    rc, table = run(weights, inputs, tmp_path, 300)
    # The broken file is left out of its batch; the rest go in passes of at most 300 residues.
    assert passes == [[46, 163, 46], [231, 63]]
    rc_alone, alone = unpacked
    assert rc == rc_alone == 1  # the broken file failed, and only it
    log = (tmp_path / "out" / outdir.FAILURES_LOG).read_text()
    assert "broken.pdb" in log and log.count("\n") == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["1ab1", "1atg", "1ejg", "3k0n_qfit", "7w2p", outdir.FAILURES_LOG]
    )
    assert table.shape == alone.shape and table.shape[0] > 300
    text = table.select_dtypes(exclude="number")
    pd.testing.assert_frame_equal(text, alone.select_dtypes(exclude="number"))
    for col in ("resnum", "n_chi", "n_conformers"):
        assert table[col].tolist() == alone[col].tolist(), col
    # residues.csv rounds to 4 decimals: a value on a rounding edge may move by its last digit
    numbers = ["flexibility", "p_flexible", "entropy"] + [f"chi{k}_mode" for k in range(1, 5)]
    pd.testing.assert_frame_equal(table[numbers], alone[numbers], check_exact=False, atol=2e-4,
                                  rtol=0)  # fmt: skip


def test_a_failing_packed_pass_falls_back_to_one_pass_per_structure(
    weights, inputs, unpacked, tmp_path, monkeypatch
):
    """Where the packed pass fails (say, out of GPU memory), each structure gets its own pass,
    and a structure whose own pass fails is the only one reported."""
    forward_many = packing.forward_many

    def fragile(model, feats, device):
        if len(feats) > 1:
            raise RuntimeError("out of memory")
        if feats[0].n_res == 231:
            raise RuntimeError("this one fails alone too")
        return forward_many(model, feats, device)

    monkeypatch.setattr(packing, "forward_many", fragile)
    rc, table = run(weights, inputs, tmp_path, 10_000)
    assert rc == 1
    log = (tmp_path / "out" / outdir.FAILURES_LOG).read_text()
    assert "broken.pdb" in log and "1atg" in log and "this one fails alone too" in log
    alone = unpacked[1]
    assert list(table["structure"].unique()) == ["1ab1", "3k0n_qfit", "1ejg", "7w2p"]
    pd.testing.assert_frame_equal(table, alone[alone["structure"] != "1atg"].reset_index(drop=True))


def test_the_default_packs_unless_maps_are_given(tmp_path, monkeypatch):
    """With maps each structure keeps its own pass by default: a batch would hold every
    structure's map in memory at once. Real 3SB3 and its MTZ, twice under two names."""
    maps_dir = ROOT.parent / "shared" / "data" / "maps"
    structure, mtz = data_file("3sb3.pdb.gz", maps_dir), data_file("3sb3_data.mtz.gz", maps_dir)
    (tmp_path / "in").mkdir()
    (tmp_path / "maps").mkdir()
    for name in ("xa", "xb"):
        shutil.copy(structure, tmp_path / "in" / f"{name}.pdb.gz")
        shutil.copy(mtz, tmp_path / "maps" / f"{name}_data.mtz.gz")
    monkeypatch.setattr(archive, "BATCH_RESIDUES", {"cpu": 100_000, "cuda": 100_000})
    passes = []
    forward_many = packing.forward_many

    def counting(model, feats, device):
        passes.append(len(feats))
        return forward_many(model, feats, device)

    monkeypatch.setattr(packing, "forward_many", counting)

    def predict(*extra) -> int:
        return cli.main(["predict", str(tmp_path / "in"), "--samples", "2", *map(str, extra)])

    assert predict("--out", tmp_path / "plain") == 0
    assert passes == [2]  # both in one pass, by the (patched) default
    passes.clear()
    assert predict("--out", tmp_path / "mapped", "--maps", tmp_path / "maps") == 0
    assert passes == [1, 1]
