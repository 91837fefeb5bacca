"""Receipts: what a cited number was produced by, and on what.

A receipt names the harness (version, git revision when run from a checkout), the task spec
hash, the split and reference hashes, the submission and how it ran (image id and digest or
command, runner, limits, exit status), the bootstrap seed, the hardware, the times, and every
case that did not score normally. Hardware and times are facts about the run, not inputs: they
are the only parts of a stored result that differ between two scorings of the same inputs.
"""

import os
import platform
import subprocess
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import bench

PACKAGE_ROOT = Path(bench.__file__).resolve().parent.parent


def utc_now(at: datetime | None = None) -> str:
    """The current UTC time (or the aware time ``at``) as ``yyyy-mm-ddTHH:MM:SSZ``."""
    return (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@cache
def git_revision() -> str | None:
    """The commit of the harness source tree (with ``+dirty`` when modified), or None outside git."""
    if not (PACKAGE_ROOT / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(PACKAGE_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(PACKAGE_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


@cache
def hardware() -> dict:
    """CPU count and model, total memory, platform: enough to compare two receipts' timings."""
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        memory = int(psutil.virtual_memory().total)
    except ImportError:
        memory = None
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_bytes": memory,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def harness() -> dict:
    """Version and git revision of the harness doing the scoring."""
    return {"name": "ricord-bench", "version": bench.__version__, "git_revision": git_revision()}
