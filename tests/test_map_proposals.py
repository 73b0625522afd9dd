"""The map proposes conformers (ensemble/map_proposals.py): a hand-built crystal map of a real
structure (3SB3) in which one side chain (Leu, Met, Gln, Glu or Lys) holds a second rotamer at
a known occupancy, and network proposals that miss it (they hold only the modelled side chain).
The mFo-DFc Ringer peak gives the candidate, the support rule keeps it, NNLS gives it an
occupancy near the truth, and the multiconformer model written and read back by gemmi holds it.
"""

import math

import gemmi
import numpy as np
import pytest
import torch
from conftest import SHARED

from qfitlatent.density import ringer
from qfitlatent.density.grid import FOFC, TWO_FOFC, DensityMap, MapPair, to_sigma
from qfitlatent.density.residue_evidence import residue_evidence
from qfitlatent.ensemble import map_proposals
from qfitlatent.ensemble.build import base_atoms
from qfitlatent.ensemble.conformers import Selection
from qfitlatent.ensemble.map_proposals import propose
from qfitlatent.ensemble.multiconf import SplitOptions, build_multiconformer
from qfitlatent.ensemble.sidechains import measure_chis, set_chis
from qfitlatent.ideal import moved_by
from qfitlatent.structure import read_structure

STRUCTURE = SHARED / "maps" / "3sb3.pdb.gz"
D_MIN = 1.8
MINOR = 0.35  # the second rotamer's occupancy in the hand-built crystal


def calculated(st: gemmi.Structure) -> gemmi.FloatGrid:
    """gemmi's density of `st` over its unit cell (symmetry copies included), on one grid size
    for every call so that two can be subtracted."""
    dc = gemmi.DensityCalculatorX()
    dc.d_min = D_MIN
    dc.rate = 3.0
    dc.set_grid_cell_and_spacegroup(st)
    dc.put_model_density_on_grid(st[0])
    return dc.grid


def circular_deg(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def second_rotamer(st: gemmi.Structure):
    """(chain index, residue index, χ [D] radians, its moving atoms [P, 3]) of the first Leu,
    Met, Gln, Glu or Lys whose side chain turned χ1 ± 120° (χ2 at a staggered value) stays
    3.1 Å from every other atom of the crystal: a second rotamer with room for it."""
    ns = gemmi.NeighborSearch(st[0], st.cell, 5.0).populate()

    def crowded(xyz: np.ndarray, ci: int, ri: int) -> bool:
        """An atom of the model or of a symmetry copy (its own copies included) within 3.1 Å."""
        for p in xyz:
            q = gemmi.Position(*p)
            for mark in ns.find_atoms(q, "\0", radius=3.1):
                own = st[0][mark.chain_idx][mark.residue_idx][mark.atom_idx].pos
                image = st.cell.find_nearest_pbc_position(q, mark.pos, 0)
                if (mark.chain_idx, mark.residue_idx) != (ci, ri) or image.dist(own) > 1e-3:
                    return True
        return False

    for ci, ch in enumerate(st[0]):
        for ri, res in enumerate(ch):
            if res.name not in ("LEU", "MET", "GLN", "GLU", "LYS"):
                continue
            atoms = {a.name: torch.tensor(a.pos.tolist(), dtype=torch.float64) for a in res}
            names = [n for n in moved_by(res.name, 0)]
            if not all(n in atoms for n in names):
                continue
            for turn in (120.0, -120.0):
                for chi2 in (65.0, 180.0, -65.0):
                    chi = measure_chis(atoms, res.name)
                    chi[0] = chi[0] + math.radians(turn)
                    chi[1] = math.radians(chi2)
                    chi = torch.atan2(torch.sin(chi), torch.cos(chi))
                    built = set_chis(atoms, res.name, chi[None])
                    xyz = np.stack([built[n][0].numpy() for n in names])  # [P, 3]
                    if not crowded(xyz, ci, ri):
                        return ci, ri, chi, xyz
    raise AssertionError("no side chain with room for a second rotamer")


@pytest.fixture(scope="module")
def crystal(tmp_path_factory):
    """(the single-conformer model read by qfitlatent, the maps, the residue's index, its second
    rotamer's χ [D] radians)."""
    st = gemmi.read_structure(str(STRUCTURE))
    st.remove_hydrogens()
    st.remove_alternative_conformations()
    ci, ri, alt_chi, alt_xyz = second_rotamer(st)
    res = st[0][ci][ri]
    names = list(moved_by(res.name, 0))
    truth = st.clone()
    r = truth[0][ci][ri]
    for a in r:
        if a.name in names:
            a.altloc, a.occ = "A", 1.0 - MINOR
    for n, xyz in zip(names, alt_xyz, strict=True):
        b = r[n][0].clone()
        b.altloc, b.occ, b.pos = "B", MINOR, gemmi.Position(*xyz)
        r.add_atom(b)
    observed = calculated(truth)
    model = calculated(st)
    # 2mFo-DFc of an unbiased map: the crystal's density; mFo-DFc: what the model lacks.
    diff = gemmi.FloatGrid(np.array(observed, copy=False) - np.array(model, copy=False),
                           observed.unit_cell, observed.spacegroup)  # fmt: skip
    maps = MapPair(
        DensityMap(to_sigma(observed, "test"), np.zeros(3), TWO_FOFC, True),
        DensityMap(to_sigma(diff, "test"), np.zeros(3), FOFC, True),
        "hand-built",
    )
    path = tmp_path_factory.mktemp("single") / "single.pdb"
    st.write_pdb(str(path))
    parsed = read_structure(path)
    i = next(k for k, rec in enumerate(parsed.residues)
             if rec.id.chain == st[0][ci].name and rec.id.resnum == res.seqid.num)  # fmt: skip
    return parsed, maps, i, alt_chi.float()


def blind_selection(parsed, i_flexible: int):
    """Network proposals that hold only each residue's modelled side chain: none is distinct,
    so without the map no residue has an alternative to try."""
    n = len(parsed.residues)
    chi = torch.zeros(n, 1, 4)
    for i, rec in enumerate(parsed.residues):
        if rec.parent and rec.conformers:
            chi[i, 0] = torch.nan_to_num(measure_chis(base_atoms(rec), rec.parent).float())
    draws = chi.transpose(0, 1).repeat(8, 1, 1)  # [C, N, D]
    sel = Selection(chi, torch.ones(n, 1), torch.ones(n, 1, dtype=torch.bool), draws,
                    torch.zeros(n))  # fmt: skip
    score = torch.zeros(n)
    score[i_flexible] = 0.9  # the head calls this one residue flexible
    return sel, score


def test_the_map_proposes_the_missed_rotamer(crystal):
    parsed, maps, i, alt_chi = crystal
    rec = parsed.residues[i]
    base = {k: v.numpy() for k, v in base_atoms(rec).items()}
    network = measure_chis(base_atoms(rec), rec.parent).numpy()[None]  # [1, D]: the input only
    chi = propose(base, rec.parent, network, maps)
    assert chi is not None
    assert circular_deg(math.degrees(chi[0]), math.degrees(alt_chi[0])) <= 10.0
    assert circular_deg(math.degrees(chi[1]), math.degrees(alt_chi[1])) <= 20.0
    # A CCP4/MRC map (2mFo-DFc alone): its Ringer scan's second peak, the same rotamer.
    alone = propose(base, rec.parent, network, MapPair(maps.two_fofc, None, "2mFo-DFc"))
    assert circular_deg(math.degrees(alone[0]), math.degrees(alt_chi[0])) <= 10.0
    # A network proposal already there: the map adds nothing.
    assert propose(base, rec.parent, np.stack([network[0], chi]), maps) is None


def test_the_proposal_starts_from_the_kept_scan(crystal, monkeypatch):
    """The Ringer scans residue_evidence kept are not made again: the same proposal, the same
    model, no second scan; a kept scan of other atoms (another side chain) is not used."""
    parsed, maps, i, _ = crystal
    rec = parsed.residues[i]
    base = {k: v.numpy() for k, v in base_atoms(rec).items()}
    network = measure_chis(base_atoms(rec), rec.parent).numpy()[None]  # [1, D]
    sel, score = blind_selection(parsed, i)
    fresh = propose(base, rec.parent, network, maps)
    fresh_model = build_multiconformer(parsed, sel, score, SplitOptions(), maps=maps)
    scans = residue_evidence(parsed, maps).scans
    calls = []

    def counted(*args, **kw):
        calls.append(args[1])
        return ringer.scan(*args, **kw)

    monkeypatch.setattr(map_proposals, "scan", counted)
    np.testing.assert_array_equal(propose(base, rec.parent, network, maps, scans[i]), fresh)
    kept = build_multiconformer(parsed, sel, score, SplitOptions(), maps=maps, scans=scans)
    assert calls == []
    assert kept.rows == fresh_model.rows
    # The scan of the residue turned 120° in χ1 is another side chain's: the residue is scanned.
    turned = set_chis(base_atoms(rec), rec.parent, torch.as_tensor(network[0]) + torch.tensor(
        [2 * math.pi / 3, 0, 0, 0], dtype=torch.float64))  # fmt: skip
    other = ringer.scan({k: v.numpy() for k, v in turned.items()}, rec.parent, maps)
    np.testing.assert_array_equal(propose(base, rec.parent, network, maps, other), fresh)
    assert calls == [rec.parent]


def test_the_maps_conformer_is_kept_at_its_occupancy(crystal, tmp_path):
    parsed, maps, i, alt_chi = crystal
    sel, score = blind_selection(parsed, i)
    multi = build_multiconformer(parsed, sel, score, SplitOptions(), maps=maps)
    rows = [r for r in multi.rows if r["index"] == i]
    mine = [r for r in rows if r["source"] == "map"]
    assert [r["status"] for r in mine] == ["written"], rows
    assert mine[0]["occupancy"] == pytest.approx(MINOR, abs=0.08)
    assert circular_deg(mine[0]["chi1"], math.degrees(alt_chi[0])) <= 10.0
    assert mine[0]["density_fofc"] >= 2.5  # what the support rule kept it for
    # The file holds it: altloc B at the map's occupancy, read back by gemmi.
    path = tmp_path / "multi.pdb"
    multi.structure.write_pdb(str(path))
    back = gemmi.read_structure(str(path))
    res = next(
        r
        for ch in back[0]
        for r in ch
        if ch.name == rec_chain(parsed, i) and r.seqid.num == parsed.residues[i].id.resnum
    )
    occ = {a.altloc: a.occ for a in res if a.name == "CG"}
    assert occ["B"] == pytest.approx(mine[0]["occupancy"]) and sum(occ.values()) == pytest.approx(1)
    # Off, the same network proposals leave the residue as it was: nothing distinct to try.
    off = build_multiconformer(parsed, sel, score, SplitOptions(map_proposals=False), maps=maps)
    assert i not in off.conformers and not any(r["source"] == "map" for r in off.rows)


def rec_chain(parsed, i: int) -> str:
    return parsed.residues[i].id.chain
