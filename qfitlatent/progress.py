"""How a prediction says where it is: the one progress protocol of `predict` and of the loops
inside its long steps.

A `Report` is `report(fraction, text)`: the share of the whole prediction done, in [0, 1], and
a line for a person ("Building the multiconformer model: 1,200 / 3,400 side chains"). predict
calls it at each step; a long step's loop gets a `Tick` from `Ticker`, `tick(done, total)`,
which turns its counts into reports inside the step's share of the bar, at most every 1 % of
the total (about 100 reports a step, not one per residue of 50,000); a step that goes over its
items in several passes (featurising) counts through them with `within`. The default
everywhere is no progress at all (`no_tick`), so the command line, the archive and tests pay
nothing.

A report may raise: the app's job raises prediction_cache.Cancelled once no page follows it.
The exception leaves the loop at that tick, so a long step is abandoned mid-way rather than at
its end.
"""

from collections.abc import Callable

Report = Callable[[float, str], None]  # (fraction of the whole prediction, text)
Tick = Callable[[int, int], None]  # (done, total) of one step's loop; may raise to stop it

REPORTS_PER_STEP = 100  # a loop reports at most every 1 % of its total, and at its end


def no_tick(done: int, total: int) -> None:
    """A loop nobody follows."""


class Ticker:
    """A `Tick` for one step: `text: done / total unit` at `start + (end - start) * done/total`
    of the bar. Reports its first tick, then each tick at least 1 % of `total` past the last
    one reported, and the end; counts that go back or repeat are not reported again."""

    def __init__(self, report: Report, start: float, end: float, text: str, unit: str):
        self.report, self.start, self.end = report, start, end
        self.text, self.unit = text, unit
        self.last = -1  # `done` at the last report; -1: none yet

    def __call__(self, done: int, total: int) -> None:
        stride = max(1, -(-total // REPORTS_PER_STEP))  # ceil(total / 100)
        if done <= self.last or (done < total and self.last >= 0 and done - self.last < stride):
            return
        self.last = done
        share = done / total if total > 0 else 1.0
        self.report(
            self.start + (self.end - self.start) * share,
            f"{self.text}: {done:,} / {total:,} {self.unit}",
        )


def ticker(report: Report | None, start: float, end: float, text: str, unit: str) -> Tick:
    """`Ticker(...)` for a step that is followed; `no_tick` for one that is not."""
    return no_tick if report is None else Ticker(report, start, end, text, unit)


def within(tick: Tick, total: int, start: float, end: float) -> Tick:
    """The `Tick` of one pass of a step that goes over its `total` items more than once
    (featurising: the side chains' atoms, then the atoms around them): the pass's `(done, its
    total)` told to `tick` as the step's count from `start * total` to `end * total`, where
    [start, end] is the pass's share of the step's time. One count rises through the passes,
    a residue's worth of the step's work at a time, rather than restarting at each pass."""
    if tick is no_tick:
        return no_tick

    def in_pass(done: int, n: int) -> None:
        tick(round(total * (start + (end - start) * (done / n if n > 0 else 1.0))), total)

    return in_pass
