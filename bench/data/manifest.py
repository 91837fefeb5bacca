"""The manifest: one row per case (study), the table every later step starts from.

Columns and their meaning are pinned in CONTRACTS.md section 2 (:data:`MANIFEST_COLUMNS`).
On disk it is a CSV sorted by ``case_id``; missing values
are empty cells.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import ManifestError
from bench.io import write_csv

MANIFEST_COLUMNS = (
    "case_id",
    "patient_id",
    "collection",
    "site",
    "modality",
    "study_uid",
    "series_uid",
    "n_slices",
    "rows",
    "cols",
    "spacing_mm",
    "covid",
    "appearance",
    "grade",
    "appearance_outcome",
    "grade_outcome",
    "age",
    "sex",
    "n_annotations",
    "n_readers",
    "invalid_flags",
    "reading_protocol",
    "series_dir",
)
INT_COLUMNS = ("n_slices", "rows", "cols", "n_annotations", "n_readers", "invalid_flags")
CASE_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")
_ALLOWED = {
    "collection": {"MIDRC-RICORD-1A", "MIDRC-RICORD-1B", "MIDRC-RICORD-1C"},
    "modality": {"CT", "CR", "DX"},
    "covid": {"positive", "negative"},
    "appearance": {"typical", "indeterminate", "atypical", "negative", ""},
    "grade": {"mild", "moderate", "severe", ""},
    "appearance_outcome": {"adjudicated", "majority", "tie", "none"},
    "grade_outcome": {"adjudicated", "majority", "tie", "none"},
    "sex": {"M", "F", ""},
}


def _check(frame: pd.DataFrame, where: str) -> None:
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise ManifestError(
            f"{where}: manifest lacks column(s) {missing}; expected {list(MANIFEST_COLUMNS)}. "
            "Re-create it with `bench data index`."
        )
    bad_ids = [c for c in frame.case_id if not CASE_ID_PATTERN.match(str(c))]
    if bad_ids:
        raise ManifestError(f"{where}: case_id {bad_ids[0]!r} is not filesystem-safe ([A-Za-z0-9._-]+).")
    duplicated = frame.case_id[frame.case_id.duplicated()]
    if len(duplicated):
        raise ManifestError(f"{where}: case_id {duplicated.iloc[0]!r} appears more than once.")
    for column, allowed in _ALLOWED.items():
        odd = frame.loc[~frame[column].fillna("").astype(str).isin(allowed), ["case_id", column]]
        if len(odd):
            row = odd.iloc[0]
            raise ManifestError(
                f"{where}: case {row.case_id}: {column}={row[column]!r}, expected one of {sorted(allowed)}."
            )


def write_manifest(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Validate and write ``frame`` (columns :data:`MANIFEST_COLUMNS`, sorted by case_id) atomically."""
    _check(frame, str(path))
    out = frame.loc[:, list(MANIFEST_COLUMNS)].sort_values("case_id", kind="stable").copy()
    for column in INT_COLUMNS:
        out[column] = out[column].astype(int)
    out["age"] = pd.to_numeric(out["age"], errors="coerce").astype(float)
    return write_csv(path, out)


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manifest CSV, validate its columns and values, and type them.

    Integers as int, ``age`` as float (NaN when empty), all other
    columns as str (empty string when missing). Rows sorted by case_id.

    Raises
    ------
    ManifestError
        Missing file, missing columns, duplicate or unsafe case ids, unexpected values.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(
            f"{path}: manifest not found. Create it with `bench data index ROOT ... --out {path}`."
        )
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ManifestError(
            f"{path}: not a readable CSV ({error}). Re-create it with `bench data index`."
        ) from error
    _check(frame, str(path))
    for column in INT_COLUMNS:
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.isna().any():
            case = frame.case_id[values.isna()].iloc[0]
            raise ManifestError(
                f"{path}: case {case}: {column} must be an integer, got "
                f"{frame.loc[values.isna(), column].iloc[0]!r}."
            )
        frame[column] = values.astype(int)
    age = pd.to_numeric(frame["age"].replace("", np.nan), errors="coerce")
    if (age.isna() & (frame["age"] != "")).any():
        case = frame.case_id[age.isna() & (frame["age"] != "")].iloc[0]
        raise ManifestError(f"{path}: case {case}: age must be a number of years or empty.")
    frame["age"] = age.astype(float)
    return frame.sort_values("case_id", kind="stable").reset_index(drop=True)
