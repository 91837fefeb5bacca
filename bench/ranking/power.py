"""Statistical power of a board: the smallest gap its split can resolve, and which gaps it does.

Why: with 5 to 50 test cases many gaps on a board are noise. For two entries scored on the same
cases, the paired difference of the primary metric has a standard error SE; a two-sided test at
level alpha detects a true difference delta with probability ``power`` when

.. math::
    \\delta \\ge \\mathrm{MDD} = (z_{1-\\alpha/2} + z_{\\mathrm{power}})\\,\\mathrm{SE}

(the normal approximation; 2.80 SE at alpha 0.05 and 80% power). SE comes from the board's own
resampling: the paired bootstrap of the difference of case means on the task's resamples
(stratified, clustered by patient), or DeLong's variance of the difference of two correlated
AUROCs for an AUROC primary (Sun & Xu 2014).

For each adjacent pair of a ranked board (rank k vs rank k + 1) the report gives the observed
gap, its SE, the pair's MDD and whether the observed gap reaches it ("resolvable"). The board's
MDD is the median over adjacent pairs: the difference a new entry would need, against a typical
neighbour, to be told apart at that power.
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from bench.errors import MetricInputError
from bench.metrics.uncertainty import delong

ALPHA = 0.05
POWER = 0.80


def mdd_factor(*, alpha: float = ALPHA, power: float = POWER) -> float:
    """``z_{1-alpha/2} + z_power``: the MDD in units of the difference's standard error."""
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise MetricInputError(f"alpha and power must lie in (0, 1), got {alpha!r} and {power!r}")
    return float(ndtri(1 - alpha / 2) + ndtri(power))


@dataclass(frozen=True)
class GapPower:
    """One adjacent pair of a board: the better-ranked entry ``upper`` against ``lower``."""

    upper: str
    lower: str
    gap: float
    standard_error: float
    mdd: float

    @property
    def resolvable(self) -> bool:
        """Whether the observed gap reaches the pair's minimum detectable difference."""
        return math.isfinite(self.mdd) and abs(self.gap) >= self.mdd


@dataclass(frozen=True)
class PowerReport:
    """The power analysis of one board."""

    method: str
    alpha: float
    power: float
    n_cases: int
    mdd: float
    gaps: tuple[GapPower, ...]

    @property
    def resolvable(self) -> int:
        return sum(gap.resolvable for gap in self.gaps)


def _report(names, gaps: np.ndarray, errors: np.ndarray, *, method: str, n_cases: int, alpha: float,
            power: float) -> PowerReport:
    factor = mdd_factor(alpha=alpha, power=power)
    pairs = tuple(GapPower(str(names[k]), str(names[k + 1]), float(gaps[k]), float(errors[k]),
                           float(factor * errors[k]) if np.isfinite(errors[k]) else math.nan)
                  for k in range(len(gaps)))
    finite = [pair.mdd for pair in pairs if math.isfinite(pair.mdd)]
    return PowerReport(method, alpha, power, n_cases, float(np.median(finite)) if finite else math.nan, pairs)


def case_mean_power(names, values, counts, *, alpha: float = ALPHA, power: float = POWER) -> PowerReport:
    """Power of a board ranked by a per-case mean.

    ``names`` are the entries in rank order (best first); ``values`` the (n_cases, E) per-case
    matrix in the same column order, NaN where a case does not count (a pair's difference uses
    the cases both entries have); ``counts`` the (B, n_cases) resample counts of the task.
    """
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        raise MetricInputError(f"values must be (n_cases, {len(names)}), got {matrix.shape}")
    upper, lower = matrix[:, :-1], matrix[:, 1:]
    both = np.isfinite(upper) & np.isfinite(lower)
    differences = np.where(both, upper - lower, 0.0)
    weights = np.asarray(counts, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        gaps = differences.sum(axis=0) / both.sum(axis=0)
        resampled = (weights @ differences) / (weights @ both)
    errors = np.nanstd(resampled, axis=0, ddof=1) if resampled.size else np.full(len(names) - 1, math.nan)
    return _report(names, gaps, errors, method="paired bootstrap", n_cases=int(matrix.shape[0]),
                   alpha=alpha, power=power)


def auroc_power(names, labels, scores, *, alpha: float = ALPHA, power: float = POWER) -> PowerReport:
    """Power of a board ranked by binary AUROC, from DeLong's covariance of the entries' AUROCs.

    ``scores`` is (n_cases, E) in rank order (best first); every entry scores every case.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != len(names):
        raise MetricInputError(f"scores must be (n_cases, {len(names)}), got {s.shape}")
    result = delong(np.asarray(labels), s.T)
    c = result.covariance
    upper, lower = np.arange(len(names) - 1), np.arange(1, len(names))
    variance = c[upper, upper] + c[lower, lower] - 2 * c[upper, lower]
    errors = np.sqrt(np.maximum(variance, 0.0))
    gaps = result.aucs[upper] - result.aucs[lower]
    return _report(names, gaps, errors, method="DeLong", n_cases=int(s.shape[0]), alpha=alpha, power=power)



def resampled_power(names, full_values, resampled, *, n_cases: int, alpha: float = ALPHA,
                    power: float = POWER) -> PowerReport:
    """Power of a board ranked by a statistic recomputed on shared resamples (e.g. macro AUROC).

    ``full_values`` (E,) in rank order; ``resampled`` (B, E) the statistic on the task's resamples,
    the same resamples for every entry, so adjacent differences are paired.
    """
    values = np.asarray(full_values, dtype=np.float64)
    boot = np.asarray(resampled, dtype=np.float64)
    if boot.ndim != 2 or boot.shape[1] != len(names) or values.shape != (len(names),):
        raise MetricInputError(f"resampled must be (B, {len(names)}) and full_values ({len(names)},)")
    differences = boot[:, :-1] - boot[:, 1:]
    errors = np.nanstd(differences, axis=0, ddof=1)
    return _report(names, values[:-1] - values[1:], errors, method="paired bootstrap", n_cases=n_cases,
                   alpha=alpha, power=power)
