"""How well the map supports each candidate conformer of a residue, in σ.

A candidate is a χ vector; its side chain is built by turning the modelled one
(`ensemble.sidechains.set_chis`, bond lengths and angles kept) and the map is read at every atom
the χ rotations move (beyond CB). The modelled conformer is read at the same atoms. A candidate
the map supports about as well as the modelled one has a score near 0; a candidate in solvent
scores about minus the modelled conformer's density.
"""

from dataclasses import dataclass

import numpy as np
import torch

from ..ensemble.sidechains import set_chis
from ..ideal import moved_by
from .grid import MapPair, sample


@dataclass
class ConformerEvidence:
    atoms: tuple[str, ...]  # the side-chain atoms read (those χ1 moves)
    modelled: float  # mean 2mFo-DFc σ at the modelled conformer's atoms
    candidates: np.ndarray  # [M] mean 2mFo-DFc σ at each candidate's atoms
    difference: np.ndarray | None  # [M] mean mFo-DFc σ there; None without a difference map

    @property
    def relative(self) -> np.ndarray:
        """[M] candidate minus modelled, in σ: ≥ 0 where the map likes it as well."""
        return self.candidates - self.modelled


def candidate_atoms(
    atoms: dict[str, np.ndarray], resname: str, chi: np.ndarray
) -> tuple[tuple[str, ...], np.ndarray]:
    """(names, [M, P, 3] positions) of the moving side-chain atoms of each candidate.

    Args:
        atoms: name -> [3] Å of the modelled conformer.
        chi: [M, D] radians (slots past the residue's χ count are ignored).
    """
    names = moved_by(resname, 0)
    own = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in atoms.items()}
    built = set_chis(own, resname, torch.as_tensor(chi, dtype=torch.float64))
    return names, torch.stack([built[n] for n in names], dim=-2).numpy()  # [M, P, 3]


def score_conformers(
    atoms: dict[str, np.ndarray], resname: str, chi: np.ndarray, maps: MapPair
) -> ConformerEvidence:
    """Density evidence for candidate conformers `chi` [M, D] (radians) against the modelled one.

    Atoms the model lacks are read where ideal geometry puts them, for candidates only: a
    truncated side chain's modelled density is read over the atoms it has.
    """
    names, xyz = candidate_atoms(atoms, resname, chi)
    present = [atoms[n] for n in names if n in atoms]  # P' × [3]
    modelled = float(np.nanmean(sample(maps.two_fofc, np.stack(present)))) if present else np.nan
    diff = maps.fofc
    return ConformerEvidence(
        atoms=names,
        modelled=modelled,
        candidates=np.nanmean(sample(maps.two_fofc, xyz), axis=-1),  # [M]
        difference=np.nanmean(sample(diff, xyz), axis=-1) if diff is not None else None,
    )
