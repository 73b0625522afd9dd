"""Reading maps: each kind from the real files in ../shared/data/maps, and the bad ones."""

import gzip
import tempfile

import gemmi
import numpy as np
import pytest
from conftest import SHARED, data_file

from qfitlatent.density import read_maps, sample
from qfitlatent.density.grid import FOFC, TWO_FOFC
from qfitlatent.errors import MapError, StructureError

MAPS = SHARED / "maps"
COARSE = 2.0  # grid points per d_min: enough to find the model in its map, and fast


def map_file(name: str):
    """A file of ../shared/data/maps; skipped or failed as any missing real data is."""
    return data_file(name, MAPS)


def model(name: str) -> gemmi.Structure:
    return gemmi.read_structure(str(map_file(name)))


def protein_xyz(st: gemmi.Structure, atom: str = "CA") -> np.ndarray:
    return np.array(
        [a.pos.tolist() for ch in st[0] for r in ch for a in r if a.name == atom]
    )  # [N, 3]


def assert_sigma_units(dmap):
    arr = dmap.grid.array
    assert abs(float(arr.mean())) < 1e-3 and abs(float(arr.std()) - 1.0) < 1e-3


def test_mtz_coefficients_fwt_and_delfwt():
    st = model("3sb3.pdb.gz")
    pair = read_maps(map_file("3sb3_data.mtz.gz"), st, sample_rate=COARSE)
    assert pair.two_fofc.label == TWO_FOFC and pair.fofc.label == FOFC
    assert "FWT/PHWT" in pair.source and "DELFWT/PHDELWT" in pair.source
    assert pair.r_work is None  # nothing was computed here
    assert_sigma_units(pair.two_fofc)
    assert_sigma_units(pair.fofc)
    # The model sits in its own density: CA atoms well above the mean, the difference map flat.
    ca = protein_xyz(st)
    assert np.median(sample(pair.two_fofc, ca)) > 1.5
    assert abs(np.median(sample(pair.fofc, ca))) < 0.5


def test_mtz_composite_omit_has_no_difference_map():
    st = model("5agk.pdb.gz")
    pair = read_maps(map_file("5agk_composite_omit.mtz.gz"), st, sample_rate=COARSE)
    assert "2FOFCWT/PH2FOFCWT" in pair.source and pair.fofc is None
    assert np.median(sample(pair.two_fofc, protein_xyz(st))) > 1.0


def test_observed_intensities_give_sigmaa_maps_and_r_work(tmp_path):
    """3K0N's MTZ holds only IOBS/SIGIOBS: servalcat makes the maps from the model. Cut to
    2.2 Å here so the test stays fast; the benchmark runs the full 1.39 Å data."""
    mtz = gemmi.read_mtz_file(str(map_file("3k0n_data.mtz.gz")))
    mtz.set_data(np.array(mtz)[mtz.make_d_array() >= 2.2])
    path = tmp_path / "3k0n_2.2A.mtz"
    mtz.write_to_file(str(path))
    st = model("3k0n_refine.pdb.gz")
    pair = read_maps(path, st, sample_rate=COARSE)
    assert "servalcat" in pair.source and "IOBS/SIGIOBS" in pair.source
    # The deposited model against its own data: R near the deposited 0.14-0.17, not random.
    assert 0.08 < pair.r_work < 0.25 and pair.r_free is not None
    assert_sigma_units(pair.fofc)
    assert np.median(sample(pair.two_fofc, protein_xyz(st))) > 1.5


def test_from_data_ignores_refined_coefficients():
    st = model("3sb3.pdb.gz")
    pair = read_maps(map_file("3sb3_data.mtz.gz"), st, from_data=True, sample_rate=COARSE)
    assert "FP/SIGFP" in pair.source and 0.08 < pair.r_work < 0.3


@pytest.fixture(scope="module")
def sb3_grid():
    mtz = gemmi.read_mtz_file(str(map_file("3sb3_data.mtz.gz")))
    return mtz.transform_f_phi_to_map("FWT", "PHWT", sample_rate=COARSE)


def write_ccp4(grid: gemmi.FloatGrid, path, gz: bool = False):
    ccp4 = gemmi.Ccp4Map()
    ccp4.grid = grid
    ccp4.update_ccp4_header()
    if gz:
        plain = path.with_suffix("")
        ccp4.write_ccp4_map(str(plain))
        path.write_bytes(gzip.compress(plain.read_bytes()))
        plain.unlink()
    else:
        ccp4.write_ccp4_map(str(path))
    return path


@pytest.mark.parametrize("name", ["sb3.ccp4", "sb3.map.gz", "sb3.mrc"])
def test_ccp4_crystal_map_matches_the_mtz(tmp_path, sb3_grid, name):
    st = model("3sb3.pdb.gz")
    path = write_ccp4(sb3_grid, tmp_path / name, gz=name.endswith(".gz"))
    from_map = read_maps(path, st)
    from_mtz = read_maps(map_file("3sb3_data.mtz.gz"), st, sample_rate=COARSE)
    assert from_map.fofc is None and from_map.two_fofc.periodic
    ca = protein_xyz(st)
    np.testing.assert_allclose(
        sample(from_map.two_fofc, ca), sample(from_mtz.two_fofc, ca), atol=1e-4
    )
    # Bytes with a file name take the same path as a file on disk.
    again = read_maps(path.read_bytes(), st, name=name)
    np.testing.assert_allclose(sample(again.two_fofc, ca), sample(from_map.two_fofc, ca))


def test_cryo_em_map_is_boxed_around_the_model_at_its_origin(tmp_path):
    """An EM-style map: a P1 box of calculated density, placed by the MRC ORIGIN words."""
    st = model("3sb3.pdb.gz")
    st.remove_ligands_and_waters()
    xyz = protein_xyz(st, "CA")
    shift = 12.0 - np.array([a.pos.tolist() for ch in st[0] for r in ch for a in r]).min(0)
    boxed = st.clone()
    boxed[0].transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*shift)))
    extent = np.array([a.pos.tolist() for ch in boxed[0] for r in ch for a in r]).max(0) + 12.0
    boxed.cell = gemmi.UnitCell(*extent, 90, 90, 90)
    boxed.spacegroup_hm = "P 1"
    calc = gemmi.DensityCalculatorX()
    calc.d_min = 3.0
    calc.set_grid_cell_and_spacegroup(boxed)
    calc.put_model_density_on_grid(boxed[0])
    ccp4 = gemmi.Ccp4Map()
    ccp4.grid = calc.grid
    ccp4.update_ccp4_header()
    for word, value in zip((50, 51, 52), -shift, strict=True):
        ccp4.set_header_float(word, float(value))  # grid point 0 sits at -shift in the model
    path = tmp_path / "em.mrc"
    ccp4.write_ccp4_map(str(path))

    st.cell = gemmi.UnitCell(1, 1, 1, 90, 90, 90)  # as EM models have it: no crystal
    pair = read_maps(path, st)
    assert not pair.two_fofc.periodic and "cryo-EM" in pair.source
    assert np.median(sample(pair.two_fofc, xyz)) > 2.0  # the atoms sit on their density
    assert np.isnan(sample(pair.two_fofc, xyz.max(0) + 30.0))  # outside the box
    # The box is the model plus a margin, not the whole deposited map.
    assert pair.two_fofc.grid.point_count < calc.grid.point_count


# --- bad input ---------------------------------------------------------------------------


def test_truncated_mtz(tmp_path):
    data = gzip.decompress(map_file("3sb3_data.mtz.gz").read_bytes())
    path = tmp_path / "cut.mtz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MapError, match="cut short"):
        read_maps(path, model("3sb3.pdb.gz"))


@pytest.mark.parametrize("name", ["notes.mtz", "notes.ccp4"])
def test_an_uploaded_bad_map_names_no_server_folder(name):
    """Uploads are read from a temporary folder; its path stays out of the visitor's message."""
    with pytest.raises(MapError) as err:
        read_maps(b"these are my notes, not a map\n" * 40, model("3sb3.pdb.gz"), name=name)
    text = str(err.value)
    assert text.startswith(name) and tempfile.gettempdir() not in text
    assert "qfitlatent-map-" not in text


def test_truncated_gzipped_ccp4(tmp_path, sb3_grid):
    path = write_ccp4(sb3_grid, tmp_path / "whole.ccp4.gz", gz=True)
    cut = tmp_path / "cut.ccp4.gz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(MapError, match="cut short|not a readable"):
        read_maps(cut, model("3sb3.pdb.gz"))


def test_map_of_another_cell(tmp_path, sb3_grid):
    st = model("3sb3.pdb.gz")
    st.cell = gemmi.UnitCell(70.0, 70.0, 50.538, 90, 90, 90)  # not the crystal of this map
    path = write_ccp4(sb3_grid, tmp_path / "sb3.ccp4")
    with pytest.raises(MapError, match="does not match the model"):
        read_maps(path, st)
    with pytest.raises(MapError, match="does not match the model"):
        read_maps(map_file("3sb3_data.mtz.gz"), st)


def test_mtz_without_usable_columns_lists_its_columns(tmp_path):
    mtz = gemmi.read_mtz_file(str(map_file("3sb3_data.mtz.gz")))
    keep = {"H", "K", "L", "FREE", "FC", "PHIC"}
    for i in reversed(range(len(mtz.columns))):
        if mtz.columns[i].label not in keep:
            mtz.remove_column(i)
    path = tmp_path / "calc_only.mtz"
    mtz.write_to_file(str(path))
    with pytest.raises(MapError, match="no usable columns") as err:
        read_maps(path, model("3sb3.pdb.gz"))
    assert "FC (F)" in str(err.value) and "PHIC (P)" in str(err.value)
    assert isinstance(err.value, StructureError)  # shown wherever input errors are shown


def test_map_over_the_size_limit(tmp_path, sb3_grid, monkeypatch):
    path = write_ccp4(sb3_grid, tmp_path / "big.ccp4")  # 80·80·60 floats: 1.5 MB
    monkeypatch.setenv("QFITLATENT_MAX_MAP_MB", "1")
    with pytest.raises(MapError, match="limit of 1 MB"):
        read_maps(path, model("3sb3.pdb.gz"))
    # At 3 points per d_min its coefficients would make a 3.9 MB grid: refused before the FFT.
    with pytest.raises(MapError, match="limit of 1 MB"):
        read_maps(map_file("3sb3_data.mtz.gz"), model("3sb3.pdb.gz"), sample_rate=3.0)
    monkeypatch.setenv("QFITLATENT_MAX_MAP_MB", "0")  # no cap
    assert read_maps(path, model("3sb3.pdb.gz")).two_fofc is not None


def test_not_a_map_file(tmp_path):
    with pytest.raises(MapError, match="not a map file"):
        read_maps(b"HEADER", model("3sb3.pdb.gz"), name="model.pdb")
    junk = tmp_path / "junk.map"
    junk.write_bytes(b"\0" * 300)
    with pytest.raises(MapError, match="not a readable CCP4"):
        read_maps(junk, model("3sb3.pdb.gz"))


def test_a_2_gb_map_is_refused_from_its_header(tmp_path, sb3_grid):
    """The header says 1024³ floats (4 GB); the file itself is small: refused before reading."""
    import struct

    path = write_ccp4(sb3_grid, tmp_path / "huge.ccp4")
    data = bytearray(path.read_bytes())
    data[0:12] = struct.pack("<3i", 1024, 1024, 1024)  # NC, NR, NS: columns, rows, sections
    path.write_bytes(bytes(data))
    with pytest.raises(MapError, match=r"4,096 MB as a map grid, over this server's limit"):
        read_maps(path, model("3sb3.pdb.gz"))
