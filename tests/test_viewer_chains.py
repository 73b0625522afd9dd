"""Chain names the viewer cannot write as they are: mmCIF's "AAA" (gemmi's PDB writer refuses
it), "AB" (3Dmol reads the chain from column 22 alone: "B"), more chains than one-character IDs.
The viewer names each chain by a one-character ID and its index keeps the real names.

Selections are resolved the way 3Dmol matches atoms (test_viewer_exact.atoms_3dmol); the same
in 3Dmol itself: test_viewer_browser.py, the page: the AppTest at the end.
"""

import json
from pathlib import Path

import gemmi
import pytest
from conftest import data_file, tiny_app_env, tiny_model
from streamlit.testing.v1 import AppTest
from test_viewer_exact import atoms_3dmol, residues_of, within

from qfitlatent import display
from qfitlatent.viz import viewer

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "qfitlatent" / "data" / "3k0n_qfit.pdb.gz"
LONG_NAME = "8cdz.cif.gz"  # one chain, "AAA", 258 residues: a cryo-EM-style mmCIF name


def example_protein() -> gemmi.Structure:
    """The bundled 3K0N, protein only: one chain "A"."""
    st = gemmi.read_structure(str(EXAMPLE))
    st.setup_entities()
    st.remove_ligands_and_waters()
    return st


def two_chains_sharing_numbers() -> gemmi.Structure:
    """3K0N's chain as "B", and a copy of it as "AB" 100 Å away: residue 99 in both."""
    st = example_protein()
    model = st[0]
    model["A"].name = "B"
    copy = model["B"].clone()
    copy.name = "AB"
    for res in copy:
        for atom in res:
            atom.pos = gemmi.Position(atom.pos.x + 100.0, atom.pos.y, atom.pos.z)
    model.add_chain(copy)
    return st


def chain_per_residue() -> gemmi.Structure:
    """3K0N's protein with every residue a chain of its own ("R0", "R1", …): 160-odd chains,
    more than the viewer's 92 IDs."""
    st = example_protein()
    model = gemmi.Model("1")
    for k, res in enumerate(st[0]["A"]):
        chain = gemmi.Chain(f"R{k}")
        chain.add_residue(res)
        model.add_chain(chain)
    out = gemmi.Structure()
    out.add_model(model)
    out.setup_entities()
    return out


def test_viewer_ids_are_one_printable_character_each_distinct_up_to_92_chains():
    assert len(viewer.VIEWER_CHAIN_IDS) == len(set(viewer.VIEWER_CHAIN_IDS)) == 92
    assert all(c.isprintable() and c.isascii() and c not in " <>" for c in viewer.VIEWER_CHAIN_IDS)
    ids = viewer.viewer_chain_ids(["A", "AAA", "B", "AB", "", "<"])
    assert ids["A"] == "A" and ids["B"] == "B"  # one-character names stay themselves
    assert len(set(ids.values())) == 6 and all(len(c) == 1 for c in ids.values())
    many = viewer.viewer_chain_ids(f"C{k}" for k in range(200))
    assert len(set(many.values())) == 92  # past 92 they repeat, still one character each


def test_a_long_chain_name_is_drawn_with_one_id_in_text_focus_and_conformers():
    from qfitlatent.predict import predict

    pred = predict(tiny_model(), data_file(LONG_NAME), n_samples=8)
    index = viewer.viewer_index(pred.parsed.structure)
    i = next(
        j
        for j in range(pred.features.n_res)
        if pred.parsed.residues[j].n_obs >= 2 and pred.features.chi_defined[j].any()
    )
    chain, resnum, icode = display.residue_id(pred, i)
    assert chain == "AAA" and (chain, resnum, icode) in index.keys
    view, _ = display.structure_view(pred, index, i)
    (centre,) = view.calls_to("center")
    cid = centre[0]["chain"]
    assert len(cid) == 1
    # The residue's atoms in the scene's text carry that ID, where 3Dmol reads it.
    mine = [line for line in view.base.splitlines() if line.startswith(("ATOM", "HETATM"))
            and (int(line[22:26]), line[26].strip()) == (resnum, icode)]  # fmt: skip
    assert mine and {line[21] for line in mine} == {cid}
    assert residues_of(atoms_3dmol(view.base), centre[0]) == {(cid, resnum, icode)}
    # And so do its conformers (sampled and observed), each a model of its own.
    models = [args[0] for args in view.calls_to("addModel")]
    assert len(models) >= 2
    for text in models:
        read = {(ch.name, r.seqid.num) for ch in gemmi.read_pdb_string(text)[0] for r in ch}
        assert read == {(cid, resnum)}, text
    # Whole-structure mode names it alike.
    whole, _ = display.structure_view(pred, index, i, whole=True)
    assert whole.calls_to("center")[0][0]["chain"] == cid
    assert {line[21] for line in whole.base.splitlines() if line.startswith("ATOM")} == {cid}
    # … with the same text for every residue, so the page sends it once.
    other, _ = display.structure_view(pred, index, (i + 50) % pred.features.n_res, whole=True)
    assert other.base == whole.base


def test_chains_b_and_ab_keep_their_residues_apart():
    st = two_chains_sharing_numbers()
    index = viewer.viewer_index(st)
    assert ("B", 99, "") in index.keys and ("AB", 99, "") in index.keys
    ab = index.chain_ids["AB"]
    assert index.chain_ids["B"] == "B" and len(ab) == 1 and ab != "B"
    for whole in (False, True):
        drawn = viewer.drawn_pdb(index, [("AB", 99, "")], whole)
        view = viewer.ensemble_view(drawn.text, focus=("AB", 99, ""), index=index,
                                    chain_ids=drawn.chain_ids)  # fmt: skip
        atoms = atoms_3dmol(drawn.text)
        (centre,) = view.calls_to("center")
        assert residues_of(atoms, centre[0]) == {(ab, 99, "")}, whole
        lines = set()
        for sel, spec in view.calls_to("addStyle"):
            if "line" in spec:
                lines |= residues_of(atoms, sel)
        near = within(st, ("AB", 99, ""), 6.0)  # gemmi, on the real names
        assert {c for c, _, _ in near} == {"AB"} and lines == {(ab, n, i) for _, n, i in near}
    # gemmi's own PDB text names "AB" in columns 21-22; indexed, its lines get the same ID.
    text = st.make_pdb_string(gemmi.PdbWriteOptions(minimal=True))
    from_text = viewer.pdb_index(text)
    assert from_text.keys == index.keys and from_text.lines == index.lines


def test_past_92_chains_a_neighbourhood_gives_each_of_its_chains_an_id_of_its_own():
    st = chain_per_residue()
    index = viewer.viewer_index(st)
    assert len(index.chain_ids) > 92
    names = [ch.name for ch in st[0]]
    focus = (names[len(names) // 2], *index.keys[len(names) // 2][1:])
    drawn = viewer.drawn_pdb(index, [focus])
    shown = list(drawn.chain_ids)
    # The structure's IDs repeat among these chains (what the scene must sort out) …
    assert len({index.chain_ids[c] for c in shown}) < len(shown)
    # … the scene's do not, and its text names each chain's residue by the scene's ID.
    assert len(set(drawn.chain_ids.values())) == len(shown)
    drawn_st = gemmi.read_pdb_string(drawn.text)
    by_id = {ch.name: [r.seqid.num for r in ch] for ch in drawn_st[0]}
    real = {ch.name: [r.seqid.num for r in ch] for ch in st[0]}
    assert by_id == {drawn.chain_ids[c]: real[c] for c in shown}
    view = viewer.ensemble_view(drawn.text, focus=focus, index=index, chain_ids=drawn.chain_ids)
    atoms = atoms_3dmol(drawn.text)
    back = {cid: c for c, cid in drawn.chain_ids.items()}
    lines = set()
    for sel, spec in view.calls_to("addStyle"):
        if "line" in spec:
            lines |= {(back[c], n, i) for c, n, i in residues_of(atoms, sel)}
    assert lines == within(st, focus, 6.0) and len(lines) > 3


def test_atoms_pdb_refuses_a_chain_name_it_would_cut():
    with pytest.raises(ValueError, match="one character"):
        viewer.atoms_pdb({"CA": [0.0, 0.0, 0.0]}, "ALA", "AAA", 1)


# --- the page --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("viewer-chains")
    with tiny_app_env(tmp):
        yield tmp


def test_the_app_shows_a_structure_whose_chain_name_is_three_characters(page_env):
    path = data_file(LONG_NAME)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).run()
    at.file_uploader(key="upload").set_value((path.name, path.read_bytes(), "application/gzip"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    (scene,) = [json.loads(c.proto.json_args) for c in at.get("component_instance")
                if c.proto.component_name.endswith("qfitlatent_viewer")]  # fmt: skip
    assert scene["focus"][0] == "AAA"
    centre = next(args[0] for name, args in scene["calls"] if name == "center")
    assert len(centre["chain"]) == 1
    focus = (centre["chain"], *scene["focus"][1:])  # the residue, by its ID
    assert residues_of(atoms_3dmol(scene["base"]), centre) == {focus}
