"""The map's say in the multiconformer model: which predicted alternatives it supports, and the
occupancies it gives the input side chain and the alternatives kept (issue 22).

- Support: a predicted alternative is kept only where the map has density at its side-chain
  atoms (those χ1 moves; `density.evidence.score_conformers`): mean 2mFo-DFc at least
  SUPPORT_TWO_FOFC σ with no net negative mFo-DFc there (the model's own density does not
  count as support where the difference map says the crystal has less), or mean mFo-DFc at
  least SUPPORT_FOFC σ (density the single-conformer model leaves unexplained) whatever the
  2mFo-DFc. A map without a difference map (CCP4/MRC) has the 2mFo-DFc test alone. Measured
  on the single-conformer reductions of 3K0N and 3SB3 with maps computed from their data
  (`python benchmarks/map_multiconf.py 3K0N 3SB3 --candidates`; the two thresholds are the only
  things chosen on these validation maps): of 107 alternatives judged, 22 within 30° on every χ
  of a deposited altloc, this rule keeps 13, 11 of them deposited (precision 0.85, recall
  0.50); 2mFo-DFc ≥ 1 σ or mFo-DFc ≥ 3 σ keeps 42 at precision 0.33; 2mFo-DFc ≥ 2 σ alone
  (a map without mFo-DFc) 17 at 0.41 (docs/density.md has the table).
- Occupancies: non-negative least squares of the 2mFo-DFc map over the calculated density of
  the input side chain and each kept alternative (`density.occupancy.fit_occupancies`, as qFit
  does), with the atoms around them that no conformer moves as a fixed column.
"""

from dataclasses import dataclass

import gemmi
import numpy as np
from scipy.spatial import cKDTree

from ..density.evidence import ConformerEvidence, score_conformers
from ..density.grid import MapPair, sample
from ..density.occupancy import REACH, fit_occupancies

SUPPORT_TWO_FOFC = 2.0  # σ: mean 2mFo-DFc at an alternative's moving atoms
SUPPORT_FOFC = 2.5  # σ: mean mFo-DFc there that is support on its own (difference maps only)
FIXED_REACH = REACH + 2.5  # Å: atoms this near a conformer's atoms put density in its lattice
DEFAULT_D_MIN = 2.0  # Å, for a model whose header gives no resolution


@dataclass
class MapJudge:
    """The map and the atoms of the model before any split, for scoring and fitting conformers."""

    maps: MapPair
    d_min: float
    tree: cKDTree  # over pos
    pos: np.ndarray  # [A, 3] every atom of the input model, in Environment's order
    electrons: np.ndarray  # [A] atomic number × occupancy (altlocs share their density)
    b: np.ndarray  # [A] B-factors

    @classmethod
    def of(cls, st: gemmi.Structure, maps: MapPair, d_min: float | None) -> "MapJudge":
        atoms = [a for chain in st[0] for r in chain for a in r]
        pos = np.array([a.pos.tolist() for a in atoms], dtype=np.float64).reshape(-1, 3)
        z = np.array([a.element.atomic_number * a.occ for a in atoms], dtype=np.float64)
        b = np.array([a.b_iso for a in atoms], dtype=np.float64)
        return cls(maps, d_min or DEFAULT_D_MIN, cKDTree(pos), pos, z, b)

    def evidence(
        self, atoms: dict[str, np.ndarray], resname: str, chi_in: np.ndarray, chi: np.ndarray
    ) -> ConformerEvidence:
        """Density at the input side chain (first) and each candidate chi [M, D] (radians)."""
        return score_conformers(atoms, resname, np.vstack([chi_in[None], chi]), self.maps)

    @staticmethod
    def supports(ev: ConformerEvidence, k: int) -> bool:
        """Whether the map supports candidate k (index into the chi given to `evidence`)."""
        if ev.difference is None:
            return bool(ev.candidates[k] >= SUPPORT_TWO_FOFC)
        two, diff = ev.candidates[k], ev.difference[k]
        return bool((two >= SUPPORT_TWO_FOFC and diff >= 0.0) or diff >= SUPPORT_FOFC)

    def occupancies(
        self,
        conformers: list[np.ndarray],  # K × [P, 3]: the input side chain first, same atoms
        electrons: np.ndarray,  # [P]
        b: np.ndarray,  # [P]
        own: np.ndarray,  # [A] bool: the residue's own moving atoms (the input conformer)
    ) -> np.ndarray:
        """[K] occupancies fitted to the 2mFo-DFc map, summing to 1 (NaN: the map gives none)."""
        every = np.concatenate(conformers)  # [K·P, 3]
        near = sorted({j for hits in self.tree.query_ball_point(every, FIXED_REACH)
                       for j in hits})  # fmt: skip
        near = np.array([j for j in near if not own[j]], dtype=np.int64)
        return fit_occupancies(
            lambda p: sample(self.maps.two_fofc, p),
            conformers,
            electrons,
            b,
            self.d_min,
            fixed=self.pos[near],
            fixed_z=self.electrons[near],
            fixed_b=self.b[near],
        )


def rounded(occ: np.ndarray, min_occ: float) -> list[float]:
    """Occupancies [K] (input first) rounded to the 0.01 a PDB file holds, summing to exactly 1;
    the input keeps at least `min_occ` (it is the conformer the model was refined with)."""
    occ = np.asarray(occ, dtype=np.float64).copy()
    if occ[0] < min_occ:
        occ[1:] = occ[1:] * (1.0 - min_occ) / occ[1:].sum()
        occ[0] = min_occ
    out = [0.0] + [round(float(o), 2) for o in occ[1:]]
    out[0] = round(1.0 - sum(out[1:]), 2)
    return out
