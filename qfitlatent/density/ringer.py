"""Ringer scans (Lang et al. 2010): the density where the γ atom would sit as χ1 turns.

For a residue with a χ, the γ atom (the one that defines χ1: CG, CG1, OG, OG1, SG) is built
from the residue's own N, CA and CB with ideal bond length and angle (`ideal.IDEAL`, through
`ensemble.sidechains.complete_sidechain`) at χ1 = 0°, 5°, …, 355°, and each map is interpolated
there. Where the residue has a χ2, the δ atom that defines it is built the same way with χ2 at
its modelled value. A second peak away from the modelled χ1 is what a modeller looks for before
building an alternative conformer; the mFo-DFc map shows it without the model's own density.
"""

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import residues
from ..ensemble.sidechains import can_rebuild, complete_sidechain, measure_chis
from .grid import DensityMap, MapPair, sample

STEP_DEG = 5.0
MIN_SEPARATION_DEG = 30.0  # a second χ1 rotamer, not a wobble of the modelled one


@dataclass
class RingerScan:
    resname: str
    chi1: np.ndarray  # [T] degrees, 0 … 360 - step
    modelled_chi1: float  # degrees, as the model has it
    gamma: dict[str, np.ndarray]  # map label -> [T] σ at the γ atom
    delta: dict[str, np.ndarray]  # map label -> [T] σ at the δ atom; empty without a χ2
    # name -> [3] Å: the atoms the scan was built from (`scanned_atoms`); empty: unknown
    read: dict[str, np.ndarray] = field(default_factory=dict)

    def is_scan_of(self, atoms: dict[str, np.ndarray]) -> bool:
        """Whether this is the scan of `atoms` too (on the same maps): the atoms it reads sit
        at the same places, so scanning them again would give it bit for bit."""
        mine = scanned_atoms(atoms, self.resname)
        return (
            bool(self.read)
            and mine.keys() == self.read.keys()
            and all(np.array_equal(mine[n], self.read[n]) for n in mine)
        )


def scanned_atoms(atoms: dict[str, np.ndarray], resname: str) -> dict[str, np.ndarray]:
    """The atoms of `atoms` a scan depends on: N, CA, CB (C where CB must be built) to build on,
    and those of χ1 and χ2, whose modelled values it keeps."""
    names = {"N", "CA", "CB"} | {
        n for quad in residues.CHI_ATOMS.get(resname, ())[:2] for n in quad
    }
    if "CB" not in atoms:
        names.add("C")
    return {n: np.asarray(atoms[n]) for n in sorted(names) if n in atoms}


def chi1_steps(step_deg: float = STEP_DEG) -> np.ndarray:
    """[T] χ1 values in degrees, 0 up to 360 (excluded) in `step_deg` steps."""
    return np.arange(0.0, 360.0, step_deg)


def _modelled(atoms: dict[str, np.ndarray], resname: str):
    """(name -> [3] float64 tensors, the modelled χ [4] in radians, NaN where absent)."""
    own = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in atoms.items()}
    return own, measure_chis(own, resname)


def _turned(
    own: dict[str, torch.Tensor], chis: torch.Tensor, resname: str, d: int, chi_deg: np.ndarray
) -> dict[str, torch.Tensor]:
    """The residue `own` (its modelled χ `chis` [4], radians) rebuilt with χ(d+1) at each of
    `chi_deg` [T] (degrees): name -> [T, 3] Å. Every atom beyond CB is placed anew from ideal
    geometry on its N, CA, CB (C where CB is missing), the other of χ1 and χ2 as modelled
    (180° where not modelled, and for χ3, χ4)."""
    t = len(chi_deg)
    chi = torch.full((t, residues.N_CHI_MAX), torch.pi, dtype=torch.float64)  # [T, D]
    for k in range(min(2, residues.n_chi(resname))):
        if k != d and not torch.isnan(chis[k]):
            chi[:, k] = chis[k]
    chi[:, d] = torch.deg2rad(torch.as_tensor(chi_deg, dtype=torch.float64))
    base = {k: v.expand(t, 3) for k, v in own.items() if k in ("N", "CA", "C", "CB")}
    return complete_sidechain(base, resname, chi)


def scan_positions(
    atoms: dict[str, np.ndarray], resname: str, chi1_deg: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Where γ (and δ) sit at each χ1, built from ideal geometry on the residue's N, CA, CB.

    Args:
        atoms: name -> [3] Å of one conformer (N, CA, C or CB needed; the rest optional).
        chi1_deg: [T] degrees.
    Returns:
        (γ [T, 3], δ [T, 3] or None without a modelled χ2, modelled χ1 in degrees).
    """
    if not can_rebuild(resname):
        raise ValueError(f"{resname}: no χ1 to scan")
    own, chis = _modelled(atoms, resname)
    built = _turned(own, chis, resname, 0, chi1_deg)
    has_chi2 = residues.n_chi(resname) > 1 and not torch.isnan(chis[1])
    quads = residues.CHI_ATOMS[resname]
    gamma = built[quads[0][3]].numpy()
    delta = built[quads[1][3]].numpy() if has_chi2 else None
    return gamma, delta, math.degrees(float(chis[0]))  # NaN for a truncated side chain


def chi2_scan_positions(
    atoms: dict[str, np.ndarray], resname: str, chi2_deg: np.ndarray
) -> tuple[np.ndarray, float] | None:
    """Where the δ atom that defines χ2 sits as χ2 turns, χ1 held at its modelled value.

    A near-copy of a side chain (< 30° apart in χ1) often differs in χ2 (Leu, Met, Lys, Gln,
    Glu, Arg, Ile): a χ1 scan cannot see it, a χ2 scan can. Built like `scan_positions`, from
    the residue's N, CA, CB and ideal geometry.

    Args:
        atoms: name -> [3] Å of one conformer; chi2_deg: [T] degrees.
    Returns:
        (δ [T, 3], modelled χ2 in degrees), or None where the residue has no modelled χ1 and χ2.
    """
    if not can_rebuild(resname) or residues.n_chi(resname) < 2:
        return None
    own, chis = _modelled(atoms, resname)
    if torch.isnan(chis[:2]).any():
        return None
    built = _turned(own, chis, resname, 1, chi2_deg)
    delta = built[residues.CHI_ATOMS[resname][1][3]].numpy()
    return delta, math.degrees(float(chis[1]))


def scan(
    atoms: dict[str, np.ndarray], resname: str, maps: MapPair, step_deg: float = STEP_DEG
) -> RingerScan:
    """The residue's Ringer scan over every map of `maps` (2mFo-DFc, and mFo-DFc if given)."""
    chi1 = chi1_steps(step_deg)
    gamma, delta, modelled = scan_positions(atoms, resname, chi1)
    dmaps: list[DensityMap] = [m for m in (maps.two_fofc, maps.fofc) if m is not None]
    return RingerScan(
        resname=resname,
        chi1=chi1,
        modelled_chi1=modelled,
        gamma={m.label: sample(m, gamma) for m in dmaps},
        delta={m.label: sample(m, delta) for m in dmaps} if delta is not None else {},
        read=scanned_atoms(atoms, resname),
    )


def away_from(chi1_deg: np.ndarray, modelled_deg: float, min_sep: float = MIN_SEPARATION_DEG):
    """[T] bool: χ1 values at least `min_sep` degrees (on the circle) from the modelled one."""
    d = np.abs((chi1_deg - modelled_deg + 180.0) % 360.0 - 180.0)
    return d >= min_sep


def second_peak(values: np.ndarray, chi1_deg: np.ndarray, modelled_deg: float):
    """(height in σ, χ1 in degrees) of the highest peak ≥ 30° from the modelled χ1.

    A peak is a local maximum on the circle of the scan `values` [T]; the flank of the
    modelled conformer's own peak 30° out is not one. Where no peak lies that far away, the
    highest value there is returned (a shoulder, not a rotamer).
    """
    mask = away_from(chi1_deg, modelled_deg)
    peak = (values >= np.roll(values, 1)) & (values >= np.roll(values, -1))
    pick = mask & peak if (mask & peak).any() else mask
    k = int(np.nanargmax(np.where(pick, values, -np.inf)))
    return float(values[k]), float(chi1_deg[k])
