"""Writing altloc models: χ per altloc survive a gemmi round trip; Biopython reads the files.

Random conformers on every rebuildable residue of a structure with insertion codes, clash
screen off, so the writer sees every residue type split into 2–4 altlocs."""

import io
import math
import warnings

import gemmi
import pytest
import torch
from conftest import data_file

from qfitlatent import residues
from qfitlatent.ensemble.build import base_atoms, to_cif, to_pdb
from qfitlatent.ensemble.conformers import Selection
from qfitlatent.ensemble.multiconf import SplitOptions, build_multiconformer
from qfitlatent.ensemble.sidechains import measure_chis
from qfitlatent.features import featurize
from qfitlatent.structure import read_structure

# Trypsin at 1.5 Å: side-chain altlocs in 23 residues and insertion codes (65A, 184A, …).
WITH_ICODES = "1bty.pdb.gz"


@pytest.fixture(scope="module")
def written():
    parsed = read_structure(data_file(WITH_ICODES))
    feats = featurize(parsed)
    g = torch.Generator().manual_seed(0)
    n = feats.n_res
    # Draws spread over the circle, so most residues get several distinct conformers.
    chi = (torch.rand(n, 4, 4, generator=g) * 2 - 1) * math.pi  # [N, M, D] proposed conformers
    draws = chi.transpose(0, 1).repeat(8, 1, 1)  # [C, N, D]: each proposal holds 1/4 of the mass
    sel = Selection(chi, torch.full((n, 4), 0.25), torch.ones(n, 4, dtype=torch.bool), draws,
                    torch.zeros(n))  # fmt: skip
    options = SplitOptions(threshold=0.0, max_conformers=4, overlap=99.0, input_altlocs="replace")
    multi = build_multiconformer(parsed, sel, torch.ones(n), options)
    ens = Written(parsed, multi)
    return parsed, ens, multi.structure, None


class Written:
    """The conformers build_multiconformer wrote, per residue: labels and χ."""

    def __init__(self, parsed, multi):
        self.n = len(parsed.residues)
        self.confs = multi.conformers

    def __len__(self):
        return self.n

    def labels(self, i):
        return [c[0] for c in self.confs[i]] if i in self.confs else [""]

    def n_conformers(self, i):
        return len(self.labels(i))

    def as_observed(self, i):
        return i not in self.confs

    @property
    def chi(self):
        return {i: torch.stack([c[2] for c in confs]) for i, confs in self.confs.items()}


def _residue(st: gemmi.Structure, rec) -> gemmi.Residue:
    chain = st[0][rec.chain]
    seqid = f"{rec.resnum}{rec.icode}"
    return chain[seqid][0]


def _atoms_of(res: gemmi.Residue, label: str) -> dict[str, torch.Tensor]:
    """Atoms of one altloc (plus the blank ones), parent names, as float64 tensors."""
    renames = residues.ATOM_RENAMES.get(res.name, {})
    out = {}
    for atom in res:
        if atom.altloc in ("\0", label or "\0"):
            out[renames.get(atom.name, atom.name)] = torch.tensor(
                atom.pos.tolist(), dtype=torch.float64
            )
    return out


def _check_round_trip(st: gemmi.Structure, parsed, ens):
    n_split = 0
    for i, rec in enumerate(parsed.residues):
        res = _residue(st, rec)
        assert res.name == rec.resname
        labels = ens.labels(i)
        altlocs = sorted({a.altloc for a in res if a.has_altloc()})
        assert altlocs == [x for x in labels if x]
        for name in ("N", "CA", "C", "O", "CB"):
            assert all(not a.has_altloc() for a in res if a.name == name)
        if ens.as_observed(i):
            want = measure_chis(base_atoms(rec), rec.parent) if rec.parent else None
            if want is not None and not torch.isnan(want).all():
                got = measure_chis(_atoms_of(res, ""), rec.parent)
                ok = ~torch.isnan(want)
                assert (
                    torch.rad2deg((got[ok] - want[ok] + math.pi) % (2 * math.pi) - math.pi)
                    .abs()
                    .max()
                    < 0.1
                )
            continue
        n_chi = residues.n_chi(rec.parent)
        occ_by_label = {}
        for label, chi in zip(labels, ens.chi[i], strict=True):
            got = measure_chis(_atoms_of(res, label), rec.parent)[:n_chi]
            diff = torch.rad2deg((got - chi[:n_chi].double() + math.pi) % (2 * math.pi) - math.pi)
            assert diff.abs().max() < 0.1, (rec.resname, rec.resnum, label, diff)
            occ_by_label[label] = next(
                a.occ
                for a in res
                if a.altloc == (label or "\0") and a.name not in ("N", "CA", "C", "O", "CB")
            )
        assert sum(occ_by_label.values()) == pytest.approx(1.0, abs=1e-6)
        n_split += len(labels) > 1
    assert n_split > 50


def test_pdb_round_trip_keeps_chi_per_altloc_ids_and_occupancies(written):
    parsed, ens, st, _ = written
    text = to_pdb(st)
    back = gemmi.read_pdb_string(text)
    _check_round_trip(back, parsed, ens)
    # Waters and ligands are written too (after the protein): the protein residues keep ids.
    ids = [(ch.name, r.seqid.num, r.seqid.icode.strip()) for ch in back[0] for r in ch
           if gemmi.find_tabulated_residue(r.name).is_amino_acid()]  # fmt: skip
    assert ids == [(r.chain, r.resnum, r.icode) for r in parsed.residues]
    assert any(icode for _, _, icode in ids)


def test_mmcif_round_trip(written):
    parsed, ens, st, _ = written
    doc = gemmi.cif.read_string(to_cif(st))
    back = gemmi.make_structure_from_block(doc.sole_block())
    _check_round_trip(back, parsed, ens)


def test_input_altlocs_are_replaced(written):
    parsed, ens, st, _ = written
    for i, rec in enumerate(parsed.residues):
        if ens.n_conformers(i) == 1:
            assert not any(a.has_altloc() for a in _residue(st, rec))


def _strict_biopython(parser, handle):
    from Bio.PDB.PDBExceptions import PDBConstructionWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", PDBConstructionWarning)
        return parser.get_structure("x", handle)


def test_biopython_reads_both_formats_without_complaint(written):
    from Bio.PDB import MMCIFParser, PDBParser

    parsed, ens, st, _ = written
    split = next(i for i in range(len(ens)) if ens.n_conformers(i) > 2)
    rec = parsed.residues[split]
    for structure in (
        _strict_biopython(PDBParser(PERMISSIVE=False), io.StringIO(to_pdb(st))),
        _strict_biopython(MMCIFParser(), io.StringIO(to_cif(st))),
    ):
        res = structure[0][rec.chain][(" ", rec.resnum, rec.icode or " ")]
        moving = [a for a in res if a.is_disordered()]
        assert moving, "the split side chain must read as disordered atoms"
        assert sorted(moving[0].disordered_get_id_list()) == ens.labels(split)
        assert not res["CA"].is_disordered()


def test_long_mmcif_chain_names_are_shortened_for_pdb_only(written):
    _, _, st, _ = written
    long = st.clone()
    long[0][0].name = "AAA"  # as mmCIF files from large assemblies have
    back = gemmi.read_pdb_string(to_pdb(long))
    assert len(back[0][0].name) == 1
    assert back[0].count_atom_sites() == long[0].count_atom_sites()
    assert (
        gemmi.cif.read_string(to_cif(long)).sole_block().find_values("_atom_site.auth_asym_id")[0]
        == "AAA"
    )
