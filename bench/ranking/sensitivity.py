"""Definition sensitivity: how a board's ranking moves under each defensible metric definition.

Why: metric definitions move rankings. medpy's pooled HD95 differs from the max of the two
directed 95th percentiles by about 10 mm on real cases (medpy issue 138); surface-area-weighted
NSD (Nikolov et al., DeepMind's ``surface-distance``) and the voxel-count NSD (MetricsReloaded,
MONAI) differ by several points on the same masks; platforms disagree on an empty prediction
for an empty reference (1, 0 or NaN) and on a missing prediction. A reader of the board should
see whether its order survives each choice.

Each :class:`RankingVariant` ranks the board's entries twice from their stored per-case tables,
once under the harness's definition (the baseline) and once under the alternative, with the
task's aggregate (mean over the cases that count) or, for an AUROC primary, AUROC recomputed
over the cases, and reports Kendall's tau-b between the two rankings and every pair of entries
whose order reverses (a rank flip; a pair tied in one ranking is not a flip).

Variants, where the per-case tables allow them:

- **HD95**: max of the two directed 95th percentiles (``hd95``, ours) vs the pooled percentile
  (``hd95_pooled``, medpy's).
- **NSD**: voxel count (``nsd``) vs surface-area weighted (``nsd_area``, when scored).
- **Readers combined**: the primary against the task's combination of the readers' masks vs the
  other one (union vs majority; column ``<primary>@<rule>``, scored against the alternative
  reference that prepare keeps where the two differ).
- **Empty reference, empty prediction** (segmentation primary): the task's score (1) vs left out
  (NaN, as MONAI's ``ignore_empty`` and MetricsReloaded's distance metrics do).
- **Missing prediction** (the primary): the task's policy vs each other policy of its kind:
  ``worst`` (overlap 0), ``empty_mask`` (overlap 1 where the reference is empty, else 0) and
  ``exclude`` for segmentation overlap metrics; ``chance`` (uniform probabilities) and ``exclude``
  for classification AUROC.
"""

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from bench.metrics.registry import METRICS
from bench.ranking.schemes import kendall_tau_b, rank_values
from bench.ranking.statistics import resampled_auroc

#: Segmentation primaries whose missing-prediction and empty-mask variants are exact from the table.
OVERLAP_METRICS = ("dice", "iou", "nsd", "nsd_area")
_SEGMENTATION_POLICIES = ("worst", "empty_mask", "exclude")
_CLASSIFICATION_POLICIES = ("chance", "exclude")


@dataclass(frozen=True)
class RankingVariant:
    """The board ranked under the harness's definition and under one alternative."""

    question: str
    metric: str
    baseline: str
    alternative: str
    entries: tuple[str, ...]
    baseline_values: tuple[float, ...]
    alternative_values: tuple[float, ...]
    baseline_ranks: tuple[int, ...]
    alternative_ranks: tuple[int, ...]
    kendall_tau: float
    flips: tuple[tuple[str, str], ...]

    def as_dict(self) -> dict:
        return {"question": self.question, "metric": self.metric, "baseline": self.baseline,
                "alternative": self.alternative, "entries": list(self.entries),
                "baseline_values": [None if math.isnan(v) else v for v in self.baseline_values],
                "alternative_values": [None if math.isnan(v) else v for v in self.alternative_values],
                "baseline_ranks": list(self.baseline_ranks),
                "alternative_ranks": list(self.alternative_ranks),
                "kendall_tau": None if math.isnan(self.kendall_tau) else self.kendall_tau,
                "flips": [list(pair) for pair in self.flips]}


def compare_rankings(question: str, metric: str, baseline: str, alternative: str, entries, baseline_values,
                     alternative_values, *, direction: str) -> RankingVariant:
    """Rank two value vectors of the same entries and compare the rankings."""
    first = np.asarray(baseline_values, dtype=np.float64)
    second = np.asarray(alternative_values, dtype=np.float64)
    ranks_a, ranks_b = rank_values(first, better=direction), rank_values(second, better=direction)
    tau = float(kendall_tau_b(ranks_a, ranks_b[None, :])[0]) if len(entries) > 1 else math.nan
    flips = tuple((entries[i], entries[j]) if ranks_a[i] < ranks_a[j] else (entries[j], entries[i])
                  for i, j in combinations(range(len(entries)), 2)
                  if (ranks_a[i] - ranks_a[j]) * (ranks_b[i] - ranks_b[j]) < 0)
    return RankingVariant(question, metric, baseline, alternative, tuple(entries),
                          tuple(map(float, first)), tuple(map(float, second)),
                          tuple(map(int, ranks_a)), tuple(map(int, ranks_b)), tau, flips)


def _column(table: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def _missing_rows(table: pd.DataFrame) -> np.ndarray:
    return table["status"].astype(str).ne("ok").to_numpy()


def _segmentation_policy_values(table: pd.DataFrame, metric: str, policy: str) -> np.ndarray:
    values = _column(table, metric).copy()
    missing = _missing_rows(table)
    if policy == "exclude":
        values[missing] = np.nan
    elif policy == "worst":
        values[missing] = 0.0
    else:
        reference_empty = _column(table, "volume_ref_ml") == 0
        values[missing] = np.where(reference_empty[missing], 1.0, 0.0)
    return values


def _segmentation_variants(spec, names: list[str], tables: list[pd.DataFrame]) -> list[RankingVariant]:
    variants = []
    for question, metric, alternative, labels in (
            ("HD95 definition", "hd95", "hd95_pooled", ("max of the two directed (ours)", "pooled (medpy)")),
            ("NSD definition", "nsd", "nsd_area",
             ("voxel count (ours)", "surface-area weighted (DeepMind)"))):
        if all(metric in t.columns and alternative in t.columns for t in tables):
            direction = METRICS[metric].direction
            variants.append(compare_rankings(
                question, metric, *labels, names, [_mean(_column(t, metric)) for t in tables],
                [_mean(_column(t, alternative)) for t in tables], direction=direction))
    primary = spec.primary_key
    combined = f"{primary}@{spec.target.other_readers}"
    if all(primary in t.columns and combined in t.columns for t in tables):
        variants.append(compare_rankings(
            "Readers combined", primary, f"{spec.target.readers} (the task's)", spec.target.other_readers,
            names,
            [_mean(_column(t, primary)) for t in tables], [_mean(_column(t, combined)) for t in tables],
            direction=spec.primary_direction))
    if primary not in OVERLAP_METRICS or not all(primary in t.columns for t in tables):
        return variants
    direction = spec.primary_direction
    stored = [_mean(_column(t, primary)) for t in tables]
    if all("empty" in t.columns for t in tables):
        dropped = []
        for table in tables:
            values = _column(table, primary).copy()
            values[table["empty"].astype(str).eq("both").to_numpy()] = np.nan
            dropped.append(_mean(values))
        variants.append(compare_rankings("Empty reference and empty prediction", primary,
                                         "scores 1 (ours)", "left out (NaN)", names, stored, dropped,
                                         direction=direction))
    declared = spec.policies.missing_prediction
    if all("volume_ref_ml" in t.columns for t in tables):
        for policy in _SEGMENTATION_POLICIES:
            if policy != declared:
                variants.append(compare_rankings(
                    "Missing prediction", primary, f"{declared} (the task's policy)", policy, names,
                    [_mean(_segmentation_policy_values(t, primary, declared)) for t in tables],
                    [_mean(_segmentation_policy_values(t, primary, policy)) for t in tables],
                    direction=direction))
    return variants


def _classification_variants(spec, names: list[str], tables: list[pd.DataFrame]) -> list[RankingVariant]:
    head_name, _, metric = spec.primary_key.partition(".")
    if metric != "auroc":
        return []
    head = next(h for h in spec.heads if h.name == head_name)
    classes = list(head.classes)
    positive = head.positive if len(classes) == 2 else None
    declared = spec.policies.missing_prediction

    def values(policy: str) -> list[float]:
        out = []
        for table in tables:
            label = table[head.name]
            labelled = label.notna().to_numpy() & label.astype(str).ne("").to_numpy()
            probabilities = table[classes].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64).copy()
            missing = _missing_rows(table)
            keep = labelled.copy()
            if policy == "exclude":
                keep &= ~missing
            else:
                probabilities[missing] = 1.0 / len(classes)
            labels = table[head.name].astype(str).to_numpy()[keep]
            once = np.ones((1, int(keep.sum())), dtype=np.int64)
            kept = probabilities[keep][:, None, :]
            auroc = resampled_auroc(labels, kept, classes, once, positive=positive)
            out.append(float(auroc[0, 0]))
        return out

    return [compare_rankings("Missing prediction", spec.primary_key, f"{declared} (the task's policy)",
                             policy, names, values(declared), values(policy),
                             direction=spec.primary_direction)
            for policy in _CLASSIFICATION_POLICIES if policy != declared]


def definition_sensitivity(board) -> tuple[RankingVariant, ...]:
    """Every applicable variant for a :class:`~bench.ranking.board.Board` (module docstring)."""
    if len(board.entries) < 2:
        return ()
    names = [entry.run.name for entry in board.entries]
    tables = [entry.run.per_case for entry in board.entries]
    spec = board.spec
    if spec.kind == "segmentation":
        return tuple(_segmentation_variants(spec, names, tables))
    return tuple(_classification_variants(spec, names, tables))
