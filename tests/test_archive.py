"""`qfitlatent predict` over whole archives: one table equal to single-file predict, a killed run
resumed without redoing finished structures, and 2 torchrun ranks giving the 1-rank table. Real
structures, a tiny real checkpoint; tables read back with pandas (through pyarrow), folders'
files with pandas and json."""

import gzip
import math
import os
import shutil
import signal
import subprocess
import sys

import pandas as pd
import pytest
from conftest import ROOT, data_file

from qfitlatent import archive, cli, outdir

NAMES = ("1ab1.pdb.gz", "1ejg.pdb.gz", "7w2p.pdb.gz")  # small real structures
KEYS = ["chain", "resnum", "icode"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The structures in a folder of their own, and a list file naming them relatively."""
    folder = tmp_path_factory.mktemp("archive")
    for name in NAMES:
        shutil.copy(data_file(name), folder / name)
    (folder / "list.txt").write_text("# the archive\n" + "\n".join(NAMES) + "\n\n")
    return folder


@pytest.fixture(scope="module")
def one_rank(weights, inputs, tmp_path_factory):
    """A 1-process archive run through --list: (OUT, table)."""
    run = tmp_path_factory.mktemp("one")
    assert predict(weights, "--list", inputs / "list.txt", "--out", run / "out",
                   "--table", run / "t.parquet") == 0  # fmt: skip
    return run / "out", run / "t.parquet"


def predict(weights, *args) -> int:
    return cli.main(["predict", *map(str, args), "--weights", str(weights), "--samples", "2"])


def command(weights, *args) -> list[str]:
    return ["-m", "qfitlatent", "predict", *map(str, args), "--weights", str(weights),
            "--samples", "2"]  # fmt: skip


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def snapshot(folder) -> dict:
    """{file name: (inode, mtime in ns)}: changes if a file is rewritten or replaced."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_the_table_is_single_file_predict_for_every_structure(weights, inputs, one_rank, tmp_path):
    _, table = one_rank
    t = archive.read_table(table)
    assert list(t.columns) == list(archive.TABLE_COLUMNS)
    assert list(t["structure"].unique()) == ["1ab1", "1ejg", "7w2p"]  # the list's order
    for name in NAMES:
        alone = tmp_path / name
        assert predict(weights, inputs / name, "--out", alone) == 0
        stem = name.split(".")[0]
        csv = pd.read_csv(alone / stem / f"{stem}_residues.csv", keep_default_na=False)
        rows = t[t["structure"] == stem]
        assert len(rows) == len(csv) > 0
        assert (rows["source"] == name).all()
        mine = rows.sort_values(KEYS).reset_index(drop=True)
        theirs = csv.sort_values(KEYS).reset_index(drop=True)
        for col in ("chain", "resnum", "icode", "resname", "n_chi", "n_conformers"):
            assert mine[col].tolist() == theirs[col].tolist(), col
        for col in ("flexibility", "p_flexible", "entropy"):
            assert mine[col].tolist() == theirs[col].astype(float).tolist(), col
        # χ modes: defined exactly up to the residue's n_chi, in degrees
        for k in range(1, archive.N_CHI + 1):
            defined = mine[f"chi{k}_mode"].notna()
            assert (defined == (mine["n_chi"] >= k)).all()
            assert mine.loc[defined, f"chi{k}_mode"].between(-180, 180).all()
    assert t["n_conformers"].max() >= 2  # some residue was split, so the column is not all 1


def test_chi_modes_are_the_mixture_mode_of_a_fresh_prediction(weights, inputs, one_rank):
    """Oracle outside the folder files: predict in-process and take mixture.mode."""
    import torch

    from qfitlatent.checkpoint import load_model
    from qfitlatent.mixture import mode
    from qfitlatent.predict import predict as run_predict

    t = archive.read_table(one_rank[1])
    model, _ = load_model(weights, "cpu")
    pred = run_predict(model, inputs / "1ab1.pdb.gz", n_samples=2)
    chi = torch.rad2deg(mode(pred.mixture))  # [N, D] degrees
    rows = t[t["structure"] == "1ab1"].set_index(KEYS)
    n = 0
    for i in range(pred.features.n_res):
        n_chi = int(pred.features.chi_defined[i].sum())
        if n_chi == 0:
            continue
        row = rows.loc[tuple(pred.features.residue_id(i).fields().values())]
        for k in range(n_chi):
            got, want = row[f"chi{k + 1}_mode"], float(chi[i, k])
            assert math.isclose(math.remainder(got - want, 360.0), 0.0, abs_tol=1e-3)
            n += 1
    assert n > 30


def test_a_killed_run_resumes_without_redoing_finished_structures(weights, inputs, tmp_path):
    out, table = tmp_path / "out", tmp_path / "t.parquet"
    files = [inputs / n for n in NAMES]
    proc = subprocess.Popen(
        [sys.executable, *command(weights, *files, "--out", out, "--table", table)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env(),
    )  # fmt: skip
    first = proc.stdout.readline()  # printed once 1ab1's folder is whole
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert "1ab1" in first and not table.exists()
    before = snapshot(out / "1ab1")
    # The next structure may have been half written (its hidden staging folder is left).
    rc = predict(weights, *files, "--out", out, "--table", table, "--resume")
    assert rc == 0
    assert snapshot(out / "1ab1") == before  # not predicted again, not rewritten
    assert sorted(p.name for p in out.iterdir()) == ["1ab1", "1ejg", "7w2p"]  # nothing hidden
    assert list(archive.read_table(table)["structure"].unique()) == ["1ab1", "1ejg", "7w2p"]


def test_a_failed_structure_is_logged_skipped_and_done_on_resume(weights, inputs, tmp_path, capsys):
    """A bad file is one line in the log; once it is fixed, --resume predicts only it and the
    table then covers the structures of both attempts."""
    out, table = tmp_path / "out", tmp_path / "t.parquet"
    bad = tmp_path / "in" / "7w2p.pdb"
    bad.parent.mkdir()
    bad.write_text("this is not a structure\n")
    args = [inputs / "1ab1.pdb.gz", bad, "--out", out, "--table", table, "--resume"]
    assert predict(weights, *args) == 1
    assert "7w2p" in (out / outdir.FAILURES_LOG).read_text()
    assert list(archive.read_table(table)["structure"].unique()) == ["1ab1"]
    before = snapshot(out / "1ab1")
    capsys.readouterr()
    bad.write_bytes(gzip.decompress(data_file("7w2p.pdb.gz").read_bytes()))
    stale = out / ".7w2p.partial-99999999"  # as a run killed while writing 7w2p leaves it
    stale.mkdir()
    (stale / "7w2p_residues.csv").write_text("half")
    assert predict(weights, *args) == 0
    assert not stale.exists()
    err = capsys.readouterr().err
    assert "2/2 structures (1 done before)" in err and "per minute" in err
    assert snapshot(out / "1ab1") == before
    assert list(archive.read_table(table)["structure"].unique()) == ["1ab1", "7w2p"]


def test_two_torchrun_ranks_give_the_one_rank_table(weights, inputs, one_rank, tmp_path):
    out, table = tmp_path / "out", tmp_path / "t.parquet"
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone",
              "--nproc-per-node", "2"]  # fmt: skip
    done = subprocess.run(
        [*launch, *command(weights, "--list", inputs / "list.txt", "--out", out, "--table", table)],
        capture_output=True, text=True, env=env(), timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rank 1/2: 1/1 structures" in done.stderr  # positions 0, 2 on rank 0; 1 on rank 1
    pd.testing.assert_frame_equal(archive.read_table(table), archive.read_table(one_rank[1]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "t.parquet"]  # parts merged


def test_list_files_shards_and_settings():
    assert archive.shard(list("abcde"), archive.Ranks(1, 2)) == ["b", "d"]
    assert archive.ranks_from_env({"RANK": "2", "WORLD_SIZE": "4"}) == archive.Ranks(2, 4, 0)
    assert archive.ranks_from_env({}) == archive.Ranks(0, 1, 0)
    with pytest.raises(Exception, match="outside WORLD_SIZE"):
        archive.ranks_from_env({"RANK": "4", "WORLD_SIZE": "4"})


def test_resume_and_overwrite_together_and_no_input_are_refused(weights, tmp_path, capsys):
    assert predict(weights, "x.pdb", "--out", tmp_path, "--resume", "--overwrite") == 2
    assert "choose one" in capsys.readouterr().err
    assert predict(weights, "--out", tmp_path) == 2
    assert "--list FILE" in capsys.readouterr().err
    assert predict(weights, "--list", tmp_path / "missing.txt", "--out", tmp_path) == 2
    assert "cannot read the list file" in capsys.readouterr().err


def test_a_damaged_folder_is_one_line_naming_it(weights, inputs, tmp_path, capsys):
    out, table = tmp_path / "out", tmp_path / "t.parquet"
    assert predict(weights, inputs / "1ab1.pdb.gz", "--out", out) == 0
    (out / "1ab1" / "1ab1_residues.csv").unlink()  # someone tidied the folder by hand
    rc = predict(weights, inputs / "1ab1.pdb.gz", "--out", out, "--table", table, "--resume")
    err = capsys.readouterr().err
    assert rc == 2 and "1ab1 cannot be read into the table" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no table, no part left
