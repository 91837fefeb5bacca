"""Invariants every registered metric must satisfy (one shared module, as scikit-learn does)."""

import math

import numpy as np
import pytest

from bench.metrics.registry import (
    CLASSIFICATION_METRICS,
    METRICS,
    SEGMENTATION_METRICS,
    MetricInfo,
    get_metric,
)
from bench.metrics.segmentation import SCORE_FIELDS, score_case

EXPECTED_SEGMENTATION = ("dice", "iou", "precision", "recall", "volume_pred_ml", "volume_ref_ml", "ravd",
                         "hd", "hd95", "hd95_pooled", "assd", "masd", "nsd", "nsd_area", "lesion_precision",
                         "lesion_recall", "lesion_f1")
EXPECTED_CLASSIFICATION = ("auroc", "auroc_per_class", "average_precision", "balanced_accuracy",
                           "sensitivity", "specificity", "f1", "cohen_kappa", "quadratic_weighted_kappa",
                           "brier", "ece", "log_loss", "confusion_matrix")
ARRAY_VALUED = {"auroc_per_class", "confusion_matrix"}


def test_registry_holds_exactly_the_spec_names():
    assert SEGMENTATION_METRICS == EXPECTED_SEGMENTATION
    assert CLASSIFICATION_METRICS == EXPECTED_CLASSIFICATION
    assert set(METRICS) == set(EXPECTED_SEGMENTATION) | set(EXPECTED_CLASSIFICATION)
    with pytest.raises(KeyError, match="unknown metric 'dsc'"):
        get_metric("dsc")


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_entry_is_well_formed_and_resolves(name):
    info = METRICS[name]
    assert isinstance(info, MetricInfo) and info.name == name
    assert info.direction in ("higher", "lower", None)
    assert (info.kind, info.level) in (("segmentation", "case"), ("classification", "dataset"))
    assert callable(info.func) and info.description
    if info.kind == "segmentation":
        assert (info.inputs == "case" and name in SCORE_FIELDS) or (info.inputs == "masks" and info.direction
                                                                    == "higher" and name not in SCORE_FIELDS)
    else:
        assert info.inputs in ("scores", "labels", "scores_threshold")
    assert info.rankable == (info.direction is not None)


def _segmentation_pair():
    shape = (24, 24, 12)
    grids = np.ogrid[:24, :24, :12]
    ref = ((grids[0] - 10) ** 2 + (grids[1] - 12) ** 2 + (grids[2] - 6) ** 2) <= 25
    ref |= ((grids[0] - 20) ** 2 + (grids[1] - 4) ** 2 + (grids[2] - 9) ** 2) <= 4  # a lesion poor misses
    poor = ((grids[0] - 14) ** 2 + (grids[1] - 9) ** 2 + (grids[2] - 6) ** 2) <= 16
    poor = poor.copy()
    poor[22, 22, 1] = True  # plus a false positive lesion
    assert ref.shape == shape
    return ref, poor


@pytest.mark.parametrize("name", SEGMENTATION_METRICS)
def test_segmentation_perfect_prediction_is_best_and_beats_a_poor_one(name):
    info = METRICS[name]
    ref, poor = _segmentation_pair()
    spacing = (0.7, 0.7, 1.25)
    perfect_value = info.compute(ref, ref, spacing_mm=spacing, tolerance_mm=1.0)
    poor_value = info.compute(poor, ref, spacing_mm=spacing, tolerance_mm=1.0)
    assert math.isfinite(perfect_value) and math.isfinite(poor_value)
    if info.inputs == "case":
        assert perfect_value == getattr(score_case(ref, ref, spacing_mm=spacing, tolerance_mm=1.0), name)
    if info.direction == "higher":
        assert perfect_value == 1.0 and poor_value < perfect_value
    elif info.direction == "lower":
        assert perfect_value == 0.0 and poor_value > perfect_value


def _call(info: MetricInfo, y, score):
    if info.inputs == "scores":
        return info.func(y, score)
    if info.inputs == "labels":
        return info.func(y, (score >= 0.5).astype(int))
    return info.func(y, score, threshold=0.5)


@pytest.mark.parametrize("name", CLASSIFICATION_METRICS)
def test_classification_direction_and_permutation_invariance(name):
    info = METRICS[name]
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    perfect = np.where(y == 1, 0.9, 0.1)
    poor = np.clip(rng.random(200), 0.01, 0.99)
    order = rng.permutation(200)
    value_perfect, value_poor = _call(info, y, perfect), _call(info, y, poor)
    np.testing.assert_allclose(_call(info, y[order], poor[order]), value_poor, rtol=1e-12)
    if name in ARRAY_VALUED:
        assert np.shape(value_perfect) == (2,) if name == "auroc_per_class" else (2, 2)
        return
    assert math.isfinite(value_perfect) and math.isfinite(value_poor)
    if info.direction == "higher":
        assert value_perfect == pytest.approx(1.0) and value_poor < value_perfect
    else:
        assert value_poor > value_perfect
