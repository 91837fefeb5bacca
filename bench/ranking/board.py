"""From the results store to ranked boards: one board per task and scored split.

A board holds the latest run of every submission scored on the same task, split file (name
and sha256) and split part (validation, test, ...): runs on different splits never share a
ranking. A per-case primary (Dice, HD95, ...) is ranked by the task's declared scheme on the
per-case matrix as the scorer left it (policies applied, NaN = case does not count); a primary
computed over the whole set (AUROC, kappa, ...) is ranked by the scorer's value in
``scores.json``, the value the board shows. A board is thus a function of the stored numbers:
:func:`build_boards` is the one function that turns stored runs into ranked boards, for the
leaderboard and for ``bench rescore`` alike. Rank intervals and tied groups come from
:mod:`bench.ranking.schemes` on resamples drawn by the scorer's bootstrap design
(:mod:`bench.scoring.bootstrap`); an AUROC primary is recomputed on them from the per-case
probabilities (:mod:`bench.ranking.statistics`), and on a binary head each entry is compared with
the leader by DeLong's paired test.

In a challenge (:mod:`bench.challenges`), :func:`build_phase_boards` makes one board per phase
instead: its rows are exactly the runs :func:`bench.challenges.counted_runs` selects, each with the
entry's run history from the ledger; a phase whose scores show only after it closes gives, until
then, a *sealed* board that holds no score at all (no entries, ranking or matrix), only who
submitted and when.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import pandas as pd

from bench.challenges import Challenge, Event, Phase, counted_runs
from bench.errors import LeaderboardError
from bench.metrics.registry import METRICS
from bench.metrics.uncertainty import PairedComparison, delong_test
from bench.parallel import one_blas_thread
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
from bench.scoring.bootstrap import BootstrapDesign, class_strata, design, empty_reference_strata
from bench.scoring.classification import class_codes
from bench.store import EntryId, StoredRun, slugify
from bench.tasks import TaskSpec

log = logging.getLogger(__name__)

SPLIT_ORDER = {"test": 0, "validation": 1, "train": 2}


@dataclass(frozen=True)
class HistoryEvent:
    """One ledger event of an entry in a phase, as a board shows it."""

    at: str
    event: str
    reason: str
    run_id: str
    value: float | None
    """The primary value of ``run_id``; None without a run or while the phase's scores are sealed."""
    counts: bool
    """Whether ``run_id`` is the run that counts for the entry (always False while sealed)."""


@dataclass(frozen=True)
class BoardPhase:
    """The challenge phase a board ranks, and whether its scores are sealed at build time."""

    challenge: str
    challenge_title: str
    id: str
    title: str
    opens: datetime
    closes: datetime
    counts: str
    scores: str
    per_day: int
    total: int
    sealed: bool


@dataclass(frozen=True)
class Submitted:
    """An entry of a sealed phase board: who submitted and when, without any score."""

    team: str
    name: str
    slug: str
    first_at: str
    last_at: str
    scored: int
    counted: bool
    """Whether a run of the entry counts: False in a ``chosen`` phase until the team chooses."""
    history: tuple[HistoryEvent, ...]


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
    delong: PairedComparison | None = None
    """Binary AUROC boards: DeLong's paired test of the leader's AUROC minus this entry's."""
    history: tuple[HistoryEvent, ...] = ()
    """Phase boards: every ledger event of the entry in the phase, in ledger order."""

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
    ranking: RankResult | None
    """None when the board has no entries (a sealed phase, or a phase nobody has a counted run in)."""
    bootstrap: BootstrapRanks | None
    matrix: pd.DataFrame | None
    note: str
    phase: BoardPhase | None = None
    submitted: tuple[Submitted, ...] = ()
    """Sealed phase boards only: every entry with a scored run in the phase that is not withdrawn."""

    @property
    def key(self) -> str:
        """Folder name of the board inside its task folder: ``test-synthetic``, or
        ``<challenge>-<phase>`` for a phase board."""
        if self.phase is not None:
            return f"{self.phase.challenge}-{self.phase.id}"
        return f"{self.split}-{slugify(self.split_name)}"

    @property
    def sealed(self) -> bool:
        """Whether the board is a phase whose scores are not published yet."""
        return self.phase is not None and self.phase.sealed

    @property
    def hide_per_case(self) -> bool:
        """Whether the task hides per-case scores on this split (test, by default)."""
        return self.split in self.spec.leaderboard.hide_per_case_for

    @property
    def compared_by_delong(self) -> bool:
        """Whether entries carry DeLong's paired test against the leader (binary AUROC boards)."""
        return any(entry.delong is not None for entry in self.entries)

    @property
    def clusters(self) -> str:
        return self.spec.bootstrap.cluster or "case"


def build_boards(spec: TaskSpec, runs: list[StoredRun]) -> list[Board]:
    """Group ``runs`` (latest per submission and split) of one task into ranked boards."""
    groups: dict[tuple[str, str, str], list[StoredRun]] = defaultdict(list)
    for run in runs:
        groups[(run.split_name, run.split, run.split_sha256)].append(run)
    with one_blas_thread():
        boards = [_board(spec, key, sorted(members, key=lambda r: r.submission))
                  for key, members in groups.items()]
    return sorted(boards, key=lambda b: (SPLIT_ORDER.get(b.split, 9), b.split_name, b.split_sha256))


def build_phase_boards(spec: TaskSpec, challenge: Challenge, runs: list[StoredRun], events: list[Event],
                       *, now: datetime, reveal: bool = False) -> list[Board]:
    """One board per phase of ``challenge``: the runs that count, ranked, with each entry's history.

    Parameters
    ----------
    spec : TaskSpec
        The challenge's task.
    challenge : Challenge
        Its phases decide the split, the counted run and the visibility of each board.
    runs : list of StoredRun
        Stored runs of the task (any number per entry; the ledger decides which count).
    events : list of Event
        The store's ledger (:class:`bench.challenges.Ledger`).
    now : datetime
        The time the board is built for: a phase with ``scores: after_close`` that has not
        closed by then gives a sealed board.
    reveal : bool
        Rank sealed phases too (the organizer's view, e.g. ``bench rescore``); never for a site.
    """
    if challenge.task != spec.id:
        raise LeaderboardError(f"challenge {challenge.name} is on task {challenge.task!r}, not {spec.id!r}")
    boards = []
    for phase in challenge.phases:
        mine = [e for e in events if e.challenge == challenge.name and e.phase == phase.id]
        counted = counted_runs(challenge, phase, runs, mine, direction=spec.primary_direction,
                               primary=spec.primary_key)
        info = _phase_info(challenge, phase, sealed=not reveal and not phase.scores_visible(now))
        history = _histories(spec, runs, mine, counted, sealed=info.sealed)
        key = (phase.split_name, phase.split, phase.split_sha256)
        if info.sealed or not counted:
            # who is in the phase: every entry with a scored run that is not withdrawn (the latest
            # rule of counted_runs), marked whether a run of it counts (a chosen phase needs a choice)
            entered = counted_runs(challenge, phase.model_copy(update={"counts": "latest"}), runs, mine,
                                   direction=spec.primary_direction, primary=spec.primary_key)
            boards.append(Board(spec, *key, (), None, None, None, "", phase=info,
                                submitted=_submitted(entered, counted, mine, history) if info.sealed else ()))
            continue
        with one_blas_thread():
            board = _board(spec, key, sorted(counted, key=lambda r: r.submission))
        entries = tuple(replace(e, history=history[e.run.entry]) for e in board.entries)
        boards.append(replace(board, entries=entries, phase=info))
    return boards


def _phase_info(challenge: Challenge, phase: Phase, *, sealed: bool) -> BoardPhase:
    return BoardPhase(challenge.name, challenge.title, phase.id, phase.title, phase.opens, phase.closes,
                      phase.counts, phase.scores, phase.limits.per_day, phase.limits.total, sealed)


def _histories(spec: TaskSpec, runs: list[StoredRun], events: list[Event], counted: list[StoredRun],
               *, sealed: bool) -> dict[EntryId, tuple[HistoryEvent, ...]]:
    """Every entry's ledger events of the phase, with the run's primary value unless sealed."""
    stored = {(run.entry, run.run_id): run for run in runs}
    counts = {(run.entry, run.run_id) for run in counted}
    out: dict[EntryId, list[HistoryEvent]] = defaultdict(list)
    for event in events:
        entry = EntryId(*event.entry_id)
        run = stored.get((entry, event.run_id)) if event.run_id else None
        value = float("nan") if sealed or run is None else _primary(run, spec)[0]
        out[entry].append(HistoryEvent(
            event.at, event.event, event.reason, event.run_id, None if value != value else value,
            not sealed and event.event in ("scored", "chosen") and (entry, event.run_id) in counts))
    return {entry: tuple(items) for entry, items in out.items()}


def _submitted(entered: list[StoredRun], counted: list[StoredRun], events: list[Event],
               history: dict[EntryId, tuple[HistoryEvent, ...]]) -> tuple[Submitted, ...]:
    """Who is in a sealed phase and when they submitted, without a score."""
    rows = []
    counting = {run.entry for run in counted}
    for entry in sorted({run.entry for run in entered}):
        scored = [e.at for e in events if e.event == "scored" and EntryId(*e.entry_id) == entry]
        rows.append(Submitted(entry.team, entry.name, entry.key, min(scored), max(scored), len(scored),
                              entry in counting, history[entry]))
    return tuple(rows)


def _board(spec: TaskSpec, key: tuple[str, str, str], runs: list[StoredRun]) -> Board:
    split_name, split, split_sha = key
    metric = spec.primary_key.split(".")[-1]
    level = METRICS[metric].level
    direction = spec.primary_direction
    method = spec.ranking.method
    names = [run.submission for run in runs]
    matrix, boot, note, delong = None, None, "", {}
    if level == "case":
        matrix = _case_matrix(spec, runs)
        ranking = rank_entries(matrix, method=method, aggregate=spec.ranking.aggregate,
                               direction=direction, alpha=spec.ranking.alpha)
        boot = bootstrap_ranks(matrix, ranking,
                               **_design(spec, runs, matrix.index, _strata(runs, matrix.index)).options())
    else:
        if method != "aggregate-then-rank":
            raise LeaderboardError(
                f"task {spec.id}: ranking method {method!r} needs a per-case primary metric, but "
                f"{spec.primary_key!r} is computed over the whole set; use 'aggregate-then-rank' in "
                f"tasks/{spec.id}/task.yaml")
        values = [_primary(run, spec)[0] for run in runs]
        ranking = rank_aggregates(pd.Series(values, index=names), direction=direction)
        if metric == "auroc":
            boot, delong = _auroc_bootstrap(spec, runs, ranking)
        else:
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
            spec_matches=run.task_sha256 == spec.sha256, delong=delong.get(index)))
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


def _auroc_bootstrap(spec: TaskSpec, runs: list[StoredRun], ranking: RankResult
                     ) -> tuple[BootstrapRanks, dict[int, PairedComparison]]:
    """Rank intervals of AUROC entries from the per-case probabilities, and DeLong vs the leader.

    Every entry's AUROC is recomputed on the same resamples (the task's bootstrap design over the
    cases with a reference label), so the rank distribution is paired; a binary head also gets
    DeLong's closed-form paired test of each entry against the leader.
    """
    head, labels, probabilities, case_ids = _classification_arrays(spec, runs)
    classes, positive = list(head.classes), head.positive if len(head.classes) == 2 else None

    def statistic(counts: np.ndarray) -> np.ndarray:
        return resampled_auroc(labels, probabilities, classes, counts, positive=positive)

    strata = class_strata(head, class_codes(head, pd.Series(labels)))
    options = _design(spec, runs, case_ids, strata).options()
    boot = bootstrap_ranks_from(statistic, len(labels), ranking, **options)
    if positive is None:
        return boot, {}
    scores = probabilities[:, :, classes.index(positive)]
    return boot, _delong_against_leader(ranking, labels == positive, scores)


def _design(spec: TaskSpec, runs: list[StoredRun], case_ids, strata: np.ndarray | None) -> BootstrapDesign:
    """The task's bootstrap design (the scorer's, :mod:`bench.scoring.bootstrap`) over ``case_ids``."""
    column = spec.bootstrap.cluster
    clusters = _case_column(runs, column, case_ids) if column else None
    cases = pd.DataFrame({column: clusters} if clusters is not None else {}, index=pd.Index(case_ids))
    return design(spec, cases, strata=strata)


def _strata(runs: list[StoredRun], case_ids) -> np.ndarray | None:
    """Segmentation strata as the scorer draws them: whether the reference mask is empty."""
    volumes = _case_column(runs, "volume_ref_ml", case_ids)
    if volumes is None:
        return None
    return empty_reference_strata(pd.DataFrame({"volume_ref_ml": volumes}))


def _delong_against_leader(ranking: RankResult, truth: np.ndarray,
                           scores: np.ndarray) -> dict[int, PairedComparison]:
    """DeLong's paired test of every entry's AUROC against the leader's, by entry index.

    On the cases both entries scored (finite probabilities); an entry is left out when those
    lack two positives or two negatives, the least DeLong's variance needs.
    """
    leader = int(ranking.order[0])
    out = {}
    for entry in ranking.order[1:]:
        both = ~np.isnan(scores[:, leader]) & ~np.isnan(scores[:, entry])
        y = truth[both].astype(np.int64)
        if min(int(y.sum()), int((1 - y).sum())) < 2:
            continue
        out[int(entry)] = delong_test(y, scores[both, leader], scores[both, entry])
    return out


def _case_column(runs: list[StoredRun], column: str, case_ids) -> np.ndarray | None:
    """One column of the runs' per-case tables, by case id (the first run that has the case)."""
    frames = [run.per_case.set_index("case_id")[column] for run in runs if column in run.per_case.columns]
    if not frames:
        return None
    mapping = pd.concat(frames).astype(str)
    mapping = mapping[~mapping.index.duplicated()]
    return mapping.reindex(pd.Index(case_ids)).fillna("").to_numpy() if len(mapping) else None


def _classification_arrays(spec: TaskSpec, runs: list[StoredRun]):
    """The primary head, and over the cases with a reference label (sorted by case id): the label,
    the (n, E, K) probabilities of the entries and the case ids."""
    head_name = spec.primary_key.split(".")[0]
    head = next(h for h in spec.heads if h.name == head_name)
    classes = list(head.classes)
    label_column = head.name
    tables = []
    for run in runs:
        missing = [c for c in [label_column, *classes] if c not in run.per_case.columns]
        if missing:
            raise LeaderboardError(f"{run.path / 'per_case.csv'}: lacks column(s) {missing} needed to "
                                   f"rank task {spec.id} by {spec.primary_key}")
        tables.append(run.per_case.set_index("case_id"))
    labels = pd.concat([t[label_column] for t in tables]).astype(str)
    case_ids = sorted(set(labels.index[labels.isin(classes)]))
    conflicting = labels.groupby(level=0).nunique()
    if (conflicting > 1).any():
        bad = list(conflicting[conflicting > 1].index[:5])
        raise LeaderboardError(f"task {spec.id}: runs disagree on the reference label of case(s) {bad}; "
                               "they were scored against different references")
    labels = labels[~labels.index.duplicated()].reindex(case_ids).to_numpy()
    probabilities = np.stack([t.reindex(case_ids)[classes].apply(pd.to_numeric, errors="coerce").to_numpy()
                              for t in tables], axis=1)
    return head, labels, probabilities, case_ids
