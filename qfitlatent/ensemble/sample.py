"""Sampling rotamer ensembles from the predicted mixtures (SPEC §7).

`sample_chis` draws S conformers per residue (component k ~ π, then χ_d ~ VonMises(μ_kd, κ_kd)),
seeded so the same seed gives the same ensemble (`mixture.mode` is the deterministic conformer:
the mean of the heaviest component). `cluster_conformers` groups near-identical draws into
distinct conformers with their frequencies (the iid option of the multiconformer model;
`conformers.select_conformers` is the default).
"""

import math
import numbers
import string

import torch

from ..geometry import circ_diff
from ..mixture import Mixture, sample

ALTLOCS = string.ascii_uppercase  # the PDB format allows one character; 26 letters at most
SAME_CONFORMER_DEG = 20.0  # draws within this on every defined χ are one conformer
MAX_CONFORMERS = 6  # altlocs per residue in a written model; qFit models rarely exceed 5
MIN_OCC = 0.01  # rarer conformers would be written with occupancy 0.00: they join a kept one

# Limits of the sampling settings, for `predict()` and `qfitlatent predict` alike. Each iid draw
# is one model of samples.pdb (the whole protein), so 1,000 draws of a 300-residue structure are
# already a ~200 MB file; the temperature range is where it still means something (at 0.001 every
# concentration is ×1000, a draw within a degree of its mean); seeds are what torch accepts.
# `sample_chis` (library use) allows more draws per residue but at most MAX_DRAWS residue-draws
# (S × N): each [S, N, D] float64 temporary is then at most 160 MB.
MAX_SAMPLES = 1000
MAX_DRAWS = 5_000_000
MIN_TEMPERATURE = 1e-3
MAX_TEMPERATURE = 1e3
MAX_SEED = 2**64 - 1


def check_sampling(n_samples, temperature, seed, max_samples: int = MAX_SAMPLES) -> None:
    """Raise ValueError, in words, for sampling settings outside the limits above (numpy
    numbers count as numbers; bools do not)."""
    whole = isinstance(n_samples, numbers.Integral) and not isinstance(n_samples, bool)
    if not whole:
        raise ValueError(f"the number of samples must be a whole number, not {n_samples!r}")
    if not 1 <= n_samples <= max_samples:
        raise ValueError(f"the number of samples must be between 1 and {max_samples:,} "
                         f"(got {n_samples:,})")  # fmt: skip
    real = isinstance(temperature, numbers.Real) and not isinstance(temperature, bool)
    if not real or not MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE:  # nan fails too
        raise ValueError(f"the temperature must be between {MIN_TEMPERATURE:g} and "
                         f"{MAX_TEMPERATURE:g} (got {temperature!r})")  # fmt: skip
    whole = isinstance(seed, numbers.Integral) and not isinstance(seed, bool)
    if not whole or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"the seed must be a whole number from 0 to 2^64 − 1 (got {seed!r})")


def sample_chis(
    mix: Mixture,  # logits [N, K], mu/kappa [N, K, D]
    pi_symmetric: torch.Tensor,  # [N, D] bool
    n_samples: int = 10,
    seed: int = 0,
    temperature: float = 1.0,
) -> torch.Tensor:
    """S sampled conformers per residue, [S, N, D] radians; the same seed gives the same draws.

    `temperature` > 1 flattens the mixture (more diverse draws), < 1 sharpens it.
    """
    n_res = mix.logits.shape[0]
    check_sampling(n_samples, temperature, seed, max_samples=MAX_DRAWS // max(1, n_res))
    g = torch.Generator().manual_seed(seed)
    chi, _ = sample(mix, n_samples, pi_symmetric, generator=g, temperature=temperature)
    return chi


def cluster_conformers(
    chi: torch.Tensor,  # [S, D] draws of one residue
    defined: torch.Tensor,  # [D] bool
    pi_symmetric: torch.Tensor,  # [D] bool
    tol_deg: float = SAME_CONFORMER_DEG,
    max_conformers: int = MAX_CONFORMERS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct conformers among S draws and their frequencies.

    Draws within `tol_deg` of each other on every defined χ (π-folded where symmetric) are one
    conformer. Greedy: the draw with the most unassigned neighbours becomes a centre and takes
    them; repeat. Each conformer's χ is its centre draw (a real sample, not an average, so it is
    a conformer the mixture actually proposes). Beyond `max_conformers`, and below an occupancy
    of 0.01, the rarest conformers' draws join the nearest kept one, so occupancies still count
    every draw.
    Returns χ [M, D] and occupancies [M] summing to 1, most frequent first.
    """
    if not 1 <= max_conformers <= len(ALTLOCS):
        raise ValueError(f"max_conformers must be between 1 and {len(ALTLOCS)}")
    s = chi.shape[0]
    # [S, S, D] circular distance of every pair, π-folded where symmetric.
    dist = circ_diff(chi[:, None], chi[None], pi_symmetric[None, None])
    dist = torch.where(defined[None, None], dist, torch.zeros_like(dist)).amax(-1)  # [S, S]
    near = dist <= math.radians(tol_deg)
    free = torch.ones(s, dtype=torch.bool)
    centres, counts = [], []
    while free.any():
        score = (near & free[None]).sum(1).masked_fill(~free, -1)  # [S]
        c = int(score.argmax())
        centres.append(c)
        counts.append(int(score[c]))
        free &= ~near[c]
    order = sorted(range(len(centres)), key=lambda j: -counts[j])[:max_conformers]
    order = order[:1] + [j for j in order[1:] if counts[j] / s >= MIN_OCC]
    kept = torch.tensor([centres[j] for j in order])
    # Every draw goes to its nearest kept centre: same as above for kept ones, reassigns the rest.
    assign = dist[:, kept].argmin(1)  # [S]
    occ = torch.bincount(assign, minlength=len(kept)).double() / s
    occ, rank = occ.sort(descending=True, stable=True)
    return chi[kept[rank]], occ.float()
