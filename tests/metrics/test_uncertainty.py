"""Bootstrap and DeLong: against brute force, scikit-learn and a known distribution."""

import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
from scipy.special import ndtr
from scipy.stats import rankdata

from bench.errors import MetricInputError
from bench.metrics.classification import auroc
from bench.metrics.uncertainty import (
    bootstrap_auroc,
    bootstrap_counts,
    bootstrap_indices,
    cluster_units,
    delong,
    delong_test,
    midranks,
    percentile_interval,
    resample_counts,
    resampled_means,
)


def brute_force_delong(y, scores):
    """O(mn) DeLong: psi(x, y) = [x > y] + 0.5 [x = y] over every positive/negative pair."""
    scores = np.atleast_2d(scores)
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    cov = np.atleast_2d(np.cov(v10)) / pos.shape[1] + np.atleast_2d(np.cov(v01)) / neg.shape[1]
    return psi.mean(axis=(1, 2)), cov


def test_delong_matches_brute_force_with_ties_for_several_scorers():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 80)
    scores = np.round(rng.random((3, 80)) + 0.3 * y, 1)  # rounded: many ties
    result = delong(y, scores)
    aucs, cov = brute_force_delong(y, scores)
    np.testing.assert_allclose(result.aucs, aucs, rtol=1e-12)
    np.testing.assert_allclose(result.covariance, cov, rtol=1e-10, atol=1e-15)
    for k in range(3):
        assert result.aucs[k] == pytest.approx(skm.roc_auc_score(y, scores[k]), rel=1e-12)


def test_delong_test_from_the_brute_force_variance():
    rng = np.random.default_rng(9)
    y = rng.integers(0, 2, 120)
    a = rng.normal(size=120) + 1.0 * y
    b = rng.normal(size=120) + 0.4 * y
    aucs, cov = brute_force_delong(y, np.vstack([a, b]))
    test = delong_test(y, a, b)
    z = (aucs[0] - aucs[1]) / np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert test.difference == pytest.approx(aucs[0] - aucs[1])
    assert test.p_value == pytest.approx(2 * (1 - ndtr(abs(z))))
    same = delong_test(y, a, a)
    assert same.difference == 0.0 and same.p_value == 1.0


def test_delong_rejects_too_few_cases():
    with pytest.raises(MetricInputError, match="two positive and two negative"):
        delong([0, 1, 1], [0.1, 0.2, 0.3])


def test_midranks_match_scipy():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=(4, 30)).astype(float)
    np.testing.assert_array_equal(midranks(x), np.vstack([rankdata(row) for row in x]))


def test_bootstrap_indices_are_seeded_and_stratified():
    strata = np.array([0] * 7 + [1] * 3)
    a = bootstrap_indices(10, n_resamples=50, seed=3, strata=strata)
    b = bootstrap_indices(10, n_resamples=50, seed=np.random.default_rng(3), strata=strata)
    assert a.shape == (50, 10)
    np.testing.assert_array_equal(a, b)
    assert np.all(np.sum(strata[a] == 1, axis=1) == 3)  # every resample keeps 3 positives
    assert not np.array_equal(a, bootstrap_indices(10, n_resamples=50, seed=4, strata=strata))
    with pytest.raises(MetricInputError, match="n_resamples"):
        bootstrap_indices(10, n_resamples=0)


def test_cluster_resampling_keeps_patients_together():
    patients = np.array(["p1", "p1", "p2", "p3", "p3", "p3"])
    strata = np.array([1, 1, 0, 0, 0, 1])
    unit_of_case, unit_strata = cluster_units(patients, strata)
    np.testing.assert_array_equal(unit_of_case, [0, 0, 1, 2, 2, 2])
    np.testing.assert_array_equal(unit_strata, [1, 0, 0])
    counts = bootstrap_counts(6, n_resamples=200, seed=1, strata=strata, clusters=patients)
    assert counts.shape == (200, 6)
    np.testing.assert_array_equal(counts[:, 0], counts[:, 1])
    np.testing.assert_array_equal(counts[:, 3], counts[:, 5])
    assert np.all(counts[:, 0] == 1)  # p1 is the only cluster of stratum 1: drawn exactly once


def test_resample_counts_and_means_equal_explicit_resamples():
    rng = np.random.default_rng(2)
    values = rng.random(25)
    indices = bootstrap_indices(25, n_resamples=40, seed=0)
    counts = resample_counts(indices, 25)
    assert np.all(counts.sum(axis=1) == 25)
    interval = percentile_interval(values.mean(), resampled_means(values, counts))
    explicit = values[indices].mean(axis=1)
    expected = percentile_interval(values.mean(), explicit)
    assert (interval.low, interval.high) == pytest.approx((expected.low, expected.high), rel=1e-12)


def test_bootstrap_auroc_equals_sklearn_on_every_resample():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 150)
    s = np.round(rng.random(150) + 0.3 * y, 2)
    indices = bootstrap_indices(150, n_resamples=60, seed=1, strata=y)
    ours = bootstrap_auroc(y, s, counts=resample_counts(indices, 150))
    expected = [skm.roc_auc_score(y[row], s[row]) for row in indices]
    np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_percentile_bootstrap_coverage_on_a_known_mean():
    """95% intervals of a normal mean cover the true mean in roughly 95% of 300 data sets."""
    rng = np.random.default_rng(12)
    counts = bootstrap_counts(60, n_resamples=1000, seed=0)
    covered = 0
    for _ in range(300):
        values = rng.normal(3.0, 2.0, 60)
        interval = percentile_interval(values.mean(), resampled_means(values, counts))
        covered += interval.low <= 3.0 <= interval.high
    assert 0.89 <= covered / 300 <= 0.99


def test_auroc_bootstrap_coverage_on_a_binormal_model():
    """Binormal scores with separation d have AUC = Phi(d / sqrt 2); check interval coverage."""
    rng = np.random.default_rng(21)
    d, n = 1.0, 200
    true_auc = ndtr(d / np.sqrt(2))
    y = np.array([0] * 120 + [1] * 80)
    counts = bootstrap_counts(n, n_resamples=1000, seed=3, strata=y)
    covered = 0
    for _ in range(200):
        s = rng.normal(size=n) + d * y
        interval = percentile_interval(auroc(y, s), bootstrap_auroc(y, s, counts=counts))
        covered += interval.low <= true_auc <= interval.high
    assert 0.88 <= covered / 200 <= 0.99


def test_multiclass_bootstrap_auroc_equals_sklearn_macro_ovr_on_every_resample():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 3, 120)
    proba = rng.dirichlet(np.ones(3), 120) + 0.4 * np.eye(3)[y]
    proba = proba / proba.sum(axis=1, keepdims=True)
    indices = bootstrap_indices(120, n_resamples=40, seed=2, strata=y)
    ours = bootstrap_auroc(y, proba, counts=resample_counts(indices, 120))
    expected = [skm.roc_auc_score(y[row], proba[row], multi_class="ovr", average="macro") for row in indices]
    np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_bootstrap_auroc_rejects_labels_outside_the_classes():
    with pytest.raises(MetricInputError, match="class indices 0..K-1"):
        bootstrap_auroc([0, 3], np.full((2, 3), 1 / 3), counts=np.ones((1, 2)))


def test_interval_dicts_are_strict_json():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        interval = percentile_interval(float("nan"), np.array([np.nan, np.nan]))
    assert interval.as_dict()["value"] is None and interval.as_dict()["n_undefined"] == 2
