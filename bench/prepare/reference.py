"""The reference as scoring reads it: labels, masks and the hash that covers both.

``OUT/reference`` holds ``reference.json`` (task and split hashes, every case record with its
mask's hash) and its own sha256; scoring reads it back through :func:`read_reference`, which
refuses an edited or incomplete reference.
"""

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from bench.errors import PrepareError
from bench.io import csv_text, sha256_json
from bench.prepare import nifti

DEMOGRAPHICS = ("site", "sex", "age", "age_band")


@dataclass(frozen=True, eq=False)
class Reference:
    """A reference tree, read and verified by :func:`read_reference`.

    ``cases``: one row per case sorted by case_id, columns ``case_id, source_case_id,
    patient_id, site, sex, age, age_band``, then the label columns (classification: each
    head's manifest column, e.g. ``appearance``, ``grade``, ``covid``; listed in
    ``label_columns``) or ``mask, mask_sha256`` (segmentation). Missing values are None/NaN.
    ``inputs_sha256`` is the digest of the input tree prepared with it
    (:func:`bench.prepare.digest.input_tree_digest`); None for a reference prepared before
    runs were bound to their preparation.
    """

    directory: Path
    task: str
    task_sha256: str
    split_name: str
    split: str
    split_sha256: str
    reference_sha256: str
    label_columns: tuple[str, ...]
    cases: pd.DataFrame
    inputs_sha256: str | None = None

    @property
    def case_ids(self) -> list[str]:
        return self.cases["case_id"].tolist()

    def mask_path(self, case_id: str) -> Path:
        """Path of a segmentation case's reference mask."""
        return self.directory / "masks" / f"{case_id}.nii.gz"


def reference_sha256(document: Mapping) -> str:
    """sha256 of the canonical JSON of ``reference.json`` without its ``reference_sha256`` field.

    The document holds the task and split hashes and every case record, including each mask's
    :func:`bench.prepare.nifti.mask_sha256`, so the hash covers labels and masks alike.
    """
    return sha256_json({key: value for key, value in document.items() if key != "reference_sha256"})


def labels_table(records: list[dict], label_columns: list[str]) -> pd.DataFrame:
    """``labels.csv``: case_id, source_case_id, patient_id, demographics, label columns; by case_id."""
    columns = ["case_id", "source_case_id", "patient_id", *DEMOGRAPHICS, *label_columns]
    table = pd.DataFrame([{key: record.get(key) for key in columns} for record in records], columns=columns)
    return table.sort_values("case_id", kind="stable").reset_index(drop=True)


def read_reference_mask(path: str | os.PathLike,
                        expected_sha256: str) -> tuple[np.ndarray, nib.Nifti1Header, np.ndarray]:
    """A reference mask's voxels, header and affine (:func:`bench.prepare.nifti.read_volume`), checked
    against its :func:`bench.prepare.nifti.mask_sha256` in ``reference.json``.

    The hash is taken on the loaded array, so a mask is decompressed once whether it is only
    checked or checked and scored.

    Raises
    ------
    PrepareError
        The mask is unreadable or its content differs from the recorded hash.
    """
    try:
        data, header, affine = nifti.read_volume(path)
    except (OSError, ValueError, nib.filebasedimages.ImageFileError) as error:
        raise PrepareError(f"{path}: unreadable reference mask ({error}). Prepare the split "
                           "again.") from error
    found = nifti.mask_sha256(data)
    if found != expected_sha256:
        raise PrepareError(f"{path}: mask content sha256 {found} differs from reference.json "
                           f"({expected_sha256}); the mask was changed. Prepare the split again.")
    return data, header, affine


def read_reference(reference_dir: str | os.PathLike, *, check_masks: bool = True) -> Reference:
    """Read ``reference.json`` (and ``labels.csv`` or the masks) and verify the reference hash.

    Parameters
    ----------
    reference_dir : path
        The ``OUT/reference`` folder written by :func:`prepare_split`.
    check_masks : bool
        Also recompute every mask's :func:`bench.prepare.nifti.mask_sha256` (reads every mask once).
        Segmentation scoring passes False and checks each mask in the worker that scores it
        (:func:`read_reference_mask`), so no mask is decompressed twice.

    Raises
    ------
    PrepareError
        Missing or unreadable files, a ``reference_sha256`` that does not match the content, a
        mask or ``labels.csv`` that does not match the records.
    """
    directory = Path(reference_dir)
    path = directory / "reference.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise PrepareError(f"{path}: no reference.json; pass the reference folder written by `bench prepare` "
                           "(OUT/reference).") from error
    except (OSError, ValueError) as error:
        raise PrepareError(f"{path}: unreadable ({error}). Prepare the split again.") from error
    needed = {"schema_version", "task", "task_sha256", "split_name", "split", "split_sha256", "cases",
              "reference_sha256"}
    if not isinstance(document, dict) or needed - set(document):
        raise PrepareError(f"{path}: not a reference: needs {sorted(needed)}.")
    actual = reference_sha256(document)
    if actual != document["reference_sha256"]:
        raise PrepareError(f"{path}: reference_sha256 {document['reference_sha256']} does not match its "
                           f"content ({actual}); the reference was edited. Prepare the split again.")
    cases = pd.DataFrame(document["cases"])
    if cases.empty or "case_id" not in cases.columns:
        raise PrepareError(f"{path}: no case records.")
    label_columns = list(document.get("label_columns") or [])
    first = ["case_id", "source_case_id", "patient_id", *DEMOGRAPHICS, *label_columns]
    cases = cases[[c for c in first if c in cases.columns] + [c for c in cases.columns if c not in first]]
    cases = cases.sort_values("case_id", kind="stable").reset_index(drop=True)
    reference = Reference(directory=directory, task=document["task"], task_sha256=document["task_sha256"],
                          split_name=document["split_name"], split=document["split"],
                          split_sha256=document["split_sha256"], reference_sha256=actual,
                          label_columns=tuple(label_columns), cases=cases,
                          inputs_sha256=document.get("inputs_sha256"))
    if "mask_sha256" in cases.columns and check_masks:
        for case_id, expected in zip(cases["case_id"], cases["mask_sha256"], strict=True):
            read_reference_mask(reference.mask_path(case_id), expected)
    labels = directory / "labels.csv"
    if label_columns:
        expected = csv_text(labels_table(document["cases"], label_columns))
        if not labels.is_file() or labels.read_text(encoding="utf-8") != expected:
            raise PrepareError(f"{labels}: missing or different from the records of reference.json; the "
                               "reference was edited. Prepare the split again.")
    return reference
