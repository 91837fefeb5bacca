"""RICORD clinical spreadsheets (xlsx or csv) -> one row per study.

Header names differ between the 1a/1b and 1c sheets and carry stray whitespace, so columns
are found by normalized name (whitespace collapsed, case folded):

- study UID: a header containing ``study uid`` (``Anon Study UID``, ``Study UID``) or
  ``studyinstanceuid``; required.
- RT-PCR result: ``result`` or a header containing ``pcr``/``result``; values ``DETECTED``
  / ``POSITIVE`` -> positive, ``NOT DETECTED`` / ``NEGATIVE`` -> negative.
- age: a header with the word ``age`` (``Age``, ``Age at Imaging``), in years.
- sex: a header with the word ``sex`` or ``gender``; ``M``/``Male``, ``F``/``Female``.
- patient: a header containing ``mrn`` (``Anon MRN``), kept as given.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import ClinicalSheetError

log = logging.getLogger(__name__)

CLINICAL_COLUMNS = ("study_uid", "mrn", "covid_result", "age", "sex", "source")


def _norm(header) -> str:
    return " ".join(str(header).split()).lower()


def _words(header: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", header))


def _find(headers: list[str], test) -> str | None:
    for header in headers:
        if test(_norm(header)):
            return header
    return None


def _result(value: str) -> str:
    text = " ".join(str(value).split()).upper()
    if text in ("DETECTED", "POSITIVE", "POS", "DETECTED (POSITIVE)"):
        return "positive"
    if text in ("NOT DETECTED", "NEGATIVE", "NEG", "NOT DETECTED (NEGATIVE)", "UNDETECTED"):
        return "negative"
    return ""


def _sex(value: str) -> str:
    text = str(value).strip().upper()
    return {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F"}.get(text, "")


def _age(value) -> float:
    match = re.search(r"\d+(\.\d+)?", str(value))
    return float(match.group(0)) if match else np.nan


def _frames(path: Path) -> list[tuple[str, pd.DataFrame]]:
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
            sheets = pd.read_excel(path, sheet_name=None, dtype=str)
            return [(f"{path.name}[{name}]", frame) for name, frame in sheets.items()]
        return [(path.name, pd.read_csv(path, dtype=str, keep_default_na=False))]
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ClinicalSheetError(
            f"{path}: cannot read the clinical sheet ({type(error).__name__}: {error}). "
            "Pass the xlsx or a csv export of it."
        ) from error
    except Exception as error:  # openpyxl raises its own zip/xml errors for corrupt workbooks
        raise ClinicalSheetError(
            f"{path}: not a readable spreadsheet ({type(error).__name__}: {error})."
        ) from error


def _parse(where: str, frame: pd.DataFrame, warnings: list[str] | None = None) -> pd.DataFrame | None:
    headers = list(frame.columns)
    study = _find(headers, lambda h: "study uid" in h or "studyinstanceuid" in h.replace(" ", ""))
    if study is None:
        return None
    result = (
        _find(headers, lambda h: h == "result")
        or _find(headers, lambda h: "pcr" in h)
        or _find(headers, lambda h: "result" in h)
    )
    age = _find(headers, lambda h: "age" in _words(h))
    sex = _find(headers, lambda h: bool({"sex", "gender"} & _words(h)))
    mrn = _find(headers, lambda h: "mrn" in _words(h))
    # 1b's negatives are confirmed by its RT-PCR Result; 1c's sheet has none (positive by collection)
    needs_result = "1b" in where.casefold()
    expected = (("Result", result if needs_result else ""), ("Age", age), ("Sex", sex))
    absent = [name for name, column in expected if column is None]
    if absent and warnings is not None:
        warnings.append(f"{where}: no {', '.join(absent)} column (found {headers}); those values are "
                        "missing for its studies (demographics fall back to the DICOM headers)")
    frame = frame.fillna("")
    out = pd.DataFrame(
        {
            "study_uid": frame[study].astype(str).str.strip(),
            "mrn": frame[mrn].astype(str).str.strip() if mrn else "",
            "covid_result": frame[result].map(_result) if result else "",
            "age": frame[age].map(_age) if age else np.nan,
            "sex": frame[sex].map(_sex) if sex else "",
            "source": where,
        }
    )
    return out[out.study_uid != ""]


SHEET_SUFFIXES = (".xlsx", ".csv")


def _sheet_key(path: Path) -> str:
    """The sheet a file holds, whatever its format: RICORD names the 1c workbook with a stray
    space before ``.xlsx``, which a csv export of it does not keep."""
    return " ".join(path.stem.split()).casefold()


def clinical_files(paths: Sequence[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """The clinical sheets to read: each given file, and every xlsx/csv sheet of each given folder.

    A folder that holds one sheet as both ``.xlsx`` and ``.csv`` (as ``bench data synth``
    writes them) would list every study twice; the xlsx, the format TCIA publishes, is used
    and the csv skipped. Returns the files (given order; a folder's files sorted) and one note
    per skipped copy.

    Raises
    ------
    ClinicalSheetError
        A path that does not exist, or a folder without any xlsx or csv file.
    """
    files: list[Path] = []
    notes: list[str] = []
    for path in map(Path, paths):
        if path.is_file():
            files.append(path)
            continue
        if not path.is_dir():
            raise ClinicalSheetError(
                f"{path}: clinical sheet not found. Pass the collection's clinical data xlsx (or csv) "
                "from its TCIA page, or the folder holding them, with --clinical."
            )
        sheets = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SHEET_SUFFIXES)
        if not sheets:
            raise ClinicalSheetError(f"{path}: no .xlsx or .csv clinical sheet in this folder.")
        by_key: dict[str, list[Path]] = {}
        for sheet in sheets:
            by_key.setdefault(_sheet_key(sheet), []).append(sheet)
        for sheet in sheets:
            twins = by_key[_sheet_key(sheet)]
            if sheet.suffix.lower() == ".csv" and any(t.suffix.lower() == ".xlsx" for t in twins):
                kept = next(t for t in twins if t.suffix.lower() == ".xlsx")
                notes.append(f"{sheet}: skipped; the folder holds the same sheet as {kept.name}, "
                             "which is used")
                continue
            files.append(sheet)
    return files, notes


def read_clinical(paths: Sequence[str | os.PathLike], *, warnings: list[str] | None = None) -> pd.DataFrame:
    """Read clinical sheets into one table (:data:`CLINICAL_COLUMNS`), one row per study UID.

    Every sheet of a workbook that has a study-UID column is used. A study listed twice
    keeps its first row (logged). A sheet without an ``Age`` or ``Sex`` column, or a 1b sheet
    (its file name says ``1b``) without the RT-PCR ``Result`` that confirms its negatives, is
    named with the missing columns in ``warnings`` when a list is given.

    Raises
    ------
    ClinicalSheetError
        A file that is missing or unreadable, or in which no sheet has a study-UID column.
    """
    parts = []
    for path in map(Path, paths):
        if not path.is_file():
            raise ClinicalSheetError(
                f"{path}: clinical sheet not found. Pass the collection's clinical "
                "data xlsx (or csv) from its TCIA page with --clinical."
            )
        found = False
        for where, frame in _frames(path):
            parsed = _parse(where, frame, warnings)
            if parsed is not None:
                parts.append(parsed)
                found = True
        if not found:
            headers = [list(frame.columns) for _, frame in _frames(path)]
            raise ClinicalSheetError(
                f"{path}: no sheet has a study UID column (a header containing 'Study UID'); found "
                f"columns {headers}. Expected the RICORD clinical sheet (e.g. 'Anon Study UID', 'Result', "
                "'Age', 'Sex')."
            )
    if not parts:
        return pd.DataFrame(columns=list(CLINICAL_COLUMNS))
    table = pd.concat(parts, ignore_index=True)
    duplicated = table.study_uid.duplicated(keep="first")
    if duplicated.any():
        log.warning("clinical sheets list %d study UID(s) twice; first row kept", int(duplicated.sum()))
    return table[~duplicated].reset_index(drop=True)
