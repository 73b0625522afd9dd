"""B-factors refined against data (density.bfactor) and the side-chain B feature: a refinement
against synthetic data with a known B, and the feature on B values set by hand."""

import gemmi
import numpy as np
import pytest
from test_density_read import map_file

from qfitlatent.density.bfactor import copy_b, refine_b
from qfitlatent.density.reduce import single_conformer
from qfitlatent.density.residue_evidence import side_chain_b_ratio
from qfitlatent.density.synthetic import observed_amplitudes
from qfitlatent.errors import MapError
from qfitlatent.structure import from_gemmi

BACKBONE_CB = ("N", "CA", "C", "O", "CB", "OXT")


def protein_only(st: gemmi.Structure) -> gemmi.Structure:
    st.remove_ligands_and_waters()
    st.setup_entities()
    return st


def test_refine_b_finds_the_side_chains_whose_b_was_raised():
    """Data from 3SB3 (one conformer) with B 15 Å² everywhere but 45 Å² on the side chains of
    every fourth residue; the model starts at 15 Å² everywhere. Refined against the data, the
    raised side chains come out near 45 Å², the others stay low."""
    truth = protein_only(single_conformer(gemmi.read_structure(str(map_file("3sb3.pdb.gz")))))
    raised = set()
    for i, res in enumerate(truth[0][0]):
        side = [a for a in res if a.name not in BACKBONE_CB]
        for atom in res:
            atom.b_iso = 15.0
            atom.aniso = gemmi.SMat33f(0, 0, 0, 0, 0, 0)
        if side and i % 4 == 0:
            raised.add(res.seqid.num)
            for atom in side:
                atom.b_iso = 45.0
    mtz = observed_amplitudes(truth, 1.8, np.random.default_rng(0), jitter=0.0, noise=0.02)
    start = truth.clone()
    for cra in start[0].all():
        cra.atom.b_iso = 15.0
    refined = refine_b(mtz, start, ["FP", "SIGFP", "FREE"], "synthetic 3SB3")

    def side_b(want_raised: bool) -> float:
        return float(
            np.median(
                [
                    a.b_iso
                    for res in refined[0][0]
                    if (res.seqid.num in raised) == want_raised
                    for a in res
                    if a.name not in BACKBONE_CB
                ]
            )
        )

    assert len(raised) >= 10
    assert 35.0 < side_b(True) < 55.0
    assert side_b(False) < 25.0
    # Only B changed: coordinates and occupancies are the model's.
    for a0, a1 in zip(start[0].all(), refined[0].all(), strict=True):
        assert a0.atom.name == a1.atom.name and a0.atom.pos.dist(a1.atom.pos) < 1e-3
        assert a0.atom.occ == a1.atom.occ


def test_copy_b_refuses_a_model_that_lost_an_atom():
    st = protein_only(single_conformer(gemmi.read_structure(str(map_file("3sb3.pdb.gz")))))
    other = st.clone()
    del other[0][0][3][0]
    with pytest.raises(MapError, match="lost atom"):
        copy_b(other, st)


def test_side_chain_b_ratio_on_hand_set_b():
    st = protein_only(single_conformer(gemmi.read_structure(str(map_file("3sb3.pdb.gz")))))
    for cra in st[0].all():
        # backbone 10, CB 99 (left out of both means), beyond CB 25
        name = cra.atom.name
        cra.atom.b_iso = 10.0 if name in ("N", "CA", "C", "O") else 99.0 if name == "CB" else 25.0
    parsed = from_gemmi(st.clone(), "3sb3")
    ratio = side_chain_b_ratio(parsed)
    for rec, r in zip(parsed.residues, ratio, strict=True):
        res = parsed.structure[0][rec.chain_idx][rec.res_idx]
        beyond = [a for a in res if a.name not in BACKBONE_CB]
        if beyond:
            assert r == pytest.approx(2.5)
        else:  # Gly, Ala: no side chain beyond CB
            assert np.isnan(r)
    assert np.isfinite(ratio).sum() > 40
