"""Uploaded training structures onto disk, within the operator's limits (server_config).

A visitor's upload is files and zips of files. Every limit is checked before the bytes it
governs are written where possible (zip headers give each member's size, and CPython's zipfile
never returns more than the declared size), and again while writing, so a 1 GB zip bomb is
refused after reading its directory, not after filling the disk. Member names lose every path
component (zip-slip), and only plain structure file names are kept. The caller removes the
destination folder when this raises: nothing half-staged stays behind.
"""

import io
import re
import zipfile
import zlib
from pathlib import Path

from .server_config import ServerConfig
from .structure import SUFFIXES

# Letters, digits, '.', '_', '-', starting with a letter or digit: never hidden, never a path.
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_CHUNK = 2**20


class UploadError(ValueError):
    """An upload that breaks a limit or cannot be read; the message is safe to show a visitor."""


def structure_name(member: str) -> str | None:
    """The base name to store a member under, or None when it is not a structure file name."""
    base = Path(str(member).replace("\\", "/")).name
    stem = base[:-3] if base.lower().endswith(".gz") else base
    if not stem.lower().endswith(SUFFIXES) or not _FILE_NAME.fullmatch(base):
        return None
    return base


class _Stager:
    def __init__(self, dest: Path, limits: ServerConfig, staged: tuple[int, int] = (0, 0)):
        self.dest, self.limits = dest, limits
        self.total = 0  # bytes written so far, all files together
        self.names: set[str] = set()
        # The tightest of the per-run, per-visitor and whole-server limits, and why it binds.
        mine, everyone = staged
        caps = [(limits.max_upload_mb * 2**20, "this server's limit per run")]
        if limits.max_staged_mb_visitor:
            caps.append((
                limits.max_staged_mb_visitor * 2**20 - mine,
                f"your runs keep {self._mb(mine)} of uploads already and this server keeps at "
                f"most {limits.max_staged_mb_visitor} MB per visitor; delete runs you no longer "
                "need",
            ))  # fmt: skip
        if limits.max_staged_mb_total:
            caps.append((
                limits.max_staged_mb_total * 2**20 - everyone,
                f"this server's space for uploaded training data ({limits.max_staged_mb_total} "
                "MB, all visitors together) is nearly full; try later or ask an operator",
            ))  # fmt: skip
        self.room, self.why = min(caps, key=lambda c: c[0])
        self.room = max(self.room, 0)

    def _mb(self, n: int) -> str:
        return f"{n / 2**20:.0f} MB"

    def check(self, origin: str, name: str, size: int) -> None:
        lim = self.limits
        if name in self.names:
            raise UploadError(f"two uploaded files are called {name} ({origin}); rename one")
        if len(self.names) + 1 > lim.max_structures:
            raise UploadError(
                f"more than {lim.max_structures} structure files in one run; this server's limit"
            )
        if size > lim.max_file_mb * 2**20:
            raise UploadError(
                f"{origin} is {self._mb(size)}; one file may be at most {lim.max_file_mb} MB"
            )
        if self.total + size > self.room:
            raise UploadError(
                f"the upload unpacks to more than {self._mb(self.room)} (at {origin}); {self.why}"
            )

    def write(self, origin: str, name: str, chunks) -> None:
        """Stream chunks into dest/name, counting again in case a size was declared wrongly."""
        self.names.add(name)
        written = 0
        with open(self.dest / name, "wb") as out:
            for chunk in chunks:
                written += len(chunk)
                if written > self.limits.max_file_mb * 2**20 or self.total + written > self.room:
                    raise UploadError(f"{origin} is larger than it claims; upload refused")
                out.write(chunk)
        self.total += written

    def add_zip(self, zip_name: str, data: bytes) -> None:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                infos = zf.infolist()
                if len(infos) > self.limits.max_zip_members:
                    raise UploadError(
                        f"{zip_name} holds {len(infos)} entries; at most "
                        f"{self.limits.max_zip_members} are allowed"
                    )
                wanted = []
                for info in infos:
                    name = None if info.is_dir() else structure_name(info.filename)
                    if name is not None:
                        wanted.append((info, name))
                # Every declared size first: a bomb is refused before anything is unpacked.
                declared = sum(info.file_size for info, _ in wanted)
                if self.total + declared > self.room:
                    raise UploadError(
                        f"{zip_name} unpacks to {self._mb(declared)}; this server accepts at "
                        f"most {self._mb(self.room)}: {self.why}"
                    )
                for info, name in wanted:
                    origin = f"{zip_name}: {name}"
                    self.check(origin, name, info.file_size)
                    with zf.open(info) as src:
                        self.write(origin, name, iter(lambda s=src: s.read(_CHUNK), b""))
        except UploadError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
                ValueError, OverflowError) as err:  # fmt: skip
            # RuntimeError: encrypted members; NotImplementedError: unknown compression.
            raise UploadError(f"{zip_name} is not a readable zip file ({err})") from None


def stage_uploads(
    dest: Path,
    files: list[tuple[str, bytes]],
    limits: ServerConfig,
    staged: tuple[int, int] = (0, 0),
) -> int:
    """Write uploaded structures, and the structures inside uploaded .zip files, into `dest`.

    Only base names with a structure suffix (optionally .gz) are kept, so a zip member like
    `../../etc/x.pdb` lands as `dest/x.pdb`. Returns how many files were written; raises
    UploadError for anything over a limit or unreadable. `staged` is (bytes this visitor's runs
    keep, bytes all runs keep) already, counted against the per-visitor and total limits.
    """
    dest.mkdir(parents=True, exist_ok=True)
    stager = _Stager(dest, limits, staged)
    for name, data in files:
        if str(name).lower().endswith(".zip"):
            stager.add_zip(Path(name).name, data)
        elif (base := structure_name(name)) is not None:
            stager.check(base, base, len(data))
            stager.write(base, base, [data])
    return len(stager.names)
