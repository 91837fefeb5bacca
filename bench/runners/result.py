"""How a submission's process ended, as both runners report it, and the one line that says why.

The run record built from it is :class:`bench.runners.record.RunRecord`.
"""

import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bench.tasks import Limits


@dataclass(frozen=True)
class Sweep:
    """The check, after a run, that nothing it started is still running.

    ``checked`` is False when the harness cannot see the run's processes (a remote engine);
    ``survivors`` is how many tasks were found still alive once the run had ended, ``killed``
    how many of them the harness SIGKILLed; ``detail`` says where it looked.
    """

    checked: bool
    survivors: int
    killed: int
    detail: str

    def to_json(self) -> dict:
        return {"checked": self.checked, "survivors": self.survivors, "killed": self.killed,
                "detail": self.detail}


@dataclass(frozen=True)
class ExecOutcome:
    """How the submission's process ended, as a runner reports it to :func:`run_submission`."""

    exit_code: int | None
    timed_out: bool
    oom_killed: bool
    duration_s: float
    stdout: bytes
    stderr: bytes
    error: str | None = None
    survivors: Sweep | None = None


def describe_end(exit_code: int | None, timed_out: bool, oom_killed: bool, limits: Limits) -> str | None:
    """One line saying why a run failed, or None when it exited 0 in time (both runners)."""
    if timed_out:
        return f"killed after the {limits.timeout_s} s wall-clock timeout"
    if oom_killed:
        return f"killed for running out of memory (limit {limits.memory})"
    if exit_code is not None and exit_code < 0:  # subprocess: -N means killed by signal N
        return f"killed by signal {-exit_code}"
    if exit_code not in (0, None):
        return f"exited with code {exit_code}"
    if exit_code is None:
        return "no exit code"
    return None


def kill_until_gone(members: Callable[[], Iterable[int]], *, attempts: int) -> set[int]:
    """SIGKILL every pid ``members()`` lists, again until it lists none or ``attempts`` run out.

    A process may fork between the listing and the kill, so one pass is not enough; the caller
    lists what is left afterwards. Returns the pids a signal reached.
    """
    killed: set[int] = set()
    for _ in range(attempts):
        alive = sorted(set(members()))
        if not alive:
            break
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    return killed
