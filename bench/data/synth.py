"""The synthetic RICORD collection, written in the real on-disk formats.

``synthesize(out_dir, seed=...)`` writes what a TCIA download of 1a + 1b + 1c looks like,
so that the demo and the tests go through the real ingest path:

- ``metadata.csv`` (NBIA columns) and ``MIDRC-RICORD-1A|1B|1C/<PatientID>/<study>/<series>/1-NNN.dcm``
  in the NBIA retriever's "descriptive" layout; CT with real geometry tags and HU phantoms
  (body, lungs, vessels, ground-glass ~-700 HU and consolidation -100..+40 HU lesions),
  extra series that ingest must ignore (scout, coronal reformat), one series whose file
  names and instance numbers are shuffled against position, alternating slice directions;
  CR/DX radiographs, MONOCHROME1 and MONOCHROME2, some studies with an extra lateral view.
- ``annotations/MIDRC-RICORD-1a_annotations_labelgroup_all_2020-Dec-8.json`` (freeform
  polygons traced slice by slice from the true lesions, one or two readers, study labels,
  a few null-data rows) and
  ``annotations/1c_mdai_rsna_project_MwBeK3Nr_annotations_labelgroup_all_2021-01-08-164102.json``
  (three readers' appearance and severity labels, with ties).
- ``clinical/*.xlsx`` and ``.csv`` with RICORD's column names (``Anon MRN``, ``Anon Study UID``,
  ``Result``, ``Age``, ``Sex``, ...).
- ``truth/<StudyInstanceUID>.npz``: the generator's true lesion masks in array order
  (tests only; nothing in the harness reads it).

Deterministic: UIDs are derived from the seed under the RSNA root
``1.2.826.0.1.3680043.10.474``, dates are fixed, and no wall-clock value is written, so the
same seed gives byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.synth_dicom import SOP_CLASS_NAMES, CtSeriesWriter, write_radiograph
from bench.data.synth_phantom import (
    LESION_LABELS,
    ct_slice,
    radiograph,
    random_lesions,
    random_vessels,
    trace_polygons,
)
from bench.errors import DataError
from bench.io import atomic_directory

UID_ROOT = "1.2.826.0.1.3680043.10.474"
ANNOTATIONS_1A = "MIDRC-RICORD-1a_annotations_labelgroup_all_2020-Dec-8.json"
ANNOTATIONS_1C = "1c_mdai_rsna_project_MwBeK3Nr_annotations_labelgroup_all_2021-01-08-164102.json"
CLINICAL_FILES = {
    "MIDRC-RICORD-1A": ("MIDRC-RICORD-1a-Clinical-Data-Jan-13-2021", "CT Pos - TCIA Submission"),
    "MIDRC-RICORD-1B": ("MIDRC-RICORD-1b-Clinical-Data-Feb-2021", "CT Neg - TCIA Submission"),
    "MIDRC-RICORD-1C": ("MIDRC-RICORD-1c Clinical Data Jan 13 2021 ", "CR Pos - TCIA Submission"),
}
DOWNLOAD_TIMESTAMP = "2021-02-01T12:00:00.000"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_BASE_DATE = dt.date(2020, 3, 2)
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

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class SizePreset:
    """Matrix sizes and case counts of one synthetic size."""

    ct_shape: tuple[int, int, int]
    cxr_shape: tuple[int, int]
    n_1a: int
    n_1b: int
    n_1c: int
    slice_mm: tuple[float, ...]
    noise_hu: float
    fov_mm: float = 350.0


SIZES = {
    "tiny": SizePreset(
        ct_shape=(12, 48, 48),
        cxr_shape=(64, 64),
        n_1a=6,
        n_1b=4,
        n_1c=12,
        slice_mm=(10.0, 12.0, 8.0),
        noise_hu=15.0,
    ),
    "small": SizePreset(
        ct_shape=(24, 64, 64),
        cxr_shape=(128, 128),
        n_1a=24,
        n_1b=24,
        n_1c=60,
        slice_mm=(10.0, 12.0, 8.0),
        noise_hu=15.0,
    ),
    "full": SizePreset(
        ct_shape=(220, 512, 512),
        cxr_shape=(1024, 1024),
        n_1a=3,
        n_1b=1,
        n_1c=4,
        slice_mm=(1.25, 1.5, 1.0),
        noise_hu=20.0,
    ),
}


@dataclass(frozen=True)
class SynthReport:
    """What :func:`synthesize` wrote."""

    out_dir: Path
    seed: int
    size: str
    studies: dict
    n_dicom_files: int
    annotations: tuple[Path, ...]
    clinical: tuple[Path, ...]
    truth_dir: Path


class _Ids:
    """Seed-derived UIDs (RSNA root, site code for numeric sites) and MD.ai-style ids."""

    def __init__(self, seed: int):
        self.seed = seed

    def _digest(self, parts) -> int:
        text = "|".join(str(p) for p in (self.seed, *parts))
        return int(hashlib.sha256(text.encode()).hexdigest(), 16)

    def uid(self, site: str, *parts) -> str:
        number = self._digest(parts) % (9 * 10**29) + 10**29
        return f"{UID_ROOT}.{site}.{number}" if site.isdigit() else f"{UID_ROOT}.{number}"

    def short(self, prefix: str, *parts) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        number, chars = self._digest(parts), []
        for _ in range(8):
            number, rest = divmod(number, len(alphabet))
            chars.append(alphabet[rest])
        return f"{prefix}_{''.join(chars)}"


def _spread(n: int, fractions: dict[str, float]) -> list[str]:
    """n values with the given fractions, at least one of each when n allows."""
    counts = {k: max(1 if n >= len(fractions) else 0, int(round(f * n))) for k, f in fractions.items()}
    first = next(iter(counts))
    counts[first] += n - sum(counts.values())
    return [k for k, c in counts.items() for _ in range(c)]


def _plan_studies(
    rng: np.random.Generator, ids: _Ids, collection: str, sites: list[str], n: int
) -> list[dict]:
    n_double = max(1, n // 6) if n >= 2 else 0
    numbers = rng.choice(np.arange(1, 999_999), size=n - n_double, replace=False)
    tag = collection[-2:]
    studies = []
    for i, number in enumerate(numbers):
        site = sites[i % len(sites)]
        mrn = f"{site}-{int(number):06d}"
        patient = {
            "patient_id": f"{collection}-{mrn}",
            "mrn": mrn,
            "site": site,
            "collection": collection,
            "sex": "MF"[(i // len(sites)) % 2],
            "age": round(float(rng.uniform(25, 90)), 2),
        }
        first = _BASE_DATE + dt.timedelta(days=int(rng.integers(0, 300)))
        visits = [first] + ([first + dt.timedelta(days=int(rng.integers(14, 60)))] if i < n_double else [])
        for v, date in enumerate(visits):
            study = dict(
                patient,
                date_obj=date,
                date=date.strftime("%Y%m%d"),
                age=round(patient["age"] + (date - first).days / 365.25, 2),
            )
            study["study_uid"] = ids.uid(site, tag, "study", mrn, v)
            studies.append(study)
    return studies


def _folder(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9 ._()-]", "_", text) if text else "NA"


def _study_dir(study: dict) -> Path:
    date = study["date_obj"].strftime("%m-%d-%Y")
    return Path(
        study["collection"],
        study["patient_id"],
        f"{date}-NA-{_folder(study['description'])}-{study['study_uid'][-5:]}",
    )


def _series_dir(study: dict, series: dict) -> Path:
    return (
        _study_dir(study)
        / f"{series['number']}.000000-{_folder(series['description'])}-{series['series_uid'][-5:]}"
    )


def _file_name(number: int, total: int) -> str:
    return f"1-{number:0{max(3, len(str(total)))}d}.dcm"


class _Writer:
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
                "File Location": "./" + _series_dir(study, series).as_posix(),
                "Download Timestamp": DOWNLOAD_TIMESTAMP,
            }
        )


def _stored(hu: np.ndarray, intercept: float, signed: bool) -> np.ndarray:
    values = np.round(hu - intercept)
    if signed:
        return np.clip(values, -32768, 32767).astype(np.int16)
    return np.clip(values, 0, 65535).astype(np.uint16)


def _write_ct(
    writer: _Writer, ids: _Ids, study: dict, preset: SizePreset, rng: np.random.Generator, index: int
) -> dict:
    """Write a CT study (axial series + extras); return the truth and the slice SOP UIDs."""
    nz, ny, nx = preset.ct_shape
    pixel_mm = preset.fov_mm / nx
    slice_mm = preset.slice_mm[index % len(preset.slice_mm)]
    signed = study["site"] == "660042"
    intercept = 0.0 if signed else -1024.0
    origin = (
        -preset.fov_mm / 2 + pixel_mm / 2,
        -preset.fov_mm / 2 + 20.0 + pixel_mm / 2,
        -float(rng.uniform(100, 300)),
    )
    tag = study["collection"][-2:]
    series = {
        "series_uid": ids.uid(study["site"], tag, "series", study["study_uid"], 2),
        "number": 2,
        "description": "ROUTINE CHEST NON-CON",
        "modality": "CT",
    }
    directory = writer.root / _series_dir(study, series)
    directory.mkdir(parents=True)
    vessels = random_vessels(rng)
    lesions = study.get("lesions", [])
    sop_uids = [ids.uid(study["site"], tag, "sop", series["series_uid"], k) for k in range(nz)]
    # Instance numbers: head-first listing (instance 1 = top) for odd studies, one shuffled series.
    numbers = np.arange(1, nz + 1)
    if index % 2 == 1:
        numbers = numbers[::-1]
    if study.get("shuffled"):
        numbers = rng.permutation(numbers)
    truth = {label: np.zeros((nz, ny, nx), dtype=bool) for label in LESION_LABELS}
    volume_rows = np.zeros((nz, nx), dtype=np.float32)
    frame_uid = ids.uid(study["site"], tag, "frame", study["study_uid"])
    n_bytes = 0
    coronal_planes = np.linspace(ny * 0.3, ny * 0.7, 8).astype(int)
    coronal = np.zeros((len(coronal_planes), nz, nx), dtype=np.float32)
    axial = CtSeriesWriter(
        study,
        series,
        orientation=(1, 0, 0, 0, 1, 0),
        spacing_yx=(pixel_mm, pixel_mm),
        thickness_mm=slice_mm,
        intercept=intercept,
        signed=signed,
        shape_yx=(ny, nx),
        image_type="ORIGINAL\\PRIMARY\\AXIAL",
        frame_uid=frame_uid,
    )
    for k in range(nz):
        hu, slice_truth = ct_slice((k + 0.5) / nz, (ny, nx), vessels, lesions, rng, noise_hu=preset.noise_hu)
        for label, mask in slice_truth.items():
            truth[label][k] = mask
        volume_rows[k] = hu.mean(axis=0)
        coronal[:, k, :] = hu[coronal_planes, :]
        position = (origin[0], origin[1], origin[2] + k * slice_mm)
        n_bytes += axial.write(
            directory / _file_name(int(numbers[k]), nz),
            sop_uid=sop_uids[k],
            instance=int(numbers[k]),
            stored=_stored(hu, intercept, signed),
            position=position,
        )
    writer.series_done(study, series, "1.2.840.10008.5.1.4.1.1.2", nz, n_bytes)
    top = origin[2] + (nz - 1) * slice_mm
    if index % 2 == 0:  # a scout (localizer): AP projection, coronal orientation
        scout = {
            "series_uid": ids.uid(study["site"], tag, "series", study["study_uid"], 1),
            "number": 1,
            "description": "SCOUT",
            "modality": "CT",
        }
        sdir = writer.root / _series_dir(study, scout)
        sdir.mkdir(parents=True)
        scout_writer = CtSeriesWriter(
            study,
            scout,
            orientation=(1, 0, 0, 0, 0, -1),
            spacing_yx=(slice_mm, pixel_mm),
            thickness_mm=slice_mm,
            intercept=intercept,
            signed=signed,
            shape_yx=(nz, nx),
            image_type="ORIGINAL\\PRIMARY\\LOCALIZER",
            frame_uid=frame_uid,
        )
        size = scout_writer.write(
            sdir / _file_name(1, 1),
            sop_uid=ids.uid(study["site"], tag, "sop", scout["series_uid"], 0),
            instance=1,
            stored=_stored(volume_rows[::-1], intercept, signed),
            position=(origin[0], 0.0, top),
        )
        writer.series_done(study, scout, "1.2.840.10008.5.1.4.1.1.2", 1, size)
    if index % 3 == 0:  # a coronal reformat
        cor = {
            "series_uid": ids.uid(study["site"], tag, "series", study["study_uid"], 3),
            "number": 3,
            "description": "COR 3X3",
            "modality": "CT",
        }
        cdir = writer.root / _series_dir(study, cor)
        cdir.mkdir(parents=True)
        size = 0
        cor_writer = CtSeriesWriter(
            study,
            cor,
            orientation=(1, 0, 0, 0, 0, -1),
            spacing_yx=(slice_mm, pixel_mm),
            thickness_mm=3.0,
            intercept=intercept,
            signed=signed,
            shape_yx=(nz, nx),
            image_type="DERIVED\\SECONDARY\\REFORMATTED",
            frame_uid=frame_uid,
        )
        for p, plane in enumerate(coronal_planes):
            size += cor_writer.write(
                cdir / _file_name(p + 1, len(coronal_planes)),
                sop_uid=ids.uid(study["site"], tag, "sop", cor["series_uid"], p),
                instance=p + 1,
                stored=_stored(coronal[p][::-1], intercept, signed),
                position=(origin[0], origin[1] + plane * pixel_mm, top),
            )
        writer.series_done(study, cor, "1.2.840.10008.5.1.4.1.1.2", len(coronal_planes), size)
    affine = np.eye(4)
    affine[:3, 0] = (0, 0, slice_mm)
    affine[:3, 1] = (0, pixel_mm, 0)
    affine[:3, 2] = (pixel_mm, 0, 0)
    affine[:3, 3] = origin
    return {
        "series_uid": series["series_uid"],
        "sop_uids": sop_uids,
        "truth": truth,
        "spacing_mm": (slice_mm, pixel_mm, pixel_mm),
        "affine": affine,
        "shape": (ny, nx),
    }


def _write_cxr(
    writer: _Writer, ids: _Ids, study: dict, preset: SizePreset, rng: np.random.Generator, index: int
) -> None:
    site = study["site"]
    modality = {"419639": "CR", "440808": "DX"}.get(site, "CR" if index % 4 < 2 else "DX")
    photometric = "MONOCHROME1" if index % 2 == 0 else "MONOCHROME2"
    pixel_mm = 400.0 / preset.cxr_shape[1]
    opacities = {"": 0, "mild": 1, "moderate": 3, "severe": 5}[study["grade"]]
    views = [("AP" if index % 3 else "PA", False)] + ([("LL", True)] if index % 5 == 1 else [])
    for number, (view, lateral) in enumerate(views, start=1):
        series = {
            "series_uid": ids.uid(site, "1C", "series", study["study_uid"], number),
            "number": number,
            "description": "LATERAL" if lateral else "",
            "modality": modality,
        }
        directory = writer.root / _series_dir(study, series)
        directory.mkdir(parents=True)
        density = radiograph(preset.cxr_shape, rng, opacities=0 if lateral else opacities, lateral=lateral)
        size = write_radiograph(
            directory / _file_name(1, 1),
            study,
            series,
            sop_uid=ids.uid(site, "1C", "sop", series["series_uid"], 0),
            density=density,
            photometric=photometric,
            spacing_yx=(pixel_mm, pixel_mm),
            view=view,
        )
        sop_class = "1.2.840.10008.5.1.4.1.1.1" if modality == "CR" else "1.2.840.10008.5.1.4.1.1.1.1"
        writer.series_done(study, series, sop_class, 1, size)


class _Export:
    """Builds one MD.ai export document."""

    def __init__(
        self, ids: _Ids, name: str, groups: list[str], labels: list[tuple[str, str, str | None, str]]
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


def _normalized_xlsx(data: bytes) -> bytes:
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


def _write_clinical(root: Path, studies: list[dict]) -> list[Path]:
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
        xlsx.write_bytes(_normalized_xlsx(buffer.getvalue()))
        csv = root / f"{stem.strip()}.csv"
        csv.write_text(frame.to_csv(index=False, lineterminator="\n", float_format="%.2f"), encoding="utf-8")
        paths += [xlsx, csv]
    return paths


def _plan_1a(rng, studies: list[dict], readers: list[tuple[str, str]]) -> None:
    appearances = _spread(
        len(studies), {"typical": 0.5, "indeterminate": 0.2, "atypical": 0.15, "negative": 0.15}
    )
    rng.shuffle(appearances)
    counter = 0
    for i, study in enumerate(studies):
        study["description"] = "CT CHEST WITHOUT CONTRAST"
        study["appearance"] = appearances[i]
        study["readers"] = [readers[i % len(readers)]]
        if i % 3 == 1:
            study["readers"].append(readers[(i + 1) % len(readers)])
        study["shuffled"] = i == 1
        labels = []
        if appearances[i] != "negative":
            for _ in range(int(rng.integers(1, 4))):
                if counter < len(LESION_LABELS):
                    labels.append(LESION_LABELS[counter])
                else:
                    labels.append(
                        "Infectious opacity" if rng.random() < 0.6 else str(rng.choice(LESION_LABELS))
                    )
                counter += 1
        study["lesions"] = random_lesions(rng, len(labels), labels)


def _plan_1c(rng, studies: list[dict]) -> None:
    appearances = _spread(
        len(studies), {"typical": 0.4, "indeterminate": 0.25, "atypical": 0.15, "negative": 0.2}
    )
    rng.shuffle(appearances)
    grades = _spread(len(studies), {"mild": 0.4, "moderate": 0.35, "severe": 0.25})
    rng.shuffle(grades)
    order = ["negative", "atypical", "indeterminate", "typical"]
    for j, study in enumerate(studies):
        study["description"] = {"419639": "XR CHEST 1 VIEW AP", "440808": "CHEST 1V"}.get(study["site"], "")
        appearance = appearances[j]
        if j == 3 and appearance == "negative":
            appearance = "typical"
        grade = "" if appearance == "negative" else grades[j]
        votes = [[appearance, grade] for _ in range(3)]
        if j == 2:  # three-way appearance tie -> combined "indeterminate" (lower median)
            appearance = "indeterminate"
            grade = grade or "mild"
            votes = [["typical", grade], ["indeterminate", grade], ["atypical", grade]]
        elif j == 3:  # three-way grade tie -> combined "moderate"
            grade = "moderate"
            votes = [[appearance, "mild"], [appearance, "moderate"], [appearance, "severe"]]
        elif j == 4:  # only two readers, who disagree -> tie, lower of the two on the scale
            other = order[(order.index(appearance) + 1) % 4]
            votes = [[appearance, grade], [other, grade if other != "negative" else ""]]
            appearance = min(appearance, other, key=order.index)
            grade = grade if appearance != "negative" else ""
        elif j % 5 == 0:  # one dissenting reader
            other = order[(order.index(appearance) + 2) % 4]
            votes[2] = [other, "" if other == "negative" else (grade or "mild")]
        study["appearance"], study["grade"], study["votes"] = appearance, grade, votes
        study["changed_mind"] = j == 6


def synthesize(
    out_dir: str | os.PathLike, *, seed: int, size: str = "small", progress: Progress | None = None
) -> SynthReport:
    """Write the synthetic RICORD collection to ``out_dir`` (which must not exist or be empty).

    Parameters
    ----------
    out_dir : path
        Output folder; written atomically (a temporary folder renamed into place).
    seed : int
        Same seed, byte-identical files.
    size : {"tiny", "small", "full"}
        ``small`` (default): 24 1a + 24 1b CT studies at 64x64x24 and 60 1c radiographs at
        128x128, enough for stratified 3-way splits of every task (demo, integration
        tests). ``tiny``: 6 + 4 CT studies at 48x48x12 and 12 radiographs (fast unit tests).
        ``full``: 3 1a + 1 1b CT studies at 512x512x220 and 4 radiographs at 1024x1024
        (benchmarks).
    progress : callable, optional
        ``progress(done, total, description)`` per study.

    Raises
    ------
    DataError
        Unknown size, or ``out_dir`` exists and is not empty.
    """
    if size not in SIZES:
        raise DataError(f"unknown synthetic size {size!r}; choose one of {sorted(SIZES)}.")
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir() or any(out_dir.iterdir()):
            raise DataError(f"{out_dir}: exists and is not empty; pass a new --out folder or delete it.")
        out_dir.rmdir()
    preset = SIZES[size]
    rng = np.random.default_rng(seed)
    ids = _Ids(seed)
    studies_1a = _plan_studies(rng, ids, "MIDRC-RICORD-1A", ["419639", "660042"], preset.n_1a)
    studies_1b = _plan_studies(rng, ids, "MIDRC-RICORD-1B", ["419639"], preset.n_1b)
    studies_1c = _plan_studies(rng, ids, "MIDRC-RICORD-1C", ["419639", "440808", "SITE2"], preset.n_1c)
    readers_1a = [
        ("Team 1", ids.short("U", "1a", 1)),
        ("Team 2", ids.short("U", "1a", 2)),
        ("Team 1", ids.short("U", "1a", 3)),
    ]
    _plan_1a(rng, studies_1a, readers_1a)
    for study in studies_1b:
        study["description"] = "CT CHEST HIGH RESOLUTION"
    _plan_1c(rng, studies_1c)
    total = len(studies_1a) + len(studies_1b) + len(studies_1c)
    with atomic_directory(out_dir) as tmp:
        writer = _Writer(tmp)
        truth_dir = tmp / "truth"
        truth_dir.mkdir()
        export_1a = _Export(
            ids,
            "MIDRC-RICORD-1a",
            ["Team 1", "Team 2"],
            [
                *[(name, "INSTANCE", "freeform", "LOCAL") for name in LESION_LABELS],
                *[(name, "STUDY", None, "GLOBAL") for name in APPEARANCE_1A.values()],
                ("Infectious lung disease", "STUDY", None, "GLOBAL"),
                ("Emphysema", "STUDY", None, "GLOBAL"),
            ],
        )
        done = 0
        for i, study in enumerate(studies_1a + studies_1b):
            written = _write_ct(writer, ids, study, preset, rng, i)
            if study["collection"] == "MIDRC-RICORD-1A":
                _annotate_ct(export_1a, study, written, n_null=3 if i == 0 else 0)
                _save_truth(truth_dir, study, written)
            done += 1
            if progress is not None:
                progress(done, total, "writing CT studies")
        export_1c = _Export(
            ids,
            "MIDRC-RICORD-1c",
            ["Team 1", "Team 2", "Team 3"],
            [
                *[(name, "STUDY", None, "GLOBAL") for name in APPEARANCE_1C.values()],
                *[(name, "STUDY", None, "GLOBAL") for name in GRADE_1C.values()],
            ],
        )
        readers_1c = [(f"Team {r + 1}", ids.short("U", "1c", r)) for r in range(3)]
        for j, study in enumerate(studies_1c):
            _write_cxr(writer, ids, study, preset, rng, j)
            _annotate_cxr(export_1c, study, readers_1c)
            done += 1
            if progress is not None:
                progress(done, total, "writing radiographs")
        annotations = tmp / "annotations"
        annotations.mkdir()
        for name, export in ((ANNOTATIONS_1A, export_1a), (ANNOTATIONS_1C, export_1c)):
            (annotations / name).write_text(
                json.dumps(export.document(), separators=(",", ":")) + "\n", encoding="utf-8"
            )
        clinical = tmp / "clinical"
        clinical.mkdir()
        clinical_paths = _write_clinical(clinical, studies_1a + studies_1b + studies_1c)
        metadata = pd.DataFrame(writer.metadata).sort_values("File Location", kind="stable")
        (tmp / "metadata.csv").write_text(metadata.to_csv(index=False, lineterminator="\n"), encoding="utf-8")
        n_files = writer.n_files
    return SynthReport(
        out_dir=out_dir,
        seed=seed,
        size=size,
        studies={
            "MIDRC-RICORD-1A": len(studies_1a),
            "MIDRC-RICORD-1B": len(studies_1b),
            "MIDRC-RICORD-1C": len(studies_1c),
        },
        n_dicom_files=n_files,
        annotations=(out_dir / "annotations" / ANNOTATIONS_1A, out_dir / "annotations" / ANNOTATIONS_1C),
        clinical=tuple(out_dir / "clinical" / p.name for p in clinical_paths),
        truth_dir=out_dir / "truth",
    )


def _annotate_ct(export: _Export, study: dict, written: dict, *, n_null: int) -> None:
    export.studies.append({"StudyInstanceUID": study["study_uid"], "number": len(export.studies) + 1})
    series_uid, sop_uids, shape = written["series_uid"], written["sop_uids"], written["shape"]
    for r, (group, reader) in enumerate(study["readers"]):
        appearance = study["appearance"]
        if r == 1 and len(export.studies) % 4 == 0:  # a second reader who disagrees: tied study
            appearance = "indeterminate" if appearance != "indeterminate" else "typical"
        export.add(group, APPEARANCE_1A[appearance], reader, study)
        if r == 0 and len(export.studies) % 5 == 0:
            export.add(group, "Emphysema", reader, study)
        for label, mask in written["truth"].items():
            slices = np.flatnonzero(mask.any(axis=(1, 2)))
            if r == 1 and len(slices) >= 3:  # the second reader misses the end slices of each label
                slices = slices[1:-1]
            for k in slices:
                for vertices in trace_polygons(mask[k]):
                    export.add(
                        group,
                        label,
                        reader,
                        study,
                        series_uid=series_uid,
                        sop_uid=sop_uids[k],
                        data={"vertices": vertices.tolist()},
                        shape=shape,
                    )
    group, reader = study["readers"][0]
    for k in range(n_null):
        export.add(
            group,
            LESION_LABELS[0],
            reader,
            study,
            series_uid=series_uid,
            sop_uid=sop_uids[k],
            data=None,
            shape=shape,
        )


def _save_truth(truth_dir: Path, study: dict, written: dict) -> None:
    labels = sorted(label for label, mask in written["truth"].items() if mask.any())
    stack = (
        np.stack([written["truth"][label] for label in labels])
        if labels
        else np.zeros((0, len(written["sop_uids"]), *written["shape"]), dtype=bool)
    )
    np.savez_compressed(
        truth_dir / f"{study['study_uid']}.npz",
        labels=np.array(labels, dtype=str),
        masks=stack,
        union=stack.any(axis=0)
        if labels
        else np.zeros((len(written["sop_uids"]), *written["shape"]), dtype=bool),
        sop_uids=np.array(written["sop_uids"], dtype=str),
        series_uid=np.array(written["series_uid"]),
        spacing_mm=np.array(written["spacing_mm"]),
        affine_lps=written["affine"],
        readers=np.array([reader for _, reader in study["readers"]], dtype=str),
    )


def _annotate_cxr(export: _Export, study: dict, readers: list[tuple[str, str]]) -> None:
    export.studies.append({"StudyInstanceUID": study["study_uid"], "number": len(export.studies) + 1})
    for (group, reader), (appearance, grade) in zip(readers, study["votes"], strict=False):
        if study["changed_mind"] and group == "Team 1":
            wrong = "atypical" if appearance != "atypical" else "typical"
            export.add(group, APPEARANCE_1C[wrong], reader, study)
        export.add(group, APPEARANCE_1C[appearance], reader, study)
        if grade:
            export.add(group, GRADE_1C[grade], reader, study)
