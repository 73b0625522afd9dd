"""The main page with a map (streamlit's AppTest): the example with its map, the map's columns,
Ringer curve and meshes; a map uploaded after the structure; maps that cannot be used, which
leave the structure's prediction on the page with the reason.

A tiny untrained checkpoint stands in for the shipped weights, as in test_app.py.
"""

import gzip
import json
from pathlib import Path

import pytest
from conftest import flex_table, tiny_app_env
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "qfitlatent" / "data"
TIMEOUT = 180  # torch import, the map's FFT and the prediction on 2 shared cores
REFUSED = "The map cannot be used"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app-map")
    with tiny_app_env(tmp):
        yield tmp


def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()


def component_args(at, name: str) -> list[str]:
    """What the page sent its components named `name` ("viewer", "plots"), as JSON texts."""
    return [c.proto.json_args for c in at.get("component_instance")
            if c.proto.component_name.endswith(f"qfitlatent_{name}")]  # fmt: skip


def circle(at) -> dict:
    """The χ circles figure, as the page sent it to its plots component."""
    shown = dict(f for args in component_args(at, "plots") for f in json.loads(args)["figures"])
    return json.loads(shown["circle"])


def values(array) -> list:
    """A plotly array as sent to the browser: a list, or {"dtype", "bdata": base64}."""
    if isinstance(array, dict):
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def viewer_html(at) -> str:
    """The scene the page sent its viewer component, as JSON text."""
    (scene,) = component_args(at, "viewer")
    return scene


def upload_map(at, name: str, data: bytes):
    at.file_uploader(key="map_upload").set_value((name, data, "application/octet-stream")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def refusal(at) -> str:
    return next((w.value for w in at.warning if REFUSED in w.value), "")


@pytest.fixture(scope="module")
def with_map(env):
    at = app()
    at.button(key="example_map").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_example_with_its_map_reads_it_and_says_so(with_map):
    assert not with_map.error and not refusal(with_map), refusal(with_map)
    line = next(m.value for m in with_map.markdown if m.value.startswith("**Map**"))
    assert "3k0n_maps.mtz.gz" in line and "FWT/PHWT" in line and "DELFWT/PHDELWT" in line
    table = flex_table(with_map)
    assert set(table["call from"]) <= {"map", "model"} and (table["call from"] == "map").sum() > 50
    assert table["network p_flexible"].between(0, 1).all()
    assert any("given the network and the map" in c.value for c in with_map.caption)  # profile
    # Two questions, two names: the page's caption names both.
    captions = " ".join(c.value for c in with_map.caption)
    assert "Does the crystal show a second conformer?" in captions
    assert "How much does this side chain move?" in captions


def test_the_selected_residue_gets_its_ringer_curve_and_map_meshes(with_map):
    box = next(s for s in with_map.selectbox if s.key and s.key.startswith("residue:"))
    table = flex_table(with_map)
    target = table.residue[(table["call from"] == "map").idxmax()]  # a residue the map speaks for
    box.set_value(target).run()
    fig = circle(with_map)
    ringer = [t for t in fig["data"] if t.get("meta") == "ringer"]
    assert [t["name"] for t in ringer] == ["2mFo-DFc at γ (σ, Ringer)", "mFo-DFc at γ (σ, Ringer)"]
    assert len(values(ringer[0]["r"])) == 73  # 72 steps of 5°, closed
    assert any(a["text"].startswith("radius") for a in fig["layout"]["annotations"])
    line = next(m.value for m in with_map.markdown if m.value.startswith("**Map** (call from"))
    assert "with the map" in line and "σ at χ1" in line
    html = viewer_html(with_map)
    assert html.count("addVolumetricData") == 3 and '"isoval": -3.0' in html
    with_map.toggle(key="map_mesh").set_value(False).run()
    assert "addVolumetricData" not in viewer_html(with_map)
    with_map.toggle(key="map_mesh").set_value(True).run()
    assert viewer_html(with_map).count("addVolumetricData") == 3


def test_a_map_uploaded_after_the_structure_is_used_and_keyed_by_its_bytes(env):
    at = app()
    structure = DATA / "3k0n_single.pdb.gz"
    at.file_uploader(key="upload").set_value(
        (structure.name, structure.read_bytes(), "application/gzip")
    ).run()
    assert "call from" not in flex_table(at)  # no map yet: the network alone
    assert not at.get("toggle") or all(t.key != "map_mesh" for t in at.get("toggle"))
    upload_map(at, "mine.mtz.gz", (DATA / "3k0n_maps.mtz.gz").read_bytes())
    assert not refusal(at), refusal(at)
    assert "call from" in flex_table(at)  # a new prediction, not the kept one


BAD_MAPS = [
    ("notes.mtz", b"these are my notes, not a map\n" * 50, "not a readable MTZ"),
    ("cut.mtz", gzip.decompress((DATA / "3k0n_maps.mtz.gz").read_bytes())[:5000], "cut short"),
    ("picture.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not a map file"),
    ("other_cell.ccp4", None, "unit cell"),
]


def other_cell_map() -> bytes:
    """A real CCP4 map of another crystal's cell (1ATG's example is opened with it)."""
    import tempfile

    import gemmi
    import numpy as np

    grid = gemmi.FloatGrid(np.random.default_rng(0).normal(size=(20, 24, 28)).astype(np.float32))
    grid.set_unit_cell(gemmi.UnitCell(30.0, 40.0, 50.0, 90, 90, 90))
    grid.spacegroup = gemmi.find_spacegroup_by_name("P 1")
    ccp4 = gemmi.Ccp4Map()
    ccp4.grid = grid
    ccp4.update_ccp4_header()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.ccp4"
        ccp4.write_ccp4_map(str(path))
        return path.read_bytes()


@pytest.mark.parametrize("name, data, expect", BAD_MAPS, ids=[b[0] for b in BAD_MAPS])
def test_a_map_that_cannot_be_used_leaves_the_prediction_and_says_why(env, name, data, expect):
    at = app()
    at.button(key="example_unseen").click().run()
    upload_map(at, name, data if data is not None else other_cell_map())
    why = refusal(at)
    assert expect in why and name in why, why
    assert not at.error  # a warning: the page goes on
    # The structure's prediction is all there, from the model alone.
    assert circle(at)["data"] and "addModel" in viewer_html(at)
    assert "call from" not in flex_table(at)
    assert not any(t.get("meta") == "ringer" for t in circle(at)["data"])
    assert "addVolumetricData" not in viewer_html(at)
    at.run()  # a rerun shows the same reason (remembered, not read again)
    assert refusal(at) == why


def test_the_residue_line_names_the_difference_peak_away_from_the_modelled_chi1():
    import numpy as np

    from qfitlatent.density.ringer import RingerScan
    from qfitlatent.ui_map import residue_map_text

    t = np.arange(0.0, 360.0, 5.0)
    diff = 3.0 * np.exp(4 * (np.cos(np.radians(t - 180.0)) - 1))  # a peak at χ1 180°
    diff += 5.0 * np.exp(40 * (np.cos(np.radians(t - 300.0)) - 1))  # higher, but modelled
    scan = RingerScan("LEU", t, -60.0, {"2mFo-DFc": diff * 0, "mFo-DFc": diff}, {})
    row = {"call_from": "map", "p_flexible_network": 0.2, "flexibility": 0.9}
    text = residue_map_text(row, scan)
    assert "network 0.20 → 0.90" in text and "mFo-DFc at γ" in text
    assert "+3.0σ at χ1 180°" in text or "+3.0σ at χ1 -180°" in text
    assert "cannot speak" in residue_map_text({**row, "call_from": "model"}, None)
    assert residue_map_text({"flexibility": 0.5}, None) is None  # no map: no line


def test_a_data_only_mtz_gets_maps_computed_and_the_r_work_reported(env, tmp_path):
    """Most users have F/SIGF and a model before they have maps: the page computes them
    (servalcat) and says which data it used and the R-work it reached."""
    import re

    import gemmi

    from qfitlatent.density.reduce import single_conformer

    shared = ROOT.parent / "shared" / "data" / "maps"
    model = single_conformer(gemmi.read_structure(str(shared / "3sb3.pdb.gz")))
    model.write_pdb(str(tmp_path / "3sb3_single.pdb"))
    # 3SB3's deposited MTZ with its map coefficients and model columns taken out: observed
    # data and free flags only.
    mtz = gemmi.read_mtz_file(str(shared / "3sb3_data.mtz.gz"))
    for label in mtz.column_labels():
        if label not in ("H", "K", "L", "FREE", "FP", "SIGFP"):
            mtz.remove_column(mtz.column_labels().index(label))
    mtz.write_to_file(str(tmp_path / "3sb3_obs.mtz"))
    kept = gemmi.read_mtz_file(str(tmp_path / "3sb3_obs.mtz")).column_labels()
    assert kept == ["H", "K", "L", "FREE", "FP", "SIGFP"]

    at = app()
    at.file_uploader(key="upload").set_value(
        ("3sb3_single.pdb", (tmp_path / "3sb3_single.pdb").read_bytes(), "text/plain")
    ).run()
    upload_map(at, "3sb3_obs.mtz", (tmp_path / "3sb3_obs.mtz").read_bytes())
    assert not refusal(at), refusal(at)
    line = next(m.value for m in at.markdown if m.value.startswith("**Map**"))
    assert "computed by servalcat from FP/SIGFP" in line, line
    r_work = float(re.search(r"R-work (\d\.\d+)", line).group(1))
    assert 0.1 < r_work < 0.35  # a refined model against its own data (0.203 measured)
    table = flex_table(at)
    assert (table["call from"] == "map").sum() > 50 and "network p_flexible" in table
