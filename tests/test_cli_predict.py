"""`qfitlatent predict` over batches: one failure never ends a batch, every output folder is
unique and inside --out, earlier results are never overwritten silently, an unwritable --out is
one line. Real structures, a tiny real checkpoint, files read back with gemmi and json."""

import gzip
import json
import os
import shutil
import subprocess

import gemmi
import pytest
from conftest import data_file

from qfitlatent import cli, outdir
from qfitlatent.errors import OutputError
from qfitlatent.predict import OUTPUT_FILES

SMALL = "1ab1.pdb.gz"  # 46 residues
OTHER = "1ejg.pdb.gz"  # crambin, 48 residues


def run(weights, *args) -> int:
    return cli.main(["predict", *map(str, args), "--weights", str(weights), "--samples", "2"])


def folder_files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def expected_files(name: str) -> list[str]:
    return sorted(f"{name}_{end}" for end in OUTPUT_FILES.values())


def assert_complete(folder, input_name: str) -> None:
    """Seven files, named after the folder, readable by gemmi and json, about `input_name`."""
    assert folder_files(folder) == expected_files(folder.name)
    doc = json.loads((folder / f"{folder.name}_mixture.json").read_text())
    assert doc["structure"] == input_name and doc["residues"]
    st = gemmi.read_structure(str(folder / f"{folder.name}_multiconformer.cif"))
    assert st[0].count_atom_sites() > 100


def no_leftovers(root) -> None:
    hidden = [p.name for p in root.rglob(".*")]
    assert hidden == [], hidden  # no staging folder, no temporary file


def test_one_failing_structure_is_one_line_and_the_batch_goes_on(
    weights, tmp_path, capsys, monkeypatch
):
    """Whatever fails for one file (here the writers, as the 3-character chain names did) is
    reported in one line and in the log, the other files are predicted, the exit code is 1 and
    no folder is left for the failed one."""
    from qfitlatent import predict

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.pdb.gz", "b.pdb.gz", "c.pdb.gz"):
        shutil.copy(data_file(OTHER if name == "b.pdb.gz" else SMALL), folder / name)
    real = predict.outputs

    def failing(pred, label):
        if pred.source_name == "b.pdb.gz":
            raise RuntimeError("chain name too long for the PDB format: ABC")
        return real(pred, label)

    monkeypatch.setattr(predict, "outputs", failing)
    out = tmp_path / "out"
    assert run(weights, folder, "--out", out) == 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "b.pdb.gz" in ln and "warning" not in ln]
    assert len(lines) == 1 and "could not be made" in lines[0] and "chain name" in lines[0]
    assert "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["a", "c", "predict-failures.log"]
    assert_complete(out / "a", "a.pdb.gz")
    assert_complete(out / "c", "c.pdb.gz")
    log = (out / "predict-failures.log").read_text()
    assert lines[0].split(" (")[0] in log and "Traceback" in log  # the bug, for a report
    no_leftovers(out)


def test_hostile_names_write_inside_out_only(weights, tmp_path, capsys):
    """`...pdb.gz` named the parent of --out (its stem is `..`); spaces, `;` and a leading
    dash are made safe too."""
    src = tmp_path / "in"
    src.mkdir()
    names = ["...pdb.gz", "a b;c.pdb.gz", "-rf.pdb.gz"]
    for name in names:
        shutil.copy(data_file(SMALL), src / name)
    out = tmp_path / "out"
    assert run(weights, *(src / n for n in names), "--out", out) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]  # nothing beside out
    assert folder_files(out) == ["a_b_c", "rf", "structure"]
    for folder, name in zip((out / "structure", out / "a_b_c", out / "rf"), names, strict=True):
        assert_complete(folder, name)
    assert "→ " + str(out / "structure") in capsys.readouterr().out
    no_leftovers(out)


def test_same_stem_inputs_get_a_folder_each(weights, tmp_path):
    """x.cif and x.pdb.gz (the same name, another format) no longer share OUT/x."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(data_file(SMALL), src / "x.pdb.gz")
    st = gemmi.read_structure(str(data_file(OTHER)))
    st.setup_entities()
    st.make_mmcif_document().write_file(str(src / "x.cif"))
    out = tmp_path / "out"
    assert run(weights, src, "--out", out) == 0
    assert folder_files(out) == ["x", "x-2"]
    assert_complete(out / "x", "x.cif")  # folders are listed by name: x.cif first
    assert_complete(out / "x-2", "x.pdb.gz")


def test_earlier_results_are_kept_unless_overwrite_is_asked(weights, tmp_path, capsys):
    src = data_file(SMALL)
    out = tmp_path / "out"
    assert run(weights, src, "--out", out) == 0
    first = {p.name: p.read_bytes() for p in (out / "1ab1").iterdir()}
    capsys.readouterr()
    assert run(weights, src, "--out", out, "--seed", "5") == 1
    err = capsys.readouterr().err
    assert "already holds results" in err and "--overwrite" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in (out / "1ab1").iterdir()} == first
    assert run(weights, src, "--out", out, "--seed", "5", "--overwrite") == 0
    second = {p.name: p.read_bytes() for p in (out / "1ab1").iterdir()}
    assert second.keys() == first.keys() and second != first  # other draws
    no_leftovers(out)


def _make_read_only(folder) -> bool:
    """chmod 555, and for root (whom modes do not stop) the immutable flag; False when the
    folder stays writable here."""
    folder.chmod(0o555)
    if os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
    try:
        (folder / "probe").mkdir()
    except OSError:
        return True
    (folder / "probe").rmdir()
    return False


def _undo_read_only(folder) -> None:
    if shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    folder.chmod(0o755)


@pytest.mark.parametrize("below", [False, True])
def test_a_read_only_out_is_one_line(weights, tmp_path, capsys, below):
    locked = tmp_path / "locked"
    locked.mkdir()
    try:
        if not _make_read_only(locked):
            pytest.skip("this file system lets this user write into a read-only folder")
        out = locked / "new" if below else locked
        assert run(weights, data_file(SMALL), "--out", out) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert f"cannot write results into {out}" in err
    finally:
        _undo_read_only(locked)
    assert list(locked.iterdir()) == []


def test_a_folder_is_written_whole_or_not_at_all(tmp_path):
    """A write the disk refuses half-way (here: a name too long for it) leaves no folder."""
    files = {"ok.txt": b"first", "x" * 300 + ".txt": b"refused"}
    with pytest.raises(OutputError, match="cannot write"):
        outdir.write_folder(tmp_path / "res", files)
    assert list(tmp_path.iterdir()) == []


def test_folder_names_are_unique_safe_and_stable():
    names = ["x.cif", "x.pdb.gz", "X.ent", "x-2.cif", "../..pdb", "a\nb.pdb", "",
             "predict-failures.log.pdb", "y" * 300 + ".pdb.gz"]  # fmt: skip
    got = outdir.folder_names(names)
    assert got[:8] == ["x", "x-2", "X-3", "x-2-2", "structure", "a_b", "structure-2",
                       "predict-failures.log-2"]  # fmt: skip
    assert got[8] == "y" * outdir.MAX_NAME
    assert len({n.lower() for n in got}) == len(got)
    assert outdir.folder_names(names) == got


def test_gz_input_with_a_dot_stem_is_read_as_its_own_file(weights, tmp_path):
    """A file whose name is only extensions (its stem is empty: OUT itself, before) is still
    predicted, into OUT/structure."""
    path = tmp_path / ".pdb.gz"
    shutil.copy(data_file(SMALL), path)
    out = tmp_path / "out"
    assert run(weights, path, "--out", out) == 0
    assert_complete(out / "structure", ".pdb.gz")


def test_an_oversized_file_is_refused_before_it_is_read(weights, tmp_path, monkeypatch, capsys):
    """Above the operator's limit (lowered to 1 MB here through its environment variable): a
    300 MB file (sparse: no disk used), a 3 MB gzip of noise and a gzip bomb are refused with
    the limit named, holding at most a few MB; a 300 MB read used to be read whole first."""
    import tracemalloc

    from qfitlatent.errors import StructureError
    from qfitlatent.structure import read_structure

    monkeypatch.setenv("QFITLATENT_MAX_MB", "1")
    sparse = tmp_path / "huge.pdb"
    with open(sparse, "wb") as fh:
        fh.truncate(300 * 2**20)
    noise = tmp_path / "noise.pdb.gz"
    noise.write_bytes(gzip.compress(os.urandom(3 * 2**20), compresslevel=1))
    bomb = tmp_path / "bomb.cif.gz"
    bomb.write_bytes(gzip.compress(b"ATOM  " * (10 * 2**20)))  # 60 MB of text in 60 kB
    assert bomb.stat().st_size < 2**20
    for path in (sparse, noise, bomb):
        tracemalloc.start()
        try:
            with pytest.raises(StructureError, match=f"{path.name}: the file is larger than 1 MB"):
                read_structure(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 2**20, (path.name, peak)  # the limit itself is not even read whole
    out = tmp_path / "out"
    assert run(weights, sparse, data_file(SMALL), "--out", out) == 1
    assert "skipped" in capsys.readouterr().err
    assert folder_files(out) == ["1ab1", "predict-failures.log"]
