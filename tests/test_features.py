"""Features against independent references: gemmi's dihedrals, frame geometry, invariance."""

import gzip
import math

import gemmi
import numpy as np
import pytest
import torch
from conftest import data_file, header_resolution

from qfitlatent import residues
from qfitlatent.features import featurize, load_features
from qfitlatent.geometry import burial_counts, random_rotation, to_local, virtual_cb
from qfitlatent.structure import from_gemmi, read_structure

FILES = ["2igd.pdb.gz", "1a2p_qfit.pdb.gz", "2r2z.pdb.gz"]


@pytest.mark.parametrize("name", FILES)
def test_frames_are_proper_rotations_with_the_spec_convention(name):
    parsed = read_structure(data_file(name))
    f = featurize(parsed)
    eye = torch.eye(3).expand(f.n_res, 3, 3)
    assert torch.allclose(f.rot @ f.rot.transpose(1, 2), eye, atol=1e-5)
    assert torch.allclose(torch.det(f.rot), torch.ones(f.n_res), atol=1e-5)
    bb = torch.tensor(
        np.array([[r.backbone[k] for k in ("N", "CA", "C")] for r in parsed.residues])
    )
    bb = bb.float()
    n, ca, c = (to_local(bb[:, k], f.rot, f.trans) for k in range(3))
    assert torch.allclose(ca, torch.zeros_like(ca), atol=1e-4)
    assert torch.allclose(c[:, 1:], torch.zeros_like(c[:, 1:]), atol=1e-4) and (c[:, 0] > 1.0).all()
    assert torch.allclose(n[:, 2], torch.zeros_like(n[:, 2]), atol=1e-4) and (n[:, 1] > 0).all()


@pytest.mark.parametrize("name", FILES)
def test_chi_matches_gemmi_dihedrals_for_every_altloc(name):
    parsed = read_structure(data_file(name))
    f = featurize(parsed)
    checked = 0
    for i, rec in enumerate(parsed.residues):
        res = parsed.structure[0][rec.chain_idx][rec.res_idx]
        renames = residues.ATOM_RENAMES.get(res.name, {})
        for a, conf in enumerate(rec.conformers):
            for d, names in enumerate(residues.CHI_ATOMS.get(rec.parent, [])):
                if not f.chi_mask[i, a, d]:
                    continue
                atoms = [
                    _gemmi_atom(res, n, conf.altloc, rec.primary_altloc, renames) for n in names
                ]
                ref = gemmi.calculate_dihedral(*(x.pos for x in atoms))
                assert abs(math.remainder(f.chi[i, a, d].item() - ref, 2 * math.pi)) < 1e-4
                checked += 1
    assert checked > 50


def _gemmi_atom(res, name, altloc, primary, renames):
    """The atom a crystallographer would take: this altloc's, else blank, else the primary's."""
    inverse = {v: k for k, v in renames.items()}
    cands = [a for a in res if a.name == inverse.get(name, name)]
    for want in (altloc, "\0", primary):
        for a in cands:
            if (a.altloc if a.has_altloc() else "\0") == (want or "\0"):
                return a
    return cands[0]


def test_known_altloc_residue_features():
    f = load_features(data_file("2igd.pdb.gz"))
    i = [k for k, (c, r, _) in enumerate(f.residue_ids()) if (c, r) == ("A", 5)][
        0
    ]  # VAL 5, A 0.55 / B 0.45
    assert f.resname[i] == "VAL" and f.aatype[i] == residues.TOKEN["VAL"]
    assert f.n_obs[i] == 2 and f.in_r[i]
    assert f.occ[i, :2].tolist() == pytest.approx([0.55, 0.45])
    assert f.chi_mask[i, :2, 0].all() and not f.chi_mask[i, :, 1:].any()


def test_backbone_torsions_match_gemmi():
    parsed = read_structure(data_file("2igd.pdb.gz"))
    f = featurize(parsed)
    chain = parsed.structure[0][0]
    for i, rec in enumerate(parsed.residues[1:-1], start=1):
        res = chain[rec.res_idx]
        phi, psi = gemmi.calculate_phi_psi(
            chain.previous_residue(res), res, chain.next_residue(res)
        )
        if f.bb_mask[i, 0] and rec.primary_altloc == "":
            assert abs(math.remainder(f.bb_angles[i, 0].item() - phi, 2 * math.pi)) < 1e-4
        if f.bb_mask[i, 1] and rec.primary_altloc == "":
            assert abs(math.remainder(f.bb_angles[i, 1].item() - psi, 2 * math.pi)) < 1e-4
    assert (
        not f.bb_mask[0, 0] and not f.bb_mask[-1, 1]
    )  # no φ before the first, no ψ after the last


def _moved(st: gemmi.Structure, seed: int) -> gemmi.Structure:
    g = torch.Generator().manual_seed(seed)
    rot = random_rotation(g).numpy()
    shift = (torch.rand(3, generator=g, dtype=torch.float64) * 200 - 100).numpy()
    tr = gemmi.Transform(gemmi.Mat33(rot.tolist()), gemmi.Vec3(*shift.tolist()))
    moved = st.clone()
    moved[0].transform_pos_and_adp(tr)
    return moved


def _assert_same_features(a, b, atol=1e-4):
    assert a.residue_ids() == b.residue_ids() and a.resname == b.resname
    for key in ("aatype", "chi_mask", "n_obs", "chain_index", "resnum", "chain_break", "bb_mask"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key
    assert torch.allclose(a.occ, b.occ, atol=atol)
    for key in ("chi", "bb_angles"):
        diff = torch.remainder(getattr(a, key) - getattr(b, key) + math.pi, 2 * math.pi) - math.pi
        assert diff.abs().max() < atol, key


def test_features_are_invariant_to_a_rigid_motion():
    path = data_file("1a2p_qfit.pdb.gz")
    st = gemmi.read_structure(str(path))
    a = load_features(path)
    b = featurize(from_gemmi(_moved(st, seed=3), "moved.pdb"))  # in memory: no 3-decimal rounding
    _assert_same_features(a, b, atol=1e-4)
    assert torch.equal(a.environment, b.environment) and a.environment.sum() > 0
    # Frames move with the structure: relative frames (what the model sees) are unchanged.
    rel_a = a.rot[:, None] @ a.rot[None, :5].transpose(-1, -2)
    rel_b = b.rot[:, None] @ b.rot[None, :5].transpose(-1, -2)
    assert torch.allclose(rel_a, rel_b, atol=1e-4)
    # Written to a PDB file, the moved structure still agrees to the file's precision.
    c = load_features(_moved(st, seed=3).make_pdb_string().encode(), name="moved.pdb")
    _assert_same_features(a, c, atol=5e-3)


def test_cif_and_pdb_forms_give_the_same_features(tmp_path):
    path = data_file("2igd.pdb.gz")
    st = gemmi.read_structure(str(path))
    cif = tmp_path / "2igd.cif"
    st.make_mmcif_document().write_file(str(cif))
    a, b = load_features(path), load_features(cif)
    _assert_same_features(a, b, atol=1e-5)
    assert torch.allclose(a.rot, b.rot, atol=1e-5) and torch.allclose(a.trans, b.trans, atol=1e-5)


def test_select_crops_and_marks_gaps():
    f = load_features(data_file("2igd.pdb.gz"))
    crop = f.select(torch.tensor([10, 11, 12, 20, 21]))
    assert crop.n_res == 5 and crop.resnum.tolist() == f.resnum[[10, 11, 12, 20, 21]].tolist()
    assert crop.chain_break.tolist() == [True, False, False, True, False]


def test_virtual_cb_lies_on_the_observed_cb():
    """The ideal Cβ from the frame against the real CB atoms of a real structure."""
    parsed = read_structure(data_file("2igd.pdb.gz"))
    f = featurize(parsed)
    observed = [(i, r.conformers[0].atoms.get("CB")) for i, r in enumerate(parsed.residues)]
    idx = [i for i, cb in observed if cb is not None]
    real = torch.tensor(np.array([cb for _, cb in observed if cb is not None])).float()
    dev = (virtual_cb(f.rot, f.trans)[idx] - real).norm(dim=-1)
    assert len(idx) > 40
    assert float(dev.median()) < 0.15 and float(dev.max()) < 0.6


def test_burial_counts_match_a_brute_force_count():
    f = load_features(data_file("2igd.pdb.gz"))
    cb = virtual_cb(f.rot, f.trans).double().numpy()
    ca = f.trans.double().numpy()
    expected = np.zeros((f.n_res, 3))
    for i in range(f.n_res):
        for j in range(f.n_res):
            if i == j:
                continue
            d_cb = np.linalg.norm(cb[i] - cb[j])
            expected[i, 0] += d_cb < 8.0
            expected[i, 1] += d_cb < 10.0
            on_cb_side = np.dot(cb[i] - ca[i], ca[j] - ca[i]) > 0
            expected[i, 2] += np.linalg.norm(ca[i] - ca[j]) < 13.0 and on_cb_side
    assert np.array_equal(f.burial.numpy(), expected)
    # Chunking is only a memory bound: any chunk size gives the same counts.
    assert torch.equal(burial_counts(f.rot, f.trans, chunk=7), f.burial)


@pytest.mark.parametrize("name", ["2igd.pdb.gz", "1b5f.cif.gz"])
def test_resolution_comes_from_the_file_header(name):
    path = data_file(name)
    expected = header_resolution(gzip.open(path, "rt").read())
    f = load_features(path)
    assert torch.allclose(f.resolution, torch.full((f.n_res,), expected))


def test_a_header_without_resolution_reads_as_unknown(tmp_path):
    path = data_file("2igd.pdb.gz")
    lines = gzip.open(path, "rt").read().splitlines(keepends=True)
    bare = tmp_path / "2igd-bare.pdb"  # the coordinates alone, as many programs write them
    bare.write_text("".join(x for x in lines if x.startswith(("CRYST1", "ATOM", "HETATM", "TER"))))
    a, b = load_features(path), load_features(bare)
    assert read_structure(bare).resolution is None
    assert torch.equal(b.resolution, torch.zeros(b.n_res))
    _assert_same_features(a, b)  # only the resolution differs
