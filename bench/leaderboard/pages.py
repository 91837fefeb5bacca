"""What a submission page shows, shaped for the template: metric rows, tables, notes.

``scores.json`` nests per-class values, confusion matrices and fairness gaps; the page shows
them as tables with one row per class or group and a note wherever a value or interval is
missing, instead of raw dictionaries. The receipt is published without host paths.
"""

import os
from collections.abc import Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from bench.metrics.subgroups import MAX_UNDEFINED_FRACTION

UNDEFINED_NOTE = "undefined on this group (e.g. a class is absent)"


def score_repeats_primary(board: Any) -> bool:
    """Whether the board's ranking statistic is the primary value itself, so a column for it
    would repeat the primary column: the mean of aggregate-then-rank (the scorer's value is
    the mean over the counted cases) and a dataset-level metric ranked by its value."""
    ranking = board.ranking  # None on a sealed or empty phase board: no columns at all
    return ranking is not None and ranking.method == "aggregate-then-rank" and ranking.aggregate in (
        "mean", "dataset")


def every_entry_failed(board: Any) -> bool:
    """Whether no entry of the board scored a single case (all missing, malformed or in error)."""
    return bool(board.entries) and all(entry.ok == 0 for entry in board.entries)


def metric_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per scalar metric and one per class of a per-class metric, sorted by key.

    Rows: ``{key, value, ci_low, ci_high, direction}``; non-scalar values other than
    per-class mappings (the confusion matrix) are left to :func:`confusion_matrices`.
    """
    rows = []
    for key in sorted(metrics):
        entry = metrics[key]
        value = entry.get("value")
        if isinstance(value, Mapping):
            lows, highs = entry.get("ci_low") or {}, entry.get("ci_high") or {}
            for cls in value:
                rows.append({"key": f"{key} · {cls}", "value": value[cls], "ci_low": lows.get(cls),
                             "ci_high": highs.get(cls), "direction": entry.get("direction")})
        elif not isinstance(value, (list, tuple)):
            rows.append({"key": key, "value": value, "ci_low": entry.get("ci_low"),
                         "ci_high": entry.get("ci_high"), "direction": entry.get("direction")})
    return rows


def confusion_matrices(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``{key, labels, rows: [(true label, [counts])]}`` for every matrix-valued metric."""
    tables = []
    for key in sorted(metrics):
        entry = metrics[key]
        value = entry.get("value")
        if isinstance(value, (list, tuple)):
            labels = list(entry.get("labels") or range(len(value)))
            tables.append({"key": key, "labels": labels,
                           "rows": [(label, [_count(v) for v in row])
                                    for label, row in zip(labels, value, strict=False)]})
    return tables


def _count(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def group_note(group: Mapping[str, Any], *, hidden: bool, min_size: int) -> str:
    """Why a subgroup or fairness row lacks a value or an interval ('' when it lacks nothing)."""
    if group.get("too_small"):
        if hidden:
            return f"hidden: fewer than {min_size} cases on a split whose per-case scores are hidden"
        return f"fewer than {min_size} cases: too small for a reliable estimate"
    values = [group.get(k) for k in ("value", "eod", "aaod") if k in group]
    if values and all(v is None for v in values):
        return UNDEFINED_NOTE
    undefined, resamples = group.get("n_undefined") or 0, group.get("n_resamples") or 0
    if resamples and undefined > MAX_UNDEFINED_FRACTION * resamples:
        return (f"no interval: {undefined} of {resamples} resamples were undefined (more than "
                f"{MAX_UNDEFINED_FRACTION:.0%}), so the remaining ones would give a too narrow interval")
    if resamples and undefined:
        return f"{undefined} of {resamples} resamples undefined and left out of the interval"
    return ""


def fairness_tables(fairness: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One table per head and attribute: ``{head, attribute, measure, reference, columns, groups}``.

    Binary heads show the equal-opportunity difference (EOD) and the average absolute odds
    difference (AAOD) against the reference group; ordinal heads the group's QWK and its
    difference to the reference group's (delta QWK).
    """
    tables = []
    for head in sorted(fairness):
        body = fairness[head]
        binary = "equal_opportunity" in str(body.get("measure", ""))
        columns = ([("eod", "EOD"), ("aaod", "AAOD")] if binary
                   else [("value", "QWK"), ("difference", "ΔQWK vs reference")])
        for attribute in sorted(body.get("attributes", {})):
            groups = body["attributes"][attribute]
            reference = next((g.get("reference") for g in groups.values() if g.get("reference")), None)
            tables.append({"head": head, "attribute": attribute, "binary": binary, "columns": columns,
                           "reference": reference or _largest(groups),
                           "groups": [(name, groups[name]) for name in sorted(groups)]})
    return tables


def _largest(groups: Mapping[str, Any]) -> str:
    """The largest group (ties: the first label in sorted order), as the scorer picks it."""
    if not groups:
        return ""
    return min(sorted(groups), key=lambda name: -(groups[name].get("n") or 0))


def interval(group: Mapping[str, Any], name: str) -> tuple[Any, Any]:
    """The (low, high) interval of ``name`` in a group row (``ci_*`` or ``<name>_ci_*``)."""
    prefix = "" if name == "value" else f"{name}_"
    return group.get(f"{prefix}ci_low"), group.get(f"{prefix}ci_high")


def public_receipt(receipt: Any) -> Any:
    """The receipt without host paths: absolute paths become their last component.

    The store keeps the full receipt (re-scoring needs the paths); only the page drops the
    folders, which tell the public nothing about the result and something about the host.
    """
    if isinstance(receipt, Mapping):
        return {key: public_receipt(value) for key, value in receipt.items()}
    if isinstance(receipt, (list, tuple)):
        return [public_receipt(value) for value in receipt]
    if isinstance(receipt, str) and _is_absolute_path(receipt):
        return _last_component(receipt)
    return receipt


def _is_absolute_path(text: str) -> bool:
    if "\n" in text:
        return False
    return os.path.isabs(text) or PureWindowsPath(text).is_absolute() or text.startswith("~/")


def _last_component(text: str) -> str:
    path = PureWindowsPath(text) if PureWindowsPath(text).is_absolute() else PurePosixPath(text)
    return path.name or str(path.anchor)
