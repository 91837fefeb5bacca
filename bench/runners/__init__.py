"""Stage 4, run: a prepared input tree + a submission -> a run folder with validated outputs.

Docker or a local process under the same container contract; also the submission.yaml model
(:mod:`~bench.runners.submission`), the local base image (:mod:`~bench.runners.base_image`) and the
run record (:mod:`~bench.runners.record`). Contract with the next
stage (scoring): ``RUN/run.json`` plus only validated outputs under ``RUN/outputs``.

``run_submission`` is the entry point; ``RunRecord`` (and ``read_run``) the record it writes
as ``RUN/run.json``, the only reader of that file.
"""

from bench.runners.record import CaseStatus, Rejected, RunRecord, read_run
from bench.runners.run import resolve_limits, run_submission

__all__ = ["CaseStatus", "Rejected", "RunRecord", "read_run", "resolve_limits", "run_submission"]
