"""The run record: ``RUN/run.json``, written by the runner and read back by everything after it.

One frozen :class:`RunRecord` is both what :func:`bench.runners.run_submission` returns and
what :func:`read_run` gives back from disk; :meth:`RunRecord.to_json` is the body of
``run.json`` and nothing else parses that file. The runner copies only validated outputs into
``RUN/outputs``; scoring trusts neither blindly: a case listed ``ok`` whose file is absent, or a
reference case the run does not list at all, becomes a row with a status and a reason, never a
silent drop. :meth:`RunRecord.outputs_sha256` goes into the inputs hash of a stored result, so
a rerun on the same outputs lands on the same run id suffix.
"""

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from bench.errors import ScoringError
from bench.io import SCHEMA_VERSION
from bench.store import EntryId

CaseState = Literal["ok", "missing", "malformed"]
CASE_STATES = ("ok", "missing", "malformed")


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
class RunRecord:
    """One run of a submission on a prepared split; mirrors ``RUN/run.json``.

    ``isolated`` is False only for the process runner without bubblewrap; ``isolation`` says in
    words what confined the run. ``image`` is ``{id, digest, tags}`` for Docker runs, ``command``
    the argument list for process runs. ``limits`` are the limits in force (the task's, with
    overrides). ``error`` is a one-line reason when the run itself failed (non-zero exit,
    timeout, OOM kill), else None. ``inputs_sha256`` hashes the case ids and image bytes the
    submission saw; ``inputs_staging`` says how its images reached the snapshot (``hardlink``,
    ``copy`` or ``mixed``; ``copy`` for runs recorded before the field existed). ``survivors``
    is the check made after the run that none of its processes is left
    (:class:`bench.runners.result.Sweep` as ``{checked, survivors, killed, detail}``; None for
    runs recorded before the check existed, and for self-reported ones). A
    ``self-reported`` run (:mod:`bench.runners.selfreport`) holds predictions made outside the
    harness: no image, command, limits or inputs hash (None, empty). ``split`` is
    ``{name, split, sha256}`` of the prepared split the run read (from ``cases.json``; a
    self-reported run takes its reference's); None for runs recorded before it existed, which
    scoring refuses. ``interface`` is the container contract the submission followed
    (``native``, or ``grand-challenge``: one container per case); for the latter
    ``grand_challenge`` holds the sockets, the time budget and per case its job uuid, time
    share and end (:func:`bench.runners.grandchallenge.run_cases`).
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
    split: Mapping[str, str] | None = None
    survivors: dict | None = None
    interface: Literal["native", "grand-challenge"] = "native"
    grand_challenge: dict | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Number of cases per status (every status present, zeros included)."""
        counts = dict.fromkeys(CASE_STATES, 0)
        for case in self.cases:
            counts[case.status] += 1
        return counts

    @cached_property
    def by_case(self) -> Mapping[str, CaseStatus]:
        """Case id -> its status (read-only)."""
        return MappingProxyType({case.case_id: case for case in self.cases})

    def status(self, case_id: str) -> CaseStatus:
        """The status of one case (KeyError when the case was not in the inputs)."""
        return self.by_case[case_id]

    @property
    def outputs_dir(self) -> Path:
        return self.run_dir / "outputs"

    @property
    def entry(self) -> EntryId:
        """The (team, entry) the run belongs to, from ``run.json`` (never from a folder name).

        Raises
        ------
        ScoringError
            When ``run.json`` lacks the team or the entry name (a run recorded before entries
            were (team, entry) pairs): run the submission again.
        """
        block = self.submission or {}
        team, name = block.get("team"), block.get("name")
        if not (isinstance(team, str) and team.strip() and isinstance(name, str) and name.strip()):
            raise ScoringError(
                f"{self.run_dir / 'run.json'}: submission {dict(block)!r} lacks a team or an entry name; "
                "every stored run belongs to a (team, entry). Run the submission again with this harness "
                "(`bench run ... --team T --entry E` for a tarball or an image)."
            )
        return EntryId(team, name)

    def mask_path(self, case_id: str) -> Path:
        """Where a segmentation run keeps the validated mask of ``case_id``."""
        return self.outputs_dir / "masks" / f"{case_id}.nii.gz"

    @property
    def predictions_path(self) -> Path:
        """Where a classification run keeps its validated ``predictions.csv``."""
        return self.outputs_dir / "predictions.csv"

    def outputs_sha256(self) -> str:
        """sha256 over the case statuses and every output file (relative path + bytes).

        Times and logs are left out on purpose: they change between two runs of the same
        deterministic submission, the predictions do not.
        """
        digest = hashlib.sha256()
        statuses = sorted((case.case_id, case.status, case.reason) for case in self.cases)
        digest.update(json.dumps(statuses).encode())
        if self.outputs_dir.is_dir():
            for path in sorted(p for p in self.outputs_dir.rglob("*") if p.is_file() and not p.is_symlink()):
                digest.update(path.relative_to(self.outputs_dir).as_posix().encode() + b"\0")
                digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()

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
            "split": dict(self.split) if self.split is not None else None,
            "survivors": dict(self.survivors) if self.survivors is not None else None,
            "interface": self.interface,
            "grand_challenge": dict(self.grand_challenge) if self.grand_challenge is not None else None,
            "counts": self.counts,
            "cases": [
                {"case_id": c.case_id, "status": c.status, "reason": c.reason}
                for c in sorted(self.cases, key=lambda c: c.case_id)
            ],
            "rejected": [{"path": r.path, "reason": r.reason} for r in self.rejected],
            "rejected_more": self.rejected_more,
        }


def read_run(run_dir: str | Path, *, task_id: str | None = None) -> RunRecord:
    """Read ``RUN/run.json`` back into a :class:`RunRecord`; with ``task_id``, check it is that task's.

    Raises
    ------
    ScoringError
        When ``run.json`` is missing, unreadable, lacks a field, has a case entry without a
        case id or with an unknown status, or names another task.
    """
    run_dir = Path(run_dir)
    path = run_dir / "run.json"
    if not path.is_file():
        raise ScoringError(
            f"{path}: no run.json; {run_dir} is not a run directory written by `bench run` "
            "(run.json + outputs/). Run the submission first."
        )
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        record = _record(run_dir, body)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ScoringError(
            f"{path}: unreadable run record ({type(error).__name__}: {error}); "
            "re-run the submission with `bench run`."
        ) from error
    if task_id is not None and record.task != task_id:
        raise ScoringError(
            f"{path}: the run is for task {record.task!r}, not {task_id!r}; "
            f"score it with --task {record.task}."
        )
    return record


def _record(run_dir: Path, body: dict) -> RunRecord:
    cases = []
    for entry in body["cases"]:
        case_id, status = str(entry.get("case_id") or ""), entry.get("status")
        if not case_id or status not in CASE_STATES:
            raise ValueError(f"case entry {entry!r} needs a case_id and a status of ok, missing or malformed")
        cases.append(CaseStatus(case_id, status, str(entry.get("reason") or "")))
    return RunRecord(
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
        cases=tuple(cases),
        rejected=tuple(Rejected(r["path"], r["reason"]) for r in body.get("rejected", [])),
        rejected_more=body.get("rejected_more", 0),
        inputs_staging=body.get("inputs_staging", "copy"),
        split=body.get("split"),
        survivors=body.get("survivors"),
        interface=body.get("interface", "native"),
        grand_challenge=body.get("grand_challenge"),
    )
