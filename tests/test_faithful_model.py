"""Issue 19: the multiconformer model keeps everything the input had and adds nothing the
crystal forbids. Checked from the written files, read back with gemmi:

- every input atom (waters, ligands, metals, hydrogens, backbone-only and coinciding altlocs,
  zero-occupancy atoms) is in the file with its altloc, occupancy and B-factor, except the atoms
  of residues the report says were split, whose occupancies are the report's;
- every residue's report occupancies are the file's;
- no new severe clash, crystal-symmetry copies included, by gemmi's ContactSearch
  (benchmarks/clash_audit.py, independent of the screen); with the cell hidden from the screen
  the same search finds the symmetry clashes the old screen let through.

The 20 gate structures and the two bundled examples run with the seeded tiny network at
threshold 0 (every rebuildable residue tried: the hardest case for the writer and the screen);
the shipped weights' numbers are printed by `python benchmarks/clash_audit.py`.
"""

import sys
from collections import defaultdict

import gemmi
import pandas as pd
import pytest
from conftest import DATA, ROOT, data_file, tiny_model

from qfitlatent.ensemble.multiconf import SplitOptions
from qfitlatent.predict import multiconformer_cif, multiconformer_pdb, output_name, outputs, predict
from qfitlatent.structure import read_structure

sys.path.insert(0, str(ROOT / "benchmarks"))
from clash_audit import new_severe_clashes

EXAMPLES = [ROOT / "qfitlatent" / "data" / n for n in ("3k0n_qfit.pdb.gz", "1atg.pdb.gz")]
N_GATE = 20


def gate_structures() -> list:
    """The 20 smallest validation structures of the shipped checkpoint's split (the gate set of
    benchmarks/multiconformer_gates.py), read from the checkpoint without building the model."""
    import torch

    from qfitlatent.checkpoint import default_weights

    weights = default_weights()
    if not weights.is_file() or not DATA.is_dir():
        return []
    info = torch.load(weights, map_location="cpu", weights_only=True)
    names = set(info["split"]["val"])
    files = sorted((p for p in DATA.iterdir() if p.name.split(".")[0] in names),
                   key=lambda p: p.stat().st_size)  # fmt: skip
    return files[:N_GATE]


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def _read_cif(text: str) -> gemmi.Structure:
    return gemmi.make_structure_from_block(gemmi.cif.read_string(text).sole_block())


def atoms_by_key(st: gemmi.Structure) -> dict[tuple, list[tuple]]:
    """(chain, number, icode, residue name, atom name, altloc) -> [(occupancy, B)] of model 0."""
    out = defaultdict(list)
    for chain in st[0]:
        for res in chain:
            for a in res:
                key = (chain.name, res.seqid.num, res.seqid.icode, res.name, a.name, a.altloc)
                out[key].append((round(a.occ, 2), round(a.b_iso, 2)))
    return out


def lost_or_changed(source, written: gemmi.Structure, rows: list[dict]) -> list:
    """Input atoms missing from `written` or with another altloc/occupancy/B, outside the
    residues the report says were split (whose moving atoms carry the report's altloc A)."""
    split = {(r["chain"], r["resnum"], r["icode"] or " ")
             for r in rows if r["status"] == "written"}  # fmt: skip
    have = atoms_by_key(written)
    bad = []
    for key, values in atoms_by_key(gemmi.read_structure(str(source))).items():
        if (key[0], key[1], key[2]) in split:
            if not have.get(key) and not have.get((*key[:5], "A")):
                bad.append(("split residue lost an atom", key))
            continue
        if sorted(have.get(key, [])) != sorted(values):
            bad.append((key, values, have.get(key)))
    return bad


def report_vs_file(written: gemmi.Structure, rows: list[dict]) -> list:
    """Report rows whose occupancy differs from the file's (mean over the altloc's atoms)."""
    occ = defaultdict(list)
    for chain in written[0]:
        for res in chain:
            for a in res:
                if a.has_altloc() and not a.is_hydrogen():
                    key = (chain.name, res.seqid.num, res.seqid.icode.strip(), a.altloc)
                    occ[key].append(a.occ)
    bad = []
    by_residue = defaultdict(set)
    for r in rows:
        if r["altloc"]:
            by_residue[(r["chain"], r["resnum"], r["icode"])].add(r["altloc"])
            side = occ[(r["chain"], r["resnum"], r["icode"], r["altloc"])]
            if not side or abs(float(r["occupancy"]) - sum(side) / len(side)) > 0.011:
                bad.append((r["chain"], r["resnum"], r["altloc"], r["occupancy"], side))
    for chain, num, icode, alt in occ:  # every altloc in the file has its report row
        if (chain, num, icode) in by_residue and alt not in by_residue[(chain, num, icode)]:
            bad.append((chain, num, alt, "no report row"))
    return bad


@pytest.mark.parametrize("path", [*EXAMPLES, *gate_structures()], ids=lambda p: p.name)
def test_every_input_atom_is_written_back_and_report_matches_file(model, path):
    pred = predict(model, path, n_samples=1, options=SplitOptions(threshold=0.0))
    m, rows = pred.multiconformer, pred.multiconformer.rows
    # the writer had work, unless the modeller gave (nearly) every residue altlocs (4I39)
    assert m.n_split > 0 or m.n_observed_kept > 0.9 * len(pred.parsed.residues)
    for text, read in ((multiconformer_pdb(pred), gemmi.read_pdb_string),
                       (multiconformer_cif(pred), _read_cif)):  # fmt: skip
        written = read(text)
        assert lost_or_changed(path, written, rows) == []
        assert report_vs_file(written, rows) == []
    # the report opens in a plain CSV reader and says the same
    report = pd.read_csv(pd.io.common.BytesIO(outputs(pred, "w")[output_name(pred, "report")]))
    assert len(report) == len(rows)


def test_3k0n_keeps_waters_backbone_altlocs_and_coinciding_altlocs(model):
    """The cases the issue names: 132 waters, GLY 96/146's backbone-only altlocs, PHE 7 and
    HIS 92's coinciding altlocs, GLU 15's 0.20/0.39 occupancies as in the file."""
    path = EXAMPLES[0]
    pred = predict(model, path, n_samples=1)
    st = gemmi.read_pdb_string(multiconformer_pdb(pred))
    assert sum(r.name == "HOH" for ch in st[0] for r in ch) == 132
    res = {r.seqid.num: r for r in st[0]["A"]}
    for num in (96, 146):
        assert {a.altloc for a in res[num] if a.has_altloc()} >= {"A", "B"}
    for num in (7, 92):
        assert len({a.altloc for a in res[num] if a.has_altloc()}) >= 2
        rows = [r for r in pred.multiconformer.rows if r["resnum"] == num]
        assert any("same side chain as A" in r["note"] for r in rows)
    glu = [r for r in pred.multiconformer.rows if r["resnum"] == 15]
    assert sorted(r["occupancy"] for r in glu) == [0.2, 0.39]
    assert all("sum to 0.59" in r["note"] for r in glu)


@pytest.mark.parametrize("name", ["2i4a.pdb.gz", "1ab1.pdb.gz"])
def test_no_new_severe_clash_with_the_crystal(model, name):
    """Independent count (gemmi ContactSearch with the cell): zero new severe clashes. With
    the cell hidden from the screen (as the old protein-only screen was blind to it), the same
    count finds new clashes with symmetry copies: the check can fail."""
    path = data_file(name)
    inp = gemmi.read_structure(str(path))
    pred = predict(model, path, n_samples=1, options=SplitOptions(threshold=0.0))
    assert pred.multiconformer.n_split > 5
    assert new_severe_clashes(inp, _read_cif(multiconformer_cif(pred))) == []
    blind = read_structure(path)
    blind.full.cell = gemmi.UnitCell()  # no crystal: the screen sees no symmetry copies
    loose = predict(model, blind, n_samples=1, options=SplitOptions(threshold=0.0))
    written = _read_cif(multiconformer_cif(loose))
    written.cell, written.spacegroup_hm = inp.cell, inp.spacegroup_hm
    found = new_severe_clashes(inp, written)
    assert found and all(symmetry for *_, symmetry in found)


def test_rejections_name_their_symmetry_partner(model):
    pred = predict(model, data_file("2i4a.pdb.gz"), n_samples=1,
                   options=SplitOptions(threshold=0.0))  # fmt: skip
    partners = [r["partner"] for r in pred.multiconformer.rows if r["status"] == "rejected: clash"]
    assert any(p.startswith("symmetry copy of A ") for p in partners)
    assert any(" HOH " in p for p in partners)  # waters are in the environment


def test_the_app_shows_the_file_occupancies(model):
    """display.observed_altlocs (the app's table and χ plots) gives the occupancies the file and
    the report hold, not the normalised ones (GLU 15 of 3K0N: 0.20/0.39, not 0.34/0.66)."""
    from qfitlatent import display

    pred = predict(model, EXAMPLES[0], n_samples=1)
    by_residue = defaultdict(list)
    for r in pred.multiconformer.rows:
        if r["source"] == "observed":
            by_residue[r["index"]].append(r["occupancy"])
    assert len(by_residue) > 30
    for i, report in by_residue.items():
        shown = [c["occ"] for c in display.observed_altlocs(pred, i)]
        # coinciding altlocs are one conformer in the app (their occupancies summed)
        assert sum(shown) == pytest.approx(sum(report), abs=0.011 * len(report)), i
    glu = next(i for i, rec in enumerate(pred.parsed.residues) if rec.resnum == 15)
    assert sorted(round(c["occ"], 2) for c in display.observed_altlocs(pred, glu)) == [0.2, 0.39]
