"""Smaller defects of issue #12, each reproduced: allowed training folders, the residue cap and
chunked entropy, CLI warnings, checkpoint messages, stale temporary files, the bundled split,
and the operator's `qfitlatent runs` commands."""

import math
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import gemmi
import pytest
import torch

from qfitlatent.atomic import remove_stale_temporaries
from qfitlatent.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from qfitlatent.cli import main
from qfitlatent.config import ModelConfig, TrainConfig
from qfitlatent.data_roots import FolderError, resolve_data_folder
from qfitlatent.errors import CheckpointError
from qfitlatent.mixture import Mixture, entropy, log_prob
from qfitlatent.train import jobs

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = ROOT / "qfitlatent" / "data" / "train_sample"
SAMPLE = SAMPLE_DIR / "2ppn.pdb.gz"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from qfitlatent.model import QFitLatent

    torch.manual_seed(0)
    cfg = ModelConfig(d_s=16, d_z=8, n_blocks=1, dropout=0.0)
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    return save_checkpoint(path, model_cfg=cfg, model=QFitLatent(cfg))


# --- allowed training folders --------------------------------------------------------------------


def test_server_folders_are_off_without_roots(tmp_path):
    with pytest.raises(FolderError, match="turned off"):
        resolve_data_folder(str(tmp_path), ())


def test_only_folders_under_the_roots_resolve_after_symlinks(tmp_path):
    root = tmp_path / "allowed"
    (root / "set" / "inner").mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.mkdir()
    (root / "link-out").symlink_to(secret)  # a symlink inside pointing outside
    (root / "file.pdb").write_text("ATOM\n")
    roots = (root.resolve(),)
    assert resolve_data_folder(str(root / "set"), roots) == (root / "set").resolve()
    assert resolve_data_folder("set/inner", roots) == (root / "set" / "inner").resolve()
    outside = [str(secret), str(root / "link-out"), str(root / ".." / "secret"), "/etc",
               "/proc/self", "/no/such/dir", "../secret", "", "a\x00b"]  # fmt: skip
    messages = set()
    for text in outside:
        with pytest.raises(FolderError) as err:
            resolve_data_folder(text, roots)
        messages.add(str(err.value).replace(repr(text.strip()), "PATH"))
    assert len(messages) == 1  # existing or not, file or folder: the same words
    with pytest.raises(FolderError, match="no folder"):
        resolve_data_folder(str(root / "file.pdb"), roots)  # inside a root may say what it is


def test_data_roots_come_from_the_environment_or_a_config_file(tmp_path, monkeypatch):
    from qfitlatent import server_config

    monkeypatch.delenv(server_config.ROOTS_ENV, raising=False)
    assert server_config.load().data_roots == ()
    cfg = tmp_path / "server.toml"
    cfg.write_text(f'data_roots = ["{tmp_path}"]\nmax_residues = 123\n')
    monkeypatch.setenv(server_config.CONFIG_ENV, str(cfg))
    assert server_config.load().data_roots == (tmp_path.resolve(),)
    assert server_config.load().max_residues == 123
    monkeypatch.setenv("QFITLATENT_MAX_RESIDUES", "77")
    assert server_config.load().max_residues == 77
    cfg.write_text("max_residue = 1\n")
    with pytest.raises(server_config.ServerConfigError, match="unknown keys"):
        server_config.load()


# --- bounded memory ----------------------------------------------------------------------------


def test_chunked_entropy_matches_quadrature():
    """One χ per residue: the exact entropy is a 1-D integral, an independent reference."""
    g = torch.Generator().manual_seed(1)
    n, k = 23, 3
    mix = Mixture(
        torch.randn(n, k, generator=g),
        (torch.rand(n, k, 4, generator=g) * 2 - 1) * math.pi,
        torch.rand(n, k, 4, generator=g) * 8 + 0.5,
    )
    defined = torch.zeros(n, 4, dtype=torch.bool)
    defined[:, 0] = True
    sym = torch.zeros(n, 4, dtype=torch.bool)
    grid = torch.linspace(-math.pi, math.pi, 4001, dtype=torch.float64)[:-1]  # [G]
    chi = torch.zeros(grid.numel(), n, 4, dtype=torch.float64)
    chi[..., 0] = grid[:, None]
    lp = log_prob(chi, mix.to(torch.float64), defined, sym)  # [G, N]
    exact = -(lp.exp() * lp).sum(0) * (2 * math.pi / grid.numel())
    chunked = entropy(mix, defined, sym, n_samples=4000, chunk=5)
    assert torch.allclose(chunked.double(), exact, atol=0.08)
    whole = entropy(mix, defined, sym, n_samples=4000, chunk=1000)
    assert torch.allclose(chunked, whole, atol=0.12)  # chunks change the draws, not the estimate
    assert torch.equal(whole, entropy(mix, defined, sym, n_samples=4000))  # N ≤ chunk: as before


def test_a_structure_over_the_residue_cap_is_refused_early_with_a_message(
    tiny, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("QFITLATENT_MAX_RESIDUES", "50")
    assert main(["predict", str(SAMPLE), "--weights", str(tiny), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "this server predicts structures of at most 50" in err and "QFITLATENT_MAX" in err
    assert not (tmp_path / "2ppn").exists()
    monkeypatch.setenv("QFITLATENT_MAX_RESIDUES", "0")  # 0: no cap
    assert main(["predict", str(SAMPLE), "--weights", str(tiny), "--out", str(tmp_path)]) == 0


# --- small defects -----------------------------------------------------------------------------


def test_the_cli_prints_a_structures_warnings(tiny, tmp_path, capsys):
    st = gemmi.read_structure(str(SAMPLE))
    st.add_model(st[0])  # a copy: gemmi then holds two models
    st.renumber_models()
    path = tmp_path / "two_models.pdb"
    st.write_pdb(str(path))
    assert main(["predict", str(path), "--weights", str(tiny), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "two_models.pdb: warning:" in err and "only the first is used" in err


def test_an_unloadable_checkpoint_never_advises_weights_only_false(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "payload": Fraction(1, 3)}, path)  # a non-plain Python object
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    text = str(err.value)
    assert "weights_only" not in text and "False" not in text, text
    assert "could run code" in text and "fractions.Fraction" in text
    assert err.value.__cause__ is None  # torch's advice is not chained into tracebacks either
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x80\x02not really")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(junk)
    assert "weights_only" not in str(err.value)


def test_stale_checkpoint_temporaries_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        stale = tmp_path / f".last.pt.{dead.pid}-1.tmp"
        busy = tmp_path / f".last.pt.{live.pid}-1.tmp"
        other = tmp_path / "notes.tmp"
        for p in (stale, busy, other):
            p.write_bytes(b"x" * 100)
        assert remove_stale_temporaries(tmp_path) == [stale]
        assert not stale.exists() and busy.exists() and other.exists()
    finally:
        live.kill()
        live.wait()


def test_a_training_run_clears_a_temporary_left_by_kill_9(tmp_path):
    from qfitlatent.train.loop import train

    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = out / f".last.pt.{dead.pid}.tmp"
    leftover.write_bytes(b"half a checkpoint")
    tiny_cfg = ModelConfig(d_s=16, d_z=8, n_blocks=1, n_heads=2, c_head=4, n_qk_points=2,
                           n_v_points=2, n_rbf=8)  # fmt: skip
    fast = TrainConfig(epochs=1, crop_size=32, min_altlocs=1, val_fraction=0.0)
    train(SAMPLE_DIR, out, tiny_cfg, fast, device="cpu", max_structures=1)
    assert not leftover.exists() and (out / "last.pt").exists()


def test_the_bundled_sample_holds_out_one_structure_for_validation():
    from qfitlatent.dataset import split_names, structure_id
    from qfitlatent.ui_train import BUNDLED_VAL_FRACTION

    names = sorted(structure_id(p) for p in SAMPLE_DIR.glob("*.pdb.gz"))
    assert len(names) == 4
    assert split_names(names, 0.25, 0)["val"] == []  # the defect: 0.25 held out nothing
    split = split_names(names, BUNDLED_VAL_FRACTION, 0)
    assert len(split["val"]) == 1 and len(split["train"]) == 3


# --- the operator's commands -------------------------------------------------------------------


def test_operator_lists_stops_publishes_and_deletes_runs(tmp_path, monkeypatch, capsys):
    root = tmp_path / "runs"
    monkeypatch.setenv(jobs.RUNS_ENV, str(root))
    wait = [sys.executable, "-c", "import time; time.sleep(60)"]
    monkeypatch.setattr(jobs, "train_command", lambda *a, **k: wait)
    job = jobs.launch("visitors-run", data=SAMPLE_DIR, epochs=1, lr=1e-3, owner="someone")
    assert main(["runs", "delete", "visitors-run"]) == 2  # still going
    # Publishing a running run would race its supervisor's write of the end into job.json.
    assert main(["runs", "publish", "visitors-run"]) == 2
    assert "still going" in capsys.readouterr().err and not jobs.load_job(job.path).public
    assert main(["runs", "stop", "visitors-run"]) == 0
    deadline = time.time() + 30
    while jobs.load_job(job.path).active and time.time() < deadline:
        time.sleep(0.1)
    assert jobs.load_job(job.path).status == "stopped"
    assert main(["runs", "publish", "visitors-run"]) == 0 and jobs.load_job(job.path).public
    assert main(["runs", "list"]) == 0
    assert "visitors-run\tstopped\tpublic" in capsys.readouterr().out
    assert main(["runs", "delete", "visitors-run"]) == 0
    assert not job.path.exists() and jobs.list_jobs(root) == []
    assert main(["runs", "stop", "../etc"]) == 2
