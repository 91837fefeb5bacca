"""Classification scoring: the prediction matrix of a run, and each head's metrics over a case set.

The runner copies only validated rows of ``predictions.csv``; every reference case without a
row is scored by the task's ``missing_prediction`` policy, the same way for every entry:
``chance`` gives it the uniform distribution over each head's classes (so it carries no
information, and the predicted class is the first class, as argmax of a tie), ``exclude`` leaves
it out of every head's metrics while keeping its row, status and reason in the per-case table.

Metric calling conventions are those of :mod:`bench.metrics.registry`: ``y_true`` holds class
indices into ``head.classes`` (for a binary head, 1 = the positive class); ``y_score`` is the
positive-class probability (binary) or the ``(n, K)`` matrix; the predicted class is the argmax of
the head's probabilities (binary heads: positive when its probability is at least the head's
threshold).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.errors import ScoringError
from bench.io import is_missing
from bench.metrics.registry import METRICS
from bench.scoring.bootstrap import class_strata
from bench.tasks import Head, TaskSpec


@dataclass(frozen=True)
class HeadData:
    """One head's arrays over the cases that count for it (reference label present, not excluded).

    ``y_true`` class indices (binary: 1 = positive), ``proba`` ``(n, K)`` in class order,
    ``y_pred`` predicted class indices, ``patient_id`` and ``index`` (row positions in the
    per-case table) for clustering and subgroups.
    """

    head: Head
    y_true: np.ndarray
    proba: np.ndarray
    y_pred: np.ndarray
    index: np.ndarray

    @property
    def binary(self) -> bool:
        return len(self.head.classes) == 2

    @property
    def y_score(self) -> np.ndarray:
        """What ``scores`` metrics take: positive-class probability, or the full matrix."""
        if self.binary:
            return self.proba[:, self.head.classes.index(self.head.positive)]
        return self.proba

    def subset(self, rows: np.ndarray) -> "HeadData":
        """The same head restricted to positions ``rows`` of its arrays."""
        return HeadData(self.head, self.y_true[rows], self.proba[rows], self.y_pred[rows], self.index[rows])


def read_predictions(path, spec: TaskSpec) -> pd.DataFrame:
    """The validated prediction rows of a run (``outputs/predictions.csv``), indexed by case id.

    A run without the file (crash, timeout) has no rows. Raises ScoringError when the file the
    runner validated does not have the task's columns (a run dir not written by ``bench run``).
    """
    if not path.is_file():
        return pd.DataFrame(columns=spec.output_columns[1:], dtype=float).rename_axis("case_id")
    try:
        table = pd.read_csv(path, dtype={"case_id": str})
    except (OSError, ValueError) as error:
        raise ScoringError(f"{path}: unreadable ({error}); rerun the submission with `bench run`.") from error
    missing = [column for column in spec.output_columns if column not in table.columns]
    if missing:
        raise ScoringError(
            f"{path}: lacks columns {missing}; expected {spec.output_columns} "
            f"(the runner only writes validated rows; was this run dir edited?)."
        )
    return table[spec.output_columns].set_index("case_id")


def predicted_class(head: Head, proba: np.ndarray) -> np.ndarray:
    """Predicted class indices: argmax, or for a binary head the positive class at p >= threshold."""
    if len(head.classes) == 2:
        positive = head.classes.index(head.positive)
        return np.where(proba[:, positive] >= head.threshold, positive, 1 - positive)
    return np.argmax(proba, axis=1)


def head_probabilities(
    head: Head, predictions: pd.DataFrame, case_ids: list[str], available: np.ndarray, policy: str
) -> np.ndarray:
    """``(n, K)`` probabilities for ``case_ids``: the run's rows, else uniform (chance) or NaN."""
    proba = np.full((len(case_ids), len(head.classes)), np.nan)
    if available.any():
        rows = [case_id for case_id, ok in zip(case_ids, available, strict=True) if ok]
        proba[available] = predictions.loc[rows, head.classes].to_numpy(dtype=float)
    if policy == "chance":
        proba[~available] = 1.0 / len(head.classes)
    return proba


def class_codes(head: Head, labels: pd.Series) -> np.ndarray:
    """Index of each reference label in ``head.classes``; -1 where a case has no (known) label."""
    label_index = {name: position for position, name in enumerate(head.classes)}
    return labels.map(lambda value: label_index.get(value, -1)).to_numpy(dtype=int)


def head_data(head: Head, labels: pd.Series, proba: np.ndarray) -> HeadData:
    """Arrays for one head over the cases that have a reference label and probabilities."""
    codes = class_codes(head, labels)
    unknown = sorted({str(v) for v, c in zip(labels, codes, strict=True) if c < 0 and _present(v)})
    if unknown:
        raise ScoringError(
            f"reference labels {unknown} of head {head.name!r} are not among its classes "
            f"{head.classes}; the reference does not match the task spec."
        )
    keep = np.flatnonzero((codes >= 0) & np.isfinite(proba).all(axis=1))
    y_true = class_strata(head, codes[keep])
    sub = proba[keep]
    y_pred = predicted_class(head, sub) if len(keep) else np.zeros(0, dtype=int)
    if len(head.classes) == 2:
        y_pred = (y_pred == head.classes.index(head.positive)).astype(int)
    return HeadData(head, y_true, sub, y_pred, keep)


def _present(value) -> bool:
    return not (is_missing(value) or value == "")


def compute_metric(name: str, data: HeadData):
    """One registry metric of one head: a float, or a list / dict for non-scalar metrics."""
    info = METRICS[name]
    if info.inputs == "scores":
        value = info.func(data.y_true, data.y_score)
    elif info.inputs == "labels":
        value = info.func(data.y_true, data.y_pred, n_classes=len(data.head.classes))
    else:
        value = info.func(data.y_true, data.y_score, threshold=data.head.threshold)
    return _plain(name, value, data.head)


def _plain(name: str, value, head: Head):
    """Metric value as JSON-able data: per-class arrays become {class: value}, matrices lists."""
    array = np.asarray(value, dtype=float) if not isinstance(value, dict) else None
    if isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items()}
    if array.ndim == 0:
        return float(array)
    if array.ndim == 1 and array.size == len(head.classes):
        return {cls: float(v) for cls, v in zip(head.classes, array, strict=True)}
    return array.tolist()
