"""One run at a time, under real concurrency: 50 processes race for the runs lock, 20 times over.

The old lock created `.lock` empty and wrote the pid after; a competitor reading the empty file
judged it stale, deleted it and took it, so two trainers overlapped in 3 of 4 trials. These
tests race real processes (fork) on the lock itself, on a stale lock every other round (where
the old code broke), and through `launch` end to end with a stand-in trainer.
"""

import json
import multiprocessing as mp
import os
import sys
import time

import pytest

from qfitlatent.train import jobs

N_RACERS = 50
ROUNDS = 20  # lock-function races; the end-to-end race below repeats E2E_ROUNDS times
E2E_ROUNDS = 3
ctx = mp.get_context("fork")


def dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def _racer(root, start, done, results, rounds):
    """Each round: wait for the start, try the lock, report, wait, release if held."""
    for r in range(rounds):
        start.wait()
        try:
            jobs._acquire_lock(root, os.getpid())
            won = True
        except RuntimeError:
            won = False
        except Exception as err:  # anything else is a lock bug: report it, keep the rounds going
            won = f"{type(err).__name__}: {err}"
        results.put((r, os.getpid(), won))
        done.wait()  # every racer has tried while the winner still holds the lock
        if won is True:
            jobs._release_lock(root, os.getpid())
        done.wait()  # released before the next round (and before the stale lock is planted)


def test_fifty_processes_racing_for_the_lock_one_wins_every_round(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    start, done = ctx.Barrier(N_RACERS + 1), ctx.Barrier(N_RACERS + 1)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_racer, args=(root, start, done, results, ROUNDS))
        for _ in range(N_RACERS)
    ]
    for p in procs:
        p.start()
    try:
        for r in range(ROUNDS):
            if r % 2:  # a lock left by a dead process: every racer wants to break it at once
                (root / jobs.LOCK_NAME).write_text(json.dumps({"pid": dead_pid(), "token": "x"}))
            start.wait(timeout=60)
            got = [results.get(timeout=60) for _ in range(N_RACERS)]
            winners = [pid for rr, pid, won in got if won is True]
            assert {rr for rr, _, _ in got} == {r}
            assert [won for _, _, won in got if won not in (True, False)] == []
            assert len(winners) == 1, f"round {r}: {len(winners)} racers took the lock"
            assert jobs.lock_holder(root) == winners[0]
            done.wait(timeout=60)
            done.wait(timeout=60)
            assert jobs.lock_holder(root) is None
    finally:
        start.abort()  # a failed round leaves racers at a barrier: release them
        done.abort()
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    # Nothing but the lock's guard file is left: no temporary record survives a race.
    assert sorted(p.name for p in root.iterdir()) == [jobs.LOCK_GUARD]


def test_a_lock_without_a_complete_record_is_never_judged_stale(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    (root / jobs.LOCK_NAME).write_text("")  # what a reader of the old lock saw mid-write
    assert jobs.lock_holder(root) == -1
    with pytest.raises(RuntimeError, match="unreadable"):
        jobs._acquire_lock(root, os.getpid())
    assert (root / jobs.LOCK_NAME).read_text() == ""


def _launcher(root, name, start, results):
    os.environ[jobs.RUNS_ENV] = str(root)
    # The stand-in trainer runs until the test says so, so the round's run outlives every
    # launcher: a later one cannot succeed merely because the first run already ended.
    go = str(root.parent / "go")
    wait = f"import os, time\nwhile not os.path.exists({go!r}): time.sleep(0.02)"
    jobs.train_command = lambda run_dir, settings: [sys.executable, "-c", wait]
    start.wait()
    try:
        jobs.launch(name, data=root.parent / "data", epochs=1, lr=1e-3, owner="t")
        results.put((name, "launched"))
    except Exception as err:
        results.put((name, f"refused: {type(err).__name__}: {err}"))
    results.close()
    results.join_thread()  # flush the queue before _exit
    os._exit(0)  # no pytest teardown in the child; the supervisor lives on in its own session


def test_fifty_simultaneous_launches_start_exactly_one_run(tmp_path):
    root = tmp_path / "runs"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.pdb").write_text("ATOM\n")
    for r in range(E2E_ROUNDS):
        start, results = ctx.Barrier(N_RACERS), ctx.Queue()
        names = [f"r{r}-{i}" for i in range(N_RACERS)]
        procs = [ctx.Process(target=_launcher, args=(root, n, start, results)) for n in names]
        for p in procs:
            p.start()
        got = dict(results.get(timeout=60) for _ in names)
        for p in procs:
            p.join(timeout=30)
        launched = [n for n, what in got.items() if what == "launched"]
        assert len(launched) == 1, f"round {r}: {len(launched)} runs started"
        assert all("already going" in w for n, w in got.items() if n not in launched)
        # Refused launches leave no folder: only the one run of this round is on disk.
        on_disk = sorted(d.name for d in root.iterdir() if d.name.startswith(f"r{r}-"))
        assert on_disk == launched
        (tmp_path / "go").touch()
        # The supervisor frees the lock just before it records the end (so whoever sees the run
        # ended can start the next): wait for both.
        end = time.time() + 60
        while time.time() < end and (
            jobs.lock_holder(root) is not None or jobs.load_job(root / launched[0]).active
        ):
            time.sleep(0.05)
        assert jobs.lock_holder(root) is None
        assert jobs.load_job(root / launched[0]).status == "finished"
        (tmp_path / "go").unlink()
