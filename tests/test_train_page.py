"""The Train page's own defects (issue 20): the time-left estimate, the runs table's duration of a
running run, what the form says about the bundled sample's validation structure, run names.

Progress is computed from synthetic metrics.jsonl records written through runlog's API, with the
clock an argument: nothing here waits or depends on how fast the machine is.
"""

import time

import pytest

from qfitlatent import ui
from qfitlatent.train import jobs, runlog


def running_job(tmp_path, epochs: int, started: float, status: str = "running") -> jobs.Job:
    return jobs.Job(name="r", dir=str(tmp_path), command=[], settings={"epochs": epochs},
                    status=status, started=started)  # fmt: skip


def test_time_left_comes_from_measured_step_time_not_from_start_up(tmp_path):
    # 5 epochs at 60 s each, after 10 min of reading and featurising structures: the first step
    # record (a tenth of an epoch, 6 s of training) must say about 4.9 min, not 41 or 490.
    job = running_job(tmp_path, epochs=5, started=time.time() - 600)
    runlog.append(job.metrics_path, runlog.Record(runlog.STEP, step=10, epoch=0.1,
                                                  train_loss=2.0, lr=1e-4, seconds=6.0))  # fmt: skip
    done, eta = jobs.progress(job)
    assert done == pytest.approx(0.02)
    assert eta == pytest.approx(4.9 * 60)
    # Later records refine the rate: 2 epochs in 100 s leave 3 epochs at 50 s.
    runlog.append(job.metrics_path, runlog.Record(runlog.EPOCH, step=200, epoch=2,
                                                  train_loss=1.5, lr=1e-4, seconds=100.0))  # fmt: skip
    assert jobs.progress(job) == (pytest.approx(0.4), pytest.approx(150.0))


def test_no_time_left_before_the_first_timed_step(tmp_path):
    job = running_job(tmp_path, epochs=5, started=time.time() - 600)
    assert jobs.progress(job) == (0.0, None)  # no metrics.jsonl yet: still reading structures
    runlog.append(job.metrics_path, runlog.Record(runlog.STEP, step=1, epoch=0.01,
                                                  train_loss=2.0))  # fmt: skip
    assert jobs.progress(job) == (pytest.approx(0.002), None)  # a position but no time
    job.status = "finished"
    assert jobs.progress(job) == (1.0, None)
