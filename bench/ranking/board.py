"""From the results store to ranked boards: one board per task and scored split.

A board holds the latest run of every submission scored on the same task, split file (name
and sha256) and split part (validation, test, ...): runs on different splits never share a
ranking. The ranking follows the task's declared scheme on the per-case matrix of the
primary metric as the scorer left it (policies applied, NaN = case does not count). Shown
scores and their confidence intervals are the scorer's (``scores.json``); ranks, rank
intervals and tied groups come from :mod:`bench.ranking.schemes`.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.errors import LeaderboardError
from bench.metrics.registry import METRICS
from bench.ranking.schemes import (
    BootstrapRanks,
    RankResult,
    bootstrap_ranks,
    bootstrap_ranks_from,
    rank_aggregates,
    rank_entries,
    tied_groups,
)
from bench.ranking.statistics import resampled_auroc
from bench.store import StoredRun, slugify
from bench.tasks import TaskSpec

log = logging.getLogger(__name__)

SPLIT_ORDER = {"test": 0, "validation": 1, "train": 2}


@dataclass(frozen=True, eq=False)
class BoardEntry:
    """One submission's row on a board."""

    run: StoredRun
    rank: int
    ranking_score: float
    value: float
    ci_low: float
    ci_high: float
    rank_low: int | None
    rank_high: int | None
    median_rank: float | None
    group: int
    cases: int
    ok: int
    failures: int
    spec_matches: bool

    @property
    def page(self) -> str:
        """The entry's page relative to its board folder: ``<team slug>/<entry slug>.html``."""
        return f"{self.run.submission}.html"


@dataclass(frozen=True, eq=False)
class Board:
    """A ranked table for one task on one scored split."""

    spec: TaskSpec
    split_name: str
    split: str
    split_sha256: str
    entries: tuple[BoardEntry, ...]
    ranking: RankResult
    bootstrap: BootstrapRanks | None
    matrix: pd.DataFrame | None
    note: str

    @property
    def key(self) -> str:
        """Folder name of the board inside its task folder, e.g. ``test-synthetic``."""
        return f"{self.split}-{slugify(self.split_name)}"

    @property
    def hide_per_case(self) -> bool:
        """Whether the task hides per-case scores on this split (test, by default)."""
        return self.split in self.spec.leaderboard.hide_per_case_for

    @property
    def clusters(self) -> str:
        return self.spec.bootstrap.cluster or "case"


def build_boards(spec: TaskSpec, runs: list[StoredRun]) -> list[Board]:
    """Group ``runs`` (latest per submission and split) of one task into ranked boards."""
    groups: dict[tuple[str, str, str], list[StoredRun]] = defaultdict(list)
    for run in runs:
        groups[(run.split_name, run.split, run.split_sha256)].append(run)
    boards = [_board(spec, key, sorted(members, key=lambda r: r.submission))
              for key, members in groups.items()]
    return sorted(boards, key=lambda b: (SPLIT_ORDER.get(b.split, 9), b.split_name, b.split_sha256))


def _board(spec: TaskSpec, key: tuple[str, str, str], runs: list[StoredRun]) -> Board:
    split_name, split, split_sha = key
    metric = spec.primary_key.split(".")[-1]
    level = METRICS[metric].level
    direction = spec.primary_direction
    method = spec.ranking.method
    names = [run.submission for run in runs]
    matrix, boot, note = None, None, ""
    if level == "case":
        matrix = _case_matrix(spec, runs)
        ranking = rank_entries(matrix, method=method, aggregate=spec.ranking.aggregate,
                               direction=direction, alpha=spec.ranking.alpha)
        boot = bootstrap_ranks(matrix, ranking, resamples=spec.bootstrap.resamples, seed=spec.bootstrap.seed,
                               confidence=spec.bootstrap.confidence,
                               clusters=_clusters(spec, runs, matrix.index),
                               strata=_strata(spec, runs, matrix.index))
    else:
        if method != "aggregate-then-rank":
            raise LeaderboardError(
                f"task {spec.id}: ranking method {method!r} needs a per-case primary metric, but "
                f"{spec.primary_key!r} is computed over the whole set; use 'aggregate-then-rank' in "
                f"tasks/{spec.id}/task.yaml")
        if metric == "auroc":
            labels, probabilities, classes, positive, case_ids = _classification_arrays(spec, runs)
            full_set = np.ones((1, len(labels)), dtype=np.int64)
            values = resampled_auroc(labels, probabilities, classes, full_set, positive=positive)[0]
            ranking = rank_aggregates(pd.Series(values, index=names), direction=direction)

            def statistic(counts: np.ndarray) -> np.ndarray:
                return resampled_auroc(labels, probabilities, classes, counts, positive=positive)

            boot = bootstrap_ranks_from(statistic, len(labels), ranking,
                                        resamples=spec.bootstrap.resamples, seed=spec.bootstrap.seed,
                                        confidence=spec.bootstrap.confidence,
                                        clusters=_clusters(spec, runs, case_ids),
                                        strata=labels if spec.bootstrap.stratify else None)
        else:
            values = [_primary(run, spec)[0] for run in runs]
            ranking = rank_aggregates(pd.Series(values, index=names), direction=direction)
            note = (f"{spec.primary_key} is computed over the whole set and has no per-case values: "
                    "ranks come from the scores without rank intervals or tied groups.")
    groups = tied_groups(ranking, boot)
    entries = []
    for index in ranking.order:
        run = runs[index]
        value, ci_low, ci_high = _primary(run, spec)
        counts = run.scores["counts"]
        entries.append(BoardEntry(
            run=run, rank=int(ranking.ranks[index]), ranking_score=float(ranking.scores[index]),
            value=value, ci_low=ci_low, ci_high=ci_high,
            rank_low=int(boot.rank_low[index]) if boot is not None else None,
            rank_high=int(boot.rank_high[index]) if boot is not None else None,
            median_rank=float(boot.median_rank[index]) if boot is not None else None,
            group=int(groups[index]), cases=int(counts["cases"]), ok=int(counts["ok"]),
            failures=int(counts["missing"]) + int(counts["malformed"]) + int(counts["error"]),
            spec_matches=run.task_sha256 == spec.sha256))
    return Board(spec, split_name, split, split_sha, tuple(entries), ranking, boot, matrix, note)


def _primary(run: StoredRun, spec: TaskSpec) -> tuple[float, float, float]:
    entry = run.scores["metrics"].get(spec.primary_key) or {}
    return tuple(_float(entry.get(key)) for key in ("value", "ci_low", "ci_high"))  # type: ignore[return-value]


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _case_matrix(spec: TaskSpec, runs: list[StoredRun]) -> pd.DataFrame:
    column = spec.primary_key
    series = {}
    for run in runs:
        if column not in run.per_case.columns:
            raise LeaderboardError(f"{run.path / 'per_case.csv'}: no column {column!r} for the primary "
                                   f"metric of task {spec.id}; rescore the run with this harness")
        series[run.submission] = pd.to_numeric(run.per_case.set_index("case_id")[column], errors="coerce")
    return pd.DataFrame(series).sort_index()


def _clusters(spec: TaskSpec, runs: list[StoredRun], case_ids) -> np.ndarray | None:
    column = spec.bootstrap.cluster
    return _case_column(runs, column, case_ids) if column else None


def _strata(spec: TaskSpec, runs: list[StoredRun], case_ids) -> np.ndarray | None:
    """The scorer's strata (:mod:`bench.scoring.aggregate`) when ``bootstrap.stratify`` is set.

    Classification: the reference class of the primary head; segmentation: whether the
    reference mask is empty (``volume_ref_ml == 0``).
    """
    if not spec.bootstrap.stratify:
        return None
    if spec.kind == "classification":
        return _case_column(runs, spec.primary_key.split(".")[0], case_ids)
    volumes = _case_column(runs, "volume_ref_ml", case_ids)
    if volumes is None:
        return None
    return pd.to_numeric(pd.Series(volumes), errors="coerce").eq(0).to_numpy()


def _case_column(runs: list[StoredRun], column: str, case_ids) -> np.ndarray | None:
    """One column of the runs' per-case tables, by case id (the first run that has the case)."""
    frames = [run.per_case.set_index("case_id")[column] for run in runs if column in run.per_case.columns]
    if not frames:
        return None
    mapping = pd.concat(frames).astype(str)
    mapping = mapping[~mapping.index.duplicated()]
    return mapping.reindex(pd.Index(case_ids)).fillna("").to_numpy() if len(mapping) else None


def _classification_arrays(spec: TaskSpec, runs: list[StoredRun]):
    head_name = spec.primary_key.split(".")[0]
    head = next(h for h in spec.heads if h.name == head_name)
    classes = list(head.classes)
    positive = head.positive if len(classes) == 2 else None
    label_column = head.name
    tables = []
    for run in runs:
        missing = [c for c in [label_column, *classes] if c not in run.per_case.columns]
        if missing:
            raise LeaderboardError(f"{run.path / 'per_case.csv'}: lacks column(s) {missing} needed to "
                                   f"rank task {spec.id} by {spec.primary_key}")
        tables.append(run.per_case.set_index("case_id"))
    case_ids = sorted(set().union(*(t.index for t in tables)))
    labels = pd.concat([t[label_column] for t in tables]).astype(str)
    conflicting = labels.groupby(level=0).nunique()
    if (conflicting > 1).any():
        bad = list(conflicting[conflicting > 1].index[:5])
        raise LeaderboardError(f"task {spec.id}: runs disagree on the reference label of case(s) {bad}; "
                               "they were scored against different references")
    labels = labels[~labels.index.duplicated()].reindex(case_ids).to_numpy()
    probabilities = np.stack([t.reindex(case_ids)[classes].apply(pd.to_numeric, errors="coerce").to_numpy()
                              for t in tables], axis=1)
    return labels, probabilities, classes, positive, case_ids
