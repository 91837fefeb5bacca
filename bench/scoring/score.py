"""Score a run against a reference under the task's policies, and store the result with a receipt.

``score_run`` is a straight line: verify the reference (its own hash, then its split and task
hashes against the pinned split and the task spec), read the run's per-case statuses, score every
case (segmentation: one worker task per case through :func:`bench.parallel.map_ordered`, each
loading its own NIfTI files; classification: one prediction matrix per head), apply the
missing-prediction policy uniformly, then aggregate with bootstrap CIs, subgroup tables and
fairness gaps (:mod:`bench.scoring.aggregate`). The result is data; ``score_and_store`` writes it
through :mod:`bench.store`, atomically, with a copy of the run's logs; the receipt records the
paths of the run directory and the reference, from which ``bench rescore`` recomputes it later.

Determinism: rows are sorted by case id, worker results come back in case order, the bootstrap
is seeded from the task, and every float in scores.json is rounded to 10 significant digits, so
scoring the same inputs twice gives the same bytes apart from the times (started_at, ended_at,
and the run id, which starts with the time).
"""

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from bench.errors import ScoringError
from bench.io import SCHEMA_VERSION, rounded, sha256_json
from bench.metrics.segmentation import SCORE_FIELDS
from bench.parallel import SCHEDULER_ENV, map_ordered
from bench.prepare.reference import read_reference
from bench.provenance import hardware, harness, utc_now
from bench.runners.record import RunRecord, read_run
from bench.runners.selfreport import SELF_REPORTED
from bench.scoring.aggregate import aggregate
from bench.scoring.classification import head_data, head_probabilities, predicted_class, read_predictions
from bench.scoring.segmentation import alternative_column, case_item, mask_metrics, score_segmentation_case
from bench.splits.pinned import load_split
from bench.store import EntryId, Store, StoredRun, make_run_id
from bench.tasks import TaskSpec
from bench.text import clean_reason

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, str], None]
INLINE_VOXELS = 3 * 512 * 512 * 200
"""Below this many reference voxels in a run, per-case scoring runs in-process by default."""
BASE_COLUMNS = ("case_id", "patient_id", "site", "sex", "age_band", "status", "reason")
RECEIPT_RUN_FIELDS = ("submission", "runner", "isolated", "image", "command", "limits", "started_at",
                      "ended_at", "duration_s", "exit_code", "timed_out", "oom_killed", "error",
                      "task_sha256")
"""The run facts a receipt cites from run.json: submission, runner, image or command, limits, exit."""


@dataclass(frozen=True)
class ScoreResult:
    """Everything one scoring produces; :meth:`files` gives the bytes the store keeps.

    Attributes
    ----------
    task, run_id : str
        Where the result goes in the store (``results/<task>/<team>/<entry>/<run_id>/``).
    entry : EntryId
        The (team, entry) the run belongs to, as ``run.json`` records it.
    inputs_sha256 : str
        Hash of what decides the scores: task spec, split, reference and run outputs.
    per_case : pandas.DataFrame
        One row per reference case, sorted by case id (CONTRACTS section 7).
    scores : dict
        The scores.json body.
    receipt : dict
        The receipt.json body.
    """

    task: str
    entry: EntryId
    run_id: str
    inputs_sha256: str
    per_case: pd.DataFrame = field(repr=False)
    scores: dict = field(repr=False)
    receipt: dict = field(repr=False)


def score_run(
    spec: TaskSpec,
    run_dir: str | Path,
    reference_dir: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: ProgressCallback | None = None,
    tasks_dir: str | Path | None = None,
) -> ScoreResult:
    """Score the run in ``run_dir`` against the prepared reference in ``reference_dir``.

    Parameters
    ----------
    spec : TaskSpec
        The task; its policies, metrics, bootstrap and subgroups decide the scores.
    run_dir : path
        A run directory written by ``bench run`` (``run.json`` + ``outputs/``).
    reference_dir : path
        ``<prepared>/reference`` written by ``bench prepare``.
    workers : int, optional
        Local processes for per-case segmentation scoring; 1 runs in this process. Default:
        in this process for small runs (:func:`default_workers`), else one per core.
    scheduler : str, optional
        A dask.distributed scheduler address; per-case scoring becomes tasks on that cluster.
    progress : callable, optional
        ``progress(done, total, description)`` per scored case.
    tasks_dir : path, optional
        The user's tasks folder holding the pinned split (:func:`bench.tasks.user_tasks_dir`).

    Raises
    ------
    ScoringError
        The reference does not match the pinned split or the task spec, or the run dir is not
        a run of this task.
    """
    started = datetime.now(UTC)
    started_at = utc_now(started)
    reference_dir = Path(reference_dir).resolve()
    # segmentation: each worker checks the mask it scores, decompressing it once
    reference = read_reference(reference_dir, check_masks=spec.kind != "segmentation")
    _check_reference(spec, reference, reference_dir, tasks_dir)
    run = read_run(run_dir, task_id=spec.id)
    check_run_matches_reference(run, reference, reference_dir)
    if run.task_sha256 != spec.sha256:
        log.warning(
            "%s was produced with task spec %s, scoring with %s",
            run.run_dir,
            run.task_sha256,
            spec.sha256,
        )
    cases = _reference_cases(reference)
    statuses = _statuses(cases["case_id"].tolist(), run, spec)
    if spec.kind == "segmentation":
        per_case = _score_segmentation(
            spec, cases, statuses, run, reference_dir, workers=workers, scheduler=scheduler, progress=progress
        )
        heads = {}
    else:
        per_case, heads = _score_classification(spec, cases, statuses, run)
        if progress is not None:
            progress(len(cases), len(cases), "classification")
    per_case["reason"] = per_case["reason"].map(clean_reason)
    inputs_sha256 = sha256_json(
        {
            "task_sha256": spec.sha256,
            "split_sha256": reference.split_sha256,
            "reference_sha256": reference.reference_sha256,
            "outputs_sha256": run.outputs_sha256(),
        }
    )
    run_id = make_run_id(started, inputs_sha256)
    entry = run.entry
    body = aggregate(spec, per_case, heads)
    scores = rounded(
        {
            "schema_version": SCHEMA_VERSION,
            "task": spec.id,
            "submission": entry.name,
            "team": entry.team,
            "run_id": run_id,
            "primary_metric": spec.primary_key,
            **body,
            "counts": _counts(per_case),
            "policies": spec.policies.model_dump(mode="json"),
            "split": {
                "name": reference.split_name,
                "split": reference.split,
                "sha256": reference.split_sha256,
            },
        }
    )
    receipt = _receipt(spec, reference, reference_dir, run, per_case, run_id, inputs_sha256, started_at)
    return ScoreResult(spec.id, entry, run_id, inputs_sha256, per_case, scores, receipt)


def score_and_store(
    spec: TaskSpec,
    run_dir: str | Path,
    reference_dir: str | Path,
    *,
    results: str | Path,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: ProgressCallback | None = None,
    tasks_dir: str | Path | None = None,
    reference: dict | None = None,
) -> StoredRun:
    """Score a run (see :func:`score_run`) and write it into the results store at ``results``.

    ``reference`` marks a built-in reference entry (e.g. the confound floor: ``{"kind",
    "explanation", ...}``); it is kept in the receipt and boards draw the entry as a line, not a rank.

    The store entry holds receipt.json, per_case.csv, scores.json and a copy of the run's logs;
    the receipt records the absolute paths of the run directory and the reference, which
    ``bench rescore`` reads to recompute the entry. Written atomically by :class:`bench.store.Store`:
    an interruption at any point leaves no entry.
    """
    result = score_run(spec, run_dir, reference_dir, workers=workers, scheduler=scheduler, progress=progress,
                       tasks_dir=tasks_dir)
    receipt = result.receipt if reference is None else {**result.receipt, "reference_entry": reference}
    logs_dir = Path(run_dir) / "logs"
    logs = (
        {path.name: path for path in sorted(logs_dir.iterdir()) if path.is_file()}
        if logs_dir.is_dir()
        else {}
    )
    return Store(results).write_run(
        result.task,
        result.entry,
        result.run_id,
        receipt=receipt,
        scores=result.scores,
        per_case=result.per_case,
        logs=logs,
    )


def _check_reference(spec: TaskSpec, reference, reference_dir: Path, tasks_dir) -> None:
    """Refuse a reference made for another task, another spec version or another split."""
    if reference.task != spec.id:
        raise ScoringError(
            f"{reference_dir}: the reference is for task {reference.task!r}, not {spec.id!r}; "
            f"pass the reference prepared for {spec.id}."
        )
    if reference.task_sha256 != spec.sha256:
        raise ScoringError(
            f"{reference_dir}: the reference was prepared with task spec sha256 "
            f"{reference.task_sha256}, but task spec {spec.id!r} now hashes to "
            f"{spec.sha256}. Prepare the split again with `bench prepare` so reference and "
            f"spec agree."
        )
    pinned = load_split(spec.id, reference.split_name, directory=tasks_dir)
    if reference.split_sha256 != pinned.sha256:
        raise ScoringError(
            f"{reference_dir}: the reference's split sha256 {reference.split_sha256} does not "
            f"match the pinned split {pinned.path} ({pinned.sha256}). Prepare the reference again "
            "from the pinned split."
        )


def check_run_matches_reference(run: RunRecord, reference, reference_dir: Path) -> None:
    """Refuse a run made on another split, or on another preparation of the same split.

    The split is compared by name, part and sha256 (``run.json``'s ``split`` against
    ``reference.json``); the preparation by the digest of the prepared inputs, which the runner
    computed from what the submission read and ``bench prepare`` recorded beside the reference
    (another salt, download or image conversion gives another digest). A self-reported run saw
    no inputs, so only its split is compared.

    Raises
    ------
    ScoringError
        Naming what the run was made on and what the reference is.
    """
    where = run.run_dir / "run.json"
    ours = {"name": reference.split_name, "split": reference.split, "sha256": reference.split_sha256}
    if run.split is None:
        raise ScoringError(
            f"{where}: records no split, so it cannot be bound to the reference {reference_dir} "
            f"({_split_text(ours)}); it was recorded by an older harness. Run the submission again."
        )
    if dict(run.split) != ours:
        raise ScoringError(
            f"{where}: the run was made on split {_split_text(run.split)}, but the reference "
            f"{reference_dir} is split {_split_text(ours)}. Score it against the reference prepared "
            "with the inputs it ran on."
        )
    if run.runner == "self-reported":
        return
    if reference.inputs_sha256 is None:
        raise ScoringError(
            f"{reference_dir}: reference.json records no inputs_sha256 (prepared by an older harness), "
            f"so the run {run.run_dir} cannot be bound to it. Prepare the split again and rerun."
        )
    if run.inputs_sha256 != reference.inputs_sha256:
        raise ScoringError(
            f"{where}: the run read prepared inputs {run.inputs_sha256}, but the reference {reference_dir} "
            f"was prepared with inputs {reference.inputs_sha256} (same split {_split_text(ours)}, another "
            "preparation: another salt, download or conversion). Score it against the reference of the "
            "preparation it ran on."
        )


def _split_text(split) -> str:
    return f"{split.get('name')}/{split.get('split')} (sha256 {split.get('sha256')})"


def _reference_cases(reference) -> pd.DataFrame:
    """The reference's case records as a table sorted by case id, demographics as strings."""
    cases = reference.cases.copy()
    for column in ("patient_id", "site", "sex", "age_band"):
        if column not in cases.columns:
            cases[column] = ""
        cases[column] = cases[column].fillna("").astype(str)
    return cases.sort_values("case_id", kind="stable").reset_index(drop=True)


def _statuses(case_ids: list[str], run: RunRecord, spec: TaskSpec) -> dict[str, tuple[str, str]]:
    """Status and reason per reference case, cross-checking run.json against the output files."""
    statuses = {}
    for case_id in case_ids:
        entry = run.by_case.get(case_id)
        if entry is None:
            statuses[case_id] = ("missing", "not listed in run.json (the run did not report this case)")
        elif entry.status == "ok" and spec.kind == "segmentation" and not run.mask_path(case_id).is_file():
            statuses[case_id] = ("error", f"run.json says ok but outputs/masks/{case_id}.nii.gz is absent")
        else:
            statuses[case_id] = (entry.status, entry.reason)
    extra = sorted(set(run.by_case) - set(case_ids))
    if extra:
        log.warning(
            "%s lists %d case(s) not in the reference, ignored: %s", run.run_dir, len(extra), extra[:5]
        )
    return statuses


def default_workers(items: list[dict]) -> int | None:
    """Workers when none were asked for: in this process for small jobs, else one per core.

    Starting a local process pool costs seconds (each worker imports numpy, scipy and nibabel),
    while scoring a small case costs milliseconds, so jobs under :data:`INLINE_VOXELS` reference
    voxels in total (from the NIfTI headers; about three full-size CTs) run in this process.
    """
    voxels = 0
    for item in items:
        voxels += int(np.prod(nib.load(item["reference"]).shape))
        if voxels >= INLINE_VOXELS:
            return None
    return 1


def _score_segmentation(spec, cases, statuses, run, reference_dir, *, workers, scheduler, progress):
    items = []
    for case in cases.to_dict("records"):
        case_id = case["case_id"]
        status, reason = statuses[case_id]
        prediction = run.mask_path(case_id) if status == "ok" else None
        mask = reference_dir / "masks" / f"{case_id}.nii.gz"
        items.append(case_item(spec, case_id, mask, prediction, status, reason,
                               reference_sha256=case["mask_sha256"]))
    if workers is None and scheduler is None and not os.environ.get(SCHEDULER_ENV):
        workers = default_workers(items)
    results = map_ordered(
        score_segmentation_case, items, workers=workers, scheduler=scheduler, progress=progress
    )
    columns = [*SCORE_FIELDS, *mask_metrics(spec), alternative_column(spec)]
    rows = []
    for case, result in zip(cases.to_dict("records"), results, strict=True):
        row = {column: case[column] for column in BASE_COLUMNS[:5]}
        row.update(status=result["status"], reason=result["reason"])
        row.update(result["metrics"] or {name: np.nan for name in columns})
        if result["metrics"] is None:
            row["empty"] = ""
        rows.append(row)
    return pd.DataFrame(rows, columns=[*BASE_COLUMNS, *columns])


def _score_classification(spec, cases, statuses, run):
    predictions = read_predictions(run.predictions_path, spec)
    case_ids = cases["case_id"].tolist()
    ok = np.array([statuses[c][0] == "ok" for c in case_ids])
    have_row = np.array([c in predictions.index for c in case_ids])
    for position in np.flatnonzero(ok & ~have_row):
        statuses[case_ids[position]] = (
            "error",
            f"run.json says ok but predictions.csv has no row for {case_ids[position]}",
        )
    available = ok & have_row
    policy = spec.policies.missing_prediction
    table = cases[list(BASE_COLUMNS[:5])].copy()
    table["status"] = [statuses[c][0] for c in case_ids]
    table["reason"] = [_policy_reason(statuses[c][1], policy, statuses[c][0]) for c in case_ids]
    heads = {}
    for head in spec.heads:
        proba = head_probabilities(head, predictions, case_ids, available, policy)
        labels = cases[head.column] if head.column in cases.columns else pd.Series([""] * len(cases))
        table[head.name] = labels.fillna("").astype(str).to_numpy()
        for position, cls in enumerate(head.classes):
            table[cls] = proba[:, position]
        scored = np.isfinite(proba).all(axis=1)
        names = np.full(len(case_ids), "", dtype=object)
        if scored.any():
            names[scored] = np.asarray(head.classes, dtype=object)[predicted_class(head, proba[scored])]
        table[f"{head.name}_pred"] = names
        heads[head.name] = head_data(head, table[head.name], proba)
    return table.reset_index(drop=True), heads


def _policy_reason(reason: str, policy: str, status: str) -> str:
    if status == "ok":
        return reason
    rule = {
        "chance": "scored as uniform probabilities (policy missing_prediction=chance)",
        "exclude": "left out of the aggregates (policy missing_prediction=exclude)",
    }[policy]
    return f"{reason}; {rule}".lstrip("; ")


def _counts(per_case: pd.DataFrame) -> dict[str, int]:
    counts = {
        status: int((per_case["status"] == status).sum())
        for status in ("ok", "missing", "malformed", "error")
    }
    return {"cases": int(len(per_case)), **counts}


def _receipt(spec, reference, reference_dir, run, per_case, run_id, inputs_sha256, started_at) -> dict:
    failures = per_case.loc[per_case["status"] != "ok", ["case_id", "status", "reason"]]
    recorded = run.to_json()
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "inputs_sha256": inputs_sha256,
        "harness": harness(),
        "started_at": started_at,
        "ended_at": utc_now(),
        "submission": {
            key: run.submission.get(key) for key in ("name", "team", "description", "source")
        },
        "task": {"id": spec.id, "version": spec.version, "sha256": spec.sha256},
        "split": {"name": reference.split_name, "split": reference.split, "sha256": reference.split_sha256},
        "reference": {"sha256": reference.reference_sha256, "path": str(reference_dir)},
        "self_reported": run.runner == SELF_REPORTED,
        "run": {
            **{key: recorded[key] for key in RECEIPT_RUN_FIELDS},
            "path": str(Path(run.run_dir).resolve()),
            "outputs_sha256": run.outputs_sha256(),
        },
        "seed": {"bootstrap": spec.bootstrap.seed, "resamples": spec.bootstrap.resamples},
        "policies": spec.policies.model_dump(mode="json"),
        "hardware": hardware(),
        "exit_status": {key: recorded[key] for key in ("exit_code", "timed_out", "oom_killed", "error")},
        "case_errors": failures.to_dict("records"),
    }
