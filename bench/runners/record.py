"""Reading a run directory (``RUN/run.json`` + ``RUN/outputs``) for scoring.

The runner writes ``run.json`` with one status per case (ok, missing, malformed) and copies only
validated outputs. Scoring trusts neither blindly: a case listed ``ok`` whose file is absent, or a
reference case the run does not list at all, becomes a row with a status and a reason, never a
silent drop. The content hash of the outputs goes into the inputs hash of the stored result, so a
rerun on the same outputs lands on the same run id suffix.
"""

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bench.errors import ScoringError
from bench.store import EntryId

STATUSES = ("ok", "missing", "malformed", "error")


@dataclass(frozen=True)
class CaseStatus:
    """What the runner said about one case: ``ok``, ``missing`` or ``malformed``, with a reason."""

    status: str
    reason: str


@dataclass(frozen=True)
class RunRecord:
    """A run directory as scoring sees it.

    Attributes
    ----------
    run_dir : Path
        The directory holding ``run.json`` and ``outputs/``.
    meta : Mapping
        ``run.json`` without its ``cases`` list (submission, runner, image or command, limits,
        times, exit status), copied into the receipt.
    cases : Mapping[str, CaseStatus]
        Per-case status from ``run.json``.
    """

    run_dir: Path
    meta: MappingProxyType
    cases: MappingProxyType = field(repr=False)

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
        block = self.meta.get("submission") or {}
        team, name = block.get("team"), block.get("name")
        if not (isinstance(team, str) and team.strip() and isinstance(name, str) and name.strip()):
            raise ScoringError(
                f"{self.run_dir / 'run.json'}: submission {dict(block)!r} lacks a team or an entry name; "
                "every stored run belongs to a (team, entry). Run the submission again with this harness "
                "(`bench run ... --team T --entry E` for a tarball or an image)."
            )
        return EntryId(team, name)

    def mask_path(self, case_id: str) -> Path:
        return self.outputs_dir / "masks" / f"{case_id}.nii.gz"

    @property
    def predictions_path(self) -> Path:
        return self.outputs_dir / "predictions.csv"


def read_run(run_dir: str | Path, *, task_id: str) -> RunRecord:
    """Read ``run_dir/run.json`` and check it belongs to ``task_id``.

    Raises
    ------
    ScoringError
        When run.json is missing, not JSON, lacks ``cases`` or names another task.
    """
    run_dir = Path(run_dir)
    path = run_dir / "run.json"
    if not path.is_file():
        raise ScoringError(
            f"{run_dir}: no run.json; expected a run directory written by `bench run` "
            f"(run.json + outputs/). Run the submission first."
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ScoringError(f"{path}: not readable JSON ({error}); rerun the submission.") from error
    if not isinstance(raw, dict) or not isinstance(raw.get("cases"), list):
        raise ScoringError(
            f"{path}: expected an object with a 'cases' list (see CONTRACTS section 6), "
            f"got {type(raw).__name__}."
        )
    if raw.get("task") != task_id:
        raise ScoringError(
            f"{path}: the run is for task {raw.get('task')!r}, not {task_id!r}; "
            f"score it with --task {raw.get('task')}."
        )
    cases: dict[str, CaseStatus] = {}
    for entry in raw["cases"]:
        case_id = str(entry.get("case_id", ""))
        status = entry.get("status")
        if not case_id or status not in ("ok", "missing", "malformed"):
            raise ScoringError(
                f"{path}: case entry {entry!r} needs a case_id and a status of ok, missing or malformed."
            )
        cases[case_id] = CaseStatus(status, str(entry.get("reason") or ""))
    meta = {key: value for key, value in raw.items() if key != "cases"}
    return RunRecord(run_dir, MappingProxyType(meta), MappingProxyType(cases))


def outputs_sha256(run: RunRecord) -> str:
    """sha256 over run.json's case statuses and every output file (relative path + bytes).

    Times and logs are left out on purpose: they change between two runs of the same
    deterministic submission, the predictions do not.
    """
    digest = hashlib.sha256()
    statuses = sorted((case_id, s.status, s.reason) for case_id, s in run.cases.items())
    digest.update(json.dumps(statuses).encode())
    if run.outputs_dir.is_dir():
        for path in sorted(p for p in run.outputs_dir.rglob("*") if p.is_file() and not p.is_symlink()):
            digest.update(path.relative_to(run.outputs_dir).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def receipt_run_fields(run: RunRecord) -> dict[str, Any]:
    """The run facts a receipt cites: submission, runner, image or command, limits, exit status."""
    keep = (
        "submission",
        "runner",
        "isolated",
        "image",
        "command",
        "limits",
        "started_at",
        "ended_at",
        "duration_s",
        "exit_code",
        "timed_out",
        "oom_killed",
        "error",
        "task_sha256",
    )
    return {key: run.meta[key] for key in keep if key in run.meta}
