"""A folder of structures as training data: feature cache, structure-level split, data report.

Each file is featurised once and cached under a key made from its bytes (an edited file is read
again) and FEATURE_VERSION (bump it when featurisation changes). Files that cannot be used are
skipped with their reason, and the reason is cached too.
"""

import hashlib
import json
import os
import re
from collections import Counter
from pathlib import Path

import torch

from . import residues
from .atomic import write_atomic
from .errors import StructureError
from .features import Features, load_features
from .loss import flex_labels
from .structure import SUFFIXES, structure_id

FEATURE_VERSION = 5
PDB_ID = re.compile(r"^[0-9][a-z0-9]{3}", re.IGNORECASE)

__all__ = [
    "FeatureCache",
    "data_report",
    "format_report",
    "list_structure_files",
    "load_dataset",
    "pdb_group",
    "refused_links",
    "choose_split",
    "split_names",
    "structure_id",
]


def default_cache_dir() -> Path:
    return Path(
        os.environ.get("QFITLATENT_CACHE", Path.home() / ".cache" / "qfitlatent" / "features")
    )


def list_structure_files(data_dir: str | Path) -> list[Path]:
    """Structure files directly in a folder (or the one file given), sorted by name; a link to
    a file outside the operator's allowed data folders is left out (see `refused_links`)."""
    return _discover(data_dir)[0]


def refused_links(data_dir: str | Path) -> list[str]:
    """Names of the structure files in `data_dir` that are links leading outside the operator's
    allowed data folders (server_config.data_roots), which training never opens: on a shared
    server a link such as x.pdb -> /etc/shadow would otherwise put that file's text into a
    visitor's train.log. Only folders under an allowed root are confined; elsewhere (no roots,
    or a folder of one's own on the command line) every link is followed as before."""
    return _discover(data_dir)[1]


def _discover(data_dir: str | Path) -> tuple[list[Path], list[str]]:
    data_dir = Path(data_dir)
    if data_dir.is_file():
        found = [data_dir]
    elif not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: no such folder")
    else:
        exts = tuple(SUFFIXES) + tuple(s + ".gz" for s in SUFFIXES)
        found = sorted(
            p for p in data_dir.iterdir() if p.is_file() and p.name.lower().endswith(exts)
        )
    roots = _confining_roots(data_dir)
    if not roots:
        return found, []
    inside = [p for p in found if _under(Path(os.path.realpath(p)), roots)]
    return inside, [p.name for p in found if p not in inside]


def _confining_roots(data_dir: Path) -> tuple[Path, ...]:
    """The allowed data roots when `data_dir` lies under one of them, else ()."""
    from .server_config import load

    roots = load().data_roots
    folder = Path(os.path.realpath(data_dir if data_dir.is_dir() else data_dir.parent))
    return roots if _under(folder, roots) else ()


def _under(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def pdb_group(name: str) -> str:
    """What must not straddle the split: the PDB id when the name starts with one."""
    m = PDB_ID.match(name)
    return m.group(0).lower() if m else name


def split_names(names: list[str], val_fraction: float = 0.1, seed: int = 0) -> dict[str, list[str]]:
    """Deterministic structure-level split: a PDB id goes to validation when its hash falls low.

    Each id decides alone, so adding files never moves existing ones between splits.
    """
    val = []
    train = []
    for name in sorted(names):
        h = hashlib.sha256(f"{seed}:{pdb_group(name)}".encode()).digest()
        (val if int.from_bytes(h[:8], "big") / 2**64 < val_fraction else train).append(name)
    return {"train": train, "val": val}


def choose_split(
    names: list[str], val_fraction: float, seed: int, ckpt_split: dict | None = None
) -> dict[str, list[str]]:
    """The split a training run uses: split_names, except that names the start checkpoint's
    split knows keep their side (fine-tuning on the same data must not validate on structures
    the start model trained on). The Train page states what a run will hold out from this too."""
    fresh = split_names(names, val_fraction, seed)
    if not ckpt_split:
        return fresh
    known_val, known_train = set(ckpt_split.get("val", [])), set(ckpt_split.get("train", []))
    val = [n for n in names if n in known_val or (n not in known_train and n in set(fresh["val"]))]
    return {"train": [n for n in names if n not in set(val)], "val": val}


class FeatureCache:
    """Features per file, keyed by content hash."""

    def __init__(self, cache_dir: str | Path | None = None):
        self.dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.dir.mkdir(parents=True, exist_ok=True)

    def key(self, path: str | Path) -> str:
        """The cache key of a file: its bytes and FEATURE_VERSION."""
        data = Path(path).read_bytes()
        return hashlib.sha256(data + f"v{FEATURE_VERSION}".encode()).hexdigest()[:32]

    def cached(self, key: str) -> bool:
        """Whether the file with this key has its features (or its reason to skip) cached."""
        return any((self.dir / f"{key}{ext}").exists() for ext in (".pt", ".err"))

    def load(self, path: str | Path, key: str | None = None) -> Features:
        """Features of one file; raises StructureError (cached too) when it cannot be used.

        `key` is the file's `key(path)` when the caller has it already, so a cached file is
        not read twice."""
        path = Path(path)
        key = key or self.key(path)
        ok, err = self.dir / f"{key}.pt", self.dir / f"{key}.err"
        if ok.exists():
            feats = Features.from_dict(torch.load(ok, weights_only=True))
            feats.name = structure_id(path)
            return feats
        if err.exists():
            raise StructureError(err.read_text())
        try:
            feats = load_features(path.read_bytes(), name=path.name)
        except StructureError as e:
            write_atomic(err, str(e))
            raise
        write_atomic(ok, lambda tmp: torch.save(feats.to_dict(), tmp))
        return feats


def _featurize_into_cache(args: tuple[str, str]) -> None:
    """Worker: featurise one file into the cache (errors are cached by FeatureCache.load)."""
    path, cache_dir = args
    torch.set_num_threads(1)
    try:
        FeatureCache(cache_dir).load(path)
    except StructureError:
        pass


def load_dataset(
    data_dir: str | Path,
    cache_dir: str | Path | None = None,
    names: list[str] | None = None,
    workers: int | None = None,
) -> tuple[list[Features], list[tuple[str, str]]]:
    """Features of every usable file in a folder (only `names` when given), and the skipped ones.

    Files not yet in the cache are featurised first by `workers` processes (default: one per
    core), so a thousand-structure set is read once in parallel; later calls only load tensors.
    Returns (features, skipped) where skipped holds (file name, reason) pairs.
    """
    cache = FeatureCache(cache_dir)
    wanted = set(names) if names is not None else None
    paths = [
        p for p in list_structure_files(data_dir) if wanted is None or structure_id(p) in wanted
    ]
    keys = [cache.key(p) for p in paths]
    missing = [p for p, k in zip(paths, keys, strict=True) if not cache.cached(k)]
    workers = workers or os.cpu_count() or 1
    if len(missing) > 1 and workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(missing))) as pool:
            jobs = [(str(p), str(cache.dir)) for p in missing]
            list(pool.map(_featurize_into_cache, jobs, chunksize=4))
    feats, skipped = [], []
    for path, key in zip(paths, keys, strict=True):
        try:
            feats.append(cache.load(path, key))
        except StructureError as err:
            skipped.append((path.name, str(err)))
    return feats, skipped


def data_report(data_dir: str | Path, cache_dir: str | Path | None = None) -> dict:
    """What a folder holds for training (issue 2 §5)."""
    feats, skipped = load_dataset(data_dir, cache_dir)
    per_aa: Counter = Counter()
    n_obs_hist: Counter = Counter()
    chi_per_slot = [0, 0, 0, 0]
    chi_values = 0
    residues_total = 0
    valid_total = 0
    with_altlocs = 0
    flex_labelled = flex_positive = 0
    resolutions = []  # Å, of the structures whose header gives one
    for f in feats:
        if f.n_res and float(f.resolution[0]) > 0:
            resolutions.append(float(f.resolution[0]))
        label, mask = flex_labels(f)
        with_altlocs += bool(mask.any())
        flex_labelled += int(mask.sum())
        flex_positive += int(label[mask].sum())
        residues_total += f.n_res
        has_chi = f.chi_mask.any(dim=(1, 2))
        for v in f.n_obs[has_chi].tolist():
            n_obs_hist[v] += 1
        valid = f.in_r
        valid_total += int(valid.sum())
        for t in f.aatype[valid].tolist():
            per_aa[residues.AA3[t] if t < 20 else "UNK"] += 1
        m = f.chi_mask[valid] & (f.occ[valid] > 0)[..., None]  # [R, A, D]
        chi_values += int(m.sum())
        for d in range(4):
            chi_per_slot[d] += int(m[..., d].any(1).sum())
    return {
        "data": str(Path(data_dir).name),
        "structures": len(feats),
        "skipped": [{"file": name, "reason": reason} for name, reason in skipped],
        "residues": residues_total,
        "valid_residues": valid_total,
        "structures_with_altlocs": with_altlocs,
        "flex_labelled_residues": flex_labelled,
        "flex_positive_residues": flex_positive,
        "structures_with_resolution": len(resolutions),
        "resolution_range": [min(resolutions), max(resolutions)] if resolutions else None,
        "valid_per_aa": dict(sorted(per_aa.items())),
        "n_obs_histogram": {str(k): n_obs_hist[k] for k in sorted(n_obs_hist)},
        "chi_values": chi_values,
        "valid_residues_per_chi": {f"chi{d + 1}": chi_per_slot[d] for d in range(4)},
    }


def format_report(r: dict) -> str:
    lines = [
        f"structures read     {r['structures']}",
        f"skipped             {len(r['skipped'])}",
        *[f"  {s['file']}: {s['reason']}" for s in r["skipped"]],
        f"protein residues    {r['residues']}",
        f"residues in R       {r['valid_residues']}   (>= 2 side-chain altlocs, >= 1 chi)",
        f"with altlocs        {r['structures_with_altlocs']} structures: their "
        f"{r['flex_labelled_residues']} residues with chi1 carry flexibility labels "
        f"({r['flex_positive_residues']} flexible)",
        f"with a resolution   {r['structures_with_resolution']} structures"
        + (" ({:.2f}-{:.2f} A)".format(*r["resolution_range"]) if r["resolution_range"] else ""),
        f"chi values in R     {r['chi_values']}   (altloc x chi observations)",
        "residues in R with  "
        + "  ".join(f"{k} {v}" for k, v in r["valid_residues_per_chi"].items()),
        "",
        "residues in R per amino acid",
        *[f"  {aa}  {n:6d}" for aa, n in r["valid_per_aa"].items()],
        "",
        "distinct side-chain conformers per residue with chi (n_obs)",
        *[f"  {k:>2}  {v:7d}" for k, v in r["n_obs_histogram"].items()],
    ]
    return "\n".join(lines)


def write_json(path: str | Path, obj) -> None:
    """Write JSON atomically (the split and other run files are read back by other processes)."""
    write_atomic(path, json.dumps(obj, indent=1))
