"""Aggregates of a scored case table: bootstrap CIs, subgroup tables and fairness gaps.

Segmentation metrics are per-case values aggregated by their mean over the cases that count
(``exclude`` leaves missing cases out; ``empty_mask`` has already scored them); classification
metrics are computed once over each head's cases. Intervals are percentile bootstraps from one
(B, n) resample count matrix per case set, drawn by the task's bootstrap design
(:mod:`bench.scoring.bootstrap`: seeded by the task, clustered by patient when
``bootstrap.cluster`` names a column, stratified by the true class when ``bootstrap.stratify``
is set, segmentation by whether the reference is empty; the board draws its rank intervals the
same way). Subgroups and fairness reuse the same matrix, so a group's value and its difference to
the whole set come from the same resamples (:mod:`bench.metrics.subgroups`).

Point estimates are always the registry's metric functions on the full set; the bootstrap only
supplies the intervals.
"""

import logging
import math
import warnings
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from bench.io import json_number
from bench.metrics import UndefinedMetricWarning
from bench.metrics import classification as metric
from bench.metrics.calibration import calibration, reliability_curve
from bench.metrics.registry import METRICS
from bench.metrics.resampled import Calibration, ConfusionMetric, OneVsRest, Weighted
from bench.metrics.subgroups import (
    Auroc,
    CallableMetric,
    CaseMean,
    Kappa,
    fairness_gaps,
    ordinal_gaps,
    subgroup_analysis,
)
from bench.metrics.uncertainty import percentile_interval, resampled_means
from bench.parallel import one_blas_thread
from bench.scoring.bootstrap import design, empty_reference_strata
from bench.scoring.classification import HeadData, compute_metric
from bench.tasks import TaskSpec

log = logging.getLogger(__name__)

NON_SCALAR = ("auroc_per_class", "confusion_matrix")


def aggregate(spec: TaskSpec, per_case: pd.DataFrame, heads: dict[str, HeadData]) -> dict[str, Any]:
    """The ``metrics``, ``subgroups`` and ``fairness`` sections of scores.json."""
    with warnings.catch_warnings(record=True) as caught, one_blas_thread():
        warnings.simplefilter("always", UndefinedMetricWarning)
        if spec.kind == "segmentation":
            body = _segmentation(spec, per_case)
        else:
            body = _classification(spec, per_case, heads)
    for warning in caught:
        log.warning("%s", warning.message)
    return body


def _entry(interval_value: float, low: float, high: float, direction: str | None, n: int) -> dict[str, Any]:
    return {
        "value": json_number(interval_value),
        "ci_low": json_number(low),
        "ci_high": json_number(high),
        "direction": direction,
        "n": n,
    }


def _subgroups(spec: TaskSpec, statistic, table: pd.DataFrame, counts: np.ndarray) -> dict[str, Any]:
    out = {}
    whole = statistic.resampled(counts) if spec.subgroups.attributes else None  # shared by the attributes
    for attribute in spec.subgroups.attributes:
        groups = table[attribute].to_numpy() if attribute in table.columns else np.full(len(table), "")
        result = subgroup_analysis(
            statistic,
            groups,
            counts=counts,
            min_size=spec.subgroups.min_size,
            confidence=spec.bootstrap.confidence,
            whole=whole,
        )
        out[attribute] = {group: value.as_dict() for group, value in result.items()}
    return out


def _segmentation(spec: TaskSpec, per_case: pd.DataFrame) -> dict[str, Any]:
    scored = per_case[per_case[spec.metrics[0]].notna()].reset_index(drop=True)
    n = len(scored)
    metrics: dict[str, Any] = {}
    if n == 0:
        for name in spec.metrics:
            metrics[name] = _entry(math.nan, math.nan, math.nan, METRICS[name].direction, 0)
        return {"metrics": metrics, "subgroups": {}, "fairness": {}}
    counts = design(spec, scored, strata=empty_reference_strata(scored)).counts()
    values = scored[list(spec.metrics)].to_numpy(dtype=np.float64)
    means = resampled_means(values, counts)  # every metric's resampled means from one product
    for column, name in enumerate(spec.metrics):
        estimate = CaseMean(values[:, column]).value(np.ones(n, dtype=bool))
        interval = percentile_interval(estimate, means[:, column], confidence=spec.bootstrap.confidence)
        metrics[name] = _entry(interval.estimate, interval.low, interval.high, METRICS[name].direction, n)
    primary = CaseMean(scored[spec.primary_key].to_numpy(dtype=np.float64))
    return {"metrics": metrics, "subgroups": _subgroups(spec, primary, scored, counts), "fairness": {}}


def _statistic(name: str, data: HeadData):
    """The closed-form resampled statistic (:mod:`bench.metrics.resampled`) of a scalar head metric.

    Each is the registry metric with the registry's calling convention (:func:`compute_metric`);
    only a metric added to the registry without a closed form falls back to one call per resample.
    """
    k = 2 if data.binary else len(data.head.classes)
    y, y_score = data.y_true, data.y_score
    if name == "auroc":
        return Auroc(y, y_score)
    if name == "average_precision":
        func = metric.weighted_average_precision
        return Weighted(func, y, y_score) if data.binary else OneVsRest(func, y, data.proba)
    if name in ("quadratic_weighted_kappa", "cohen_kappa"):
        return Kappa(y, data.y_pred, k, quadratic=name != "cohen_kappa")
    if name == "balanced_accuracy":
        return ConfusionMetric(y, data.y_pred, k, metric.balanced_accuracy_of)
    if name == "f1":
        return ConfusionMetric(y, data.y_pred, k, partial(metric.f1_of, binary=k == 2))
    if name in ("sensitivity", "specificity"):
        decided = (np.asarray(y_score) >= data.head.threshold).astype(np.int64)
        rate = metric.sensitivity_of if name == "sensitivity" else metric.specificity_of
        return ConfusionMetric(y, decided, 2, rate)
    if name == "brier":
        return CaseMean(metric.brier_terms(y, y_score))
    if name == "log_loss":
        return CaseMean(metric.log_loss_terms(y, y_score))
    if name == "ece":
        return Calibration(*metric.calibration_terms(y, y_score), n_bins=metric.ECE_BINS)
    info = METRICS[name]
    if info.inputs == "labels":
        return CallableMetric(info.func, y, data.y_pred, (("n_classes", k),))
    if info.inputs == "scores_threshold":
        return CallableMetric(info.func, y, y_score, (("threshold", data.head.threshold),))
    return CallableMetric(info.func, y, y_score)


def _per_class_ci(data: HeadData, counts: np.ndarray, confidence: float) -> tuple[dict, dict]:
    lows, highs = {}, {}
    for k, cls in enumerate(data.head.classes):
        statistic = Auroc((data.y_true == k).astype(np.int64), data.proba[:, k])
        interval = percentile_interval(
            statistic.value(np.ones(len(data.y_true), dtype=bool)),
            statistic.resampled(counts),
            confidence=confidence,
        )
        lows[cls], highs[cls] = json_number(interval.low), json_number(interval.high)
    return lows, highs


def _head_metrics(spec: TaskSpec, data: HeadData, counts: np.ndarray | None) -> dict[str, Any]:
    out = {}
    n = len(data.y_true)
    confidence = spec.bootstrap.confidence
    for name in data.head.metrics:
        key = f"{data.head.name}.{name}"
        direction = METRICS[name].direction
        if n == 0:
            out[key] = _entry(math.nan, math.nan, math.nan, direction, 0)
            continue
        value = compute_metric(name, data)
        if name == "auroc_per_class":
            lows, highs = _per_class_ci(data, counts, confidence)
            out[key] = {
                "value": {c: json_number(v) for c, v in value.items()},
                "ci_low": lows,
                "ci_high": highs,
                "direction": direction,
                "n": n,
            }
        elif name in NON_SCALAR:
            out[key] = {
                "value": value,
                "ci_low": None,
                "ci_high": None,
                "direction": direction,
                "n": n,
                "labels": list(data.head.classes),
            }
        else:
            interval = percentile_interval(
                value, _statistic(name, data).resampled(counts), confidence=confidence
            )
            out[key] = _entry(interval.estimate, interval.low, interval.high, direction, n)
    return out


def _calibration_of(y: np.ndarray, p: np.ndarray, counts: np.ndarray | None, confidence: float) -> dict:
    fit = calibration(y, p)
    bins = reliability_curve(y, p, counts=counts, confidence=confidence)
    return {"slope": json_number(fit.slope), "intercept": json_number(fit.intercept),
            "slope_model_intercept": json_number(fit.slope_model_intercept), "n": fit.n,
            "bins": [{"low": b.low, "high": b.high, "n": b.count,
                      "mean_predicted": json_number(b.mean_predicted),
                      "observed": json_number(b.observed), "observed_low": json_number(b.observed_low),
                      "observed_high": json_number(b.observed_high)} for b in bins]}


def _calibration(spec: TaskSpec, data: HeadData, table: pd.DataFrame, counts: np.ndarray) -> dict[str, Any]:
    """Calibration of one head (:mod:`bench.metrics.calibration`): the positive class of a binary head,
    every class one-vs-rest of a multiclass one; per subgroup (slope and intercept only) where the
    group has at least ``subgroups.min_size`` cases of both outcomes."""
    confidence = spec.bootstrap.confidence
    classes = [data.head.positive] if data.binary else list(data.head.classes)
    out: dict[str, Any] = {}
    for name in classes:
        k = data.head.classes.index(name)
        y, p = (data.y_true == k).astype(int), data.proba[:, k]
        entry = _calibration_of(y, p, counts, confidence)
        groups_out: dict[str, Any] = {}
        for attribute in spec.subgroups.attributes:
            if attribute not in table.columns:
                continue
            groups = table[attribute].astype(str).to_numpy()
            for group in sorted(set(groups)):
                member = groups == group
                if min(y[member].sum(), (1 - y[member]).sum()) < spec.subgroups.min_size:
                    continue
                fit = calibration(y[member], p[member])
                groups_out.setdefault(attribute, {})[group] = {
                    "n": int(member.sum()), "slope": json_number(fit.slope),
                    "intercept": json_number(fit.intercept)}
        entry["subgroups"] = groups_out
        out[name] = entry
    return out


def _classification(spec: TaskSpec, per_case: pd.DataFrame, heads: dict[str, HeadData]) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    subgroups: dict[str, Any] = {}
    fairness: dict[str, Any] = {}
    calibrations: dict[str, Any] = {}
    primary_head, _, primary_metric = spec.primary_key.partition(".")
    for head in spec.heads:
        data = heads[head.name]
        table = per_case.iloc[data.index].reset_index(drop=True)
        counts = None
        if len(data.y_true):
            counts = design(spec, table, strata=data.y_true).counts()
        metrics.update(_head_metrics(spec, data, counts))
        if counts is None:
            continue
        if head.name == primary_head:
            subgroups = _subgroups(spec, _statistic(primary_metric, data), table, counts)
        gaps = _fairness(spec, data, table, counts)
        if gaps:
            fairness[head.name] = gaps
        calibrations[head.name] = _calibration(spec, data, table, counts)
    return {"metrics": metrics, "subgroups": subgroups, "fairness": fairness, "calibration": calibrations}


def _fairness(spec: TaskSpec, data: HeadData, table: pd.DataFrame, counts: np.ndarray) -> dict[str, Any]:
    """MELODY gaps: EOD/AAOD for a binary head, delta QWK for an ordinal one; {} otherwise."""
    if not (data.binary or data.head.ordinal):
        return {}
    options = {"counts": counts, "min_size": spec.subgroups.min_size, "confidence": spec.bootstrap.confidence}
    by_attribute = {}
    for attribute in spec.subgroups.attributes:
        groups = table[attribute].to_numpy() if attribute in table.columns else np.full(len(table), "")
        if data.binary:
            result = fairness_gaps(
                data.y_true, data.y_score, groups, threshold=data.head.threshold, **options
            )
        else:
            result = ordinal_gaps(
                data.y_true, data.y_pred, groups, n_classes=len(data.head.classes), **options
            )
        by_attribute[attribute] = {group: value.as_dict() for group, value in result.items()}
    measure = (
        "equal_opportunity_difference+average_absolute_odds_difference"
        if data.binary
        else "delta_quadratic_weighted_kappa"
    )
    return {"measure": measure, "reference": "largest group", "attributes": by_attribute}
