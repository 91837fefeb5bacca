"""Dataset-level classification metrics: ranking, threshold, agreement and calibration.

Conventions shared by every function:

- ``y_true`` holds class indices ``0 .. K-1`` (binary: 0 = negative, 1 = positive).
- Binary heads pass ``y_score`` / ``y_prob`` as the positive-class probability, shape (n,);
  multiclass heads pass the (n, K) matrix, column k for class k.
- Threshold metrics on a binary head predict positive when ``score >= threshold``.
- Valid input for which a metric is undefined (e.g. AUROC when ``y_true`` holds one class, a
  0/0 ratio) returns NaN and warns :class:`bench.metrics.UndefinedMetricWarning`, the same on
  every scikit-learn version (scikit-learn 1.5 raises for single-class AUROC, 1.9 warns).
- Invalid input (shape mismatch, NaN scores, labels out of range, probabilities outside
  [0, 1]) raises :class:`bench.errors.MetricInputError` (a ValueError) naming the argument.

The ranking metrics are computed from one sort with cumulative sums (no loop over
thresholds), and share :func:`weighted_auroc` with the bootstrap in
:mod:`bench.metrics.uncertainty`.
"""

import warnings

import numpy as np

from bench.errors import MetricInputError
from bench.metrics import UndefinedMetricWarning

__all__ = [
    "auroc", "auroc_per_class", "average_precision", "balanced_accuracy", "balanced_accuracy_of", "brier",
    "brier_terms", "calibration_terms", "cohen_kappa", "confusion_matrix", "ece", "f1", "f1_of", "log_loss",
    "log_loss_terms", "quadratic_weighted_kappa", "sensitivity", "sensitivity_of", "specificity",
    "running_sums", "specificity_of", "weighted_auroc",
    "weighted_average_precision",
]


def _undefined(metric: str, reason: str) -> float:
    """The single place that owns the undefined-metric policy: warn and return NaN."""
    warnings.warn(f"{metric} is undefined: {reason}; returning NaN", UndefinedMetricWarning, stacklevel=3)
    return float("nan")


def _labels(y_true, n_classes: int | None = None, name: str = "y_true") -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1 or y.size == 0:
        raise MetricInputError(f"{name} must be a non-empty 1D array of class indices, got shape {y.shape}")
    if y.dtype.kind == "b":
        return y.astype(np.int64)
    if y.dtype.kind not in "iuf" or (y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0)):
        raise MetricInputError(f"{name} must hold integer class indices 0..K-1, got dtype {y.dtype}")
    y = y.astype(np.int64)
    upper = n_classes if n_classes is not None else None
    if y.min() < 0 or (upper is not None and y.max() >= upper):
        raise MetricInputError(f"{name} must hold class indices in 0..{'K' if upper is None else upper}-1, "
                               f"got values from {y.min()} to {y.max()}")
    return y


def _scores(y_score, n: int, name: str = "y_score", probabilities: bool = False) -> np.ndarray:
    s = np.asarray(y_score, dtype=np.float64)
    if s.ndim not in (1, 2) or s.shape[0] != n:
        raise MetricInputError(f"{name} must have shape ({n},) or ({n}, K) to match y_true, got {s.shape}")
    if s.ndim == 2 and s.shape[1] < 2:
        raise MetricInputError(f"{name} as a matrix needs K >= 2 columns, got {s.shape}")
    if not np.all(np.isfinite(s)):
        bad = np.count_nonzero(~np.isfinite(s))
        raise MetricInputError(f"{name} must be finite, got {bad} NaN/inf values")
    if probabilities:
        if s.min() < 0 or s.max() > 1:
            raise MetricInputError(f"{name} must be probabilities in [0, 1], "
                                   f"got range [{s.min()}, {s.max()}]")
        if s.ndim == 2 and not np.allclose(s.sum(axis=1), 1.0, atol=1e-6):
            raise MetricInputError(f"{name} rows must sum to 1 (a probability per class), got row sums "
                                   f"from {s.sum(axis=1).min()} to {s.sum(axis=1).max()}")
    return s


def _binary(y_true, y_score, probabilities: bool = False) -> tuple[np.ndarray, np.ndarray]:
    y = _labels(y_true, 2)
    s = _scores(y_score, y.size, probabilities=probabilities)
    if s.ndim != 1:
        raise MetricInputError(f"a binary metric needs y_score of shape ({y.size},), got {s.shape}")
    return y, s


def running_sums(rows: np.ndarray, order: np.ndarray, dtype=None) -> np.ndarray:
    """Running sums of the rows ``rows[order]`` of an (n, B) array: ``out[k] = rows[order[:k]].sum(axis=0)``.

    Shape (len(order) + 1, B). Row k + 1 is row k plus one more case: the additions
    ``numpy.cumsum(rows[order], axis=0)`` makes, in the same order (so the same values). But cumsum
    walks each of the B columns with a strided scalar loop, while adding whole rows is one vector
    addition per case, several times faster for the (cases, resamples) matrices of the bootstrap,
    and reads each row in place instead of copying ``rows[order]`` first.
    """
    out = np.zeros((order.size + 1, rows.shape[1]), dtype=dtype or rows.dtype)
    if rows.shape[1] < _ROW_LOOP_MIN_WIDTH:
        np.cumsum(rows[order], axis=0, out=out[1:])
        return out
    for k, case in enumerate(order.tolist()):
        np.add(out[k], rows[case], out=out[k + 1])
    return out


_ROW_LOOP_MIN_WIDTH = 64
"""Narrower than this (a single weight vector, a handful of resamples) cumsum's own loop is faster."""


def weighted_auroc(y_true: np.ndarray, y_score: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Binary AUROC under case weights, for one weight vector or a (B, n) matrix of them.

    .. math:: \\mathrm{AUC} = \\frac{\\sum_i \\sum_j w_i w_j ([s_i > s_j] + \\tfrac12 [s_i = s_j])}
              {\\sum_i w_i \\sum_j w_j}, \\quad i \\text{ positive}, j \\text{ negative}

    With integer weights (how often each case was drawn) this is the AUROC of a bootstrap
    resample, so all resamples cost one sort of the negatives' scores, one binary search per
    positive, and O(B n) sums (exact integer sums for integer weights).

    Parameters
    ----------
    y_true : ndarray of int, shape (n,)
        0/1 labels (validated by the caller).
    y_score : ndarray of float, shape (n,)
    weights : ndarray, shape (n,) or (B, n), optional
        Case weights; None means 1 for every case.

    Returns
    -------
    ndarray of float, shape () or (B,)
        NaN where a weight vector leaves no positive or no negative weight (no warning: the
        caller decides).
    """
    w = np.ones((1, y_true.size)) if weights is None else np.atleast_2d(np.asarray(weights))
    cases = w.T  # (n, B): a case's weights in every resample are one row (contiguous for F-ordered counts)
    positive = y_true == 1
    neg_order = np.flatnonzero(~positive)[np.argsort(y_score[~positive], kind="mergesort")]
    neg_sorted = y_score[neg_order]
    pos_index = np.flatnonzero(positive)
    # negatives strictly below / at most each positive score, as positions in the sorted negatives
    below = np.searchsorted(neg_sorted, y_score[pos_index], side="left")
    upto = np.searchsorted(neg_sorted, y_score[pos_index], side="right")
    cumulative = running_sums(cases, neg_order, dtype=np.result_type(w.dtype, np.int64))
    w_pos = cases[pos_index]
    at_or_below = cumulative[below]
    at_or_below += cumulative[upto]
    twice_numerator = np.einsum("ij,ij->j", w_pos, at_or_below)
    denominator = w_pos.sum(axis=0) * cumulative[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.where(denominator > 0, twice_numerator / (2.0 * np.where(denominator > 0, denominator, 1)),
                       np.nan)
    return auc[0] if weights is None or np.ndim(weights) == 1 else auc


def _binary_auroc(y: np.ndarray, s: np.ndarray, metric: str) -> float:
    if np.unique(y).size < 2:
        return _undefined(metric, "y_true holds a single class")
    return float(weighted_auroc(y, s))


def auroc_per_class(y_true, y_score) -> np.ndarray:
    """One-vs-rest AUROC of each class.

    Parameters
    ----------
    y_true : array_like of int, shape (n,)
    y_score : array_like, shape (n, K) (or (n,) for a binary head, read as [1 - s, s])

    Returns
    -------
    ndarray, shape (K,)
        AUROC of class k versus the rest, from column k; NaN (with a warning) for a class
        absent from ``y_true`` or present in every case. Ties in scores count one half.
    """
    s = np.asarray(y_score, dtype=np.float64)
    if s.ndim == 1:
        s = np.column_stack([1.0 - s, s])
    y = _labels(y_true, s.shape[1] if s.ndim == 2 else None)
    s = _scores(s, y.size)
    return np.array([_binary_auroc((y == k).astype(np.int64), s[:, k], f"auroc of class {k}")
                     for k in range(s.shape[1])])


def auroc(y_true, y_score) -> float:
    """Area under the ROC curve: binary, or one-vs-rest macro average for multiclass.

    Binary (``y_score`` shape (n,)): the Mann-Whitney probability that a random positive
    scores above a random negative, ties counting one half (equal to scikit-learn's
    ``roc_auc_score``). Multiclass (shape (n, K)): the unweighted mean of
    :func:`auroc_per_class`; NaN if any class is absent (scikit-learn's ``multi_class="ovr"``,
    ``average="macro"``, which additionally requires rows summing to 1; we do not).

    Returns NaN with :class:`UndefinedMetricWarning` when ``y_true`` holds a single class.
    """
    s = np.asarray(y_score)
    if s.ndim == 2:
        per_class = auroc_per_class(y_true, s)
        return float(np.mean(per_class)) if np.all(np.isfinite(per_class)) else float("nan")
    y, s = _binary(y_true, y_score)
    return _binary_auroc(y, s, "auroc")


def weighted_average_precision(y_true: np.ndarray, y_score: np.ndarray,
                               weights: np.ndarray | None = None) -> np.ndarray:
    """Binary average precision under case weights, for one weight vector or a (B, n) matrix of them.

    .. math:: \\mathrm{AP} = \\sum_t (R_t - R_{t-1}) P_t, \\quad
              P_t = \\frac{\\sum_{s_i \\ge t} w_i y_i}{\\sum_{s_i \\ge t} w_i}, \\quad
              R_t = \\frac{\\sum_{s_i \\ge t} w_i y_i}{\\sum_i w_i y_i}

    over the distinct scores t in decreasing order (tied scores form one threshold). With integer
    weights (how often each case was drawn) this is the AP of a bootstrap resample: one sort for
    all resamples, then cumulative sums.

    Parameters
    ----------
    y_true : ndarray of int, shape (n,)
        0/1 labels (validated by the caller).
    y_score : ndarray of float, shape (n,)
    weights : ndarray, shape (n,) or (B, n), optional
        Case weights; None means 1 for every case.

    Returns
    -------
    ndarray of float, shape () or (B,)
        NaN where a weight vector leaves no positive or no negative weight (no warning: the
        caller decides).
    """
    w = np.ones((1, y_true.size)) if weights is None else np.atleast_2d(np.asarray(weights, dtype=np.float64))
    cases = w.T  # (n, B), as in weighted_auroc
    order = np.argsort(-y_score, kind="mergesort")
    s_desc = y_score[order]
    ends = np.flatnonzero(np.r_[s_desc[1:] != s_desc[:-1], True]) + 1  # cases down to each threshold
    is_positive = y_true[order] == 1
    running, positive_running = running_sums(cases, order), running_sums(cases, order[is_positive])
    positives_upto = np.r_[0, np.cumsum(is_positive)][ends]  # positives down to each threshold
    # a threshold that adds no positive has recall step exactly 0 and adds exactly 0 to the sum, which
    # numpy takes row after row for several weight vectors: there only the thresholds that add positives
    # are kept (the same sum, term for term). One vector it sums pairwise, so it keeps them all.
    adds = np.diff(positives_upto, prepend=0) > 0 if cases.shape[1] > 1 else np.ones(ends.size, dtype=bool)
    predicted, tp = running[ends[adds]], positive_running[positives_upto[adds]]
    positives, total = positive_running[-1], running[-1]
    step = np.empty_like(tp)  # np.diff(tp, axis=0, prepend=0), without its concatenated copy
    step[:1] = tp[:1]
    np.subtract(tp[1:], tp[:-1], out=step[1:])
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
        area = np.multiply(step, precision, out=step).sum(axis=0)  # row after row, as before
        ap = np.where((positives > 0) & (total > positives), area / np.where(positives > 0, positives, 1.0),
                      np.nan)
    return ap[0] if weights is None or np.ndim(weights) == 1 else ap


def _binary_average_precision(y: np.ndarray, s: np.ndarray, metric: str) -> float:
    if np.unique(y).size < 2:
        return _undefined(metric, "y_true holds a single class")
    return float(weighted_average_precision(y, s))


def average_precision(y_true, y_score) -> float:
    """Average precision: the step-wise area under the precision-recall curve.

    .. math:: \\mathrm{AP} = \\sum_n (R_n - R_{n-1}) P_n

    over the distinct score thresholds in decreasing order, without interpolation (equal to
    scikit-learn's ``average_precision_score``; MetricsReloaded's trapezoidal AP differs).
    Multiclass (n, K): the unweighted one-vs-rest mean (NaN if any class is absent).
    A single-class ``y_true`` gives NaN with :class:`UndefinedMetricWarning` (scikit-learn
    gives 0.0 without positives and 1.0 without negatives).
    """
    s = np.asarray(y_score, dtype=np.float64)
    if s.ndim == 2:
        y = _labels(y_true, s.shape[1])
        s = _scores(s, y.size)
        values = [_binary_average_precision((y == k).astype(np.int64), s[:, k],
                                            f"average_precision of class {k}") for k in range(s.shape[1])]
        return float(np.mean(values)) if np.all(np.isfinite(values)) else float("nan")
    y, s = _binary(y_true, s)
    return _binary_average_precision(y, s, "average_precision")


def confusion_matrix(y_true, y_pred, *, n_classes: int | None = None) -> np.ndarray:
    """Counts ``C[i, j]`` of cases of true class i predicted as class j, shape (K, K), int64.

    K is ``n_classes`` or, when None, one more than the largest index seen.
    """
    y = _labels(y_true, n_classes)
    p = _labels(y_pred, n_classes, name="y_pred")
    if p.size != y.size:
        raise MetricInputError(f"y_pred must have the same length as y_true ({y.size}), got {p.size}")
    k = n_classes if n_classes is not None else int(max(y.max(), p.max())) + 1
    return np.bincount(y * k + p, minlength=k * k).reshape(k, k)


def balanced_accuracy_of(confusion: np.ndarray) -> np.ndarray:
    """Balanced accuracy of a (K, K) confusion matrix or a (B, K, K) stack; NaN with fewer than two
    classes present in ``y_true`` (rows with a count). Weighted counts are allowed."""
    c = np.asarray(confusion, dtype=np.float64)
    support = c.sum(axis=-1)
    present = support > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(present, np.diagonal(c, axis1=-2, axis2=-1) / np.where(present, support, 1.0), 0.0)
        n_present = present.sum(axis=-1)
        return np.where(n_present >= 2, recall.sum(axis=-1) / np.maximum(n_present, 1), np.nan)


def balanced_accuracy(y_true, y_pred, *, n_classes: int | None = None) -> float:
    """Mean recall over the classes present in ``y_true``: :math:`\\frac1{|C|}\\sum_{c} TP_c / N_c`.

    Equal to scikit-learn's ``balanced_accuracy_score``. NaN with a warning when ``y_true``
    holds a single class (a one-class "balanced" accuracy is plain recall).
    """
    value = float(balanced_accuracy_of(confusion_matrix(y_true, y_pred, n_classes=n_classes)))
    return _undefined("balanced_accuracy", "y_true holds a single class") if np.isnan(value) else value


def sensitivity_of(confusion: np.ndarray) -> np.ndarray:
    """TP / (TP + FN) of a binary (2, 2) confusion matrix or a (B, 2, 2) stack; NaN without positives."""
    c = np.asarray(confusion, dtype=np.float64)
    positives = c[..., 1, :].sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(positives > 0, c[..., 1, 1] / np.where(positives > 0, positives, 1.0), np.nan)


def specificity_of(confusion: np.ndarray) -> np.ndarray:
    """TN / (TN + FP) of a binary (2, 2) confusion matrix or a (B, 2, 2) stack; NaN without negatives."""
    c = np.asarray(confusion, dtype=np.float64)
    negatives = c[..., 0, :].sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(negatives > 0, c[..., 0, 0] / np.where(negatives > 0, negatives, 1.0), np.nan)


def _threshold_confusion(y_true, y_score, threshold: float) -> np.ndarray:
    y, s = _binary(y_true, y_score)
    return confusion_matrix(y, (s >= threshold).astype(np.int64), n_classes=2)


def sensitivity(y_true, y_score, *, threshold: float = 0.5) -> float:
    """True positive rate TP / (TP + FN), predicting positive when ``score >= threshold``.

    NaN with :class:`UndefinedMetricWarning` when ``y_true`` has no positive.
    """
    value = float(sensitivity_of(_threshold_confusion(y_true, y_score, threshold)))
    return _undefined("sensitivity", "y_true has no positive case") if np.isnan(value) else value


def specificity(y_true, y_score, *, threshold: float = 0.5) -> float:
    """True negative rate TN / (TN + FP), predicting positive when ``score >= threshold``.

    NaN with :class:`UndefinedMetricWarning` when ``y_true`` has no negative.
    """
    value = float(specificity_of(_threshold_confusion(y_true, y_score, threshold)))
    return _undefined("specificity", "y_true has no negative case") if np.isnan(value) else value


def f1(y_true, y_pred, *, n_classes: int | None = None, average: str = "auto") -> float:
    """F1 = 2 TP / (2 TP + FP + FN).

    ``average="auto"``: the positive class (1) when K = 2, the unweighted mean over classes
    (macro) otherwise; ``"binary"`` and ``"macro"`` force one. A class with 2TP + FP + FN = 0
    (never true, never predicted) makes F1 undefined: NaN with a warning (scikit-learn's
    ``zero_division=np.nan``; its default returns 0).
    """
    if average not in ("auto", "binary", "macro"):
        raise MetricInputError(f"average must be 'auto', 'binary' or 'macro', got {average!r}")
    if n_classes is None:  # at least two classes, so that an all-negative binary head stays binary
        n_classes = max(2, int(max(_labels(y_true).max(), _labels(y_pred, name="y_pred").max())) + 1)
    c = confusion_matrix(y_true, y_pred, n_classes=n_classes)
    binary = average == "binary" or (average == "auto" and c.shape[0] <= 2)
    if binary and c.shape[0] != 2:
        raise MetricInputError(f"binary F1 needs labels 0/1, got {c.shape[0]} classes")
    value = float(f1_of(c, binary=binary))
    if np.isnan(value):
        return _undefined("f1", "no positive case, true or predicted" if binary
                          else "a class is neither true nor predicted")
    return value


def f1_of(confusion: np.ndarray, *, binary: bool) -> np.ndarray:
    """F1 of a (K, K) confusion matrix or a (B, K, K) stack: of class 1 (``binary``) or the macro mean;
    NaN where a class that counts has 2TP + FP + FN = 0. Weighted counts are allowed."""
    c = np.asarray(confusion, dtype=np.float64)
    tp = np.diagonal(c, axis1=-2, axis2=-1)
    denominator = 2 * tp + (c.sum(axis=-2) - tp) + (c.sum(axis=-1) - tp)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1_per_class = np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1.0), np.nan)
    return f1_per_class[..., 1] if binary else np.mean(f1_per_class, axis=-1)


def _kappa(y_true, y_pred, n_classes: int | None, quadratic: bool, metric: str) -> float:
    c = confusion_matrix(y_true, y_pred, n_classes=n_classes).astype(np.float64)
    k = c.shape[0]
    expected = np.outer(c.sum(axis=1), c.sum(axis=0)) / c.sum()
    index = np.arange(k)
    weights = (index[:, None] - index[None, :]) ** 2 if quadratic else (index[:, None] != index[None, :])
    disagreement_expected = np.sum(weights * expected)
    if disagreement_expected == 0:
        return _undefined(metric, "chance disagreement is zero (a single class in y_true and y_pred)")
    return float(1.0 - np.sum(weights * c) / disagreement_expected)


def cohen_kappa(y_true, y_pred, *, n_classes: int | None = None) -> float:
    """Cohen's kappa :math:`1 - \\sum_{ij} w_{ij} O_{ij} / \\sum_{ij} w_{ij} E_{ij}`.

    Unweighted: :math:`w_{ij} = [i \\ne j]`. O is the confusion matrix, E the outer product of
    its marginals over N. Equal to scikit-learn's ``cohen_kappa_score``; NaN with a warning when E
    has no disagreement.
    """
    return _kappa(y_true, y_pred, n_classes, False, "cohen_kappa")


def quadratic_weighted_kappa(y_true, y_pred, *, n_classes: int | None = None) -> float:
    """Kappa with quadratic weights :math:`w_{ij} = (i - j)^2` on the class indices (ordinal).

    Pass ``n_classes`` so that the weights use the full ordinal scale even when an extreme
    class is absent (scikit-learn's ``cohen_kappa_score(..., weights="quadratic",
    labels=range(K))``).
    """
    return _kappa(y_true, y_pred, n_classes, True, "quadratic_weighted_kappa")


def _one_hot_probabilities(y_true, y_prob) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(y_prob, dtype=np.float64)
    y = _labels(y_true, 2 if p.ndim == 1 else (p.shape[1] if p.ndim == 2 else None))
    p = _scores(p, y.size, name="y_prob", probabilities=True)
    if p.ndim == 1:
        p = np.column_stack([1.0 - p, p])
    return np.eye(p.shape[1])[y], p


ECE_BINS = 10
"""Default number of equal-width bins of :func:`ece` (the registry's ``ece`` uses it)."""


def brier_terms(y_true, y_prob) -> np.ndarray:
    """Per-case Brier terms, shape (n,): :math:`(p_i - y_i)^2` (binary), :math:`\\sum_k (p_{ik} - y_{ik})^2`.

    :func:`brier` is their mean; a bootstrap resample's Brier score is their weighted mean.
    """
    p = np.asarray(y_prob, dtype=np.float64)
    if p.ndim == 1:
        y, p = _binary(y_true, p, probabilities=True)
        return (p - y) ** 2
    onehot, p = _one_hot_probabilities(y_true, p)
    return np.sum((p - onehot) ** 2, axis=1)


def brier(y_true, y_prob) -> float:
    """Brier score (lower is better): the mean of :func:`brier_terms`.

    Binary (``y_prob`` shape (n,)): :math:`\\frac1n\\sum_i (p_i - y_i)^2` in [0, 1], scikit-learn's
    ``brier_score_loss``. Multiclass (n, K): :math:`\\frac1n\\sum_i\\sum_k (p_{ik} - y_{ik})^2`
    in [0, 2], summed over classes (Brier's original definition, scikit-learn >= 1.7
    multiclass, MetricsReloaded); note a binary head scored this way would give twice the
    binary value, which is why binary heads use the binary form.
    """
    return float(np.mean(brier_terms(y_true, y_prob)))


def log_loss_terms(y_true, y_prob) -> np.ndarray:
    """Per-case negative log-likelihoods :math:`-\\ln p_{i,y_i}`, shape (n,), clipped as log_loss says."""
    onehot, p = _one_hot_probabilities(y_true, y_prob)
    eps = np.finfo(np.float64).eps
    return -np.log(np.clip(np.sum(p * onehot, axis=1), eps, 1 - eps))


def log_loss(y_true, y_prob) -> float:
    """Mean negative log-likelihood of the true class, natural log: :math:`-\\frac1n\\sum_i \\ln p_{i,y_i}`.

    Probabilities are clipped to [eps, 1 - eps] with eps the float64 machine epsilon (as
    scikit-learn >= 1.5 does), so a confident wrong answer costs about 36 nats, not infinity.
    """
    return float(np.mean(log_loss_terms(y_true, y_prob)))


def calibration_terms(y_true, y_prob, *, n_bins: int = ECE_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per case: its bin (int, shape (n,)), outcome and confidence, as :func:`ece` defines them.

    ECE is :math:`\\sum_b |\\sum_{i \\in b} (\\mathrm{outcome}_i - \\mathrm{confidence}_i)| / n`, so a
    resample's ECE needs only per-bin weighted sums of these.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise MetricInputError(f"n_bins must be a positive integer, got {n_bins!r}")
    p = np.asarray(y_prob, dtype=np.float64)
    if p.ndim == 1:
        y, confidence = _binary(y_true, p, probabilities=True)
        outcome = y.astype(np.float64)
    else:
        onehot, p = _one_hot_probabilities(y_true, p)
        confidence = p.max(axis=1)
        outcome = onehot[np.arange(p.shape[0]), np.argmax(p, axis=1)]
    bins = np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)
    return bins, outcome, confidence


def ece(y_true, y_prob, *, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error with ``n_bins`` equal-width bins on [0, 1].

    .. math:: \\mathrm{ECE} = \\sum_b \\frac{n_b}{n} \\left| \\bar{y}_b - \\bar{p}_b \\right|

    Binary (shape (n,)): p is the positive-class probability and y the 0/1 label.
    Multiclass (n, K): top-label ECE (Guo et al. 2017): p is the highest probability and y
    whether its class is the true one. Bin b holds :math:`p \\in [b/B, (b+1)/B)`, the last bin
    also p = 1 (so p = 0 is binned, unlike MetricsReloaded which drops it). Empty bins add 0.
    """
    bins, outcome, confidence = calibration_terms(y_true, y_prob, n_bins=n_bins)
    gap = np.bincount(bins, weights=outcome, minlength=n_bins) - np.bincount(bins, weights=confidence,
                                                                                minlength=n_bins)
    return float(np.sum(np.abs(gap)) / confidence.size)
