"""What the operator of a shared server decides: allowed data folders and the limits on uploads,
runs and prediction size. docs/deploy.md is the operator's guide to these.

Read from a TOML file named by `$QFITLATENT_SERVER_CONFIG` (keys as in `ServerConfig`), then
from environment variables, which win:

    QFITLATENT_DATA_ROOTS      folders visitors may train on, separated by ':' (default: none,
                               so "Folder on this server" is off)
    QFITLATENT_MAX_UPLOAD_MB   total uncompressed size of one run's uploads, zip members included
    QFITLATENT_MAX_FILE_MB     one uploaded structure file (as stored, .gz counts compressed)
    QFITLATENT_MAX_ZIP_MEMBERS entries in one uploaded zip
    QFITLATENT_MAX_STRUCTURES  structure files in one run
    QFITLATENT_MAX_RESIDUES    largest structure `predict` accepts (0: no cap)
    QFITLATENT_MAX_MB          one structure to read, uncompressed (checked before reading)
    QFITLATENT_MAX_KEPT_MB     the app's kept predictions, all together
    QFITLATENT_MAX_RUNNING_PREDICTIONS   predictions the app computes at once; others queue
    QFITLATENT_MAX_STAGED_MB_VISITOR, QFITLATENT_MAX_STAGED_MB_TOTAL  uploaded data kept by one
                               visitor's runs, and by all runs
    QFITLATENT_MAX_TRAIN_PARAMETERS   largest model the Train page launches
    QFITLATENT_MAX_RUN_SECONDS wall-clock budget of one Train-page run
    QFITLATENT_MAX_MAP_MB      largest density map `density.read_maps` accepts
    QFITLATENT_ABANDONED_AFTER_S   seconds an app prediction runs on with no page following
                               it (0: it always runs to its end)

Read afresh on every call (a few microseconds), so tests and operators can change it without a
restart and nothing is cached at import time.
"""

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

import tomllib

CONFIG_ENV = "QFITLATENT_SERVER_CONFIG"
ROOTS_ENV = "QFITLATENT_DATA_ROOTS"


@dataclass(frozen=True)
class ServerConfig:
    data_roots: tuple[Path, ...] = ()  # empty: training on server folders is off
    max_upload_mb: int = 1024
    max_file_mb: int = 100
    max_zip_members: int = 5000
    max_structures: int = 2000
    # predict refuses larger structures before featurizing; 0 (the default): no cap, as time and
    # memory grow linearly with residues (docs/benchmarks.md). A shared server may set one to
    # bound what one visitor's prediction takes.
    max_residues: int = 0
    # --- prediction limits (issue 21): what one structure and the app's predictions may use.
    # One structure file, uncompressed MB: its size on disk (a .gz streamed with this cap) is
    # checked before it is read, so a 1 GB file costs no memory to refuse. Was QFITLATENT_MAX_MB.
    # 64 (issue 20, no residue cap by default): 50,041 residues are 27.4 MB of mmCIF as gemmi
    # writes it, and a deposited file with hydrogens or every mmCIF column is up to twice that.
    # 10 MB stopped at about 18,000 residues. Peak memory: 4.6 GB at 50,041 residues.
    max_mb: int = 64
    # The app keeps finished predictions for reruns (every click) and other visitors; all of
    # them together stay under this many MB (estimated from their tensors, structures and
    # files). The newest is always kept, else each click on its page would predict it again.
    # One kept prediction of 5,868 residues holds 176 MB (benchmarks/bench_kept_prediction.py),
    # not "tens of MB", so 1024 keeps about six of the largest the residue cap allows.
    max_kept_mb: int = 1024
    # Predictions the app computes at once, for all visitors together; the rest wait in a
    # queue and their page says so. Each one uses a core and peaks near 1 GB at 5,000 residues.
    max_running_predictions: int = 2
    # --- Training runs (issue 21): what one visitor's page-launched runs may take from everyone.
    # Uploaded data every run of one visitor keeps, and all runs together (MB, unpacked; 0: no
    # cap). A failed run's uploads are removed; finished ones count until their run is deleted.
    max_staged_mb_visitor: int = 2048
    max_staged_mb_total: int = 10240
    # Largest model a page may launch: 20 M parameters need about 0.3 GB for weights, gradients
    # and AdamW moments (the shipped model has 0.59 M). 0: no cap.
    max_train_parameters: int = 20_000_000
    # Wall-clock seconds a page-launched run may hold the one-at-a-time lock; then it stops
    # cleanly (last.pt and best.pt kept). 0: no limit.
    max_run_seconds: int = 6 * 3600
    # --- density maps (issue 22) ---
    # Largest map `density.read_maps` accepts, in MB: the file as stored, a CCP4/MRC grid as
    # its header gives it, or the grid an MTZ's coefficients make at the chosen sampling. A 2 GB
    # cryo-EM map is refused before it is read; a 1.4 Å crystal map of 300 residues is ~10 MB.
    # Env: QFITLATENT_MAX_MAP_MB. 0: no cap.
    max_map_mb: int = 512
    # --- unfollowed predictions (issue 20) ---
    # Seconds the app's prediction runs on once no page follows it (its visitor left, or chose
    # another file or settings); then it stops at its next progress report (about every 1 % of
    # a long step) and gives its place and memory back. Long enough for a rerun of the page to
    # reach the prediction again: a rerun on a loaded 2-core machine takes a few seconds. 0:
    # never stop one (every started prediction runs to its end, even for nobody).
    # Env: QFITLATENT_ABANDONED_AFTER_S.
    abandoned_after_s: int = 30


class ServerConfigError(ValueError):
    """The operator's configuration is unusable; the message says which key and why."""


def _int(key: str, text) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ServerConfigError(
            f"server setting {key} must be a whole number, not {text!r}"
        ) from None
    if value < 0:
        raise ServerConfigError(f"server setting {key} must be 0 or more, not {value}")
    return value


def _roots(items) -> tuple[Path, ...]:
    if isinstance(items, str):
        items = [p for p in items.split(os.pathsep) if p.strip()]
    # Resolved once here, so a symlinked root compares equal to the real paths under it.
    return tuple(Path(os.path.realpath(Path(str(p).strip()).expanduser())) for p in items)


def load() -> ServerConfig:
    cfg = ServerConfig()
    names = {f.name for f in fields(ServerConfig)}
    path = os.environ.get(CONFIG_ENV)
    if path:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ServerConfigError(f"cannot read the server config {path}: {err}") from None
        unknown = set(data) - names
        if unknown:
            raise ServerConfigError(
                f"server config {path} has unknown keys {sorted(unknown)}; known: {sorted(names)}"
            )
        cfg = replace(
            cfg,
            **{k: _roots(v) if k == "data_roots" else _int(k, v) for k, v in data.items()},
        )
    if os.environ.get(ROOTS_ENV) is not None:
        cfg = replace(cfg, data_roots=_roots(os.environ[ROOTS_ENV]))
    for f in fields(ServerConfig):
        env = f"QFITLATENT_{f.name.upper()}"
        if f.name != "data_roots" and os.environ.get(env):
            cfg = replace(cfg, **{f.name: _int(env, os.environ[env])})
    for key in AT_LEAST_ONE:
        if getattr(cfg, key) < 1:
            raise ServerConfigError(f"server setting {key} must be 1 or more (0 would refuse all)")
    return cfg


AT_LEAST_ONE = ("max_mb", "max_running_predictions")  # where 0 would stop every prediction


def check_prediction_size(parsed) -> None:
    """Refuse a structure above the operator's residue cap before any tensor is built.

    Raises StructureError (the error every caller already shows to the user) with the count
    and the cap, so a visitor knows it is this server's limit and not a broken file.
    """
    from .errors import StructureError

    cap, n = load().max_residues, len(parsed.residues)
    if cap and n > cap:
        raise StructureError(
            f"{parsed.name} has {n:,} residues; this server predicts structures of at most "
            f"{cap:,} to bound memory and time. Predict one chain "
            "or a few at a time, or, with memory to spare, raise the cap with "
            "QFITLATENT_MAX_RESIDUES (0: none)."
        )
