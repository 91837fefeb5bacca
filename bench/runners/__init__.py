"""Stage 4, run: a prepared input tree + a submission -> a run folder with validated outputs.

Docker or a local process under the same container contract; also the submission.yaml model
(:mod:`~bench.runners.submission`), the local base image (:mod:`~bench.runners.base_image`) and the
run record (:mod:`~bench.runners.record`, :mod:`~bench.runners.result`). Contract with the next
stage (scoring): ``RUN/run.json`` plus only validated outputs under ``RUN/outputs``.

``run_submission`` is the entry point; ``RunResult`` (and ``read_run``) the record it writes
as ``RUN/run.json``.
"""

from bench.runners.result import CaseStatus, Rejected, RunResult, read_run
from bench.runners.run import resolve_limits, run_submission

__all__ = ["CaseStatus", "Rejected", "RunResult", "read_run", "resolve_limits", "run_submission"]
