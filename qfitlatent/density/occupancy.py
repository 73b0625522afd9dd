"""Occupancies of candidate conformers fitted to the map, as qFit does: non-negative least
squares over each conformer's calculated density, normalised to sum to 1.

Each atom's calculated density is one isotropic Gaussian whose width combines its B-factor
(thermal spread, B = 8π²⟨u²⟩) with the map's resolution (a resolution-limited atom is about
0.35·d_min wide), weighted by its electron count. The map is read on a 0.4 Å lattice of points
within 1.5 Å of any candidate atom. The fit is map ≈ Σₖ wₖ ρₖ + w_f ρ_fixed + c: ρ_fixed is the
density of the atoms no candidate moves (backbone, CB, neighbours) so their density is not
credited to a conformer, and c (free sign, as two non-negative columns) absorbs the map's local
offset. Occupancies are wₖ / Σ wₖ; the scale of the map in σ drops out.
"""

import numpy as np
from scipy.optimize import nnls

ELECTRONS = {"C": 6.0, "N": 7.0, "O": 8.0, "S": 16.0, "SE": 34.0}
RESOLUTION_WIDTH = 0.35  # σ of a resolution-limited atom, per Å of d_min
LATTICE = 0.4  # Å between the points the map is read at
REACH = 1.5  # Å around candidate atoms


def atom_density(
    points: np.ndarray, xyz: np.ndarray, b: np.ndarray, z: np.ndarray, d_min: float
) -> np.ndarray:
    """Sum of isotropic Gaussian atoms at `points` [Q, 3] → [Q] (electrons / Å³).

    Args:
        xyz: [A, 3] Å; b: [A] B-factors (Å²); z: [A] electrons; d_min: resolution (Å).
    """
    var = b / (8.0 * np.pi**2) + (RESOLUTION_WIDTH * d_min) ** 2  # [A] Å² per direction
    d2 = ((points[:, None, :] - xyz[None, :, :]) ** 2).sum(-1)  # [Q, A]
    return (z * (2.0 * np.pi * var) ** -1.5 * np.exp(-d2 / (2.0 * var))).sum(-1)


def lattice_near(xyz: np.ndarray, reach: float = REACH, step: float = LATTICE) -> np.ndarray:
    """[Q, 3] points of a cubic lattice (spacing `step`) within `reach` Å of any of xyz [A, 3]."""
    lo, hi = xyz.min(0) - reach, xyz.max(0) + reach
    axes = [np.arange(a, b + step, step) for a, b in zip(lo, hi, strict=True)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    d2 = ((pts[:, None, :] - xyz[None, :, :]) ** 2).sum(-1).min(-1)
    return pts[d2 <= reach**2]


def fit_occupancies(
    read_map,
    conformers: list[np.ndarray],
    z: np.ndarray,
    b: np.ndarray,
    d_min: float,
    fixed: np.ndarray | None = None,
    fixed_z: np.ndarray | None = None,
    fixed_b: np.ndarray | None = None,
) -> np.ndarray:
    """Occupancies [K] of K candidate conformers, ≥ 0 and summing to 1 (NaN: no support).

    Args:
        read_map: positions [Q, 3] → map values [Q] (e.g. `lambda p: grid.sample(m, p)`).
        conformers: K arrays [A, 3] of the atoms that differ between candidates, same order.
        z, b: [A] electrons and B-factors of those atoms.
        fixed, fixed_z, fixed_b: [F, 3], [F], [F]: atoms near by that no candidate moves.
    """
    every = np.concatenate(conformers)  # [K·A, 3]
    points = lattice_near(every)  # [Q, 3]
    columns = [atom_density(points, xyz, b, z, d_min) for xyz in conformers]
    if fixed is not None and len(fixed):
        columns.append(atom_density(points, fixed, fixed_b, fixed_z, d_min))
    ones = np.ones(len(points))
    a = np.stack([*columns, ones, -ones], axis=1)  # [Q, K + extras]
    observed = np.nan_to_num(read_map(points), nan=0.0)  # [Q]
    w, _ = nnls(a, observed)
    w = w[: len(conformers)]
    total = w.sum()
    return w / total if total > 0 else np.full(len(conformers), np.nan)
