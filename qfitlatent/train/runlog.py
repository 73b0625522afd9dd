"""A run's `metrics.jsonl`: the one module that writes, reads and queries it.

One JSON record per line, appended by the trainer (rank 0 only) while it runs, read by the Train
page, the runs table and the model-card figure while it may still be growing. Two kinds:

- "step": every `log_every` steps and at each epoch's last step; `train_loss` is the mean over
  the steps since the previous step record (the logged window).
- "epoch": after each epoch's validation; `train_loss` is the epoch's mean, and the validation
  scores are None when the run holds out no structure.

Files written before records carried `kind` (weights/metrics-v3.jsonl) are read too: the trainer
has always put `best_val_nll` on epoch rows and only there, so that key decides their kind.

A resumed run continues from its checkpoint's step, so whatever the interrupted process logged
after that step is written again. `truncate` removes those rows when a run resumes, and `read`
drops any a file still holds (one written before truncation existed, or a copy), so no reader
ever sees a step twice.
"""

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path

from ..atomic import write_atomic

FILE_NAME = "metrics.jsonl"
STEP, EPOCH = "step", "epoch"

# What each kind carries, in the order it is written.
STEP_FIELDS = ("step", "epoch", "train_loss", "lr", "seconds", "proteins_per_s")
EPOCH_FIELDS = ("step", "epoch", "train_loss", "val_nll", "val_chi1_acc40", "val_flex_auroc",
                "lr", "seconds", "best_val_nll")  # fmt: skip


@dataclass(frozen=True)
class Record:
    """One line of metrics.jsonl. Every field but `kind` may be None in a file written by hand;
    the trainer fills all of its kind's fields (validation scores: None without validation)."""

    kind: str  # STEP or EPOCH
    step: int | None = None  # optimizer steps done when the record was written
    epoch: float | None = None  # step: epochs done (fractional); epoch: the one that ended
    train_loss: float | None = None  # nats per residue; see the module docstring for the mean
    lr: float | None = None
    seconds: float | None = None  # training time so far; validation time is not counted
    proteins_per_s: float | None = None  # step only: throughput over the logged window
    val_nll: float | None = None  # epoch only, and the rest below
    val_chi1_acc40: float | None = None  # share of χ1 whose heaviest altloc is within 40°
    val_flex_auroc: float | None = None  # mean per-structure AUROC of p_flexible
    best_val_nll: float | None = None  # lowest val_nll so far: what chose best.pt

    def __post_init__(self):
        if self.kind not in (STEP, EPOCH):
            raise ValueError(f"record kind must be {STEP!r} or {EPOCH!r}, not {self.kind!r}")
        foreign = [f for f in _NUMBER_FIELDS if getattr(self, f) is not None
                   and f not in _fields_of(self.kind)]  # fmt: skip
        if foreign:
            raise ValueError(f"a {self.kind} record does not carry {', '.join(foreign)}")

    def to_dict(self) -> dict:
        """The JSON object written for this record: `kind`, then its kind's fields."""
        return {"kind": self.kind, **{f: getattr(self, f) for f in _fields_of(self.kind)}}

    @classmethod
    def from_dict(cls, row: dict) -> "Record":
        """A record from a parsed line, new or old; keys the kind does not carry are ignored
        (old step rows wrote `"val_nll": null`), and so are non-numbers."""
        kind = row.get("kind") or (EPOCH if "best_val_nll" in row else STEP)
        return cls(kind, **{f: _number(row.get(f)) for f in _fields_of(kind)})


_NUMBER_FIELDS = tuple(f.name for f in fields(Record) if f.name != "kind")


def _fields_of(kind: str) -> tuple[str, ...]:
    return EPOCH_FIELDS if kind == EPOCH else STEP_FIELDS


def _number(v) -> float | int | None:
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


def _finite(v) -> bool:
    return v is not None and math.isfinite(v)


# --- the file ----------------------------------------------------------------------------------


def append(path, record: Record) -> None:
    """Add one record. A single small write in append mode: a reader sees the line whole, or
    (while the write is in flight) a partial last line, which `read` skips."""
    with open(path, "a") as fh:
        fh.write(json.dumps(record.to_dict()) + "\n")


def read(path) -> list[Record]:
    """The records of a metrics.jsonl in file order, without rows a resume superseded; [] when
    the file does not exist (yet). Lines that are not a whole JSON object are skipped: the last
    one of a live run may be half-written."""
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            row = json.loads(line)
            if isinstance(row, dict):
                records.append(Record.from_dict(row))
        except ValueError:  # half-written, or a kind this version does not know
            continue
    return _drop_superseded(records)


def _drop_superseded(records: list[Record]) -> list[Record]:
    """A record at step s written after records beyond s (or after one of its own kind at s)
    comes from a resumed run: those earlier records are history the resume replaced. A step
    record and its epoch record share the epoch's last step, so equal steps of different kinds
    stay."""
    kept: list[Record] = []
    for r in records:
        if r.step is not None:
            kept = [k for k in kept if k.step is None or k.step < r.step
                    or (k.step == r.step and k.kind != r.kind)]  # fmt: skip
        kept.append(r)
    return kept


def truncate(path, step: int) -> None:
    """Keep only records up to `step` (the checkpoint a run resumes from): the resumed run
    writes the later ones again. Atomic: the file is whole before and after."""
    path = Path(path)
    if not path.exists():
        return
    kept = [r for r in read(path) if r.step is None or r.step <= step]
    write_atomic(path, "".join(json.dumps(r.to_dict()) + "\n" for r in kept))


# --- queries -----------------------------------------------------------------------------------


def of_kind(records: list[Record], kind: str) -> list[Record]:
    return [r for r in records if r.kind == kind]


def best_val_nll(records: list[Record]) -> float | None:
    """The run's best validation NLL so far (the last epoch record's), or None before the first
    epoch ends or without validation structures."""
    ends = of_kind(records, EPOCH)
    return ends[-1].best_val_nll if ends else None


def has_validation(records: list[Record]) -> bool:
    """True once an epoch has scored held-out structures."""
    return any(r.val_nll is not None for r in of_kind(records, EPOCH))


def epochs_done(records: list[Record]) -> float | None:
    """How far the run has got, in epochs (fractional between epoch ends), or None if unknown."""
    done = [r.epoch for r in records if _finite(r.epoch)]
    return max(done) if done else None


def x_axis(records: list[Record]) -> str:
    """The x of a run's curves: "step", or "epoch" for a file without steps (made by hand)."""
    return STEP if any(r.step is not None for r in records) else EPOCH


def series(records: list[Record], kind: str, y: str, x: str = STEP) -> tuple[list, list]:
    """([x], [y]) of one curve: the `kind` records where both fields are finite numbers, in
    file order. Every plot of a run (figures.learning_curve, and viz.curves through
    `loss_series`) takes its points from here, so two plots of one run cannot disagree."""
    points = [(getattr(r, x), getattr(r, y)) for r in of_kind(records, kind)]
    points = [(a, b) for a, b in points if _finite(a) and _finite(b)]
    return [a for a, _ in points], [b for _, b in points]


def loss_series(records: list[Record]) -> dict[str, tuple[list, list]]:
    """The Train page's three curves, as `viz.curves.training_curves` draws them: training loss
    per logged window by step, and per finished epoch the mean training loss and validation NLL
    (empty without a validation split)."""
    return {
        "step_loss": series(records, STEP, "train_loss", "step"),
        "epoch_loss": series(records, EPOCH, "train_loss", "epoch"),
        "val_nll": series(records, EPOCH, "val_nll", "epoch"),
    }
