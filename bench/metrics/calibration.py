"""Calibration of probability outputs: logistic recalibration and a reliability curve with bands.

Why beside :func:`bench.metrics.classification.ece`: one number hides *how* a model is
miscalibrated. The calibration hierarchy of Van Calster et al. (J Clin Epidemiol 2016; BMC Med
2019) asks for the calibration intercept (calibration-in-the-large) and slope, and a flexible
calibration curve; TRIPOD+AI asks for the same.

Definitions, for a binary head with labels y in {0, 1} and predicted probabilities p, and
:math:`\\ell = \\operatorname{logit}(p)` with p clipped to ``[eps, 1 - eps]``:

- **Calibration slope** b and its model's intercept a: the maximum-likelihood fit of
  :math:`\\operatorname{logit} P(y = 1) = a + b\\,\\ell` (logistic recalibration, no penalty).
  b = 1 is ideal; b < 1 means predictions too extreme (overfitting), b > 1 too modest.
- **Calibration intercept** (calibration-in-the-large) :math:`\\alpha`: the fit of
  :math:`\\operatorname{logit} P(y = 1) = \\alpha + \\ell` (slope fixed at 1, ``\\ell`` an offset).
  0 is ideal; > 0 means the model under-predicts on average.
- **Reliability curve**: ``n_bins`` equal-width bins of p on [0, 1] (the bins of ``ece``, the last
  one closed); per non-empty bin the number of cases, the mean predicted probability and the
  observed fraction of positives, with a percentile band of the observed fraction over the
  given bootstrap resamples (the task's design: stratified, clustered by patient).

Undefined cases (one class only, or perfect separation so the likelihood has no maximum) return
NaN with :class:`bench.metrics.UndefinedMetricWarning`, as the other metrics do; invalid input
raises :class:`bench.errors.MetricInputError` naming the argument.
"""

import math
import warnings
from dataclasses import dataclass

import numpy as np

from bench.errors import MetricInputError
from bench.metrics import UndefinedMetricWarning

EPS = 1e-6
_MAX_ITERATIONS = 100
_TOLERANCE = 1e-10


@dataclass(frozen=True)
class Calibration:
    """Logistic recalibration of one binary head."""

    slope: float
    slope_model_intercept: float
    intercept: float
    n: int


@dataclass(frozen=True)
class ReliabilityBin:
    """One non-empty bin of a reliability curve."""

    low: float
    high: float
    count: int
    mean_predicted: float
    observed: float
    observed_low: float
    observed_high: float


def _inputs(y_true, y_prob) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(y_prob, dtype=np.float64)
    if y.ndim != 1 or p.shape != y.shape or y.size == 0:
        raise MetricInputError(f"y_true and y_prob must be non-empty 1D arrays of one length, got shapes "
                               f"{y.shape} and {p.shape}")
    if not np.isin(y, (0, 1)).all():
        raise MetricInputError("y_true must hold 0/1 labels of a binary head")
    if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise MetricInputError("y_prob must hold probabilities in [0, 1], without NaN")
    return y.astype(np.float64), p


def _logit(p: np.ndarray, eps: float) -> np.ndarray:
    p = np.clip(p, eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


def _undefined(reason: str) -> float:
    warnings.warn(f"calibration is undefined: {reason}; returning NaN", UndefinedMetricWarning, stacklevel=3)
    return math.nan


def _fit_logistic(y: np.ndarray, design: np.ndarray, offset: np.ndarray) -> np.ndarray | None:
    """Newton-Raphson maximum likelihood for logit P(y) = offset + design @ beta; None if it diverges."""
    beta = np.zeros(design.shape[1])
    for _ in range(_MAX_ITERATIONS):
        eta = offset + design @ beta
        mu = 1.0 / (1.0 + np.exp(-eta))
        weight = mu * (1.0 - mu)
        hessian = design.T @ (design * weight[:, None])
        gradient = design.T @ (y - mu)
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            return None
        beta = beta + step
        if not np.isfinite(beta).all() or np.abs(beta).max() > 1e6:
            return None
        if np.abs(step).max() < _TOLERANCE:
            return beta
    return None


def calibration(y_true, y_prob, *, eps: float = EPS) -> Calibration:
    """Calibration slope (with its model's intercept) and calibration intercept; module docstring."""
    y, p = _inputs(y_true, y_prob)
    if y.min() == y.max():
        nan = _undefined("y_true holds one class")
        return Calibration(nan, nan, nan, int(y.size))
    logit = _logit(p, eps)
    ones = np.ones((y.size, 1))
    joint = _fit_logistic(y, np.column_stack([ones, logit]), np.zeros(y.size))
    large = _fit_logistic(y, ones, logit)
    if joint is None:
        slope = model_intercept = _undefined("the logistic recalibration does not converge (separated data)")
    else:
        model_intercept, slope = float(joint[0]), float(joint[1])
    intercept = float(large[0]) if large is not None else _undefined("calibration-in-the-large diverges")
    return Calibration(slope, model_intercept, intercept, int(y.size))


def reliability_curve(y_true, y_prob, *, n_bins: int = 10, counts=None,
                      confidence: float = 0.95) -> tuple[ReliabilityBin, ...]:
    """Reliability curve on equal-width bins, with bootstrap bands when ``counts`` is given.

    ``counts`` is the (B, n) resample-count matrix of :func:`bench.metrics.uncertainty.bootstrap_counts`;
    a resample in which a bin is empty does not count towards that bin's band.
    """
    y, p = _inputs(y_true, y_prob)
    if n_bins < 1:
        raise MetricInputError(f"n_bins must be a positive integer, got {n_bins!r}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.minimum(np.searchsorted(edges, p, side="right") - 1, n_bins - 1)
    one_hot = np.zeros((y.size, n_bins))
    one_hot[np.arange(y.size), which] = 1.0
    size = one_hot.sum(axis=0)
    positives = y @ one_hot
    predicted = p @ one_hot
    bands = np.full((2, n_bins), math.nan)
    if counts is not None:
        weights = np.asarray(counts, dtype=np.float64)
        if weights.ndim != 2 or weights.shape[1] != y.size:
            raise MetricInputError(f"counts must have shape (B, {y.size}), got {weights.shape}")
        boot_size = weights @ one_hot
        with np.errstate(invalid="ignore", divide="ignore"):
            boot_observed = (weights @ (one_hot * y[:, None])) / boot_size
        tail = (1.0 - confidence) / 2.0 * 100.0
        filled = np.isfinite(boot_observed).any(axis=0)
        bands[:, filled] = np.nanpercentile(boot_observed[:, filled], [tail, 100.0 - tail], axis=0)
    return tuple(ReliabilityBin(float(edges[k]), float(edges[k + 1]), int(size[k]),
                                float(predicted[k] / size[k]), float(positives[k] / size[k]),
                                float(bands[0, k]), float(bands[1, k]))
                 for k in np.flatnonzero(size))
