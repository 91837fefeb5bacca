"""SIGTERM, SIGINT and SIGHUP stop a run cleanly instead of killing the harness on the spot.

By default SIGTERM and SIGHUP end Python at once (no ``finally`` runs), which left the
container running with no deadline, its tmpfs mounted and its staging folder behind. Inside
:func:`stop_on_signals` the first of these signals raises :class:`RunStopped` in the main
thread, so the runner's ``finally`` blocks kill and remove the container or the sandbox,
unmount and delete; further signals are logged and ignored until that cleanup is over. A
SIGKILL cannot be caught: the run's lease (:mod:`bench.leases`) is what the next invocation
cleans up from.
"""

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from bench.errors import RunnerError

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class RunStopped(RunnerError):
    """The harness was asked to stop (SIGTERM, SIGINT, SIGHUP) during a run; the run was cleaned up."""

    def __init__(self, signum: int):
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name}: the submission was killed and its container, mounts and "
                         "staging removed; no run directory was written")
        self.exit_code = 128 + signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn the first stop signal into :class:`RunStopped` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = []

    def handler(signum, frame):
        if stopping:
            log.warning("%s received while cleaning up; cleanup goes on", signal.Signals(signum).name)
            return
        stopping.append(signum)
        raise RunStopped(signum)

    previous = {signum: signal.signal(signum, handler) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
