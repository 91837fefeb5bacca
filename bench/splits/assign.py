"""Assign patients to train / validation / test by the documented procedure; no random stream.

A paper cites a split by its sha256; anyone with the same download must get the same cases.
So the assignment uses no random number stream (whose algorithm a library upgrade may change)
but a documented procedure on sha256 ranks and exact rational arithmetic.

Procedure ``sha256-greedy/v1`` (see docs/splits.md):

1. The task's cases: manifest rows of the task's collections (segmentation: only cases whose
   series carries annotations; classification: only cases with a label for at least one head).
2. Each patient (``group_by``) gets the stratum (values of the ``stratify`` columns; an empty
   value is its own stratum value) of their first case in case_id order, and a weight: their
   number of cases. All of a patient's cases go to one split.
3. Strata are taken in sorted order of their values; within a stratum, patients in increasing
   order of ``sha256("<seed>:<patient_id>")`` (hex), ties by patient_id.
4. A split's deficit for a patient of weight ``w`` is ``f_s * (n + w) - n_s``: its target share
   minus what it holds, counted after the patient (``n`` cases placed so far, ``n_s`` of them
   in split ``s``, ``f_s`` the target fraction as an exact decimal fraction, no floating point).
   The candidates are the splits with a positive deficit within the patient's stratum (there
   is always one: the deficits sum to ``w``); the patient goes to the candidate with the
   largest deficit over all strata so far, ties to the larger deficit within the stratum,
   then to test, validation, train in that order.

Hence within each stratum no split exceeds its target by a patient's weight or more, and the
overall fractions stay close to the targets although small strata cannot be split evenly.
"""

import hashlib
from collections.abc import Mapping
from fractions import Fraction

import pandas as pd

from bench.errors import ManifestError, SplitError
from bench.tasks import SPLITS, SplitStrategy, TaskSpec

PROCEDURE = "sha256-greedy/v1"


#: Preference among splits whose deficits tie exactly.
_TIE_ORDER = ("test", "validation", "train")


def _value(value) -> str | None:
    """A stratum value as text; missing (NaN, None, empty) becomes None."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    return text or None


def _stratum_order(key: tuple) -> tuple:
    return tuple((_value(value) is not None, _value(value) or "") for value in key)


def _rank(seed: int, patient_id: str) -> str:
    return hashlib.sha256(f"{seed}:{patient_id}".encode()).hexdigest()


def _choose(fractions: Mapping[str, Fraction], placed: Mapping[str, int], placed_all: Mapping[str, int],
            weight: int) -> str:
    """Step 4 of the procedure: the split for the next patient of ``weight`` cases."""
    n, n_all = sum(placed.values()), sum(placed_all.values())
    best, best_priority = "", None
    for split in SPLITS:
        local = fractions[split] * (n + weight) - placed[split]
        overall = fractions[split] * (n_all + weight) - placed_all[split]
        priority = (local > 0, overall, local, -_TIE_ORDER.index(split))
        if best_priority is None or priority > best_priority:
            best, best_priority = split, priority
    return best


def task_cases(manifest: pd.DataFrame, spec: TaskSpec, *, source: str = "manifest") -> pd.DataFrame:
    """The manifest rows that form ``spec``'s cases (rule 1 of the module docstring), by case_id.

    Raises
    ------
    SplitError
        The manifest lacks a column the task needs, has no case of the task's collections,
        holds a label value that is not one of a head's classes, or was labelled by another
        reading protocol than the task declares.
    """
    needed = ["case_id", "patient_id", "collection", "study_uid", "series_uid", spec.split.group_by,
              *spec.split.stratify, *spec.label_columns, "n_annotations", "reading_protocol"]
    missing = [column for column in dict.fromkeys(needed) if column not in manifest.columns]
    if missing:
        raise ManifestError(f"{source}: lacks column(s) {missing} that task {spec.id} needs (split "
                            f"stratification {spec.split.stratify}, labels {spec.label_columns}). Rebuild it "
                            "with `bench data index`, or fix split.stratify in the task.yaml.")
    cases = manifest[manifest["collection"].isin(spec.collections)]
    other = cases[cases["reading_protocol"] != spec.reading.sha256]
    if len(other):
        raise SplitError(f"{source}: case {other['case_id'].iloc[0]} was labelled by reading protocol "
                         f"{other['reading_protocol'].iloc[0]!r}, task {spec.id} declares "
                         f"{spec.reading.sha256!r} (its task.yaml 'reading'). Index again with "
                         f"`bench data index ... --task {spec.id}`.")
    if spec.kind == "segmentation":
        cases = cases[pd.to_numeric(cases["n_annotations"], errors="coerce").fillna(0) > 0]
    else:
        labelled = pd.Series(False, index=cases.index)
        for head in spec.heads:
            values = cases[head.column].map(_value)
            bad = cases[values.notna() & ~values.isin(head.classes)]
            if len(bad):
                row = bad.iloc[0]
                raise SplitError(f"{source}: case {row['case_id']} has {head.column}={row[head.column]!r}, "
                                 f"not one of head {head.name!r}'s classes {head.classes}.")
            labelled |= values.notna()
        cases = cases[labelled]
    if cases.empty:
        raise SplitError(f"{source}: no case of {spec.collections} for task {spec.id} (collections present: "
                         f"{sorted(manifest['collection'].dropna().unique())}). Index the right download.")
    if cases["case_id"].duplicated().any():
        raise ManifestError(f"{source}: case_id {cases['case_id'][cases['case_id'].duplicated()].iloc[0]!r} "
                            "appears twice; case ids must be unique. Rebuild it with `bench data index`.")
    return cases.sort_values("case_id", kind="stable").reset_index(drop=True)


def assign_splits(cases: pd.DataFrame, strategy: SplitStrategy) -> pd.DataFrame:
    """Assign every case to train / validation / test by procedure ``sha256-greedy/v1``.

    Parameters
    ----------
    cases : DataFrame
        One row per case with ``case_id``, the ``strategy.group_by`` column and every
        ``strategy.stratify`` column.
    strategy : SplitStrategy
        Seed, patient key, stratification columns and target fractions of the task.

    Returns
    -------
    DataFrame
        ``case_id``, the patient key, ``split`` and the strata columns (as text, None when
        missing), sorted by case_id. The same input gives the same output on any machine.
    """
    group, columns = strategy.group_by, list(strategy.stratify)
    missing = [c for c in ["case_id", group, *columns] if c not in cases.columns]
    if missing:
        raise SplitError(f"cases lack column(s) {missing} needed to stratify by {columns} and group by "
                         f"{group!r}.")
    table = cases[["case_id", group, *columns]].copy()
    for column in columns:
        table[column] = pd.Series([_value(v) for v in table[column]], index=table.index, dtype=object)
    table[group] = table[group].astype(str)
    table = table.sort_values("case_id", kind="stable").reset_index(drop=True)
    weights = table.groupby(group, sort=True).size()
    firsts = table.drop_duplicates(group, keep="first")
    strata: dict[tuple, list[str]] = {}
    for values in firsts[[group, *columns]].itertuples(index=False, name=None):
        strata.setdefault(tuple(values[1:]), []).append(values[0])
    fractions = {s: Fraction(repr(float(strategy.fractions[s]))) for s in SPLITS}
    placed_all = dict.fromkeys(SPLITS, 0)
    split_of: dict[str, str] = {}
    for key in sorted(strata, key=_stratum_order):
        placed = dict.fromkeys(SPLITS, 0)
        for patient in sorted(strata[key], key=lambda p: (_rank(strategy.seed, p), p)):
            best = _choose(fractions, placed, placed_all, int(weights[patient]))
            split_of[patient] = best
            placed[best] += int(weights[patient])
            placed_all[best] += int(weights[patient])
    table.insert(2, "split", table[group].map(split_of))
    return table


def strategy_record(strategy: SplitStrategy) -> dict:
    return {
        "procedure": PROCEDURE,
        "seed": strategy.seed,
        "group_key": strategy.group_by,
        "strata": list(strategy.stratify),
        "fractions": {s: float(strategy.fractions[s]) for s in SPLITS},
    }
