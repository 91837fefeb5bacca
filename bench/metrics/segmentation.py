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
nsd                (#{D_PR ≤ τ'} + #{D_RP ≤ τ'}) / (|S(P)| + |S(R)|)       MetricsReloaded nsd
=================  =====================================================  ======================

NSD boundary: τ' = τ (1 + :data:`NSD_RTOL`), so a distance within a relative 1e-9 of the tolerance
counts as within it. Two correct computations of one distance differ by an ulp or two (a KD-tree
and ``scipy.spatial.distance.cdist`` give 1.0000000000000002 and 1.0 mm for four voxels of
0.25000000000000006 mm), and a distance that equals τ on paper must not fall out of the count by
rounding; no distance between voxel centres comes that close to τ without being equal to it.

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
    split_box,
    surface_of,
    surface_voxels,
)

PERCENTILE = 95.0
DEFAULT_TOLERANCE_MM = 2.0
"""The NSD tolerance τ when none is given: the lesion task's declared ``metric_options.tolerance_mm``.

One constant for the metric's default and for a task that omits the option, so a notebook that
calls :func:`score_case` without ``tolerance_mm`` and the board agree.
"""
NSD_RTOL = 1e-9
"""Relative tolerance of the NSD boundary: d counts as within τ when d <= τ (1 + NSD_RTOL)."""


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
    if ref.flags.f_contiguous and not ref.flags.c_contiguous:
        # every score is invariant under a permutation of the axes that permutes the spacing with
        # them; the transposed views are C-ordered, the order the crops and shifts run fast in
        pred, ref, spacing = pred.T, ref.T, spacing[::-1].copy()
    return _as_bool(pred), _as_bool(ref), spacing


def _as_bool(mask: np.ndarray) -> np.ndarray:
    """``mask != 0`` as bool: a view, not a copy, of a one-byte mask that holds only 0 and 1."""
    if mask.dtype == np.bool_:
        return mask
    one_byte = mask.dtype.itemsize == 1 and mask.dtype.kind in "iu" and mask.size
    if one_byte and mask.max() <= 1 and (mask.dtype.kind == "u" or mask.min() >= 0):  # uint8: one pass
        return mask.view(np.bool_)
    return mask.astype(bool)


def _harmonic(a: float, b: float) -> float:
    return 2.0 * a * b / (a + b) if a + b > 0 else 0.0


@dataclass(frozen=True)
class _Parts:
    """A mask split into separated tight boxes, with its lesion labels per box."""

    boxes: list[Box]
    labels: list[np.ndarray]
    first_label: list[int]
    n_voxels: int
    n_lesions: int


def _parts(mask: np.ndarray) -> _Parts:
    """Split ``mask`` (:func:`split_box`) and label its lesions with full connectivity."""
    box = bounding_box(mask)
    if box is None:
        return _Parts([], [], [], 0, 0)
    boxes = split_box(mask, box)
    structure = np.ones((3,) * mask.ndim, dtype=bool)
    labels, first, total, voxels = [], [], 0, 0
    for part in boxes:
        lab, count = ndimage.label(mask[part], structure=structure)
        labels.append(lab)
        first.append(total)
        total += int(count)
        voxels += int(np.count_nonzero(lab))
    return _Parts(boxes, labels, first, voxels, total)


def _overlap(pred: _Parts, ref: _Parts) -> tuple[int, int, int]:
    """(TP voxels, predicted lesions overlapping a reference lesion, reference lesions overlapped)."""
    tp, matched_p, detected_r = 0, [], []
    for box_p, lab_p, first_p in zip(pred.boxes, pred.labels, pred.first_label, strict=True):
        for box_r, lab_r, first_r in zip(ref.boxes, ref.labels, ref.first_label, strict=True):
            both_box = intersect_box(box_p, box_r)
            if both_box is None:
                continue
            lp = lab_p[relative_box(both_box, box_p)]
            lr = lab_r[relative_box(both_box, box_r)]
            both = (lp > 0) & (lr > 0)
            tp += int(np.count_nonzero(both))
            matched_p.append(lp[both] + first_p)
            detected_r.append(lr[both] + first_r)
    if not matched_p:
        return 0, 0, 0
    return tp, int(np.unique(np.concatenate(matched_p)).size), int(np.unique(np.concatenate(detected_r)).size)


def score_case(pred, ref, *, spacing_mm, tolerance_mm: float = DEFAULT_TOLERANCE_MM,
               policy: EmptyMaskPolicy = EmptyMaskPolicy()) -> SegmentationScores:
    """Score one predicted mask against its reference.

    Parameters
    ----------
    pred, ref : array_like, 2D or 3D, same shape
        Binary masks (bool, or numbers where non-zero is foreground).
    spacing_mm : sequence of float
        Voxel spacing in mm in array-axis order (e.g. (z, y, x) for a SimpleITK array).
    tolerance_mm : float, default :data:`DEFAULT_TOLERANCE_MM` (2.0)
        The NSD tolerance τ in mm; a distance counts as within tolerance when
        d ≤ τ (1 + :data:`NSD_RTOL`), i.e. equal to τ up to float rounding (module docstring).
        Scoring under a task passes the task's ``metric_options.tolerance_mm``.
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
    parts_p, parts_r = _parts(pred), _parts(ref)
    n_pred, n_ref = parts_p.n_voxels, parts_r.n_voxels
    n_lesions_p, n_lesions_r = parts_p.n_lesions, parts_r.n_lesions
    tp, matched_p, detected_r = _overlap(parts_p, parts_r)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    common = dict(
        volume_pred_ml=n_pred * voxel_ml, volume_ref_ml=n_ref * voxel_ml,
        ravd=(n_pred - n_ref) / max(n_ref, 1), tp=tp, fp=n_pred - tp, fn=n_ref - tp,
        n_lesions_pred=n_lesions_p, n_lesions_ref=n_lesions_r,
        n_lesions_pred_matched=matched_p, n_lesions_ref_detected=detected_r,
    )
    if n_pred == 0 or n_ref == 0:
        return _empty_scores(pred, parts_p, ref, parts_r, spacing, policy, common)

    dist = distances_between(surface_voxels(pred, parts_p.boxes), surface_voxels(ref, parts_r.boxes), spacing)
    d_pr, d_rp = dist.pred_to_ref_mm, dist.ref_to_pred_mm
    pooled = np.concatenate([d_pr, d_rp])
    within = int(np.count_nonzero(pooled <= tolerance_mm * (1.0 + NSD_RTOL)))
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


def _empty_scores(pred: np.ndarray, parts_p: _Parts, ref: np.ndarray, parts_r: _Parts,
                  spacing: np.ndarray, policy: EmptyMaskPolicy, common: dict[str, Any]) -> SegmentationScores:
    """Scores when at least one mask is empty, by the policy table of :class:`EmptyMaskPolicy`."""
    pred_empty, ref_empty = parts_p.n_voxels == 0, parts_r.n_voxels == 0
    if pred_empty and ref_empty:
        score, distance, empty = float(policy.both_empty_score), float(policy.both_empty_distance_mm), "both"
    else:
        score, distance = 0.0, policy.worst_distance(ref.shape, spacing)
        empty = "pred" if pred_empty else "ref"
    n_surface_p = sum(int(np.count_nonzero(surface_of(pred[box]))) for box in parts_p.boxes)
    n_surface_r = sum(int(np.count_nonzero(surface_of(ref[box]))) for box in parts_r.boxes)
    return SegmentationScores(
        dice=score, iou=score, precision=score, recall=score, hd=distance, hd95=distance,
        hd95_pooled=distance, assd=distance, masd=distance, nsd=score,
        lesion_precision=score, lesion_recall=score, lesion_f1=score,
        n_surface_pred=n_surface_p, n_surface_ref=n_surface_r, empty=empty, **common)


def worst_case_scores(ref, *, spacing_mm, tolerance_mm: float = DEFAULT_TOLERANCE_MM,
                      policy: EmptyMaskPolicy = EmptyMaskPolicy()) -> SegmentationScores:
    """Scores for a case whose prediction is missing or unreadable: the worst value of every metric.

    Unlike an empty prediction (which is perfect when the reference is empty too), a missing
    prediction scores 0 on every overlap, NSD and lesion metric and the policy's worst
    distance (default the image diagonal) on every distance metric, whatever the reference.
    Counts and volumes describe an empty prediction (tp = fp = 0, fn = |R|); ``empty`` is
    ``"missing"``.
    """
    ref_arr = np.asarray(ref)
    empty_pred = np.zeros_like(ref_arr, dtype=bool)  # in ref's memory order, so both transpose alike
    scores = score_case(empty_pred, ref_arr, spacing_mm=spacing_mm, tolerance_mm=tolerance_mm, policy=policy)
    worst = policy.worst_distance(ref_arr.shape, np.asarray(spacing_mm, dtype=np.float64))
    values = scores.as_dict()
    values.update({name: 0.0 for name in ("dice", "iou", "precision", "recall", "nsd", "lesion_precision",
                                          "lesion_recall", "lesion_f1")})
    values.update({name: worst for name in ("hd", "hd95", "hd95_pooled", "assd", "masd")})
    values["empty"] = "missing"
    return SegmentationScores(**values)
