"""The record of one run: what ran, under which limits, how it ended, and each case's status.

The same frozen records serve both runners; :meth:`RunResult.to_json` is the body of
``RUN/run.json`` and :func:`read_run` reads it back (what scoring does).
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench.errors import ScoringError
from bench.io import SCHEMA_VERSION
from bench.tasks import Limits

CaseState = Literal["ok", "missing", "malformed"]


@dataclass(frozen=True)
class CaseStatus:
    """One case's outcome: ``ok`` (a validated output was kept), ``missing`` or ``malformed``."""

    case_id: str
    status: CaseState
    reason: str = ""


@dataclass(frozen=True)
class Rejected:
    """Something in ``/output`` that was not kept and belongs to no case (a stray file, a symlink...)."""

    path: str
    reason: str


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


@dataclass(frozen=True)
class RunResult:
    """One run of a submission on a prepared split; mirrors ``RUN/run.json``.

    ``isolated`` is False only for the process runner without bubblewrap; ``isolation`` says in
    words what confined the run. ``image`` is ``{id, digest, tags}`` for Docker runs, ``command``
    the argument list for process runs. ``limits`` are the limits in force (the task's, with
    overrides). ``error`` is a one-line reason when the run itself failed (non-zero exit,
    timeout, OOM kill), else None. ``inputs_sha256`` hashes the case ids and image bytes the
    submission saw; ``inputs_staging`` says how its images reached the snapshot (``hardlink``,
    ``copy`` or ``mixed``; ``copy`` for runs recorded before the field existed). A
    ``self-reported`` run (:mod:`bench.runners.selfreport`) holds predictions made outside the
    harness: no image, command, limits or inputs hash (None, empty).
    """

    run_dir: Path
    task: str
    task_sha256: str
    submission: dict
    runner: Literal["docker", "process", "self-reported"]
    isolated: bool
    isolation: str
    image: dict | None
    command: tuple[str, ...] | None
    limits: dict
    started_at: str
    ended_at: str
    duration_s: float
    exit_code: int | None
    timed_out: bool
    oom_killed: bool
    error: str | None
    inputs_sha256: str | None
    cases: tuple[CaseStatus, ...]
    rejected: tuple[Rejected, ...] = ()
    rejected_more: int = 0
    inputs_staging: Literal["hardlink", "copy", "mixed"] = "copy"

    @property
    def counts(self) -> dict[str, int]:
        """Number of cases per status (every status present, zeros included)."""
        counts = {"ok": 0, "missing": 0, "malformed": 0}
        for case in self.cases:
            counts[case.status] += 1
        return counts

    def status(self, case_id: str) -> CaseStatus:
        """The status of one case (KeyError when the case was not in the inputs)."""
        for case in self.cases:
            if case.case_id == case_id:
                return case
        raise KeyError(case_id)

    def to_json(self) -> dict:
        """The body of ``run.json``: schema version, sorted cases, counts."""
        return {
            "schema_version": SCHEMA_VERSION,
            "task": self.task,
            "task_sha256": self.task_sha256,
            "submission": dict(self.submission),
            "runner": self.runner,
            "isolated": self.isolated,
            "isolation": self.isolation,
            "image": dict(self.image) if self.image is not None else None,
            "command": list(self.command) if self.command is not None else None,
            "limits": dict(self.limits),
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_s": self.duration_s,
            "exit_code": self.exit_code,
            "timed_out": self.timed_out,
            "oom_killed": self.oom_killed,
            "error": self.error,
            "inputs_sha256": self.inputs_sha256,
            "inputs_staging": self.inputs_staging,
            "counts": self.counts,
            "cases": [
                {"case_id": c.case_id, "status": c.status, "reason": c.reason}
                for c in sorted(self.cases, key=lambda c: c.case_id)
            ],
            "rejected": [{"path": r.path, "reason": r.reason} for r in self.rejected],
            "rejected_more": self.rejected_more,
        }


def read_run(run_dir: str | Path) -> RunResult:
    """Read ``RUN/run.json`` back into a :class:`RunResult`.

    Raises
    ------
    ScoringError
        When ``run.json`` is missing, unreadable or lacks a field.
    """
    run_dir = Path(run_dir)
    path = run_dir / "run.json"
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        return RunResult(
            run_dir=run_dir,
            task=body["task"],
            task_sha256=body["task_sha256"],
            submission=body["submission"],
            runner=body["runner"],
            isolated=body["isolated"],
            isolation=body["isolation"],
            image=body["image"],
            command=tuple(body["command"]) if body["command"] is not None else None,
            limits=body["limits"],
            started_at=body["started_at"],
            ended_at=body["ended_at"],
            duration_s=body["duration_s"],
            exit_code=body["exit_code"],
            timed_out=body["timed_out"],
            oom_killed=body["oom_killed"],
            error=body["error"],
            inputs_sha256=body["inputs_sha256"],
            cases=tuple(CaseStatus(c["case_id"], c["status"], c["reason"]) for c in body["cases"]),
            rejected=tuple(Rejected(r["path"], r["reason"]) for r in body.get("rejected", [])),
            rejected_more=body.get("rejected_more", 0),
            inputs_staging=body.get("inputs_staging", "copy"),
        )
    except FileNotFoundError as error:
        raise ScoringError(
            f"{path}: no run.json; {run_dir} is not a run directory written by `bench run`."
        ) from error
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ScoringError(
            f"{path}: unreadable run record ({type(error).__name__}: {error}); "
            "re-run the submission with `bench run`."
        ) from error


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
