"""Subgroup scores and MELODY fairness gaps: hand literals and peers."""

import numpy as np
import pytest
import sklearn.metrics as skm

from bench.errors import MetricInputError
from bench.metrics.classification import quadratic_weighted_kappa
from bench.metrics.subgroups import (
    Auroc,
    CallableMetric,
    CaseMean,
    Kappa,
    fairness_gaps,
    group_labels,
    ordinal_gaps,
    subgroup_analysis,
)
from bench.metrics.uncertainty import bootstrap_counts


def test_group_labels_map_missing_to_unknown():
    labels = group_labels(["A", None, float("nan"), " ", 3])
    assert list(labels) == ["A", "unknown", "unknown", "unknown", "3"]


def test_case_mean_per_group_and_difference_to_whole():
    values = np.array([1.0, 0.8, 0.6, 0.4, 0.2, 0.0] * 5)
    groups = np.array(["a", "a", "a", "b", "b", "c"] * 5)
    counts = bootstrap_counts(30, n_resamples=400, seed=0)
    result = subgroup_analysis(CaseMean(values), groups, counts=counts, min_size=5)
    assert result["a"].n == 15 and result["a"].value == pytest.approx(0.8)
    assert result["a"].difference == pytest.approx(0.8 - 0.5)
    assert result["a"].ci_low <= 0.8 <= result["a"].ci_high
    assert result["b"].value == pytest.approx(0.3)
    assert result["c"].too_small is False and result["c"].value == 0.0
    small = subgroup_analysis(CaseMean(values), groups, counts=counts, min_size=10)
    assert small["c"].too_small and np.isnan(small["c"].value)
    assert small["c"].as_dict() == {"n": 5, "too_small": True, "value": None, "ci_low": None, "ci_high": None,
                                    "difference": None, "difference_ci_low": None, "difference_ci_high": None,
                                    "n_resamples": 0, "n_undefined": 0}


def test_auroc_per_site_matches_sklearn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    s = rng.random(200) + 0.5 * y
    site = rng.choice(["419639", "660042"], 200)
    counts = bootstrap_counts(200, n_resamples=300, seed=1, strata=y)
    result = subgroup_analysis(Auroc(y, s), site, counts=counts)
    for label, entry in result.items():
        mask = site == label
        assert entry.value == pytest.approx(skm.roc_auc_score(y[mask], s[mask]), rel=1e-12)
        assert entry.ci_low < entry.value < entry.ci_high
    assert result["419639"].difference == pytest.approx(result["419639"].value - skm.roc_auc_score(y, s))


def test_vectorized_kappa_equals_the_looped_metric():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 4, 120)
    pred = np.clip(y + rng.integers(-1, 2, 120), 0, 3)
    sex = rng.choice(["F", "M"], 120)
    counts = bootstrap_counts(120, n_resamples=100, seed=2, strata=y)
    fast = subgroup_analysis(Kappa(y, pred, 4), sex, counts=counts)
    slow = subgroup_analysis(CallableMetric(quadratic_weighted_kappa, y, pred, (("n_classes", 4),)), sex,
                             counts=counts)
    for label in ("F", "M"):
        mask = sex == label
        assert fast[label].value == pytest.approx(
            skm.cohen_kappa_score(y[mask], pred[mask], weights="quadratic", labels=range(4)), rel=1e-12)
        for name in ("value", "ci_low", "ci_high", "difference", "difference_ci_low", "difference_ci_high"):
            assert getattr(fast[label], name) == pytest.approx(getattr(slow[label], name), rel=1e-9), name


def test_fairness_gaps_hand_literal():
    """Reference group A (largest): TPR 3/4, FPR 1/4. Group B: TPR 1/2, FPR 1/2.
    EOD = 1/2 - 3/4 = -0.25; AAOD = (|1/2 - 1/4| + |1/2 - 3/4|) / 2 = 0.25."""
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0])
    decided = np.array([1, 1, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0])
    groups = np.array(["A"] * 8 + ["B"] * 4)
    counts = bootstrap_counts(12, n_resamples=200, seed=0, strata=y)
    result = fairness_gaps(y, decided * 0.9, groups, counts=counts, threshold=0.5, min_size=2)
    assert set(result) == {"B"}
    entry = result["B"]
    assert entry.reference == "A" and entry.n == 4
    assert entry.eod == pytest.approx(-0.25) and entry.aaod == pytest.approx(0.25)
    assert entry.aaod_ci_low >= 0
    assert fairness_gaps(y, decided * 0.9, groups, counts=counts, min_size=5)["B"].too_small
    swapped = fairness_gaps(y, decided * 0.9, groups, counts=counts, min_size=2, reference="B")["A"]
    assert swapped.eod == pytest.approx(0.25) and swapped.aaod == pytest.approx(0.25)
    with pytest.raises(MetricInputError, match="reference group"):
        fairness_gaps(y, decided, groups, counts=counts, reference="Z")


def test_ordinal_gaps_are_delta_qwk_against_the_reference():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 3, 150)
    pred = np.where(rng.random(150) < 0.7, y, rng.integers(0, 3, 150))
    site = np.array(["big"] * 90 + ["small"] * 60)
    counts = bootstrap_counts(150, n_resamples=200, seed=5, strata=y)
    result = ordinal_gaps(y, pred, site, n_classes=3, counts=counts)
    qwk = {g: skm.cohen_kappa_score(y[site == g], pred[site == g], weights="quadratic", labels=range(3))
           for g in ("big", "small")}
    assert result["big"].difference == 0.0
    assert result["small"].value == pytest.approx(qwk["small"], rel=1e-12)
    assert result["small"].difference == pytest.approx(qwk["small"] - qwk["big"], rel=1e-12)
    small = result["small"]
    assert small.difference_ci_low <= small.difference <= small.difference_ci_high


def test_interval_withheld_when_many_resamples_are_undefined():
    # sex M: 7 cases, 1 of them positive; resampling all 60 cases (stratified by class)
    # often draws no positive M case, which leaves the group's AUROC undefined there.
    y = np.array([1, 0, 0, 0, 0, 0, 0] + [1, 0] * 26 + [1])
    s = np.random.default_rng(9).random(y.size) + 0.4 * y
    sex = np.array(["M"] * 7 + ["F"] * 53)
    counts = bootstrap_counts(60, n_resamples=500, seed=4, strata=y)
    result = subgroup_analysis(Auroc(y, s), sex, counts=counts, min_size=5)
    # brute force: a resample is undefined for M when it draws no M positive or no M negative
    m = sex == "M"
    undefined = int(np.sum(((counts[:, m & (y == 1)]).sum(1) == 0) | ((counts[:, m & (y == 0)]).sum(1) == 0)))
    assert undefined > 0.2 * 500
    male, female = result["M"], result["F"]
    assert male.n_undefined == undefined and male.n_resamples == 500
    assert male.value == pytest.approx(skm.roc_auc_score(y[m], s[m]))  # the estimate is still given
    assert np.isnan(male.ci_low) and np.isnan(male.ci_high) and np.isnan(male.difference_ci_low)
    assert male.as_dict()["ci_low"] is None and male.as_dict()["n_undefined"] == undefined
    assert female.n_undefined == 0 and female.ci_low < female.value < female.ci_high < 1
