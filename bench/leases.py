"""Leases: a note in the harness's state folder that a live process owns temporary things.

A process that makes something which must not outlive it (a run's staging folder, a tmpfs
mount, a container, a half-built site or prepared tree) first takes a lease naming it, and
drops the lease once it has cleaned up. A process killed by SIGKILL, an OOM kill or a closed
session cannot clean up: the next ``bench`` invocation, or ``bench gc``, finds the leases
whose owner is gone and removes exactly what they name, never anything else. The owner is a
pid *and* that process's start time, so a reused pid is not taken for the owner.

The state folder is ``$BENCH_STATE_DIR``, else ``$XDG_STATE_HOME/ricord-bench``, else
``~/.local/state/ricord-bench``; each lease is one JSON file in its ``leases/`` folder.
"""

import json
import logging
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

STATE_ENV = "BENCH_STATE_DIR"


def state_dir() -> Path:
    """The harness's state folder (see the module docstring)."""
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV])
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "ricord-bench"


def _leases_dir() -> Path:
    return state_dir() / "leases"


@dataclass(frozen=True)
class Lease:
    """What one process owns: folders to remove, mounts to unmount, a container to remove.

    ``deadline`` (epoch seconds) is when the work the lease covers must be over; ``container``
    is a Docker container id, removed by :mod:`bench.runners.gc`.
    """

    id: str
    pid: int
    started: float
    paths: tuple[str, ...] = ()
    mounts: tuple[str, ...] = ()
    container: str | None = None
    deadline: float | None = None
    note: str = field(default="")

    @property
    def file(self) -> Path:
        return _leases_dir() / f"{self.id}.json"

    def update(self, **changes) -> "Lease":
        """Rewrite the lease with ``changes`` (e.g. the container id once it exists)."""
        new = replace(self, **changes)
        _write(new)
        return new

    def release(self) -> None:
        """Drop the lease: its owner cleaned up what it names."""
        self.file.unlink(missing_ok=True)


def _write(lease: Lease) -> None:
    """Write the lease file atomically (a temporary file, then a rename).

    Not through :mod:`bench.io`: every ``bench`` invocation reads leases before its command
    runs, and that module imports pandas, which would slow every start-up.
    """
    body = asdict(lease)
    body["paths"], body["mounts"] = list(lease.paths), list(lease.mounts)
    lease.file.parent.mkdir(parents=True, exist_ok=True)
    tmp = lease.file.with_name(f".{lease.file.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, lease.file)


def _started(pid: int) -> float:
    return psutil.Process(pid).create_time()


def take(*, paths=(), mounts=(), deadline: float | None = None, note: str = "") -> Lease:
    """Write a lease of this process on ``paths`` and ``mounts`` before they are created."""
    lease = Lease(
        id=f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{secrets.token_hex(4)}",
        pid=os.getpid(),
        started=_started(os.getpid()),
        paths=tuple(str(Path(p).absolute()) for p in paths),
        mounts=tuple(str(Path(m).absolute()) for m in mounts),
        deadline=deadline,
        note=note,
    )
    _write(lease)
    return lease


@contextmanager
def temp_dir(parent: Path, *, prefix: str, suffix: str = "") -> Iterator[Path]:
    """A new folder in ``parent`` under a lease; removed on exit unless it was renamed away.

    The lease is written before the folder exists, so even a SIGKILL between the two leaves
    nothing that the next invocation will not find.
    """
    path = Path(parent) / f"{prefix}{secrets.token_hex(6)}{suffix}"
    lease = take(paths=[path], note=f"temporary folder {prefix}*{suffix}")
    try:
        path.mkdir(mode=0o700)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        lease.release()


def owner_alive(lease: Lease) -> bool:
    """Whether the process that took ``lease`` is still running (same pid, same start time)."""
    try:
        return abs(_started(lease.pid) - lease.started) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def read_leases() -> list[Lease]:
    """Every lease on record (unreadable files are skipped with a warning)."""
    leases = []
    folder = _leases_dir()
    if not folder.is_dir():
        return leases
    for path in sorted(folder.glob("*.json")):
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            body["paths"], body["mounts"] = tuple(body["paths"]), tuple(body["mounts"])
            leases.append(Lease(**body))
        except FileNotFoundError:  # released meanwhile
            continue
        except (OSError, ValueError, TypeError, KeyError) as error:
            log.warning("%s: unreadable lease (%s); remove it by hand", path, error)
    return leases


def stale_leases() -> list[Lease]:
    """The leases whose owner is no longer running."""
    return [lease for lease in read_leases() if not owner_alive(lease)]


def clean(lease: Lease) -> list[str]:
    """Unmount and remove what a stale lease names, then drop it; return one line per thing done."""
    done = []
    for mount in lease.mounts:
        if os.path.ismount(mount):
            answer = subprocess.run(["umount", "--lazy", mount], capture_output=True, text=True, check=False)
            if answer.returncode == 0:
                done.append(f"unmounted {mount}")
            else:
                log.warning("could not unmount %s: %s", mount, answer.stderr.strip())
    for path in lease.paths:
        if os.path.lexists(path):
            shutil.rmtree(path, ignore_errors=True)
            done.append(f"removed {path}" if not os.path.lexists(path) else f"could not remove {path}")
    if not any(line.startswith("could not") for line in done):
        lease.release()
    return done

