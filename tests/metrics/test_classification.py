"""Classification metrics against scikit-learn, hand literals, and the undefined-metric policy."""

import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.preprocessing import label_binarize

from bench.errors import MetricInputError
from bench.metrics import UndefinedMetricWarning
from bench.metrics import classification as cm


@pytest.fixture
def binary():
    rng = np.random.default_rng(42)
    y = rng.integers(0, 2, 300)
    score = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0.001, 0.999).round(2)  # rounding makes ties
    return y, score


@pytest.fixture
def multiclass():
    rng = np.random.default_rng(7)
    k = 4
    y = rng.integers(0, k, 400)
    logits = rng.normal(size=(400, k)) + 1.2 * np.eye(k)[y]
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = np.clip(y + rng.integers(-1, 2, 400), 0, k - 1)
    return y, prob, pred, k


def test_binary_metrics_match_sklearn(binary):
    y, s = binary
    pred = (s >= 0.5).astype(int)
    assert cm.auroc(y, s) == pytest.approx(skm.roc_auc_score(y, s), rel=1e-12)
    assert cm.average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s), rel=1e-12)
    assert cm.balanced_accuracy(y, pred) == pytest.approx(skm.balanced_accuracy_score(y, pred), rel=1e-12)
    assert cm.sensitivity(y, s, threshold=0.5) == pytest.approx(skm.recall_score(y, pred), rel=1e-12)
    assert cm.specificity(y, s, threshold=0.5) == pytest.approx(skm.recall_score(1 - y, 1 - pred), rel=1e-12)
    assert cm.f1(y, pred) == pytest.approx(skm.f1_score(y, pred), rel=1e-12)
    assert cm.cohen_kappa(y, pred) == pytest.approx(skm.cohen_kappa_score(y, pred), rel=1e-12)
    assert cm.brier(y, s) == pytest.approx(skm.brier_score_loss(y, s), rel=1e-12)
    assert cm.log_loss(y, s) == pytest.approx(skm.log_loss(y, s), rel=1e-12)
    np.testing.assert_array_equal(cm.confusion_matrix(y, pred), skm.confusion_matrix(y, pred))


def test_multiclass_metrics_match_sklearn(multiclass):
    y, prob, pred, k = multiclass
    labels = list(range(k))
    assert cm.auroc(y, prob) == pytest.approx(skm.roc_auc_score(y, prob, multi_class="ovr"), rel=1e-12)
    np.testing.assert_allclose(cm.auroc_per_class(y, prob),
                               skm.roc_auc_score(y, prob, multi_class="ovr", average=None), rtol=1e-12)
    assert cm.average_precision(y, prob) == pytest.approx(
        skm.average_precision_score(label_binarize(y, classes=labels), prob), rel=1e-12)
    assert cm.balanced_accuracy(y, pred) == pytest.approx(skm.balanced_accuracy_score(y, pred), rel=1e-12)
    assert cm.f1(y, pred) == pytest.approx(skm.f1_score(y, pred, average="macro"), rel=1e-12)
    assert cm.cohen_kappa(y, pred) == pytest.approx(skm.cohen_kappa_score(y, pred), rel=1e-12)
    assert cm.quadratic_weighted_kappa(y, pred, n_classes=k) == pytest.approx(
        skm.cohen_kappa_score(y, pred, weights="quadratic", labels=labels), rel=1e-12)
    assert cm.brier(y, prob) == pytest.approx(skm.brier_score_loss(y, prob, labels=labels), rel=1e-12)
    assert cm.log_loss(y, prob) == pytest.approx(skm.log_loss(y, prob, labels=labels), rel=1e-12)
    np.testing.assert_array_equal(cm.confusion_matrix(y, pred, n_classes=k),
                                  skm.confusion_matrix(y, pred, labels=labels))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 5)), min_size=2, max_size=40))
def test_ranking_metrics_match_sklearn_with_heavy_ties(pairs):
    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] for p in pairs]) / 5.0
    if np.unique(y).size < 2:
        return
    assert cm.auroc(y, s) == pytest.approx(skm.roc_auc_score(y, s), rel=1e-12)
    assert cm.average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s), rel=1e-12)


def test_auroc_hand_literal_with_ties():
    """[0,1,0,1] with scores [.5,.5,.2,.9]: pairs (pos, neg) = 4, wins 3, one tie -> 3.5/4."""
    assert cm.auroc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == 0.875


def test_ece_hand_literal_and_brute_force():
    """Binary, 2 bins: bin [0, .5) holds p = .1, .3 with y = 0, 1 -> |0.5 - 0.2| * 2/5;
    bin [.5, 1] holds p = .6, .8, 1.0 with y = 1, 1, 0 -> |2/3 - 0.8| * 3/5. ECE = 0.12 + 0.08."""
    y = np.array([0, 1, 1, 1, 0])
    p = np.array([0.1, 0.3, 0.6, 0.8, 1.0])
    assert cm.ece(y, p, n_bins=2) == pytest.approx(0.2, rel=1e-12)

    rng = np.random.default_rng(1)
    prob = rng.dirichlet(np.ones(3), 200)
    truth = rng.integers(0, 3, 200)
    confidence, correct = prob.max(axis=1), prob.argmax(axis=1) == truth
    expected = 0.0
    for b in range(10):
        lo, hi = b / 10, (b + 1) / 10
        inside = (confidence >= lo) & ((confidence < hi) if b < 9 else (confidence <= hi))
        if inside.any():
            expected += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    assert cm.ece(truth, prob, n_bins=10) == pytest.approx(expected, rel=1e-12)


def test_brier_conventions():
    """Binary form is half the two-column multiclass form (MetricsReloaded's BS is 2x sklearn's binary)."""
    y = np.array([0, 1, 1])
    p = np.array([0.2, 0.7, 0.4])
    assert cm.brier(y, p) == pytest.approx((0.04 + 0.09 + 0.36) / 3)
    assert cm.brier(y, np.column_stack([1 - p, p])) == pytest.approx(2 * cm.brier(y, p))


@pytest.mark.parametrize("call", [
    lambda y, s: cm.auroc(y, s),
    lambda y, s: cm.average_precision(y, s),
    lambda y, s: cm.balanced_accuracy(y, (s > 0.5).astype(int)),
    lambda y, s: cm.auroc(y, np.column_stack([1 - s, s])),
])
@pytest.mark.parametrize("single_class", [0, 1])
def test_single_class_gives_nan_and_our_warning(call, single_class):
    y = np.full(6, single_class)
    s = np.linspace(0.1, 0.9, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.warns(UndefinedMetricWarning):
            value = call(y, s)
    assert np.isnan(value)


def test_threshold_metrics_undefined_without_the_class():
    with pytest.warns(UndefinedMetricWarning, match="sensitivity"):
        assert np.isnan(cm.sensitivity([0, 0, 0], [0.1, 0.7, 0.2]))
    with pytest.warns(UndefinedMetricWarning, match="specificity"):
        assert np.isnan(cm.specificity([1, 1], [0.1, 0.7]))
    with pytest.warns(UndefinedMetricWarning, match="f1"):
        assert np.isnan(cm.f1([0, 0], [0, 0]))
    with pytest.warns(UndefinedMetricWarning, match="kappa"):
        assert np.isnan(cm.cohen_kappa([1, 1, 1], [1, 1, 1]))
    # defined on one class: the calibration metrics
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cm.brier([1, 1], [0.5, 1.0]) == pytest.approx(0.125)
        assert cm.sensitivity([1, 1], [0.4, 0.6], threshold=0.5) == 0.5


@pytest.mark.parametrize("call, message", [
    (lambda: cm.auroc([0, 1, 1], [0.1, 0.2]), "y_score"),
    (lambda: cm.auroc([0, 1, 2], [0.1, 0.2, 0.3]), "y_true"),
    (lambda: cm.auroc([0, 1], [0.1, float("nan")]), "finite"),
    (lambda: cm.brier([0, 1], [0.1, 1.2]), r"\[0, 1\]"),
    (lambda: cm.log_loss([0, 1], [[0.5, 0.6], [0.1, 0.9]]), "sum to 1"),
    (lambda: cm.ece([0, 1], [0.2, 0.3], n_bins=0), "n_bins"),
    (lambda: cm.f1([0, 1], [0, 1], average="micro"), "average"),
    (lambda: cm.confusion_matrix([0, -1], [0, 1]), "y_true"),
])
def test_invalid_input_raises_naming_the_argument(call, message):
    with pytest.raises(MetricInputError, match=message):
        call()


def test_weighted_auroc_equals_auroc_of_repeated_cases(binary):
    y, s = binary
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 3, size=(5, y.size))
    batched = cm.weighted_auroc(y, s, counts)
    for row, value in zip(counts, batched, strict=True):
        index = np.repeat(np.arange(y.size), row)
        assert value == pytest.approx(skm.roc_auc_score(y[index], s[index]), rel=1e-12)
