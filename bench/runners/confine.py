"""A cgroup for the process runner's sandbox: the pids and memory limits Docker gives a container.

setrlimit bounds each process on its own; a cgroup bounds the whole tree, as the engine's
cgroup does for a container: ``pids.max`` stops a fork bomb at the task's ``pids``, the memory
limit (swap included, when the kernel accounts it) holds every process and the sandbox's tmpfs
pages to ``memory``, and an OOM kill is read back from the cgroup's counters. The sandbox's
cgroup is made *inside the harness's own cgroup* in the v1 ``pids`` and ``memory`` hierarchies,
so whatever limits the harness is under still apply to it. Only root can do this, and only
where those hierarchies are mounted (cgroup v1, as Docker's ``cgroupfs`` driver uses); on a
cgroup v2 host the harness's own cgroup holds processes and so cannot delegate controllers to a
child, and the sandbox runs with setrlimit alone (the run says so in ``isolation``).
"""

import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from bench.runners.cgroups import empty
from bench.runners.result import Sweep

log = logging.getLogger(__name__)

_PREFIX = "ricord-bench-"
_STALE_S = 60


@dataclass(frozen=True)
class Confinement:
    """The sandbox's cgroup directories, one per controller."""

    directories: tuple[Path, ...]

    def join(self) -> None:
        """Move the calling process into the cgroup (run in the child, before exec)."""
        for directory in self.directories:
            (directory / "cgroup.procs").write_text(str(os.getpid()))

    def oom_kills(self) -> int:
        """How many processes the kernel killed for exceeding the memory limit."""
        for directory in self.directories:
            control = directory / "memory.oom_control"
            if control.exists():
                for line in control.read_text().splitlines():
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
        return 0

    def release(self) -> Sweep:
        """Kill whatever is still in the cgroup and remove it."""
        return empty(list(self.directories), f"the sandbox's cgroup {self.directories[0].name}")


def _v1_mounts() -> dict[str, Path]:
    """Mount point of each cgroup v1 controller: {"pids": Path, "memory": Path, ...}."""
    mounts = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        tail = fields[fields.index("-") + 1:]
        if tail[0] == "cgroup":
            for option in tail[2].split(","):
                mounts[option] = Path(fields[4])
    return mounts


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per v1 controller, from /proc/self/cgroup."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            if controller:
                paths[controller] = path
    return paths


def confine(*, pids: int, memory_bytes: int) -> Confinement | None:
    """A new cgroup with ``pids.max`` and the memory limit, or None where that cannot be made."""
    if os.geteuid() != 0:
        return None
    try:
        mounts, own = _v1_mounts(), _own_paths()
    except (OSError, ValueError, IndexError):
        return None
    if "pids" not in mounts or "memory" not in mounts:
        return None
    name = f"{_PREFIX}{secrets.token_hex(6)}"
    directories = []
    try:
        for controller in ("pids", "memory"):
            parent = mounts[controller] / own.get(controller, "/").lstrip("/")
            _remove_stale(parent)
            directory = parent / name
            directory.mkdir()
            directories.append(directory)
        pids_dir, memory_dir = directories
        (pids_dir / "pids.max").write_text(str(pids))
        (memory_dir / "memory.limit_in_bytes").write_text(str(memory_bytes))
        if (memory_dir / "memory.memsw.limit_in_bytes").exists():  # swap accounted: none extra
            (memory_dir / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
    except OSError as error:
        log.warning("could not make a cgroup for the sandbox (%s); pids and memory rest on setrlimit", error)
        for directory in directories:
            os.rmdir(directory)
        return None
    return Confinement(tuple(directories))


def _remove_stale(parent: Path) -> None:
    """Remove empty sandbox cgroups a killed harness left (the kernel refuses non-empty ones)."""
    for directory in parent.glob(f"{_PREFIX}*"):
        try:
            if time.time() - directory.stat().st_mtime > _STALE_S:
                os.rmdir(directory)
        except OSError:
            continue
