"""Patient-grouped folds: every patient in one fold, balanced by cases, deterministic per seed."""

import pytest

from bench.errors import PrepareError
from bench.prepare.folds import nnunet_splits, patient_folds


def test_patients_stay_together_and_folds_balance_by_cases():
    # 7 patients, 12 cases: p0 has 3 studies, p1 and p2 two each
    patient_of = {"c00": "p0", "c01": "p0", "c02": "p0", "c03": "p1", "c04": "p1", "c05": "p2", "c06": "p2",
                  "c07": "p3", "c08": "p4", "c09": "p5", "c10": "p6", "c11": "p6"}
    fold_of = patient_folds(patient_of, folds=3, seed=7)
    assert sorted(fold_of) == sorted(patient_of)
    for patient in set(patient_of.values()):
        assert len({fold_of[c] for c, p in patient_of.items() if p == patient}) == 1
    sizes = sorted(list(fold_of.values()).count(f) for f in range(3))
    assert sizes[-1] - sizes[0] <= 3  # the largest patient has 3 cases
    assert patient_folds(patient_of, folds=3, seed=7) == fold_of


def test_nnunet_splits_partition_the_cases():
    splits = nnunet_splits({"a": 0, "b": 1, "c": 0, "d": 2})
    assert splits == [
        {"train": ["b", "d"], "val": ["a", "c"]},
        {"train": ["a", "c", "d"], "val": ["b"]},
        {"train": ["a", "b", "c"], "val": ["d"]},
    ]


def test_too_few_patients_for_the_folds_is_refused():
    with pytest.raises(PrepareError, match="2 patient\\(s\\), fewer than --folds 5"):
        patient_folds({"a": "p0", "b": "p1"}, folds=5, seed=0)
    with pytest.raises(PrepareError, match="at least 2 folds"):
        patient_folds({"a": "p0", "b": "p1"}, folds=1, seed=0)
