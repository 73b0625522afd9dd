"""The k-d-tree featurisation against a plain residue-by-residue reference kept here.

Burial and environment counts come from neighbour pairs of a k-d tree (qfitlatent.neighbours)
so that featurising grows linearly with the structure. The reference below computes the same
counts the obvious way, one residue at a time against every atom, and the two must agree
exactly: the shipped weights were trained on these counts.
"""

import gemmi
import numpy as np
import pytest
import torch
from conftest import data_file

from qfitlatent import geometry
from qfitlatent.environment import PROBE_RADII, environment_counts, probe_points
from qfitlatent.features import _primary_atoms, featurize
from qfitlatent.geometry import BURIAL_RADII, burial_counts, virtual_cb
from qfitlatent.neighbours import pairs_within
from qfitlatent.structure import from_gemmi, read_structure


def reference_burial(rot: torch.Tensor, trans: torch.Tensor) -> np.ndarray:
    """[N, 3] burial counts, one residue at a time against all others."""
    cb = virtual_cb(rot, trans).double().numpy()
    ca = trans.double().numpy()
    out = np.zeros((len(ca), 3))
    for i in range(len(ca)):
        other = np.arange(len(ca)) != i
        d_cb = np.sqrt(((cb - cb[i]) ** 2).sum(-1))
        d_ca = np.sqrt(((ca - ca[i]) ** 2).sum(-1))
        side = (ca - ca[i]) @ (cb[i] - ca[i]) > 0
        out[i] = [
            (other & (d_cb < BURIAL_RADII[0])).sum(),
            (other & (d_cb < BURIAL_RADII[1])).sum(),
            (other & side & (d_ca < BURIAL_RADII[2])).sum(),
        ]
    return out


def reference_environment(parsed) -> np.ndarray:
    """[N, 24 * R] environment counts: each residue's probes against every primary atom of the
    other residues, read straight from the parsed records."""
    recs = parsed.residues
    xyz, owner = [], []
    for i, rec in enumerate(recs):
        atoms = {**rec.conformers[0].atoms, **rec.backbone} if rec.conformers else rec.backbone
        xyz += list(atoms.values())
        owner += [i] * len(atoms)
    xyz, owner = np.array(xyz), np.array(owner)
    bb = torch.tensor(np.array([[r.backbone[k] for k in ("N", "CA", "C")] for r in recs]))
    rot, ca = geometry.backbone_frames(bb[:, 0], bb[:, 1], bb[:, 2])
    probes = probe_points(bb[:, 0], ca, rot).reshape(len(recs), -1, 3).numpy()  # [N, 24, 3]
    out = np.zeros((len(recs), probes.shape[1], len(PROBE_RADII)))
    for i in range(len(recs)):
        d = np.sqrt(((probes[i][:, None] - xyz[None]) ** 2).sum(-1))  # [24, M]
        other = owner != i
        for k, r in enumerate(PROBE_RADII):
            out[i, :, k] = ((d < r) & other).sum(-1)
    return out.reshape(len(recs), -1)


def touching_copies(name: str, copies: int, shift: float) -> gemmi.Structure:
    """`copies` copies of a real structure `shift` Å apart along x, so copies interpenetrate
    and chains of different copies count each other's atoms."""
    src = gemmi.read_structure(str(data_file(name)))
    src.remove_hydrogens()
    src.remove_ligands_and_waters()
    st = gemmi.Structure()
    model = gemmi.Model("1")
    for c in range(copies):
        for ch in src[0]:
            copy = gemmi.Chain(f"{ch.name}{c}")
            for res in ch:
                copy.add_residue(res)
            for res in copy:
                for atom in res:
                    atom.pos = atom.pos + gemmi.Position(shift * c, 0, 0)
            model.add_chain(copy)
    st.add_model(model)
    st.setup_entities()
    return st


@pytest.mark.parametrize("name", ["1a2p_qfit.pdb.gz", "1b5f.cif.gz", "3k0n_qfit.pdb.gz"])
def test_counts_equal_the_reference_on_real_structures(name):
    """Altlocs (1a2p_qfit, 3k0n_qfit: only the first conformer counts), mmCIF and several
    chains (1b5f)."""
    parsed = read_structure(data_file(name))
    f = featurize(parsed)
    burial = reference_burial(f.rot.double(), f.trans.double())
    env = reference_environment(parsed)
    assert burial[:, 2].max() > 10 and env.max() > 10  # a packed structure, not an empty one
    assert np.array_equal(f.burial.numpy(), burial)
    assert np.array_equal(f.environment.numpy(), env)


def test_counts_equal_the_reference_across_chunks_and_copies():
    """Copies of 2igd 12 Å apart overlap, so neighbours cross chains; chunks of 7 residues
    split the work at many places, which must change nothing."""
    parsed = from_gemmi(touching_copies("2igd.pdb.gz", 3, 12.0), "2igd_x3")
    f = featurize(parsed)
    n = f.n_res
    assert n > 150
    burial = reference_burial(f.rot.double(), f.trans.double())
    env = reference_environment(parsed)
    single = featurize(read_structure(data_file("2igd.pdb.gz")))
    # The overlap really adds neighbours from the other copies.
    assert burial[: single.n_res].sum() > single.burial.sum().item()
    assert np.array_equal(f.burial.numpy(), burial)
    assert np.array_equal(f.environment.numpy(), env)
    bb = torch.tensor(
        np.array([[r.backbone[k] for k in ("N", "CA", "C")] for r in parsed.residues])
    )
    rot, ca = geometry.backbone_frames(bb[:, 0], bb[:, 1], bb[:, 2])
    atoms, owner = _primary_atoms(parsed.residues)
    probes = probe_points(bb[:, 0], ca, rot).flatten(1, 2)
    chunked = environment_counts(probes, atoms, owner, chunk=7).reshape(n, -1)
    assert np.array_equal(chunked.numpy(), env)
    assert np.array_equal(burial_counts(rot, ca, chunk=7).numpy(), burial)


def test_pairs_within_is_strict_and_keeps_coincident_points():
    """A pair exactly at the radius is out (the counts use <), coincident points are in, and
    every chunk size finds the same pairs as a brute-force search."""
    rng = np.random.default_rng(0)
    pts = np.round(rng.uniform(0, 20, size=(300, 3)), 1)  # a grid: many exact distances
    pts[1] = pts[0]  # coincident
    pts[2] = pts[0] + [3.0, 4.0, 0.0]  # exactly 5 Å from pts[0]
    d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    expected = set(zip(*np.nonzero(d < 5.0), strict=True))
    for chunk in (1, 17, 1000):
        found = set()
        for rows, i, j, dist in pairs_within(pts, pts, 5.0, chunk):
            assert ((i >= rows.start) & (i < rows.stop)).all()
            assert np.array_equal(dist, d[i, j])
            found |= set(zip(i.tolist(), j.tolist(), strict=True))
        assert found == expected
    assert (0, 1) in found and (0, 2) not in found


def test_featurize_forms_no_distance_matrix(monkeypatch):
    """Featurising finds neighbours without all-pairs distances (torch.cdist), which grow with
    the square of the structure: 15,000 residues would need 15,000 × 15,000 of them."""

    def refuse(*args, **kwargs):
        raise AssertionError("featurize computed a distance matrix")

    monkeypatch.setattr(torch, "cdist", refuse)
    f = featurize(read_structure(data_file("2igd.pdb.gz")))
    assert f.burial.sum() > 0 and f.environment.sum() > 0
