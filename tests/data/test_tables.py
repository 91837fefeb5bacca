"""Manifest IO and the clinical sheet reader, on hand-written tables."""

import numpy as np
import pandas as pd
import pytest

from bench.data.clinical import read_clinical
from bench.data.manifest import MANIFEST_COLUMNS, read_manifest, write_manifest
from bench.errors import ClinicalSheetError, ManifestError


def _row(case_id, **overrides):
    row = {
        "case_id": case_id,
        "patient_id": "P",
        "collection": "MIDRC-RICORD-1A",
        "site": "419639",
        "modality": "CT",
        "study_uid": "1.2",
        "series_uid": "1.2.3",
        "n_slices": 3,
        "rows": 4,
        "cols": 5,
        "spacing_mm": "2.5,0.7,0.7",
        "covid": "positive",
        "appearance": "typical",
        "grade": "",
        "appearance_outcome": "majority",
        "grade_outcome": "none",
        "age": 61.5,
        "sex": "F",
        "n_annotations": 7,
        "n_readers": 2,
        "invalid_flags": 0,
        "reading_protocol": "0" * 64,
        "series_dir": "MIDRC-RICORD-1A/P/s/t",
    }
    row.update(overrides)
    return row


def test_manifest_write_sorts_and_reads_back_typed(tmp_path):
    frame = pd.DataFrame([_row("b"), _row("a", age=np.nan, sex="", appearance_outcome="tie")])
    path = write_manifest(frame, tmp_path / "m.csv")
    text = path.read_text().splitlines()
    assert text[0] == ",".join(MANIFEST_COLUMNS)
    assert text[1].startswith("a,") and ",tie,none,," in text[1]  # outcomes, empty age
    again = read_manifest(path)
    assert list(again.case_id) == ["a", "b"]
    assert again.loc[0, "appearance_outcome"] == "tie" and again.loc[1, "invalid_flags"] == 0
    assert np.isnan(again.loc[0, "age"]) and again.loc[1, "age"] == 61.5
    assert again.loc[1, "n_slices"] == 3 and again.loc[0, "sex"] == ""


def test_manifest_missing_columns(tmp_path):
    (tmp_path / "m.csv").write_text("case_id,patient_id\nx,y\n")
    with pytest.raises(ManifestError, match=r"m\.csv: manifest lacks column\(s\) \['collection', 'site'"):
        read_manifest(tmp_path / "m.csv")


def test_manifest_bad_values(tmp_path):
    with pytest.raises(ManifestError, match="case_id 'a/b' is not filesystem-safe"):
        write_manifest(pd.DataFrame([_row("a/b")]), tmp_path / "m.csv")
    with pytest.raises(ManifestError, match="case_id 'a' appears more than once"):
        write_manifest(pd.DataFrame([_row("a"), _row("a")]), tmp_path / "m.csv")
    with pytest.raises(ManifestError, match="case a: covid='maybe', expected one of"):
        write_manifest(pd.DataFrame([_row("a", covid="maybe")]), tmp_path / "m.csv")
    write_manifest(pd.DataFrame([_row("a")]), tmp_path / "m.csv")
    text = (tmp_path / "m.csv").read_text().replace(",3,4,5,", ",three,4,5,")
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(ManifestError, match="case a: n_slices must be an integer, got 'three'"):
        read_manifest(tmp_path / "m.csv")
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "none.csv")


def test_clinical_headers_normalized_csv(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text(
        " Anon MRN ,Anon Study UID ,  Result,Age at Imaging,Sex,Anon TCIA Study Date\n"
        "419639-000001,1.2.3, DETECTED ,84.84,Female,1/2/2020\n"
        "419639-000002,1.2.4,NOT DETECTED,,M,\n"
    )
    table = read_clinical([path]).set_index("study_uid")
    assert (
        table.loc["1.2.3", "covid_result"] == "positive" and table.loc["1.2.4", "covid_result"] == "negative"
    )
    assert table.loc["1.2.3", "age"] == 84.84 and np.isnan(table.loc["1.2.4", "age"])
    assert table.loc["1.2.3", "sex"] == "F" and table.loc["1.2.4", "sex"] == "M"
    assert table.loc["1.2.3", "mrn"] == "419639-000001"


def test_clinical_xlsx_uses_the_sheet_with_study_uids(tmp_path):
    path = tmp_path / "c.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as excel:
        pd.DataFrame({"Notes": ["x"]}).to_excel(excel, sheet_name="README", index=False)
        pd.DataFrame({"Study UID": ["9.8"], "Result": ["NEGATIVE"], "Gender": ["male"]}).to_excel(
            excel, sheet_name="CT Neg - TCIA Submission", index=False
        )
    table = read_clinical([path])
    assert len(table) == 1
    row = table.iloc[0]
    assert (row.study_uid, row.mrn, row.covid_result, row.sex) == ("9.8", "", "negative", "M")
    assert np.isnan(row.age)
    assert row.source == "c.xlsx[CT Neg - TCIA Submission]"


def test_clinical_errors(tmp_path):
    (tmp_path / "bad.csv").write_text("Patient,Age\nx,3\n")
    with pytest.raises(ClinicalSheetError, match=r"bad\.csv: no sheet has a study UID column"):
        read_clinical([tmp_path / "bad.csv"])
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ClinicalSheetError, match=r"broken\.xlsx: .*(cannot read|not a readable)"):
        read_clinical([tmp_path / "broken.xlsx"])


def test_a_1b_sheet_without_result_or_age_is_reported_by_name(tmp_path):
    path = tmp_path / "MIDRC-RICORD-1b-Clinical-Data-Feb-2021.csv"
    path.write_text("Anon MRN,Anon Study UID,Sex\n419639-000001,1.2.3,F\n")
    warnings: list[str] = []
    table = read_clinical([path], warnings=warnings)
    assert table.loc[0, "covid_result"] == "" and np.isnan(table.loc[0, "age"])
    (warning,) = warnings
    assert warning.startswith(f"{path.name}: no Result, Age column")
    complete: list[str] = []
    (tmp_path / "full.csv").write_text("Anon Study UID,Result,Age,Sex\n1.2.4,NOT DETECTED,40,M\n")
    read_clinical([tmp_path / "full.csv"], warnings=complete)
    assert complete == []
