"""Closed-form resampled statistics equal the metric on each explicitly drawn resample.

The explicit reference is :class:`bench.metrics.subgroups.CallableMetric`: it materializes every
resample as repeated case indices and calls the registry metric on it (one call per resample).
Average precision is also checked against scikit-learn on the drawn resamples.
"""

import warnings
from functools import partial

import numpy as np
import pytest
import sklearn.metrics as skm

from bench.metrics import classification as metric
from bench.metrics.resampled import Calibration, ConfusionMetric, OneVsRest, Weighted
from bench.metrics.subgroups import CallableMetric, CaseMean, subgroup_analysis
from bench.metrics.uncertainty import bootstrap_counts, bootstrap_indices, resample_counts


def _binary(n=160, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = np.round(np.clip(0.35 * y + rng.uniform(0, 0.65, n), 0, 1), 2)  # rounded: tied scores
    return y, score


def _multiclass(n=150, k=3, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    proba = rng.dirichlet(np.ones(k), n)
    proba[np.arange(n), y] += 0.3
    return y, proba / proba.sum(axis=1, keepdims=True)


def _count_matrices(y, seed=3):
    """Stratified whole-set counts, and the same counts restricted to a small group: two cases of
    class 0 and six of each other class, so that some resamples lack class 0 (undefined values)."""
    counts = bootstrap_counts(y.size, n_resamples=150, seed=seed, strata=y)
    group = np.zeros(y.size, dtype=bool)
    for label in np.unique(y):
        group[np.flatnonzero(y == label)[: 2 if label == 0 else 6]] = True
    return counts, counts * group


def _assert_same(fast, slow):
    assert np.array_equal(np.isnan(fast), np.isnan(slow))
    np.testing.assert_allclose(fast[~np.isnan(fast)], slow[~np.isnan(slow)], rtol=1e-12, atol=1e-12)


def _binary_cases():
    y, s = _binary()
    pred = (s >= 0.5).astype(np.int64)
    return [
        ("balanced_accuracy", ConfusionMetric(y, pred, 2, metric.balanced_accuracy_of),
         CallableMetric(metric.balanced_accuracy, y, pred, (("n_classes", 2),))),
        ("f1", ConfusionMetric(y, pred, 2, partial(metric.f1_of, binary=True)),
         CallableMetric(metric.f1, y, pred, (("n_classes", 2),))),
        ("sensitivity", ConfusionMetric(y, pred, 2, metric.sensitivity_of),
         CallableMetric(metric.sensitivity, y, s, (("threshold", 0.5),))),
        ("specificity", ConfusionMetric(y, pred, 2, metric.specificity_of),
         CallableMetric(metric.specificity, y, s, (("threshold", 0.5),))),
        ("auroc", Weighted(metric.weighted_auroc, y, s), CallableMetric(metric.auroc, y, s)),
        ("average_precision", Weighted(metric.weighted_average_precision, y, s),
         CallableMetric(metric.average_precision, y, s)),
        ("brier", CaseMean(metric.brier_terms(y, s)), CallableMetric(metric.brier, y, s)),
        ("log_loss", CaseMean(metric.log_loss_terms(y, s)), CallableMetric(metric.log_loss, y, s)),
        ("ece", Calibration(*metric.calibration_terms(y, s), n_bins=metric.ECE_BINS),
         CallableMetric(metric.ece, y, s)),
    ]


def _multiclass_cases():
    y, p = _multiclass()
    pred = p.argmax(axis=1)
    return [
        ("balanced_accuracy", ConfusionMetric(y, pred, 3, metric.balanced_accuracy_of),
         CallableMetric(metric.balanced_accuracy, y, pred, (("n_classes", 3),))),
        ("f1", ConfusionMetric(y, pred, 3, partial(metric.f1_of, binary=False)),
         CallableMetric(metric.f1, y, pred, (("n_classes", 3),))),
        ("auroc", OneVsRest(metric.weighted_auroc, y, p), CallableMetric(metric.auroc, y, p)),
        ("average_precision", OneVsRest(metric.weighted_average_precision, y, p),
         CallableMetric(metric.average_precision, y, p)),
        ("brier", CaseMean(metric.brier_terms(y, p)), CallableMetric(metric.brier, y, p)),
        ("log_loss", CaseMean(metric.log_loss_terms(y, p)), CallableMetric(metric.log_loss, y, p)),
        ("ece", Calibration(*metric.calibration_terms(y, p), n_bins=metric.ECE_BINS),
         CallableMetric(metric.ece, y, p)),
    ]


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_every_closed_form_equals_the_explicit_resample(kind):
    cases = _binary_cases() if kind == "binary" else _multiclass_cases()
    y = cases[0][1].y_true if hasattr(cases[0][1], "y_true") else None
    for name, fast, slow in cases:
        for counts in _count_matrices(np.asarray(y)):
            _assert_same(fast.resampled(counts), slow.resampled(counts))
        mask = np.arange(len(y)) % 3 == 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert fast.value(mask) == pytest.approx(slow.value(mask), rel=1e-12, abs=1e-12), name


def test_the_group_counts_do_hold_undefined_resamples():
    """So the NaN branches above are exercised: a 12-case group often lacks a class."""
    y, s = _binary()
    _, group_counts = _count_matrices(y)
    auroc = Weighted(metric.weighted_auroc, y, s).resampled(group_counts)
    assert 0 < np.isnan(auroc).sum() < auroc.size


def test_weighted_average_precision_equals_scikit_learn_on_drawn_resamples():
    y, s = _binary(n=90, seed=7)
    indices = bootstrap_indices(y.size, n_resamples=40, seed=2, strata=y)
    ours = metric.weighted_average_precision(y, s, resample_counts(indices, y.size))
    theirs = np.array([skm.average_precision_score(y[row], s[row]) for row in indices])
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_subgroup_analysis_with_a_closed_form_equals_the_loop():
    y, s = _binary(n=120, seed=5)
    sex = np.random.default_rng(50).choice(["F", "M"], y.size)
    counts = bootstrap_counts(y.size, n_resamples=100, seed=4, strata=y)
    fast = subgroup_analysis(Weighted(metric.weighted_average_precision, y, s), sex, counts=counts)
    slow = subgroup_analysis(CallableMetric(metric.average_precision, y, s), sex, counts=counts)
    for label in ("F", "M"):
        for field in ("value", "ci_low", "ci_high", "difference", "difference_ci_low", "difference_ci_high"):
            assert getattr(fast[label], field) == pytest.approx(getattr(slow[label], field), rel=1e-12), field


@pytest.mark.parametrize("width", [1, 5, 200])
def test_running_sums_make_cumsums_additions_in_its_order(width):
    """Both branches (cumsum for narrow matrices, row after row for wide ones) give numpy's values."""
    rows = np.random.default_rng(8).random((50, width))
    order = np.random.default_rng(9).permutation(50)[:40]
    out = metric.running_sums(rows, order)
    assert out.shape == (41, width) and not out[0].any()
    assert np.array_equal(out[1:], np.cumsum(rows[order], axis=0))


@pytest.mark.parametrize("func", [metric.weighted_auroc, metric.weighted_average_precision])
def test_ranking_metrics_do_not_depend_on_the_memory_order_of_the_counts(func):
    """The scorer's counts are Fortran-ordered (:func:`resample_counts`); C-ordered counts give the same
    values bit for bit, and one weight vector at a time the same values (numpy sums a single vector
    pairwise, so AP may differ in the last bit)."""
    y, s = _binary(n=130, seed=11)
    counts = bootstrap_counts(y.size, n_resamples=120, seed=6, strata=y)
    assert counts.flags.f_contiguous
    fortran = func(y, s, counts)
    assert np.array_equal(fortran, func(y, s, np.ascontiguousarray(counts)), equal_nan=True)
    np.testing.assert_allclose(fortran[:3], [func(y, s, row) for row in counts[:3]], rtol=1e-14)
    assert func(y, s) == func(y, s, np.ones(y.size))
