"""Closed-form bootstrap statistics: every classification metric on all resamples at once.

A bootstrap resample is a row of the (B, n) count matrix of
:func:`bench.metrics.uncertainty.bootstrap_counts` (``counts[b, i]`` = how often case i was
drawn). Every classification metric of :mod:`bench.metrics.classification` is a function of
weighted sums over cases, so its value on all B resamples comes from a few matrix products
over the count matrix instead of B calls on materialized resamples
(:class:`bench.metrics.subgroups.CallableMetric`, the generic fallback, costs B metric calls):

- label and threshold metrics (balanced accuracy, F1, sensitivity, specificity) from the
  weighted confusion matrices ``counts @ onehot(true class, predicted class)``, (B, K, K),
  reduced by the same function the metric uses (:func:`~bench.metrics.classification.f1_of`, ...);
  kappa is :class:`bench.metrics.subgroups.Kappa`;
- Brier score and log loss are means of per-case terms
  (:class:`bench.metrics.subgroups.CaseMean` of :func:`~bench.metrics.classification.brier_terms`);
- ECE from per-bin weighted sums of outcome and confidence (:class:`Calibration`);
- AUROC and average precision from one sort with weighted cumulative sums
  (:func:`~bench.metrics.classification.weighted_auroc`,
  :func:`~bench.metrics.classification.weighted_average_precision`); multiclass heads average
  the one-vs-rest values (:class:`OneVsRest`).

With integer counts each value equals the metric on the resample drawn as repeated cases, to a
few ulps (sums run in another order); the tests check this against the explicit resample for
every metric. Undefined values (a resample without a class, a 0/0 ratio) are NaN without a
warning, as :mod:`bench.metrics.subgroups` expects. Every class here follows the
:class:`bench.metrics.subgroups.Statistic` protocol.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def _weights(counts) -> np.ndarray:
    return np.atleast_2d(np.asarray(counts, dtype=np.float64))


def _on_mask(statistic, mask: np.ndarray) -> float:
    return float(statistic.resampled(np.asarray(mask, dtype=np.float64)[None, :])[0])


@dataclass(frozen=True)
class ConfusionMetric:
    """A metric of the (weighted) confusion matrix of class indices ``y_true`` x ``y_pred``.

    ``reduce`` maps a (B, K, K) stack to (B,) values, NaN where undefined (e.g.
    :func:`bench.metrics.classification.balanced_accuracy_of`).
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    n_classes: int
    reduce: Callable[[np.ndarray], np.ndarray]

    def confusion(self, counts) -> np.ndarray:
        """The (B, K, K) confusion matrices of the resamples: one (B, n) x (n, K^2) product."""
        k = self.n_classes
        pairs = np.asarray(self.y_true, dtype=np.int64) * k + np.asarray(self.y_pred, dtype=np.int64)
        onehot = np.zeros((pairs.size, k * k))
        onehot[np.arange(pairs.size), pairs] = 1.0
        return (_weights(counts) @ onehot).reshape(-1, k, k)

    def value(self, mask: np.ndarray) -> float:
        return _on_mask(self, mask)

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        return self.reduce(self.confusion(counts))


@dataclass(frozen=True)
class Calibration:
    """Expected calibration error from :func:`bench.metrics.classification.calibration_terms`.

    Per resample: :math:`\\sum_b |\\sum_{i \\in b} w_i (o_i - c_i)| / \\sum_i w_i` (outcome o,
    confidence c), two (B, n) x (n, n_bins) products.
    """

    bins: np.ndarray
    outcome: np.ndarray
    confidence: np.ndarray
    n_bins: int

    def value(self, mask: np.ndarray) -> float:
        return _on_mask(self, mask)

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        w = _weights(counts)
        onehot = np.zeros((self.bins.size, self.n_bins))
        onehot[np.arange(self.bins.size), self.bins] = 1.0
        gap = w @ (onehot * self.outcome[:, None]) - w @ (onehot * self.confidence[:, None])
        total = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, np.abs(gap).sum(axis=1) / np.where(total > 0, total, 1.0), np.nan)


@dataclass(frozen=True)
class Weighted:
    """A binary ranking metric ``func(y_true, y_score, weights)`` (weighted AUROC or AP)."""

    func: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    y_true: np.ndarray
    y_score: np.ndarray

    def value(self, mask: np.ndarray) -> float:
        return _on_mask(self, mask)

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        return self.func(np.asarray(self.y_true, dtype=np.int64), np.asarray(self.y_score, dtype=np.float64),
                         _weights(counts))


@dataclass(frozen=True)
class OneVsRest:
    """Unweighted mean over classes of a binary ranking metric of class k versus the rest.

    NaN where any class is undefined (absent, or the only class), like the multiclass metric.
    """

    func: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    y_true: np.ndarray
    proba: np.ndarray

    def value(self, mask: np.ndarray) -> float:
        return _on_mask(self, mask)

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        w = _weights(counts)
        y = np.asarray(self.y_true, dtype=np.int64)
        proba = np.asarray(self.proba, dtype=np.float64)
        per_class = [self.func((y == k).astype(np.int64), proba[:, k], w) for k in range(proba.shape[1])]
        return np.mean(np.stack(per_class, axis=-1), axis=-1)
