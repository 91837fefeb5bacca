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
#: The eight labels of every label group of the real 1c export, in its order:
#: (family, value) -> (name as the file spells it, shortName, description).
LABELS_1C = {
    ("appearance", "typical"): ("Typical Appearance", "Typical", "Multifocal bilateral opacities"),
    ("appearance", "indeterminate"): ("Indeterminate Appearance", "Indeterminate", "No typical findings"),
    ("appearance", "atypical"): ("Atypical Appearance", "Atypical", "Pneumothorax or pleural effusion"),
    ("appearance", "negative"): ("Negative for Pneumonia", "Negative", "No lung opacities"),
    ("grade", "mild"): ("Mild Opacities  (1-2 lung zones)", "Mild", "Opacities in 1-2 lung zones"),
    ("grade", "moderate"): ("Moderate Opacities (3-4 lung zones)", "Moderate", "Opacities in 3-4 lung zones"),
    ("grade", "severe"): ("Severe Opacities (>4 lung zones)", "Severe", "Opacities in >4 lung zones"),
    ("invalid", ""): ("Invalid Study", "", ""),
}


def folder_name(text: str) -> str:
    """A description as the NBIA retriever puts it in a folder name (``NA`` when empty)."""
    return re.sub(r"[^A-Za-z0-9 ._()-]", "_", text) if text else "NA"


def _legacy(study: dict) -> bool:
    """1c is written in the older retriever layout, as the real 1C download is."""
    return study["collection"] == "MIDRC-RICORD-1C"


def study_dir(study: dict) -> Path:
    """``Collection/PatientID/MM-DD-YYYY-NA-<description>-<last 5 of StudyInstanceUID>``.

    The older retriever (the real 1C download) omits the StudyID field and an empty
    description: ``08-14-2003-XR CHEST 1 VIEW AP-27539``, ``12-23-2006-22708``. The last five
    characters of a short counter UID hold a dot (``...474.440808.569`` -> ``8.569``).
    """
    date = study["date_obj"].strftime("%m-%d-%Y")
    if _legacy(study):
        fields = [date, *([folder_name(study["description"])] if study["description"] else [])]
    else:
        fields = [date, "NA", folder_name(study["description"])]
    return Path(study["collection"], study["patient_id"], "-".join([*fields, study["study_uid"][-5:]]))


def series_dir(study: dict, series: dict) -> Path:
    """The study folder plus ``<n>.000000-<description>-<last 5 of SeriesInstanceUID>``
    (the older layout omits an empty description: ``1.000000-89534``)."""
    fields = [f"{series['number']}.000000"]
    if series["description"] or not _legacy(study):
        fields.append(folder_name(series["description"]))
    return study_dir(study) / "-".join([*fields, series["series_uid"][-5:]])


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


def _stamp(minutes: int) -> str:
    return (dt.datetime(2020, 8, 1, 9, 0) + dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class ExportBuilder:
    """Builds one MD.ai export document with the real export's keys.

    ``labels``: ``(name, shortName, description, scope, annotationMode, type)`` defined in
    every group, each group with its own label ids (as the real exports do). ``study_level``
    exports (1c) write the real 1c annotation keys: no Series/SOP UIDs, no frameNumber.
    """

    def __init__(self, ids: SeedIds, name: str, groups: list[str],
                 labels: list[tuple[str, str, str, str, str | None, str]], *, study_level: bool = False):
        self.ids = ids
        self.name = name
        self.study_level = study_level
        self.label_ids: dict[tuple[str, str], str] = {}
        self.groups = []
        for group in groups:
            group_id = ids.short("G", name, group)
            entries = []
            for label_name, short_name, description, scope, mode, kind in labels:
                label_id = ids.short("L", name, group, label_name)
                self.label_ids[(group, label_name)] = label_id
                entries.append({
                    "id": label_id, "parentId": None, "createdAt": _stamp(0), "updatedAt": _stamp(0),
                    "name": label_name, "shortName": short_name, "description": description,
                    "color": "#" + label_id[-6:].encode().hex()[:6], "type": kind, "scope": scope,
                    "annotationMode": mode, "radlexTagIds": [],
                })
            self.groups.append({"id": group_id, "createdAt": _stamp(0), "updatedAt": _stamp(0), "name": group,
                                "description": None, "type": "STANDARD", "labels": entries})
        self.studies: list[dict] = []
        self.annotations: list[dict] = []
        self.clock = 0

    def add(self, group: str, label: str, reader: str, study: dict, *, series_uid=None, sop_uid=None,
            data=None, shape=None) -> None:
        self.clock += 1
        stamp = _stamp(self.clock)
        annotation = {
            "id": self.ids.short("A", self.name, self.clock), "parentId": None, "isImported": False,
            "createdAt": stamp, "createdById": reader, "updatedAt": stamp, "updatedById": reader,
            "labelId": self.label_ids[(group, label)], "annotationNumber": None,
            "height": shape[0] if shape else None, "width": shape[1] if shape else None, "data": data,
            "note": None, "radlexTagIds": [], "reviewsPositiveCount": 0, "reviewsNegativeCount": 0,
            "StudyInstanceUID": study["study_uid"],
        }
        if not self.study_level:
            annotation.update({"SeriesInstanceUID": series_uid, "SOPInstanceUID": sop_uid,
                               "frameNumber": None})
        self.annotations.append(annotation)

    def document(self) -> dict:
        return {
            "id": self.ids.short("P", self.name), "createdAt": _stamp(0), "updatedAt": _stamp(self.clock),
            "name": self.name, "description": "ricord-bench synthetic export", "isPrivate": True,
            "labelGroups": self.groups,
            "datasets": [{
                "id": self.ids.short("D", self.name), "type": "DICOM", "createdAt": _stamp(0),
                "updatedAt": _stamp(self.clock), "name": "Dataset", "description": None,
                "studies": self.studies, "annotations": self.annotations,
            }],
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


def _clinical_frame(collection: str, rows: list[dict]) -> pd.DataFrame:
    """The sheet's columns as the real sheets have them.

    1c (``CR Pos - TCIA Submission``): ``Anon MRN``, ``Anon TCIA Study Date`` (an Excel date
    cell), ``Anon Exam Description``, ``Anon Study UID``, then sex and age. 1a/1b: a header
    containing ``Study UID`` (with a stray space) and a ``Result`` column holding RT-PCR
    ``DETECTED`` / ``NOT DETECTED``.
    """
    if collection == "MIDRC-RICORD-1C":
        return pd.DataFrame({
            "Anon MRN": [s["mrn"] for s in rows],
            "Anon TCIA Study Date": [dt.datetime.combine(s["date_obj"], dt.time()) for s in rows],
            "Anon Exam Description": [s["description"] or "NA" for s in rows],
            "Anon Study UID": [s["study_uid"] for s in rows],
            "Anon Sex": [s["sex"] for s in rows],
            "Anon Age": [s["age"] for s in rows],
        })
    return pd.DataFrame({
        "Anon MRN": [s["mrn"] for s in rows],
        "Anon TCIA Study Date": [f"{s['date_obj'].month}/{s['date_obj'].day}/{s['date_obj'].year}"
                                 for s in rows],
        "Anon Exam Description": [s["description"] or "NA" for s in rows],
        "Anon Study UID ": [s["study_uid"] for s in rows],
        "Age": [s["age"] for s in rows],
        "Sex": [s["sex"] for s in rows],
        "Result": ["NOT DETECTED" if collection == "MIDRC-RICORD-1B" else "DETECTED" for _ in rows],
        "Test Name": ["SARS-CoV-2 RT-PCR" for _ in rows],
    })


def write_clinical(root: Path, studies: list[dict]) -> list[Path]:
    """Each collection's clinical sheet as xlsx (the real file name and sheet) and a csv export."""
    paths = []
    for collection, (stem, sheet) in CLINICAL_FILES.items():
        frame = _clinical_frame(collection, [s for s in studies if s["collection"] == collection])
        buffer = io.BytesIO()
        with pd.ExcelWriter(buffer, engine="openpyxl") as excel:
            frame.to_excel(excel, sheet_name=sheet, index=False)
        xlsx = root / f"{stem}.xlsx"
        xlsx.write_bytes(normalized_xlsx(buffer.getvalue()))
        csv = root / f"{stem.strip()}.csv"
        text = frame.to_csv(index=False, lineterminator="\n", float_format="%.2f", date_format="%m/%d/%Y")
        csv.write_text(text, encoding="utf-8")
        paths += [xlsx, csv]
    return paths
