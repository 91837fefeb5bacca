"""Scores per subgroup (site, sex, age band) with bootstrap intervals, and fairness gaps.

Every function takes one (B, n) resample count matrix over *all* cases (from
:func:`bench.metrics.uncertainty.bootstrap_counts`, stratified by class and clustered by
patient as the task says); a group's resample is the same matrix with the other cases'
counts set to zero. So the group value, the whole-set value and their difference come from
the same resamples (a paired bootstrap), and no Python loop runs over resamples for means,
AUROC, kappa or rates.

- :func:`subgroup_analysis`: any statistic per group with its percentile interval and the
  difference to the whole set (group - whole). Groups smaller than ``min_size`` are reported
  with ``too_small=True`` and no values.

In a small group many resamples can lack a class, which leaves AUROC (or a rate) undefined
there. Those resamples are left out of the percentile interval, and the ones that remain are
a biased selection: the interval comes out far too narrow. So every result reports
``n_undefined`` of ``n_resamples``, and when more than :data:`MAX_UNDEFINED_FRACTION` of the
resamples are undefined the interval is not given (None in scores.json).
- :func:`fairness_gaps`: for a binary decision, MIDRC MELODY's equal-opportunity difference
  EOD = TPR_g - TPR_ref and average absolute odds difference
  AAOD = ½(|FPR_g - FPR_ref| + |TPR_g - TPR_ref|) against a reference group.
- :func:`ordinal_gaps`: MELODY's delta QWK = QWK_g - QWK_ref for ordinal outputs.

Differences from MELODY (MIDRC/MIDRC_MELODY ``eod_aaod_metrics.py``, ``qwk_metrics.py``):
we report the full-sample value as the estimate (MELODY reports the bootstrap median), and
resample all cases jointly (stratified by class) rather than each group separately; the
percentile interval is the same construction. The default reference group is the largest
(ties: the first label in sorted order).
"""

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any, Protocol

import numpy as np

from bench.errors import MetricInputError
from bench.io import is_missing, json_number
from bench.metrics import UndefinedMetricWarning
from bench.metrics.uncertainty import Interval, bootstrap_auroc, percentile_interval, resampled_means

UNKNOWN = "unknown"
MAX_UNDEFINED_FRACTION = 0.2
"""Above this share of undefined resamples a group's interval is withheld (NaN)."""
DEFAULT_MIN_SIZE = 10


def group_labels(groups) -> np.ndarray:
    """Group labels as strings, missing values (None, NaN, empty) as ``"unknown"``."""
    values = np.asarray(groups, dtype=object).reshape(-1).tolist()
    return np.array([(value if value.strip() else UNKNOWN) if type(value) is str else _label(value)
                     for value in values], dtype=object)


def _label(value) -> str:
    """:func:`group_labels` of one value that is not a plain str (the common case is tested first)."""
    return UNKNOWN if is_missing(value) or str(value).strip() == "" else str(value)


class Statistic(Protocol):
    """A dataset statistic evaluated on a case subset and on weighted resamples."""

    def value(self, mask: np.ndarray) -> float:
        """The statistic on the cases where ``mask`` is True."""

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        """The statistic for every row of a (B, n) count matrix, shape (B,)."""


@dataclass(frozen=True)
class CaseMean:
    """Mean of a per-case metric (segmentation: Dice, HD95, ... after the empty/missing policies)."""

    values: np.ndarray

    def value(self, mask: np.ndarray) -> float:
        return float(np.mean(np.asarray(self.values, dtype=np.float64)[mask]))

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        return resampled_means(self.values, counts)


@dataclass(frozen=True)
class Auroc:
    """AUROC, binary (``y_score`` (n,)) or one-vs-rest macro (``y_score`` (n, K)).

    Both methods are :func:`bench.metrics.uncertainty.bootstrap_auroc`; a subset is a 0/1
    weight row. NaN (no warning) where a subset or resample lacks a class.
    """

    y_true: np.ndarray
    y_score: np.ndarray

    def value(self, mask: np.ndarray) -> float:
        return float(self.resampled(np.asarray(mask, dtype=np.float64)[None, :])[0])

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        return bootstrap_auroc(self.y_true, self.y_score, counts=counts)


@dataclass(frozen=True)
class Kappa:
    """Cohen's kappa (``quadratic=False``) or quadratic weighted kappa on class indices 0..K-1."""

    y_true: np.ndarray
    y_pred: np.ndarray
    n_classes: int
    quadratic: bool = True

    def _from_confusion(self, confusion: np.ndarray) -> np.ndarray:
        k = self.n_classes
        c = confusion.reshape(-1, k, k).astype(np.float64)
        total = c.sum(axis=(1, 2))
        index = np.arange(k)
        gap = index[:, None] - index[None, :]
        weights = gap ** 2 if self.quadratic else (gap != 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            expected = c.sum(axis=2)[:, :, None] * c.sum(axis=1)[:, None, :] / total[:, None, None]
            chance = np.sum(weights * expected, axis=(1, 2))
            return np.where(chance > 0, 1.0 - np.sum(weights * c, axis=(1, 2)) / chance, np.nan)

    def _pair_index(self) -> np.ndarray:
        y_true = np.asarray(self.y_true).astype(np.int64)
        return y_true * self.n_classes + np.asarray(self.y_pred).astype(np.int64)

    def value(self, mask: np.ndarray) -> float:
        pairs = self._pair_index()[mask]
        return float(self._from_confusion(np.bincount(pairs, minlength=self.n_classes ** 2))[0])

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        onehot = np.eye(self.n_classes ** 2)[self._pair_index()]
        return self._from_confusion(np.asarray(counts, dtype=np.float64) @ onehot)


@dataclass(frozen=True)
class CallableMetric:
    """Any ``func(y_true, y_other, **options)`` (e.g. a registry callable); resampled by a loop.

    The fallback for statistics without a vectorized form: each resample is materialized
    as repeated indices. Undefined values (NaN with a warning) are silenced and left out.
    """

    func: Callable[..., float]
    y_true: np.ndarray
    y_other: np.ndarray
    options: tuple[tuple[str, Any], ...] = ()

    def _call(self, index: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            return float(self.func(np.asarray(self.y_true)[index], np.asarray(self.y_other)[index],
                                   **dict(self.options)))

    def value(self, mask: np.ndarray) -> float:
        return self._call(np.flatnonzero(mask))

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        cases = np.arange(counts.shape[1])
        return np.array([self._call(np.repeat(cases, row.astype(np.int64))) if row.sum() else math.nan
                         for row in counts])


@dataclass(frozen=True)
class SubgroupResult:
    """One group of one attribute: value with interval, and its difference to the whole set."""

    n: int
    value: float
    ci_low: float
    ci_high: float
    difference: float
    difference_ci_low: float
    difference_ci_high: float
    too_small: bool
    n_resamples: int = 0
    n_undefined: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The scores.json shape; NaN (undefined, or not scored because too small) becomes None."""
        out: dict[str, Any] = {"n": self.n, "too_small": self.too_small, "n_resamples": self.n_resamples,
                               "n_undefined": self.n_undefined}
        for name in ("value", "ci_low", "ci_high", "difference", "difference_ci_low", "difference_ci_high"):
            out[name] = json_number(getattr(self, name))
        return out


def _interval(estimate: float, distribution: np.ndarray, confidence: float) -> Interval:
    """:func:`percentile_interval`, withheld (NaN bounds) when too many resamples are undefined."""
    interval = percentile_interval(estimate, distribution, confidence=confidence)
    if interval.n_undefined > MAX_UNDEFINED_FRACTION * interval.n_resamples:
        return replace(interval, low=math.nan, high=math.nan)
    return interval


def _restricted(statistic: Statistic, counts: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``statistic.resampled(counts * mask)``, computed on the group's cases alone.

    A group's resamples are the count matrix with every other case at zero, so the statistic
    over the group's columns with the group's own per-case arrays is the same value, and the
    groups of an attribute together cost one pass over the matrix instead of one pass each.
    Every per-case array field (first axis of length n) of the dataclass is cut to the group; a
    statistic that is not a dataclass gets the zeroed matrix.
    """
    if not is_dataclass(statistic):
        return statistic.resampled(counts * mask)
    arrays = {f.name: getattr(statistic, f.name) for f in fields(statistic)}
    cut = {name: value[mask] for name, value in arrays.items()
           if isinstance(value, np.ndarray) and value.shape[:1] == mask.shape}
    return replace(statistic, **cut).resampled(counts[:, mask])


def _check_groups(groups, n: int) -> np.ndarray:
    labels = group_labels(groups)
    if labels.size != n:
        raise MetricInputError(f"groups must have one label per case ({n}), got {labels.size}")
    return labels


def subgroup_analysis(statistic: Statistic, groups, *, counts, min_size: int = DEFAULT_MIN_SIZE,
                      confidence: float = 0.95, whole: np.ndarray | None = None) -> dict[str, SubgroupResult]:
    """A statistic per group, with percentile intervals and the difference group - whole.

    Parameters
    ----------
    statistic : Statistic
        :class:`CaseMean`, :class:`Auroc`, :class:`Kappa` or :class:`CallableMetric`.
    groups : array_like, shape (n,)
        Group label per case (site, sex, age band); missing labels form ``"unknown"``.
    counts : ndarray, shape (B, n)
        Resample counts over all cases.
    min_size : int
        Groups with fewer cases are reported ``too_small`` with NaN values, not scored.
    whole : ndarray, shape (B,), optional
        ``statistic.resampled(counts)`` when the caller already has it (several attributes of
        one statistic share it); computed here otherwise.

    Returns
    -------
    dict
        Group label (sorted) -> :class:`SubgroupResult`.
    """
    c = np.asarray(counts)
    labels = _check_groups(groups, c.shape[1])
    whole_mask = np.ones(c.shape[1], dtype=bool)
    whole_value = statistic.value(whole_mask)
    whole_dist = statistic.resampled(c) if whole is None else np.asarray(whole)
    results = {}
    for label in sorted(set(labels.tolist())):
        mask = labels == label
        n = int(mask.sum())
        if n < min_size:
            results[label] = SubgroupResult(n, *(math.nan,) * 6, too_small=True)
            continue
        value = statistic.value(mask)
        dist = _restricted(statistic, c, mask)
        interval = _interval(value, dist, confidence)
        diff = _interval(value - whole_value, dist - whole_dist, confidence)
        results[label] = SubgroupResult(n, interval.estimate, interval.low, interval.high, diff.estimate,
                                        diff.low, diff.high, too_small=False, n_resamples=c.shape[0],
                                        n_undefined=max(interval.n_undefined, diff.n_undefined))
    return results


@dataclass(frozen=True)
class FairnessResult:
    """MELODY gaps of one group against the reference group of its attribute."""

    group: str
    reference: str
    n: int
    eod: float
    eod_ci_low: float
    eod_ci_high: float
    aaod: float
    aaod_ci_low: float
    aaod_ci_high: float
    too_small: bool
    n_resamples: int = 0
    n_undefined: int = 0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"group": self.group, "reference": self.reference, "n": self.n,
                               "too_small": self.too_small, "n_resamples": self.n_resamples,
                               "n_undefined": self.n_undefined}
        for name in ("eod", "eod_ci_low", "eod_ci_high", "aaod", "aaod_ci_low", "aaod_ci_high"):
            out[name] = json_number(getattr(self, name))
        return out


def _reference_group(labels: np.ndarray, reference: str | None) -> str:
    if reference is not None:
        if reference not in set(labels.tolist()):
            raise MetricInputError(f"reference group {reference!r} is not among the groups "
                                   f"{sorted(set(labels.tolist()))}")
        return reference
    values, sizes = np.unique(labels.astype(str), return_counts=True)
    return str(values[np.argmax(sizes)])


def _group_rates(c: np.ndarray, labels: np.ndarray, positive: np.ndarray,
                 decided: np.ndarray) -> dict[str, tuple[Any, Any]]:
    """(TPR, FPR) of every group, per row of a count matrix (or the 1 x n ones row).

    One float (B, n) x (n, 4 G) product for all G groups: a bool or int operand, or one
    product per group, would cost a pass over the matrix each.
    """
    names = sorted(set(labels.tolist()))
    columns = []
    for name in names:
        mask = labels == name
        columns += [mask & positive & decided, mask & positive, mask & ~positive & decided, mask & ~positive]
    sums = np.asarray(c, dtype=np.float64) @ np.column_stack(columns).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {name: (sums[:, 4 * k] / sums[:, 4 * k + 1], sums[:, 4 * k + 2] / sums[:, 4 * k + 3])
                for k, name in enumerate(names)}


def fairness_gaps(y_true, y_score, groups, *, counts, threshold: float = 0.5, reference: str | None = None,
                  min_size: int = DEFAULT_MIN_SIZE, confidence: float = 0.95) -> dict[str, FairnessResult]:
    """Equal-opportunity difference and average absolute odds difference per group (MELODY).

    .. math::
        \\mathrm{EOD}_g = \\mathrm{TPR}_g - \\mathrm{TPR}_{ref}, \\qquad
        \\mathrm{AAOD}_g = \\tfrac12\\left(|\\mathrm{FPR}_g - \\mathrm{FPR}_{ref}|
                                   + |\\mathrm{TPR}_g - \\mathrm{TPR}_{ref}|\\right)

    with the decision ``score >= threshold``. EOD is signed (negative: the group's positives
    are found less often); AAOD is >= 0. MELODY flags |EOD| > 0.1 and AAOD > 0.1.

    Returns
    -------
    dict
        Group label -> :class:`FairnessResult` for every group except the reference; a
        group (or reference) smaller than ``min_size`` is ``too_small``.
    """
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    c = np.asarray(counts)
    shapes_ok = y.ndim == 1 and s.shape == y.shape and c.ndim == 2 and c.shape[1] == y.size
    if not shapes_ok or not np.isin(y, (0, 1)).all():
        raise MetricInputError(f"fairness_gaps needs 0/1 y_true (n,), y_score (n,) and counts (B, n), got "
                               f"{y.shape}, {s.shape} and {c.shape}")
    labels = _check_groups(groups, y.size)
    ref = _reference_group(labels, reference)
    positive, decided = y == 1, s >= threshold
    ref_mask = labels == ref
    full = _group_rates(np.ones((1, y.size)), labels, positive, decided)
    resampled = _group_rates(c, labels, positive, decided)
    ref_tpr, ref_fpr = full[ref]
    ref_tpr_b, ref_fpr_b = resampled[ref]
    results = {}
    for label in sorted(set(labels.tolist()) - {ref}):
        mask = labels == label
        n = int(mask.sum())
        if n < min_size or int(ref_mask.sum()) < min_size:
            results[label] = FairnessResult(label, ref, n, *(math.nan,) * 6, too_small=True)
            continue
        tpr, fpr = full[label]
        tpr_b, fpr_b = resampled[label]
        eod = _interval(float((tpr - ref_tpr)[0]), tpr_b - ref_tpr_b, confidence)
        aaod_value = float(0.5 * (abs(fpr - ref_fpr) + abs(tpr - ref_tpr))[0])
        aaod_dist = 0.5 * (np.abs(fpr_b - ref_fpr_b) + np.abs(tpr_b - ref_tpr_b))
        aaod = _interval(aaod_value, aaod_dist, confidence)
        results[label] = FairnessResult(label, ref, n, eod.estimate, eod.low, eod.high, aaod.estimate,
                                        aaod.low, aaod.high, too_small=False, n_resamples=c.shape[0],
                                        n_undefined=max(eod.n_undefined, aaod.n_undefined))
    return results


def ordinal_gaps(y_true, y_pred, groups, *, n_classes: int, counts, reference: str | None = None,
                 min_size: int = DEFAULT_MIN_SIZE, confidence: float = 0.95) -> dict[str, SubgroupResult]:
    """MELODY's delta QWK: QWK of each group minus QWK of the reference group, with intervals.

    In the returned :class:`SubgroupResult`, ``value`` / ``ci_*`` are the group's QWK and
    ``difference`` / ``difference_ci_*`` the delta QWK against the reference group (the
    reference group itself is included with difference 0).
    """
    c = np.asarray(counts)
    labels = _check_groups(groups, c.shape[1])
    ref = _reference_group(labels, reference)
    qwk = Kappa(np.asarray(y_true), np.asarray(y_pred), n_classes, quadratic=True)
    ref_mask = labels == ref
    ref_value, ref_dist = qwk.value(ref_mask), _restricted(qwk, c, ref_mask)
    results = {}
    for label in sorted(set(labels.tolist())):
        mask = labels == label
        n = int(mask.sum())
        if n < min_size or int(ref_mask.sum()) < min_size:
            results[label] = SubgroupResult(n, *(math.nan,) * 6, too_small=True)
            continue
        value, dist = qwk.value(mask), _restricted(qwk, c, mask)
        interval = _interval(value, dist, confidence)
        delta = _interval(value - ref_value, dist - ref_dist, confidence)
        results[label] = SubgroupResult(n, interval.estimate, interval.low, interval.high, delta.estimate,
                                        delta.low, delta.high, too_small=False, n_resamples=c.shape[0],
                                        n_undefined=max(interval.n_undefined, delta.n_undefined))
    return results
