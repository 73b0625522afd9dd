"""geometry.py against independent references: gemmi's dihedrals, scipy's rotations, numpy
angle arithmetic, and the frame convention stated in the module docstring."""

import math

import gemmi
import numpy as np
import pytest
import torch
from conftest import data_file
from scipy.spatial.transform import Rotation

from qfitlatent.geometry import (
    backbone_frames,
    circ_diff,
    dihedral,
    random_rotation,
    rotate_about,
    rotation_matrix,
    to_global,
    to_local,
    virtual_cb,
    wrap,
)

G = torch.Generator().manual_seed(11)


def _points(*shape):
    return torch.randn(*shape, 3, generator=G, dtype=torch.float64) * 3


def test_dihedral_matches_gemmi_including_the_sign():
    a, b, c, d = (_points(200) for _ in range(4))
    ours = dihedral(a, b, c, d).numpy()
    ref = [
        gemmi.calculate_dihedral(*(gemmi.Position(*p[i].tolist()) for p in (a, b, c, d)))
        for i in range(200)
    ]
    np.testing.assert_allclose(ours, ref, atol=1e-9)
    assert (ours > 0).any() and (ours < 0).any()


def test_frames_follow_the_stated_convention():
    """CA at the origin, C on +x, N in the xy-plane with y > 0; R is a proper rotation."""
    n, ca, c = _points(50), _points(50), _points(50)
    rot, trans = backbone_frames(n, ca, c)
    eye = torch.eye(3, dtype=torch.float64).expand(50, 3, 3)
    torch.testing.assert_close(rot @ rot.transpose(-1, -2), eye)
    torch.testing.assert_close(torch.det(rot), torch.ones(50, dtype=torch.float64))
    assert torch.equal(trans, ca)
    c_local, n_local = to_local(c, rot, trans), to_local(n, rot, trans)
    assert (c_local[:, 0] > 0).all()
    torch.testing.assert_close(c_local[:, 1:], torch.zeros(50, 2, dtype=torch.float64))
    assert (n_local[:, 1] > 0).all()
    torch.testing.assert_close(n_local[:, 2], torch.zeros(50, dtype=torch.float64))
    x = _points(50)
    torch.testing.assert_close(to_global(to_local(x, rot, trans), rot, trans), x)


def test_frames_move_with_the_structure():
    """Frames of a rotated and shifted backbone are the rotated frames: R' = R Qᵀ, t' = Q t + s."""
    n, ca, c = _points(20), _points(20), _points(20)
    q = random_rotation(G)
    shift = torch.tensor([5.0, -3.0, 12.0], dtype=torch.float64)
    move = lambda x: x @ q.T + shift  # noqa: E731
    rot, trans = backbone_frames(n, ca, c)
    rot2, trans2 = backbone_frames(move(n), move(ca), move(c))
    torch.testing.assert_close(rot2, rot @ q.T)
    torch.testing.assert_close(trans2, move(trans))
    torch.testing.assert_close(virtual_cb(rot2, trans2), move(virtual_cb(rot, trans)))


def test_virtual_cb_has_ideal_bond_and_angles():
    n = torch.tensor(
        [[1.458 * math.cos(math.radians(111.2)), 1.458 * math.sin(math.radians(111.2)), 0.0]],
        dtype=torch.float64,
    )
    ca = torch.zeros(1, 3, dtype=torch.float64)
    c = torch.tensor([[1.525, 0.0, 0.0]], dtype=torch.float64)
    cb = virtual_cb(*backbone_frames(n, ca, c))[0]
    assert abs(float(cb.norm()) - 1.52) < 0.01
    for other in (n[0], c[0]):
        cos = float(torch.dot(cb, other) / (cb.norm() * other.norm()))
        assert abs(math.degrees(math.acos(cos)) - 109.5) < 2.0
    # L-amino acid handedness: the side of the N–CA–C plane every real CB of 2igd is on.
    st = gemmi.read_structure(str(data_file("2igd.pdb.gz")))
    real = []
    for res in st[0][0]:
        if all(res.find_atom(a, "*") for a in ("N", "CA", "C", "CB")):
            p = {a: np.array(res.find_atom(a, "*").pos.tolist()) for a in ("N", "CA", "C", "CB")}
            real.append(np.dot(np.cross(p["N"] - p["CA"], p["C"] - p["CA"]), p["CB"] - p["CA"]))
    assert len(real) > 40 and all(x > 0 for x in real)
    assert float(torch.dot(torch.linalg.cross(n[0], c[0]), cb)) > 0


def test_rotation_matrix_matches_scipy_and_rotate_about_keeps_the_axis():
    axis, angle = _points(30), torch.rand(30, generator=G, dtype=torch.float64) * 6 - 3
    unit = axis / axis.norm(dim=-1, keepdim=True)
    ref = Rotation.from_rotvec((unit * angle[:, None]).numpy()).as_matrix()
    np.testing.assert_allclose(rotation_matrix(axis, angle).numpy(), ref, atol=1e-12)
    origin, pts = _points(30), _points(30, 5)
    out = rotate_about(pts, origin, axis, angle)  # [30, 5, 3]
    # Distances to the axis line and positions along it are unchanged.
    rel, rel2 = pts - origin[:, None], out - origin[:, None]
    along = (rel * unit[:, None]).sum(-1)
    torch.testing.assert_close((rel2 * unit[:, None]).sum(-1), along)
    radial = (rel - along[..., None] * unit[:, None]).norm(dim=-1)
    radial2 = (rel2 - along[..., None] * unit[:, None]).norm(dim=-1)
    torch.testing.assert_close(radial2, radial)


@pytest.mark.parametrize("pi_periodic", [False, True])
def test_circ_diff_and_wrap_against_brute_force(pi_periodic):
    a = torch.rand(500, generator=G, dtype=torch.float64) * 40 - 20
    b = torch.rand(500, generator=G, dtype=torch.float64) * 40 - 20
    period = math.pi if pi_periodic else 2 * math.pi
    ref = [
        min(abs(x - y + k * period) for k in range(-20, 21))
        for x, y in zip(a.tolist(), b.tolist(), strict=True)
    ]
    np.testing.assert_allclose(circ_diff(a, b, pi_periodic).numpy(), ref, atol=1e-9)
    w = wrap(a)
    assert ((w > -math.pi) & (w <= math.pi)).all()
    np.testing.assert_allclose(np.cos(w.numpy()), np.cos(a.numpy()), atol=1e-12)
    np.testing.assert_allclose(np.sin(w.numpy()), np.sin(a.numpy()), atol=1e-12)


def test_random_rotations_are_proper_and_cover_the_sphere():
    qs = torch.stack([random_rotation(G) for _ in range(2000)])  # [2000, 3, 3]
    torch.testing.assert_close(torch.det(qs), torch.ones(2000, dtype=torch.float64))
    # A uniform rotation sends a fixed vector to a uniform point on the sphere: mean ≈ 0,
    # second moment ≈ I/3 (both within a few standard errors for 2000 draws).
    v = qs @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    assert float(v.mean(0).abs().max()) < 0.06
    second = (v[:, :, None] * v[:, None, :]).mean(0)
    assert float((second - torch.eye(3, dtype=torch.float64) / 3).abs().max()) < 0.04
