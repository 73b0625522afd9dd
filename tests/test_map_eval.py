"""`qfitlatent evaluate --maps`: which files make an entry, and the scores on a real map."""

import json
import shutil

import pytest
from test_density_read import map_file

from qfitlatent.cli import main
from qfitlatent.eval.map_eval import entries


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
