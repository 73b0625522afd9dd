"""Where a side chain has room: atom counts around probe positions along each χ1 direction.

A backbone-only network must infer from Cα positions whether the space a rotamer would fill is
free. The input file already says so: every other residue's atoms are there. For each residue
we place a γ probe (where a Cγ would sit) and a δ probe (an extended Cδ beyond it) at twelve χ1
angles, and count the heavy atoms of *other* residues near each probe. A rotamer whose γ probe
is crowded is unlikely; a residue with room at two χ1 angles is a candidate for two conformers.

Counts are SE(3)-invariant and use only the first conformer of neighbours (altloc A, or the
only one: the model a user uploads has at least that). The residue's own atoms are never
counted, so its observed side chain cannot leak into its own input.
"""

import math

import numpy as np
import torch

from .geometry import place_atom, virtual_cb
from .neighbours import count_per_row, pairs_within
from .progress import Tick, no_tick

N_CHI1_BINS = 12  # probes every 30° of χ1
CHI1_ANGLES = torch.arange(N_CHI1_BINS, dtype=torch.float64) * (2 * math.pi / N_CHI1_BINS)
PROBE_RADII = (3.0, 4.0)  # Å: a clash with the probe, and first-shell contact
BOND = 1.52  # Å, C–C
ANGLE_GAMMA = math.radians(114.0)  # CA–CB–CG
ANGLE_DELTA = math.radians(113.0)  # CB–CG–CD
N_ENV = N_CHI1_BINS * 2 * len(PROBE_RADII)  # values per residue


def probe_points(n: torch.Tensor, ca: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """γ and δ probe positions [N, 12, 2, 3] from backbone N, CA [N, 3] and frames [N, 3, 3]."""
    cb = virtual_cb(rot, ca)  # [N, 3]
    k = N_CHI1_BINS
    rep = lambda x: x[:, None].expand(-1, k, 3)  # noqa: E731  [N, 12, 3]
    chi1 = CHI1_ANGLES.to(ca.dtype).expand(ca.shape[0], k)  # [N, 12]
    gamma = place_atom(rep(n), rep(ca), rep(cb), BOND, ANGLE_GAMMA, chi1)  # [N, 12, 3]
    delta = place_atom(rep(ca), rep(cb), gamma, BOND, ANGLE_DELTA, math.pi)  # [N, 12, 3]
    return torch.stack([gamma, delta], dim=2)


def environment_counts(
    probes: torch.Tensor,
    atoms: torch.Tensor,
    owner: torch.Tensor,
    chunk: int = 1024,
    tick: Tick = no_tick,
) -> torch.Tensor:
    """Atoms of other residues within each `PROBE_RADII` of each probe.

    Args:
        probes: [N, P, 3] probe positions of residue i (any number P per residue).
        atoms: [M, 3] heavy-atom positions of the whole structure.
        owner: [M] long, the residue index each atom belongs to.
        chunk: residues per step; only bounds memory (neighbour pairs come from a k-d tree, so
            time and memory grow linearly with N, never an [N, M] matrix), and sets how often
            `tick(done, N)` hears the residues counted (1024 costs no more time than 4096).
    Returns:
        [N, P, len(PROBE_RADII)] float counts.
    """
    n, p, _ = probes.shape
    flat = probes.detach().cpu().reshape(-1, 3).double().numpy()  # [N * P, 3]
    own = owner.cpu().numpy()  # [M]
    out = np.zeros((n * p, len(PROBE_RADII)))
    found = pairs_within(flat, atoms.detach().cpu().double().numpy(), max(PROBE_RADII), chunk * p)
    tick(0, n)
    for rows, i, j, d in found:
        other = own[j] != i // p  # [E]: the probe's own residue never counts
        for k, r in enumerate(PROBE_RADII):
            out[rows, k] = count_per_row(rows, i[other & (d < r)])
        tick(rows.stop // p, n)
    tick(n, n)
    return torch.from_numpy(out).float().reshape(n, p, len(PROBE_RADII))


def environment_features(
    n: torch.Tensor,
    ca: torch.Tensor,
    rot: torch.Tensor,
    atoms: torch.Tensor,
    owner: torch.Tensor,
    tick: Tick = no_tick,
) -> torch.Tensor:
    """[N, N_ENV] counts per residue: 12 χ1 angles × (γ, δ) probes × radii, flattened.
    `tick(done, N)` hears the residues counted, a chunk at a time."""
    probes = probe_points(n, ca, rot)  # [N, 12, 2, 3]
    counts = environment_counts(probes.flatten(1, 2), atoms, owner, tick=tick)  # [N, 24, R]
    return counts.reshape(n.shape[0], N_ENV)
