"""Fine-tuning runs on disk, so the web app can launch, watch, stop and list them.

A run is a folder `<runs>/<name>/` holding `job.json` (pid, status, the exact train command),
`train.log` (the trainer's stdout and stderr) and whatever the trainer writes (`metrics.jsonl`,
`last.pt`, `best.pt`). All state lives on disk, so a page reload, a second visitor or a server
restart sees the same runs.

The training process is started as `python -m qfitlatent.train.jobs <run_dir>`: a small
supervisor in its own session (process group) that runs the `qfitlatent train` command from
job.json, waits for it and records how it ended. Without it the exit status of a run is lost
whenever the server that launched it restarts. Stopping sends SIGTERM to the whole group; the
trainer saves last.pt.

One run at a time per runs folder: `<runs>/.lock` holds the supervisor's pid (in a record that
appears whole, see the lock section) and counts as free when that process is gone, so a crashed
(even SIGKILLed) run never leaves it stuck.
"""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..atomic import write_atomic
from ..config import PRESETS
from . import runlog

# This module is also the supervisor process (`python -m qfitlatent.train.jobs RUN_DIR`): it must
# start in a fraction of a second, before a Stop can arrive, so nothing it imports may import
# torch. A supervisor still importing when Stop came was judged gone, its run deleted, and its
# lock held until it failed seconds later.

RUNS_ENV = "QFITLATENT_RUNS"
LOCK_NAME = ".lock"
STOP_FILE = "stop-requested"  # in a run folder: its owner or an operator asked it to stop
# A run name becomes a folder name: letters, digits, '.', '_', '-', starting with a letter or
# digit, so it can never be '..', absolute, hidden or contain a path separator.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def runs_root() -> Path:
    """`$QFITLATENT_RUNS`, else `runs/` under the working directory."""
    return Path(os.environ.get(RUNS_ENV) or Path.cwd() / "runs")


def clean_name(text: str) -> str:
    """A safe run name from user text: spaces become '-', anything else odd is refused."""
    name = re.sub(r"\s+", "-", str(text).strip())
    if not _NAME.fullmatch(name) or ".." in name:
        raise ValueError(
            f"run name {text!r} is not allowed: use 1–64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def default_name(
    data: str, start: str, epochs: int, when: float | None = None, root: Path | None = None
) -> str:
    """A run name that says what the run is: its data, what it starts from, its epochs and when,
    e.g. `sample-qfitlatent-v3-5ep-20261202-1430`. Odd characters in the parts become '-'; a
    name taken under `root` gets a counter, so the name is new there."""
    stamp = time.strftime("%Y%m%d-%H%M", time.localtime(when))
    base = f"{_name_part(data)}-{_name_part(start)}-{int(epochs)}ep-{stamp}"
    name, n = base, 1
    while root is not None and (Path(root) / name).exists():
        n += 1
        name = f"{base}-{n}"
    return clean_name(name)


def _name_part(text: str, limit: int = 18) -> str:
    """`text` as a piece of a run name: runs of anything but letters, digits, '.', '_' become
    one '-', dots never two in a row, at most `limit` characters."""
    part = re.sub(r"(?:[^A-Za-z0-9._]|\.\.+)+", "-", str(text))
    return part.strip("-._")[:limit].strip("-._") or "run"


# Supervisors started by this process, so they are reaped when they end (no zombie holds the lock).
_CHILDREN: dict[int, subprocess.Popen] = {}


# --- process liveness --------------------------------------------------------------------------


def start_time(pid: int | None) -> int | None:
    """When process `pid` started (clock ticks since boot: /proc/<pid>/stat field 22), or None
    when there is no such process or no /proc. A pid is reused once its process ends; the pair
    (pid, start time) names one process for good, so locks and stops record both."""
    if not pid or pid <= 0:
        return None
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def pid_alive(pid: int | None, start: int | None = None) -> bool:
    """True while process `pid` runs, and (when `start` is given) is still the process that
    started at `start`, not a later one that was given the same pid. Reaps it first if it is our
    exited child (a zombie still answers `kill(pid, 0)`), and treats other zombies as gone."""
    if not pid or pid <= 0:
        return False
    if pid in _CHILDREN:  # launched by this process: poll() reaps it and keeps Popen content
        if _CHILDREN[pid].poll() is None:
            return start is None or start_time(pid) in (None, start)
        del _CHILDREN[pid]
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child: another server started it, or it was reaped already
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else: /proc still tells whether it is the same one
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(pid, 0) is all we have
    if stat[0] == "Z":
        return False
    return start is None or int(stat[19]) == start


def _die_with_parent():
    """A preexec_fn for the trainer: the kernel sends it SIGTERM when its supervisor dies
    (Linux PR_SET_PDEATHSIG), so a killed supervisor never leaves a trainer running unwatched;
    SIGTERM lets the trainer save last.pt first. None where prctl is not available."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec():  # runs in the child between fork and exec: no imports, no allocation
        prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the supervisor died before the line above
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


# --- the lock ----------------------------------------------------------------------------------
# `.lock` holds one complete JSON record {"pid", "start", "token", "time"} and, once the
# supervisor has started it, {"trainer", "trainer_start"}: the lock is held while either process
# lives, each named by pid and start time (a reused pid frees it). It is written to a temporary
# file first and then hard-linked into place, so it appears with its content or not at all and a
# reader never sees an empty lock. Breaking a stale lock (its process is gone) and taking it
# happen under an flock on `.lock.guard`, so two launchers can never both judge the same lock
# stale and each take it: the old create-then-write lock let 3 of 4 races start two trainers.

LOCK_GUARD = ".lock.guard"


def _read_lock(path: Path) -> dict | None:
    """The lock's record, or None when there is no lock. A lock that is there but holds no
    complete record (written by hand, or a disk error) counts as held: never guess it stale."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {"pid": None}
    try:
        rec = json.loads(text)
        pid = int(rec["pid"])
        ids = {k: _opt_int(rec.get(k)) for k in ("start", "trainer", "trainer_start")}
    except (ValueError, TypeError, KeyError, AttributeError):
        return {"pid": None}
    return {**rec, **ids, "pid": pid}


def _opt_int(value) -> int | None:
    return None if value is None else int(value)


def _holder_alive(rec: dict) -> bool:
    """Whether the supervisor or the trainer of a lock record still runs (pid and start time)."""
    return pid_alive(rec["pid"], rec.get("start")) or pid_alive(
        rec.get("trainer"), rec.get("trainer_start")
    )


def lock_holder(root: Path | None = None) -> int | None:
    """pid holding the runs lock (the supervisor's, which is the run's process group), or None
    when it is free: missing, or its supervisor and trainer are both gone.

    A lock without a complete record reports -1: held by someone we cannot name.
    """
    rec = _read_lock((root or runs_root()) / LOCK_NAME)
    if rec is None:
        return None
    if rec["pid"] is None:
        return -1
    return rec["pid"] if _holder_alive(rec) else None


class _Guard:
    """Exclusive flock on `<root>/.lock.guard` for the few lines that change `.lock`; the kernel
    drops it if the holder dies, so it can never be left stuck."""

    def __init__(self, root: Path):
        self.path = root / LOCK_GUARD

    def __enter__(self):
        import fcntl

        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # closing drops the flock


def _lock_record(pid: int, trainer: int | None = None) -> str:
    import secrets

    rec = {"pid": int(pid), "start": start_time(pid), "token": secrets.token_hex(8)}
    if trainer:
        rec.update(trainer=int(trainer), trainer_start=start_time(trainer))
    return json.dumps({**rec, "time": time.time()})


def _place(root: Path, record: str, *, replace: bool) -> None:
    """Put `record` at `.lock` atomically: link (fails if a lock exists) or replace."""
    tmp = root / f"{LOCK_NAME}.{os.getpid()}.{threading.get_ident()}.tmp"
    tmp.write_text(record)
    try:
        if replace:
            os.replace(tmp, root / LOCK_NAME)
        else:
            os.link(tmp, root / LOCK_NAME)
    finally:
        tmp.unlink(missing_ok=True)


def _acquire_lock(root: Path, pid: int) -> None:
    """Take the runs lock for `pid`, or raise RuntimeError while a live process holds it."""
    path = root / LOCK_NAME
    with _Guard(root):
        rec = _read_lock(path)
        if rec is not None:
            if rec["pid"] is None:
                raise RuntimeError(
                    f"the training lock {LOCK_NAME} in the runs folder is unreadable; "
                    "an operator should check it"
                )
            if _holder_alive(rec):
                raise RuntimeError(f"a training run is already going (pid {rec['pid']})")
            path.unlink()  # stale: its process is gone, judged from a complete record
        _place(root, _lock_record(pid), replace=False)


def _set_lock(root: Path, pid: int) -> None:
    """Hand the lock we hold to `pid` (the supervisor), in one atomic replace."""
    with _Guard(root):
        _place(root, _lock_record(pid), replace=True)


def _add_trainer(root: Path, pid: int, trainer: int) -> None:
    """Record the trainer in the lock that supervisor `pid` holds: the lock then stays held
    until the trainer is gone too, even if the supervisor is killed first."""
    with _Guard(root):
        rec = _read_lock(root / LOCK_NAME)
        if rec is not None and rec["pid"] == pid:
            _place(root, _lock_record(pid, trainer), replace=True)


def _release_lock(root: Path, pid: int) -> None:
    path = root / LOCK_NAME
    with _Guard(root):
        rec = _read_lock(path)
        if rec is not None and rec["pid"] == pid:
            path.unlink(missing_ok=True)


# --- jobs --------------------------------------------------------------------------------------


@dataclass
class Job:
    """What job.json holds. `status`: running, finished, stopped, failed."""

    name: str
    dir: str
    command: list[str]  # the `qfitlatent train` argument list, run without a shell
    settings: dict = field(default_factory=dict)  # RunSettings.record(), for display
    status: str = "starting"
    pid: int | None = None  # the supervisor; also the process-group id
    pid_start: int | None = None  # its start time (start_time): with pid, names it for good
    trainer_pid: int | None = None  # the `qfitlatent train` process the supervisor started
    trainer_start: int | None = None
    returncode: int | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None
    stop_requested: bool = False
    message: str = ""
    # sha256 of the launching browser session's token (never the token itself); "" for runs
    # started outside the app. Only that session, or an operator, may stop or delete the run.
    owner: str = ""
    # Whether the run's best.pt is a model choice for every visitor. Runs on uploaded or server
    # data start private to their owner; `qfitlatent runs publish` makes them public.
    public: bool = False
    # The operator's wall-clock budget for this run in seconds (max_run_seconds), None: none.
    # The supervisor stops the run cleanly when it is spent, as a Stop would.
    time_limit: float | None = None

    @property
    def path(self) -> Path:
        return Path(self.dir)

    @property
    def log_path(self) -> Path:
        return self.path / "train.log"

    @property
    def metrics_path(self) -> Path:
        return self.path / runlog.FILE_NAME

    @property
    def best_path(self) -> Path:
        return self.path / "best.pt"

    @property
    def active(self) -> bool:
        return self.status in ("starting", "running")

    @property
    def alive(self) -> bool:
        """Whether its supervisor or its trainer still runs (each by pid and start time)."""
        return pid_alive(self.pid, self.pid_start) or pid_alive(
            self.trainer_pid, self.trainer_start
        )

    def save(self) -> None:
        write_atomic(self.path / "job.json", json.dumps(asdict(self), indent=1))


def load_job(run_dir: Path) -> Job:
    """Read job.json and settle a status the supervisor could not write (it was killed)."""
    data = json.loads((Path(run_dir) / "job.json").read_text())
    job = _job_from(data)
    # Between launch and the supervisor's first write the pid is not known yet: give it a
    # minute, even when a stop was asked for (the supervisor honours it when it starts).
    settle = job.pid or time.time() - job.started > 60
    if job.active and settle and not job.alive:
        job = _job_from(json.loads((Path(run_dir) / "job.json").read_text()))  # may just have ended
        if job.active and not job.alive:
            job.status = "stopped" if job.stop_requested else "failed"
            job.message = job.message or "the training process disappeared (killed or crashed)"
            if (job.path / "last.pt").is_file() and job.status == "failed":
                job.message += "; its last.pt is kept"
            job.ended = job.ended or time.time()
            job.save()
            if job.status == "failed":
                _drop_staged(job)
    return job


def _drop_staged(job: Job) -> None:
    """Remove a failed run's uploaded data: nobody can train on it again, and left there every
    failed upload would fill the disk (the rest of the folder stays for its log)."""
    staged = job.path / "data"
    if job.settings.get("data") and Path(job.settings["data"]).resolve() == staged.resolve():
        shutil.rmtree(staged, ignore_errors=True)


def _job_from(data: dict) -> Job:
    job = Job(**{k: v for k, v in data.items() if k in Job.__dataclass_fields__})
    try:
        marker = (job.path / STOP_FILE).read_text().strip()
    except FileNotFoundError:
        return job
    job.stop_requested = True
    # The launcher knew the supervisor's pid (and start time) before the supervisor wrote them,
    # and stop() kept them: "PID START".
    if not job.pid:
        known = [int(x) for x in marker.split() if x.isdigit()]
        job.pid = known[0] if known else None
        job.pid_start = known[1] if len(known) > 1 else None
    return job


def list_jobs(root: Path | None = None) -> list[Job]:
    """Every run under the runs folder, newest first; unreadable folders are skipped."""
    root = root or runs_root()
    jobs = []
    for d in root.glob("*/job.json") if root.is_dir() else ():
        if d.parent.name.startswith("."):
            continue  # a run being deleted
        try:
            jobs.append(load_job(d.parent))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(jobs, key=lambda j: j.started, reverse=True)


def active_job(root: Path | None = None) -> Job | None:
    return next((j for j in list_jobs(root) if j.active), None)


def finished_checkpoints(root: Path | None = None, token: str | None = None) -> dict[str, Path]:
    """{run name: best.pt} for runs that ended (finished or stopped) with a best checkpoint and
    that this visitor may use: public ones, and their own (session `token`)."""
    return {
        j.name: j.best_path
        for j in list_jobs(root)
        if j.status in ("finished", "stopped")
        and j.best_path.is_file()
        and (j.public or is_owner(j, token))
    }


# --- ownership ---------------------------------------------------------------------------------


def owner_id(token: str | None) -> str:
    """What job.json stores for a session token: its sha256, so reading the file is no key."""
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest() if token else ""


def is_owner(job: Job, token: str | None) -> bool:
    import hmac

    return bool(job.owner) and bool(token) and hmac.compare_digest(job.owner, owner_id(token))


def _check_control(job: Job, token: str | None, operator: bool, action: str) -> None:
    if not (operator or is_owner(job, token)):
        raise PermissionError(
            f"only the session that started run {job.name!r} can {action} it "
            "(or an operator, with `qfitlatent runs`)"
        )


@dataclass(frozen=True)
class RunSettings:
    """What a run trains on and how: `launch` builds it, `train_command` turns it into the
    trainer's argument list, and job.json keeps its `record()` for display."""

    data: Path
    epochs: int
    lr: float
    init_from: Path | None = None
    freeze_trunk: bool = False
    overrides: tuple[str, ...] = ()
    preset: str | None = None  # config.PRESETS name: the base that epochs, lr, overrides change

    def record(self) -> dict:
        """The settings as job.json keeps them (plain JSON values)."""
        rec = asdict(self)
        rec.update(data=str(self.data), overrides=list(self.overrides))
        rec["init_from"] = str(self.init_from) if self.init_from else None
        return rec


def train_command(run_dir: Path, settings: RunSettings) -> list[str]:
    """The `qfitlatent train` argument list of a run."""
    cmd = [sys.executable, "-m", "qfitlatent", "train", "--data", str(settings.data)]
    cmd += ["--out", str(run_dir), "--epochs", str(settings.epochs), "--lr", repr(settings.lr)]
    if settings.preset is not None:
        cmd += ["--preset", settings.preset]
    if settings.init_from is not None:
        cmd += ["--init-from", str(settings.init_from)]
    if settings.freeze_trunk:
        cmd.append("--freeze-trunk")
    if settings.overrides:
        cmd += ["--set", *settings.overrides]
    return cmd


def launch(
    name: str,
    *,
    data: Path | list[tuple[str, bytes]],
    epochs: int,
    lr: float,
    init_from: Path | None = None,
    freeze_trunk: bool = False,
    overrides: list[str] | tuple[str, ...] = (),
    preset: str | None = None,
    root: Path | None = None,
    threads: int | None = None,
    owner: str | None = None,
    public: bool = False,
    limits=None,
) -> Job:
    """Start a fine-tune in the background and return its job (status "running").

    `data` is a folder of structures (the caller decides whether the visitor may use it, see
    data_roots) or uploaded (file name, bytes) pairs (zips allowed), which are copied into the
    run folder within `limits` (default: server_config.load()). `owner` is the launching
    session's token; `public` makes the best.pt a model choice for everyone. `threads` caps the
    trainer's CPU threads (default: all cores but one, so the web server stays responsive).
    Raises RuntimeError while another run is going and ValueError for a bad name, an existing
    run or unusable data (UploadError for uploads). A launch that raises leaves no run folder
    behind, so its name can be used again.
    """
    from .. import server_config, uploads

    root = Path(root or runs_root())
    name = clean_name(name)
    if not isinstance(data, list) and not Path(data).is_dir():
        raise ValueError(f"training data folder {str(data)!r} does not exist")
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    limits = limits or server_config.load()
    # Before the lock: reading a start checkpoint takes a moment, and a refusal needs no lock.
    check_run_settings(init_from, overrides, preset, limits)
    root.mkdir(parents=True, exist_ok=True)
    _acquire_lock(root, os.getpid())
    run_dir, made = root / name, False
    try:
        try:
            run_dir.mkdir()
            made = True
        except FileExistsError:
            raise ValueError(f"a run called {name!r} exists already; pick another name") from None
        if isinstance(data, list):
            # Under the lock, so no other launch stages at the same time and the sums hold.
            staged = staged_bytes(root, owner_id(owner))
            if uploads.stage_uploads(run_dir / "data", data, limits, staged) == 0:
                raise ValueError(
                    "no structure files (.pdb, .cif, .ent, optionally .gz) in the upload"
                )
            data = run_dir.resolve() / "data"
        settings = RunSettings(
            data=Path(data),
            epochs=int(epochs),
            lr=float(lr),
            init_from=Path(init_from) if init_from else None,
            freeze_trunk=bool(freeze_trunk),
            overrides=tuple(overrides),
            preset=preset,
        )
        job = Job(
            name=name,
            dir=str(run_dir.resolve()),
            command=train_command(run_dir, settings),
            settings=settings.record(),
            owner=owner_id(owner),
            public=bool(public),
            time_limit=float(limits.max_run_seconds) or None,
        )
        job.save()
        env = dict(os.environ)
        n = threads or max(1, (os.cpu_count() or 2) - 1)
        env.update(OMP_NUM_THREADS=str(n), MKL_NUM_THREADS=str(n), PYTHONUNBUFFERED="1")
        with open(job.log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "qfitlatent.train.jobs", job.dir],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                cwd=os.getcwd(),
            )
        _CHILDREN[proc.pid] = proc
        made = False  # from here the supervisor owns the folder
        job.pid, job.pid_start = proc.pid, start_time(proc.pid)
        _set_lock(root, proc.pid)
    except BaseException:
        if made:
            shutil.rmtree(run_dir, ignore_errors=True)
        _release_lock(root, os.getpid())
        raise
    # The supervisor writes its pid and "running" itself; writing here too could overwrite
    # the end of a run that failed within milliseconds.
    job.status = "running"
    return job


def staged_bytes(root: Path, owner: str) -> tuple[int, int]:
    """(bytes of uploaded data the runs of `owner` keep, bytes all runs keep) under `root`:
    what the operator's staging limits (max_staged_mb_visitor, max_staged_mb_total) count."""
    mine = total = 0
    for job in list_jobs(root):
        size = sum(f.stat().st_size for f in (job.path / "data").glob("*") if f.is_file())
        total += size
        mine += size if job.owner == owner else 0
    return mine, total


def check_run_settings(init_from, overrides, preset, limits) -> None:
    """Refuse, before anything starts, a model that does not fit its start checkpoint or that
    is larger than this server lets a page-launched run train (limits.max_train_parameters).

    Raises SettingsError or CheckpointError (both ValueErrors) with a message for the visitor.
    Reads the start checkpoint only when there is one (that needs torch; nothing else does).
    """
    from ..config import ModelConfig, split_overrides, with_overrides
    from ..settings_check import check_model_size

    model_sets, _ = split_overrides(list(overrides))
    if init_from is not None:
        from ..checkpoint import check_compatible, load_checkpoint
        from ..errors import CheckpointError

        saved = ModelConfig.from_dict(load_checkpoint(init_from)["config"])
        wanted = with_overrides(saved, model_sets)
        try:
            check_compatible(saved, wanted)
        except CheckpointError as err:
            raise CheckpointError(
                f"these settings do not fit the start model {Path(init_from).name}: {err}. "
                "Start from scratch to change the architecture."
            ) from None
    else:
        wanted = with_overrides(PRESETS[preset][0] if preset else ModelConfig(), model_sets)
    check_model_size(wanted, limits.max_train_parameters)


def stop(job: Job, *, token: str | None = None, operator: bool = False) -> Job:
    """Ask a run to stop: SIGTERM to its process group (the trainer saves last.pt first).

    Only its owner (session `token`) or an `operator` may; anyone else gets PermissionError.
    """
    # The launcher knows the supervisor before the supervisor has written itself down.
    pid, start = job.pid, job.pid_start
    job = load_job(job.path)
    _check_control(job, token, operator, "stop")
    if not job.active:
        return job
    # A marker file, not job.json: the supervisor may be writing job.json this very moment,
    # and a request saved there could be overwritten (the run would then train to the end).
    if job.pid:
        pid, start = job.pid, job.pid_start
    write_atomic(job.path / STOP_FILE, f"{pid or ''} {start or ''}".strip())
    _signal_run(job, pid, start)
    return load_job(job.path)


def _signal_run(job: Job, pid: int | None, start: int | None) -> None:
    """SIGTERM to the run's process group, only while a member is the very process recorded
    (pid and start time): a recorded pid that now names another process is never signalled."""
    group = None
    if pid_alive(pid, start):
        group = pid  # the supervisor leads its own session: its pid is the group id
    elif pid_alive(job.trainer_pid, job.trainer_start):  # supervisor gone, trainer orphaned
        try:
            group = os.getpgid(job.trainer_pid)
        except ProcessLookupError:
            return
    if group:
        try:
            os.killpg(group, signal.SIGTERM)
        except ProcessLookupError:
            pass


def delete(job: Job, *, token: str | None = None, operator: bool = False) -> None:
    """Remove an ended run's folder (checkpoints, log, staged data). Owner or operator only;
    a run that is still going must be stopped first."""
    job = load_job(job.path)
    _check_control(job, token, operator, "delete")
    if job.active:
        raise ValueError(f"run {job.name!r} is still going; stop it first")
    path = job.path.resolve()
    if path.name != job.name or not (path / "job.json").is_file():
        raise ValueError(f"{job.name!r} does not look like a run folder; not deleting it")
    # Rename first: the folder leaves the runs list at once, even if removing it takes a while.
    trash = path.with_name(f".deleting-{path.name}-{os.getpid()}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def publish(job: Job, public: bool = True) -> Job:
    """Operator only (the command line): make an ended run's best.pt a model choice for everyone.

    A run still going is refused: its supervisor rewrites job.json when the run ends, and one of
    the two writes would be lost (publish's, or the recorded end).
    """
    job = load_job(job.path)
    if job.active:
        raise ValueError(f"run {job.name!r} is still going; publish it once it has ended")
    job.public = bool(public)
    job.save()
    return job


def log_tail(job: Job, n_lines: int = 30) -> str:
    try:
        with open(job.log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-n_lines:])


def progress(job: Job, records: list[runlog.Record] | None = None) -> tuple[float, float | None]:
    """(fraction done in [0, 1], seconds left or None) from the epochs in metrics.jsonl.

    Time left comes from measured training time per epoch (the records' `seconds`), never from
    the time since launch: that includes reading and featurising the structures, which happen
    once, so dividing it by the first logged fraction of an epoch said 41 min for a 5-min run.
    No estimate before the first logged step. Validation is not in `seconds`, so with a large
    validation set the estimate is low by its time per epoch.
    """
    records = runlog.read(job.metrics_path) if records is None else records
    total = job.settings.get("epochs") or 0
    epochs = runlog.epochs_done(records)
    if job.status == "finished":
        return 1.0, None
    if not total or epochs is None:
        return 0.0, None
    done = min(1.0, epochs / total)
    return done, (time_left(records, total) if job.active else None)


def time_left(records: list[runlog.Record], total_epochs: float) -> float | None:
    """Training seconds left to reach `total_epochs` at the rate of the latest record that has
    both a time and a position (seconds per epoch so far), or None before there is one."""
    timed = [r for r in records if _positive(r.seconds) and _positive(r.epoch)]
    if not timed:
        return None
    last = timed[-1]
    return max(0.0, total_epochs - last.epoch) * last.seconds / last.epoch


def _positive(value) -> bool:
    return value is not None and math.isfinite(value) and value > 0


# --- the supervisor (runs in the background process) -------------------------------------------


def _supervise(run_dir: Path) -> int:
    stopping = False

    def on_term(signum, frame):
        nonlocal stopping
        stopping = True  # the trainer in our group got the same signal; wait for it to save

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    job = _job_from(json.loads((run_dir / "job.json").read_text()))
    job.pid, job.pid_start = os.getpid(), start_time(os.getpid())
    job.status = "running"
    job.save()
    message, timed_out = "", False
    try:
        # stop() may have come before we were listening (its marker is there, or its signal
        # arrived already); then there is nothing to run.
        if stopping or (run_dir / STOP_FILE).exists():
            rc = -signal.SIGTERM
        else:
            trainer = subprocess.Popen(
                job.command, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent()
            )
            _add_trainer(run_dir.parent, os.getpid(), trainer.pid)
            job = _job_from(json.loads((run_dir / "job.json").read_text()))
            job.trainer_pid, job.trainer_start = trainer.pid, start_time(trainer.pid)
            job.save()  # so a stop and load_job still find the trainer if we are killed
            if stopping:  # the signal came while the trainer was being started: pass it on
                trainer.terminate()
            deadline = job.started + job.time_limit if job.time_limit else None
            rc, timed_out = _wait(trainer, deadline)
    except OSError as err:
        rc, message = 127, f"could not start the trainer: {err}"
    job = _job_from(json.loads((run_dir / "job.json").read_text()))  # with stop()'s marker
    job.returncode, job.ended = rc, time.time()
    if timed_out:
        job.status = "stopped"
        job.message = (
            f"stopped at this server's time limit for a run ({_duration(job.time_limit)}), so "
            "others can train too; best.pt keeps the best epoch reached"
        )
    elif stopping or job.stop_requested:
        job.status = "stopped"  # the trainer exits 0 after saving last.pt on SIGTERM
    elif rc == 0:
        job.status = "finished"
    else:
        job.status = "failed"
        job.message = message or f"the trainer exited with code {rc}; see train.log"
    # The trainer has exited: free the lock before the end is recorded, so whoever sees the run
    # ended can start the next one (the other order let a Start land in between and be refused).
    _release_lock(run_dir.parent, os.getpid())
    # Uploads go before the end is recorded: whoever reads "failed" finds them gone (the other
    # order let a reader under load see the failed run still holding its staged data).
    if job.status == "failed":
        _drop_staged(job)
    job.save()
    return 0


def _wait(trainer: subprocess.Popen, deadline: float | None) -> tuple[int, bool]:
    """(the trainer's exit code, whether the time limit stopped it). At `deadline` the trainer
    gets SIGTERM, as on Stop: it saves last.pt and exits."""
    timed_out = False
    while True:
        timeout = None if deadline is None or timed_out else max(0.0, deadline - time.time())
        try:
            return trainer.wait(timeout=timeout), timed_out
        except subprocess.TimeoutExpired:
            timed_out = True
            trainer.terminate()


def _duration(seconds: float | None) -> str:
    seconds = float(seconds or 0)
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


if __name__ == "__main__":
    sys.exit(_supervise(Path(sys.argv[1])))
