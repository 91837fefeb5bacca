"""What a board's numbers are worth: power, definition sensitivity, reference lines, the reader band.

Why beside the board: the board ranks; this says how much of the ranking to believe. For one
:class:`~bench.ranking.board.Board` it gathers

- the **power** analysis (:mod:`bench.ranking.power`): the minimum detectable difference of the
  primary metric at 80% power and alpha 0.05 on this split, and which adjacent gaps reach it;
- the **definition sensitivity** (:mod:`bench.ranking.sensitivity`): Kendall's tau and the rank
  flips under each defensible metric definition and policy;
- the **reference lines**: built-in reference entries such as the confound floor
  (:mod:`bench.pipeline.confound`), scored like entries but never ranked;
- the **reader band** (:mod:`bench.pipeline.readers`): each reader's score against the other
  readers, and every entry's paired-bootstrap non-inferiority test against the mean reader with
  the task's margin (``reader_band.margin``).

Every resample comes from the task's bootstrap design over the board's cases, so an entry's
difference to a neighbour or to the readers is paired.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.ranking.power import PowerReport, auroc_power, case_mean_power, resampled_power
from bench.ranking.sensitivity import RankingVariant, definition_sensitivity
from bench.ranking.statistics import resampled_auroc
from bench.scoring.bootstrap import design
from bench.store import StoredRun


@dataclass(frozen=True)
class ReferenceLine:
    """A built-in reference entry drawn on the board as a line."""

    name: str
    kind: str
    explanation: str
    value: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class NonInferiority:
    """One entry against the mean reader: difference, its one-sided lower bound, the verdict."""

    entry: str
    difference: float
    lower_bound: float
    margin: float
    n_cases: int

    @property
    def non_inferior(self) -> bool:
        return math.isfinite(self.lower_bound) and self.lower_bound > -self.margin


@dataclass(frozen=True)
class ReaderBandSummary:
    """The readers' scores (each against the others) and every entry's test against them."""

    kind: str
    readers: tuple[dict, ...]
    low: float
    high: float
    margin: float
    tests: tuple[NonInferiority, ...]


@dataclass(frozen=True)
class BoardAnalysis:
    power: PowerReport | None
    sensitivity: tuple[RankingVariant, ...]
    references: tuple[ReferenceLine, ...]
    readers: ReaderBandSummary | None


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _counts(board, case_ids, strata: np.ndarray | None) -> np.ndarray:
    """The task's resamples over ``case_ids`` (clustered by patient, stratified when the task says)."""
    cases = pd.DataFrame({"case_id": list(case_ids)})
    column = board.spec.bootstrap.cluster
    tables = [e.run.per_case.set_index("case_id")[column] for e in board.entries
              if column and column in e.run.per_case.columns]
    if tables:
        mapping = pd.concat(tables)
        unique = mapping[~mapping.index.duplicated()].astype(str)
        cases[column] = unique.reindex(cases.case_id).fillna("").to_numpy()
    return design(board.spec, cases, strata=strata).counts()


def _head(board):
    head_name, _, metric = board.spec.primary_key.partition(".")
    return next((h for h in board.spec.heads if h.name == head_name), None), metric


def _classification(board) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Case ids, reference labels and the (n, E, K) probabilities of the board's entries, in rank order."""
    head, _ = _head(board)
    tables = [e.run.per_case.set_index("case_id") for e in board.entries]
    case_ids = sorted(set().union(*(t.index for t in tables)))
    labels = pd.concat([t[head.name] for t in tables])
    labels = labels[~labels.index.duplicated()].reindex(case_ids).astype(str).to_numpy()
    probabilities = np.stack([t.reindex(case_ids)[list(head.classes)].apply(pd.to_numeric, errors="coerce")
                              .to_numpy() for t in tables], axis=1)
    return case_ids, labels, probabilities


def board_power(board) -> PowerReport | None:
    """The power analysis of a board, or None when its primary has neither per-case values nor AUROC."""
    names = [entry.run.name for entry in board.entries]
    if len(names) < 2:
        return None
    if board.matrix is not None:
        values = board.matrix[[entry.run.submission for entry in board.entries]]
        strata = None
        if board.spec.kind == "segmentation" and all("volume_ref_ml" in e.run.per_case.columns
                                                      for e in board.entries):
            volumes = pd.concat([e.run.per_case.set_index("case_id")["volume_ref_ml"] for e in board.entries])
            volumes = volumes[~volumes.index.duplicated()].reindex(values.index)
            strata = pd.to_numeric(volumes, errors="coerce").eq(0).to_numpy()
        return case_mean_power(names, values.to_numpy(), _counts(board, list(values.index), strata))
    head, metric = _head(board)
    if head is None or metric != "auroc":
        return None
    case_ids, labels, probabilities = _classification(board)
    usable = np.isfinite(probabilities).all(axis=(1, 2)) & (labels != "nan") & (labels != "")
    case_ids = [c for c, keep in zip(case_ids, usable, strict=True) if keep]
    labels, probabilities = labels[usable], probabilities[usable]
    if len(head.classes) == 2:
        k = head.classes.index(head.positive)
        return auroc_power(names, (labels == head.positive).astype(int), probabilities[:, :, k])
    counts = _counts(board, case_ids, labels)
    full = resampled_auroc(labels, probabilities, list(head.classes), np.ones((1, len(labels))))[0]
    resampled = resampled_auroc(labels, probabilities, list(head.classes), counts)
    return resampled_power(names, full, resampled, n_cases=len(labels))


def reference_lines(spec, runs: list[StoredRun]) -> tuple[ReferenceLine, ...]:
    """The board's reference entries as lines: their primary value and interval, and why they are there."""
    lines = []
    for run in sorted(runs, key=lambda r: r.submission):
        entry = run.scores["metrics"].get(spec.primary_key) or {}
        marker = run.reference_entry or {}
        lines.append(ReferenceLine(run.name, str(marker.get("kind", "")), str(marker.get("explanation", "")),
                                   _float(entry.get("value")), _float(entry.get("ci_low")),
                                   _float(entry.get("ci_high"))))
    return tuple(lines)


def reader_band_summary(board, band_dir: Path) -> ReaderBandSummary | None:
    """The reader band stored for this board's split, with every entry's non-inferiority test."""
    document_path, per_case_path = band_dir / "band.json", band_dir / "per_case.csv"
    if board.spec.reader_band is None or not document_path.is_file():
        return None
    document = json.loads(document_path.read_text(encoding="utf-8"))
    if document.get("split", {}).get("sha256") != board.split_sha256 or not document.get("readers"):
        return None
    head, metric = _head(board)
    margin = board.spec.reader_band.margin
    values = [_float(r.get("value")) for r in document["readers"]]
    if document.get("kind") == "inter-reader":  # Dice and NSD: two metrics, no band to span
        return ReaderBandSummary("inter-reader", tuple(document["readers"]), math.nan, math.nan, margin, ())
    tests: tuple[NonInferiority, ...] = ()
    if head is not None and metric == "auroc" and board.entries:
        tests = _non_inferiority(board, pd.read_csv(per_case_path, dtype=str), head, margin)
    return ReaderBandSummary(str(document.get("kind", "leave-one-out")), tuple(document["readers"]),
                             float(np.nanmin(values)), float(np.nanmax(values)),
                             margin, tests)


def _non_inferiority(board, band: pd.DataFrame, head, margin: float) -> tuple[NonInferiority, ...]:
    classes = list(head.classes)
    positive = head.positive if len(classes) == 2 else None
    case_ids, labels, probabilities = _classification(board)
    wanted = set(band.case_id)
    keep = np.array([c in wanted for c in case_ids]) & np.isfinite(probabilities).all(axis=(1, 2))
    case_ids = [c for c, k in zip(case_ids, keep, strict=True) if k]
    labels, probabilities = labels[keep], probabilities[keep]
    if len(case_ids) < 2:
        return ()
    counts = _counts(board, case_ids, labels)
    full_set = np.ones((1, len(case_ids)))
    entries_full = resampled_auroc(labels, probabilities, classes, full_set, positive=positive)[0]
    entries_boot = resampled_auroc(labels, probabilities, classes, counts, positive=positive)
    position = {case_id: i for i, case_id in enumerate(case_ids)}
    readers_full, readers_boot = [], []
    for _, rows in band[band.case_id.isin(position)].groupby("group_name", sort=True):
        if len(rows) < len(case_ids) / 2:  # a reader of a few studies says little about the panel
            continue
        read = np.zeros(len(case_ids))
        consensus = np.full(len(case_ids), classes[0], dtype=object)
        scores = np.zeros((len(case_ids), 1, len(classes)))
        for row in rows.itertuples():
            i = position[row.case_id]
            read[i], consensus[i] = 1.0, row.consensus
            scores[i, 0, classes.index(row.label)] = 1.0
        readers_full.append(resampled_auroc(consensus, scores, classes, read[None, :],
                                            positive=positive)[0, 0])
        readers_boot.append(resampled_auroc(consensus, scores, classes, counts * read,
                                            positive=positive)[:, 0])
    if not readers_full:
        return ()
    mean_full = float(np.nanmean(readers_full))
    with np.errstate(all="ignore"):
        mean_boot = np.nanmean(np.column_stack(readers_boot), axis=1)
    tail = (1 - board.spec.bootstrap.confidence) * 100
    tests = []
    for k, entry in enumerate(board.entries):
        differences = entries_boot[:, k] - mean_boot
        finite = differences[np.isfinite(differences)]
        lower = float(np.percentile(finite, tail)) if finite.size else math.nan
        tests.append(NonInferiority(entry.run.name, float(entries_full[k] - mean_full), lower, margin,
                                    len(case_ids)))
    return tuple(tests)


def analyse_board(board, *, references: list[StoredRun] = (), band_dir: Path | None = None) -> BoardAnalysis:
    """Everything above for one board; ``references`` are the stored reference entries of its split."""
    return BoardAnalysis(board_power(board), definition_sensitivity(board),
                         reference_lines(board.spec, list(references)),
                         reader_band_summary(board, band_dir) if band_dir is not None else None)
