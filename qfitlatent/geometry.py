"""Pure rigid-body and angle maths (torch), shared by the data code, the model and the builder.

Shape alphabet used across the package: N residues, A altlocs, K mixture components, D = 4 χ,
H heads, C channels, P points, S samples; `...` for leading dims.

Frame convention (SPEC §2), stated once: a frame is (R [..., 3, 3], t [..., 3]) where the rows
of R are the local axes x̂, ŷ, ẑ and t is the CA position. Then

    local  = (x - t) @ R.T
    global = local @ R + t

so CA is the origin, C lies on +x and N in the xy-plane with y > 0.
"""

import math

import torch

TWO_PI = 2.0 * math.pi


def backbone_frames(
    n: torch.Tensor, ca: torch.Tensor, c: torch.Tensor, eps: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone frames from N, CA, C.

    Args:
        n, ca, c: [..., 3] atom positions.
    Returns:
        R: [..., 3, 3] rotations, rows are the local axes; t: [..., 3], the CA positions.
    """
    x = c - ca
    x = x / (x.norm(dim=-1, keepdim=True) + eps)
    z = torch.cross(x, n - ca, dim=-1)
    z = z / (z.norm(dim=-1, keepdim=True) + eps)
    y = torch.cross(z, x, dim=-1)
    return torch.stack([x, y, z], dim=-2), ca


def _ideal_cb_local() -> torch.Tensor:
    """Cβ of an ideal L-residue in its backbone frame [3], Å.

    From ideal N, CA, C (Engh & Huber: N–CA 1.458, CA–C 1.525 Å, N–CA–C 111.2°) with the
    linear combination that places Cβ at 1.52 Å with tetrahedral angles (the virtual Cβ of
    trRosetta and ProteinMPNN).
    """
    ang = math.radians(111.2)
    n = torch.tensor([1.458 * math.cos(ang), 1.458 * math.sin(ang), 0.0], dtype=torch.float64)
    ca = torch.zeros(3, dtype=torch.float64)
    c = torch.tensor([1.525, 0.0, 0.0], dtype=torch.float64)
    b, cc = ca - n, c - ca
    a = torch.linalg.cross(b, cc)
    return -0.58273431 * a + 0.56802827 * b - 0.54067466 * cc + ca


CB_LOCAL = _ideal_cb_local()  # [3]


def virtual_cb(rot: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """Ideal Cβ positions [..., 3] from frames (rot [..., 3, 3], trans [..., 3]); defined for
    glycine too, so every residue has a side-chain direction."""
    return to_global(CB_LOCAL.to(rot.dtype), rot, trans)


# Burial counts (Å): virtual Cβ within 8 and 10 of Cβ_i, and CA within 13 in the half-space
# that Cβ_i points into (half-sphere exposure, Hamelryck 2005). A side chain with many
# neighbours on its own side is packed; one with few is exposed and freer to move.
BURIAL_RADII = (8.0, 10.0, 13.0)


def burial_counts(rot: torch.Tensor, trans: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
    """[N, 3] counts (float) of other residues around each residue's virtual Cβ: Cβ within
    8 Å, Cβ within 10 Å, CA within 13 Å on the Cβ side. Invariant to rigid motions.

    rot [N, 3, 3], trans [N, 3]. Neighbours come from a k-d tree (neighbours.pairs_within), so
    time and memory grow linearly with N; `chunk` (residues per step) only bounds memory.
    """
    import numpy as np

    from .neighbours import count_per_row, pairs_within

    cb = virtual_cb(rot, trans).detach().cpu().double().numpy()  # [N, 3]
    ca = trans.detach().cpu().double().numpy()  # [N, 3]
    up = cb - ca  # [N, 3] CA→Cβ
    out = np.zeros((ca.shape[0], 3))
    for rows, i, j, d in pairs_within(cb, cb, BURIAL_RADII[1], chunk):
        other = i != j  # [E]
        out[rows, 0] = count_per_row(rows, i[other & (d < BURIAL_RADII[0])])
        out[rows, 1] = count_per_row(rows, i[other])
    for rows, i, j, _ in pairs_within(ca, ca, BURIAL_RADII[2], chunk):
        side = np.einsum("ek,ek->e", up[i], ca[j] - ca[i]) > 0  # [E]
        out[rows, 2] = count_per_row(rows, i[side & (i != j)])
    return torch.from_numpy(out).float()


def to_local(x: torch.Tensor, rot: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """Global points [..., 3] into the frame (rot [..., 3, 3], trans [..., 3])."""
    return torch.einsum("...j,...ij->...i", x - trans, rot)


def to_global(x: torch.Tensor, rot: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """Local points [..., 3] of the frame (rot [..., 3, 3], trans [..., 3]) into global ones."""
    return torch.einsum("...i,...ij->...j", x, rot) + trans


def dihedral(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Dihedral angle a-b-c-d in radians, (−π, π], IUPAC sign (as gemmi.calculate_dihedral).

    Args:
        a, b, c, d: [..., 3] positions.
    Returns:
        [...] angles.
    """
    b0 = a - b
    b1 = c - b
    b2 = d - c
    b1n = b1 / b1.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    v = b0 - (b0 * b1n).sum(-1, keepdim=True) * b1n
    w = b2 - (b2 * b1n).sum(-1, keepdim=True) * b1n
    x = (v * w).sum(-1)
    y = (torch.cross(b1n, v, dim=-1) * w).sum(-1)
    return torch.atan2(y, x)


def wrap(angle: torch.Tensor) -> torch.Tensor:
    """Angles into (−π, π]."""
    return torch.atan2(torch.sin(angle), torch.cos(angle))


def circ_diff(
    a: torch.Tensor, b: torch.Tensor, pi_periodic: torch.Tensor | bool = False
) -> torch.Tensor:
    """Absolute circular distance |a − b| on the circle, in [0, π].

    Where `pi_periodic` is True the angles are taken modulo π, so the distance is in [0, π/2].
    """
    d = wrap(a - b).abs()
    if isinstance(pi_periodic, bool) and not pi_periodic:
        return d
    folded = torch.minimum(d, math.pi - d)
    return torch.where(torch.as_tensor(pi_periodic, device=d.device), folded, d)


def rotation_matrix(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotation by `angle` [...] about unit-normalised `axis` [..., 3] (Rodrigues), [..., 3, 3].

    Acts on column vectors: x' = M @ x.
    """
    k = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    kx, ky, kz = k.unbind(-1)
    zero = torch.zeros_like(kx)
    K = torch.stack(
        [
            torch.stack([zero, -kz, ky], -1),
            torch.stack([kz, zero, -kx], -1),
            torch.stack([-ky, kx, zero], -1),
        ],
        -2,
    )  # [..., 3, 3]
    s = torch.sin(angle)[..., None, None]
    c = torch.cos(angle)[..., None, None]
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device).expand_as(K)
    return eye + s * K + (1 - c) * (K @ K)


def rotate_about(
    points: torch.Tensor, origin: torch.Tensor, axis: torch.Tensor, angle
) -> torch.Tensor:
    """Rotate points [..., P, 3] by `angle` about the line through origin [..., 3]
    along axis [..., 3]."""
    angle = torch.as_tensor(angle, dtype=points.dtype, device=points.device)
    m = rotation_matrix(axis, angle)  # [..., 3, 3]
    return (points - origin[..., None, :]) @ m.transpose(-1, -2) + origin[..., None, :]


def random_rotation(generator: torch.Generator | None = None, dtype=torch.float64) -> torch.Tensor:
    """A uniformly random proper rotation [3, 3] (QR of a Gaussian matrix, sign-fixed)."""
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=dtype))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def place_atom(a, b, c, bond: float, angle: float, torsion) -> torch.Tensor:
    """Position of d with |c–d| = bond, angle b–c–d = angle and dihedral a–b–c–d = torsion.

    Args:
        a, b, c: [..., 3] positions; bond in Å; angle in radians; torsion [...] or a number,
            radians.
    Returns:
        [..., 3] positions (the natural extension reference frame, NeRF).
    """
    torsion = torch.as_tensor(torsion, dtype=c.dtype).expand(c.shape[:-1])
    bc = c - b
    bc = bc / bc.norm(dim=-1, keepdim=True)
    n = torch.linalg.cross(b - a, bc)
    n = n / n.norm(dim=-1, keepdim=True)
    m = torch.stack([bc, torch.linalg.cross(n, bc), n], dim=-1)  # [..., 3, 3], columns are axes
    local = torch.stack(
        [
            torch.full_like(torsion, -bond * math.cos(angle)),
            bond * math.sin(angle) * torch.cos(torsion),
            bond * math.sin(angle) * torch.sin(torsion),
        ],
        dim=-1,
    )  # [..., 3]
    return c + (m @ local[..., None])[..., 0]
