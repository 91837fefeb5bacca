"""Recompute every stored run with the current harness and report what changed.

The reproducibility check an organizer runs after upgrading: each stored run is scored again
from the run directory and the reference its receipt names (``receipt.run.path``,
``receipt.reference.path``; ``bench evaluate`` keeps both under ``<results>/.work``), and the
fresh aggregates, counts, per-case values and ranks are compared with the stored ones. Nothing
in the store is modified. A run whose inputs are gone, or whose reference no longer matches the
task spec or pinned split, is listed as skipped with the reason, never silently passed.

Values are compared in their stored form (10 significant digits), so a change shows up exactly
when a stored file would be written differently. Ranks come from the leaderboard's own board
functions (:func:`bench.ranking.board.build_boards`, or per challenge phase
:func:`bench.ranking.board.build_phase_boards`), so a rank rescore reports is a rank a board
shows. In a challenge the run that counts is picked again on the rescored values (a ``best``
phase may then count another run: reported as a change of the counted run); sealed phases are
ranked too, since rescore is the organizer's check, not a publication.
"""

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from bench.challenges import Challenge, Ledger, load_challenge, utc_now
from bench.errors import BenchError, ScoringError
from bench.io import csv_text, float_text
from bench.ranking.board import Board, build_boards, build_phase_boards
from bench.scoring.score import ScoreResult, score_run
from bench.store import Store, StoredRun, plain
from bench.tasks import load_task

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Change:
    """One difference between a stored run and its rescoring (values as text)."""

    task: str
    submission: str
    run_id: str
    what: str
    stored: str
    now: str


@dataclass(frozen=True)
class RankRow:
    """One entry of one board: its rank from the stored runs and after rescoring."""

    task: str
    board: str
    split: str
    split_sha256: str
    submission: str
    run_id: str
    stored: int
    now: int
    board_size: int
    now_run_id: str = ""
    """The run that counts after rescoring (a challenge phase counting the ``best`` run may switch)."""


@dataclass(frozen=True)
class RescoreReport:
    """``checked`` runs rescored, the ``changes`` found, runs ``skipped`` with the reason, and
    the ``ranks`` of every board entry (the leaderboard's boards, stored and rescored)."""

    checked: int
    changes: tuple[Change, ...]
    skipped: tuple[tuple[str, str], ...]
    ranks: tuple[RankRow, ...] = ()


def rescore_store(
    results: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: ProgressCallback | None = None,
    tasks_dir: str | Path | None = None,
    challenges: Sequence[str | Path] = (),
) -> RescoreReport:
    """Rescore every run in the store at ``results``; report changed scores, counts, cases and ranks.

    Parameters
    ----------
    results : path
        Root of the results store.
    workers, scheduler
        As for :func:`bench.scoring.score.score_run` (per-case scoring of each run).
    progress : callable, optional
        ``progress(done, total, description)`` per run.
    tasks_dir : path, optional
        The user's tasks folder (:func:`bench.tasks.user_tasks_dir`).
    challenges : paths, optional
        Challenge files: the ranks reported are those of their phase boards (as
        ``bench leaderboard build --challenge``), else of the latest run per entry and split.
    """
    loaded = [load_challenge(path) for path in challenges]
    runs = Store(results).runs()
    changes: list[Change] = []
    skipped: list[tuple[str, str]] = []
    fresh: dict[Path, ScoreResult] = {}
    for done, stored in enumerate(runs, start=1):
        label = f"{stored.task}/{stored.submission}/{stored.run_id}"
        try:
            result = _rescore_one(stored, workers=workers, scheduler=scheduler, tasks_dir=tasks_dir)
        except BenchError as error:
            log.warning("cannot rescore %s: %s", label, error)
            skipped.append((label, str(error)))
        else:
            fresh[stored.path] = result
            changes.extend(_compare(stored, result))
        if progress is not None:
            progress(done, len(runs), label)
    ranks = _ranks(Store(results), fresh, tasks_dir, loaded)
    changes.extend(_rank_changes(ranks))
    return RescoreReport(len(fresh), tuple(changes), tuple(skipped), tuple(ranks))


def _rescore_one(stored: StoredRun, *, workers, scheduler, tasks_dir) -> ScoreResult:
    receipt = plain(stored.receipt)
    run_dir = receipt.get("run", {}).get("path")
    reference_dir = receipt.get("reference", {}).get("path")
    for what, path in (("run directory", run_dir), ("reference", reference_dir)):
        if not path or not Path(path).is_dir():
            raise ScoringError(
                f"the {what} named in its receipt ({path}) is not there; restore it to rescore"
            )
    return score_run(load_task(stored.task, directory=tasks_dir), run_dir, reference_dir, workers=workers,
                     scheduler=scheduler, tasks_dir=tasks_dir)


def _text(value) -> str:
    if isinstance(value, float):
        return float_text(value)
    return "" if value is None else str(value)


def _compare(stored: StoredRun, result: ScoreResult) -> list[Change]:
    def change(what, old, new):
        return Change(stored.task, str(stored.entry), stored.run_id, what, _text(old), _text(new))

    out = []
    old_metrics, new_metrics = plain(stored.scores["metrics"]), result.scores["metrics"]
    for key in sorted(set(old_metrics) | set(new_metrics)):
        old, new = old_metrics.get(key, {}), new_metrics.get(key, {})
        for part in ("value", "ci_low", "ci_high"):
            if old.get(part) != new.get(part):
                out.append(change(f"{key}.{part}" if part != "value" else key, old.get(part), new.get(part)))
    old_counts, new_counts = plain(stored.scores["counts"]), result.scores["counts"]
    for key in sorted(set(old_counts) | set(new_counts)):
        if old_counts.get(key) != new_counts.get(key):
            out.append(change(f"counts.{key}", old_counts.get(key), new_counts.get(key)))
    out.extend(_per_case_changes(stored, _as_stored(result.per_case), change))
    return out


def _as_stored(per_case: pd.DataFrame) -> pd.DataFrame:
    """The per-case table as it reads back from per_case.csv (same float format, same dtypes)."""
    text = csv_text(per_case)
    return (
        pd.read_csv(io.StringIO(text), dtype={"case_id": str}).sort_values("case_id").reset_index(drop=True)
    )


def _per_case_changes(stored: StoredRun, now: pd.DataFrame, change) -> list[Change]:
    old = stored.per_case
    if list(old["case_id"]) != list(now["case_id"]):
        return [change("per_case.case_id", f"{len(old)} cases", f"{len(now)} cases")]
    out = []
    for column in sorted(set(old.columns) | set(now.columns)):
        if column not in old.columns or column not in now.columns:
            out.append(
                change(
                    f"per_case.{column}",
                    "present" if column in old else "absent",
                    "present" if column in now else "absent",
                )
            )
            continue
        a, b = old[column], now[column]
        same = (a == b) | (a.isna() & b.isna())
        if not same.all():
            first = int(np.flatnonzero(~same.to_numpy())[0])
            out.append(
                change(
                    f"per_case.{column} ({int((~same).sum())} cases, e.g. {old['case_id'][first]})",
                    a.iloc[first],
                    b.iloc[first],
                )
            )
    return out


def _ranks(store: Store, fresh: dict[Path, ScoreResult], tasks_dir,
           challenges: list[Challenge]) -> list[RankRow]:
    """Every board's ranks, stored and rescored, by the leaderboard's own board functions.

    The boards are those ``bench leaderboard build`` makes (with the same challenges); the
    rescored boards are built from the same runs with each rescored run's fresh scores and
    per-case table (a skipped run keeps its stored ones).
    """
    tasks = {c.task for c in challenges}
    runs = [run for task in sorted(tasks) for run in store.runs(task)] if challenges else store.latest_runs()
    events = Ledger(store.root).events() if challenges else []
    tasks = tasks or {run.task for run in runs}
    rows = []
    for task in sorted(tasks):
        spec = load_task(task, directory=tasks_dir)
        task_runs = [run for run in runs if run.task == task and not run.reference_entry]

        def boards(candidates: list[StoredRun], spec=spec) -> list[Board]:
            if not challenges:
                return build_boards(spec, candidates)
            now = utc_now()
            return [board for challenge in challenges if challenge.task == spec.id
                    for board in build_phase_boards(spec, challenge, candidates, events, now=now,
                                                    reveal=True)]

        after = {(board.key, board.split_sha256): {e.run.entry: e for e in board.entries}
                 for board in boards([_rescored(run, fresh) for run in task_runs])}
        for board in boards(task_runs):
            for entry in board.entries:
                now = after[(board.key, board.split_sha256)][entry.run.entry]
                rows.append(RankRow(task, board.key, board.split, board.split_sha256, str(entry.run.entry),
                                    entry.run.run_id, entry.rank, now.rank, len(board.entries),
                                    now.run.run_id))
    return rows


def _rescored(run: StoredRun, fresh: dict[Path, ScoreResult]) -> StoredRun:
    result = fresh.get(run.path)
    if result is None:
        return run
    return replace(run, scores=result.scores, per_case=_as_stored(result.per_case))


def _rank_changes(rows: list[RankRow]) -> list[Change]:
    """A change for every entry whose rank moved on a board of two or more entries, and for every
    entry of a phase whose counted run is another one after rescoring."""
    changes = [Change(row.task, row.submission, row.run_id, f"counted run ({row.board})", row.run_id,
                      row.now_run_id) for row in rows if row.now_run_id != row.run_id]
    changes.extend(Change(row.task, row.submission, row.run_id, f"rank ({row.split})", str(row.stored),
                          str(row.now)) for row in rows if row.board_size > 1 and row.stored != row.now)
    return changes
