"""The viewer's selections name residues exactly: a residue with an insertion code (trypsin's
65A after 65) is styled, framed and labelled on its own, never with its same-numbered neighbour.

Each selection of a scene is resolved the way 3Dmol.js matches an atom (viewer_component: every
key of the selection against the atom's property, a list meaning any of its values; chain, resi
and icode read from PDB columns 22, 23–26 and 27 as 3Dmol's PDB parser reads them), and compared
with residue sets computed by gemmi on the real structure. tests/test_viewer_browser.py replays the
same scenes in 3Dmol itself.
"""

from pathlib import Path

import gemmi
import pytest
from conftest import data_file

from qfitlatent.viz import viewer

ROOT = Path(__file__).resolve().parents[1]
TRYPSIN = "1bty.pdb.gz"  # chymotrypsin numbering: 65 VAL then 65A ARG, 184 GLY then 184A TYR, …


def atoms_3dmol(pdb_text: str) -> list[dict]:
    """The atoms 3Dmol's PDB parser makes of model text, with the properties selections read;
    like it, only altloc ' ' or 'A' (its default)."""
    out = []
    for line in pdb_text.splitlines():
        if line.startswith(("ATOM  ", "HETATM")) and line[16] in " A":
            out.append(
                {
                    "chain": line[21],
                    "resi": int(line[22:26]),
                    "icode": line[26],
                    "atom": line[12:16].replace(" ", ""),
                }
            )
    return out


def matches(atom: dict, sel: dict) -> bool:
    """3Dmol's GLModel.atomIsSelected for the keys our scenes use (model is checked apart)."""
    for key, want in sel.items():
        if key == "model":
            continue
        values = want if isinstance(want, list) else [want]
        if atom[key] not in values:
            return False
    return True


def residues_of(atoms: list[dict], sel: dict) -> set[tuple[str, int, str]]:
    return {(a["chain"], a["resi"], a["icode"].strip()) for a in atoms if matches(a, sel)}


def within(st: gemmi.Structure, focus: tuple[str, int, str], radius: float) -> set:
    """Residues (chain, num, icode) with an atom within `radius` Å of an atom of the focus
    residue, every altloc counted (as the viewer's cut does): gemmi's neighbour search."""
    model = st[0]
    ns = gemmi.NeighborSearch(model, st.cell, 6).populate()
    res = next(r for r in model[focus[0]] if (r.seqid.num, r.seqid.icode.strip()) == focus[1:])
    out = set()
    for atom in res:
        for mark in ns.find_atoms(atom.pos, "\0", radius=radius):
            cra = mark.to_cra(model)
            if cra.atom.pos.dist(atom.pos) <= radius:
                out.add((cra.chain.name, cra.residue.seqid.num, cra.residue.seqid.icode.strip()))
    return out


@pytest.fixture(scope="module")
def trypsin():
    text = viewer.viewer_pdb(gemmi.read_structure(str(data_file(TRYPSIN))))
    return gemmi.read_pdb_string(text), text, viewer.pdb_index(text)


def styled(view: viewer.Scene, atoms: list[dict], method: str, style: str) -> set:
    """Residues that a `method` ("setStyle"/"addStyle") call with `style` selects in model 0."""
    out = set()
    for sel, spec in view.calls_to(method):
        if sel.get("model") == 0 and style in spec:
            out |= residues_of(atoms, sel)
    return out


def test_trypsin_has_residues_that_share_a_number():
    ids = {(c.name, r.seqid.num, r.seqid.icode) for c in gemmi.read_structure(
        str(data_file(TRYPSIN)))[0] for r in c}  # fmt: skip
    assert {("A", 65, " "), ("A", 65, "A"), ("A", 184, " "), ("A", 184, "A")} <= ids


@pytest.mark.parametrize("focus", [("A", 65, "A"), ("A", 65, ""), ("A", 184, "A")])
def test_focus_label_and_framing_select_exactly_the_focus_residue(trypsin, focus):
    st, text, index = trypsin
    atoms = atoms_3dmol(text)
    view = viewer.ensemble_view(text, focus=focus, index=index, labels=[(focus, "the residue")])
    (centre,) = view.calls_to("center")
    assert residues_of(atoms, centre[0]) == {focus}
    (label,) = view.calls_to("addLabel")
    cas = [a for a in atoms if matches(a, label[2])]
    assert len(cas) == 1 and cas[0]["atom"] == "CA"  # one CA: the label sits at one residue
    (zoom,) = view.calls_to("zoomTo")
    assert residues_of(atoms, zoom[0]["within"]["sel"]) == {focus}


def test_neighbourhood_lines_and_cartoon_are_exactly_the_residues_in_reach(trypsin):
    st, text, index = trypsin
    atoms = atoms_3dmol(text)
    # Residues whose same-numbered neighbour is out of reach when they are in it, or the other
    # way round: where a chain-and-number selection styled both.
    cases = 0
    for focus in sorted({k for k in index.keys if k[0] == "A"})[::3]:
        lines, cartoon = within(st, focus, 6.0), within(st, focus, viewer.CARTOON_A)
        view = viewer.ensemble_view(text, focus=focus, index=index)
        assert styled(view, atoms, "addStyle", "line") == lines, focus
        assert styled(view, atoms, "setStyle", "cartoon") == cartoon, focus
        numbers = {(c, n) for c, n, _ in lines}
        sharing = {(c, n, i) for c, n, i in index.keys if (c, n) in numbers}
        cases += sharing != lines  # chain + number alone would have styled more
    assert cases >= 3  # the structure does test it


def test_flexibility_colours_go_to_exactly_their_residues(trypsin):
    st, text, index = trypsin
    atoms = atoms_3dmol(text)
    focus = ("A", 65, "A")
    red, blue = "#d7191c", "#2c7bb6"
    colours = {("A", 65, "A"): red, ("A", 65, ""): blue}
    view = viewer.ensemble_view(text, focus=focus, index=index, residue_colours=colours)
    coloured = {}
    for sel, spec in view.calls_to("setStyle"):
        colour = spec.get("cartoon", {}).get("color")
        if colour in (red, blue):
            for rid in residues_of(atoms, sel):
                coloured.setdefault(rid, []).append(colour)
    assert coloured == {("A", 65, "A"): [red], ("A", 65, ""): [blue]}
