"""Single and pair embeddings (SPEC §2–§3). Everything here is SE(3)-invariant by construction:
geometry enters only as distances and as positions/axes of j expressed in i's frame.
"""

import torch
from torch import nn

from ..config import ModelConfig
from ..environment import N_ENV
from ..features import Features
from ..neighbours import nearest
from ..residues import N_TOKENS
from .ipa import keys

# Largest structure whose lists a GPU computes from all pairs ([N, N] fp32: 64 MB at 4096).
GPU_DENSE_MAX = 4096


def neighbours(trans: torch.Tensor, max_neighbours: int) -> torch.Tensor | None:
    """Indices [N, M] of each residue's M nearest residues by CA distance (itself included),
    ordered by (distance, index); or None when every residue attends to every other
    (max_neighbours 0 or N ≤ max_neighbours).

    From a k-d tree (neighbours.nearest): time N log N and memory N·M, never N², so the lists
    of 50,000 residues take a fraction of a second. The network's output depends on each row's
    set, not its order (attention sums over the row; tests/test_neighbour_lists.py).
    """
    n = trans.shape[0]
    if max_neighbours <= 0 or n <= max_neighbours:
        return None
    if trans.is_cuda and n <= GPU_DENSE_MAX:
        # Training crops on a GPU keep the all-pairs path: no copy to the host every step. Same
        # sets as the tree's wherever no two distances tie within float32 rounding at the M-th
        # place; the order within a row differs, which the output does not see.
        return torch.cdist(trans, trans).topk(max_neighbours, dim=-1, largest=False).indices
    nbr = nearest(trans.detach().cpu().double().numpy(), max_neighbours)  # [N, M]
    return torch.from_numpy(nbr).to(trans.device)


class SingleEmbedding(nn.Module):
    """Amino-acid token, plus sin/cos of φ/ψ/ω (masked where undefined), burial counts,
    environment counts and the header's resolution when configured."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.aatype = nn.Embedding(N_TOKENS, cfg.d_s)
        self.use_angles = cfg.use_backbone_angles
        if self.use_angles:
            self.angles = nn.Linear(9, cfg.d_s)  # sin, cos and mask for φ, ψ, ω
        self.use_burial = cfg.use_burial
        if self.use_burial:
            self.burial = nn.Linear(3, cfg.d_s)
        self.use_environment = cfg.use_environment
        if self.use_environment:
            self.environment = nn.Linear(N_ENV, cfg.d_s)
        self.use_resolution = cfg.use_resolution
        if self.use_resolution:
            self.resolution = nn.Linear(2, cfg.d_s)  # known, and Å from 2 where known
        self.norm = nn.LayerNorm(cfg.d_s)

    def forward(self, feats: Features) -> torch.Tensor:
        s = self.aatype(feats.aatype)  # [N, C_s]
        if self.use_angles:
            mask = feats.bb_mask.to(s.dtype)  # [N, 3]
            ang = feats.bb_angles.to(s.dtype)
            x = torch.cat([torch.sin(ang) * mask, torch.cos(ang) * mask, mask], dim=-1)  # [N, 9]
            s = s + self.angles(x)
        if self.use_burial:
            s = s + self.burial(counts_input(feats.burial.to(s.dtype)))  # [N, C_s]
        if self.use_environment:
            s = s + self.environment(counts_input(feats.environment.to(s.dtype)))  # [N, C_s]
        if self.use_resolution:
            s = s + self.resolution(resolution_input(feats.resolution).to(s.dtype))  # [N, C_s]
        return self.norm(s)


def counts_input(counts: torch.Tensor) -> torch.Tensor:
    """Burial and environment counts as the network reads them: counts run 0–60, and log1p
    keeps a buried residue from dwarfing the token embedding."""
    return torch.log1p(counts)


def resolution_input(resolution: torch.Tensor) -> torch.Tensor:
    """[N, 2] from resolution [N] (Å, 0 unknown): (known, known × (Å − 2)), so an unknown
    resolution is one learned offset rather than a pretend value."""
    known = (resolution > 0).float()
    return torch.stack([known, known * (resolution.float() - 2.0)], dim=-1)


class PairEmbedding(nn.Module):
    """Relative position within a chain (clipped, plus an "other chain" bin), CA–CA distance in
    radial basis functions, and optionally j's CA direction and axes in i's frame.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.clip = cfg.relpos_clip
        self.relpos = nn.Embedding(2 * cfg.relpos_clip + 2, cfg.d_z)
        self.register_buffer(
            "rbf_centres", torch.linspace(0.0, cfg.rbf_max, cfg.n_rbf), persistent=False
        )
        self.rbf_width = cfg.rbf_max / max(cfg.n_rbf - 1, 1)
        self.use_frames = cfg.use_frame_pair_features
        # RBFs, and the unit direction of CA_j and R_i R_jᵀ when used, in one Linear.
        self.geometry = nn.Linear(cfg.n_rbf + (3 + 9 if self.use_frames else 0), cfg.d_z)
        self.norm = nn.LayerNorm(cfg.d_z)

    def forward(self, feats: Features, nbr: torch.Tensor | None) -> torch.Tensor:
        """Pair features [N, M, C_z]: M = N (nbr None) or nbr's width."""
        i_side = lambda x: x[:, None]  # noqa: E731  [N, 1, ...]
        j_side = lambda x: keys(x, nbr) if nbr is not None else x[None]  # noqa: E731  [1|N, M, ...]
        same_chain = i_side(feats.chain_index) == j_side(feats.chain_index)  # [N, M]
        offset = (j_side(feats.resnum) - i_side(feats.resnum)).clamp(
            -self.clip, self.clip
        ) + self.clip
        other_chain = torch.full_like(offset, 2 * self.clip + 1)
        z = self.relpos(torch.where(same_chain, offset, other_chain))  # [N, M, C_z]

        delta = j_side(feats.trans) - i_side(feats.trans)  # [N, M, 3] global, Å
        dist = delta.norm(dim=-1, keepdim=True)  # [N, M, 1]
        # Exponent capped at 60: far pairs would otherwise give denormal floats, which make every
        # later matmul over them (and its gradient) many times slower on x86 CPUs.
        x2 = ((dist - self.rbf_centres) / self.rbf_width).square().clamp(max=60.0)
        geometry = [torch.exp(-x2)]  # [N, M, n_rbf]
        if self.use_frames:
            rot = feats.rot
            direction = torch.einsum("imj,ikj->imk", delta, rot) / dist.clamp_min(1e-3)  # [N, M, 3]
            rel_rot = torch.einsum(
                "iab,imcb->imac", rot, j_side(rot).expand(*delta.shape[:2], 3, 3)
            )
            geometry += [direction, rel_rot.flatten(-2)]  # [N, M, 3], [N, M, 9]
        return self.norm(z + self.geometry(torch.cat(geometry, dim=-1)))
