"""metrics.jsonl through train.runlog: what the trainer writes is what every reader gets back,
live files, resumed runs and files written before records carried their kind."""

import json
from pathlib import Path

import pytest

from qfitlatent.train import runlog
from qfitlatent.train.runlog import EPOCH, STEP, Record

SHIPPED = Path(__file__).resolve().parents[1] / "weights" / "metrics-v3.jsonl"


def step(s, loss, **kw):
    return Record(STEP, step=s, epoch=s / 4, train_loss=loss, lr=1e-3, seconds=s * 1.5, **kw)


def epoch(s, loss, val, best, **kw):
    return Record(EPOCH, step=s, epoch=s // 4, train_loss=loss, val_nll=val, best_val_nll=best,
                  lr=1e-3, seconds=s * 1.5, **kw)  # fmt: skip


def write(path, records):
    for r in records:
        runlog.append(path, r)
    return path


def test_records_read_back_as_written(tmp_path):
    written = [
        step(2, 3.0, proteins_per_s=1.25),
        step(4, 2.5, proteins_per_s=1.5),
        epoch(4, 2.7, 2.9, 2.9, val_chi1_acc40=0.6, val_flex_auroc=None),
    ]
    path = write(tmp_path / "metrics.jsonl", written)
    assert runlog.read(path) == written
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["kind"] for r in rows] == ["step", "step", "epoch"]
    assert "val_nll" not in rows[0] and "proteins_per_s" not in rows[2]  # each kind its fields
    assert runlog.read(tmp_path / "not-yet.jsonl") == []  # a run that has logged nothing


def test_a_record_refuses_fields_of_the_other_kind():
    with pytest.raises(ValueError, match="val_nll"):
        Record(STEP, step=1, val_nll=2.0)
    with pytest.raises(ValueError, match="kind"):
        Record("batch", step=1)


def test_a_half_written_last_line_is_skipped(tmp_path):
    path = write(tmp_path / "metrics.jsonl", [step(2, 3.0), step(4, 2.5)])
    with open(path, "a") as fh:
        fh.write('{"kind": "step", "step": 6, "train_lo')  # a live run mid-write
    assert [r.step for r in runlog.read(path)] == [2, 4]


def test_resume_truncates_what_came_after_the_checkpoint(tmp_path):
    # The interrupted process logged to step 8 and an epoch end at 8; last.pt is from step 4.
    path = write(tmp_path / "metrics.jsonl",
                 [step(2, 3.0), step(4, 2.5), epoch(4, 2.7, 2.9, 2.9), step(6, 2.4), step(8, 2.3),
                  epoch(8, 2.35, 2.8, 2.8)])  # fmt: skip
    runlog.truncate(path, 4)
    assert [(r.kind, r.step) for r in runlog.read(path)] == [(STEP, 2), (STEP, 4), (EPOCH, 4)]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]  # no temporary left
    runlog.append(path, step(6, 2.2))
    assert [r.train_loss for r in runlog.read(path)] == [3.0, 2.5, 2.7, 2.2]
    runlog.truncate(tmp_path / "absent.jsonl", 4)  # nothing logged before the stop: no file
    assert not (tmp_path / "absent.jsonl").exists()


def test_rows_a_resume_superseded_are_dropped_even_without_truncation(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [
        {"step": 10, "train_loss": 3.0},
        {"step": 20, "train_loss": 2.9},
        {"step": 30, "train_loss": 2.8, "val_nll": None},
        {"step": 20, "train_loss": 2.7},  # resumed from the step-20 checkpoint
        {"step": 30, "lr": 1e-4},  # no loss on this row
        {"step": 40, "train_loss": float("nan")},
        {"step": 50, "train_loss": 2.5},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = runlog.read(path)
    assert [r.step for r in records] == [10, 20, 30, 40, 50]
    assert runlog.series(records, STEP, "train_loss") == ([10, 20, 50], [3.0, 2.7, 2.5])


def test_files_without_kind_take_it_from_best_val_nll(tmp_path):
    """The shape every trainer before runlog wrote, including a run without validation."""
    path = tmp_path / "metrics.jsonl"
    rows = [
        {"step": 4, "epoch": 1.0, "train_loss": 2.5, "val_nll": None, "lr": 1e-3, "seconds": 6.0,
         "proteins_per_s": 1.5},
        {"step": 4, "epoch": 1, "train_loss": 2.7, "val_nll": None, "val_chi1_acc40": None,
         "val_flex_auroc": None, "lr": 1e-3, "seconds": 6.0, "best_val_nll": None},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = runlog.read(path)
    assert [r.kind for r in records] == [STEP, EPOCH]
    assert records[0].proteins_per_s == 1.5 and records[1].train_loss == 2.7
    assert not runlog.has_validation(records) and runlog.best_val_nll(records) is None


def test_the_shipped_runs_log_still_reads():
    records = runlog.read(SHIPPED)
    ends = runlog.of_kind(records, EPOCH)
    assert [r.epoch for r in ends] == list(range(1, 9))
    assert runlog.best_val_nll(records) == min(r.val_nll for r in ends)
    assert runlog.epochs_done(records) == 8
    xs, ys = runlog.series(records, STEP, "train_loss")
    assert xs == sorted(set(xs)) and len(xs) > 200


@pytest.mark.parametrize("with_kind", [True, False])
def test_epoch_records_are_found_the_same_with_and_without_a_validation_split(tmp_path, with_kind):
    """Before runlog one reader took epoch rows by best_val_nll and another by a numeric
    val_nll, so a run without validation had epochs for one and none for the other."""
    found = {}
    for split, val in (("val", 2.9), ("none", None)):
        records = [step(2, 3.0), step(4, 2.5), epoch(4, 2.7, val, val), step(6, 2.4),
                   step(8, 2.3), epoch(8, 2.35, val and val - 0.1, val and val - 0.1)]  # fmt: skip
        path = tmp_path / f"{split}.jsonl"
        rows = [r.to_dict() for r in records]
        if not with_kind:
            rows = [{k: v for k, v in r.items() if k != "kind"} for r in rows]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        read = runlog.read(path)
        found[split] = [(r.step, r.epoch, r.train_loss) for r in runlog.of_kind(read, EPOCH)]
        assert runlog.has_validation(read) == (val is not None)
        assert runlog.series(read, EPOCH, "train_loss", "epoch") == ([1, 2], [2.7, 2.35])
    assert found["val"] == found["none"] == [(4, 1, 2.7), (8, 2, 2.35)]
