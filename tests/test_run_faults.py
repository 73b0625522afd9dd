"""Train-page runs under faults and abuse (issue 21): a killed supervisor, reused pids, a run
that would hold the lock for days, uploads that would fill the disk, models that cannot fit.

Trainers are Python one-liners (as in test_runs) that report what happened to them through
files, so every test waits on a condition with a generous bound and asserts no timing. Every
process a test starts is killed at its end, pass or fail.
"""

import os
import signal
import subprocess
import sys

import pytest
from conftest import tiny_checkpoint
from test_runs import fake_trainer
from test_runs import wait_for as _wait_for

from qfitlatent.errors import CheckpointError
from qfitlatent.server_config import ServerConfig
from qfitlatent.settings_check import SettingsError
from qfitlatent.train import jobs
from qfitlatent.uploads import UploadError

MB = 2**20


def wait_for(predicate, timeout: float = 90.0):
    """test_runs' wait, with a bound generous enough for a loaded CI machine."""
    return _wait_for(predicate, timeout)


@pytest.fixture
def reaper():
    """pids to SIGKILL when the test ends, however it ends."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _stubborn_trainer(flag_dir) -> str:
    """A trainer that, on SIGTERM, writes `term` and exits only once `release` exists: a trainer
    busy finishing its step and saving last.pt. It ignores SIGTERM, so the test's reaper must
    SIGKILL it; should even that miss, it ends itself after 5 minutes."""
    return (
        "import os, signal, time, pathlib\n"
        f"d = pathlib.Path({str(flag_dir)!r})\n"
        "(d / 'pid').write_text(str(os.getpid()))\n"
        "signal.signal(signal.SIGTERM, lambda *a: (d / 'term').write_text('1'))\n"
        "t0 = time.time()\n"
        "while not (d / 'release').exists() and time.time() - t0 < 300:  # never outlives a test\n"
        "    time.sleep(0.05)\n"
    )


# --- item 10: the supervisor and its trainer live and die together -----------------------------


def test_a_killed_supervisor_takes_its_trainer_along_and_the_lock_waits_for_it(
    root, data_dir, tmp_path, monkeypatch, reaper
):
    flags = tmp_path / "flags"
    flags.mkdir()
    fake_trainer(monkeypatch, _stubborn_trainer(flags))
    job = jobs.launch("orphan", data=data_dir, epochs=1, lr=1e-3)
    reaper.append(job.pid)
    trainer = int(wait_for(lambda: (flags / "pid").exists() and (flags / "pid").read_text()))
    reaper.append(trainer)
    wait_for(lambda: jobs.load_job(job.path).trainer_pid == trainer)

    os.kill(job.pid, signal.SIGKILL)  # the supervisor dies without a word
    wait_for(lambda: not jobs.pid_alive(job.pid))
    # The kernel passed the death on: the trainer got SIGTERM (it saves last.pt and exits).
    wait_for(lambda: (flags / "term").exists())
    # While it finishes, the run is still going and holds the lock: nothing starts beside it.
    assert jobs.pid_alive(trainer)
    assert jobs.load_job(job.path).active
    assert jobs.lock_holder(root) == job.pid
    with pytest.raises(RuntimeError, match="already going"):
        jobs.launch("beside", data=data_dir, epochs=1, lr=1e-3)
    # An operator's stop reaches the orphaned trainer through its process group.
    (flags / "term").unlink()
    jobs.stop(jobs.load_job(job.path), operator=True)
    wait_for(lambda: (flags / "term").exists())
    (flags / "release").write_text("1")
    wait_for(lambda: not jobs.pid_alive(trainer))
    ended = wait_for(lambda: (j := jobs.load_job(job.path)).active is False and j)
    assert ended.status == "stopped"
    assert jobs.lock_holder(root) is None
    fake_trainer(monkeypatch, "pass")
    nxt = jobs.launch("after", data=data_dir, epochs=1, lr=1e-3)
    reaper.append(nxt.pid)
    wait_for(lambda: jobs.load_job(nxt.path).status == "finished")


# --- item 11: a process is its pid and its start time ------------------------------------------


def test_a_stale_lock_whose_pid_now_names_another_process_is_taken_over(
    root, data_dir, monkeypatch
):
    fake_trainer(monkeypatch, "pass")
    root.mkdir(parents=True)
    me = os.getpid()  # alive, but not the process that took the lock (another start time)
    (root / jobs.LOCK_NAME).write_text(
        f'{{"pid": {me}, "start": {jobs.start_time(me) - 1}, "token": "x", "time": 0}}'
    )
    assert jobs.lock_holder(root) is None
    job = jobs.launch("after-reuse", data=data_dir, epochs=1, lr=1e-3)
    wait_for(lambda: jobs.load_job(job.path).status == "finished")


def test_stop_never_signals_a_process_that_reused_a_runs_pid(root, data_dir, monkeypatch, reaper):
    # An unrelated process group leader stands where the run's supervisor used to be.
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
    )
    reaper.append(other.pid)
    run = root / "old-run"
    run.mkdir(parents=True)
    job = jobs.Job(name="old-run", dir=str(run), command=["true"], status="running",
                   pid=other.pid, pid_start=jobs.start_time(other.pid) - 1)  # fmt: skip
    job.save()
    stopped = jobs.stop(jobs.load_job(run), operator=True)
    assert not stopped.active  # judged gone: the recorded process ended long ago
    assert other.poll() is None  # and the unrelated process was left alone
    other.kill()
    other.wait()


# --- item 12: a run may hold the lock for the operator's budget, no longer ---------------------


def test_a_run_is_stopped_cleanly_at_the_servers_time_limit(
    root, data_dir, tmp_path, monkeypatch, reaper
):
    flags = tmp_path / "flags"
    flags.mkdir()
    fake_trainer(
        monkeypatch,
        "import signal, sys, time, pathlib\n"
        f"d = pathlib.Path({str(flags)!r})\n"
        "def saved(*a):\n"
        "    (d / 'saved').write_text('last.pt')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, saved)\n"
        "(d / 'ready').write_text('1')\n"
        "time.sleep(600)\n",
    )
    job = jobs.launch("long", data=data_dir, epochs=1000, lr=1e-3,
                      limits=ServerConfig(max_run_seconds=5))  # fmt: skip
    reaper.append(job.pid)
    assert jobs.load_job(job.path).time_limit == 5
    ended = wait_for(lambda: (j := jobs.load_job(job.path)).active is False and j)
    assert ended.status == "stopped"
    assert "time limit for a run (5 s)" in ended.message
    # Stopped as a Stop does: SIGTERM, which the trainer answers by saving. (Had the machine
    # been so slow that the limit came before the trainer could listen, it was simply ended;
    # `ready` is written only once it listens, so this holds without timing assumptions.)
    assert (flags / "saved").exists() or not (flags / "ready").exists()
    assert (ended.returncode == 0) == (flags / "saved").exists()
    assert jobs.lock_holder(root) is None


def test_no_time_limit_when_the_operator_sets_none(root, data_dir, monkeypatch, reaper):
    fake_trainer(monkeypatch, "pass")
    job = jobs.launch("free", data=data_dir, epochs=1, lr=1e-3,
                      limits=ServerConfig(max_run_seconds=0))  # fmt: skip
    reaper.append(job.pid)
    assert jobs.load_job(job.path).time_limit is None
    assert wait_for(lambda: jobs.load_job(job.path).status == "finished")


# --- item 7: staged uploads are bounded per visitor and in all, and a failed run's go ----------


def _upload(tag: str, mb: int) -> list[tuple[str, bytes]]:
    return [(f"{tag}{i}.pdb", b"A" * MB) for i in range(mb)]


def test_a_failed_runs_uploads_are_removed(root, monkeypatch, reaper):
    fake_trainer(monkeypatch, "import sys; sys.exit(3)")
    job = jobs.launch("fails", data=_upload("f", 2), epochs=1, lr=1e-3, owner="tok")
    reaper.append(job.pid)
    ended = wait_for(lambda: (j := jobs.load_job(job.path)).active is False and j)
    assert ended.status == "failed"
    assert not (job.path / "data").exists()
    assert (job.path / "job.json").is_file()  # the record and its log stay for the visitor
    assert jobs.staged_bytes(root, jobs.owner_id("tok")) == (0, 0)


def test_staged_uploads_are_bounded_per_visitor_and_for_the_whole_server(root, monkeypatch):
    fake_trainer(monkeypatch, "pass")
    limits = ServerConfig(max_upload_mb=100, max_staged_mb_visitor=3, max_staged_mb_total=5)

    def launch(name, owner, mb):
        job = jobs.launch(name, data=_upload(name, mb), epochs=1, lr=1e-3, owner=owner,
                          limits=limits)  # fmt: skip
        wait_for(lambda: jobs.load_job(job.path).status == "finished")
        return job

    launch("a", "alice", 2)
    with pytest.raises(UploadError, match="your runs keep 2 MB .* at most 3 MB per visitor"):
        jobs.launch("b", data=_upload("b", 2), epochs=1, lr=1e-3, owner="alice", limits=limits)
    assert not (root / "b").exists()
    launch("c", "bob", 2)  # another visitor still has room
    with pytest.raises(UploadError, match="all visitors together"):
        jobs.launch("d", data=_upload("d", 2), epochs=1, lr=1e-3, owner="carol", limits=limits)
    assert jobs.staged_bytes(root, jobs.owner_id("alice")) == (2 * MB, 4 * MB)
    jobs.delete(jobs.load_job(root / "a"), token="alice")  # deleting a run frees its share
    launch("b", "alice", 2)


def test_ten_hundred_mib_members_stop_at_the_limit_while_unpacking(tmp_path):
    """The probe's zip (10 members of 100 MiB zeros, 1 MB on the wire), scaled down: each member
    passes the per-file limit, the sum is refused before a byte is unpacked."""
    import io
    import zipfile

    from qfitlatent.uploads import stage_uploads

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(10):
            zf.writestr(f"m{i}.pdb", bytes(2 * MB))
    limits = ServerConfig(max_file_mb=4, max_upload_mb=100, max_staged_mb_visitor=7)
    with pytest.raises(UploadError, match="at most 7 MB per visitor"):
        stage_uploads(tmp_path / "d", [("z.zip", buf.getvalue())], limits, (0, 0))
    assert list((tmp_path / "d").iterdir()) == []


# --- item 8: a model that cannot fit, or does not fit its start, never launches ----------------


def test_a_model_too_large_for_the_server_is_refused_before_launch(root, data_dir, monkeypatch):
    fake_trainer(monkeypatch, "pass")
    with pytest.raises(SettingsError, match=r"4\.45 G parameters .* at most 20 M"):
        jobs.launch("huge", data=data_dir, epochs=1, lr=1e-3,
                    overrides=["d_s=4096", "n_blocks=64"])  # fmt: skip
    assert not (root / "huge").exists() and jobs.lock_holder(root) is None


def test_settings_that_do_not_fit_the_start_checkpoint_are_refused_before_launch(
    root, data_dir, tmp_path, monkeypatch, reaper
):
    fake_trainer(monkeypatch, "pass")
    start = tiny_checkpoint(tmp_path / "start.pt")  # n_blocks=1
    with pytest.raises(CheckpointError, match="do not fit the start model start.pt.*n_blocks"):
        jobs.launch("misfit", data=data_dir, epochs=1, lr=1e-3, init_from=start,
                    overrides=["n_blocks=2"])  # fmt: skip
    assert not (root / "misfit").exists() and jobs.lock_holder(root) is None
    # What may change when fine-tuning (dropout) still launches.
    job = jobs.launch("fits", data=data_dir, epochs=1, lr=1e-3, init_from=start,
                      overrides=["dropout=0.3"])  # fmt: skip
    reaper.append(job.pid)
    wait_for(lambda: jobs.load_job(job.path).status == "finished")


def test_the_shipped_start_with_one_block_is_refused(root, data_dir, monkeypatch):
    from qfitlatent.checkpoint import default_weights

    if not default_weights().is_file():
        pytest.skip("no shipped weights")
    fake_trainer(monkeypatch, "pass")
    with pytest.raises(CheckpointError, match="n_blocks: checkpoint 4 vs requested 1"):
        jobs.launch("one-block", data=data_dir, epochs=1, lr=1e-3, init_from=default_weights(),
                    overrides=["n_blocks=1"])  # fmt: skip
    assert not (root / "one-block").exists()


def test_the_launch_waits_for_nothing_it_does_not_need(root, data_dir, monkeypatch):
    """Without a start checkpoint the checks import no torch (launch must stay light)."""
    code = (
        "import sys\n"
        "from qfitlatent.train import jobs\n"
        "from qfitlatent.server_config import ServerConfig\n"
        "jobs.check_run_settings(None, ['d_s=64'], 'qfitlatent-v3', ServerConfig())\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    assert out.stdout.strip() == "False"


def test_time_limit_message_reads_in_hours_minutes_or_seconds():
    assert (jobs._duration(6 * 3600), jobs._duration(90), jobs._duration(2)) == (
        "6 h",
        "1.5 min",
        "2 s",
    )
