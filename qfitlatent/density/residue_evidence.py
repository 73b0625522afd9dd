"""What the map says about each residue's side chain: a few numbers in σ, one row per residue.

These are the inputs of the map head (`posterior.py`). Each is something a modeller looks at
before building an alternative conformer:

    fofc_peak          mFo-DFc at the γ atom, highest peak ≥ 30° in χ1 from the modelled one
                       (Ringer on the difference map: unexplained density where a second
                       rotamer would put its γ atom)
    fofc_delta_peak    the same at the δ atom (χ2 kept), where the residue has one
    two_fofc_peak      2mFo-DFc at γ, highest peak ≥ 30° away (the classic Ringer scan)
    two_fofc_modelled  2mFo-DFc averaged over the modelled side chain's atoms beyond CB: a
                       side chain shared between conformers has weaker density
    fofc_modelled_min  lowest mFo-DFc at those atoms: negative where the model puts more
                       electrons than the crystal has (the modelled conformer is partial)
    fofc_near_max      highest mFo-DFc 1.2 Å around those atoms: a near-copy of the side chain
                       (< 30° in χ1, invisible to a χ1 scan) shows up as an adjacent lump

and, for the near-copies a χ1 scan misses (measured, not used by the shipped head; computed
only with `near_copy`, else NaN: `predict` asks for them where its head uses them or the caller
wants every column):

    fofc_chi2_peak     mFo-DFc at the δ atom as χ2 turns (χ1 as modelled), highest peak ≥ 30°
                       in χ2 from the modelled one: a copy that differs in χ2 only
    fofc_shift         mean over the side chain's atoms of (highest mFo-DFc 1.2 Å around the
                       atom − mFo-DFc at it): a whole shifted copy leaves a negative/positive
                       pair at every atom, a single noise peak at one
    two_fofc_side_vs_bb   mean 2mFo-DFc at the side chain's atoms − mean at N, CA, C, O: density
                       that fades along the side chain relative to the residue's own backbone
                       (a shared side chain), not just a weak, high-B surface residue
    two_fofc_tip_vs_bb    the same for the lowest 2mFo-DFc along the side chain

and from the model itself, read beside the map (issue 22, the B-factor evidence):

    b_side_vs_bb       mean B of the side chain beyond CB / mean B of N, CA, C, O: a single-
                       conformer refinement puts a side chain's unmodelled alternates into its
                       B. Only meaningful for B refined without altlocs (`bfactor.py`).
                       The shipped head (v2) reads it where there is no difference map
                       (its 2mFo-DFc-only fit; docs/density.md).

Residues the map cannot speak for (no χ1: Gly, Ala, Pro; a truncated side chain; outside a
cryo-EM box) get NaN; the caller keeps the network's answer for them and says so.
"""

import math
from dataclasses import dataclass

import numpy as np

from ..ensemble.sidechains import can_rebuild
from ..ideal import moved_by
from ..progress import Tick, no_tick
from ..structure import ParsedStructure, ResidueRecord
from .grid import MapPair, sample
from .ringer import RingerScan, away_from, chi1_steps, chi2_scan_positions, scan, second_peak

DIFFERENCE_FEATURES = (
    "fofc_peak",
    "fofc_delta_peak",
    "fofc_modelled_min",
    "fofc_near_max",
    "fofc_chi2_peak",
    "fofc_shift",
)
MAP_FEATURES = ("two_fofc_peak", "two_fofc_modelled", "two_fofc_side_vs_bb", "two_fofc_tip_vs_bb")
MODEL_FEATURES = ("b_side_vs_bb",)  # from the model, not read from the map
FEATURES = DIFFERENCE_FEATURES + MAP_FEATURES + MODEL_FEATURES
# The inputs of map head v1 (v2's with mFo-DFc too); the rest were measured against them.
DIFFERENCE_FEATURES_V1 = DIFFERENCE_FEATURES[:4]
MAP_FEATURES_V1 = MAP_FEATURES[:2]
FEATURES_V1 = DIFFERENCE_FEATURES_V1 + MAP_FEATURES_V1
# The costly ones (a χ2 scan, backbone density, a shifted copy), read only where asked; the
# side-chain B is the model's own number and costs nothing.
NEAR_COPY_FEATURES = DIFFERENCE_FEATURES[4:] + MAP_FEATURES[2:]
BACKBONE = ("N", "CA", "C", "O")
SHELL_RADIUS = 1.2  # Å: beside an atom, inside the reach of a slightly turned copy of it


def _shell_directions() -> np.ndarray:
    """[14, 3] unit vectors: the 6 axes and the 8 cube diagonals."""
    axes = np.concatenate([np.eye(3), -np.eye(3)])
    diag = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    return np.concatenate([axes, diag / math.sqrt(3.0)])


SHELL = _shell_directions() * SHELL_RADIUS  # [14, 3] Å


@dataclass
class ResidueEvidence:
    features: np.ndarray  # [N, F] in FEATURES order, σ; NaN where the map says nothing
    scans: list[RingerScan | None]  # [N] the Ringer scan behind the features, None where none
    has_difference: bool  # the maps include mFo-DFc (else its columns are all NaN)

    @property
    def scanned(self) -> np.ndarray:
        """[N] bool: the map speaks for this residue."""
        return np.array([s is not None for s in self.scans], dtype=bool)


def modelled_atoms(rec: ResidueRecord) -> dict[str, np.ndarray]:
    """The residue's heaviest side-chain conformer (the one a single-conformer model holds)."""
    return max(rec.conformers, key=lambda c: c.occ).atoms


def residue_features(
    rec: ResidueRecord, maps: MapPair, near_copy: bool = True
) -> tuple[np.ndarray, RingerScan | None]:
    """([F] features in FEATURES order, its Ringer scan) of one residue; NaN and None where the
    map cannot speak for it. Without `near_copy`, the NEAR_COPY_FEATURES are NaN, not read."""
    row = np.full(len(FEATURES), np.nan)
    if not rec.conformers or not can_rebuild(rec.parent):
        return row, None
    atoms = modelled_atoms(rec)
    try:
        ringer = scan(atoms, rec.parent, maps)
    except (KeyError, ValueError):  # backbone or CB missing: nothing to build γ from
        return row, None
    two = ringer.gamma.get(maps.two_fofc.label)
    if math.isnan(ringer.modelled_chi1) or two is None or not np.isfinite(two).all():
        return row, None
    side = [atoms[n] for n in moved_by(rec.parent, 0) if n in atoms]
    side_xyz = np.stack(side) if side else np.empty((0, 3))  # [P, 3]
    f = dict.fromkeys(FEATURES, np.nan)
    f["two_fofc_peak"] = second_peak(two, ringer.chi1, ringer.modelled_chi1)[0]
    if side:
        two_side = sample(maps.two_fofc, side_xyz)  # [P]
        f["two_fofc_modelled"] = float(np.mean(two_side))
        if near_copy:
            backbone = [rec.backbone[n] for n in BACKBONE if n in rec.backbone]
            two_bb = float(np.mean(sample(maps.two_fofc, np.stack(backbone))))
            f["two_fofc_side_vs_bb"] = f["two_fofc_modelled"] - two_bb
            f["two_fofc_tip_vs_bb"] = float(np.min(two_side)) - two_bb
    if maps.fofc is not None:
        diff = ringer.gamma[maps.fofc.label]
        f["fofc_peak"] = second_peak(diff, ringer.chi1, ringer.modelled_chi1)[0]
        delta = ringer.delta.get(maps.fofc.label)
        if delta is not None:
            f["fofc_delta_peak"] = float(
                np.nanmax(delta[away_from(ringer.chi1, ringer.modelled_chi1)])
            )
        if side:
            at = sample(maps.fofc, side_xyz)  # [P]
            f["fofc_modelled_min"] = float(np.nanmin(at))
            around = sample(maps.fofc, side_xyz[:, None, :] + SHELL)  # [P, 14]
            f["fofc_near_max"] = float(np.nanmax(around))
            if near_copy:
                f["fofc_shift"] = float(np.nanmean(np.nanmax(around, axis=1) - at))
        chi2 = chi2_scan_positions(atoms, rec.parent, chi1_steps()) if near_copy else None
        if chi2 is not None:
            delta_xyz, modelled_chi2 = chi2
            f["fofc_chi2_peak"] = second_peak(
                sample(maps.fofc, delta_xyz), chi1_steps(), modelled_chi2
            )[0]
    row[:] = [f[k] for k in FEATURES]
    return row, ringer


def residue_evidence(
    parsed: ParsedStructure, maps: MapPair, near_copy: bool = True, tick: Tick = no_tick
) -> ResidueEvidence:
    """The map's evidence for every residue of `parsed`, in its residue order (the
    NEAR_COPY_FEATURES NaN without `near_copy`); `tick(done, total)` hears the residues done
    (progress.py)."""
    rows, scans = [], []
    for done, rec in enumerate(parsed.residues):
        tick(done, len(parsed.residues))
        row, ringer = residue_features(rec, maps, near_copy)
        rows.append(row)
        scans.append(ringer)
    tick(len(parsed.residues), len(parsed.residues))
    feats = np.stack(rows) if rows else np.empty((0, len(FEATURES)))  # [N, F]
    # Where the map speaks for a residue, its model B beside it
    scanned = np.array([s is not None for s in scans], dtype=bool)
    feats[scanned, FEATURES.index("b_side_vs_bb")] = side_chain_b_ratio(parsed)[scanned]
    return ResidueEvidence(feats, scans, maps.fofc is not None)


def side_chain_b_ratio(parsed: ParsedStructure) -> np.ndarray:
    """[N] mean isotropic B of each residue's atoms beyond CB over that of N, CA, C, O (every
    altloc of the input model); NaN without both."""
    out = np.full(len(parsed.residues), np.nan)
    model = parsed.structure[0]
    for i, rec in enumerate(parsed.residues):
        res = model[rec.chain_idx][rec.res_idx]
        side = [a.b_iso for a in res if a.name not in (*BACKBONE, "CB", "OXT")]
        bb = [a.b_iso for a in res if a.name in BACKBONE]
        if side and bb and np.mean(bb) > 0:
            out[i] = float(np.mean(side) / np.mean(bb))
    return out
