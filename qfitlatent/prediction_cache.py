"""The app's predictions on a shared server: the kept ones bounded by bytes, the running ones by
count (both operator settings, server_config `max_kept_mb` and `max_running_predictions`).

No streamlit here: ui.py holds one `KeptResults` and one `PredictionQueue` per server process
and says what a waiting visitor sees. `estimate_bytes` walks every object a prediction holds:
0.5–1 s of CPU for 5,868 residues, once, after a prediction of about 30 s.
"""

import sys
import threading
import types
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from contextlib import contextmanager

import gemmi
import numpy as np
import torch

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
