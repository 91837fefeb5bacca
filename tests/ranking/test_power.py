"""Minimum detectable difference: the formula by hand, a brute-force power simulation, DeLong."""

import math

import numpy as np
import pytest
from scipy.special import ndtri

from bench.metrics.uncertainty import bootstrap_counts, delong_test
from bench.ranking.power import auroc_power, case_mean_power, mdd_factor


def test_the_factor_at_alpha_005_and_80_percent_power_is_2_80():
    assert mdd_factor() == pytest.approx(1.959964 + 0.841621, abs=1e-5)
    assert mdd_factor(alpha=0.01, power=0.9) == pytest.approx(2.575829 + 1.281552, abs=1e-5)


def test_a_true_difference_equal_to_the_mdd_is_detected_about_80_percent_of_the_time():
    """Brute force: many simulated boards of two entries whose true gap is the population MDD."""
    rng = np.random.default_rng(2026)
    n, sigma, studies = 40, 0.12, 300
    delta = mdd_factor() * sigma / math.sqrt(n)
    counts = bootstrap_counts(n, n_resamples=400, seed=0)
    detected = 0
    for _ in range(studies):
        base = rng.uniform(0.5, 0.9, size=n)
        values = np.column_stack([base + delta + rng.normal(0, sigma, n), base])
        report = case_mean_power(["a", "b"], values, counts)
        gap = report.gaps[0]
        detected += abs(gap.gap) / gap.standard_error > ndtri(0.975)
    assert 0.72 <= detected / studies <= 0.88


def test_bootstrap_standard_error_is_the_standard_error_of_the_paired_mean_difference():
    rng = np.random.default_rng(3)
    n = 60
    differences = rng.normal(0.05, 0.2, size=n)
    values = np.column_stack([differences + 1.0, np.ones(n)])
    report = case_mean_power(["a", "b"], values, bootstrap_counts(n, n_resamples=4000, seed=1))
    analytic = differences.std(ddof=0) / math.sqrt(n)
    assert report.gaps[0].standard_error == pytest.approx(analytic, rel=0.06)
    assert report.gaps[0].gap == pytest.approx(differences.mean())
    assert report.mdd == pytest.approx(mdd_factor() * report.gaps[0].standard_error)


def test_resolvable_gaps_by_hand():
    n = 30
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 0.01, size=(n, 3))
    values = np.array([0.9, 0.5, 0.499]) + noise
    report = case_mean_power(["first", "second", "third"], values, bootstrap_counts(n, seed=0))
    assert [(g.upper, g.lower) for g in report.gaps] == [("first", "second"), ("second", "third")]
    assert [g.resolvable for g in report.gaps] == [True, False]
    assert report.resolvable == 1


def test_missing_cases_count_only_where_both_entries_have_them():
    values = np.array([[1.0, 0.0], [np.nan, 0.0], [1.0, 0.0], [1.0, np.nan]])
    report = case_mean_power(["a", "b"], values, bootstrap_counts(4, n_resamples=50, seed=0))
    assert report.gaps[0].gap == 1.0


def test_auroc_gap_standard_error_is_delongs():
    rng = np.random.default_rng(11)
    y = np.repeat([0, 1], 40)
    a = y + rng.normal(0, 0.8, y.size)
    b = y + rng.normal(0, 1.2, y.size)
    report = auroc_power(["a", "b"], y, np.column_stack([a, b]))
    test = delong_test(y, a, b)
    assert report.method == "DeLong"
    assert report.gaps[0].gap == pytest.approx(test.difference)
    assert report.gaps[0].standard_error == pytest.approx((test.high - test.low) / (2 * ndtri(0.975)))


def test_resampled_power_takes_the_spread_of_paired_resampled_differences():
    from bench.ranking.power import resampled_power

    resampled = np.array([[0.9, 0.8], [0.8, 0.8], [0.7, 0.6], [0.8, 0.6]])
    report = resampled_power(["a", "b"], [0.8, 0.7], resampled, n_cases=10)
    differences = np.array([0.1, 0.0, 0.1, 0.2])
    assert report.gaps[0].gap == pytest.approx(0.1)
    assert report.gaps[0].standard_error == pytest.approx(differences.std(ddof=1))
