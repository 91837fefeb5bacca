"""Per-case segmentation scores: overlap, volume, surface distance and lesion detection.

One call, :func:`score_case`, computes the whole suite for one case from one pass over the
masks (tight bounding boxes, surfaces and directed distances computed once, see
:mod:`bench.metrics.surface`). Empty masks follow an explicit :class:`EmptyMaskPolicy`, so no
NaN leaves this module and nothing depends on the numpy version (medpy's fallbacks do).

Notation: P = prediction, R = reference (boolean masks of the same shape), TP = |P ∩ R|,
FP = |P \\ R|, FN = |R \\ P|, :math:`S(X)` the surface of X, :math:`D_{PR}` / :math:`D_{RP}` the
directed surface distances in mm (:class:`bench.metrics.surface.SurfaceDistances`), and
``P95`` numpy's linear-interpolated 95th percentile.

=================  =====================================================  ======================
name               formula (both masks non-empty)                          peer
=================  =====================================================  ======================
dice               2 TP / (|P| + |R|)                                      medpy ``dc``
iou                TP / |P ∪ R|                                            medpy ``jc``
precision          TP / (TP + FP)                                          medpy ``precision``
recall             TP / (TP + FN)                                          medpy ``recall``
volume_*_ml        voxels x prod(spacing_mm) / 1000 (2D: mm² / 1000)       -
ravd               (|P| - |R|) / max(|R|, 1), signed                        medpy ``ravd``
hd                 max(max D_PR, max D_RP)                                 medpy ``hd``
hd95               max(P95(D_PR), P95(D_RP))                               MONAI, MetricsReloaded
hd95_pooled        P95(D_PR ∪ D_RP)                                        medpy 0.5 ``hd95``
assd               (Σ D_PR + Σ D_RP) / (|S(P)| + |S(R)|)                   medpy 0.5 ``assd``
masd               (mean D_PR + mean D_RP) / 2                             MetricsReloaded masd
nsd                (#{D_PR ≤ τ} + #{D_RP ≤ τ}) / (|S(P)| + |S(R)|)         MetricsReloaded nsd
=================  =====================================================  ======================

Lesion detection: lesions are the connected components of each mask with full connectivity
(8-neighbourhood in 2D, 26 in 3D: voxels touching at a corner belong to one lesion, as a
reader drawing on slices would see them). A reference lesion is *detected* when at least one
voxel of it is predicted (any overlap of ≥ 1 voxel with a predicted lesion); a predicted lesion
is *matched* when it overlaps a reference lesion by ≥ 1 voxel. lesion_recall = detected /
n_lesions_ref, lesion_precision = matched / n_lesions_pred, lesion_f1 = their harmonic mean
(0 when both are 0).
"""

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from scipy import ndimage

from bench.errors import MetricInputError
from bench.metrics.surface import (
    Box,
    bounding_box,
    distances_between,
    intersect_box,
    relative_box,
    surface_of,
)

PERCENTILE = 95.0


@dataclass(frozen=True)
class EmptyMaskPolicy:
    """What a case scores when one or both masks are empty.

    ===================================  ==========================  =====================================
    metric                               both empty                  exactly one empty
    ===================================  ==========================  =====================================
    dice, iou, nsd                       ``both_empty_score`` (1)    0
    precision, recall                    ``both_empty_score`` (1)    0 (a 0/0 ratio counts as a failure)
    lesion_precision/recall/f1           ``both_empty_score`` (1)    0
    hd, hd95, hd95_pooled, assd, masd    ``both_empty_distance_mm``  ``worst_distance_mm``, default the
                                         (0)                         diagonal of the image extent in mm
    ravd                                 0                           pred empty: -1; ref empty: |P| in
                                                                     voxels (denominator of one voxel)
    ===================================  ==========================  =====================================

    The default worst distance, :math:`\\sqrt{\\sum_a (n_a s_a)^2}` for shape n and spacing s,
    exceeds every distance two voxel centres of the image can have, so a missed or
    hallucinated structure always scores worse than any wrong but present segmentation.

    Attributes
    ----------
    both_empty_score : float
        Overlap-type value when both masks are empty (nothing to find and nothing wrongly
        found: 1 by default).
    both_empty_distance_mm : float
        Distance value when both masks are empty (0 by default).
    worst_distance_mm : float or None
        Distance value when exactly one mask is empty; None means the image diagonal.
    """

    both_empty_score: float = 1.0
    both_empty_distance_mm: float = 0.0
    worst_distance_mm: float | None = None

    def __post_init__(self) -> None:
        for name in ("both_empty_score", "both_empty_distance_mm", "worst_distance_mm"):
            value = getattr(self, name)
            if value is None and name == "worst_distance_mm":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise MetricInputError(f"EmptyMaskPolicy.{name} must be a finite number, got {value!r}")
        if not 0.0 <= self.both_empty_score <= 1.0:
            raise MetricInputError(
                f"EmptyMaskPolicy.both_empty_score must lie in [0, 1], got {self.both_empty_score!r}")
        if self.both_empty_distance_mm < 0 or (self.worst_distance_mm is not None
                                               and self.worst_distance_mm <= 0):
            raise MetricInputError("EmptyMaskPolicy distances must be >= 0 (worst > 0), got "
                                   f"{self.both_empty_distance_mm!r} and {self.worst_distance_mm!r}")

    def worst_distance(self, shape: tuple[int, ...], spacing_mm) -> float:
        """The distance a case with exactly one empty mask scores, in mm."""
        if self.worst_distance_mm is not None:
            return float(self.worst_distance_mm)
        extent = np.asarray(shape, dtype=np.float64) * np.asarray(spacing_mm, dtype=np.float64)
        return float(np.sqrt(np.sum(extent * extent)))


@dataclass(frozen=True)
class SegmentationScores:
    """Every per-case segmentation metric of one case (see the module docstring for formulas).

    Distances are in mm, volumes in ml. ``empty`` says which policy row applied: ``"none"``,
    ``"pred"``, ``"ref"``, ``"both"``, or ``"missing"`` (from :func:`worst_case_scores`).
    Raw counts (``tp``, ``fp``, ``fn``, surface and lesion counts) are kept so that pooled
    aggregates can be recomputed later.
    """

    dice: float
    iou: float
    precision: float
    recall: float
    volume_pred_ml: float
    volume_ref_ml: float
    ravd: float
    hd: float
    hd95: float
    hd95_pooled: float
    assd: float
    masd: float
    nsd: float
    lesion_precision: float
    lesion_recall: float
    lesion_f1: float
    tp: int
    fp: int
    fn: int
    n_surface_pred: int
    n_surface_ref: int
    n_lesions_pred: int
    n_lesions_ref: int
    n_lesions_pred_matched: int
    n_lesions_ref_detected: int
    empty: str

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (Python floats and ints), in field order."""
        return asdict(self)


SCORE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(SegmentationScores))
"""Column order for per-case tables."""


def _check_inputs(pred, ref, spacing_mm, tolerance_mm, policy) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    if pred.shape != ref.shape:
        raise MetricInputError(f"pred and ref must have the same shape, got {pred.shape} and {ref.shape}; "
                               "resample the prediction onto the reference grid")
    if ref.ndim not in (2, 3):
        raise MetricInputError(f"masks must be 2D or 3D, got {ref.ndim} dimensions (shape {ref.shape})")
    try:
        spacing = np.asarray(spacing_mm, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise MetricInputError(f"spacing_mm must be a sequence of numbers, got {spacing_mm!r}") from None
    if spacing.size != ref.ndim or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise MetricInputError(f"spacing_mm must hold {ref.ndim} positive finite values in array-axis order, "
                               f"got {spacing_mm!r}")
    if isinstance(tolerance_mm, bool) or not isinstance(tolerance_mm, (int, float, np.number)) \
            or not math.isfinite(tolerance_mm) or tolerance_mm < 0:
        raise MetricInputError(f"tolerance_mm must be a finite number >= 0, got {tolerance_mm!r}")
    if not isinstance(policy, EmptyMaskPolicy):
        raise MetricInputError(f"policy must be an EmptyMaskPolicy, got {type(policy).__name__}")
    for name, array in (("pred", pred), ("ref", ref)):
        if array.dtype.kind not in "biuf":
            raise MetricInputError(f"{name} must be a boolean or numeric mask, got dtype {array.dtype}")
    return pred.astype(bool, copy=False), ref.astype(bool, copy=False), spacing


def _ratio(numerator: float, denominator: float, undefined: float) -> float:
    return float(numerator) / float(denominator) if denominator else float(undefined)


def _harmonic(a: float, b: float) -> float:
    return 2.0 * a * b / (a + b) if a + b > 0 else 0.0


def _lesions(mask: np.ndarray, box: Box | None) -> tuple[np.ndarray | None, int]:
    """Connected components (full connectivity) of ``mask[box]``: label array and count."""
    if box is None:
        return None, 0
    structure = np.ones((3,) * mask.ndim, dtype=bool)
    labels, count = ndimage.label(mask[box], structure=structure)
    return labels, int(count)


def _matched_lesions(labels_p, box_p, labels_r, box_r, overlap: Box | None) -> tuple[int, int]:
    """(predicted lesions overlapping a reference lesion, reference lesions overlapped)."""
    if overlap is None:
        return 0, 0
    lp = labels_p[relative_box(overlap, box_p)]
    lr = labels_r[relative_box(overlap, box_r)]
    both = (lp > 0) & (lr > 0)
    return int(np.unique(lp[both]).size), int(np.unique(lr[both]).size)


def score_case(pred, ref, *, spacing_mm, tolerance_mm: float = 1.0,
               policy: EmptyMaskPolicy = EmptyMaskPolicy()) -> SegmentationScores:
    """Score one predicted mask against its reference.

    Parameters
    ----------
    pred, ref : array_like, 2D or 3D, same shape
        Binary masks (bool, or numbers where non-zero is foreground).
    spacing_mm : sequence of float
        Voxel spacing in mm in array-axis order (e.g. (z, y, x) for a SimpleITK array).
    tolerance_mm : float, default 1.0
        The NSD tolerance τ in mm; a distance counts as within tolerance when d ≤ τ.
    policy : EmptyMaskPolicy
        Values for empty masks (defaults: both empty scores 1 / 0 mm, one empty 0 / image
        diagonal).

    Returns
    -------
    SegmentationScores
        Formulas in the module docstring; every field is finite.

    Raises
    ------
    bench.errors.MetricInputError
        Shapes differ, not 2D/3D, bad spacing or tolerance (a ValueError too).
    """
    pred, ref, spacing = _check_inputs(pred, ref, spacing_mm, tolerance_mm, policy)
    box_p, box_r = bounding_box(pred), bounding_box(ref)
    n_pred = int(np.count_nonzero(pred[box_p])) if box_p else 0
    n_ref = int(np.count_nonzero(ref[box_r])) if box_r else 0
    overlap = intersect_box(box_p, box_r)
    tp = int(np.count_nonzero(pred[overlap] & ref[overlap])) if overlap else 0
    voxel_ml = float(np.prod(spacing)) / 1000.0
    labels_p, n_lesions_p = _lesions(pred, box_p)
    labels_r, n_lesions_r = _lesions(ref, box_r)
    matched_p, detected_r = _matched_lesions(labels_p, box_p, labels_r, box_r, overlap)
    common = dict(
        volume_pred_ml=n_pred * voxel_ml, volume_ref_ml=n_ref * voxel_ml,
        ravd=(n_pred - n_ref) / max(n_ref, 1), tp=tp, fp=n_pred - tp, fn=n_ref - tp,
        n_lesions_pred=n_lesions_p, n_lesions_ref=n_lesions_r,
        n_lesions_pred_matched=matched_p, n_lesions_ref_detected=detected_r,
    )
    if box_p is None or box_r is None:
        return _empty_scores(pred, box_p, ref, box_r, spacing, policy, common)

    dist = distances_between(pred, box_p, ref, box_r, spacing)
    d_pr, d_rp = dist.pred_to_ref_mm, dist.ref_to_pred_mm
    pooled = np.concatenate([d_pr, d_rp])
    within = int(np.count_nonzero(pooled <= tolerance_mm))
    lesion_precision = matched_p / n_lesions_p
    lesion_recall = detected_r / n_lesions_r
    return SegmentationScores(
        dice=2.0 * tp / (n_pred + n_ref), iou=tp / (n_pred + n_ref - tp),
        precision=tp / n_pred, recall=tp / n_ref,
        hd=float(max(d_pr.max(), d_rp.max())),
        hd95=float(max(np.percentile(d_pr, PERCENTILE), np.percentile(d_rp, PERCENTILE))),
        hd95_pooled=float(np.percentile(pooled, PERCENTILE)),
        assd=float(pooled.mean()), masd=float((d_pr.mean() + d_rp.mean()) / 2.0),
        nsd=within / pooled.size,
        lesion_precision=lesion_precision, lesion_recall=lesion_recall,
        lesion_f1=_harmonic(lesion_precision, lesion_recall),
        n_surface_pred=int(d_pr.size), n_surface_ref=int(d_rp.size), empty="none", **common)


def _empty_scores(pred: np.ndarray, box_p: Box | None, ref: np.ndarray, box_r: Box | None,
                  spacing: np.ndarray, policy: EmptyMaskPolicy, common: dict[str, Any]) -> SegmentationScores:
    """Scores when at least one mask is empty, by the policy table of :class:`EmptyMaskPolicy`."""
    pred_empty, ref_empty = box_p is None, box_r is None
    if pred_empty and ref_empty:
        score, distance, empty = float(policy.both_empty_score), float(policy.both_empty_distance_mm), "both"
    else:
        score, distance = 0.0, policy.worst_distance(ref.shape, spacing)
        empty = "pred" if pred_empty else "ref"
    n_surface_p = 0 if pred_empty else int(np.count_nonzero(surface_of(pred[box_p])))
    n_surface_r = 0 if ref_empty else int(np.count_nonzero(surface_of(ref[box_r])))
    return SegmentationScores(
        dice=score, iou=score, precision=score, recall=score, hd=distance, hd95=distance,
        hd95_pooled=distance, assd=distance, masd=distance, nsd=score,
        lesion_precision=score, lesion_recall=score, lesion_f1=score,
        n_surface_pred=n_surface_p, n_surface_ref=n_surface_r, empty=empty, **common)


def worst_case_scores(ref, *, spacing_mm, tolerance_mm: float = 1.0,
                      policy: EmptyMaskPolicy = EmptyMaskPolicy()) -> SegmentationScores:
    """Scores for a case whose prediction is missing or unreadable: the worst value of every metric.

    Unlike an empty prediction (which is perfect when the reference is empty too), a missing
    prediction scores 0 on every overlap, NSD and lesion metric and the policy's worst
    distance (default the image diagonal) on every distance metric, whatever the reference.
    Counts and volumes describe an empty prediction (tp = fp = 0, fn = |R|); ``empty`` is
    ``"missing"``.
    """
    ref_arr = np.asarray(ref)
    empty_pred = np.zeros(ref_arr.shape, dtype=bool)
    scores = score_case(empty_pred, ref_arr, spacing_mm=spacing_mm, tolerance_mm=tolerance_mm, policy=policy)
    worst = policy.worst_distance(ref_arr.shape, np.asarray(spacing_mm, dtype=np.float64))
    values = scores.as_dict()
    values.update({name: 0.0 for name in ("dice", "iou", "precision", "recall", "nsd", "lesion_precision",
                                          "lesion_recall", "lesion_f1")})
    values.update({name: worst for name in ("hd", "hd95", "hd95_pooled", "assd", "masd")})
    values["empty"] = "missing"
    return SegmentationScores(**values)
