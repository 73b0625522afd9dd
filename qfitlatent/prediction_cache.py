"""The app's predictions on a shared server: the kept ones bounded by bytes, the running ones by
count (both operator settings, server_config `max_kept_mb` and `max_running_predictions`), each
running one in a worker thread of its own (`PredictionJobs`), outside any page's script run.

A Streamlit script run stops whenever its visitor touches a widget; a prediction computed inside
it stopped with it and started again from "Reading the structure". Here the page only follows a
job: the next script run finds the job by its key and follows it on.

No streamlit here: ui.py holds one `KeptResults`, one `PredictionQueue` and one `PredictionJobs`
per server process and says what a waiting visitor sees. `estimate_bytes` walks every object a
prediction holds: 0.5–1 s of CPU for 5,868 residues, once, after a prediction of about 30 s.
"""

import sys
import threading
import time
import types
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from contextlib import contextmanager

import gemmi
import numpy as np
import torch

from . import server_config

# Bytes per atom of a gemmi.Structure in memory, its residues and chains included (C++ objects
# the Python walk below cannot see): 128 measured by benchmarks/bench_kept_prediction.py as
# the resident memory of 20 clones of a 45,270-atom structure (docs/benchmarks.md).
GEMMI_ATOM_BYTES = 128


def estimate_bytes(obj) -> int:
    """Memory `obj` holds, estimated: tensors by their storage (each storage once), numpy arrays
    by their data, bytes and text by length, gemmi structures by their atoms and residues, gemmi
    grids (a prediction's density maps) by their points, and
    containers, dataclasses and objects by their parts (each object once)."""
    seen: set[int] = set()
    storages: set[int] = set()
    total, stack = 0, [obj]
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, (type, types.ModuleType, types.FunctionType)):
            continue
        seen.add(id(o))
        if isinstance(o, torch.Tensor):
            storage = o.untyped_storage()
            if storage.data_ptr() not in storages:
                storages.add(storage.data_ptr())
                total += storage.nbytes()
            total += sys.getsizeof(o)
        elif isinstance(o, np.ndarray):
            total += sys.getsizeof(o) if o.base is None else o.nbytes
        elif isinstance(o, gemmi.Structure):
            total += GEMMI_ATOM_BYTES * sum(model.count_atom_sites() for model in o)
        elif isinstance(o, gemmi.FloatGrid):  # a density map a prediction keeps (C++ memory)
            total += 4 * o.point_count + sys.getsizeof(o)
        elif isinstance(o, dict):
            total += sys.getsizeof(o)
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset, deque)):
            total += sys.getsizeof(o)
            stack.extend(o)
        else:
            total += sys.getsizeof(o)
            if hasattr(o, "__dict__"):
                stack.append(vars(o))
            for name in getattr(type(o), "__slots__", ()):
                stack.append(getattr(o, name, None))
    return total


class KeptResults:
    """Finished predictions by key, newest last, their estimated sizes summing to at most the
    budget given with each `put`. The newest is always kept, even alone above the budget: the
    page that asked for it reruns on every click and would otherwise predict it again."""

    def __init__(self):
        self._items: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable):
        """The kept value (now the newest), or None."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key][0]

    def put(self, key: Hashable, value, nbytes: int, budget: int) -> None:
        with self._lock:
            self._items[key] = (value, nbytes)
            self._items.move_to_end(key)
            while len(self._items) > 1 and self.total_bytes > budget:
                self._items.popitem(last=False)

    @property
    def total_bytes(self) -> int:
        return sum(n for _, n in self._items.values())

    def __len__(self) -> int:
        return len(self._items)


class PredictionQueue:
    """At most `limit` predictions at once in this process, first come first served."""

    def __init__(self):
        self._cond = threading.Condition()
        self._running = 0
        self._waiting: deque[object] = deque()

    @contextmanager
    def slot(self, limit: Callable[[], int], on_wait: Callable[[int, int], None] | None = None):
        """Hold one of the `limit()` places while the block runs. While waiting, `on_wait(ahead,
        limit)` hears how many are ahead (running ones included) about once a second. `limit`
        is asked again each time, so the operator's setting applies without a restart."""
        ticket = object()
        with self._cond:
            self._waiting.append(ticket)
            try:
                while self._waiting[0] is not ticket or self._running >= limit():
                    if on_wait is not None:
                        ahead = self._running + self._waiting.index(ticket)
                        on_wait(ahead, limit())
                    self._cond.wait(timeout=1.0)
            except BaseException:  # the visitor left or reran while queued: give up the place
                self._waiting.remove(ticket)
                self._cond.notify_all()
                raise
            self._waiting.popleft()
            self._running += 1
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    @property
    def running(self) -> int:
        return self._running


class Cancelled(Exception):
    """A prediction no page follows any more, stopped at its next progress report."""


class Job:
    """One prediction running in its own thread: where it is (fraction, text), and once `done`
    is set, its `result` or its `error`. Pages `follow` it; one nobody follows for `grace`
    seconds (0: never stopped) raises Cancelled at its next `report`: a step boundary, or a
    tick inside a long step (progress.py), about every 1 % of it."""

    def __init__(self, key: Hashable, grace: float, clock: Callable[[], float]):
        self.key = key
        self.fraction, self.text = 0.0, "Starting"
        self.result, self.error = None, None
        self.done = threading.Event()
        self.grace, self._clock = grace, clock
        self._seen = clock()

    def follow(self) -> None:
        """A page still waits for this job (called on each of its polls)."""
        self._seen = self._clock()

    @property
    def abandoned(self) -> bool:
        return self.grace > 0 and self._clock() - self._seen > self.grace

    def report(self, fraction: float, text: str) -> None:
        """The job's progress callback: records where it is, and stops a job nobody follows."""
        if self.abandoned:
            raise Cancelled(f"no page followed this prediction for {self.grace:g} s")
        self.fraction, self.text = fraction, text


class PredictionJobs:
    """Running predictions by key (the key of `KeptResults`), each in a thread of its own and
    bounded by the `PredictionQueue`; a finished one goes into `KeptResults`. Pages with the
    same key (the same bytes and settings) follow the same job; no other page sees it.
    `grace`: seconds a job runs on unfollowed; None: the operator's `abandoned_after_s`, read
    as each job starts, so a changed setting applies without a restart."""

    def __init__(
        self,
        kept: KeptResults,
        queue: PredictionQueue,
        grace: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.kept, self.queue = kept, queue
        self._grace, self._clock = grace, clock
        self._jobs: dict[Hashable, Job] = {}
        self._lock = threading.Lock()

    def find(self, key: Hashable) -> tuple[object | None, Job | None]:
        """(the kept value, None), (None, the running job) or (None, None), seen at one instant:
        a job that finishes in between moves from one to the other under the same lock."""
        with self._lock:
            value = self.kept.get(key)
            return (value, None) if value is not None else (None, self._jobs.get(key))

    def start(
        self,
        key: Hashable,
        work: Callable[[Callable[[float, str], None]], object],
        *,
        limit: Callable[[], int],
        budget: Callable[[], int],
        queued: Callable[[int, int], str],
    ) -> Job:
        """The job for `key`: the running one, one already done if the value was kept since
        the caller looked, or a new thread that waits for a place in the queue (its text is
        `queued(ahead, limit)` meanwhile), runs `work(report)`, and keeps the value under
        `budget()` bytes."""
        with self._lock:
            if key in self._jobs:
                return self._jobs[key]
            job = Job(key, self.grace(), self._clock)
            job.result = self.kept.get(key)
            if job.result is not None:
                job.done.set()
                return job
            self._jobs[key] = job
        threading.Thread(target=self._run, args=(job, work, limit, budget, queued),
                         name="qfitlatent-prediction", daemon=True).start()  # fmt: skip
        return job

    def _run(self, job: Job, work, limit, budget, queued) -> None:
        try:
            with self.queue.slot(limit, lambda ahead, n: job.report(0.0, queued(ahead, n))):
                value = work(job.report)
            nbytes = estimate_bytes(value)
            with self._lock:  # kept before the job goes: `find` sees one or the other
                self.kept.put(job.key, value, nbytes, budget())
                del self._jobs[job.key]
            job.result = value
        except BaseException as err:  # the page that follows it raises it (or nobody does)
            job.error = err
            with self._lock:
                self._jobs.pop(job.key, None)
        finally:
            job.done.set()

    @property
    def running(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def grace(self) -> float:
        """Seconds a job started now runs on with no page following it (0: no limit)."""
        return self._grace if self._grace is not None else server_config.load().abandoned_after_s
