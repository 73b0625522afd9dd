"""Which map in a folder belongs to which structure (`qfitlatent predict --maps DIR`).

A map belongs to a structure when its file name starts with the structure's id (its file name
without extensions, `structure.structure_id`: "3k0n" for 3k0n.pdb.gz) followed by the end of
the name's stem or a character that is not a letter or digit ("3k0n.mtz", "3k0n_data.mtz.gz",
not "3k0nb.mtz"), case ignored. An MTZ is preferred over a CCP4/MRC map (it can hold the
difference map too). None, or several of the preferred kind, is a MapError naming them.
"""

from pathlib import Path

from ..errors import MapError
from ..structure import structure_id
from .read import map_kind


def map_files(folder: Path) -> list[Path]:
    """The map files (by name: MTZ, CCP4, MRC, gzipped or not) directly in `folder`, sorted."""
    out = []
    for path in sorted(Path(folder).iterdir()):
        try:
            map_kind(path.name)
        except MapError:
            continue
        if path.is_file():
            out.append(path)
    return out


def belongs(map_name: str, sid: str) -> bool:
    """Whether a map file name starts with structure id `sid` at a word boundary."""
    low, sid = map_name.lower(), sid.lower()
    if not low.startswith(sid):
        return False
    rest = low[len(sid) :]
    return not rest[:1].isalnum()


def pair_map(structure: Path, maps: list[Path], folder: Path) -> Path:
    """The map of `structure` among `maps` (the files of `folder`); MapError where there is
    none or more than one of the preferred kind."""
    sid = structure_id(structure)
    mine = [m for m in maps if belongs(m.name, sid)]
    if not mine:
        raise MapError(f"no map in {folder} has a name starting with {sid!r} (e.g. {sid}.mtz)")
    mtz = [m for m in mine if map_kind(m.name) == "mtz"]
    chosen = mtz or mine
    if len(chosen) > 1:
        names = ", ".join(m.name for m in chosen)
        raise MapError(f"several maps in {folder} could be {sid!r}'s ({names}); keep one, or "
                       "give it with --map")  # fmt: skip
    return chosen[0]
