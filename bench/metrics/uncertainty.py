"""Uncertainty: vectorized percentile bootstrap and fast DeLong for AUROC.

Bootstrap design. A resample is represented once, as a matrix, and every statistic is
computed from it with matrix operations (no Python loop over resamples):

1. :func:`bootstrap_indices` draws the (B, m) matrix of resampled *units* (cases, or patient
   clusters) with a seeded :class:`numpy.random.Generator`, stratified so that every resample
   keeps each stratum's size (e.g. the number of positives and negatives).
2. :func:`resample_counts` turns it into the (B, n) matrix ``counts[b, i]`` = how often case i
   is in resample b (a drawn cluster brings all its cases).
3. Statistics: a per-case metric mean is ``counts @ values / counts.sum(1)``
   (:func:`resampled_means`); AUROC is the case-weighted Mann-Whitney statistic from one sort
   (:func:`bootstrap_auroc`, binary or one-vs-rest macro). The board's paired comparisons reuse
   the same counts for every entry; :func:`delong_test` is the closed-form paired test of two
   AUROCs on the same cases.

:func:`bootstrap_counts` does steps 1-2 in one call. Percentile intervals use numpy's
linear-interpolated percentiles at (1 - confidence)/2 and (1 + confidence)/2.

DeLong (Sun & Xu 2014, "Fast implementation of DeLong's algorithm for comparing the areas
under correlated receiver operating characteristic curves", IEEE SPL 21(11)): AUCs and their
covariance for k scorers of the same cases from midranks, O(k N log N).
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from bench.errors import MetricInputError
from bench.io import json_number
from bench.metrics.classification import weighted_auroc

SeedLike = int | np.random.Generator


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval.

    Attributes
    ----------
    estimate : float
        The statistic on the full sample (not the bootstrap mean or median).
    low, high : float
        Interval bounds; NaN when the statistic is undefined.
    confidence : float
        e.g. 0.95.
    n_resamples : int
        Bootstrap resamples used (0 for DeLong).
    n_undefined : int
        Resamples on which the statistic was undefined (NaN) and that were left out.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    n_resamples: int = 0
    n_undefined: int = 0

    def as_dict(self) -> dict[str, float | int]:
        """``{value, ci_low, ci_high, confidence, n_resamples, n_undefined}``; NaN becomes None."""
        return {"value": json_number(self.estimate), "ci_low": json_number(self.low),
                "ci_high": json_number(self.high),
                "confidence": self.confidence, "n_resamples": self.n_resamples,
                "n_undefined": self.n_undefined}


def _generator(seed: SeedLike) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise MetricInputError(f"seed must be an int or a numpy.random.Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise MetricInputError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")


def bootstrap_indices(n_units: int, *, n_resamples: int = 2000, seed: SeedLike = 0,
                      strata=None) -> np.ndarray:
    """The (B, n_units) matrix of resampled unit indices, drawn with replacement.

    Parameters
    ----------
    n_units : int
        Number of resampling units (cases, or clusters such as patients).
    n_resamples : int
        B.
    seed : int or numpy.random.Generator
        An int seeds a fresh PCG64 generator (``numpy.random.default_rng(seed)``), so the same
        seed gives the same matrix on every platform.
    strata : array_like, shape (n_units,), optional
        A stratum label per unit: each stratum is resampled within itself to its own size
        (strata in sorted order, columns grouped by stratum), so every resample keeps the
        class balance and never loses a class.

    Returns
    -------
    ndarray of int64, shape (n_resamples, n_units)
    """
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise MetricInputError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if isinstance(n_units, bool) or not isinstance(n_units, (int, np.integer)) or n_units < 1:
        raise MetricInputError(f"n_units must be a positive integer, got {n_units!r}")
    rng = _generator(seed)
    if strata is None:
        return rng.integers(0, n_units, size=(n_resamples, n_units))
    labels = np.asarray(strata)
    if labels.shape != (n_units,):
        raise MetricInputError(f"strata must have shape ({n_units},), got {labels.shape}")
    _, inverse = np.unique(labels, return_inverse=True)
    columns = []
    for stratum in range(int(inverse.max()) + 1):
        members = np.flatnonzero(inverse == stratum)
        columns.append(members[rng.integers(0, members.size, size=(n_resamples, members.size))])
    return np.concatenate(columns, axis=1)


def cluster_units(clusters, strata=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Map cases to resampling clusters (e.g. patients).

    Returns ``(unit_of_case, unit_strata)``: the cluster index (0..m-1, in sorted order of the
    cluster ids) of every case, and the stratum of each cluster (its most frequent case
    stratum, ties to the smallest label) or None when ``strata`` is None.
    """
    ids = np.asarray(clusters)
    if ids.ndim != 1:
        raise MetricInputError(f"clusters must be 1D (one id per case), got shape {ids.shape}")
    _, unit_of_case = np.unique(ids, return_inverse=True)
    if strata is None:
        return unit_of_case, None
    labels = np.asarray(strata)
    if labels.shape != ids.shape:
        raise MetricInputError(f"strata must have shape {ids.shape} like clusters, got {labels.shape}")
    values, label_index = np.unique(labels, return_inverse=True)
    m = int(unit_of_case.max()) + 1
    table = np.zeros((m, values.size), dtype=np.int64)
    np.add.at(table, (unit_of_case, label_index), 1)
    return unit_of_case, values[np.argmax(table, axis=1)]


def resample_counts(indices: np.ndarray, n_units: int, *, unit_of_case=None) -> np.ndarray:
    """The (B, n_cases) count matrix of a (B, m) unit-index matrix.

    ``counts[b, i]`` is how many times case i is in resample b. Without ``unit_of_case`` the
    units are the cases; with it (from :func:`cluster_units`), case i counts as often as its
    cluster was drawn. Fortran-ordered.
    """
    indices = np.asarray(indices)
    b = indices.shape[0]
    # counted as the (n_units, B) array and returned transposed: a Fortran-ordered (B, n) matrix, in
    # which each case's counts over the resamples are contiguous (see running_sums in
    # bench.metrics.classification)
    flat = (indices * b + np.arange(b)[:, None]).ravel()
    counts = np.bincount(flat, minlength=b * n_units).reshape(n_units, b).T
    if unit_of_case is None:
        return counts
    return counts[:, np.asarray(unit_of_case)]


def bootstrap_counts(n_cases: int, *, n_resamples: int = 2000, seed: SeedLike = 0, strata=None,
                     clusters=None) -> np.ndarray:
    """(B, n_cases) resample counts over cases, or over clusters when ``clusters`` is given.

    With ``clusters`` (one id per case, e.g. patient ids) whole clusters are resampled,
    stratified by each cluster's majority stratum; resamples then vary slightly in size.
    """
    if clusters is None:
        return resample_counts(bootstrap_indices(n_cases, n_resamples=n_resamples, seed=seed, strata=strata),
                               n_cases)
    unit_of_case, unit_strata = cluster_units(clusters, strata)
    if unit_of_case.size != n_cases:
        raise MetricInputError(f"clusters must have one id per case ({n_cases}), got {unit_of_case.size}")
    m = int(unit_of_case.max()) + 1
    indices = bootstrap_indices(m, n_resamples=n_resamples, seed=seed, strata=unit_strata)
    return resample_counts(indices, m, unit_of_case=unit_of_case)


def percentile_interval(estimate: float, distribution: np.ndarray, *, confidence: float = 0.95) -> Interval:
    """Percentile interval of a bootstrap distribution, leaving out undefined (NaN) resamples."""
    _check_confidence(confidence)
    dist = np.asarray(distribution, dtype=np.float64).reshape(-1)
    valid = dist[np.isfinite(dist)]
    undefined = int(dist.size - valid.size)
    if valid.size == 0 or not math.isfinite(estimate):
        return Interval(float(estimate), math.nan, math.nan, confidence, int(dist.size), undefined)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(valid, [tail, 100.0 - tail])
    return Interval(float(estimate), float(low), float(high), confidence, int(dist.size), undefined)


def _counts(counts, n: int) -> np.ndarray:
    c = np.asarray(counts)
    if c.ndim != 2 or c.shape[1] != n:
        raise MetricInputError(f"counts must have shape (B, {n}) (from bootstrap_counts), got {c.shape}")
    return c


def resampled_means(values, counts) -> np.ndarray:
    """Mean of per-case values in every resample: ``counts @ values / counts.sum(1)``.

    ``values`` shape (n,) gives (B,); shape (n, k) (k submissions or metrics) gives (B, k).
    Resamples with no case (possible only when counts come from a subgroup) are NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    c = _counts(counts, v.shape[0])
    if not np.all(np.isfinite(v)):
        raise MetricInputError("values must be finite; apply the missing/empty policies before bootstrapping")
    total = c.sum(axis=1)
    sums = c @ v
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / np.where(total > 0, total, np.nan).reshape((-1,) + (1,) * (v.ndim - 1))


def bootstrap_auroc(y_true, y_score, *, counts) -> np.ndarray:
    """AUROC of every resample, shape (B,), from one sort per class (no loop over resamples).

    The one resampled AUROC: the scorer's intervals, the subgroup tables and the board's rank
    intervals all call it. ``counts`` (B, n) weighs each case by how often a resample drew it
    (:func:`bootstrap_counts`; a 0/1 row is a subset), and each row's value is the
    case-weighted Mann-Whitney statistic :func:`bench.metrics.classification.weighted_auroc`.

    Binary: ``y_true`` 0/1 and ``y_score`` (n,) the positive class's score; equal to
    ``roc_auc_score(y_true[idx], y_score[idx])`` for each resample's indices. Multiclass:
    ``y_true`` class indices 0..K-1 and ``y_score`` (n, K); the unweighted mean of the K
    one-vs-rest AUROCs (scikit-learn's ``multi_class="ovr", average="macro"``). NaN (no
    warning) where a resample lacks positives or negatives of a class, never with
    class-stratified counts.
    """
    y = np.asarray(y_true).astype(np.int64)
    s = np.asarray(y_score, dtype=np.float64)
    binary = s.ndim == 1
    n_classes = 2 if binary else (s.shape[1] if s.ndim == 2 else 0)
    shapes_ok = y.ndim == 1 and s.ndim in (1, 2) and s.shape[0] == y.size
    if not shapes_ok or not np.isin(y, np.arange(n_classes)).all():
        raise MetricInputError(f"bootstrap_auroc needs y_true (n,) of 0/1 with y_score (n,), or class "
                               f"indices 0..K-1 with y_score (n, K); got {y.shape} and {s.shape}")
    c = _counts(counts, y.size)
    if binary:
        return weighted_auroc(y, s, c)
    per_class = [np.asarray(weighted_auroc((y == k).astype(np.int64), s[:, k], c), dtype=np.float64)
                 for k in range(n_classes)]
    return np.mean(np.stack(per_class, axis=-1), axis=-1)


@dataclass(frozen=True)
class PairedComparison:
    """Difference a - b of a statistic between two submissions scored on the same cases.

    ``low``/``high`` bound the difference at ``confidence``; ``p_value`` is two-sided (DeLong:
    from the normal approximation); ``method`` names the test.
    """

    difference: float
    low: float
    high: float
    p_value: float
    confidence: float
    method: str

    def as_dict(self) -> dict[str, float | str | None]:
        """Plain dict; NaN becomes None."""
        return {"difference": json_number(self.difference), "ci_low": json_number(self.low),
                "ci_high": json_number(self.high), "p_value": json_number(self.p_value),
                "confidence": self.confidence, "method": self.method}


def midranks(x: np.ndarray) -> np.ndarray:
    """Midranks (1-based, ties get their average rank) along the last axis, from one sort."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, axis=-1, kind="mergesort")
    xs = np.take_along_axis(x, order, axis=-1)
    n = x.shape[-1]
    position = np.broadcast_to(np.arange(n), x.shape)
    new = np.concatenate([np.ones(x.shape[:-1] + (1,), bool), xs[..., 1:] != xs[..., :-1]], axis=-1)
    last = np.concatenate([xs[..., 1:] != xs[..., :-1], np.ones(x.shape[:-1] + (1,), bool)], axis=-1)
    start = np.maximum.accumulate(np.where(new, position, 0), axis=-1)
    end = np.flip(np.minimum.accumulate(np.flip(np.where(last, position, n), axis=-1), axis=-1), axis=-1)
    ranks = np.empty_like(x)
    np.put_along_axis(ranks, order, (start + end) / 2.0 + 1.0, axis=-1)
    return ranks


@dataclass(frozen=True)
class DelongResult:
    """AUCs of k scorers of the same cases and their DeLong covariance matrix (k, k)."""

    aucs: np.ndarray
    covariance: np.ndarray
    n_positive: int
    n_negative: int


def delong(y_true, y_scores) -> DelongResult:
    """Fast DeLong (Sun & Xu 2014): AUCs and their covariance for one or several scorers.

    With X the m positive and Y the n negative scores of a scorer, T_Z the midranks over all
    cases, T_X within positives and T_Y within negatives:

    .. math::
        \\mathrm{AUC} = \\frac{\\sum_i T_Z(X_i) - m(m+1)/2}{mn},\\quad
        V_{10,i} = \\frac{T_Z(X_i) - T_X(X_i)}{n},\\quad
        V_{01,j} = 1 - \\frac{T_Z(Y_j) - T_Y(Y_j)}{m},\\quad
        S = \\frac{S_{10}}{m} + \\frac{S_{01}}{n}

    where S_10, S_01 are the sample covariance matrices (ddof = 1) of the V components
    across scorers. Equal to the O(mn) definition with ties counting one half.

    Parameters
    ----------
    y_true : array_like of 0/1, shape (N,)
    y_scores : array_like, shape (N,) or (k, N)

    Raises
    ------
    MetricInputError
        Fewer than two positives or negatives (the variance needs two of each).
    """
    y = np.asarray(y_true)
    s = np.atleast_2d(np.asarray(y_scores, dtype=np.float64))
    if y.ndim != 1 or s.shape[1] != y.size or not np.isin(y, (0, 1)).all():
        raise MetricInputError(f"delong needs 0/1 y_true (N,) and y_scores (N,) or (k, N), got {y.shape} "
                               f"and {np.shape(y_scores)}")
    if not np.all(np.isfinite(s)):
        raise MetricInputError("y_scores must be finite")
    positive = y == 1
    m, n = int(positive.sum()), int((~positive).sum())
    if m < 2 or n < 2:
        raise MetricInputError(f"DeLong needs at least two positive and two negative cases, got {m} and {n}")
    x_scores, y_neg = s[:, positive], s[:, ~positive]
    tz = midranks(s)
    tx, ty = midranks(x_scores), midranks(y_neg)
    tz_x, tz_y = tz[:, positive], tz[:, ~positive]
    aucs = (tz_x.sum(axis=1) - m * (m + 1) / 2.0) / (m * n)
    v10 = (tz_x - tx) / n
    v01 = 1.0 - (tz_y - ty) / m
    covariance = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return DelongResult(aucs, covariance, m, n)


def delong_test(y_true, score_a, score_b, *, confidence: float = 0.95) -> PairedComparison:
    """DeLong's paired test of AUROC(a) - AUROC(b) on the same cases.

    z = (A_a - A_b) / sqrt(S_aa + S_bb - 2 S_ab); two-sided p = 2 (1 - Φ(|z|)). When the
    variance of the difference is 0 (identical rankings) the p-value is 1 if the AUCs are
    equal. The interval is the Wald interval of the difference.
    """
    _check_confidence(confidence)
    result = delong(y_true, np.vstack([np.asarray(score_a, float), np.asarray(score_b, float)]))
    diff = float(result.aucs[0] - result.aucs[1])
    c = result.covariance
    var = max(float(c[0, 0] + c[1, 1] - 2.0 * c[0, 1]), 0.0)
    se = math.sqrt(var)
    z_crit = float(ndtri(0.5 + confidence / 2.0))
    if se == 0.0:
        p = 1.0 if diff == 0.0 else 0.0
    else:
        p = float(2.0 * (1.0 - ndtr(abs(diff) / se)))
    return PairedComparison(diff, diff - z_crit * se, diff + z_crit * se, p, confidence, "DeLong")
