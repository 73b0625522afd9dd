"""Reading real multiconformer files: altlocs, occupancies, messy cases, bad input."""

import gzip

import gemmi
import numpy as np
import pytest
from conftest import data_file

from qfitlatent.errors import StructureError
from qfitlatent.server_config import ServerConfig
from qfitlatent.structure import read_structure, structure_id


def _record(parsed, chain, resnum, icode=""):
    return next(
        r for r in parsed.residues if (r.chain, r.resnum, r.icode) == (chain, resnum, icode)
    )


def _pdb_text(path) -> str:
    """The file's text without ANISOU records, so line edits cannot orphan them."""
    lines = gzip.open(path, "rt").read().splitlines()
    return "\n".join(line for line in lines if not line.startswith("ANISOU")) + "\n"


def test_known_residue_gets_both_altlocs_with_occupancies():
    parsed = read_structure(data_file("2igd.pdb.gz"))
    val5 = _record(parsed, "A", 5)
    assert [c.altloc for c in val5.conformers] == ["A", "B"]
    assert [round(c.occ, 2) for c in val5.conformers] == [0.55, 0.45]
    # CB A/B differ, so each conformer carries its own atoms.
    assert not np.allclose(val5.conformers[0].atoms["CG1"], val5.conformers[1].atoms["CG1"])


def test_single_altloc_is_one_conformer_with_full_weight():
    lys15 = _record(read_structure(data_file("2igd.pdb.gz")), "A", 15)
    assert lys15.n_obs == 1 and lys15.conformers[0].occ == pytest.approx(1.0)


def test_qfit_file_splits_backbone_and_takes_heaviest_backbone_altloc():
    parsed = read_structure(data_file("1a2p_qfit.pdb.gz"))
    asp8 = _record(parsed, "A", 8)  # qFit: N/CA/C exist only as altlocs A 0.2, B 0.2, C 0.2, D 0.4
    assert asp8.primary_altloc == "D"
    res = parsed.structure[0][asp8.chain_idx][asp8.res_idx]
    ca_d = next(a for a in res if a.name == "CA" and a.altloc == "D")
    assert np.allclose(asp8.backbone["CA"], ca_d.pos.tolist())
    assert sum(c.occ for c in asp8.conformers) == pytest.approx(1.0)


def test_duplicate_altlocs_with_identical_coordinates_are_merged():
    # 1ifc models most residues as A/B copies with the same coordinates (to < 0.05 Å).
    phe2 = _record(read_structure(data_file("1ifc.pdb.gz")), "A", 2)
    assert phe2.n_obs == 1
    assert phe2.conformers[0].occ == pytest.approx(1.0)


def _edit_occupancy(text: str, resnum: int, altloc: str, new_occ: float, atoms=None) -> str:
    out = []
    for line in text.splitlines():
        if line.startswith("ATOM") and int(line[22:26]) == resnum and line[16] == altloc:
            if atoms is None or line[12:16].strip() in atoms:
                line = line[:54] + f"{new_occ:6.2f}" + line[60:]
        out.append(line)
    return "\n".join(out) + "\n"


def test_occupancies_not_summing_to_one_are_normalised():
    text = _pdb_text(data_file("2igd.pdb.gz"))
    text = _edit_occupancy(text, 5, "A", 0.30)
    text = _edit_occupancy(text, 5, "B", 0.30)  # sums to 0.6
    val5 = _record(read_structure(text.encode(), name="edited.pdb"), "A", 5)
    assert [c.occ for c in val5.conformers] == pytest.approx([0.5, 0.5])


def test_occupancies_that_differ_within_an_altloc_are_averaged():
    text = _pdb_text(data_file("2igd.pdb.gz"))
    text = _edit_occupancy(text, 5, "A", 0.40, atoms={"CG1"})  # CB 0.55, CG1 0.40, CG2 0.55
    val5 = _record(read_structure(text.encode(), name="edited.pdb"), "A", 5)
    occ_a = np.mean([0.55, 0.40, 0.55])
    assert val5.conformers[0].occ == pytest.approx(occ_a / (occ_a + 0.45), abs=1e-3)


def test_altlocs_on_the_backbone_only_are_one_side_chain_conformer():
    # Collapse the side-chain split of VAL 5 onto altloc A, keep a backbone split: n_obs must be 1.
    lines = []
    for line in _pdb_text(data_file("2igd.pdb.gz")).splitlines():
        if line.startswith("ATOM") and int(line[22:26]) == 5:
            name, alt = line[12:16].strip(), line[16]
            if name in ("N", "CA", "C", "O") and alt == " ":
                lines.append(line[:16] + "A" + line[17:54] + "  0.60" + line[60:])
                lines.append(line[:16] + "B" + line[17:54] + "  0.40" + line[60:])
                continue
            if alt == "B":
                continue
            if alt == "A":
                line = line[:16] + " " + line[17:54] + "  1.00" + line[60:]
        lines.append(line)
    val5 = _record(read_structure("\n".join(lines).encode(), name="bb-only.pdb"), "A", 5)
    assert val5.n_obs == 1
    assert val5.primary_altloc == "A"


def test_split_side_chain_only_and_split_everything_agree():
    # VAL 5 written the qFit way (every atom per altloc) and the usual way (side chain only).
    text = _pdb_text(data_file("2igd.pdb.gz"))
    usual = _record(read_structure(text.encode(), name="usual.pdb"), "A", 5)
    lines = []
    for line in text.splitlines():
        if line.startswith("ATOM") and int(line[22:26]) == 5 and line[16] == " ":
            lines.append(line[:16] + "A" + line[17:54] + "  0.55" + line[60:])
            lines.append(line[:16] + "B" + line[17:54] + "  0.45" + line[60:])
        else:
            lines.append(line)
    qfit_like = _record(read_structure("\n".join(lines).encode(), name="qfit.pdb"), "A", 5)
    assert [c.occ for c in qfit_like.conformers] == pytest.approx([c.occ for c in usual.conformers])
    for a, b in zip(qfit_like.conformers, usual.conformers, strict=True):
        assert a.atoms.keys() == b.atoms.keys()
        assert all(np.allclose(a.atoms[k], b.atoms[k]) for k in a.atoms)


def test_first_model_only_with_a_warning():
    parsed = read_structure(data_file("3cye.pdb.gz"))
    assert len(parsed.structure) == 1
    assert any("models" in w for w in parsed.warnings)


def test_waters_ligands_and_hydrogens_are_ignored_and_modified_residues_mapped():
    parsed = read_structure(data_file("2r2z.pdb.gz"))
    names = {a.name for r in parsed.structure[0] for res in [r] for x in res for a in x}
    assert not any(n.startswith("H") and len(n) > 1 and n[1].isdigit() for n in names)
    assert all(r.resname != "HOH" for r in parsed.residues)
    mse = [r for r in parsed.residues if r.resname == "MSE"]
    assert mse and all(r.parent == "MET" for r in mse)
    # SE is renamed SD for the χ table, so χ3 (CB CG SD CE) exists for selenomethionine.
    assert all("SD" in r.conformers[0].atoms for r in mse)


def test_insertion_codes_are_kept():
    parsed = read_structure(data_file("1xso.pdb.gz"))
    icodes = [r for r in parsed.residues if r.icode]
    assert icodes
    gemmi_icodes = {
        (ch.name, res.seqid.num, res.seqid.icode)
        for ch in gemmi.read_structure(str(data_file("1xso.pdb.gz")))[0]
        for res in ch
        if res.seqid.icode != " " and gemmi.find_tabulated_residue(res.name).is_amino_acid()
    }
    assert {(r.chain, r.resnum, r.icode) for r in icodes} == gemmi_icodes


def test_structure_id_strips_extensions():
    assert structure_id("x/1abc.pdb.gz") == "1abc"
    assert structure_id("1a2p_qfit.cif") == "1a2p_qfit"
    assert structure_id("model.mmcif.gz") == "model"


# --- bad input: each is one StructureError with a message about the file -------------------------


def _minimal_pdb(path, keep_resnums=None, atoms=None) -> str:
    out = []
    for line in _pdb_text(path).splitlines():
        if line.startswith(("ATOM", "HETATM")):
            if keep_resnums is not None and int(line[22:26]) not in keep_resnums:
                continue
            if atoms is not None and line[12:16].strip() not in atoms:
                continue
        out.append(line)
    return "\n".join(out) + "\n"


def _cases():
    real = data_file("2igd.pdb.gz")
    text = _pdb_text(real)
    raw = gzip.open(real, "rb").read()
    water_only = "\n".join(
        line
        for line in text.splitlines()
        if "HOH" in line or not line.startswith(("ATOM", "HETATM"))
    )
    nan = "\n".join(
        (line[:30] + "     nan" + line[38:]) if line.startswith("ATOM") else line
        for line in text.splitlines()
    )
    absurd = "".join(
        gemmi.read_pdb_string(text).make_mmcif_document().as_string().replace(" 2.844 ", " 2e7 ")
    )
    absurd_all = gemmi.read_pdb_string(text)
    absurd_all[0][0][0][0].pos = gemmi.Position(1e6, 1e6, 1e6)
    for res in absurd_all[0][0]:
        for a in res:
            a.pos = gemmi.Position(a.pos.x * 1e5, a.pos.y, a.pos.z)
    over = (ServerConfig().max_mb + 1) * 2**20  # past the reader's default limit
    huge = text + ("REMARK 999 " + "x" * 68 + "\n") * (over // 80)
    return {
        "empty": (b"", "empty"),
        "whitespace": (b"\n\n   \n", "empty"),
        "not a structure": (b"Dear reviewer,\nplease find attached our manuscript.\n", "no atoms"),
        "truncated gzip": (real.read_bytes()[:400], "cut short"),
        "truncated mmcif": (
            gemmi.read_pdb_string(text).make_mmcif_document().as_string()[:3000].encode(),
            "cut short",
        ),
        "binary": (bytes(range(256)) * 64, "binary"),
        "png": (b"\x89PNG\r\n\x1a\n" + bytes(2000), "binary"),
        "no protein": (water_only.encode(), "no protein"),
        "only CA": (_minimal_pdb(real, atoms={"CA"}).encode(), "only CA"),
        "NaN coordinates": (nan.encode(), "NaN"),
        "absurd coordinates": (absurd_all.make_mmcif_document().as_string().encode(), "impossible"),
        "single residue": (_minimal_pdb(real, keep_resnums={3}).encode(), "at least 2"),
        "over the size limit": (huge.encode(), "larger than"),
        "raw bytes ok": (raw, None),
        "absurd in one place": (absurd.encode(), None),
    }


@pytest.mark.parametrize(
    "case",
    [
        "empty",
        "whitespace",
        "not a structure",
        "truncated gzip",
        "truncated mmcif",
        "binary",
        "png",
        "no protein",
        "only CA",
        "NaN coordinates",
        "absurd coordinates",
        "single residue",
        "over the size limit",
    ],
)
def test_bad_input_raises_one_clear_error(case):
    data, phrase = _cases()[case]
    with pytest.raises(StructureError) as info:
        read_structure(data, name=f"{case}.pdb")
    message = str(info.value)
    assert message.startswith(f"{case}.pdb"), message
    assert phrase.lower() in message.lower(), message
    assert "Traceback" not in message


def test_good_bytes_and_a_single_bad_coordinate_still_read():
    cases = _cases()
    assert len(read_structure(cases["raw bytes ok"][0], name="2igd.pdb").residues) == 61
    parsed = read_structure(cases["absurd in one place"][0], name="one-bad.cif")
    assert len(parsed.residues) == 60 and any("impossible" in w for w in parsed.warnings)


def test_missing_file_is_a_structure_error(tmp_path):
    with pytest.raises(StructureError, match="no such file"):
        read_structure(tmp_path / "nope.pdb")


def test_truncated_pdb_says_it_is_cut_short():
    text = _pdb_text(data_file("2igd.pdb.gz"))
    cut = text[: text.index("\nATOM") + 81 * 200 + 37]  # stops mid-line
    with pytest.raises(StructureError, match="cut short"):
        read_structure(cut.encode(), name="cut.pdb")
