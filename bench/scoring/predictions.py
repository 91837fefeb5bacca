"""Score predictions however they were made: a ``bench run`` directory, a plain folder, a CSV, a table.

:func:`score_predictions` is the notebook entry point (``bench.score_predictions``): it takes
the task by id, the predictions and the prepared reference, and returns the same
:class:`~bench.scoring.score.ScoreResult` the board is built from (per-case table, aggregates
with bootstrap CIs), with every option (NSD tolerance, missing-prediction and empty-mask
policies, bootstrap) read from the task spec, so a notebook and the board cannot disagree.
Predictions that did not come from ``bench run`` are first recorded as a self-reported run
(:mod:`bench.runners.selfreport`), then scored by :func:`~bench.scoring.score.score_run`
like any run. :func:`score_predictions_and_store` does the same into the results store, keeping
the self-reported run under ``<results>/.work/self-reported`` so ``bench rescore`` finds it.
"""

import os
import tempfile
from pathlib import Path

import pandas as pd

from bench.errors import ScoringError
from bench.io import write_csv
from bench.provenance import utc_now
from bench.runners.selfreport import is_run_directory, record_predictions
from bench.scoring.score import ProgressCallback, ScoreResult, score_and_store, score_run
from bench.store import EntryId, StoredRun
from bench.tasks import TaskSpec, load_task

Predictions = str | os.PathLike | pd.DataFrame


def score_predictions(
    task: str | os.PathLike | TaskSpec,
    predictions: Predictions,
    reference: str | os.PathLike,
    *,
    team: str = "local",
    entry: str = "notebook",
    workers: int | None = 1,
) -> ScoreResult:
    """Score ``predictions`` against a prepared ``reference`` under the task's own settings.

    Parameters
    ----------
    task : str, path or TaskSpec
        A task id (``ricord-1a-lesion-seg``), a task.yaml path, or a loaded spec.
    predictions : path or pandas.DataFrame
        A run directory from ``bench run``; a folder of ``<case_id>.nii.gz`` masks (nnU-Net's
        naming, or ``masks/<case_id>.nii.gz``); a ``predictions.csv`` (or a folder holding one);
        or, for classification, a DataFrame with ``case_id`` and one probability column per class.
    reference : path
        ``<prepared>/reference`` written by ``bench prepare``.
    team, entry : str, optional
        Who the result belongs to (not stored: the defaults only label the result).
    workers : int, optional
        Processes for per-case segmentation scoring (default 1: in this process; None: one per
        core for large runs).

    Returns
    -------
    ScoreResult
        ``per_case`` (one row per reference case, sorted by case id, with status and reason),
        ``scores`` (``metrics``: value, ci_low, ci_high per metric; subgroups), ``receipt``.

    Raises
    ------
    ScoringError, PrepareError
        Unreadable predictions or reference, a reference of another task or split.

    Examples
    --------
    >>> result = bench.score_predictions(
    ...     "ricord-1a-lesion-seg", "preds/", "prepared/reference")  # doctest: +SKIP
    >>> result.scores["metrics"]["dice"]["value"], result.per_case[["case_id", "dice"]]  # doctest: +SKIP
    """
    spec = task if isinstance(task, TaskSpec) else load_task(task)
    if _is_run(predictions):
        return score_run(spec, predictions, reference, workers=workers)
    with tempfile.TemporaryDirectory(prefix="bench-score-") as scratch:
        source = _source(predictions, Path(scratch), spec)
        run_dir = Path(scratch) / "run"
        record_predictions(spec, source, reference, run_dir, team=team, entry=entry)
        return score_run(spec, run_dir, reference, workers=workers)


def score_predictions_and_store(
    spec: TaskSpec,
    predictions: str | os.PathLike,
    reference: str | os.PathLike,
    *,
    results: str | os.PathLike,
    team: str | None = None,
    entry: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: ProgressCallback | None = None,
    tasks_dir: str | os.PathLike | None = None,
) -> StoredRun:
    """Score a run directory, or a plain folder / CSV as a self-reported run, into the store.

    A plain folder is recorded first under ``<results>/.work/self-reported/<task>/`` (the receipt
    points there, so ``bench rescore`` can recompute it); the stored receipt says
    ``self_reported: true`` and the board marks the entry. ``team`` and ``entry`` name it (a
    folder's name never does); a run directory already names its entry in ``run.json``.
    ``tasks_dir`` is the user's tasks
    folder holding the pinned split (:func:`bench.tasks.user_tasks_dir`).
    """
    run_dir = Path(predictions)
    if not is_run_directory(run_dir):
        if not team or not entry:
            raise ScoringError(
                f"{predictions}: predictions made outside the harness need --team and --entry to be "
                "stored; the folder's name is never an entry's name."
            )
        stamp = utc_now().replace(":", "").replace("-", "").replace(".", "")
        work = Path(results) / ".work" / "self-reported" / spec.id / EntryId(team, entry).key
        work.mkdir(parents=True, exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix=f"{stamp}-", dir=work))
        run_dir.rmdir()
        record_predictions(spec, predictions, reference, run_dir, team=team, entry=entry)
    elif team is not None or entry is not None:
        raise ScoringError(
            f"{predictions} is a run directory; its team and entry come from run.json, "
            "so --team and --entry apply only to a plain predictions folder."
        )
    return score_and_store(
        spec, run_dir, reference, results=results, workers=workers, scheduler=scheduler, progress=progress,
        tasks_dir=tasks_dir,
    )


def _is_run(predictions: Predictions) -> bool:
    return not isinstance(predictions, pd.DataFrame) and is_run_directory(predictions)


def _source(predictions: Predictions, scratch: Path, spec: TaskSpec) -> Path:
    """A path for :func:`record_predictions`: the given one, or a DataFrame written as predictions.csv."""
    if not isinstance(predictions, pd.DataFrame):
        return Path(predictions)
    if spec.kind != "classification":
        raise ScoringError(
            f"task {spec.id} is {spec.kind}: pass a folder of <case_id>.nii.gz masks, not a DataFrame."
        )
    path = scratch / "predictions.csv"
    write_csv(path, predictions)
    return path
