"""`predict` with a density map: the map head's posterior, where each call comes from, the map
section of mixture.json, the multiconformer model's map occupancies, and nothing changed
without a map. Real structure and map (3SB3 with its FWT/DELFWT coefficients: fast), the
shipped network weights, files read back with pandas, json and gemmi."""

import io
import json
import math

import gemmi
import numpy as np
import pandas as pd
import pytest
from conftest import SHARED, data_file, tiny_model

from qfitlatent.checkpoint import default_weights, load_model
from qfitlatent.density.posterior import NETWORK, LogisticFit, MapHead
from qfitlatent.density.reduce import single_conformer
from qfitlatent.density.residue_evidence import FEATURES, NEAR_COPY_FEATURES
from qfitlatent.ensemble.multiconf import MAP_OCCUPANCY_NOTE, MAP_REPORT_COLUMNS, REPORT_COLUMNS
from qfitlatent.errors import CheckpointError, MapError
from qfitlatent.flexibility import COLUMNS, MAP_COLUMNS
from qfitlatent.predict import outputs, predict

MAPS = SHARED / "maps"
STRUCTURE = MAPS / "3sb3.pdb.gz"  # 101 residues
MAP = MAPS / "3sb3_data.mtz.gz"  # FWT/PHWT and DELFWT/PHDELWT
# A head that reads the network and the difference-map peak: its coefficients are the test's
# own, so the test does not depend on which head ships.
FIT = LogisticFit((NETWORK, "fofc_peak"), (0.0, 0.0), (1.0, 1.0), (1.0, 1.0), -1.0)
HEAD = MapHead(FIT, LogisticFit((NETWORK,), (0.0,), (1.0,), (1.0,), 0.5), "a test head")


def files_of(pred) -> dict[str, bytes]:
    prefix = f"{pred.parsed.name}_"
    return {name.removeprefix(prefix): data for name, data in outputs(pred, "v3").items()}


@pytest.fixture(scope="module")
def network():
    return load_model(default_weights(), "cpu")[0]


@pytest.fixture(scope="module")
def plain(network):
    return predict(network, STRUCTURE)


@pytest.fixture(scope="module")
def mapped(network):
    return predict(network, STRUCTURE, map_file=MAP, map_head=HEAD)


@pytest.fixture(scope="module")
def from_data(network, tmp_path_factory):
    """The case a user has: 3SB3 reduced to one conformer per residue, its maps computed from
    the observed data with that model's phases (servalcat, a few seconds)."""
    path = tmp_path_factory.mktemp("reduced") / "3sb3_single.pdb"
    single_conformer(gemmi.read_structure(str(STRUCTURE))).write_pdb(str(path))
    return predict(network, path, map_file=MAP, map_from_data=True, map_head=HEAD)


def test_p_flexible_changes_only_where_the_map_speaks(plain, mapped):
    scanned = mapped.evidence.scanned  # [N]
    assert 50 < scanned.sum() < len(scanned)  # Gly/Ala/Pro and the like keep the network's
    assert np.array_equal(mapped.p_network.numpy(), plain.p_flexible.numpy())
    net, post = mapped.p_network.numpy(), mapped.p_flexible.numpy()
    assert np.array_equal(post[~scanned], net[~scanned])
    assert (np.abs(post[scanned] - net[scanned]) > 1e-3).mean() > 0.9
    # the flexibility score that ranks and splits is the posterior
    assert np.allclose(mapped.flexibility[scanned].numpy(), post[scanned])


def test_residues_csv_says_where_each_call_comes_from(mapped):
    table = pd.read_csv(io.BytesIO(files_of(mapped)["residues.csv"]), keep_default_na=False)
    assert list(table.columns[: len(COLUMNS) + len(MAP_COLUMNS)]) == [*COLUMNS, *MAP_COLUMNS]
    assert set(table["call_from"]) == {"map", "model"}
    model_rows = table[table["call_from"] == "model"]
    assert (model_rows["p_flexible"] == model_rows["p_flexible_network"]).all()
    assert (model_rows[list(FEATURES)] == "").all().all()  # the map said nothing there
    map_rows = table[table["call_from"] == "map"]
    assert (map_rows["p_flexible"] != map_rows["p_flexible_network"]).mean() > 0.9
    assert pd.to_numeric(map_rows["fofc_peak"]).notna().all()
    # rows are ranked by the posterior
    assert table["flexibility"].is_monotonic_decreasing


def test_near_copy_evidence_is_read_only_where_used_or_asked(network, mapped):
    """HEAD reads none of the near-copy numbers: they are not computed, and residues.csv keeps
    their columns empty; --all-evidence, or a head that reads one, gets them all."""
    near = [FEATURES.index(f) for f in NEAR_COPY_FEATURES]
    rest = [i for i in range(len(FEATURES)) if i not in near]
    scanned = mapped.evidence.scanned
    assert np.isnan(mapped.evidence.features[:, near]).all()
    table = pd.read_csv(io.BytesIO(files_of(mapped)["residues.csv"]), keep_default_na=False)
    assert (table[list(NEAR_COPY_FEATURES)] == "").all().all()
    asked = predict(network, STRUCTURE, map_file=MAP, map_head=HEAD, all_evidence=True)
    got = asked.evidence.features[scanned][:, near]  # [R, 4]
    assert np.isfinite(got).mean(axis=0).min() > 0.5  # every column read (χ2 scan: χ2 only)
    np.testing.assert_array_equal(
        asked.evidence.features[:, rest], mapped.evidence.features[:, rest]
    )
    table = pd.read_csv(io.BytesIO(files_of(asked)["residues.csv"]))
    assert table.loc[table["call_from"] == "map", "fofc_shift"].notna().all()
    # A head that reads one of them: computed without being asked.
    reads = LogisticFit((NETWORK, "fofc_shift"), (0.0, 0.0), (1.0, 1.0), (1.0, 1.0), -1.0)
    head = MapHead(reads, HEAD.two_fofc_only, "a head reading a near-copy number")
    used = predict(network, STRUCTURE, map_file=MAP, map_head=head)
    np.testing.assert_array_equal(used.evidence.features, asked.evidence.features)


def test_mixture_json_has_the_map_section(plain, mapped):
    doc = json.loads(files_of(mapped)["mixture.json"])
    assert doc["map"]["source"] == mapped.maps.source
    assert "DELFWT" in doc["map"]["source"] and doc["map"]["difference_map"] is True
    assert doc["map"]["head_trained_on"] == "a test head"
    assert doc["map"]["residues_called_from_map"] == int(mapped.evidence.scanned.sum())
    calls = {r["call_from"] for r in doc["residues"]}
    assert calls == {"map", "model"}
    for r in doc["residues"]:
        if r["call_from"] == "model":
            assert r["p_flexible"] == r["p_flexible_network"]


def test_without_a_map_the_files_hold_nothing_of_it(plain):
    """The files of a prediction without a map are those of before maps existed: the same
    columns and keys (the bytes were compared with the previous commit's; see docs/predict.md)."""
    files = files_of(plain)
    header = files["residues.csv"].decode().splitlines()[0].split(",")
    assert header == [*COLUMNS, "n_conformers", "rejected_clash"]
    assert files["report.csv"].decode().splitlines()[0].split(",") == list(REPORT_COLUMNS)
    doc = json.loads(files["mixture.json"])
    assert "map" not in doc
    assert not any("call_from" in r or "p_flexible_network" in r for r in doc["residues"])
    assert plain.maps is None and plain.evidence is None
    assert np.array_equal(plain.p_network.numpy(), plain.p_flexible.numpy())
    pdb = files["multiconformer.pdb"].decode()
    assert "density map" not in pdb


def occupancies_by_residue(pdb_text: str) -> dict:
    """(chain, resnum) -> {altloc: occupancy} of side-chain atoms, as gemmi reads the file."""
    st = gemmi.read_pdb_string(pdb_text)
    out = {}
    for chain in st[0]:
        for res in chain:
            for atom in res:
                if atom.has_altloc() and atom.name not in ("N", "CA", "C", "O", "CB"):
                    out.setdefault((chain.name, res.seqid.num), {})[atom.altloc] = atom.occ
    return out


def test_multiconformer_model_occupancies_come_from_the_map(from_data):
    assert "servalcat" in from_data.maps.source and from_data.maps.r_work < 0.3
    files = files_of(from_data)
    report = pd.read_csv(io.BytesIO(files["report.csv"]), keep_default_na=False)
    assert list(report.columns) == [*REPORT_COLUMNS, *MAP_REPORT_COLUMNS]
    written = report[(report["status"] == "written") & (report["source"] != "observed")]
    assert len(written) >= 4  # at least two residues split (two conformers each)
    assert (written["note"] == MAP_OCCUPANCY_NOTE).all()
    assert pd.to_numeric(written["density_2fofc"]).notna().all()
    # Every alternative the map did not support is reported with its numbers.
    refused = report[report["status"] == "rejected: no density"]
    assert len(refused) > 0 and pd.to_numeric(refused["density_fofc"]).notna().all()
    occ = occupancies_by_residue(files["multiconformer.pdb"].decode())
    for (chain, resnum), group in written.groupby(["chain", "resnum"]):
        in_file = occ[(chain, int(resnum))]
        assert math.isclose(sum(in_file.values()), 1.0, abs_tol=1e-6)
        assert sorted(in_file) == sorted(group["altloc"])
        for _, row in group.iterrows():
            assert math.isclose(in_file[row["altloc"]], float(row["occupancy"]), abs_tol=1e-6)
    # The files say how the alternatives and occupancies were chosen.
    assert "density map" in files["multiconformer.pdb"].decode()
    cif = gemmi.cif.read_string(files["multiconformer.cif"].decode()).sole_block()
    assert any("density map" in t for t in cif.find_values("_pdbx_database_remark.text"))


def test_a_bad_map_is_one_line(network, tmp_path):
    junk = tmp_path / "3sb3.mtz"
    junk.write_text("not an MTZ\n")
    with pytest.raises(MapError, match="3sb3.mtz") as err:
        predict(network, STRUCTURE, map_file=junk, map_head=HEAD)
    assert "\n" not in str(err.value)
    with pytest.raises(MapError, match="unit cell"):  # 3SB3's map, another crystal's model
        predict(network, data_file("1ab1.pdb.gz"), map_file=MAP, map_head=HEAD)


def test_a_map_given_as_bytes_with_its_name(network, mapped):
    pred = predict(network, STRUCTURE, map_file=MAP.read_bytes(), map_name=MAP.name,
                   map_head=HEAD)  # fmt: skip
    assert np.array_equal(pred.p_flexible.numpy(), mapped.p_flexible.numpy())


def test_weights_without_a_flexibility_head_refuse_a_map():
    from qfitlatent.config import ModelConfig
    from qfitlatent.model import QFitLatent

    model = tiny_model()
    assert model.flex is not None
    no_head = QFitLatent(ModelConfig(d_s=16, d_z=8, n_blocks=1, n_heads=2, c_head=4,
                                     n_qk_points=2, n_v_points=2, flex_head=False))  # fmt: skip
    with pytest.raises(CheckpointError, match="flexibility head"):
        predict(no_head.eval(), STRUCTURE, map_file=MAP, map_head=HEAD)


def test_the_split_uses_the_map_heads_threshold(network, plain):
    """The head's own split threshold replaces the default (chosen for the network alone)."""
    from dataclasses import replace

    from qfitlatent.ensemble.multiconf import DEFAULT_THRESHOLD

    head = replace(HEAD, split_threshold=0.42)
    mapped = predict(network, STRUCTURE, map_file=MAP, map_head=head)
    assert mapped.multiconformer.options.threshold == 0.42
    assert plain.multiconformer.options.threshold == DEFAULT_THRESHOLD
