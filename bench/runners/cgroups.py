"""Whether any task of a finished container is still alive, and killing it if one is.

The kernel removes only empty cgroups, so once the runtime has stopped a container its cgroup
directories are gone, unless a task escaped the runtime's reaping (the leak a self-traced
init caused: the shim reported an exit while a worker kept running). After every run the
harness looks for the container's cgroup in every mounted hierarchy (cgroup v1 controllers
and the v2 tree), SIGKILLs each task it finds until none is left, and removes the directory.
"""

import logging
import os
from pathlib import Path

from bench.runners.result import Sweep, kill_until_gone

log = logging.getLogger(__name__)


def hierarchies(mountinfo: Path = Path("/proc/self/mountinfo")) -> list[Path]:
    """Mount points of every cgroup (v1) and cgroup2 filesystem this process can see."""
    points = []
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return points
    for line in lines:
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        if fstype in ("cgroup", "cgroup2"):
            points.append(Path(fields[4]))
    return points


def tasks(directory: Path) -> list[int]:
    """Pids in one cgroup directory and all its descendants (empty when it is gone)."""
    found = []
    for folder, _, files in os.walk(directory):
        if "cgroup.procs" in files:
            try:
                text = (Path(folder) / "cgroup.procs").read_text()
            except OSError:  # removed between the walk and the read
                continue
            found += [int(pid) for pid in text.split()]
    return found


def sweep(relative: str) -> Sweep:
    """Find tasks left in the cgroup ``relative`` (e.g. ``/docker/<id>``) of every hierarchy, kill them.

    Returns how many tasks were found and killed; ``checked`` is False when the cgroup's
    parent is in no hierarchy visible from here.
    """
    mounts = hierarchies()
    directories = [mount / relative.lstrip("/") for mount in mounts]
    if not any(d.parent.is_dir() for d in directories):
        return Sweep(False, 0, 0, f"the parent of cgroup {relative} is in no hierarchy visible to the "
                     "harness (an engine on another host or in another cgroup namespace); not checked")
    return empty([d for d in directories if d.is_dir()], f"cgroup {relative}")


def empty(directories: list[Path], label: str, *, attempts: int = 50) -> Sweep:
    """SIGKILL every task in ``directories`` (and below) until none is left, then remove them.

    A directory still holding tasks after ``attempts`` rounds is reported in ``detail``
    (survivors > killed) and left in place.
    """
    found = sorted({pid for d in directories for pid in tasks(d)})
    if found:
        log.warning("%d tasks outlived the run in %s; killing them", len(found), label)
    killed = kill_until_gone(lambda: {pid for d in directories for pid in tasks(d)},
                             attempts=attempts if found else 0)
    left = sorted({pid for d in directories for pid in tasks(d)})
    for directory in directories:
        for folder, _, _ in sorted(os.walk(directory), key=lambda w: len(w[0]), reverse=True):
            try:
                os.rmdir(folder)
            except OSError:  # still busy, or already gone
                pass
    if not found:
        return Sweep(True, 0, 0, f"no task left in {label}")
    detail = f"{len(found)} tasks outlived the run in {label}; {len(killed)} killed"
    if left:
        detail += f", {len(left)} still alive ({left[:10]})"
    return Sweep(True, len(found), len(killed), detail)
