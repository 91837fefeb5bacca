"""The non-DICOM files of the synthetic collection: NBIA layout and metadata.csv, the MD.ai
export documents and the clinical spreadsheets, in RICORD's real names and columns.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from pathlib import Path

import pandas as pd

from bench.data.synth_dicom import SOP_CLASS_NAMES
from bench.data.synth_plan import SeedIds

ANNOTATIONS_1A = "MIDRC-RICORD-1a_annotations_labelgroup_all_2020-Dec-8.json"
ANNOTATIONS_1C = "1c_mdai_rsna_project_MwBeK3Nr_annotations_labelgroup_all_2021-01-08-164102.json"
CLINICAL_FILES = {
    "MIDRC-RICORD-1A": ("MIDRC-RICORD-1a-Clinical-Data-Jan-13-2021", "CT Pos - TCIA Submission"),
    "MIDRC-RICORD-1B": ("MIDRC-RICORD-1b-Clinical-Data-Feb-2021", "CT Neg - TCIA Submission"),
    "MIDRC-RICORD-1C": ("MIDRC-RICORD-1c Clinical Data Jan 13 2021 ", "CR Pos - TCIA Submission"),
}
DOWNLOAD_TIMESTAMP = "2021-02-01T12:00:00.000"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
APPEARANCE_1A = {
    "typical": "Typical",
    "indeterminate": "Indeterminate",
    "atypical": "Atypical",
    "negative": "Negative for pneumonia",
}
APPEARANCE_1C = {
    "typical": "Typical Appearance",
    "indeterminate": "Indeterminate Appearance",
    "atypical": "Atypical Appearance",
    "negative": "Negative for Pneumonia",
}
GRADE_1C = {
    "mild": "Mild Airspace Disease",
    "moderate": "Moderate Airspace Disease",
    "severe": "Severe Airspace Disease",
}


def folder_name(text: str) -> str:
    """A description as the NBIA retriever puts it in a folder name (``NA`` when empty)."""
    return re.sub(r"[^A-Za-z0-9 ._()-]", "_", text) if text else "NA"


def study_dir(study: dict) -> Path:
    """``Collection/PatientID/MM-DD-YYYY-NA-<description>-<last 5 of StudyInstanceUID>``."""
    date = study["date_obj"].strftime("%m-%d-%Y")
    return Path(
        study["collection"],
        study["patient_id"],
        f"{date}-NA-{folder_name(study['description'])}-{study['study_uid'][-5:]}",
    )


def series_dir(study: dict, series: dict) -> Path:
    """The study folder plus ``<n>.000000-<description>-<last 5 of SeriesInstanceUID>``."""
    return (
        study_dir(study)
        / f"{series['number']}.000000-{folder_name(series['description'])}-{series['series_uid'][-5:]}"
    )


def file_name(number: int, total: int) -> str:
    """``1-NNN.dcm`` (acquisition 1, instance number zero-padded to at least 3 digits)."""
    return f"1-{number:0{max(3, len(str(total)))}d}.dcm"


class MetadataWriter:
    """Accumulates metadata.csv rows and counts files while writing series."""

    def __init__(self, root: Path):
        self.root = root
        self.metadata: list[dict] = []
        self.n_files = 0

    def series_done(self, study: dict, series: dict, sop_class: str, n_images: int, n_bytes: int) -> None:
        self.n_files += n_images
        size = f"{n_bytes / 1e6:.2f} MB" if n_bytes >= 1e6 else f"{n_bytes / 1e3:.2f} KB"
        uri = {
            "MIDRC-RICORD-1A": "https://doi.org/10.7937/VTW4-X588",
            "MIDRC-RICORD-1C": "https://doi.org/10.7937/91ah-v663",
        }.get(study["collection"], "")
        self.metadata.append(
            {
                "Series UID": series["series_uid"],
                "Collection": study["collection"],
                "3rd Party Analysis": "NO",
                "Data Description URI": uri,
                "Subject ID": study["patient_id"],
                "Study UID": study["study_uid"],
                "Study Description": study["description"],
                "Study Date": study["date_obj"].strftime("%m-%d-%Y"),
                "Series Description": series["description"],
                "Manufacturer": "RICORD-BENCH SYNTHETIC",
                "Modality": series["modality"],
                "SOP Class Name": SOP_CLASS_NAMES[sop_class],
                "SOP Class UID": sop_class,
                "Number of Images": n_images,
                "File Size": size,
                "File Location": "./" + series_dir(study, series).as_posix(),
                "Download Timestamp": DOWNLOAD_TIMESTAMP,
            }
        )


class ExportBuilder:
    """Builds one MD.ai export document."""

    def __init__(
        self, ids: SeedIds, name: str, groups: list[str], labels: list[tuple[str, str, str | None, str]]
    ):
        self.ids = ids
        self.name = name
        self.label_ids: dict[tuple[str, str], str] = {}
        self.groups = []
        for group in groups:
            group_id = ids.short("G", name, group)
            entries = []
            for label_name, scope, mode, kind in labels:
                label_id = ids.short("L", name, group, label_name)
                self.label_ids[(group, label_name)] = label_id
                entries.append(
                    {
                        "id": label_id,
                        "name": label_name,
                        "type": kind,
                        "scope": scope,
                        "annotationMode": mode,
                        "color": "#" + label_id[-6:].encode().hex()[:6],
                        "description": "",
                        "radlexTagIds": [],
                        "parentId": None,
                    }
                )
            self.groups.append({"id": group_id, "name": group, "labels": entries})
        self.studies: list[dict] = []
        self.annotations: list[dict] = []
        self.clock = 0

    def add(
        self,
        group: str,
        label: str,
        reader: str,
        study: dict,
        *,
        series_uid=None,
        sop_uid=None,
        data=None,
        shape=None,
    ) -> None:
        self.clock += 1
        stamp = (dt.datetime(2020, 11, 2, 9, 0) + dt.timedelta(minutes=self.clock)).strftime(
            "%Y-%m-%dT%H:%M:%S.000Z"
        )
        self.annotations.append(
            {
                "id": self.ids.short("A", self.name, self.clock),
                "labelId": self.label_ids[(group, label)],
                "StudyInstanceUID": study["study_uid"],
                "SeriesInstanceUID": series_uid,
                "SOPInstanceUID": sop_uid,
                "frameNumber": None,
                "annotationNumber": None,
                "height": shape[0] if shape else None,
                "width": shape[1] if shape else None,
                "data": data,
                "note": None,
                "radlexTagIds": [],
                "reviews": [],
                "reviewsPositiveCount": 0,
                "reviewsNegativeCount": 0,
                "createdById": reader,
                "createdAt": stamp,
                "updatedById": reader,
                "updatedAt": stamp,
                "updateHistory": [],
                "parentId": None,
                "isImported": False,
                "groupId": None,
            }
        )

    def document(self) -> dict:
        dataset_id = self.ids.short("D", self.name)
        return {
            "id": self.ids.short("P", self.name),
            "name": self.name,
            "labelGroups": self.groups,
            "datasets": [
                {
                    "id": dataset_id,
                    "name": "Dataset",
                    "studies": self.studies,
                    "annotations": self.annotations,
                }
            ],
        }


def normalized_xlsx(data: bytes) -> bytes:
    """Rewrite an xlsx with fixed zip timestamps and document dates (byte-identical per content)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "docProps/core.xml":
                content = re.sub(
                    rb"(<dcterms:(created|modified)[^>]*>)[^<]*", rb"\g<1>2021-01-13T00:00:00Z", content
                )
            info = zipfile.ZipInfo(item.filename, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, content)
    return out.getvalue()


def write_clinical(root: Path, studies: list[dict]) -> list[Path]:
    paths = []
    for collection, (stem, sheet) in CLINICAL_FILES.items():
        rows = [s for s in studies if s["collection"] == collection]
        frame = pd.DataFrame(
            {
                "Anon MRN": [s["mrn"] for s in rows],
                "Anon TCIA Study Date": [
                    f"{s['date_obj'].month}/{s['date_obj'].day}/{s['date_obj'].year}" for s in rows
                ],
                "Anon Exam Description": [s["description"] or "NA" for s in rows],
                "Anon Study UID ": [s["study_uid"] for s in rows],
                "Age": [s["age"] for s in rows],
                "Sex": [s["sex"] for s in rows],
                " Result": ["NOT DETECTED" if collection == "MIDRC-RICORD-1B" else "DETECTED" for _ in rows],
                "Test Name": ["SARS-CoV-2 RT-PCR" for _ in rows],
            }
        )
        buffer = io.BytesIO()
        with pd.ExcelWriter(buffer, engine="openpyxl") as excel:
            frame.to_excel(excel, sheet_name=sheet, index=False)
        xlsx = root / f"{stem}.xlsx"
        xlsx.write_bytes(normalized_xlsx(buffer.getvalue()))
        csv = root / f"{stem.strip()}.csv"
        csv.write_text(frame.to_csv(index=False, lineterminator="\n", float_format="%.2f"), encoding="utf-8")
        paths += [xlsx, csv]
    return paths
