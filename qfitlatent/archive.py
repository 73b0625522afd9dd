"""Whole archives through `qfitlatent predict`: list files, resume, shards, progress, one table.

- The folders are the truth: a structure is finished when its OUT/<name>/ holds files (outdir
  writes a folder whole or not at all), and `--resume` skips it. The table is their union, built
  from each finished folder's residues.csv and mixture.json, so a resumed run's table covers the
  structures of every earlier attempt and equals what single-file `predict` wrote.
- Ranks: under torchrun (RANK and WORLD_SIZE in the environment) rank r predicts positions
  r, r + world, r + 2·world, … of the run's file list, after the folder names were given to the
  whole list, so every rank and every re-run names a structure's folder the same way. The ranks
  meet at a gloo barrier (CPU, also on GPU machines) before the table is merged and before any
  exits, because torchrun stops every rank as soon as one exits with an error.
- Packing: consecutive structures of a rank's shard share one forward pass of the network, up to
  a residue budget (`packed`, --batch-residues); reading, sampling and writing stay per structure.
"""

import csv
import datetime
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import OutputError

N_CHI = 4
# One row per residue with at least one χ (the rows of residues.csv). chi<k>_mode: χk of the
# heaviest mixture component in degrees (mixture.mode, the one "most likely" conformer), NaN past
# the residue's n_chi. n_conformers: side-chain conformers multiconformer.pdb holds for it.
TABLE_COLUMNS = (
    "structure",  # OUT/<name>: unique within the run
    "source",  # the input's file name
    "chain",
    "resnum",
    "icode",
    "resname",
    "n_chi",
    "flexibility",
    "p_flexible",
    "entropy",
    *(f"chi{k}_mode" for k in range(1, N_CHI + 1)),
    "n_conformers",
)
# --batch-residues by device type: how many residues of consecutive structures share one forward
# pass (model/packing.py). Chosen by benchmarks/bench_archive.py (docs/benchmarks.md, "Archive
# throughput"); the GPU value is not yet measured on a GPU (none was available).
BATCH_RESIDUES = {"cpu": 0, "cuda": 4096}
STRUCTURES_PER_ROW_GROUP = 256  # bounds a rank's memory while it writes its part
BARRIER_TIMEOUT = datetime.timedelta(days=7)  # ranks wait for the slowest shard, however long


@dataclass(frozen=True)
class Ranks:
    """This process's place in a torchrun launch; (0, 1, 0) without one."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def prefix(self) -> str:
        return f"rank {self.rank}/{self.world}: " if self.world > 1 else ""


def ranks_from_env(env=os.environ) -> Ranks:
    """RANK, WORLD_SIZE and LOCAL_RANK as torchrun sets them; a single process without them."""
    try:
        ranks = Ranks(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)),
                      int(env.get("LOCAL_RANK", 0)))  # fmt: skip
    except ValueError:
        raise OutputError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers") from None
    if not 0 <= ranks.rank < ranks.world:
        raise OutputError(f"RANK {ranks.rank} is outside WORLD_SIZE {ranks.world}")
    return ranks


def shard(items: Sequence, ranks: Ranks) -> list:
    """This rank's share of the run's list: every world-th item from position rank."""
    return list(items[ranks.rank :: ranks.world])


def packed(items: Iterable[tuple[object, int]], budget: int) -> Iterator[list]:
    """(item, residues) pairs as lists of consecutive items of at most `budget` residues in all,
    in order; an item larger than `budget` alone, and every item alone where `budget` is 0."""
    batch, total = [], 0
    for item, n in items:
        if batch and total + n > budget:
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += n
    if batch:
        yield batch


def read_list(path: Path) -> list[Path]:
    """The structure paths of a list file, one per line; blank lines and lines starting with #
    are left out, and relative paths are read from the list file's folder (so a list written
    beside the data works from anywhere)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as err:
        raise OutputError(f"cannot read the list file {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise OutputError(f"{path} is not a text file of paths, one per line") from None
    here = Path(path).parent
    return [
        here / line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")
    ]


class Progress:
    """Plain progress lines on stderr (a log file, not a terminal, is what an archive run
    writes to): done/total, rate in structures per minute, and the time left at that rate.
    A line after the first structure, then at most every `every_s` seconds, and `finish`'s."""

    def __init__(self, total: int, prefix: str = "", every_s: float = 10.0, stream=None):
        self.total, self.prefix, self.every_s = total, prefix, every_s
        self.stream = stream or sys.stderr
        self.done = self.skipped = self.failed = 0
        self.start = self.last = time.monotonic()

    def skip(self) -> None:
        """A structure finished by an earlier run: counted, but not in the rate."""
        self.skipped += 1

    def step(self, ok: bool) -> None:
        self.done += 1
        self.failed += not ok
        now = time.monotonic()
        if (self.done == 1 or now - self.last >= self.every_s) and not self.finished:
            self.last = now
            print(self.line(now), file=self.stream, flush=True)

    def finish(self) -> None:
        print(self.line(), file=self.stream, flush=True)

    @property
    def finished(self) -> bool:
        return self.skipped + self.done >= self.total

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self.start, 1e-9)
        rate = self.done / elapsed * 60  # structures per minute
        left = self.total - self.skipped - self.done
        if self.finished:
            eta = f"done in {_duration(elapsed)}"
        else:
            eta = f"ETA {_duration(left / rate * 60)}" if rate > 0 else "ETA unknown"
        notes = [f"{self.skipped} done before"] * bool(self.skipped)
        notes += [f"{self.failed} failed"] * bool(self.failed)
        extra = f" ({', '.join(notes)})" if notes else ""
        return (f"{self.prefix}{self.skipped + self.done}/{self.total} structures{extra}, "
                f"{rate:.1f} per minute, {eta}")  # fmt: skip


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds // 3600} h {round(seconds % 3600 / 60)} min"


def structure_rows(folder: Path) -> list[dict]:
    """The table's rows of one finished folder, in the structure's residue order: residues.csv's
    values (as predict rounded them) with the χ modes from mixture.json."""
    name = folder.name
    doc = json.loads((folder / f"{name}_mixture.json").read_text())
    with open(folder / f"{name}_residues.csv", newline="") as f:
        ranked = {(r["chain"], int(r["resnum"]), r["icode"]): r for r in csv.DictReader(f)}
    rows = []
    for res in doc["residues"]:
        r = ranked[(res["chain"], int(res["resnum"]), res["icode"])]
        weights = res["weights"]
        top = res["mu"][max(range(len(weights)), key=weights.__getitem__)]  # ties: the first
        n_chi = int(r["n_chi"])
        modes = {f"chi{k + 1}_mode": _degrees(top[k]) if k < n_chi else math.nan
                 for k in range(N_CHI)}  # fmt: skip
        rows.append({
            "structure": name, "source": doc["structure"], "chain": r["chain"],
            "resnum": int(r["resnum"]), "icode": r["icode"], "resname": r["resname"],
            "n_chi": n_chi, "flexibility": _number(r["flexibility"]),
            "p_flexible": _number(r["p_flexible"]), "entropy": _number(r["entropy"]), **modes,
            "n_conformers": int(r["n_conformers"]),
        })  # fmt: skip
    return rows


def _number(text: str) -> float:
    return float(text) if text != "" else math.nan  # blank: weights without that output


def _degrees(radians: float) -> float:
    """(-180, 180] degrees."""
    d = math.degrees(radians) % 360.0
    return d - 360.0 if d > 180.0 else d


def _schema():
    import pyarrow as pa

    kinds = {"resnum": pa.int64(), "n_chi": pa.int64(), "n_conformers": pa.int64()}
    for text in ("structure", "source", "chain", "icode", "resname"):
        kinds[text] = pa.string()
    return pa.schema([(c, kinds.get(c, pa.float64())) for c in TABLE_COLUMNS])


def write_part(folders: Iterable[tuple[int, Path]], path: Path) -> int:
    """The rows of every finished folder of (position in the run's list, folder) into the Parquet
    file `path`, with a `position` column for the merge; the number of structures it holds."""
    import pyarrow as pa

    schema = _schema().append(pa.field("position", pa.int64()))
    try:
        return _write_rows(folders, path, schema)
    except BaseException:
        path.unlink(missing_ok=True)  # no half part beside the table
        raise


def _write_rows(folders, path: Path, schema) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, batch = 0, []
    with pq.ParquetWriter(path, schema) as writer:
        for position, folder in folders:
            if not _finished(folder):
                continue  # failed or never reached: it has no rows yet
            try:
                rows = structure_rows(folder)
            except (OSError, ValueError, KeyError) as err:  # a folder changed after predict
                raise OutputError(
                    f"{folder} cannot be read into the table ({type(err).__name__}: {err}); "
                    "remove that folder and re-run with --resume"
                ) from None
            batch += [{**row, "position": position} for row in rows]
            n += 1
            if n % STRUCTURES_PER_ROW_GROUP == 0:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch = []
        writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    return n


def _finished(folder: Path) -> bool:
    return (folder / f"{folder.name}_mixture.json").is_file()


def merge(parts: Sequence[Path], table: Path) -> int:
    """The parts as one table in the run's list order, written whole (a temporary file renamed
    into place); the parts are removed. The number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    whole = pa.concat_tables([pq.read_table(p) for p in parts])
    whole = whole.sort_by([("position", "ascending")]).drop_columns(["position"])
    stage = table.with_name(f".{table.name}.partial-{os.getpid()}")
    try:
        pq.write_table(whole, stage)
        os.replace(stage, table)
    except OSError as err:
        stage.unlink(missing_ok=True)
        raise OutputError(f"cannot write the table {table}: {err.strerror}") from None
    for p in parts:
        p.unlink(missing_ok=True)
    return whole.num_rows


def part_path(table: Path, ranks: Ranks) -> Path:
    """Where a rank writes its share of the table: hidden, beside the table."""
    return table.with_name(f".{table.name}.part-{ranks.rank}-of-{ranks.world}")


def read_table(path: Path):
    """The run's table as a pandas DataFrame (for tests and notebooks)."""
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pandas()


class Group:
    """The ranks of a torchrun launch (a no-op for one process): a barrier and a sum."""

    def __init__(self, ranks: Ranks):
        self.ranks = ranks
        if ranks.world > 1:
            import torch.distributed as dist

            dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)

    def barrier(self) -> None:
        if self.ranks.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def total(self, value: int) -> int:
        """`value` summed over every rank."""
        if self.ranks.world == 1:
            return value
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.int64)
        dist.all_reduce(t)
        return int(t.item())

    def close(self) -> None:
        if self.ranks.world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
