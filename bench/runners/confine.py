"""A cgroup for the process runner's sandbox: the pids and memory limits Docker gives a container.

setrlimit bounds each process on its own; a cgroup bounds the whole tree, as the engine's
cgroup does for a container: ``pids.max`` stops a fork bomb at the task's ``pids``, the memory
limit (swap included, when the kernel accounts it) holds every process and the sandbox's tmpfs
pages to ``memory``, and an OOM kill is read back from the cgroup's counters. Only root can
make one (a user's own cgroup is not delegated to it here):

- cgroup v1 (Docker's ``cgroupfs`` driver): the sandbox's cgroup is made *inside the harness's
  own cgroup* in the ``pids`` and ``memory`` hierarchies, so whatever limits the harness is
  under still apply to it;
- cgroup v2 with the ``pids`` and ``memory`` controllers: the harness's own cgroup holds
  processes and so cannot delegate controllers to a child (the no-internal-process rule); the
  sandbox's cgroup is made under ``ricord-bench/`` at the top of the hierarchy instead, with
  ``memory.swap.max`` 0, so it is bounded by its own limits, not by the harness's.

Where neither can be made (not root, or neither hierarchy has both controllers, as on a host
whose cgroup2 mount carries none of them) :func:`confine` says why, and the process runner
refuses untrusted code (:mod:`bench.runners.process`).
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
    """The sandbox's cgroup directories, one per controller (v1) or one (v2)."""

    directories: tuple[Path, ...]
    version: int = 1

    def join(self) -> None:
        """Move the calling process into the cgroup (run in the child, before exec)."""
        for directory in self.directories:
            (directory / "cgroup.procs").write_text(str(os.getpid()))

    def oom_kills(self) -> int:
        """How many processes the kernel killed for exceeding the memory limit."""
        for directory in self.directories:
            for name in ("memory.oom_control", "memory.events"):
                control = directory / name
                if control.exists():
                    for line in control.read_text().splitlines():
                        if line.startswith("oom_kill "):
                            return int(line.split()[1])
        return 0

    def describe(self) -> str:
        """Which cgroup holds the sandbox, in words for ``run.json``."""
        if self.version == 2:
            return f"its own cgroup v2 ({self.directories[0].parent.name}/{self.directories[0].name})"
        return "its own cgroup v1 inside the harness's"

    def release(self) -> Sweep:
        """Kill whatever is still in the cgroup and remove it."""
        return empty(list(self.directories), f"the sandbox's cgroup {self.directories[0].name}")


def _mounts(mountinfo: Path = Path("/proc/self/mountinfo")) -> tuple[dict[str, Path], Path | None]:
    """Mount point of each cgroup v1 controller ({"pids": Path, ...}) and of the cgroup2 tree."""
    mounts, unified = {}, None
    for line in mountinfo.read_text().splitlines():
        fields = line.split()
        tail = fields[fields.index("-") + 1:]
        if tail[0] == "cgroup":
            for option in tail[2].split(","):
                mounts[option] = Path(fields[4])
        elif tail[0] == "cgroup2" and unified is None:
            unified = Path(fields[4])
    return mounts, unified


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per v1 controller, from /proc/self/cgroup."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            if controller:
                paths[controller] = path
    return paths


def confine(*, pids: int, memory_bytes: int) -> tuple[Confinement | None, str]:
    """A new cgroup with ``pids.max`` and the memory limit, or None and why it cannot be made here."""
    if os.geteuid() != 0:
        return None, ("bench is not running as root, and only root may create the sandbox's cgroup "
                      "(no cgroup is delegated to this user)")
    try:
        mounts, unified = _mounts()
        own = _own_paths()
    except (OSError, ValueError, IndexError) as error:
        return None, f"the cgroup mounts could not be read ({error})"
    if "pids" in mounts and "memory" in mounts:
        return _confine_v1(mounts, own, pids=pids, memory_bytes=memory_bytes)
    if unified is not None:
        return confine_v2(unified, pids=pids, memory_bytes=memory_bytes)
    return None, "no cgroup v1 pids and memory hierarchies and no cgroup2 mount"


def _confine_v1(mounts: dict[str, Path], own: dict[str, str], *, pids: int,
                memory_bytes: int) -> tuple[Confinement | None, str]:
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
        for directory in directories:
            os.rmdir(directory)
        log.warning("could not make the sandbox's cgroup v1: %s", error)
        return None, f"the sandbox's cgroup v1 could not be made ({error})"
    return Confinement(tuple(directories)), ""


def confine_v2(mount: Path, *, pids: int, memory_bytes: int) -> tuple[Confinement | None, str]:
    """The sandbox's cgroup under ``mount/ricord-bench/`` on a cgroup2 tree (see the module docstring)."""
    try:
        available = (mount / "cgroup.controllers").read_text().split()
    except OSError as error:
        return None, f"the cgroup2 tree at {mount} cannot be read ({error})"
    lacking = [c for c in ("pids", "memory") if c not in available]
    if lacking:
        return None, (f"the cgroup2 tree at {mount} lacks the {' and '.join(lacking)} controller(s) "
                      f"(it has: {' '.join(available) or 'none'}), and there is no cgroup v1 pids and "
                      "memory hierarchy")
    base = mount / "ricord-bench"
    directory = base / f"{_PREFIX}{secrets.token_hex(6)}"
    try:
        _enable_controllers(mount)
        base.mkdir(exist_ok=True)
        _remove_stale(base)
        _enable_controllers(base)
        directory.mkdir()
        (directory / "pids.max").write_text(str(pids))
        (directory / "memory.max").write_text(str(memory_bytes))
        if (directory / "memory.swap.max").exists():  # swap accounted: none extra
            (directory / "memory.swap.max").write_text("0")
    except OSError as error:
        if directory.is_dir():
            os.rmdir(directory)
        log.warning("could not make the sandbox's cgroup v2 under %s: %s", base, error)
        return None, f"the sandbox's cgroup v2 could not be made under {base} ({error})"
    return Confinement((directory,), version=2), ""


def _enable_controllers(folder: Path) -> None:
    """Give the children of a cgroup v2 folder the pids and memory controllers."""
    if not {"pids", "memory"} <= set((folder / "cgroup.subtree_control").read_text().split()):
        (folder / "cgroup.subtree_control").write_text("+pids +memory")


def _remove_stale(parent: Path) -> None:
    """Remove empty sandbox cgroups a killed harness left (the kernel refuses non-empty ones)."""
    for directory in parent.glob(f"{_PREFIX}*"):
        try:
            if time.time() - directory.stat().st_mtime > _STALE_S:
                os.rmdir(directory)
        except OSError:
            continue
