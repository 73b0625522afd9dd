"""The 3D viewer: PDB text for it, the neighbourhood cut, viewer HTML safety and stability."""

from pathlib import Path

import gemmi
import numpy as np
import pytest

from qfitlatent.viz import colours, viewer

ROOT = Path(__file__).resolve().parents[1]


def test_flexibility_colours_run_from_rigid_to_flexible():
    assert colours.flexibility_colour(0.0).lower() == colours.FLEX_STOPS[0].lower()
    assert colours.flexibility_colour(1.0).lower() == colours.FLEX_STOPS[-1].lower()


def test_atoms_pdb_reads_back_with_gemmi_and_has_no_angle_brackets():
    atoms = {
        "CA": np.array([1.0, 2.0, 3.0]),
        "CB": np.array([2.5, 2.0, 3.0]),
        "SG": np.array([3.0, 3.5, 3.0]),
    }
    text = viewer.atoms_pdb(atoms, "</s", "A", 42, "B", occ=0.35)
    assert "<" not in text and ">" not in text
    st = gemmi.read_pdb_string(text)
    res = st[0]["A"][0]
    assert (res.seqid.num, res.seqid.icode) == (42, "B")
    assert [a.name for a in res] == ["CA", "CB", "SG"]
    assert res["SG"][0].pos.dist(gemmi.Position(3.0, 3.5, 3.0)) < 1e-3
    assert res["CB"][0].occ == pytest.approx(0.35)


def test_viewer_pdb_drops_remarks_so_uploaded_text_cannot_run():
    text = (
        "REMARK   1 </script><script>alert(1)</script>\n"
        "ATOM      1  N   GLY A   1       0.000   0.000   0.000  1.00  0.00           N\n"
        "ATOM      2  CA  GLY A   1       1.458   0.000   0.000  1.00  0.00           C\n"
        "END\n"
    )
    out = viewer.viewer_pdb(gemmi.read_pdb_string(text))
    assert "script" not in out and "REMARK" not in out and "<" not in out
    assert out.count("ATOM") == 2


def small_view(sampled_colour="#E69F00"):
    pdb = viewer.atoms_pdb(
        {"N": np.zeros(3), "CA": np.array([1.46, 0, 0]), "C": np.array([2.0, 1.4, 0])},
        "GLY",
        "A",
        1,
    )
    side = viewer.atoms_pdb(
        {"CA": np.array([1.46, 0, 0]), "CB": np.array([2.0, -1.4, 0])}, "ALA", "A", 1
    )
    return viewer.ensemble_view(
        pdb,
        focus=("A", 1, ""),
        sampled=[{"pdb": side, "colour": sampled_colour}],
        observed=[{"pdb": side}],
        labels=[(("A", 1, ""), "A1 ALA")],
    )


def test_scene_is_json_and_its_message_names_the_local_script_and_the_text_hash():
    import json

    scene = small_view()
    msg = json.loads(json.dumps(scene.message("result-1", ("A", 1, ""))))  # JSON as is
    assert msg["js_url"] == "/app/static/3Dmol-min.js"  # served by the app: works offline
    assert msg["structure"] == "result-1" and msg["focus"] == ["A", 1, ""]
    # The structure's text is model 0; sampled and observed conformers are models after it.
    assert msg["base"] == scene.base and len(scene.calls_to("addModel")) == 2
    assert msg["calls"][-1] == ["center", [{"model": 0, "chain": "A", "resi": 1, "icode": " "}]]
    # Equal for equal text, so the viewer re-parses the structure only when it changes.
    assert msg["base_hash"] == small_view("#56B4E9").message()["base_hash"]
    other = viewer.ensemble_view(scene.base + "REMARK\n", focus=("A", 1, ""))
    assert other.message()["base_hash"] != msg["base_hash"]
    assert ["setStyle", [{"model": -1}, {"stick": {"radius": 0.13, "color": "#E69F00",
                                                   "opacity": 0.95}}]] in msg["calls"]  # fmt: skip


def test_legend_html_escapes_labels():
    html = viewer.legend_html([("<b>A</b>", "#000")])
    assert "<b>A</b>" not in html and "&lt;b&gt;" in html


def test_near_residues_are_exactly_the_residues_within_the_radius():
    full = viewer.viewer_pdb(gemmi.read_structure(str(ROOT / "qfitlatent/data/3k0n_qfit.pdb.gz")))
    index = viewer.pdb_index(full)
    chain = gemmi.read_pdb_string(full)[0]["A"]
    kept = {index.keys[r] for r in viewer.near_residues(index, ("A", 99, ""), 8.0)}
    # Reference: gemmi's own distances, residue by residue, over every atom of every altloc.
    centre = [a.pos for r in chain if r.seqid.num == 99 for a in r]
    expected = {("A", r.seqid.num, r.seqid.icode.strip()) for r in chain
                if min(a.pos.dist(c) for a in r for c in centre) <= 8.0}  # fmt: skip
    assert kept == expected and 5 < len(kept) < 60  # a neighbourhood, not the protein


def test_atoms_pdb_writes_each_atoms_element():
    # Selenomethionine: SE is the one two-letter element; SD of MET would be sulphur.
    names = ["CA", "CB", "CG", "SE", "CE"]
    text = viewer.atoms_pdb({n: np.full(3, float(k)) for k, n in enumerate(names)}, "MSE", "A", 1)
    res = gemmi.read_pdb_string(text)[0]["A"][0]
    assert [a.element.name for a in res] == ["C", "C", "C", "Se", "C"]
    met = gemmi.read_pdb_string(viewer.atoms_pdb({"SD": np.zeros(3)}, "MET", "A", 1))
    assert met[0]["A"][0]["SD"][0].element.name == "S"


def test_drawn_pdb_is_the_union_of_the_shown_residues_neighbourhoods():
    full = viewer.viewer_pdb(gemmi.read_structure(str(ROOT / "qfitlatent/data/3k0n_qfit.pdb.gz")))
    index = viewer.pdb_index(full)
    shown = [("A", 99, ""), ("A", 10, "")]
    drawn = viewer.drawn_pdb(index, shown)
    text = drawn.text
    chain = gemmi.read_pdb_string(full)[0]["A"]
    res = {r.seqid.num: r for r in chain}
    radius = viewer.CARTOON_A + 2.0

    def near(num):
        return {r.seqid.num for r in chain
                if min(a.pos.dist(b.pos) for a in r for b in res[num]) <= radius}  # fmt: skip

    kept = {r.seqid.num for r in gemmi.read_pdb_string(text)[0]["A"]}
    assert kept == near(99) | near(10) and len(kept) < len(res)
    lines = text.splitlines()[:-1]
    assert lines == [line for line in index.lines if line in set(lines)]  # file order kept
    assert drawn.chain_ids == {"A": "A"}
    whole = viewer.drawn_pdb(index, shown, whole=True)
    assert whole.text.splitlines()[:-1] == index.lines


@pytest.mark.parametrize("whole", [False, True])
def test_the_view_frames_the_residue_fades_the_cartoon_and_keeps_labels_off_atoms(whole):
    pdb = viewer.atoms_pdb({"N": np.zeros(3), "CA": np.array([1.46, 0, 0])}, "GLY", "A", 1)
    view = viewer.ensemble_view(pdb, focus=("A", 1, ""), whole=whole,
                                residue_colours={("A", 1, ""): "#ff0000"},
                                labels=[(("A", 1, ""), "A1 GLY")])  # fmt: skip
    # The camera frames the residue and what lies within FRAME_A of it, in every model (its
    # conformers are models of their own), not its 10 Å neighbourhood.
    ((frame,),) = [args for args in view.calls_to("zoomTo") if args]
    assert "model" not in frame
    assert frame["within"]["sel"] == {"chain": "A", "resi": 1, "icode": " "}
    assert frame["within"]["distance"] <= 4.0
    # Every cartoon drawn is see-through, so none hides the residue's side chain.
    cartoons = [args[1]["cartoon"] for args in view.calls_to("setStyle") if "cartoon" in args[1]]
    assert cartoons and all(c["opacity"] < 1 for c in cartoons)
    # Labels float beside their CA rather than on it.
    (label,) = view.calls_to("addLabel")
    offset = label[1]["screenOffset"]
    assert abs(offset["x"]) >= 10 and abs(offset["y"]) >= 10


def test_the_scene_names_the_nearby_residues_itself_rather_than_asking_3dmol_to_search():
    # A 3Dmol `within` selection searches every atom in the browser, once per selection; the
    # scene names the residues instead (only the camera's framing keeps one `within`).
    full = viewer.viewer_pdb(gemmi.read_structure(str(ROOT / "qfitlatent/data/3k0n_qfit.pdb.gz")))
    colours = {("A", 99, ""): "#ff0000", ("A", 2, ""): "#00ff00"}
    view = viewer.ensemble_view(full, focus=("A", 99, ""), residue_colours=colours)
    styled = [args[0] for args in view.calls_to("setStyle") + view.calls_to("addStyle")]
    assert not any("within" in sel for sel in styled)
    chain = gemmi.read_pdb_string(full)[0]["A"]
    res = {r.seqid.num: r for r in chain}

    def near(radius):  # gemmi's distances over every atom of every altloc
        return sorted(r.seqid.num for r in chain
                      if min(a.pos.dist(b.pos) for a in r for b in res[99]) <= radius)  # fmt: skip

    grey = [sel["resi"] for sel, style in view.calls_to("setStyle")
            if style.get("cartoon", {}).get("color") == viewer.CARTOON_GREY]  # fmt: skip
    assert grey == [near(viewer.CARTOON_A)] and 10 < len(grey[0]) < len(res)
    lines = [sel["resi"] for sel, style in view.calls_to("addStyle") if "line" in style]
    assert lines == [near(6.0)]
    # A flexibility colour far from the residue (A2) is not drawn; the residue's own is.
    coloured = [sel["resi"] for sel, style in view.calls_to("setStyle")
                if style.get("cartoon", {}).get("color") in ("#ff0000", "#00ff00")]  # fmt: skip
    assert coloured == [[99]] and 2 not in near(viewer.CARTOON_A)
