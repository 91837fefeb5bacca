"""Every metric name a task spec may use, with what a leaderboard needs to know about it.

A task spec names metrics (``dice``, ``hd95``, ``auroc``, ...); the spec validator checks the
names against :data:`METRICS`, scoring finds the callable here, and the leaderboard sorts by
:attr:`MetricInfo.direction`. Callables are resolved lazily (``"module:attribute"``) so that
importing the registry is cheap and has no import cycles.

Calling conventions (``MetricInfo.inputs``):

- ``"case"``: segmentation; the value is the field ``name`` of
  :func:`bench.metrics.segmentation.score_case` (compute it once per case and read every
  field; :meth:`MetricInfo.compute` is a convenience that scores one case for one metric).
- ``"scores"``: classification ``f(y_true, y_score, **options)``; ``y_score`` is the
  positive-class probability ``(n,)`` for a binary head or the ``(n, K)`` probability matrix.
- ``"labels"``: classification ``f(y_true, y_pred, **options)`` on predicted class indices.
- ``"scores_threshold"``: ``f(y_true, y_score, *, threshold)`` for a binary head.
- ``"masks"``: segmentation ``f(pred, ref, *, spacing_mm, tolerance_mm) -> float`` for a case metric
  outside :func:`~bench.metrics.segmentation.score_case`, computed only for tasks that list it
  (it costs a pass of its own); a fraction in [0, 1] whose worst value is 0.
"""

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from bench.errors import UnknownMetricError

Direction = Literal["higher", "lower"]


@dataclass(frozen=True)
class MetricInfo:
    """What the harness knows about one metric name.

    Attributes
    ----------
    name : str
        The name used in task specs and result files.
    kind : {"segmentation", "classification"}
        Which task kind may use it.
    level : {"case", "dataset"}
        ``"case"``: computed per case and aggregated by the mean over cases (segmentation);
        ``"dataset"``: computed once over all cases of a set (classification).
    direction : {"higher", "lower"} or None
        Which way is better; None for descriptive values (volumes, confusion matrix) that are
        reported but never ranked.
    inputs : {"case", "scores", "labels", "scores_threshold", "masks"}
        Calling convention (see the module docstring).
    target : str
        ``"module:attribute"`` of the callable.
    description : str
        One line for tables and the leaderboard.
    """

    name: str
    kind: Literal["segmentation", "classification"]
    level: Literal["case", "dataset"]
    direction: Direction | None
    inputs: Literal["case", "scores", "labels", "scores_threshold", "masks"]
    target: str
    description: str

    @property
    def func(self) -> Callable[..., Any]:
        """The callable behind this metric (imported on first use)."""
        module_name, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module_name), attribute)

    @property
    def rankable(self) -> bool:
        """Whether a leaderboard may rank by this metric (it has a direction and is a scalar)."""
        return self.direction is not None

    def compute(self, *args: Any, **kwargs: Any) -> Any:
        """Compute this metric alone.

        Segmentation: ``compute(pred, ref, spacing_mm=..., tolerance_mm=..., policy=...)``
        scores the case and returns field ``name``. Classification: calls :attr:`func`.
        """
        if self.inputs == "case":
            return getattr(self.func(*args, **kwargs), self.name)
        return self.func(*args, **kwargs)


_SEG = "bench.metrics.segmentation:score_case"
_CLS = "bench.metrics.classification"


def _seg(name: str, direction: Direction | None, description: str) -> MetricInfo:
    return MetricInfo(name, "segmentation", "case", direction, "case", _SEG, description)


def _cls(name: str, direction: Direction | None, inputs: str, description: str,
         attribute: str | None = None) -> MetricInfo:
    return MetricInfo(name, "classification", "dataset", direction, inputs,  # type: ignore[arg-type]
                      f"{_CLS}:{attribute or name}", description)


_ALL = (
    _seg("dice", "higher", "Dice similarity coefficient 2|P∩R|/(|P|+|R|)"),
    _seg("iou", "higher", "Intersection over union (Jaccard) |P∩R|/|P∪R|"),
    _seg("precision", "higher", "Voxel precision TP/(TP+FP)"),
    _seg("recall", "higher", "Voxel recall (sensitivity) TP/(TP+FN)"),
    _seg("volume_pred_ml", None, "Predicted volume in millilitres"),
    _seg("volume_ref_ml", None, "Reference volume in millilitres"),
    _seg("ravd", None, "Signed relative volume difference (|P|-|R|)/|R| (0 is best)"),
    _seg("hd", "lower", "Hausdorff distance in mm (max of both directed maxima)"),
    _seg("hd95", "lower", "Max of the two directed 95th percentile surface distances in mm"),
    _seg("hd95_pooled", "lower", "95th percentile of both directions pooled in mm (medpy's hd95)"),
    _seg("assd", "lower", "Average symmetric surface distance in mm, pooled (medpy 0.5 assd)"),
    _seg("masd", "lower", "Mean of the two directed mean surface distances in mm"),
    _seg("nsd", "higher", "Normalized surface distance: fraction of surface within tolerance_mm"),
    MetricInfo("nsd_area", "segmentation", "case", "higher", "masks",
               "bench.metrics.surfels:area_weighted_nsd",
               "Surface-area-weighted NSD within tolerance_mm (Nikolov et al.; DeepMind's surface-distance)"),
    _seg("lesion_precision", "higher", "Fraction of predicted lesions that overlap a reference lesion"),
    _seg("lesion_recall", "higher", "Fraction of reference lesions overlapped by a predicted lesion"),
    _seg("lesion_f1", "higher", "Harmonic mean of lesion precision and lesion recall"),
    _cls("auroc", "higher", "scores", "Area under the ROC curve (multiclass: one-vs-rest macro)"),
    _cls("auroc_per_class", "higher", "scores", "One-vs-rest AUROC of each class"),
    _cls("average_precision", "higher", "scores", "Average precision (step, not interpolated)"),
    _cls("balanced_accuracy", "higher", "labels", "Mean per-class recall"),
    _cls("sensitivity", "higher", "scores_threshold", "True positive rate at the threshold"),
    _cls("specificity", "higher", "scores_threshold", "True negative rate at the threshold"),
    _cls("f1", "higher", "labels", "F1 of the positive class (multiclass: macro)"),
    _cls("cohen_kappa", "higher", "labels", "Cohen's kappa (unweighted)"),
    _cls("quadratic_weighted_kappa", "higher", "labels", "Cohen's kappa with quadratic weights"),
    _cls("brier", "lower", "scores", "Brier score (binary: mean (p-y)^2; multiclass: sum over classes)"),
    _cls("ece", "lower", "scores", "Expected calibration error, equal-width bins"),
    _cls("log_loss", "lower", "scores", "Mean negative log-likelihood (natural log)"),
    _cls("confusion_matrix", None, "labels", "Counts: rows true class, columns predicted class"),
)

METRICS: Mapping[str, MetricInfo] = MappingProxyType({info.name: info for info in _ALL})
"""Every metric name a task spec may use -> :class:`MetricInfo`."""

SEGMENTATION_METRICS: tuple[str, ...] = tuple(m.name for m in _ALL if m.kind == "segmentation")
CLASSIFICATION_METRICS: tuple[str, ...] = tuple(m.name for m in _ALL if m.kind == "classification")


def get_metric(name: str) -> MetricInfo:
    """Look a metric up by name.

    Raises
    ------
    bench.errors.UnknownMetricError
        Naming the unknown metric and listing the known ones (a ``KeyError`` too).
    """
    try:
        return METRICS[name]
    except KeyError:
        known = ", ".join(sorted(METRICS))
        raise UnknownMetricError(f"unknown metric {name!r}; known metrics: {known}") from None
