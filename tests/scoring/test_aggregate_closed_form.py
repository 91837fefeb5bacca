"""Every scalar classification metric of the registry gets a closed-form bootstrap in scoring, equal
to calling the registry metric on each drawn resample (the explicit loop it replaces)."""

import numpy as np
import pytest

from bench.metrics.registry import CLASSIFICATION_METRICS, METRICS
from bench.metrics.subgroups import CallableMetric
from bench.metrics.uncertainty import bootstrap_counts
from bench.scoring.aggregate import NON_SCALAR, _statistic
from bench.scoring.classification import HeadData, predicted_class
from bench.tasks import Head

SCALAR = [name for name in CLASSIFICATION_METRICS if name not in NON_SCALAR]


def _head_data(n_classes: int, seed: int = 8) -> HeadData:
    rng = np.random.default_rng(seed)
    classes = [f"c{k}" for k in range(n_classes)]
    head = Head(name="h", column="h", classes=classes, positive=classes[-1] if n_classes == 2 else None,
                threshold=0.4, metrics=SCALAR)
    y = rng.integers(0, n_classes, 140)
    proba = rng.dirichlet(np.ones(n_classes), y.size)
    proba[np.arange(y.size), y] += 0.25
    proba = np.round(proba / proba.sum(axis=1, keepdims=True), 3)
    proba[:, -1] = 1.0 - proba[:, :-1].sum(axis=1)
    return HeadData(head, y, proba, predicted_class(head, proba), np.arange(y.size))


def _explicit(name: str, data: HeadData) -> CallableMetric:
    info, k = METRICS[name], len(data.head.classes)
    if info.inputs == "labels":
        return CallableMetric(info.func, data.y_true, data.y_pred, (("n_classes", k),))
    if info.inputs == "scores_threshold":
        return CallableMetric(info.func, data.y_true, data.y_score, (("threshold", data.head.threshold),))
    return CallableMetric(info.func, data.y_true, data.y_score)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("name", SCALAR)
def test_closed_form_statistic_equals_the_registry_metric_on_each_resample(name, n_classes):
    data = _head_data(n_classes)
    if n_classes > 2 and METRICS[name].inputs == "scores_threshold":
        pytest.skip(f"{name} is defined for binary heads only")
    statistic = _statistic(name, data)
    assert not isinstance(statistic, CallableMetric), f"{name} has no closed form"
    counts = bootstrap_counts(data.y_true.size, n_resamples=120, seed=6, strata=data.y_true).astype(float)
    fast, slow = statistic.resampled(counts), _explicit(name, data).resampled(counts)
    assert np.array_equal(np.isnan(fast), np.isnan(slow))
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)
