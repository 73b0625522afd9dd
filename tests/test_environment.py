"""Environment counts against gemmi: probe positions against real side chains, counts against
gemmi's own neighbour search, and the residue's own atoms never counted."""

import math

import gemmi
import numpy as np
import torch
from conftest import data_file

from qfitlatent import residues
from qfitlatent.environment import (
    CHI1_ANGLES,
    PROBE_RADII,
    environment_counts,
    probe_points,
)
from qfitlatent.features import _primary_atoms, featurize
from qfitlatent.structure import from_gemmi, read_structure


def _backbone(parsed):
    bb = torch.tensor(
        np.array([[r.backbone[k] for k in ("N", "CA", "C")] for r in parsed.residues])
    )  # [N, 3, 3]
    from qfitlatent.geometry import backbone_frames

    rot, ca = backbone_frames(bb[:, 0], bb[:, 1], bb[:, 2])
    return bb[:, 0], ca, rot


def test_gamma_probe_at_the_observed_chi1_lies_on_the_real_cg():
    """The γ probe of the bin nearest a residue's observed χ1 sits where its γ atom is."""
    parsed = read_structure(data_file("2igd.pdb.gz"))
    f = featurize(parsed)
    n, ca, rot = _backbone(parsed)
    probes = probe_points(n, ca, rot)  # [N, 12, 2, 3]
    dev = []
    for i, rec in enumerate(parsed.residues):
        chi_atoms = residues.CHI_ATOMS.get(rec.parent)
        gamma = chi_atoms[0][3] if chi_atoms else None  # CG, OG, SG, CG1 or OG1
        cg = rec.conformers[0].atoms.get(gamma) if rec.conformers else None
        if cg is None or not bool(f.chi_mask[i, 0, 0]):
            continue
        diff = torch.remainder(CHI1_ANGLES - float(f.chi[i, 0, 0]) + math.pi, 2 * math.pi)
        k = int((diff - math.pi).abs().argmin())
        dev.append(float((probes[i, k, 0] - torch.tensor(cg)).norm()))
    # Bins are 30° apart: the nearest is at most 15° off, 0.36 Å on the CG circle.
    assert len(dev) > 40
    assert np.median(dev) < 0.35 and max(dev) < 0.8


def test_counts_match_gemmi_neighbour_search():
    """On 2igd with its altlocs removed (gemmi keeps the first), against gemmi's own search."""
    st = gemmi.read_structure(str(data_file("2igd.pdb.gz")))
    st.remove_hydrogens()
    st.remove_ligands_and_waters()
    st.remove_alternative_conformations()
    parsed = from_gemmi(st.clone(), "2igd.pdb")
    f = featurize(parsed)
    model = st[0]
    ns = gemmi.NeighborSearch(model, st.cell, 5.0).populate()
    n, ca, rot = _backbone(parsed)
    probes = probe_points(n, ca, rot).reshape(f.n_res, -1, 3)  # [N, 24, 3]
    # Residues are matched by (chain, number, icode): gemmi's marks carry no record index.
    index = {(r.chain, r.resnum, r.icode): i for i, r in enumerate(parsed.residues)}
    expected = np.zeros((f.n_res, probes.shape[1], len(PROBE_RADII)))
    for i in range(f.n_res):
        for p in range(probes.shape[1]):
            pos = gemmi.Position(*probes[i, p].tolist())
            for mark in ns.find_atoms(pos, "\0", radius=max(PROBE_RADII)):
                cra = mark.to_cra(model)
                key = (cra.chain.name, cra.residue.seqid.num, cra.residue.seqid.icode.strip())
                if index.get(key) == i:
                    continue
                d = cra.atom.pos.dist(pos)
                expected[i, p] += [d < r for r in PROBE_RADII]
    got = f.environment.reshape(f.n_res, -1, len(PROBE_RADII)).numpy()
    assert expected.sum() > 1000
    assert np.array_equal(got, expected)


def test_chunk_size_does_not_change_counts():
    """Chunks only bound memory; 1a2p_qfit has altlocs, so only primary atoms are counted."""
    parsed = read_structure(data_file("1a2p_qfit.pdb.gz"))

    atoms, owner = _primary_atoms(parsed.residues)
    n, ca, rot = _backbone(parsed)
    probes = probe_points(n, ca, rot).flatten(1, 2)
    names = sum(len({**r.conformers[0].atoms, **r.backbone}) for r in parsed.residues)
    assert atoms.shape == (names, 3) and int(owner.max()) == len(parsed.residues) - 1
    a = environment_counts(probes, atoms, owner, chunk=5)
    b = environment_counts(probes, atoms, owner, chunk=64)
    assert a.sum() > 0 and torch.equal(a, b)


def test_own_side_chain_never_counts():
    """Deleting one residue's side chain leaves its own environment exactly as it was, and
    changes a neighbour's."""
    path = data_file("2igd.pdb.gz")
    st = gemmi.read_structure(str(path))
    before = featurize(from_gemmi(st.clone(), "2igd.pdb"))
    chain = st[0][0]
    k = next(i for i, r in enumerate(chain) if r.name in ("PHE", "TRP", "TYR"))
    res = chain[k]
    for name in [a.name for a in res if a.name not in ("N", "CA", "C", "O", "CB")]:
        res.remove_atom(name, "\0")
    after = featurize(from_gemmi(st, "2igd.pdb"))
    assert torch.equal(after.environment[k], before.environment[k])
    changed = (after.environment != before.environment).any(-1)
    assert changed.sum() > 0 and not bool(changed[k])
