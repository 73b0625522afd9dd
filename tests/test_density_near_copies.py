"""Evidence for near-copies a χ1 scan misses: the χ2 scan against gemmi's geometry and on a
hand-built map with a known second χ2 peak, the shifted-copy score and the side chain's density
against its backbone, read against an independent trilinear interpolation."""

import dataclasses
import math

import gemmi
import numpy as np
import pytest
from test_density_read import map_file
from test_density_ringer import hand_built_map, rotate, trilinear, wrap_deg

from qfitlatent.density import MapPair
from qfitlatent.density.grid import FOFC
from qfitlatent.density.residue_evidence import FEATURES, SHELL, residue_features
from qfitlatent.density.ringer import chi1_steps, chi2_scan_positions, scan_positions
from qfitlatent.structure import read_structure

SIDE = ("CG", "CD1", "CD2")  # LEU beyond CB


def record_in_a_box(resname: str):
    """A real single-conformer record of 3SB3 with its atoms moved into the middle of a 40 Å box."""
    parsed = read_structure(map_file("3sb3.pdb.gz"))
    rec = next(
        r
        for r in parsed.residues
        if r.parent == resname and r.n_obs == 1 and "CD1" in r.conformers[0].atoms
    )
    shift = 20.0 - rec.conformers[0].atoms["CA"]
    conf = rec.conformers[0]
    moved = dataclasses.replace(conf, atoms={k: v + shift for k, v in conf.atoms.items()})
    backbone = {k: v + shift for k, v in rec.backbone.items()}
    return dataclasses.replace(rec, conformers=[moved], backbone=backbone)


def dihedral(*xyz) -> float:
    return math.degrees(gemmi.calculate_dihedral(*(gemmi.Position(*p) for p in xyz)))


def test_chi2_scan_geometry_against_gemmi():
    atoms = record_in_a_box("LEU").conformers[0].atoms
    chi2 = np.array([0.0, 65.0, 180.0, 300.0])
    delta, modelled_chi2 = chi2_scan_positions(atoms, "LEU", chi2)
    assert modelled_chi2 == pytest.approx(
        dihedral(atoms["CA"], atoms["CB"], atoms["CG"], atoms["CD1"]), abs=1e-6
    )
    chi1 = dihedral(atoms["N"], atoms["CA"], atoms["CB"], atoms["CG"])
    gamma = scan_positions(atoms, "LEU", np.array([chi1]))[0][0]  # ideal γ at the modelled χ1
    for k, want in enumerate(chi2):
        assert wrap_deg(dihedral(atoms["CA"], atoms["CB"], gamma, delta[k]) - want) == (
            pytest.approx(0.0, abs=1e-6)
        )
        assert np.linalg.norm(delta[k] - gamma) == pytest.approx(1.53, abs=0.01)  # ideal CG-CD1
    # No χ2 (VAL), nothing to scan.
    assert chi2_scan_positions({"N": np.zeros(3)}, "VAL", chi2) is None


def leucine_maps(two_heights, diff_centres, diff_heights):
    """(record, MapPair): 2mFo-DFc blobs on N, CA, C, O, CB, CG, CD1, CD2 at `two_heights` [8],
    mFo-DFc blobs at `diff_centres` [B, 3] with `diff_heights` [B]."""
    rec = record_in_a_box("LEU")
    atoms = {**rec.backbone, **rec.conformers[0].atoms}
    names = ("N", "CA", "C", "O", "CB", *SIDE)
    two = hand_built_map(np.stack([atoms[n] for n in names]), np.asarray(two_heights, float))
    diff = hand_built_map(np.asarray(diff_centres), np.asarray(diff_heights, float))
    return rec, MapPair(two, dataclasses.replace(diff, label=FOFC), "hand-built")


def test_a_second_chi2_peak_is_found_where_the_chi1_scan_sees_nothing():
    rec = record_in_a_box("LEU")
    atoms = rec.conformers[0].atoms
    # The minor copy turns only χ2, by 120°: its CD1 moves, its CG stays.
    other = rotate(atoms["CD1"], atoms["CB"], atoms["CG"], 120.0)
    rec, maps = leucine_maps(np.ones(8), other[None], [1.0])
    row, ringer = residue_features(rec, maps)
    f = dict(zip(FEATURES, row, strict=True))
    delta, modelled = chi2_scan_positions(atoms, "LEU", chi1_steps())
    want = trilinear(maps.fofc.grid, delta)  # the scan, read independently
    away = np.abs(wrap_deg(chi1_steps() - modelled)) >= 30
    assert f["fofc_chi2_peak"] == pytest.approx(float(want[away].max()), abs=1e-4)
    assert f["fofc_chi2_peak"] > 3.0
    # Where the peak lies: χ2 + 120° (on the 5° grid), and the χ1 scan's γ never gets near it.
    where = chi1_steps()[np.argmax(np.where(away, want, -np.inf))]
    assert abs(wrap_deg(where - (modelled + 120.0))) <= 5.0
    assert f["fofc_peak"] < 0.5 * f["fofc_chi2_peak"]
    assert ringer is not None


def test_a_shifted_copy_scores_above_one_stray_peak():
    rec = record_in_a_box("LEU")
    atoms = rec.conformers[0].atoms
    side = np.stack([atoms[n] for n in SIDE])  # [3, 3]
    step = SHELL[0]  # 1.2 Å along x: on the shell the score reads
    # A whole copy 1.2 Å away, with too many electrons at the modelled atoms.
    copy_c = np.concatenate([side + step, side])
    copy_h = [0.8, 0.8, 0.8, -0.6, -0.6, -0.6]
    rec, shifted = leucine_maps(np.ones(8), copy_c, copy_h)
    # One of those blobs beside CD2, the others far away (the same blobs: the same σ).
    far = np.array([10.0, 0.0, 0.0])
    stray_c = np.concatenate([side[2:] + step, side[:2] + step + far, side + far])
    _, stray = leucine_maps(np.ones(8), stray_c, copy_h)
    f = dict(zip(FEATURES, residue_features(rec, shifted)[0], strict=True))
    g = dict(zip(FEATURES, residue_features(rec, stray)[0], strict=True))
    # Against the definition, read independently: mean over atoms of (shell max − at atom).
    shell = trilinear(shifted.fofc.grid, (side[:, None, :] + SHELL).reshape(-1, 3)).reshape(3, -1)
    at = trilinear(shifted.fofc.grid, side)
    assert f["fofc_shift"] == pytest.approx(float(np.mean(shell.max(axis=1) - at)), abs=1e-4)
    assert f["fofc_shift"] > 2 * g["fofc_shift"] > 0
    # The single highest value beside the side chain (fofc_near_max) cannot tell the two apart.
    assert abs(f["fofc_near_max"] - g["fofc_near_max"]) < 0.1 * g["fofc_near_max"]


def test_side_chain_density_is_read_against_its_own_backbone():
    faded = [1, 1, 1, 1, 1, 0.6, 0.3, 0.3]  # N, CA, C, O, CB at full height, the rest fading
    rec, fading = leucine_maps(faded, np.full((1, 3), 2.0), [1.0])
    _, even = leucine_maps(np.ones(8), np.full((1, 3), 2.0), [1.0])
    atoms = rec.conformers[0].atoms
    f = dict(zip(FEATURES, residue_features(rec, fading)[0], strict=True))
    g = dict(zip(FEATURES, residue_features(rec, even)[0], strict=True))
    side = trilinear(fading.two_fofc.grid, np.stack([atoms[n] for n in SIDE]))
    bb = trilinear(fading.two_fofc.grid, np.stack([rec.backbone[n] for n in ("N", "CA", "C", "O")]))
    assert f["two_fofc_side_vs_bb"] == pytest.approx(side.mean() - bb.mean(), abs=1e-4)
    assert f["two_fofc_tip_vs_bb"] == pytest.approx(side.min() - bb.mean(), abs=1e-4)
    assert f["two_fofc_tip_vs_bb"] < f["two_fofc_side_vs_bb"] < g["two_fofc_side_vs_bb"] - 1.0
