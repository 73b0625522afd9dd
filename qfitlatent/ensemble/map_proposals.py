"""Conformers the map proposes (issue 22): the network's samples are not the only candidates.

For a residue the map head calls flexible, the mFo-DFc Ringer scan (`density.ringer`: the
difference map at the γ atom as χ1 turns, built from the residue's N, CA, CB) often peaks at the
χ1 of a second rotamer the network's samples miss. The map's candidate starts at that peak (the
highest ≥ 30° from the modelled χ1 and not eclipsed, which is never written; the 2mFo-DFc
scan's where the map has no difference map), with the later χ of the network's conformer
nearest it in χ1 (the input's without one); then the whole side chain is fitted: χ1 within 20°
of the peak, χ2 (where the residue has one) over a 30° grid and the network's own χ2 values,
the one where the map is highest at the moving atoms (mean mFo-DFc; 2mFo-DFc without a
difference map) kept. It is built like every sample (`set_chis` on the input side chain) and
judged like them: the support rule, the clash screen, NNLS occupancies
(`multiconf.build_multiconformer`).
"""

import math

import numpy as np
import torch

from .. import residues
from ..density.evidence import score_conformers
from ..density.grid import MapPair
from ..density.ringer import STEP_DEG, RingerScan, away_from, scan, second_peak
from .conformers import SEPARATION_DEG, chi_distance, eclipsed_deg
from .sidechains import measure_chis

CHI2_GRID_DEG = np.arange(-180.0, 180.0, 30.0)  # [12] the χ2 values tried besides the network's
CHI1_REFINE_DEG = 20.0  # the χ1 tried around the scan's peak, in the scan's steps


def propose(
    base: dict[str, np.ndarray],  # name -> [3] Å: backbone and the input's side chain
    resname: str,
    network_chi: np.ndarray,  # [M, D] radians: the network's proposals for this residue
    maps: MapPair,
    ringer: RingerScan | None = None,  # the residue's scan on `maps`, where one was kept
) -> np.ndarray | None:
    """[D] radians: the map's candidate conformer, or None where the map cannot place one (no
    scan, or one of the network's proposals already lies within 20° of it on every χ). A
    `ringer` of other atoms than `base`'s (another altloc) is not used: `base` is scanned."""
    if ringer is None or not ringer.is_scan_of(base):
        try:
            ringer = scan(base, resname, maps)
        except (KeyError, ValueError):  # backbone or CB missing: nothing to build γ from
            return None
    dmap = maps.fofc if maps.fofc is not None else maps.two_fofc
    values = ringer.gamma[dmap.label]  # [T] σ
    if math.isnan(ringer.modelled_chi1) or not np.isfinite(values).all():
        return None
    # An eclipsed χ1 is never written (conformers.eclipsed_chi1): the best peak elsewhere
    _, peak_deg = second_peak(np.where(~eclipsed_deg(ringer.chi1), values, -np.inf), ringer.chi1,
                              ringer.modelled_chi1)  # fmt: skip
    chi1 = math.radians(peak_deg)
    own = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in base.items()}
    chi_in = measure_chis(own, resname).numpy()  # [D]
    network_chi = np.asarray(network_chi, dtype=np.float64).reshape(-1, residues.N_CHI_MAX)
    if len(network_chi):  # the later χ of the network's conformer nearest in χ1
        gap = np.abs(np.angle(np.exp(1j * (network_chi[:, 0] - chi1))))  # [M]
        cand = network_chi[int(np.argmin(gap))].copy()
    else:
        cand = chi_in.copy()
    cand[0] = chi1
    # The γ peak is pulled toward the alternative's δ atoms (blurred at the map's resolution):
    # the whole side chain is fitted, χ1 within CHI1_REFINE_DEG of the peak and χ2 over its grid.
    n_chi = residues.n_chi(resname)
    near = peak_deg + np.arange(-CHI1_REFINE_DEG, CHI1_REFINE_DEG + 1.0, STEP_DEG)  # degrees
    chi1s = np.radians(near[~eclipsed_deg(near) & away_from(near, ringer.modelled_chi1)])
    if not len(chi1s):  # no staggered χ1 away from the modelled one: nothing to propose
        return None
    chi2s = [cand[1]]
    if n_chi >= 2:
        chi2s = np.concatenate([np.radians(CHI2_GRID_DEG), network_chi[:, 1]])
        chi2s = chi2s[np.isfinite(chi2s)]
    grid = np.repeat(cand[None], len(chi1s) * len(chi2s), axis=0)  # [G, D]
    grid[:, 0] = np.repeat(chi1s, len(chi2s))
    grid[:, 1] = np.tile(chi2s, len(chi1s))
    ev = score_conformers(base, resname, grid, maps)
    height = ev.difference if ev.difference is not None else ev.candidates  # [G] σ
    cand = grid[int(np.nanargmax(height))] if np.isfinite(height).any() else cand
    cand = np.angle(np.exp(1j * cand))  # (-π, π]
    cand[n_chi:] = 0.0
    if len(network_chi) and _covered(cand, network_chi, resname):
        return None
    return cand


def _covered(cand: np.ndarray, network_chi: np.ndarray, resname: str) -> bool:
    """Whether a network proposal lies within SEPARATION_DEG of `cand` on every χ."""
    n = residues.n_chi(resname)
    defined = torch.arange(residues.N_CHI_MAX) < n  # [D]
    sym = torch.tensor(residues.pi_symmetric(resname))  # [D]
    d = chi_distance(torch.as_tensor(network_chi), torch.as_tensor(cand)[None], defined, sym)
    return bool((d < math.radians(SEPARATION_DEG)).any())
