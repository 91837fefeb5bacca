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

The primary metric is also scored against the readers' other combination (``union`` <->
``majority``, from ``reference/alternatives/`` where prepare found them to differ) as column
``<primary>@<rule>``, for the definition-sensitivity variant of :mod:`bench.ranking.sensitivity`.

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
        "primary": spec.primary_key,
        "alternative": _alternative_path(spec, reference_mask),
        "alternative_column": alternative_column(spec),
        "tolerance_mm": tolerance_mm(spec),
        "policy": {
            "both_empty_score": policy.both_empty_score,
            "both_empty_distance_mm": policy.both_empty_distance_mm,
            "worst_distance_mm": policy.worst_distance_mm,
        },
    }


def alternative_column(spec: TaskSpec) -> str:
    """Per-case column of the primary metric against the readers' other combination,
    e.g. ``dice@majority``."""
    return f"{spec.primary_key}@{spec.target.other_readers}"


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


def _alternative_path(spec: TaskSpec, reference_mask) -> str | None:
    """``reference/alternatives/<other rule>/<case>.nii.gz`` when prepare wrote one (the readers'
    other combination differs from the reference there), else None."""
    path = (Path(reference_mask).parent.parent / "alternatives" / spec.target.other_readers
            / Path(reference_mask).name)
    return str(path) if path.is_file() else None


def _score(pred: np.ndarray | None, ref: np.ndarray, options: dict, rule: str):
    """``score_case`` of a usable prediction, else the missing-prediction rule's scores (None: excluded)."""
    if pred is not None:
        return score_case(pred, ref, **options)
    if rule == "exclude":
        return None
    if rule == "worst":
        return worst_case_scores(ref, **options)
    return score_case(np.zeros_like(ref, dtype=bool), ref, **options)


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
    if pred is None:
        reason = _with_rule(reason, _RULE_REASONS[rule])
    try:
        scores = _score(pred, ref, options, rule)
        if scores is None:
            return {"case_id": item["case_id"], "status": status, "reason": reason, "metrics": None}
        extra = _mask_metric_values(item, pred, ref, spacing_mm, rule)
        # the primary against the readers' other combination; where it equals the reference, the same
        alternative = ref if item.get("alternative") is None else nifti.read_volume(item["alternative"])[0]
        alternative_scores = scores if alternative is ref else _score(pred, alternative, options, rule)
        extra[item["alternative_column"]] = getattr(alternative_scores, item["primary"])
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


_RULE_REASONS = {
    "exclude": "left out of the aggregates (policy missing_prediction=exclude)",
    "worst": "scored with every metric at its worst value (policy missing_prediction=worst)",
    "empty_mask": "scored as an empty mask (policy missing_prediction=empty_mask)",
}


def _with_rule(reason: str, rule: str) -> str:
    return f"{reason}; {rule}" if reason else rule
