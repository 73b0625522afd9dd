"""Training jobs on disk: launch, status across "reloads", stop, crash recovery, safe names.

The trainer is swapped for tiny Python one-liners so these tests exercise the job machinery
(supervisor, lock, job.json) in well under a second each, without training anything.
"""

import io
import json
import os
import signal
import sys
import time
import zipfile

import pytest

from qfitlatent.train import jobs, runlog


def fake_trainer(monkeypatch, code: str):
    """Make launch() run `python -c code` instead of `qfitlatent train`."""
    monkeypatch.setattr(
        jobs, "train_command", lambda run_dir, settings: [sys.executable, "-c", code]
    )


def wait_for(predicate, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_runs_go_to_the_folder_the_environment_names_else_to_runs_under_cwd(
    root, data_dir, tmp_path, monkeypatch
):
    fake_trainer(monkeypatch, "pass")
    job = jobs.launch("env-run", data=data_dir, epochs=1, lr=1e-3)
    assert job.path.parent == root.resolve() and (root / "env-run" / "job.json").is_file()
    wait_for(lambda: jobs.load_job(job.path).status == "finished")
    assert [j.name for j in jobs.list_jobs()] == ["env-run"]
    monkeypatch.delenv(jobs.RUNS_ENV)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert jobs.list_jobs() == []  # the environment's runs are not this folder's
    other = jobs.launch("cwd-run", data=data_dir, epochs=1, lr=1e-3)
    assert other.path.parent == (tmp_path / "elsewhere" / "runs").resolve()
    wait_for(lambda: jobs.load_job(other.path).status == "finished")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "..",
        "../evil",
        "a/../../b",
        "/etc/passwd",
        "a/b",
        "a\\b",
        ".hidden",
        "-rf",
        "x" * 65,
        "run\x00",
        "näme",
        "a..b",
    ],
)
def test_clean_name_rejects_path_escapes_and_odd_names(bad):
    with pytest.raises(ValueError):
        jobs.clean_name(bad)


def test_clean_name_keeps_plain_names():
    assert jobs.clean_name("  my first run ") == "my-first-run"
    assert jobs.clean_name("ft_v1.2-cypa") == "ft_v1.2-cypa"


def test_launch_refuses_bad_name_without_touching_disk(root, data_dir):
    with pytest.raises(ValueError):
        jobs.launch("../outside", data=data_dir, epochs=1, lr=1e-3)
    assert not (root.parent / "outside").exists()
    assert jobs.lock_holder(root) is None


def test_train_command_is_an_argument_list(tmp_path):
    settings = jobs.RunSettings(
        tmp_path / "d",
        epochs=3,
        lr=1e-4,
        init_from=tmp_path / "w.pt",
        freeze_trunk=True,
        overrides=("n_blocks=1", "d_s=16"),
    )
    cmd = jobs.train_command(tmp_path / "r", settings)
    assert cmd[:4] == [sys.executable, "-m", "qfitlatent", "train"]
    assert cmd[cmd.index("--epochs") + 1] == "3"
    assert float(cmd[cmd.index("--lr") + 1]) == 1e-4
    assert cmd[cmd.index("--init-from") + 1] == str(tmp_path / "w.pt")
    assert "--freeze-trunk" in cmd
    assert cmd[-3:] == ["--set", "n_blocks=1", "d_s=16"]
    # job.json keeps the same settings as plain JSON, for the Train page and `runs list`.
    assert json.loads(json.dumps(settings.record())) == {
        "data": str(tmp_path / "d"), "epochs": 3, "lr": 1e-4, "init_from": str(tmp_path / "w.pt"),
        "freeze_trunk": True, "overrides": ["n_blocks=1", "d_s=16"], "preset": None,
    }  # fmt: skip


def test_a_launched_command_with_a_preset_builds_that_presets_configs(tmp_path):
    from dataclasses import replace

    from qfitlatent.cli import build_parser, configs_from_args
    from qfitlatent.config import PRESETS

    settings = jobs.RunSettings(tmp_path / "d", epochs=3, lr=1e-4, preset="qfitlatent-v2",
                                overrides=("n_blocks=2",))  # fmt: skip
    cmd = jobs.train_command(tmp_path / "r", settings)
    model_cfg, train_cfg = configs_from_args(build_parser().parse_args(cmd[3:]))
    shipped_model, shipped_train = PRESETS["qfitlatent-v2"]
    assert model_cfg == replace(shipped_model, n_blocks=2)
    assert train_cfg == replace(shipped_train, epochs=3, lr=1e-4)


def test_launch_refuses_an_unknown_preset_before_making_a_run(root, data_dir):
    with pytest.raises(ValueError, match="unknown preset"):
        jobs.launch("p", data=data_dir, epochs=1, lr=1e-3, preset="v0")
    assert not (root / "p").exists() and jobs.lock_holder(root) is None


def test_finished_status_survives_reload(root, data_dir, monkeypatch):
    fake_trainer(monkeypatch, "print('epoch 1')")
    job = jobs.launch("ok", data=data_dir, epochs=1, lr=1e-3)
    assert job.status == "running" and job.pid
    done = wait_for(lambda: (j := jobs.load_job(root / "ok")).status == "finished" and j)
    assert done.returncode == 0 and done.ended >= done.started
    # A fresh reader (another visitor, a restarted server) sees the same job from disk.
    again = jobs.list_jobs(root)
    assert [j.name for j in again] == ["ok"] and again[0].status == "finished"
    assert "epoch 1" in jobs.log_tail(again[0])
    assert jobs.lock_holder(root) is None


def test_failed_run_is_reported_with_its_code(root, data_dir, monkeypatch):
    fake_trainer(monkeypatch, "import sys; print('boom', file=sys.stderr); sys.exit(3)")
    jobs.launch("bad", data=data_dir, epochs=1, lr=1e-3)
    job = wait_for(lambda: (j := jobs.load_job(root / "bad")).status == "failed" and j)
    assert job.returncode == 3 and "code 3" in job.message
    assert "boom" in jobs.log_tail(job)


def test_one_run_at_a_time_then_stop(root, data_dir, monkeypatch):
    fake_trainer(monkeypatch, "import time; time.sleep(60)")
    job = jobs.launch("long", data=data_dir, epochs=1, lr=1e-3)
    wait_for(lambda: jobs.load_job(job.path).pid)
    assert jobs.lock_holder(root) == job.pid
    with pytest.raises(RuntimeError, match="already"):
        jobs.launch("second", data=data_dir, epochs=1, lr=1e-3)
    assert not (root / "second").exists()
    assert jobs.active_job(root).name == "long"
    jobs.stop(job, operator=True)
    stopped = wait_for(lambda: (j := jobs.load_job(job.path)).status == "stopped" and j)
    assert stopped.returncode == -signal.SIGTERM
    assert jobs.lock_holder(root) is None


def test_a_stop_that_comes_before_the_supervisor_has_started_is_kept(root, data_dir, monkeypatch):
    """`qfitlatent runs stop` reads the run from disk, with no pid yet when it comes at once: the
    run must neither be judged gone while its supervisor starts (it would come back as running
    and hold the lock) nor lose the request (it would train to the end)."""
    fake_trainer(monkeypatch, "import time; time.sleep(60)")
    job = jobs.launch("early", data=data_dir, epochs=1, lr=1e-3)
    assert jobs.stop(jobs.load_job(job.path), operator=True).stop_requested
    ended = wait_for(lambda: (j := jobs.load_job(job.path)).status == "stopped" and j)
    assert ended.returncode == -signal.SIGTERM and jobs.lock_holder(root) is None
    for _ in range(10):  # and it stays ended: nothing rewrites it as running
        assert jobs.load_job(job.path).status == "stopped"
        time.sleep(0.05)
    following = jobs.launch("next", data=data_dir, epochs=1, lr=1e-3)  # the lock is free
    jobs.stop(following, operator=True)
    wait_for(lambda: jobs.load_job(following.path).status == "stopped")


def test_lock_not_stuck_after_killed_run(root, data_dir, monkeypatch):
    fake_trainer(monkeypatch, "import time; time.sleep(60)")
    job = jobs.launch("crash", data=data_dir, epochs=1, lr=1e-3)
    pid = wait_for(lambda: jobs.load_job(job.path).pid)
    os.killpg(pid, signal.SIGKILL)  # no handler runs: job.json still says "running"
    wait_for(lambda: not jobs.pid_alive(pid))
    # Free once the trainer, killed with its group, has finished dying too (it may outlive
    # its supervisor by a moment, and holds the lock until it is gone).
    wait_for(lambda: jobs.lock_holder(root) is None)
    crashed = jobs.load_job(job.path)
    assert crashed.status == "failed" and "disappeared" in crashed.message
    fake_trainer(monkeypatch, "pass")
    nxt = jobs.launch("after-crash", data=data_dir, epochs=1, lr=1e-3)
    wait_for(lambda: jobs.load_job(nxt.path).status == "finished")


def test_stale_lock_file_from_dead_pid_is_taken_over(root, data_dir, monkeypatch):
    root.mkdir(parents=True)
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    (root / jobs.LOCK_NAME).write_text(json.dumps({"pid": dead, "token": "x", "time": 0}))
    fake_trainer(monkeypatch, "pass")
    job = jobs.launch("fresh", data=data_dir, epochs=1, lr=1e-3)
    wait_for(lambda: jobs.load_job(job.path).status == "finished")


def test_finished_checkpoints_lists_only_ended_runs_with_best_that_the_visitor_may_use(
    root, data_dir, monkeypatch
):
    fake_trainer(monkeypatch, "open('best.pt', 'w').write('x')")
    monkeypatch.chdir(data_dir)
    job = jobs.launch("with-best", data=data_dir, epochs=1, lr=1e-3, owner="alice-token")
    wait_for(lambda: jobs.load_job(job.path).status == "finished")
    assert jobs.finished_checkpoints(root, "alice-token") == {}  # best.pt went to the cwd
    (job.path / "best.pt").write_text("x")
    assert jobs.finished_checkpoints(root, "alice-token") == {"with-best": job.path / "best.pt"}
    # Private to its owner until an operator publishes it.
    assert jobs.finished_checkpoints(root, "bob-token") == {}
    assert jobs.finished_checkpoints(root, None) == {}
    jobs.publish(job)
    assert jobs.finished_checkpoints(root, "bob-token") == {"with-best": job.path / "best.pt"}
    assert "alice-token" not in (job.path / "job.json").read_text()  # only its hash is stored


def test_uploads_are_staged_without_path_escape(root, tmp_path, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../escape.pdb", "ATOM\n")
        zf.writestr("sub/dir/inner.cif.gz", b"\x1f\x8b")
        zf.writestr("notes.txt", "not a structure")
    fake_trainer(monkeypatch, "pass")
    job = jobs.launch(
        "up", data=[("a.pdb", b"ATOM\n"), ("set.zip", buf.getvalue())], epochs=1, lr=1e-3
    )
    staged = sorted(p.name for p in (job.path / "data").iterdir())
    assert staged == ["a.pdb", "escape.pdb", "inner.cif.gz"]
    assert not (root.parent / "escape.pdb").exists() and not (tmp_path / "escape.pdb").exists()
    wait_for(lambda: jobs.load_job(job.path).status == "finished")


def test_upload_without_structures_is_refused_and_frees_the_lock(root):
    with pytest.raises(ValueError, match="no structure"):
        jobs.launch("empty", data=[("readme.txt", b"hi")], epochs=1, lr=1e-3)
    assert jobs.lock_holder(root) is None


def test_progress_and_metrics_from_jsonl(root, data_dir, monkeypatch):
    fake_trainer(monkeypatch, "import time; time.sleep(60)")
    job = jobs.launch("prog", data=data_dir, epochs=4, lr=1e-3)
    job.metrics_path.write_text(
        '{"epoch": 1, "train_loss": 2.0, "seconds": 30}\n'
        '{"epoch": 2, "train_loss": 1.5, "seconds": 60}\n{"ep'
    )
    records = runlog.read(job.metrics_path)
    assert [r.epoch for r in records] == [1, 2]  # the half-written line is skipped
    done, eta = jobs.progress(jobs.load_job(job.path), records)
    assert done == 0.5 and eta == pytest.approx(60.0)  # 2 epochs left at 30 s each
    jobs.stop(job, operator=True)
    wait_for(lambda: jobs.load_job(job.path).status == "stopped")
