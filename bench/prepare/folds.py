"""Patient-grouped cross-validation folds inside the pinned train split, for training frameworks.

nnU-Net trains five folds and MONAI recipes carry a ``fold`` per datalist entry; both take the
folds as given. A patient's studies must stay in one fold, or a fold's validation score is
inflated by the same lungs seen in training (the rule the pinned split follows between train,
validation and test). The assignment is deterministic: patients in a seeded random order, each
given to the fold with the fewest cases so far (ties: the lowest fold), so folds are balanced
by case count and every rerun on the same split gives the same folds.
"""

from collections.abc import Mapping

import numpy as np

from bench.errors import PrepareError

DEFAULT_FOLDS = 5


def patient_folds(patient_of: Mapping[str, str], *, folds: int = DEFAULT_FOLDS, seed: int) -> dict[str, int]:
    """Assign every case to a fold ``0 .. folds-1``, all cases of a patient to the same fold.

    Parameters
    ----------
    patient_of
        ``{case_id: patient_id}``.
    folds
        Number of folds (at least 2, at most the number of patients).
    seed
        Seed of the patient order (the task's split seed, so folds follow the pinned split).

    Returns
    -------
    dict
        ``{case_id: fold}``, in the order of ``patient_of``'s sorted case ids.

    Raises
    ------
    PrepareError
        Fewer than 2 folds, or fewer patients than folds.
    """
    patients = sorted(set(patient_of.values()))
    if folds < 2:
        raise PrepareError(f"--folds {folds}: cross-validation needs at least 2 folds.")
    if len(patients) < folds:
        raise PrepareError(
            f"the train split has {len(patients)} patient(s), fewer than --folds {folds}; "
            "pass a smaller --folds."
        )
    sizes = {patient: 0 for patient in patients}
    for patient in patient_of.values():
        sizes[patient] += 1
    order = [patients[i] for i in np.random.default_rng(seed).permutation(len(patients))]
    load = np.zeros(folds, dtype=np.int64)
    fold_of_patient = {}
    for patient in order:
        fold = int(np.argmin(load))
        fold_of_patient[patient] = fold
        load[fold] += sizes[patient]
    return {case_id: fold_of_patient[patient_of[case_id]] for case_id in sorted(patient_of)}


def nnunet_splits(fold_of: Mapping[str, int]) -> list[dict[str, list[str]]]:
    """nnU-Net v2's ``splits_final.json``: per fold, the sorted ``train`` and ``val`` case ids."""
    count = max(fold_of.values()) + 1
    return [
        {
            "train": sorted(c for c, f in fold_of.items() if f != fold),
            "val": sorted(c for c, f in fold_of.items() if f == fold),
        }
        for fold in range(count)
    ]
