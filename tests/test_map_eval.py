"""`qfitlatent evaluate --maps`: which files make an entry, and the scores on a real map."""

import json
import shutil

import gemmi
import numpy as np
import pytest
from test_density_read import map_file

from qfitlatent.cli import main
from qfitlatent.density.residue_evidence import side_chain_b_ratio
from qfitlatent.eval.map_eval import entries, input_model
from qfitlatent.structure import from_gemmi


def copy(tmp_path, *names):
    for name in names:
        shutil.copy(map_file(name), tmp_path / name)


def test_entries_pair_models_and_data_as_a_user_has_them(tmp_path):
    copy(
        tmp_path,
        "1g8a_qfit.pdb.gz",
        "1g8a_refined.pdb.gz",
        "1g8a_data.mtz.gz",
        "1g8a_qfit.mtz.gz",
        "2pkc_qfit_pruned.pdb.gz",
        "2pkc_composite_omit.mtz.gz",
        "3sb3.pdb.gz",
    )
    (tmp_path / "notes.txt").write_text("not a structure")
    got = {e["id"]: e for e in entries(tmp_path)}
    assert set(got) == {"1G8A", "2PKC"}  # 3SB3 has no map here
    g8a = got["1G8A"]
    # qFit's model has the altlocs; the deposited single conformer is the input; the raw data,
    # not the coefficients refined against qFit's model, make the maps.
    assert g8a["labels"].name == "1g8a_qfit.pdb.gz"
    assert g8a["input"].name == "1g8a_refined.pdb.gz"
    assert g8a["map"].name == "1g8a_data.mtz.gz" and g8a["from_data"]
    pkc = got["2PKC"]
    assert pkc["input"] is None and not pkc["from_data"]


def test_evaluate_maps_scores_3sb3_with_and_without_its_map(tmp_path, capsys):
    copy(tmp_path, "3sb3.pdb.gz", "3sb3_data.mtz.gz")
    assert main(["evaluate", "--maps", str(tmp_path), "--device", "cpu", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    (row,) = res["entries"]
    assert row["entry"] == "3SB3" and row["maps_from_data"] and row["fit"] == "with mFo-DFc"
    assert "servalcat" in row["map_source"]
    assert row["n_altloc"] == 6 and row["n_chi1_alt"] == 4  # as docs/density.md counts them
    for name in ("with_map", "network", "fofc_peak", "two_fofc_peak"):
        assert 0.0 <= row[f"auroc_{name}|altloc"] <= 1.0
    # The map makes the difference on this structure: the mFo-DFc peak alone ranks the altloc
    # residues far above chance, and the posterior keeps most of that.
    assert row["auroc_fofc_peak|altloc"] > 0.8 and row["auroc_with_map|altloc"] > 0.8
    key = "maps_from_data|with_map|altloc"
    assert res["mean_per_structure_auroc"][key]["mean"] == pytest.approx(
        row["auroc_with_map|altloc"]
    )


def test_evaluate_needs_data_or_maps(capsys):
    assert main(["evaluate"]) == 2
    assert "--maps" in capsys.readouterr().err


def test_evaluate_maps_says_when_a_folder_has_no_entry(tmp_path, capsys):
    copy(tmp_path, "3sb3.pdb.gz")
    assert main(["evaluate", "--maps", str(tmp_path), "--device", "cpu"]) == 2
    assert "no entry with a multiconformer model and a map" in capsys.readouterr().err


def test_reduced_inputs_get_b_refined_and_real_single_conformers_stay_as_read(tmp_path):
    """3SB3's reduced model kept the B refined with its altlocs; refined against the data, the
    side chains that lost an alternate take up a higher B than the rest. 1G8A's own
    single-conformer refinement is used as read."""
    copy(tmp_path, "3sb3.pdb.gz", "3sb3_data.mtz.gz", "1g8a_refined.pdb.gz", "1g8a_qfit.pdb.gz")
    copy(tmp_path, "1g8a_data.mtz.gz")
    got = {e["id"]: e for e in entries(tmp_path)}
    multi = gemmi.read_structure(str(got["3SB3"]["labels"]))
    split = {r.id for r in from_gemmi(multi.clone(), "3sb3").residues if r.n_obs > 1}

    def ratio_gain(st):
        parsed = from_gemmi(st.clone(), "3sb3")
        r = side_chain_b_ratio(parsed)
        alt = np.array([rec.id in split for rec in parsed.residues])
        ok = np.isfinite(r)
        return np.mean(r[alt & ok]) - np.mean(r[~alt & ok])

    kept = input_model(got["3SB3"], multi, refine=False)
    refined = input_model(got["3SB3"], multi)
    assert ratio_gain(refined) > ratio_gain(kept) + 0.2
    g8a = input_model(got["1G8A"], gemmi.read_structure(str(got["1G8A"]["labels"])))
    given = gemmi.read_structure(str(got["1G8A"]["input"]))
    as_read = {
        (c.chain.name, str(c.residue.seqid), c.atom.name): c.atom.b_iso for c in given[0].all()
    }
    used = [((c.chain.name, str(c.residue.seqid), c.atom.name), c.atom.b_iso) for c in g8a[0].all()]
    assert len(used) > 1000 and all(as_read[k] == b for k, b in used)
