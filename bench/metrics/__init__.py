"""Metric functions: pure, arrays in, numbers or small frozen dataclasses out.

No stage of its own: the lowest layer above errors and io, used by scoring, ranking and the
leaderboard; it knows nothing of tasks, files or the store.

Modules: :mod:`segmentation` (per-case overlap, surface distance and lesion detection, built on
:mod:`surface`),
:mod:`classification` (dataset-level ranking, threshold, agreement and calibration metrics),
:mod:`uncertainty` (bootstrap, DeLong), :mod:`subgroups` (per-group scores and fairness gaps)
and :mod:`registry` (every metric name a task spec may use, with its direction and level).
"""


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for valid input (e.g. AUROC with one class); NaN is returned.

    Ours, not scikit-learn's, so callers can filter one class on every scikit-learn version.
    """
