"""Calibration slope/intercept against scikit-learn and a brute-force likelihood; reliability bins."""

import math
import warnings

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from sklearn.linear_model import LogisticRegression

from bench.errors import MetricInputError
from bench.metrics import UndefinedMetricWarning
from bench.metrics.calibration import EPS, calibration, reliability_curve
from bench.metrics.uncertainty import bootstrap_counts


def _sample(seed, n=400, shrink=0.6, shift=0.4):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-truth))).astype(int)
    p = 1 / (1 + np.exp(-(shift + truth / shrink)))
    return y, p


@pytest.mark.parametrize("seed", range(4))
def test_slope_and_its_intercept_match_unpenalized_sklearn_logistic_regression(seed):
    y, p = _sample(seed)
    logit = np.log(np.clip(p, EPS, 1 - EPS) / (1 - np.clip(p, EPS, 1 - EPS)))
    peer = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(logit[:, None], y)
    result = calibration(y, p)
    assert result.slope == pytest.approx(peer.coef_[0, 0], rel=1e-6)
    assert result.slope_model_intercept == pytest.approx(peer.intercept_[0], abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_calibration_in_the_large_maximizes_the_offset_likelihood(seed):
    y, p = _sample(seed)
    logit = np.log(p / (1 - p))

    def negative_log_likelihood(alpha):
        eta = alpha + logit
        return float(np.sum(np.logaddexp(0, eta) - y * eta))

    brute = minimize_scalar(negative_log_likelihood, bounds=(-10, 10), method="bounded",
                            options={"xatol": 1e-10}).x
    assert calibration(y, p).intercept == pytest.approx(brute, abs=1e-6)


def test_a_perfectly_calibrated_model_has_slope_one_and_intercept_zero():
    rng = np.random.default_rng(7)
    p = rng.uniform(0.02, 0.98, size=50_000)
    y = (rng.random(p.size) < p).astype(int)
    result = calibration(y, p)
    assert result.slope == pytest.approx(1.0, abs=0.04)
    assert result.intercept == pytest.approx(0.0, abs=0.04)


def test_over_confident_predictions_have_a_slope_below_one():
    y, p = _sample(0, n=4000, shrink=0.5, shift=0.0)
    assert calibration(y, p).slope == pytest.approx(0.5, abs=0.08)


def test_one_class_is_undefined_with_a_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = calibration(np.ones(5, int), np.full(5, 0.7))
    assert math.isnan(result.slope) and math.isnan(result.intercept)
    assert any(issubclass(w.category, UndefinedMetricWarning) for w in caught)


def test_separated_data_gives_nan_slope_not_a_huge_number():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    with pytest.warns(UndefinedMetricWarning, match="does not converge"):
        assert math.isnan(calibration(y, p).slope)


def test_reliability_bins_by_hand():
    y = np.array([0, 1, 1, 0, 1])
    p = np.array([0.05, 0.15, 0.55, 0.58, 1.0])
    bins = reliability_curve(y, p, n_bins=2)
    assert [(b.low, b.high, b.count) for b in bins] == [(0.0, 0.5, 2), (0.5, 1.0, 3)]
    assert bins[0].mean_predicted == pytest.approx(0.10) and bins[0].observed == pytest.approx(0.5)
    assert bins[1].mean_predicted == pytest.approx((0.55 + 0.58 + 1.0) / 3)
    assert bins[1].observed == pytest.approx(2 / 3)
    assert math.isnan(bins[0].observed_low)


def test_reliability_bands_cover_the_observed_fraction_and_equal_an_explicit_resample():
    y, p = _sample(3, n=300)
    counts = bootstrap_counts(y.size, n_resamples=200, seed=1)
    bins = reliability_curve(y, p, n_bins=5, counts=counts)
    for b in bins:
        assert b.observed_low <= b.observed <= b.observed_high
    chosen = bins[2]
    inside = (p >= chosen.low) & (p < chosen.high)
    explicit = [np.repeat(y[inside], row[inside]).mean() for row in counts if row[inside].sum()]
    assert chosen.observed_low == pytest.approx(np.percentile(explicit, 2.5))
    assert chosen.observed_high == pytest.approx(np.percentile(explicit, 97.5))


def test_bad_input_names_the_argument():
    with pytest.raises(MetricInputError, match="y_prob must hold probabilities"):
        calibration([0, 1], [0.2, 1.2])
    with pytest.raises(MetricInputError, match="0/1 labels"):
        calibration([0, 2], [0.2, 0.3])
