"""A dask worker plugin for the fault-tolerance tests (kept apart: it imports distributed)."""

import os
import signal

from distributed.diagnostics.plugin import WorkerPlugin


class KillFirstExecution(WorkerPlugin):
    """A dask WorkerPlugin that SIGKILLs its worker when the first task of a run starts executing.

    ``marker`` is created exclusively, so across all workers exactly one task start (the first
    one) kills its process: a worker lost mid-task at a known point, inside real library code.
    """

    name = "kill-first-execution"

    def __init__(self, marker: str):
        self.marker = marker

    def transition(self, key, start, finish, **kwargs):
        if finish != "executing":
            return
        try:
            with open(self.marker, "x"):
                pass
        except FileExistsError:
            return
        os.kill(os.getpid(), signal.SIGKILL)
