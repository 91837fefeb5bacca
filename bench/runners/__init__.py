"""Running submissions under the container contract: Docker or a local process, one shared record.

``run_submission`` is the entry point; ``RunResult`` (and ``read_run``) the record it writes
as ``RUN/run.json``.
"""

from bench.runners.result import CaseStatus, Rejected, RunResult, read_run
from bench.runners.run import resolve_limits, run_submission

__all__ = ["CaseStatus", "Rejected", "RunResult", "read_run", "resolve_limits", "run_submission"]
