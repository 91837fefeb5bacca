"""Per-case segmentation scoring, the unit of work handed to :func:`bench.parallel.map_ordered`.

Workers get a small dict of file paths and options (never arrays), load both NIfTI masks
themselves (each decompressed once, :func:`bench.prepare.nifti.read_volume`; the reference
is checked against its hash in ``reference.json`` on the loaded array), and return a small
dict: status, reason and every field of :func:`bench.metrics.segmentation.score_case`.

The missing-prediction policy is applied here, the same way in every worker: ``worst`` gives
a missing or unusable prediction every metric at its worst value
(:func:`bench.metrics.segmentation.worst_case_scores`, whatever the reference holds);
``empty_mask`` scores it as an all-zero mask on the reference grid (then the task's
empty-mask policy decides the values, so it is perfect where the reference is empty too);
``exclude`` returns no values, and the case is left out of the aggregates but kept in the table.

Mask metrics outside ``score_case`` (registry inputs ``"masks"``, e.g. ``nsd_area``) are computed
only when the task lists them, on the same prediction (a zero mask under ``empty_mask``) and
scored 0 under ``worst``.
"""

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from bench.errors import BenchError
from bench.metrics.registry import METRICS
from bench.metrics.segmentation import (
    DEFAULT_TOLERANCE_MM,
    SCORE_FIELDS,
    EmptyMaskPolicy,
    score_case,
    worst_case_scores,
)
from bench.prepare import nifti
from bench.prepare.reference import read_reference_mask
from bench.runners.collect import OutputInvalid, check_mask
from bench.tasks import TaskSpec


def metric_policy(spec: TaskSpec) -> EmptyMaskPolicy:
    """The metrics engine's :class:`EmptyMaskPolicy` for the task's declared ``policies.empty_mask``.

    ``both_empty: perfect`` means overlap 1 and distance 0 mm; ``one_empty_distance: diagonal``
    means the image diagonal in mm, a number means that many mm.
    """
    declared = spec.policies.empty_mask
    worst = None if declared.one_empty_distance == "diagonal" else float(declared.one_empty_distance)
    return EmptyMaskPolicy(both_empty_score=1.0, both_empty_distance_mm=0.0, worst_distance_mm=worst)


def tolerance_mm(spec: TaskSpec) -> float:
    """The task's NSD tolerance in mm (``metric_options.tolerance_mm``, else :data:`DEFAULT_TOLERANCE_MM`)."""
    return float(spec.metric_options.get("tolerance_mm", DEFAULT_TOLERANCE_MM))


def case_item(
    spec: TaskSpec, case_id: str, reference_mask: Path, prediction: Path | None, status: str, reason: str,
    *, reference_sha256: str | None = None
) -> dict[str, Any]:
    """The picklable work item for one case: paths, runner status and the task's options.

    ``reference_sha256`` is the mask's content hash from ``reference.json``; the worker refuses a
    reference mask that does not match it (None: not checked, for masks outside a prepared tree).
    """
    policy = metric_policy(spec)
    return {
        "case_id": case_id,
        "reference": str(reference_mask),
        "reference_sha256": reference_sha256,
        "prediction": None if prediction is None else str(prediction),
        "status": status,
        "reason": reason,
        "missing_prediction": spec.policies.missing_prediction,
        "mask_metrics": list(mask_metrics(spec)),
        "tolerance_mm": tolerance_mm(spec),
        "policy": {
            "both_empty_score": policy.both_empty_score,
            "both_empty_distance_mm": policy.both_empty_distance_mm,
            "worst_distance_mm": policy.worst_distance_mm,
        },
    }


def mask_metrics(spec: TaskSpec) -> tuple[str, ...]:
    """The task's metrics computed from the masks outside ``score_case`` (per-case columns after it)."""
    return tuple(name for name in spec.metrics if METRICS[name].inputs == "masks")


def _mask_metric_values(item: dict[str, Any], pred: np.ndarray | None, ref: np.ndarray, spacing_mm,
                        rule: str) -> dict[str, float]:
    names = item.get("mask_metrics", ())
    if pred is None and rule == "worst":
        return {name: 0.0 for name in names}
    scored = np.zeros_like(ref, dtype=bool) if pred is None else pred
    options = {"spacing_mm": spacing_mm, "tolerance_mm": item["tolerance_mm"]}
    return {name: float(METRICS[name].func(scored, ref, **options)) for name in names}


def _zooms(header: nib.Nifti1Header, ndim: int) -> tuple[float, ...]:
    return tuple(float(z) for z in header.get_zooms()[:ndim])


def score_segmentation_case(item: dict[str, Any]) -> dict[str, Any]:
    """Score one case from file paths; module-level so process pools and dask can pickle it.

    Returns
    -------
    dict
        ``case_id``, ``status`` (ok, missing, malformed or error), ``reason`` and ``metrics``:
        every :data:`SCORE_FIELDS` value, or None when the case is excluded by the policy.
    """
    if item.get("reference_sha256") is None:
        ref, ref_header, ref_affine = nifti.read_volume(item["reference"])
    else:
        ref, ref_header, ref_affine = read_reference_mask(item["reference"], item["reference_sha256"])
    spacing_mm = _zooms(ref_header, ref.ndim)
    status, reason = item["status"], item["reason"]
    pred = None
    if item["prediction"] is not None:
        try:
            pred, _, pred_affine = nifti.read_volume(item["prediction"])
            check_mask(pred, pred_affine, shape=ref.shape, affine=ref_affine)
        except (OSError, ValueError, nib.filebasedimages.ImageFileError) as error:
            pred, status = None, "error"
            reason = f"prediction unreadable at scoring time ({type(error).__name__}: {error})"
        except OutputInvalid as invalid:
            pred, status, reason = None, "error", f"prediction unusable at scoring time: {invalid}"
    policy = EmptyMaskPolicy(**item["policy"])
    options = {"spacing_mm": spacing_mm, "tolerance_mm": item["tolerance_mm"], "policy": policy}
    rule = item["missing_prediction"]
    try:
        if pred is not None:
            scores = score_case(pred, ref, **options)
        elif rule == "exclude":
            reason = _with_rule(reason, "left out of the aggregates (policy missing_prediction=exclude)")
            return {"case_id": item["case_id"], "status": status, "reason": reason, "metrics": None}
        elif rule == "worst":
            reason = _with_rule(
                reason, "scored with every metric at its worst value (policy missing_prediction=worst)"
            )
            scores = worst_case_scores(ref, **options)
        else:
            reason = _with_rule(reason, "scored as an empty mask (policy missing_prediction=empty_mask)")
            scores = score_case(np.zeros_like(ref, dtype=bool), ref, **options)
        extra = _mask_metric_values(item, pred, ref, spacing_mm, rule)
    except BenchError as error:
        error.add_note(f"while scoring case {item['case_id']} against {item['reference']}")
        raise
    metrics = scores.as_dict()
    return {
        "case_id": item["case_id"],
        "status": status,
        "reason": reason,
        "metrics": {**{name: metrics[name] for name in SCORE_FIELDS}, **extra},
    }


def _with_rule(reason: str, rule: str) -> str:
    return f"{reason}; {rule}" if reason else rule
