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
  does), with the atoms around them that no conformer moves as a fixed column. In a crystal map
  those include the symmetry copies of the model (a neighbouring molecule across a symmetry axis
  or a lattice translation): their density is in the map, and left out of the fixed column it
  would be credited to whichever conformer points at them.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import gemmi
import numpy as np

from ..density.evidence import ConformerEvidence, score_conformers
from ..density.grid import MapPair, sample
from ..density.occupancy import REACH, fit_occupancies

if TYPE_CHECKING:  # multiconf imports this module
    from .multiconf import Environment

SUPPORT_TWO_FOFC = 2.0  # σ: mean 2mFo-DFc at an alternative's moving atoms
SUPPORT_FOFC = 2.5  # σ: mean mFo-DFc there that is support on its own (difference maps only)
FIXED_REACH = REACH + 2.5  # Å: atoms this near a conformer's atoms put density in its lattice
DEFAULT_D_MIN = 2.0  # Å, for a model whose header gives no resolution


@dataclass
class MapJudge:
    """The map and the atoms of the model before any split, for scoring and fitting conformers."""

    maps: MapPair
    d_min: float
    # Every atom of the input model: its k-d tree, and its symmetry copies in the crystal
    env: "Environment"
    electrons: np.ndarray  # [A] atomic number × occupancy, in env's order (altlocs share)
    b: np.ndarray  # [A] B-factors

    @classmethod
    def of(
        cls, st: gemmi.Structure, env: "Environment", maps: MapPair, d_min: float | None
    ) -> "MapJudge":
        """The judge of `st`'s first model, whose atoms `env` (`Environment(st)`) holds."""
        atoms = [a for chain in st[0] for r in chain for a in r]
        if len(atoms) != len(env.pos):
            raise ValueError(f"{len(atoms)} atoms in the model, {len(env.pos)} in its environment")
        z = np.array([a.element.atomic_number * a.occ for a in atoms], dtype=np.float64)
        b = np.array([a.b_iso for a in atoms], dtype=np.float64)
        return cls(maps, d_min or DEFAULT_D_MIN, env, z, b)

    def symmetry_mates(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Atoms of the model's symmetry copies (not the model itself) within FIXED_REACH of any
        of xyz [P, 3]: (positions [S, 3], electrons [S], B-factors [S]), each copy once; none
        in a cryo-EM box, whose map holds no copies."""
        if not self.maps.two_fofc.periodic:
            return np.empty((0, 3)), np.empty(0), np.empty(0)
        atom, where = self.env.symmetry_copies(xyz, FIXED_REACH)
        return where, self.electrons[atom], self.b[atom]

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
        near = sorted({j for hits in self.env.tree.query_ball_point(every, FIXED_REACH)
                       for j in hits})  # fmt: skip
        near = np.array([j for j in near if not own[j]], dtype=np.int64)
        mate_xyz, mate_z, mate_b = self.symmetry_mates(every)
        return fit_occupancies(
            lambda p: sample(self.maps.two_fofc, p),
            conformers,
            electrons,
            b,
            self.d_min,
            fixed=np.concatenate([self.env.pos[near], mate_xyz]),
            fixed_z=np.concatenate([self.electrons[near], mate_z]),
            fixed_b=np.concatenate([self.b[near], mate_b]),
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
