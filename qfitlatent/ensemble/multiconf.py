"""A parsimonious multiconformer model a crystallographer can refine (our multiconformer_model2).

The model is the input's first model with every atom as read (waters, ligands, metals,
hydrogens, every altloc, occupancy and B-factor: `structure.ParsedStructure.full`); only the
residues the report says were split change. Rules, in the order they apply:
- A residue is split only when its flexibility score (`conformers.flexibility_score`: the
  network's p_flexible, or the mixture fallback) is at least `threshold`, it has no altlocs in
  the input (with "replace", side-chain altlocs are first reduced to the primary conformer),
  and its SG is not in a disulfide.
- The input's modelled side chain stays, as altloc A (its hydrogens too): it is the one
  conformer the data support. The selector's conformers (`conformers.select_conformers`,
  heaviest first) that are distinct from it (≥ 20° on some χ) and whose χ1 is staggered (not
  within 20° of 0° or ±120°) are tried as B, C, … until the residue holds `max_conformers`.
  Alternatives carry heavy atoms only.
- Occupancies are the mixture mass nearest each written conformer (the input's included). The
  input keeps at least the library prior's mass of its rotamer well (weights with a prior:
  without a density map that is all the evidence against it) and at least `min_occupancy`; an
  alternative lighter than `min_occupancy` is not written. Occupancies are rounded to the 2
  decimals a PDB file holds and sum to exactly 1; the report's `note` says why each is what it
  is.
- An alternative is rejected when one of its moving heavy atoms overlaps an atom of the crystal
  by `overlap` Å or more: overlap = r_vdW,a + r_vdW,b − distance (Bondi radii; 0.4 Å is the
  usual serious-clash cut-off), except N/O pairs and N/O with a hydrogen on N/O, which may
  hydrogen-bond and clash below 2.5 Å and 1.5 Å (`_overlap`). The crystal is every atom of the
  model and its symmetry copies (cell and space group; a model without a crystal cell has
  none). The environment of an alternative with altloc L is the crystal "in state L": blank
  atoms, altloc-L atoms where a residue has L, else its first altloc (for a residue we split,
  the input side chain). The residue's own atoms do not count, but its symmetry copies do
  ("its own symmetry copy"). Residues are processed most flexible first, and each alternative
  is screened against everything written before it, so every pair of coexisting atoms is
  checked once.
- Input altlocs: a residue with any altloc in the input (side chain, backbone only, coinciding
  copies) is written exactly as read, whatever their occupancies sum to (the report says where
  that is not 1), and we add nothing to it; with `input_altlocs="replace"` a residue whose
  side-chain altlocs differ starts from its primary conformer like any other residue instead
  (the report lists what it replaced).
- B-factors of every atom are the input's; alternatives copy those of the input atom they
  replace. The files say so in a REMARK.
- With a density map (`maps`, `map_support.py`): an alternative is tried only where the map
  supports it (else `rejected: no density`; the mixture-mass minimum does not apply), and the
  occupancies of the input side chain and the alternatives kept are fitted to the 2mFo-DFc map
  (NNLS), an alternative below `min_occupancy` dropped and the fit redone. The report gains
  the density at each conformer (MAP_REPORT_COLUMNS), the files a REMARK. Unless
  `map_proposals` is off, the map also proposes a conformer (`map_proposals.py`: the χ1 where
  the mFo-DFc Ringer scan peaks), tried before the network's and judged like them; its report
  rows say `source` "map".
"""

import dataclasses
import functools
import math
import string
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import gemmi
import numpy as np
import torch
from scipy.spatial import cKDTree

from .. import residues
from ..density.grid import MapPair
from ..density.ringer import RingerScan
from ..progress import Tick, no_tick
from ..structure import ParsedStructure
from .build import (
    base_atoms,
    input_model,
    moving_atoms,
    rebuildable,
    split_residue,
)
from .conformers import SEPARATION_DEG, Selection, chi_distance, eclipsed_chi1
from .map_proposals import propose
from .map_support import SUPPORT_FOFC, SUPPORT_TWO_FOFC, MapJudge, rounded
from .sidechains import measure_chis, set_chis

# Default split threshold on the flexibility score. Chosen on the validation split with
# `python benchmarks/tune_threshold.py` (docs/multiconformer.md): re-run it for new weights.
# For qfitlatent-v3 the split count is nearest the expected number of flexible residues
# (Σ p_flexible = 1,140 over the 43 structures' residues with χ) at 0.15 (1,100 split; 2,703
# at 0.1, 424 at 0.2), but at 0.15 and 0.16 small gate structures split over 2x their expected
# number; 0.17 is the lowest threshold that keeps all 20 within 2x (ratios 0.51-1.93;
# benchmarks/multiconformer_gates.py --threshold T). p_flexible is calibrated to how rarely
# modellers build altlocs (3.9% of residues), so 0.4 would split 12 residues.
DEFAULT_THRESHOLD = 0.17
MAX_CONFORMERS = 3  # per residue, the input's included: at most 2 alternatives
MIN_OCCUPANCY = 0.1  # lighter alternatives are not written
OVERLAP_CUTOFF = 0.4  # Å of heavy-atom van der Waals overlap: a serious clash
INPUT_ALTLOCS = ("keep", "replace")
ALTLOCS = string.ascii_uppercase
# Bondi (1964) van der Waals radii, Å, by element; other elements get carbon's.
# Metals and other ions get METAL_RADIUS, about their size when bound (Bondi's are for neutral
# atoms and would make every coordinating O a clash).
VDW_RADIUS = {"C": 1.70, "N": 1.55, "O": 1.52, "S": 1.80, "SE": 1.90, "H": 1.20, "D": 1.20,
              "P": 1.80, "F": 1.47, "CL": 1.75, "BR": 1.85, "I": 1.98}  # fmt: skip
DEFAULT_RADIUS = 1.70
METAL_RADIUS = 1.20
REPORT_COLUMNS = (
    "chain",
    "resnum",
    "icode",
    "resname",
    "flexibility",
    "altloc",
    "occupancy",
    "mass",
    "chi1",
    "chi2",
    "chi3",
    "chi4",
    "source",
    "status",
    "overlap",
    "partner",
    "note",
)
# With a map, after REPORT_COLUMNS: mean 2mFo-DFc and mFo-DFc (σ) at the conformer's side-chain
# atoms (those χ1 moves), and the 2mFo-DFc there minus that at the input side chain.
MAP_REPORT_COLUMNS = ("density_2fofc", "density_fofc", "density_vs_input")
MAP_OCCUPANCY_NOTE = "occupancy from map (NNLS)"
NO_DENSITY_NOTE = (
    f"the map does not support it: at its side-chain atoms mean 2mFo-DFc below "
    f"{SUPPORT_TWO_FOFC:g} sigma (or negative mFo-DFc) and mFo-DFc below {SUPPORT_FOFC:g} sigma"
)
MAP_REMARK = (
    "Predicted alternatives were kept only where the density map supports them; occupancies "
    "of split residues were fitted to the 2mFo-DFc map (non-negative least squares)."
)
KEEP_REMARK = (
    "Every atom of the input is written as read (waters, ligands, hydrogens, altlocs, "
    "occupancies); only split residues change, as the report says."
)
B_FACTOR_REMARK = (
    "B-factors are those of the input; predicted alternatives copy those of the input atom "
    "of the same name."
)


def vdw_radius(element: str) -> float:
    """Bondi radius, Å, of an element name as gemmi gives it ("C", "Zn", "SE")."""
    el = element.upper()
    if el in VDW_RADIUS:
        return VDW_RADIUS[el]
    return METAL_RADIUS if gemmi.Element(element).is_metal else DEFAULT_RADIUS


@dataclass(frozen=True)
class SplitOptions:
    # Split where the flexibility score is at least this; None: the default for the score at
    # hand (`resolved`): DEFAULT_THRESHOLD for the network's, a map head's own for its posterior.
    threshold: float | None = None
    max_conformers: int = MAX_CONFORMERS  # per residue, the input's side chain included
    min_occupancy: float = MIN_OCCUPANCY  # lightest alternative written
    input_altlocs: str = "keep"  # "keep": input altlocs stay, untouched; "replace": ours instead
    overlap: float = OVERLAP_CUTOFF  # Å: alternatives overlapping this much are rejected
    # With a map: also try the conformer the map proposes (map_proposals.py), first
    map_proposals: bool = True

    def __post_init__(self):
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError("threshold must be between 0 and 1")
        if not 1 <= self.max_conformers <= len(ALTLOCS):
            raise ValueError(f"max_conformers must be between 1 and {len(ALTLOCS)}")
        if not 0.0 < self.min_occupancy <= 0.5:
            raise ValueError("min_occupancy must be in (0, 0.5]")
        if self.input_altlocs not in INPUT_ALTLOCS:
            raise ValueError(f"input_altlocs must be one of {INPUT_ALTLOCS}")

    def resolved(self, default: float | None = None) -> "SplitOptions":
        """These options with a threshold: the one given, else `default` (a map head's), else
        DEFAULT_THRESHOLD (chosen for the network's p_flexible)."""
        if self.threshold is not None:
            return self
        return replace(self, threshold=DEFAULT_THRESHOLD if default is None else default)


@dataclass
class MulticonformerModel:
    structure: gemmi.Structure
    rows: list[dict]  # the report: one row per conformer written or rejected (REPORT_COLUMNS)
    # residue index -> [(altloc, occupancy, χ [D] radians)] as written, for split residues
    conformers: dict[int, list[tuple[str, float, torch.Tensor]]]
    expected_flexible: float  # Σ flexibility score over residues with χ
    n_split: int  # residues we split
    n_above_threshold: int  # rebuildable residues whose score reached the threshold
    n_observed_kept: int  # residues whose input altlocs were kept as they are
    options: SplitOptions
    remarks: list[str] = field(default_factory=list)
    with_map: bool = False  # alternatives and occupancies judged by a map (MAP_REPORT_COLUMNS)

    @property
    def n_multiconformer(self) -> int:
        """Residues with ≥ 2 side-chain conformers in the file: ours and the input's kept."""
        return self.n_split + self.n_observed_kept


class Copies(NamedTuple):
    """Symmetry copies found near some points (`Environment.copies`), one row per pair [H]."""

    point: np.ndarray  # [H] index of the point searched around
    atom: np.ndarray  # [H] index of the atom copied (a static atom, or a target)
    distance: np.ndarray  # [H] Å from the point to the copy
    op: np.ndarray  # [H] index into Environment.images: the operation g
    shift: np.ndarray  # [H, 3] whole cells: the atom less this sits near g(point)


def symmetry_images(st: gemmi.Structure) -> list[tuple[np.ndarray, np.ndarray]]:
    """The crystal's symmetry operations as Cartesian (R [3, 3], t [3]) with x' = x @ R.T + t,
    without lattice translations (`Environment` adds the ones it needs). The identity is first.
    [] for a model without a crystal: no cell, or the 1 Å P1 cell of cryo-EM and NMR files."""
    cell = st.cell
    if min(cell.a, cell.b, cell.c) <= 1.5 or not cell.is_crystal():
        return []
    sg = st.find_spacegroup() or gemmi.SpaceGroup("P 1")
    orth = np.array(cell.orth.mat.tolist())  # [3, 3] fractional -> Cartesian
    frac = np.array(cell.frac.mat.tolist())  # [3, 3] Cartesian -> fractional
    out = []
    for op in sg.operations():
        rot = np.array(op.rot, dtype=np.float64) / op.DEN  # [3, 3] on fractional coordinates
        tran = np.array(op.tran, dtype=np.float64) / op.DEN  # [3]
        out.append((orth @ rot @ frac, orth @ tran))
    out.sort(key=lambda rt: not (np.allclose(rt[0], np.eye(3)) and np.allclose(rt[1], 0)))
    return out


def polar(element: str) -> bool:
    return element in ("N", "O")


class Environment:
    """Every atom of the model being built (protein, waters, ligands, metals, hydrogens), its
    crystal-symmetry copies, and which of them coexist with altloc L.

    Static atoms (the model before any split) sit in a k-d tree; the alternatives written later
    are few and are searched by brute force. Symmetry copies are not stored: an atom at x is
    near the copy g(y) of atom y exactly when g⁻¹(x) is near y, so each alternative's atoms are
    mapped by every operation (and the lattice translations that bring them near the model) and
    looked up in the same tree. A residue's atoms are contiguous, so relabelling one residue
    touches only its own slice.
    """

    def __init__(self, st: gemmi.Structure):
        pos, rad, alt, name, desc, kind = [], [], [], [], [], []
        self.labels: dict[tuple[int, int], list[str]] = {}
        self.span: dict[tuple[int, int], tuple[int, int]] = {}
        res_id = []
        self.keys: list[tuple[int, int]] = []
        for ci, chain in enumerate(st[0]):
            for ri, r in enumerate(chain):
                key = (ci, ri)
                where = f"{chain.name} {r.seqid.num}{r.seqid.icode.strip()} {r.name}"
                self.labels[key] = sorted({a.altloc for a in r if a.has_altloc()})
                self.span[key] = (len(pos), len(pos) + len(r))
                heavy = [a for a in r if not a.is_hydrogen()]
                for a in r:
                    pos.append(a.pos.tolist())
                    rad.append(vdw_radius(a.element.name))
                    alt.append(a.altloc if a.has_altloc() else "")
                    name.append(a.name)
                    res_id.append(len(self.keys))
                    desc.append(f"{where} {a.name}")
                    if a.is_hydrogen():  # polar where it rides on N or O
                        on = min(heavy, key=lambda b: b.pos.dist(a.pos)) if heavy else None
                        kind.append(POLAR_H if on and polar(on.element.name) else 0)
                    else:
                        kind.append(POLAR if polar(a.element.name) else 0)
                self.keys.append(key)
        self.pos = np.array(pos, dtype=np.float64).reshape(-1, 3)  # [A, 3]
        self.radius = np.array(rad)  # [A]
        self.kind = np.array(kind, dtype=np.int8)  # [A] 0, POLAR or POLAR_H
        self.altloc = np.array(alt, dtype="<U1")  # [A], "" for blank
        self.name = np.array(name, dtype="<U4")  # [A]
        self.res = np.array(res_id, dtype=np.int64)  # [A] index into self.keys
        self.index = {key: k for k, key in enumerate(self.keys)}
        self._desc = desc
        self.tree = cKDTree(self.pos)
        self.reach = max(VDW_RADIUS.values())  # largest partner radius
        self.images = symmetry_images(st)
        if self.images:
            self.orth = np.array(st.cell.orth.mat.tolist())  # [3, 3] fractional -> Å
            self.frac = np.array(st.cell.frac.mat.tolist())  # [3, 3] Å -> fractional
            self.frac_pos = self.pos @ self.frac.T  # [A, 3] fractional, unwrapped
            # A periodic tree over the atoms wrapped into the unit cell finds every lattice
            # copy at once, however far the model's atoms spread over neighbouring cells.
            wrapped = np.mod(self.frac_pos, 1.0)
            self.cell_tree = cKDTree(np.where(wrapped >= 1.0, 0.0, wrapped), boxsize=1.0)
            self.frac_scale = float(np.linalg.norm(self.frac, 2))  # Å -> fractional, at most
        # Alternatives written so far, per altloc: positions [Q, 3], radii [Q], residue [Q],
        # atom names [Q], polar kind [Q].
        self.added: dict[str, tuple[np.ndarray, ...]] = {}

    def describe(self, j: int, image: bool = False, own: bool = False) -> str:
        """'A 45 LEU CD1B': residue, atom name and current altloc of static atom j; a symmetry
        copy says so ('symmetry copy of …', or 'its own symmetry copy (…)')."""
        return _partner(self._desc[j] + self.altloc[j], image, own)

    def describe_added(self, res: tuple[int, int], name: str, altloc: str, image=False, own=False):
        """The same for an atom of an alternative written later (its residue's first atom
        gives the residue part)."""
        first, _ = self.span[res]
        return _partner(f"{self._desc[first].rsplit(' ', 1)[0]} {name}{altloc}", image, own)

    def _present(self, j: np.ndarray, label: str) -> np.ndarray:
        """[J] bool: static atoms j that exist in the model's state `label`."""
        alt = self.altloc[j]
        out = (alt == "") | (alt == label)
        for r in np.unique(self.res[j[~out]]):  # split residues near the alternative: few
            labels = self.labels[self.keys[r]]
            if label not in labels:  # residue lacks L: its first altloc stands in
                out |= (self.res[j] == r) & (alt == labels[0])
        return out

    def copies(self, flat: np.ndarray, cutoff: float, targets: np.ndarray | None = None) -> Copies:
        """Symmetry copies within `cutoff` Å of the points `flat` [Q, 3], one row per (point,
        copy). An atom y has a copy g(y) near x exactly when g⁻¹(x) is near y, so every
        operation g maps the points and the periodic tree finds the atoms near them in any cell;
        the identity's own cell (the model itself) is left to the plain search. `targets` [T, 3]
        (Å) are searched instead of the model's static atoms, by brute force. A file that also
        holds symmetry-related chains (4YL3's three) meets its own duplicates this way: one copy
        cannot be split alone, since its twin stays where the split would go.
        """
        src, dst, dist, ops, shifts = [], [], [], [], []
        if not self.images:
            return Copies(*(np.zeros(0, dtype=np.int64),) * 2, np.zeros(0),
                          np.zeros(0, dtype=np.int64), np.zeros((0, 3)))  # fmt: skip
        target_frac = None if targets is None else targets @ self.frac.T  # [T, 3]
        for k, (rot, tran) in enumerate(self.images):
            fq = (flat @ rot.T + tran) @ self.frac.T  # [Q, 3] fractional, g(x)
            if target_frac is None:
                hits = self.cell_tree.query_ball_point(np.mod(fq, 1.0), cutoff * self.frac_scale)
                s_ = np.repeat(np.arange(len(flat)), [len(h) for h in hits])
                d_ = np.fromiter((j for h in hits for j in h), dtype=np.int64, count=len(s_))
                raw = self.frac_pos[d_] - fq[s_]  # [H, 3]
            else:
                s_, d_ = (x.ravel() for x in np.indices((len(flat), len(target_frac))))
                raw = target_frac[d_] - fq[s_]
            shift = np.round(raw)  # the lattice translation of the nearest copy
            gap = np.linalg.norm((raw - shift) @ self.orth.T, axis=1)
            keep = gap <= cutoff
            if k == 0:  # the identity: only copies in other cells
                keep &= np.abs(shift).sum(1) > 0
            src.append(s_[keep])
            dst.append(d_[keep])
            dist.append(gap[keep])
            ops.append(np.full(int(keep.sum()), k))
            shifts.append(shift[keep])
        return Copies(*(np.concatenate(x) for x in (src, dst, dist, ops, shifts)))

    def copy_positions(self, found: Copies) -> np.ndarray:
        """[H, 3] Å: where the static atoms' copies `found` (by `copies`, without targets) sit.
        The atom y less `shift` cells lies near g(x) = x @ R.T + t, so its copy near x is
        g⁻¹(y - shift) = (y - shift - t) @ R: a crystal operation's Cartesian rotation is
        orthogonal."""
        rot = np.stack([r for r, _ in self.images])[found.op]  # [H, 3, 3]
        tran = np.stack([t for _, t in self.images])[found.op]  # [H, 3]
        moved = self.pos[found.atom] - found.shift @ self.orth.T - tran  # [H, 3]
        return np.einsum("hi,hij->hj", moved, rot)  # [H, 3]

    def symmetry_copies(self, xyz: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
        """The model's symmetry copies within `cutoff` Å of any of xyz [P, 3], each copy once:
        (static atom [S], where its copy sits, Å [S, 3]). An atom on a special position, which
        an operation maps onto itself, is there already and is not a copy."""
        found = self.copies(xyz, cutoff)
        where = self.copy_positions(found)  # [H, 3]
        moved = np.linalg.norm(where - self.pos[found.atom], axis=1) >= 1e-3
        atom, where = found.atom[moved], where[moved]
        # One copy found from several points, or by two operations of a special position
        _, first = np.unique(np.column_stack([atom, np.round(where, 2)]), axis=0,
                             return_index=True)  # fmt: skip
        first.sort()
        return atom[first], where[first]

    def near(
        self,
        pos: np.ndarray,  # [M, P, 3] moving atoms of M alternatives of one residue
        names: list[str],  # [P]
        radius: np.ndarray,  # [P]
        kinds: np.ndarray,  # [P] 0 or POLAR
        own: tuple[int, int],
        moving: set[str],  # file names of the residue's own atoms that the alternatives replace
    ) -> tuple[np.ndarray, ...]:
        """Static atoms near any alternative, its symmetry copies included, in one search per
        image: (alternative [H], static atom [H], overlap Å [H], symmetry copy? [H]). Left out:
        the residue's own atoms in the asymmetric unit, the copies of its own moving atoms (the
        input side chain, another altloc)."""
        m, p = pos.shape[:2]
        flat = pos.reshape(-1, 3)
        me = self.index[own]
        cutoff = radius.max() + self.reach
        hits = self.tree.query_ball_point(flat, cutoff)
        src = np.repeat(np.arange(m * p), [len(h) for h in hits])  # [H]
        dst = np.fromiter((j for h in hits for j in h), dtype=np.int64, count=len(src))
        keep = self.res[dst] != me
        src, dst = src[keep], dst[keep]
        d = np.linalg.norm(flat[src] - self.pos[dst], axis=1)
        s_img, d_img, dist_img, *_ = self.copies(flat, cutoff)
        # the copies of its own moving atoms are the input side chain: another altloc
        keep = ~((self.res[d_img] == me) & np.isin(self.name[d_img], list(moving)))
        src = np.concatenate([src, s_img[keep]])
        dst = np.concatenate([dst, d_img[keep]])
        d = np.concatenate([d, dist_img[keep]])
        image = np.arange(len(src)) >= len(src) - int(keep.sum())
        ov = _overlap(radius[src % p], self.radius[dst], kinds[src % p], self.kind[dst], d)
        return src // p, dst, ov, image

    def worst_overlap(
        self,
        near: tuple[np.ndarray, ...],  # from `near`
        k: int,  # which alternative
        pos: np.ndarray,  # [P, 3] its moving atoms
        names: list[str],  # [P]
        radius: np.ndarray,  # [P]
        kinds: np.ndarray,  # [P]
        own: tuple[int, int],
        label: str,  # the altloc it would get
    ) -> tuple[float, str]:
        """The largest overlap (Å, `_overlap`) of alternative k with the environment in state
        `label`, symmetry copies included, and the partner atom; (-inf, "") when nothing is
        near."""
        alt_k, dst, ov, image = near
        sel = alt_k == k
        dst, ov, image = dst[sel], ov[sel], image[sel]
        present = self._present(dst, label)
        worst, partner = -math.inf, ""
        me = self.index[own]
        if present.any():
            best = int(np.argmax(np.where(present, ov, -np.inf)))
            j = int(dst[best])
            worst = float(ov[best])
            partner = self.describe(j, bool(image[best]), self.res[j] == me)
        # Alternatives with the same letter coexist with this one, and so does its own copy.
        apos, arad, ares, aname, akind = self.added.get(label, _NONE)
        apos = np.concatenate([apos, pos])
        arad, akind = np.concatenate([arad, radius]), np.concatenate([akind, kinds])
        ares = np.concatenate([ares, np.full(len(names), me)])
        aname = np.concatenate([aname, np.array(names, dtype="<U4")])
        d = np.linalg.norm(pos[:, None] - apos[None], axis=-1)  # [P, Q] in the model
        o = _overlap(radius[:, None], arad[None], kinds[:, None], akind[None], d)
        o[:, ares == me] = -math.inf
        pairs = [(False, o)]
        s_img, d_img, dist_img, *_ = self.copies(pos, radius.max() + self.reach, targets=apos)
        if len(s_img):  # and their symmetry copies, its own included
            o = np.full((len(pos), len(apos)), -math.inf)
            ov = _overlap(radius[s_img], arad[d_img], kinds[s_img], akind[d_img], dist_img)
            np.maximum.at(o, (s_img, d_img), ov)
            pairs.append((True, o))
        for image, o in pairs:
            if o.size == 0:
                continue
            p, q_ = np.unravel_index(int(np.argmax(o)), o.shape)
            if o[p, q_] > worst:
                worst = float(o[p, q_])
                partner = self.describe_added(self.keys[ares[q_]], str(aname[q_]), label,
                                              image, ares[q_] == me)  # fmt: skip
        return worst, partner

    def split(self, res: tuple[int, int], moving: set[str], labels: list[str]) -> None:
        """Residue `res` now has altlocs `labels`; its static `moving` atoms (names as in the
        file, hydrogens included) become the first one."""
        self.labels[res] = sorted(labels)
        a, b = self.span[res]
        self.altloc[a:b] = np.where(np.isin(self.name[a:b], list(moving)), labels[0], "")

    def add(self, res, label: str, pos, radius, names: list[str], kinds: np.ndarray):
        """An alternative written with altloc `label`: appended to that letter's arrays."""
        new = (
            pos,
            radius,
            np.full(len(names), self.index[res]),
            np.array(names, dtype="<U4"),
            kinds,
        )
        old = self.added.get(label)
        self.added[label] = (
            new
            if old is None
            else tuple(np.concatenate([a, b]) for a, b in zip(old, new, strict=True))
        )


POLAR, POLAR_H = 1, 2  # atom kinds for the hydrogen-bond allowance
POLAR_CONTACT = 2.9  # Å: N/O pairs clash (overlap ≥ 0.4) below 2.5 Å
POLAR_H_CONTACT = 1.9  # Å: a hydrogen on N/O and an N/O acceptor clash below 1.5 Å
_NONE = (np.zeros((0, 3)), np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype="<U4"),
         np.zeros(0, dtype=np.int8))  # fmt: skip


def _overlap(r_a, r_b, kind_a, kind_b, d) -> np.ndarray:
    """How far each pair is inside its contact distance, Å: r_a + r_b − d (Bondi radii), except
    pairs that may hydrogen-bond: N/O with N/O (POLAR_CONTACT − d) and N/O with a hydrogen on
    N/O (POLAR_H_CONTACT − d). So with the 0.4 Å cut-off a hydrogen bond is no clash and N/O
    pairs clash below 2.5 Å, the allowance MolProbity makes."""
    both = (kind_a == POLAR) & (kind_b == POLAR)
    h_bond = ((kind_a == POLAR) & (kind_b == POLAR_H)) | ((kind_a == POLAR_H) & (kind_b == POLAR))
    contact = np.where(both, POLAR_CONTACT, np.where(h_bond, POLAR_H_CONTACT, r_a + r_b))
    return contact - d


def _partner(what: str, image: bool, own: bool) -> str:
    if not image:
        return what
    return f"its own symmetry copy ({what})" if own else f"symmetry copy of {what}"


def _occupancies(mass: np.ndarray, min_occ: float, floor: float) -> tuple[list[float], str]:
    """Mass [M] (input first) → occupancies rounded to 0.01, summing to 1, and why the input's
    is what it is. The input keeps at least `floor` (the library prior's share of its rotamer
    well) and at least `min_occ`; the alternatives share the rest in proportion to their mass."""
    occ = np.asarray(mass, dtype=np.float64) / np.sum(mass)
    why = f"mixture mass {occ[0]:.2f}"
    low = max(floor, min_occ)
    if occ[0] < low:
        occ[1:] = occ[1:] * (1.0 - low) / occ[1:].sum()
        why = (f"raised from mixture mass {occ[0]:.2f} to the library prior's share of this "
               f"rotamer well, {floor:.2f}" if floor >= min_occ else
               f"raised from mixture mass {occ[0]:.2f} to the minimum occupancy")  # fmt: skip
        occ[0] = low
    out = [0.0] + [round(float(o), 2) for o in occ[1:]]
    out[0] = round(1.0 - sum(out[1:]), 2)
    return out, why


def _chi_deg(chi: torch.Tensor, n_chi: int) -> dict:
    """χ in degrees to 0.01, "" past n_chi or where unmeasurable."""
    out = {}
    values = chi.tolist()
    for d in range(residues.N_CHI_MAX):
        v = values[d] if d < n_chi else math.nan
        out[f"chi{d + 1}"] = "" if math.isnan(v) else round(math.degrees(v), 2)
    return out


def build_multiconformer(
    parsed: ParsedStructure,
    selection: Selection,
    score: torch.Tensor,  # [N] flexibility score per residue
    options: SplitOptions | None = None,
    prior_draws: torch.Tensor | None = None,  # [C, N, D] draws of the library prior, if any
    maps: MapPair | None = None,
    tick: Tick = no_tick,
    scans: list[RingerScan | None] | None = None,  # [N] Ringer scans on `maps`, if kept
) -> MulticonformerModel:
    """The multiconformer model and its report (see the module docstring for the rules). With
    `maps`, alternatives are kept only where the map supports them and occupancies are fitted
    to it (`map_support`); the map's proposals start from `scans` (`ResidueEvidence.scans`)
    where they are of the input side chain, else scan it. `tick(done, total)` hears the side
    chains tried."""
    options = (options or SplitOptions()).resolved()
    if len(score) != len(parsed.residues):
        raise ValueError(f"{len(score)} scores for {len(parsed.residues)} residues")
    score = score.tolist()  # [N] floats: read per residue below
    replace = options.input_altlocs == "replace"
    collapse = {i for i, rec in enumerate(parsed.residues) if replace and rec.n_obs >= 2}
    st = input_model(parsed, collapse)  # every input atom; `collapse` at its primary conformer
    where = {i: parsed.input_position(rec) for i, rec in enumerate(parsed.residues)}
    kept = [i for i in range(len(parsed.residues)) if i not in collapse
            and any(a.has_altloc() for a in st[0][where[i][0]][where[i][1]])]  # fmt: skip
    env = Environment(st)
    judge = None if maps is None else MapJudge.of(st, env, maps, parsed.resolution)
    rows: list[dict] = []
    written: dict[int, list[tuple[str, float, torch.Tensor]]] = {}
    n_chi = [residues.n_chi(rec.parent) if rec.parent else 0 for rec in parsed.residues]
    with_chi = [i for i in range(len(n_chi)) if n_chi[i] > 0]
    above = [i for i in with_chi
             if rebuildable(parsed.residues[i]) and score[i] >= options.threshold]  # fmt: skip
    kept_set = set(kept)
    rows += _observed_rows(parsed, st, where, kept, score, n_chi)
    rows += _replaced_rows(parsed, sorted(collapse), score, n_chi)
    bonded = _disulfides(st, {i: where[i] for i in above if i not in kept_set})
    for i in bonded:
        rows.append(_row(i, parsed.residues[i], score[i], "", "", _input_chi(parsed.residues[i]),
                         n_chi[i], "input", "kept as in the input",
                         note="its SG is in a disulfide bond"))  # fmt: skip
    candidates = [i for i in above if i not in kept_set and i not in bonded]
    map_slot = -1  # the selection's slot that holds the map's proposals, -1 without
    if judge is not None and options.map_proposals:
        selection, map_slot = _with_map_proposals(parsed, selection, candidates, maps, scans)
    prepared = _prepare(parsed, selection, candidates, prior_draws)
    for done, i in enumerate(sorted(candidates, key=lambda j: (-score[j], j))):
        tick(done, len(candidates))
        rec = parsed.residues[i]
        d = n_chi[i]
        prep = prepared[i]
        chi_in = prep["chi_in"]
        if prep["incomplete"]:
            rows.append(_row(i, rec, score[i], "", "", chi_in, d, "input", "side chain incomplete"))
            continue
        moving = moving_atoms(rec)
        own = where[i]
        back = residues.file_atom_names(rec.resname)
        res = st[0][own[0]][own[1]]
        input_occ = {a.name: a.occ for a in res}
        # The input's moving atoms, file names, hydrogens riding on them included.
        own_moving = _riding(res, {back.get(n, n) for n in moving})
        accepted: list[tuple[torch.Tensor, dict]] = []
        rejected: list[dict] = []
        # distinct proposals, heaviest first; the map's first: its density is the evidence
        keep_k = sorted(prep["keep"], key=lambda k: k != map_slot)
        sources = ["map" if k == map_slot else "predicted" for k in keep_k]
        if keep_k:
            built = {n: x[keep_k] for n, x in prep["built"].items()}  # [M', 3] numpy
            cands = prep["chi"][keep_k]  # [M', D] as written
            mass_all = [prep["mass"][k + 1] for k in keep_k]  # [M'] vs input and each other
            names = [n for n in moving if n in built and back.get(n, n) in own_moving]
            pos = np.stack([built[n] for n in names], axis=1)  # [M', P, 3]
            radius = np.array([vdw_radius(residues.element_of(n)) for n in names])  # [P]
            kinds = np.array([POLAR if polar(residues.element_of(n)) else 0 for n in names])
            near = env.near(pos, names, radius, kinds, own, own_moving)  # one search for all
            if judge is not None:  # the input side chain first, then each candidate
                base_np = {n: x.numpy() for n, x in prep["base"].items()}
                ev = judge.evidence(base_np, rec.parent, prep["chi_in_np"], cands.numpy())
                seen = _density_fields(ev, 0)
        for k, chi in enumerate(cands if keep_k else []):
            if len(accepted) >= options.max_conformers - 1:
                break
            mass_k = round(float(mass_all[k]), 2)
            if eclipsed_chi1(chi):
                rejected.append(_row(i, rec, score[i], "", "", chi, d, sources[k],
                                     "rejected: eclipsed chi1", mass=mass_k))  # fmt: skip
                continue
            density = {} if judge is None else _density_fields(ev, k + 1)
            if judge is not None and not judge.supports(ev, k + 1):
                rejected.append(_row(i, rec, score[i], "", "", chi, d, sources[k],
                                     "rejected: no density", mass=mass_k,
                                     note=NO_DENSITY_NOTE, **density))  # fmt: skip
                continue
            if judge is None and mass_all[k] < options.min_occupancy:
                rejected.append(_row(i, rec, score[i], "", "", chi, d, sources[k],
                                     "below minimum occupancy", mass=mass_k))  # fmt: skip
                continue
            label = ALTLOCS[len(accepted) + 1]
            worst, partner = env.worst_overlap(near, k, pos[k], names, radius, kinds, own, label)
            if worst >= options.overlap:
                rejected.append(_row(i, rec, score[i], "", "", chi, d, sources[k],
                                     "rejected: clash", overlap=round(worst, 2), partner=partner,
                                     mass=mass_k, **density))  # fmt: skip
                continue
            atoms = {n: x[k] for n, x in built.items()}
            accepted.append((chi, {"pos": pos[k], "names": names, "atoms": atoms, "k": k,
                                   "overlap": worst, "partner": partner,
                                   "density": density, "source": sources[k]}))  # fmt: skip
        if not accepted and not rejected:
            rows.append(
                _row(i, rec, score[i], "", "", chi_in, d, "input", "no distinct alternative")
            )
            continue
        occ, why = [1.0], ""
        if judge is not None and accepted:
            occ, mass = _map_occupancies(judge, env, rec, res, own, own_moving, prep, accepted,
                                         rejected, (near, radius, kinds), options,
                                         (i, score[i], d))  # fmt: skip
            why = MAP_OCCUPANCY_NOTE
        while accepted and judge is None:
            centres = np.stack([prep["chi_in_np"], *(a[0].numpy() for a in accepted)])
            mass = prep["nearest_mass"](centres)  # [1 + M] mixture share of each well
            floor = float(prep["prior_mass"](centres)[0]) if prep["prior_mass"] else 0.0
            occ, why = _occupancies(mass, options.min_occupancy, floor)
            if min(occ[1:]) >= options.min_occupancy - 1e-9:
                break
            chi, a = accepted.pop()  # the last one: the labels of the others stay as screened
            rejected.append(_row(i, rec, score[i], "", "", chi, d, a["source"],
                                 "below minimum occupancy", mass=round(float(mass[-1]), 2),
                                 note=f"{occ[-1]:.2f} once the input keeps its share"))  # fmt: skip
        if accepted:
            labels = list(ALTLOCS[: len(accepted) + 1])
            relabelled = split_residue(res, rec, [a[1]["atoms"] for a in accepted], labels, occ,
                                       moving)  # fmt: skip
            env.split(own, relabelled, labels)
            written[i] = [(labels[0], occ[0], chi_in)]
            was = _side_chain_occupancy(input_occ, relabelled)
            if was is not None:  # the input's occupancy of these atoms, now the split's
                why += f"; the input gave its side chain {was}"
            rows.append(_row(i, rec, score[i], "A", occ[0], chi_in, d, "input", "written",
                             mass=round(float(mass[0]), 2), note=why,
                             **(seen if judge else {})))  # fmt: skip
            for (chi, a), label, o, m in zip(accepted, labels[1:], occ[1:], mass[1:], strict=True):
                file_names = [back.get(n, n) for n in a["names"]]
                env.add(own, label, a["pos"], radius, file_names, kinds)
                written[i].append((label, o, chi))
                rows.append(_row(i, rec, score[i], label, o, chi, d, a["source"], "written",
                                 overlap=round(a["overlap"], 2) if a["partner"] else "",
                                 partner=a["partner"], mass=round(float(m), 2),
                                 note=MAP_OCCUPANCY_NOTE if judge else
                                 "mixture mass, scaled with the others to sum to 1",
                                 **a["density"]))  # fmt: skip
        else:
            rows.append(_row(i, rec, score[i], "", "", chi_in, d, "input", "not split",
                             **(seen if judge and keep_k else {})))  # fmt: skip
        rows.extend(rejected)
    tick(len(candidates), len(candidates))
    st.assign_label_seq_id()  # mmCIF readers that go by label_seq_id (Mol*) need it
    rows.sort(key=lambda r: r["index"])  # stable: within a residue, written before rejected
    return MulticonformerModel(
        structure=st,
        rows=rows,
        conformers=written,
        expected_flexible=float(sum(score[i] for i in with_chi)),
        n_split=len(written),
        n_above_threshold=len(above),
        n_observed_kept=len(kept),
        options=options,
        remarks=[B_FACTOR_REMARK, KEEP_REMARK, *([MAP_REMARK] if maps is not None else [])],
        with_map=maps is not None,
    )


def _density_fields(ev, k: int) -> dict:
    """MAP_REPORT_COLUMNS of candidate k of `MapJudge.evidence` (0: the input side chain)."""
    diff = "" if ev.difference is None else round(float(ev.difference[k]), 2)
    return {
        "density_2fofc": round(float(ev.candidates[k]), 2),
        "density_fofc": diff,
        "density_vs_input": round(float(ev.candidates[k] - ev.candidates[0]), 2),
    }


def _map_occupancies(judge, env, rec, res, own, own_moving, prep, accepted, rejected, screen,
                     options, where):  # fmt: skip
    """Occupancies of the input side chain and the `accepted` alternatives fitted to the map
    (NNLS). The alternative the fit gives least is dropped while it is below `min_occupancy`,
    and the fit redone; alternatives whose letter then changes are screened for clashes again
    under it. Updates `accepted` and `rejected` in place; returns (occupancies rounded to 0.01
    summing to 1, mixture mass [1 + M] of the conformers kept, for the report)."""
    i, score_i, d = where
    near, radius, kinds = screen
    names = accepted[0][1]["names"]  # the moving heavy atoms, the same for every alternative
    back = residues.file_atom_names(rec.resname)
    file_atoms = {a.name: a for a in res}
    b = np.array([file_atoms[back.get(n, n)].b_iso for n in names])  # [P]
    z = np.array([gemmi.Element(residues.element_of(n)).atomic_number for n in names], float)
    input_xyz = np.stack([prep["base"][n].numpy() for n in names])  # [P, 3]
    own_atoms = (env.res == env.index[own]) & np.isin(env.name, list(own_moving))  # [A]
    fit = np.ones(1)
    while accepted:
        fit = judge.occupancies([input_xyz, *(a["pos"] for _, a in accepted)], z, b, own_atoms)
        if np.isnan(fit).all():  # the map gives no conformer any weight: nothing to split on
            for chi, a in accepted:
                rejected.append(_row(i, rec, score_i, "", "", chi, d, a["source"],
                                     "rejected: no density", note="the map's fit gives it no "
                                     "weight", **a["density"]))  # fmt: skip
            accepted.clear()
            fit = np.ones(1)
            break
        low = int(np.argmin(fit[1:]))
        if fit[1 + low] >= options.min_occupancy - 1e-9:
            break
        chi, a = accepted.pop(low)
        rejected.append(_row(i, rec, score_i, "", "", chi, d, a["source"],
                             "below minimum occupancy", note=f"{fit[1 + low]:.2f} from the map "
                             "(NNLS)", **a["density"]))  # fmt: skip
        j = low  # the letters after it move up by one: screen each under its new letter
        while j < len(accepted):
            chi, a = accepted[j]
            worst, partner = env.worst_overlap(near, a["k"], a["pos"], names, radius, kinds,
                                               own, ALTLOCS[j + 1])  # fmt: skip
            if worst >= options.overlap:  # the next one moves into place j
                accepted.pop(j)
                rejected.append(_row(i, rec, score_i, "", "", chi, d, a["source"],
                                     "rejected: clash", overlap=round(worst, 2),
                                     partner=partner, **a["density"]))  # fmt: skip
                continue
            a["overlap"], a["partner"] = worst, partner
            j += 1
    centres = np.stack([prep["chi_in_np"], *(c.numpy() for c, _ in accepted)])
    mass = prep["nearest_mass"](centres)  # [1 + M]
    return rounded(fit, options.min_occupancy), mass


def _with_map_proposals(parsed, selection: Selection, candidates: list[int], maps: MapPair,
                        scans: list[RingerScan | None] | None):  # fmt: skip
    """(`selection` with one more slot holding the map's proposal for each candidate residue,
    valid where the map made one; that slot's index)."""
    n, m, _ = selection.chi.shape
    extra = selection.chi[:, :1].clone()  # [N, 1, D] a copy of the first where no proposal
    valid = torch.zeros(n, 1, dtype=torch.bool)
    for i in candidates:
        rec = parsed.residues[i]
        base = {k: v.numpy() for k, v in base_atoms(rec).items()}
        network = selection.chi[i][selection.valid[i]].double().numpy()  # [M_i, D]
        chi = propose(base, rec.parent, network, maps, None if scans is None else scans[i])
        if chi is not None:
            extra[i, 0] = torch.as_tensor(chi, dtype=extra.dtype)
            valid[i, 0] = True
    return dataclasses.replace(
        selection,
        chi=torch.cat([selection.chi, extra], 1),  # [N, M + 1, D]
        mass=torch.cat([selection.mass, torch.zeros(n, 1)], 1),
        valid=torch.cat([selection.valid, valid], 1),
    ), m


DISULFIDE = 2.5  # Å: SG–SG closer than this are bonded


def _disulfides(st: gemmi.Structure, where: dict[int, tuple[int, int]]) -> set[int]:
    """Residues among `where` whose SG is bonded to another SG: turning χ1 would break the
    bond, so they are not split."""
    sg = [(ci, ri, a.pos) for ci, ch in enumerate(st[0]) for ri, r in enumerate(ch)
          for a in r if a.name == "SG"]  # fmt: skip
    out = set()
    for i, (ci, ri) in where.items():
        mine = [p for c, r, p in sg if (c, r) == (ci, ri)]
        if any(p.dist(q) < DISULFIDE for p in mine for c, r, q in sg if (c, r) != (ci, ri)):
            out.add(i)
    return out


def _side_chain_occupancy(input_occ: dict, names: set[str]) -> str | None:
    """The input's occupancy of the atoms a split relabelled ("0.53", "0.47-0.88"), or None
    where it was 1 on all of them."""
    occ = sorted({round(input_occ[n], 2) for n in names if n in input_occ})
    if occ == [1.0]:
        return None
    return f"{occ[0]:.2f}" if len(occ) == 1 else f"{occ[0]:.2f}-{occ[-1]:.2f}"


def _riding(res: gemmi.Residue, heavy: set[str]) -> set[str]:
    """`heavy` atom names plus the hydrogens of `res` that ride on them (nearest heavy atom)."""
    atoms = [a for a in res if not a.is_hydrogen()]
    out = {a.name for a in atoms if a.name in heavy}
    for h in res:
        if h.is_hydrogen() and atoms:
            if min(atoms, key=lambda a: a.pos.dist(h.pos)).name in heavy:
                out.add(h.name)
    return out


def _input_chi(rec) -> torch.Tensor:
    """χ [D] of the primary input side chain (NaN where unmeasurable)."""
    if not rec.parent:
        return torch.full((residues.N_CHI_MAX,), math.nan)
    atoms = {n: torch.tensor(x) for n, x in {**rec.backbone, **rec.conformers[0].atoms}.items()}
    return measure_chis(atoms, rec.parent)


def _observed_rows(parsed, st, where, kept: list[int], score, n_chi) -> list[dict]:
    """Report rows of the residues written as the input has them because it models them with
    altlocs: one per altloc letter, with the occupancy the file holds (its side-chain atoms',
    or the backbone's for an altloc that splits only the backbone) and the χ of that altloc."""
    rows = []
    for i in kept:
        rec = parsed.residues[i]
        res = st[0][where[i][0]][where[i][1]]
        renames = residues.ATOM_RENAMES.get(rec.resname, {})
        letters = sorted({a.altloc for a in res if a.has_altloc()})
        occ_of, chis = {}, {}
        for alt in letters:
            mine = [a for a in res if a.altloc == alt and not a.is_hydrogen()]
            sc = [a for a in mine if renames.get(a.name, a.name) not in residues.BACKBONE_ATOMS]
            occ_of[alt] = file_occupancy(sc or mine or [a for a in res if a.altloc == alt])
            atoms = {renames.get(a.name, a.name): torch.tensor(a.pos.tolist(), dtype=torch.float64)
                     for a in res if not a.is_hydrogen() and a.altloc in ("\0", alt)
                     and (a.altloc == alt or renames.get(a.name, a.name)
                          not in {renames.get(b.name, b.name) for b in mine})}  # fmt: skip
            chis[alt] = (measure_chis(atoms, rec.parent) if rec.parent
                         else torch.full((residues.N_CHI_MAX,), math.nan))  # fmt: skip
        total = sum(occ_of.values())
        for alt in letters:
            mine = [a for a in res if a.altloc == alt and not a.is_hydrogen()]
            only_backbone = all(renames.get(a.name, a.name) in residues.BACKBONE_ATOMS
                                for a in mine)  # fmt: skip
            # the reader's verdict: side chains within 0.05 Å on every atom are one conformer
            merged = next((c.altlocs for c in rec.conformers if alt in c.altlocs), alt)
            twin = merged[0] if merged[0] != alt else None
            notes = []
            if only_backbone:
                notes.append("altloc of the backbone only")
            elif twin:
                notes.append(f"same side chain as {twin}")
            if abs(total - 1.0) > 0.011:
                notes.append(f"the residue's altlocs sum to {total:.2f} in the input, "
                             "written as they are")  # fmt: skip
            rows.append(_row(i, rec, score[i], alt, occ_of[alt], chis[alt], n_chi[i],
                             "observed", "kept as in the input",
                             note="; ".join(notes)))  # fmt: skip
    return rows


def file_occupancy(atoms) -> float:
    """The occupancy a report gives for a group of atoms of one altloc: their mean, to 0.01
    (a file's atoms of one altloc almost always share one value)."""
    return round(float(np.mean([a.occ for a in atoms])), 2)


def _replaced_rows(parsed, collapsed: list[int], score, n_chi) -> list[dict]:
    """Report rows of the input altlocs that `replace` took out (not in the file)."""
    rows = []
    for i in collapsed:
        rec = parsed.residues[i]
        for conf in rec.conformers:
            atoms = {n: torch.tensor(x) for n, x in {**rec.backbone, **conf.atoms}.items()}
            chi = measure_chis(atoms, rec.parent) if rec.parent else torch.full((4,), math.nan)
            rows.append(_row(i, rec, score[i], "", "", chi, n_chi[i], "observed",
                             "replaced", note=f"input altloc {conf.altlocs or conf.altloc} at "
                             f"{conf.file_occ:.2f}; the residue starts from its primary "
                             "conformer"))  # fmt: skip
    return rows


def _prepare(
    parsed: ParsedStructure,
    selection: Selection,
    candidates: list[int],
    prior_draws: torch.Tensor | None = None,  # [C, N, D]
) -> dict:
    """Per candidate residue, everything that does not depend on the other residues, computed
    in one batched pass per residue type (and set of atoms present):

    base (input atoms), chi_in [D] (input χ), built {atom: [M, 3]} (every proposed conformer,
    at the 0.001 Å a PDB file holds, so screened, reported and written atoms are one), chi
    [M, D] (χ as written: rounding moves them by < 0.1°), distinct [M] (a valid proposal ≥ 20°
    from the input on some χ), mass [1 + M] (share of the draws nearest the input and each
    distinct proposal), nearest_mass / prior_mass (the same share for given centres, of the
    mixture's draws and of the library prior's; prior_mass None without a prior).
    """
    groups: dict[tuple, list[int]] = {}
    bases = {}
    for i in candidates:
        rec = parsed.residues[i]
        bases[i] = base_atoms(rec)
        groups.setdefault((rec.parent, tuple(sorted(bases[i]))), []).append(i)
    sep = math.radians(SEPARATION_DEG)
    out = {}
    for (parent, names), idx in groups.items():
        stack = {n: torch.stack([bases[i][n] for i in idx]) for n in names}  # [R, 3]
        chi_in = measure_chis(stack, parent).float()  # [R, D]
        built = set_chis({n: x[:, None] for n, x in stack.items()}, parent,
                         selection.chi[idx].double())  # fmt: skip  # [R, M, 3] each
        built = {n: torch.round(x * 1000.0) / 1000.0 for n, x in built.items()}
        chi = measure_chis(built, parent).float()  # [R, M, D]
        d = residues.n_chi(parent)
        defined = torch.arange(residues.N_CHI_MAX) < d  # [D]
        sym = torch.tensor(residues.pi_symmetric(parent))  # [D]
        distinct = selection.valid[idx] & (chi_distance(chi, chi_in[:, None], defined, sym) >= sep)
        centres = torch.cat([chi_in[:, None], chi], 1)  # [R, 1 + M, D]
        draws = selection.draws[:, idx].transpose(0, 1)  # [R, C, D]
        dist = chi_distance(draws[:, :, None], centres[:, None], defined, sym)  # [R, C, 1 + M]
        allowed = torch.cat([torch.ones(len(idx), 1, dtype=torch.bool), distinct], 1)
        dist = torch.where(allowed[:, None], dist, torch.full_like(dist, math.inf))
        near = dist.argmin(-1)  # [R, C]
        mass = torch.zeros(centres.shape[:2]).scatter_add_(1, near, torch.ones(near.shape))
        mass = mass / draws.shape[1]
        built = {n: x.numpy() for n, x in built.items()}
        incomplete = torch.isnan(chi_in[:, :d]).any(-1).tolist()
        keep = [torch.nonzero(row).flatten().tolist() for row in distinct]
        draws_np, defined_np, sym_np = draws.numpy(), defined.numpy(), sym.numpy()
        for r, i in enumerate(idx):
            out[i] = {
                "base": bases[i],
                "chi_in": chi_in[r],
                "chi_in_np": chi_in[r].numpy(),
                "incomplete": incomplete[r],
                "built": {n: x[r] for n, x in built.items()},
                "chi": chi[r],
                "keep": keep[r],
                "mass": mass[r].tolist(),
                "nearest_mass": functools.partial(
                    _nearest_mass, draws_np[r], defined=defined_np, sym=sym_np
                ),
                "prior_mass": None
                if prior_draws is None
                else functools.partial(
                    _nearest_mass, prior_draws[:, i].numpy(), defined=defined_np, sym=sym_np
                ),
            }
    return out


def _nearest_mass(draws: np.ndarray, centres: np.ndarray, defined, sym) -> np.ndarray:
    """conformers.nearest_mass in numpy (it runs once per split residue on a few centres):
    [M] share of draws [C, D] nearest each centre [M, D], ties to the earlier."""
    d = np.remainder(draws[:, None] - centres[None], 2.0 * np.pi)  # [C, M, D]
    d = np.minimum(d, 2.0 * np.pi - d)
    d = np.where(sym, np.minimum(d, np.pi - d), d)
    near = np.where(defined, d, 0.0).max(-1).argmin(1)  # [C]
    return np.bincount(near, minlength=len(centres)) / len(draws)


def _row(i, rec, score, altloc, occ, chi, n_chi, source, status, overlap="", partner="",
         mass="", note="", **density) -> dict:  # fmt: skip
    return {
        "index": i,  # residue index into parsed.residues (not written to the CSV)
        **rec.id.fields(),
        "resname": rec.resname,
        "flexibility": round(float(score), 3),
        "altloc": altloc,
        "occupancy": occ,
        "mass": mass,
        **_chi_deg(chi, n_chi),
        "source": source,
        "status": status,
        "overlap": overlap,
        "partner": partner,
        "note": note,
        **density,  # MAP_REPORT_COLUMNS, with a map
    }


def report_summary(model: MulticonformerModel) -> dict:
    """The structure-level numbers of the report (mixture.json's "multiconformer" entry)."""
    o = model.options
    return {
        "expected_flexible": round(
            model.expected_flexible, 2
        ),  # Σ flexibility over residues with χ
        "residues_with_2_or_more_conformers": model.n_multiconformer,
        "residues_split": model.n_split,
        "residues_at_or_above_threshold": model.n_above_threshold,
        "residues_with_input_altlocs_kept": model.n_observed_kept,
        "settings": {
            "threshold": o.threshold,
            "max_conformers": o.max_conformers,
            "min_occupancy": o.min_occupancy,
            "clash_overlap": o.overlap,
            "input_altlocs": o.input_altlocs,
        },  # fmt: skip
    }


def report_csv(model: MulticonformerModel) -> str:
    """The report as CSV: the REPORT_COLUMNS header first, so any CSV reader opens it, then one
    row per conformer. The structure-level numbers are in mixture.json (`report_summary`)."""
    import csv
    import io

    out = io.StringIO()
    columns = [*REPORT_COLUMNS, *(MAP_REPORT_COLUMNS if model.with_map else ())]
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(model.rows)
    return out.getvalue()
