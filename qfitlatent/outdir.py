"""Where `qfitlatent predict` puts results: one folder per input inside --out, never overwritten.

The rule, in one place (docs/predict.md states it for users):
- a folder is named after its input's file name without the structure and compression
  extensions (`1abc.pdb.gz` -> `1abc`), with every character other than letters, digits, `.`,
  `_` and `-` replaced by `_`, leading dots and dashes removed (no hidden folder, no `..`), cut
  to 100 characters, and `structure` where nothing is left;
- inputs of one run that would share a name get `-2`, `-3`, ... in the order given (`x.cif`
  -> `x`, `x.pdb.gz` -> `x-2`), compared without case, so no two share a folder on any disk;
- a folder that already holds files is never replaced unless asked (`--overwrite`);
- a folder appears whole or not at all: its files are written into a hidden staging folder
  beside it, which is renamed into place once every file is on disk and removed on failure;
  one left by a killed run is removed when `--resume` comes to that structure.
"""

import glob
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from .errors import OutputError
from .structure import structure_id

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME = 100  # characters: far below every file system's 255, with room for "_samples.cif"
FAILURES_LOG = "predict-failures.log"  # in --out, written only when a structure failed


def folder_names(paths: Sequence[str | Path]) -> list[str]:
    """One distinct, safe folder name per input, in the order given (see the module rule)."""
    names, taken = [], {FAILURES_LOG}
    for path in paths:
        base = _UNSAFE.sub("_", structure_id(Path(path).name)).lstrip(".-")[:MAX_NAME]
        base = base or "structure"
        name, k = base, 1
        while name.lower() in taken:
            k += 1
            name = f"{base}-{k}"
        taken.add(name.lower())
        names.append(name)
    return names


def prepare(out: Path) -> None:
    """Create --out and prove it writable now, before any prediction is spent on it.

    Raises OutputError with one line naming the folder and the reason.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = _staging(out / "probe")
        probe.mkdir()
        probe.rmdir()
    except FileExistsError:
        raise OutputError(f"{out} exists and is not a folder; choose another --out") from None
    except OSError as err:
        raise OutputError(f"cannot write results into {out}: {_reason(err)}") from None


def holds_results(folder: Path) -> bool:
    """True when `folder` exists with anything in it: a name that is taken."""
    return folder.is_dir() and any(folder.iterdir())


def check_free(folder: Path, overwrite: bool = False) -> None:
    """Raise OutputError when `folder` already holds results and replacing them was not asked."""
    if not overwrite and (holds_results(folder) or folder.is_file()):
        raise OutputError(
            f"{folder} already holds results; pass --overwrite to replace them, or choose "
            "another --out"
        )


def write_folder(folder: Path, files: dict[str, bytes], overwrite: bool = False) -> dict[str, Path]:
    """Write {file name: bytes} as `folder`, whole or not at all; {file name: path}.

    Raises OutputError when `folder` already holds files (unless `overwrite`) or the disk
    refuses (read-only, full); nothing is left behind then, and an overwritten folder is only
    removed once its replacement is in place.
    """
    check_free(folder, overwrite)
    stage = _staging(folder)
    old = None
    try:
        stage.mkdir()
        for name, data in files.items():
            if Path(name).name != name or name in ("", ".", ".."):
                raise OutputError(f"refused to write {name!r}: not a plain file name")
            (stage / name).write_bytes(data)
        if holds_results(folder):
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            os.rename(folder, old)
        os.rename(stage, folder)  # replaces an empty folder; both sit in the same parent
    except OSError as err:
        if old is not None and not folder.exists():
            os.rename(old, folder)  # put the previous results back
            old = None
        raise OutputError(f"cannot write {folder}: {_reason(err)}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return {name: folder / name for name in files}


def remove_stale_staging(folder: Path) -> None:
    """Remove staging folders of `folder` that a killed run left (`.<name>.partial-<pid>`): on
    resume, where this process is the only writer of `folder`."""
    for stale in folder.parent.glob(f".{glob.escape(folder.name)}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _staging(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.partial-{os.getpid()}")


def _reason(err: OSError) -> str:
    """The OS's words (e.g. "Permission denied", "No space left on device"), not a traceback."""
    return err.strerror or str(err) or type(err).__name__
