"""Fine-tuning runs on disk, so the web app can launch, watch, stop and list them.

A run is a folder `<runs>/<name>/` holding `job.json` (pid, status, the exact train command),
`train.log` (the trainer's stdout and stderr) and whatever the trainer writes (`metrics.jsonl`,
`last.pt`, `best.pt`). All state lives on disk, so a page reload, a second visitor or a server
restart sees the same runs.

The training process is started as `python -m qfitlatent.runs <run_dir>`: a small supervisor in
its own session (process group) that runs the `qfitlatent train` command from job.json, waits for
it and records how it ended. Without it the exit status of a run is lost whenever the server that
launched it restarts. Stopping sends SIGTERM to the whole group; the trainer saves last.pt.

One run at a time per runs folder: `<runs>/.lock` holds the supervisor's pid and counts as free
when that process is gone, so a crashed (even SIGKILLed) run never leaves it stuck.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

RUNS_ENV = "QFITLATENT_RUNS"
LOCK_NAME = ".lock"
STRUCTURE_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif")
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


def default_name() -> str:
    return time.strftime("run-%Y%m%d-%H%M%S")


# Supervisors started by this process, so they are reaped when they end (no zombie holds the lock).
_CHILDREN: dict[int, subprocess.Popen] = {}


# --- process liveness --------------------------------------------------------------------------


def pid_alive(pid: int | None) -> bool:
    """True while process `pid` runs. Reaps it first if it is our exited child (a zombie still
    answers `kill(pid, 0)`), and treats other zombies as gone."""
    if not pid or pid <= 0:
        return False
    if pid in _CHILDREN:  # launched by this process: poll() reaps it and keeps Popen content
        if _CHILDREN[pid].poll() is None:
            return True
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
        return True  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(pid, 0) is all we have


# --- the lock ----------------------------------------------------------------------------------


def lock_holder(root: Path | None = None) -> int | None:
    """pid holding the runs lock, or None when it is free (missing, unreadable or dead)."""
    path = (root or runs_root()) / LOCK_NAME
    try:
        pid = int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def _acquire_lock(root: Path, pid: int) -> None:
    path = root / LOCK_NAME
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = lock_holder(root)
            if holder is not None:
                raise RuntimeError(f"a training run is already going (pid {holder})") from None
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(pid))
        return
    raise RuntimeError("could not take the training lock; try again")


def _set_lock(root: Path, pid: int) -> None:
    tmp = root / f"{LOCK_NAME}.{os.getpid()}"
    tmp.write_text(str(pid))
    os.replace(tmp, root / LOCK_NAME)


def _release_lock(root: Path, pid: int) -> None:
    path = root / LOCK_NAME
    try:
        if int(path.read_text().strip() or 0) == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


# --- jobs --------------------------------------------------------------------------------------


@dataclass
class Job:
    """What job.json holds. `status`: running, finished, stopped, failed."""

    name: str
    dir: str
    command: list[str]  # the `qfitlatent train` argument list, run without a shell
    settings: dict = field(default_factory=dict)  # what the user chose, for display
    status: str = "starting"
    pid: int | None = None  # the supervisor; also the process-group id
    returncode: int | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None
    stop_requested: bool = False
    message: str = ""

    @property
    def path(self) -> Path:
        return Path(self.dir)

    @property
    def log_path(self) -> Path:
        return self.path / "train.log"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def best_path(self) -> Path:
        return self.path / "best.pt"

    @property
    def active(self) -> bool:
        return self.status in ("starting", "running")

    def save(self) -> None:
        tmp = self.path / f"job.json.{os.getpid()}"
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, self.path / "job.json")  # readers never see half a file


def load_job(run_dir: Path) -> Job:
    """Read job.json and settle a status the supervisor could not write (it was killed)."""
    data = json.loads((Path(run_dir) / "job.json").read_text())
    job = _job_from(data)
    # Between launch and the supervisor's first write the pid is not known yet: give it a minute.
    settle = job.pid or job.stop_requested or time.time() - job.started > 60
    if job.active and settle and not pid_alive(job.pid):
        job = _job_from(json.loads((Path(run_dir) / "job.json").read_text()))  # may just have ended
        if job.active and not pid_alive(job.pid):
            job.status = "stopped" if job.stop_requested else "failed"
            job.message = job.message or "the training process disappeared (killed or crashed)"
            job.ended = job.ended or time.time()
            job.save()
    return job


def _job_from(data: dict) -> Job:
    return Job(**{k: v for k, v in data.items() if k in Job.__dataclass_fields__})


def list_jobs(root: Path | None = None) -> list[Job]:
    """Every run under the runs folder, newest first; unreadable folders are skipped."""
    root = root or runs_root()
    jobs = []
    for d in root.glob("*/job.json") if root.is_dir() else ():
        try:
            jobs.append(load_job(d.parent))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(jobs, key=lambda j: j.started, reverse=True)


def active_job(root: Path | None = None) -> Job | None:
    return next((j for j in list_jobs(root) if j.active), None)


def finished_checkpoints(root: Path | None = None) -> dict[str, Path]:
    """{run name: best.pt} for runs that ended (finished or stopped) with a best checkpoint."""
    return {
        j.name: j.best_path
        for j in list_jobs(root)
        if j.status in ("finished", "stopped") and j.best_path.is_file()
    }


def train_command(
    run_dir: Path,
    data: Path,
    *,
    epochs: int,
    lr: float,
    init_from: Path | None = None,
    freeze_trunk: bool = False,
    overrides: list[str] | tuple[str, ...] = (),
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "qfitlatent",
        "train",
        "--data",
        str(data),
        "--out",
        str(run_dir),
        "--epochs",
        str(int(epochs)),
        "--lr",
        repr(float(lr)),
    ]
    if init_from is not None:
        cmd += ["--init-from", str(init_from)]
    if freeze_trunk:
        cmd.append("--freeze-trunk")
    if overrides:
        cmd += ["--set", *overrides]
    return cmd


def stage_uploads(dest: Path, files: list[tuple[str, bytes]]) -> int:
    """Write uploaded structures (and the structures inside uploaded .zip files) into `dest`.

    Only base names with a structure suffix (optionally .gz) are kept, so a zip member like
    `../../etc/x.pdb` lands as `dest/x.pdb`. Returns how many files were written.
    """
    dest.mkdir(parents=True, exist_ok=True)
    n = 0

    def put(name: str, data: bytes) -> None:
        nonlocal n
        base = Path(name.replace("\\", "/")).name
        stem = base[:-3] if base.lower().endswith(".gz") else base
        if not stem.lower().endswith(STRUCTURE_SUFFIXES) or not _NAME.fullmatch(base):
            return
        (dest / base).write_bytes(data)
        n += 1

    for name, data in files:
        if name.lower().endswith(".zip"):
            import io

            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for info in zf.infolist():
                    if not info.is_dir() and info.file_size < 200 * 2**20:
                        put(info.filename, zf.read(info))
        else:
            put(name, data)
    return n


def launch(
    name: str,
    *,
    data: Path | list[tuple[str, bytes]],
    epochs: int,
    lr: float,
    init_from: Path | None = None,
    freeze_trunk: bool = False,
    overrides: list[str] | tuple[str, ...] = (),
    root: Path | None = None,
    threads: int | None = None,
) -> Job:
    """Start a fine-tune in the background and return its job (status "running").

    `data` is a folder of structures or uploaded (file name, bytes) pairs (zips allowed), which
    are copied into the run folder. `threads` caps the trainer's CPU threads (default: all cores
    but one, so the web server stays responsive). Raises RuntimeError while another run is going
    and ValueError for a bad name, an existing run or unusable data.
    """
    root = Path(root or runs_root())
    name = clean_name(name)
    root.mkdir(parents=True, exist_ok=True)
    _acquire_lock(root, os.getpid())
    try:
        run_dir = root / name
        try:
            run_dir.mkdir()
        except FileExistsError:
            raise ValueError(f"a run called {name!r} exists already; pick another name") from None
        if isinstance(data, list):
            if stage_uploads(run_dir / "data", data) == 0:
                raise ValueError(
                    "no structure files (.pdb, .cif, .ent, optionally .gz) in the upload"
                )
            data = run_dir / "data"
        elif not Path(data).is_dir():
            raise ValueError(f"training data folder {str(data)!r} does not exist")
        cmd = train_command(
            run_dir,
            Path(data),
            epochs=epochs,
            lr=lr,
            init_from=init_from,
            freeze_trunk=freeze_trunk,
            overrides=list(overrides),
        )
        job = Job(
            name=name,
            dir=str(run_dir.resolve()),
            command=cmd,
            settings={
                "data": str(data),
                "epochs": int(epochs),
                "lr": float(lr),
                "init_from": str(init_from) if init_from else None,
                "freeze_trunk": bool(freeze_trunk),
                "overrides": list(overrides),
            },
        )
        job.save()
        env = dict(os.environ)
        n = threads or max(1, (os.cpu_count() or 2) - 1)
        env.update(OMP_NUM_THREADS=str(n), MKL_NUM_THREADS=str(n), PYTHONUNBUFFERED="1")
        with open(job.log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "qfitlatent.runs", job.dir],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                cwd=os.getcwd(),
            )
        _CHILDREN[proc.pid] = proc
        _set_lock(root, proc.pid)
    except BaseException:
        _release_lock(root, os.getpid())
        raise
    # The supervisor writes its pid and "running" itself; writing here too could overwrite
    # the end of a run that failed within milliseconds.
    job.pid, job.status = proc.pid, "running"
    return job


def stop(job: Job) -> Job:
    """Ask a run to stop: SIGTERM to its process group (the trainer saves last.pt first)."""
    pid = job.pid  # the launcher knows it before the supervisor has written it
    job = load_job(job.path)
    if not job.active:
        return job
    job.pid = job.pid or pid
    job.stop_requested = True
    job.save()
    if job.pid:
        try:
            os.killpg(job.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return job


def read_metrics(job: Job) -> list[dict]:
    """Records of metrics.jsonl; a half-written last line is skipped."""
    try:
        lines = job.metrics_path.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def log_tail(job: Job, n_lines: int = 30) -> str:
    try:
        with open(job.log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-n_lines:])


def progress(job: Job, records: list[dict] | None = None) -> tuple[float, float | None]:
    """(fraction done in [0, 1], seconds left or None) from the epochs in metrics.jsonl."""
    records = read_metrics(job) if records is None else records
    total = job.settings.get("epochs") or 0
    epochs = [r["epoch"] for r in records if isinstance(r.get("epoch"), (int, float))]
    if not total or not epochs:
        return (1.0 if job.status == "finished" else 0.0), None
    done = min(1.0, max(epochs) / total)
    if job.status == "finished":
        return 1.0, None
    elapsed = time.time() - job.started
    eta = elapsed * (1.0 - done) / done if done > 0 and job.active else None
    return done, eta


# --- the supervisor (runs in the background process) -------------------------------------------


def _supervise(run_dir: Path) -> int:
    stopping = False

    def on_term(signum, frame):
        nonlocal stopping
        stopping = True  # the trainer in our group got the same signal; wait for it to save

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    job = _job_from(json.loads((run_dir / "job.json").read_text()))
    job.pid = os.getpid()
    job.status = "running"
    job.save()
    message = ""
    try:
        # stop() may have come before we were listening; then there is nothing to run.
        rc = (
            -signal.SIGTERM
            if job.stop_requested or stopping
            else subprocess.Popen(job.command, stdin=subprocess.DEVNULL).wait()
        )
    except OSError as err:
        rc, message = 127, f"could not start the trainer: {err}"
    job = _job_from(json.loads((run_dir / "job.json").read_text()))  # stop() may have written
    job.returncode, job.ended = rc, time.time()
    if stopping or job.stop_requested:
        job.status = "stopped"  # the trainer exits 0 after saving last.pt on SIGTERM
    elif rc == 0:
        job.status = "finished"
    else:
        job.status = "failed"
        job.message = message or f"the trainer exited with code {rc}; see train.log"
    job.save()
    _release_lock(run_dir.parent, os.getpid())
    return 0


if __name__ == "__main__":
    sys.exit(_supervise(Path(sys.argv[1])))
