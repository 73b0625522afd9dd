"""`qfitlatent predict --map / --maps`: one structure with its map, a folder of maps paired by
name, bad maps as one line in the failures log, and the argument mistakes as usage errors.
Real 3SB3 structure and MTZ (coefficients: fast), the shipped weights and map head, files read
back with pandas."""

import shutil

import pandas as pd
import pytest
from conftest import SHARED, data_file

from qfitlatent import cli, outdir
from qfitlatent.density.pairing import belongs, map_files, pair_map
from qfitlatent.errors import MapError

MAPS = SHARED / "maps"
STRUCTURE = MAPS / "3sb3.pdb.gz"
MAP = MAPS / "3sb3_data.mtz.gz"
OTHER = data_file("1ab1.pdb.gz")  # 46 residues, no map


def run(*args) -> int:
    return cli.main(["predict", *map(str, args), "--samples", "2"])


def table(folder, name):
    return pd.read_csv(folder / name / f"{name}_residues.csv", keep_default_na=False)


def test_predict_with_a_map(tmp_path, capsys):
    assert run(STRUCTURE, "--map", MAP, "--out", tmp_path) == 0
    said = capsys.readouterr().out
    assert "map 3sb3_data.mtz.gz:" in said and "residues called from it" in said
    rows = table(tmp_path, "3sb3")
    assert set(rows["call_from"]) == {"map", "model"}


def test_all_evidence_and_no_map_proposals_reach_the_files(tmp_path):
    """--all-evidence fills the near-copy columns the shipped head leaves empty;
    --no-map-proposals leaves report.csv without a conformer the map proposed."""
    default, flagged = tmp_path / "default", tmp_path / "flagged"
    every = ("--threshold", 0, "--input-altlocs", "replace")  # every residue tried
    assert run(STRUCTURE, "--map", MAP, "--out", default, *every) == 0
    assert run(STRUCTURE, "--map", MAP, "--out", flagged, *every, "--all-evidence",
               "--no-map-proposals") == 0  # fmt: skip
    mapped = table(default, "3sb3")["call_from"] == "map"
    assert (table(default, "3sb3").loc[mapped, "fofc_shift"] == "").all()
    assert (table(flagged, "3sb3").loc[mapped, "fofc_shift"] != "").all()

    def sources(folder):
        report = pd.read_csv(folder / "3sb3" / "3sb3_report.csv", keep_default_na=False)
        return set(report["source"])

    assert "map" in sources(default) and "map" not in sources(flagged)


def test_maps_folder_pairs_by_name_and_skips_a_structure_without_one(tmp_path, capsys):
    maps = tmp_path / "maps"
    maps.mkdir()
    shutil.copy(MAP, maps / "3sb3_data.mtz.gz")
    (maps / "notes.txt").write_text("not a map\n")
    out = tmp_path / "out"
    assert run(STRUCTURE, OTHER, "--maps", maps, "--out", out) == 1
    skipped = [x for x in capsys.readouterr().err.splitlines() if x.startswith("skipped")]
    assert len(skipped) == 1 and "1ab1" in skipped[0] and "no map in" in skipped[0]
    assert set(table(out, "3sb3")["call_from"]) == {"map", "model"}
    assert not (out / "1ab1").exists()
    assert "no map in" in (out / outdir.FAILURES_LOG).read_text()


def test_a_bad_map_is_one_line_and_the_structure_fails(tmp_path, capsys):
    bad = tmp_path / "3sb3.mtz"
    bad.write_bytes(MAP.read_bytes()[:5000])  # gzip of an MTZ, cut short and misnamed
    out = tmp_path / "out"
    assert run(STRUCTURE, "--map", bad, "--out", out) == 1
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("skipped")]
    assert len(lines) == 1 and lines[0].startswith(f"skipped {STRUCTURE}: 3sb3.mtz: ")
    assert "traceback" not in lines[0]
    assert not (out / "3sb3").exists()
    log = (out / outdir.FAILURES_LOG).read_text()
    assert "3sb3.mtz" in log and "Traceback" not in log


@pytest.mark.parametrize(
    "extra, message",
    [
        ([OTHER, "--map", MAP], "--map goes with one structure"),
        (["--map", MAP, "--maps", MAPS], "not both"),
        (["--map-from-data"], "--map-from-data needs a map"),
        (["--maps", MAP], "not a folder"),
    ],
)
def test_map_argument_mistakes_are_usage_errors(tmp_path, capsys, extra, message):
    assert run(STRUCTURE, *extra, "--out", tmp_path / "out") == 2
    assert message in capsys.readouterr().err


def test_pairing_rules(tmp_path):
    for name in ("3k0n_data.mtz.gz", "3k0n.ccp4", "3k0nb.mtz", "1abc.map", "readme.txt"):
        (tmp_path / name).write_bytes(b"x")
    listed = map_files(tmp_path)
    assert [p.name for p in listed] == ["1abc.map", "3k0n.ccp4", "3k0n_data.mtz.gz", "3k0nb.mtz"]
    assert pair_map(tmp_path / "3K0N.pdb", listed, tmp_path).name == "3k0n_data.mtz.gz"
    assert pair_map(tmp_path / "1abc.cif.gz", listed, tmp_path).name == "1abc.map"
    assert belongs("3k0n.mtz", "3k0n") and not belongs("3k0nb.mtz", "3k0n")
    with pytest.raises(MapError, match="no map in .* starting with '2xyz'"):
        pair_map(tmp_path / "2xyz.pdb", listed, tmp_path)
    (tmp_path / "3k0n_refined.mtz").write_bytes(b"x")
    with pytest.raises(MapError, match="several maps .*3k0n_data.mtz.gz, 3k0n_refined.mtz"):
        pair_map(tmp_path / "3k0n.pdb", map_files(tmp_path), tmp_path)


def test_weights_without_a_flexibility_head_refuse_a_map_before_any_structure(tmp_path, capsys):
    import torch

    from qfitlatent.checkpoint import save_checkpoint
    from qfitlatent.config import ModelConfig
    from qfitlatent.model import QFitLatent

    torch.manual_seed(0)
    cfg = ModelConfig(d_s=16, d_z=8, n_blocks=1, dropout=0.0, flex_head=False)
    weights = save_checkpoint(tmp_path / "no-head.pt", model_cfg=cfg, model=QFitLatent(cfg),
                              meta={"note": "test"})  # fmt: skip
    assert run(STRUCTURE, "--map", MAP, "--weights", weights, "--out", tmp_path / "out") == 2
    assert "no-head.pt predicts no p_flexible" in capsys.readouterr().err
    assert not (tmp_path / "out" / "3sb3").exists()
