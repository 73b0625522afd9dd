"""One way to write a file that readers never see half-written: a temporary file beside it,
then `os.replace`. A crash, a kill -9 or a Stop leaves the old file or the new one, never a mix.
"""

import os
import threading
from collections.abc import Callable
from pathlib import Path


def temporary_path(path: Path) -> Path:
    """A hidden name beside `path`, unique per process and thread (so two writers never share
    one): `.<name>.<pid>-<thread>.tmp`, which `remove_stale_temporaries` recognises."""
    return path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")


def write_atomic(path, data: bytes | str | Callable[[Path], None]) -> Path:
    """Write `data` (bytes, text, or a function that writes to the path it is given, e.g. a
    torch.save) to `path` atomically. Returns `path`."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        elif isinstance(data, str):
            tmp.write_text(data)
        else:
            data(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def remove_stale_temporaries(folder, pattern: str = ".*.tmp") -> list[Path]:
    """Delete temporary files of `write_atomic` whose writer is gone (killed mid-write, e.g. by
    kill -9), which nothing else would ever remove. Returns them."""
    removed = []
    for tmp in Path(folder).glob(pattern):
        pid = tmp.name.rsplit(".", 2)[-2].split("-")[0]
        if not pid.isdigit() or int(pid) == os.getpid() or not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
