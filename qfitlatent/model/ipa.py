"""Invariant Point Attention with fixed frames (SPEC §3), and the block around it.

The pair bias b_hij = Linear(z_ij) of every block is computed by the network in one matmul
(z is fixed across blocks) and passed in as `bias` [N, H, M].
Keys can be all residues (`nbr=None`, dense matmuls) or each query's own neighbour list
(`nbr` [N, M] indices, gathered): the second keeps memory at O(N·M) for very large structures.
Pair tensors follow the same layout, [N, N, ...] or [N, M, ...].
Positions are in nanometres inside IPA (AlphaFold2): callers pass `trans` in Å.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig

# Query rows per attention pass with neighbour lists: a pass gathers [R, H, M, 22] keys and
# [R, H, M, 32] values (fp32). With the shipped weights at 50,041 residues the forward pass's
# peak grew by 3.9 GB in one pass and by 2.0 GB in passes of 4096 rows (and took 29 against
# 21 s of CPU). Below this many residues the pass is whole, as before.
QUERY_CHUNK = 4096


def keys(x: torch.Tensor, nbr: torch.Tensor | None) -> torch.Tensor:
    """Per-residue tensor [N, ...] as seen by each query: [N, ...] (all) or [N, M, ...] (nbr)."""
    if nbr is None:
        return x
    # index_select: its backward is index_add, several times faster on CPU than x[nbr]'s.
    return x.index_select(0, nbr.reshape(-1)).view(*nbr.shape, *x.shape[1:])


def head_keys(x: torch.Tensor, nbr: torch.Tensor | None) -> torch.Tensor:
    """Per-head keys x [N, H, X] as each query sees them: x (all) or [R, H, M, X] (nbr [R, M],
    the lists of R query rows).

    Gathered straight into query-head-major order, so nothing downstream needs a permuted copy.
    """
    if nbr is None:
        return x
    n, h, width = x.shape
    rows = nbr[:, None, :] * h + torch.arange(h, device=x.device)[None, :, None]  # [R, H, M]
    return x.reshape(n * h, width).index_select(0, rows.reshape(-1)).view(*rows.shape, width)


def pair_dot(q: torch.Tensor, k: torch.Tensor, nbr: torch.Tensor | None) -> torch.Tensor:
    """q [N, H, X] · keys k [N, H, X] (all) or [N, H, M, X] (head_keys). Returns [N, H, M]."""
    if nbr is None:
        return torch.einsum("ihx,jhx->ihj", q, k)
    # Elementwise: a batched matmul of 1-row matrices is slower, and its backward slower still.
    return (q[:, :, None, :] * k).sum(-1)


def aggregate(a: torch.Tensor, v: torch.Tensor, nbr: torch.Tensor | None) -> torch.Tensor:
    """Σ_j a_hij v_hj: a [N, H, M], v [N, H, X] (all) or [N, H, M, X] (head_keys). → [N, H, X]."""
    if nbr is None:
        return torch.einsum("ihj,jhx->ihx", a, v)
    return (a[..., None] * v).sum(-2)


def local_to_global(p: torch.Tensor, rot: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """Points p [N, H, P, 3] in residue frames into global coordinates (x = local @ R + t)."""
    return torch.einsum("nhpi,nij->nhpj", p, rot) + trans[:, None, None, :]


def global_to_local(p: torch.Tensor, rot: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """Global points p [N, H, P, 3] into each residue's frame (local = (x - t) @ R.T)."""
    return torch.einsum("nhpj,nij->nhpi", p - trans[:, None, None, :], rot)


class InvariantPointAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        h, c, pqk, pv = cfg.n_heads, cfg.c_head, cfg.n_qk_points, cfg.n_v_points
        self.h, self.c, self.pqk, self.pv = h, c, pqk, pv
        self.linear_qkv = nn.Linear(cfg.d_s, 3 * h * c)
        self.linear_qk_points = nn.Linear(cfg.d_s, 2 * h * pqk * 3)
        self.linear_v_points = nn.Linear(cfg.d_s, h * pv * 3)
        # softplus(γ) = 1 at init: log(e - 1).
        self.head_weights = nn.Parameter(torch.full((h,), math.log(math.e - 1.0)))
        self.w_l = math.sqrt(1.0 / 3.0)
        self.w_c = math.sqrt(2.0 / (9.0 * pqk))
        out_dim = h * (c + cfg.d_z + pv * 3 + pv)
        self.linear_out = nn.Linear(out_dim, cfg.d_s)

    def _project(self, s, rot, trans_nm):
        n, h = s.shape[0], self.h
        # [N, H, C] each
        q, k, v = self.linear_qkv(s).view(n, h, 3, self.c).unbind(2)
        # Point geometry in fp32 even under autocast: squared distances lose too much in bf16.
        with torch.autocast(device_type=s.device.type, enabled=False):
            qk_pts = self.linear_qk_points(s.float()).view(n, h, 2 * self.pqk, 3)
            v_pts = self.linear_v_points(s.float()).view(n, h, self.pv, 3)
            qk_pts = local_to_global(qk_pts, rot, trans_nm)  # [N, H, 2P, 3]
            v_pts = local_to_global(v_pts, rot, trans_nm)  # [N, H, Pv, 3]
        q_pts, k_pts = qk_pts.split(self.pqk, dim=2)  # [N, H, P, 3] each
        return q, k, v, q_pts, k_pts, v_pts

    def _extend(self, q, k, q_pts, k_pts):
        """Queries and keys [N, H, C + 3P + 2] whose dot product is the logit (SPEC §3).

        −γ w_C/2 |q_p − k_p|² = γ w_C q_p·k_p − γ w_C/2 |q_p|² − γ w_C/2 |k_p|², so queries and
        keys extended by their points and squared norms give scalar and point terms in a single
        matmul: no [N, M, H, P, 3] differences and one pass over [N, H, M] instead of eight.
        fp32 (bf16 would lose the squared distances).
        """
        n, h = q.shape[:2]
        with torch.autocast(device_type=q.device.type, enabled=False):
            gamma = F.softplus(self.head_weights)[None, :, None] * self.w_c  # [1, H, 1]
            qp = q_pts.reshape(n, h, -1)  # [N, H, P*3]
            kp = k_pts.reshape(n, h, -1)
            one = qp.new_ones(n, h, 1)
            q_ext = self.w_l * torch.cat(
                [
                    q.float() / math.sqrt(self.c),
                    gamma * qp,
                    -0.5 * gamma * qp.square().sum(-1, keepdim=True),
                    one,
                ],
                dim=-1,
            )  # [N, H, C + 3P + 2]
            k_ext = torch.cat(
                [k.float(), kp, one, -0.5 * gamma * kp.square().sum(-1, keepdim=True)], dim=-1
            )
        return q_ext, k_ext

    def _weights(self, q_ext, k_ext, bias, nbr):
        """Attention [R, H, M] of R query rows: q_ext [R, H, X] and bias [R, H, M] of those rows,
        k_ext [N, H, X] of every residue, nbr [R, M] those rows' neighbour lists or None."""
        with torch.autocast(device_type=q_ext.device.type, enabled=False):
            logits = pair_dot(q_ext, head_keys(k_ext, nbr), nbr) + self.w_l * bias.float()
            return torch.softmax(logits, dim=-1)  # [R, H, M]

    def attention(self, s, bias, rot, trans, nbr=None) -> torch.Tensor:
        """Attention weights [N, H, M] (for inspection and tests)."""
        q, k, _, q_pts, k_pts, _ = self._project(s, rot, trans / 10.0)
        return self._weights(*self._extend(q, k, q_pts, k_pts), bias, nbr)

    def forward(self, s, z, bias, rot, trans, nbr=None) -> torch.Tensor:
        """The update [N, C_s] of s [N, C_s].

        z [N, M, C_z], bias [N, H, M], rot [N, 3, 3], trans [N, 3] Å, nbr [N, M] or None.
        """
        n, h, c = s.shape[0], self.h, self.c
        trans_nm = trans / 10.0
        q, k, v, q_pts, k_pts, v_pts = self._project(s, rot, trans_nm)
        q_ext, k_ext = self._extend(q, k, q_pts, k_pts)
        with torch.autocast(device_type=s.device.type, enabled=False):
            # Scalar and point values aggregated together: one matmul over the attention.
            values = torch.cat([v.float(), v_pts.reshape(n, h, -1)], dim=-1)  # [N, H, C + Pv*3]
        # Query rows a pass at a time with neighbour lists: every row's keys and values are
        # gathered ([R, H, M, X]), the largest temporaries of the forward pass; whole, they would
        # grow to GBs on huge structures. Rows are independent, so chunks give the same numbers.
        rows = QUERY_CHUNK if nbr is not None else max(n, 1)
        o_pair, o_all = [], []
        for r in (slice(i, i + rows) for i in range(0, n, rows)):
            r_nbr = nbr[r] if nbr is not None else None
            a = self._weights(q_ext[r], k_ext, bias[r], r_nbr)  # [R, H, M] fp32
            # Σ_j a_hij z_ij: batched over queries i.
            o_pair.append(torch.einsum("ihm,imc->ihc", a.to(z.dtype), z[r]))  # [R, H, C_z]
            with torch.autocast(device_type=s.device.type, enabled=False):
                o_all.append(aggregate(a, head_keys(values, r_nbr), r_nbr))  # [R, H, C + Pv*3]
        o_pair = torch.cat(o_pair)  # [N, H, C_z]
        with torch.autocast(device_type=s.device.type, enabled=False):
            o, o_pts = torch.cat(o_all).split([c, 3 * self.pv], dim=-1)
            o_pts = global_to_local(o_pts.reshape(n, h, self.pv, 3), rot, trans_nm)  # into frame i
            o_norm = torch.sqrt(o_pts.square().sum(-1) + 1e-8)  # [N, H, Pv]
        feats = [
            o.reshape(n, -1),
            o_pair.reshape(n, -1),
            o_pts.reshape(n, -1),
            o_norm.reshape(n, -1),
        ]
        return self.linear_out(torch.cat([f.to(o_pair.dtype) for f in feats], dim=-1))


class IPABlock(nn.Module):
    """IPA → dropout → LayerNorm → transition MLP → dropout → LayerNorm, residual around both."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ipa = InvariantPointAttention(cfg)
        self.norm_attn = nn.LayerNorm(cfg.d_s)
        self.transition = nn.Sequential(
            nn.Linear(cfg.d_s, cfg.transition_mult * cfg.d_s),
            nn.ReLU(),
            nn.Linear(cfg.transition_mult * cfg.d_s, cfg.d_s),
        )
        self.norm_ff = nn.LayerNorm(cfg.d_s)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, s, z, bias, rot, trans, nbr=None) -> torch.Tensor:
        s = self.norm_attn(s + self.dropout(self.ipa(s, z, bias, rot, trans, nbr)))
        return self.norm_ff(s + self.dropout(self.transition(s)))
