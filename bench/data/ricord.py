"""A RICORD download (DICOM tree + MD.ai export + clinical sheet) -> the case manifest.

A case is one study. Rules, in the order they are applied:

- Instances are grouped by StudyInstanceUID read from the headers (never folder names).
- Collection: the ``MIDRC-RICORD-1A|1B|1C`` prefix of PatientID, else the ``Collection``
  column of an NBIA ``metadata.csv`` (at the root or one level below), else TCIA's private
  tag (0013,1010). Studies with none of these are skipped.
- Site: the ``<site>`` of ``MIDRC-RICORD-1x-<site>-<nnnnnn>``, else the UID component after
  the RSNA root ``1.2.826.0.1.3680043.10.474``, else ``unknown``.
- CT: the series holding the most annotated slices; without annotations the axial,
  non-localizer series with the most slices (then lowest SeriesNumber, then UID). Its
  geometry is checked from the headers: exact duplicates (same position, same pixels) are
  dropped and counted; spacing that varies within the tolerance of
  :data:`bench.data.dicom.SPACING_ATOL_MM` + :data:`~bench.data.dicom.SPACING_RTOL` x the
  median gap is accepted and counted; a missing slice, a gap beyond it, or two different
  slices at one position skip the study with the reason (``counts["geometry"]``).
- Radiographs: among single-frame CR/DX images that are not lateral views (ViewPosition
  LL/RL/LATERAL; never a case image), AP/PA views first, then lowest SeriesNumber,
  InstanceNumber, SOPInstanceUID.
- Labels: covid by collection (1A, 1C positive; 1B negative), cross-checked against the
  clinical RT-PCR result (a mismatch is a warning); appearance and grade by the reading
  protocol (:mod:`bench.data.protocol`: one vote per reader label group, adjudication decides,
  the Default group is no reader). A study the protocol finds invalid (``Invalid Study`` from
  the adjudicator or most readers) is skipped with that reason; each reader group's labels go
  to the reader table (``<manifest stem>.readers.csv``).
- Demographics: clinical sheet first, else the DICOM PatientAge / PatientSex.
- ``case_id``: ``<PatientID>-<last 8 digits of StudyInstanceUID>`` (all digits when that
  would collide), with characters outside ``[A-Za-z0-9._-]`` replaced by ``_``.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from bench.data.clinical import clinical_files, read_clinical
from bench.data.dicom import (
    CtVolume,
    Radiograph,
    SeriesOrder,
    duplicate_slices,
    load_ct_series,
    load_radiograph,
    order_slices,
    radiograph_spacing,
    scan_headers,
    slice_normal,
)
from bench.data.manifest import MANIFEST_COLUMNS, write_manifest
from bench.data.mdai import MdaiExport, merge_exports, outside_image, rasterize_case, read_exports
from bench.data.protocol import READER_COLUMNS, apply_protocol, reader_labels
from bench.errors import DataError, DicomError
from bench.io import SCHEMA_VERSION, write_csv, write_json
from bench.tasks import RICORD_PROTOCOL, ReadingProtocol
from bench.trees import claim_files, record_files

log = logging.getLogger(__name__)

COLLECTIONS = ("MIDRC-RICORD-1A", "MIDRC-RICORD-1B", "MIDRC-RICORD-1C")
RSNA_UID_ROOT = "1.2.826.0.1.3680043.10.474"
_PATIENT_RE = re.compile(r"^(MIDRC-RICORD-1[ABC])-(.+)-(\d+)$", re.IGNORECASE)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_RADIOGRAPH = ("CR", "DX")
LATERAL_VIEWS = frozenset({"LL", "RL", "LATERAL", "LAT"})


#: Kinds of skipped items, matched in this order against the reason text.
SKIP_KINDS = (
    ("not a DICOM file", "not a DICOM file"),
    ("truncated DICOM file", "truncated DICOM file"),
    ("no PixelData element", "missing PixelData"),
    ("data.vertices must be", "malformed annotation"),
    ("polygon without SOPInstanceUID", "malformed annotation"),
    ("unreadable or truncated DICOM header", "unreadable or truncated DICOM header"),
    ("DICOM header lacks", "DICOM header lacks instance UIDs"),
    ("duplicate SOPInstanceUID", "duplicate SOPInstanceUID"),
    ("collection unknown", "collection unknown"),
    ("invalid study", "invalid study (reading protocol)"),
    ("missing slice", "missing slice"),
    ("uneven slice spacing", "uneven slice spacing"),
    ("share the position", "duplicate slice positions"),
    ("different PixelSpacing", "mixed PixelSpacing in a series"),
    ("is incomplete", "annotated slices missing from the series"),
    ("annotated SOPInstanceUID not in the download", "annotated SOPInstanceUID not in the download"),
    ("annotated study not in the download", "annotated study not in the download"),
    ("null data", "annotation with null data"),
    ("no usable CT series", "no usable CT series"),
    ("no single-frame grayscale", "no usable radiograph"),
    ("no PixelSpacing", "no PixelSpacing"),
)


def skip_kind(reason: str) -> str:
    """A short, stable category for a skip reason (for summaries)."""
    for needle, kind in SKIP_KINDS:
        if needle in reason:
            return kind
    return "other"


@dataclass(frozen=True, eq=False)
class IndexReport:
    """What :func:`index_download` found.

    ``manifest``: the case table (:data:`bench.data.manifest.MANIFEST_COLUMNS`).
    ``skipped``: (path or UID, reason) for every file, study or annotation left out.
    ``ignored``: (series UID, reason) for series present but not used (scouts, reformats).
    ``warnings``: inconsistencies that did not drop anything. ``counts``: totals, and under
    ``reading`` the protocol's outcomes over the cases. ``readers``: the reader table
    (:data:`bench.data.protocol.READER_COLUMNS`) of every annotated study in the download.
    """

    manifest: pd.DataFrame
    skipped: tuple[tuple[str, str], ...]
    ignored: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = ()
    counts: dict = field(default_factory=dict)
    readers: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(READER_COLUMNS)))

    def skipped_by_kind(self) -> dict[str, list[str]]:
        """Skipped items grouped by :func:`skip_kind`, most frequent kind first."""
        groups: dict[str, list[str]] = {}
        for item, reason in self.skipped:
            groups.setdefault(skip_kind(reason), []).append(item)
        return dict(sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])))

    def to_dict(self) -> dict:
        """JSON-ready form (schema_version, counts, skipped, ignored, warnings)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "counts": dict(self.counts),
            "skipped": [
                {"item": item, "kind": skip_kind(reason), "reason": reason} for item, reason in self.skipped
            ],
            "ignored": [{"item": item, "reason": reason} for item, reason in self.ignored],
            "warnings": list(self.warnings),
        }

    def write(self, manifest_path: str | os.PathLike) -> Path:
        """Write the manifest CSV and, beside it, ``<stem>.readers.csv`` (each reader group's
        labels per study) and ``<stem>.report.json``; return the report's path.

        All are written atomically, the report last, so a reader never sees a manifest
        without its report's account of what was skipped. An existing file is replaced only when
        the harness wrote it (:func:`bench.trees.claim_files`); otherwise nothing is written.

        Raises
        ------
        OutputExistsError
            One of the three files exists and is not one the harness wrote.
        """
        manifest_path = Path(manifest_path)
        report_path = manifest_path.with_name(manifest_path.stem + ".report.json")
        readers_path = manifest_path.with_name(manifest_path.stem + ".readers.csv")
        claim_files([manifest_path, readers_path, report_path])
        write_manifest(self.manifest, manifest_path)
        write_csv(readers_path, self.readers)
        write_json(report_path, self.to_dict())
        record_files([manifest_path, readers_path, report_path])
        return report_path


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, str | os.PathLike):
        return [value]
    return list(value)


def parse_patient_id(patient_id: str) -> tuple[str | None, str | None]:
    """(collection, site) from ``MIDRC-RICORD-1x-<site>-<nnnnnn>``, or (None, None)."""
    match = _PATIENT_RE.match(patient_id.strip())
    if not match:
        return None, None
    return match.group(1).upper(), match.group(2)


def site_from_uid(uid: str) -> str | None:
    """The site code that follows the RSNA anonymizer root in a UID, if any."""
    if not uid.startswith(RSNA_UID_ROOT + "."):
        return None
    parts = uid[len(RSNA_UID_ROOT) + 1 :].split(".")
    return parts[0] if len(parts) > 1 and len(parts[0]) == 6 else None


def _metadata_collections(root: Path, warnings: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for path in sorted([root / "metadata.csv", *root.glob("*/metadata.csv")]):
        if not path.is_file():
            continue
        try:
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            warnings.append(f"{path}: unreadable NBIA metadata.csv ignored ({error})")
            continue
        if {"Series UID", "Collection"} <= set(table.columns):
            mapping.update(
                zip(table["Series UID"].str.strip(), table["Collection"].str.strip().str.upper(), strict=True)
            )
        else:
            warnings.append(f"{path}: no 'Series UID'/'Collection' columns; ignored")
    return mapping


def case_id_for(patient_id: str, study_uid: str, *, full: bool = False) -> str:
    """``<PatientID>-<last 8 digits of the StudyInstanceUID>`` (all digits when ``full``)."""
    digits = re.sub(r"\D", "", study_uid)
    return _UNSAFE.sub("_", f"{patient_id}-{digits if full else digits[-8:]}")


def case_ids(patient_ids: Sequence[str], study_uids: Sequence[str]) -> list[str]:
    """:func:`case_id_for` of each study, with all UID digits for the ids that would collide."""
    short = [case_id_for(p, s) for p, s in zip(patient_ids, study_uids, strict=True)]
    clash = pd.Series(short).duplicated(keep=False).to_numpy()
    return [case_id_for(p, s, full=c) for p, s, c in zip(patient_ids, study_uids, clash, strict=True)]


def _is_axial(orientation) -> bool:
    return orientation is not None and len(orientation) == 6 and abs(slice_normal(orientation)[2]) > 0.9


def series_summary(instances: pd.DataFrame) -> dict[str, dict]:
    """Per series UID: modality, lowest SeriesNumber, instance count, axial, localizer, description."""
    summary: dict[str, dict] = {}
    columns = ["series_uid", "modality", "series_number", "orientation", "image_type", "series_description"]
    for uid, modality, number, orientation, image_type, description in instances[columns].itertuples(
        index=False
    ):
        entry = summary.get(uid)
        if entry is None:
            summary[uid] = {
                "modality": modality,
                "series_number": number,
                "n": 1,
                "axial": _is_axial(orientation),
                "localizer": "LOCALIZER" in image_type,
                "description": description,
            }
        else:
            entry["n"] += 1
            entry["series_number"] = min(entry["series_number"], number)
    return summary


def choose_ct_series(instances: pd.DataFrame, annotated: dict[str, int]) -> str | None:
    """Series UID to use for a CT study (see the module docstring); None when there is none.

    ``annotated``: number of annotated slices per series UID.
    """
    series = {uid: e for uid, e in series_summary(instances).items() if e["modality"] == "CT"}
    if any(annotated.get(uid, 0) for uid in series):
        return min(series, key=lambda uid: (-annotated.get(uid, 0), series[uid]["series_number"], uid))
    usable = [uid for uid, e in series.items() if e["axial"] and not e["localizer"] and e["n"] > 1]
    if not usable:
        return None
    return min(usable, key=lambda uid: (-series[uid]["n"], series[uid]["series_number"], uid))


def choose_radiograph(instances: pd.DataFrame) -> pd.Series | None:
    """Header row of the image to use for a radiograph study; None when there is none."""
    columns = [
        "modality",
        "number_of_frames",
        "photometric",
        "view_position",
        "series_number",
        "instance_number",
        "sop_uid",
    ]
    candidates = [
        ((view not in ("AP", "PA")), series_number, instance_number, sop, index)
        for index, modality, frames, photometric, view, series_number, instance_number, sop in instances[
            columns
        ].itertuples(index=True)
        if modality in _RADIOGRAPH and frames == 1 and photometric in ("MONOCHROME1", "MONOCHROME2")
        and view not in LATERAL_VIEWS
    ]
    if not candidates:
        return None
    return instances.loc[min(candidates)[-1]]


def _ordered_series(series_rows: pd.DataFrame) -> tuple[pd.DataFrame, SeriesOrder, dict[str, str]]:
    """The series' header rows in array order without exact duplicates, its geometry, and the
    dropped duplicates (dropped SOPInstanceUID -> kept one). Raises DicomError."""
    uid = str(series_rows.series_uid.iloc[0])
    if series_rows.position.isna().any() or series_rows.orientation.isna().any():
        raise DicomError(
            f"series {uid}: some slices lack ImagePositionPatient/ImageOrientationPatient; "
            "it cannot be stacked into a volume."
        )
    orientations = np.array(list(series_rows.orientation), dtype=float)
    if not np.allclose(orientations, orientations[0], atol=1e-4):
        raise DicomError(
            f"series {uid}: slices have different ImageOrientationPatient; it is not one stack. "
            "Remove the odd files or re-download the series."
        )
    spacings = sorted({tuple(round(float(v), 4) for v in s) if s is not None and len(s) == 2 else None
                       for s in series_rows.pixel_spacing}, key=str)
    if len(spacings) > 1:  # caught here, at index time, not when prepare stacks every case
        raise DicomError(
            f"series {uid}: slices have different PixelSpacing {spacings}; one volume needs one "
            "in-plane grid. Remove the odd files or re-download the series."
        )
    aliases = duplicate_slices(list(series_rows.path), np.array(list(series_rows.position)),
                               series_rows.orientation.iloc[0], list(series_rows.sop_uid))
    kept = series_rows[~series_rows.sop_uid.isin(set(aliases))]
    geometry = order_slices(
        np.array(list(kept.position)),
        kept.orientation.iloc[0],
        sop_uids=list(kept.sop_uid),
        where=uid,
        slice_thickness_mm=float(kept.slice_thickness.iloc[0]),
    )
    return kept.iloc[geometry.order], geometry, aliases


def _fmt(values) -> str:
    return ",".join(f"{float(v):.6g}" for v in values)


def _dicom_age(text: str) -> float:
    match = re.match(r"^(\d{1,3})([YMWD]?)$", text.strip().upper())
    if not match:
        return np.nan
    scale = {"Y": 1.0, "": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}[match.group(2)]
    return round(int(match.group(1)) * scale, 2)


class _Indexer:
    """Builds the manifest study by study; collects skipped, ignored and warnings."""

    def __init__(self, root: Path, export: MdaiExport, clinical: pd.DataFrame, protocol: ReadingProtocol):
        self.root = root
        self.export = export
        self.protocol = protocol
        self.clinical = clinical.set_index("study_uid") if len(clinical) else None
        self.skipped: list[tuple[str, str]] = []
        self.ignored: list[tuple[str, str]] = []
        self.warnings: list[str] = []
        self.readers = reader_labels(export.annotations, protocol)
        self.decisions = apply_protocol(self.readers, protocol).set_index("study_uid")
        ann = export.annotations
        self.by_study = {uid: group for uid, group in ann.groupby("study_uid")}
        self.metadata: dict[str, str] = {}
        self.geometry: Counter = Counter()

    def collection(self, patient_id: str, instances: pd.DataFrame) -> str | None:
        collection, _ = parse_patient_id(patient_id)
        if collection:
            return collection
        for uid in instances.series_uid.unique():
            if self.metadata.get(uid) in COLLECTIONS:
                return self.metadata[uid]
        tags = {t.upper() for t in instances.tcia_collection if t}
        found = sorted(tags & set(COLLECTIONS))
        return found[0] if found else None

    def check_annotation_refs(self, instances: pd.DataFrame) -> dict[str, set[str]]:
        """List annotations that point outside the download; return missing SOPs per series."""
        ann = self.export.annotations
        studies = set(instances.study_uid)
        for uid, group in ann[~ann.study_uid.isin(studies)].groupby("study_uid"):
            self.skipped.append(
                (
                    uid,
                    f"annotated study not in the download ({len(group)} annotation(s) "
                    "ignored; withdrawn or not downloaded)",
                )
            )
        present = set(instances.sop_uid)
        polygons = ann[ann.study_uid.isin(studies) & (ann.sop_uid != "")]
        missing = polygons[~polygons.sop_uid.isin(present)]
        per_series: dict[str, set[str]] = {}
        for sop, group in missing.groupby("sop_uid"):
            series = group.series_uid.iloc[0]
            per_series.setdefault(series, set()).add(sop)
            self.skipped.append(
                (
                    sop,
                    f"annotated SOPInstanceUID not in the download (series {series}, "
                    f"{len(group)} annotation(s) ignored)",
                )
            )
        return per_series

    def check_vertices(self, instances: pd.DataFrame) -> int:
        """Warn, per study, of polygons with a vertex outside their slice (they are clipped when
        drawn, :func:`bench.data.mdai.clip_to_image`); return how many there are."""
        ann = self.export.annotations
        polygons = ann[ann.vertices.notna() & ann.sop_uid.isin(set(instances.sop_uid))]
        if polygons.empty:
            return 0
        size = instances.drop_duplicates("sop_uid").set_index("sop_uid")[["rows", "cols"]]
        outside: dict[str, list[str]] = {}
        for row in polygons.itertuples(index=False):
            rows, cols = size.loc[row.sop_uid]
            known = not pd.isna(rows) and not pd.isna(cols)
            if known and outside_image(row.vertices, (int(rows), int(cols))):
                outside.setdefault(row.study_uid, []).append(f"{row.annotation_id} ({row.label_name})")
        for study_uid, names in sorted(outside.items()):
            self.warnings.append(
                f"study {study_uid}: {len(names)} polygon(s) with vertices outside their slice, clipped to "
                f"the image when masks are drawn: {', '.join(names[:5])}{', ...' if len(names) > 5 else ''}")
        return sum(map(len, outside.values()))

    def labels(self, study_uid: str) -> dict:
        """The protocol's labels and outcomes of a study (no label and ``none`` when unread)."""
        if study_uid not in self.decisions.index:
            return {"appearance": "", "appearance_outcome": "none", "grade": "", "grade_outcome": "none",
                    "n_readers": 0, "invalid_flags": 0}
        decided = self.decisions.loc[study_uid]
        return {key: decided[key] for key in ("appearance", "appearance_outcome", "grade", "grade_outcome",
                                              "n_readers", "invalid_flags")}

    def demographics(self, study_uid: str, collection: str, instances: pd.DataFrame) -> dict:
        first = instances.iloc[0]
        age, sex, result = _dicom_age(first.patient_age), first.patient_sex.upper(), ""
        sex = sex if sex in ("M", "F") else ""
        if self.clinical is not None and study_uid in self.clinical.index:
            row = self.clinical.loc[study_uid]
            age = row.age if not pd.isna(row.age) else age
            sex = row.sex or sex
            result = row.covid_result
        covid = "negative" if collection == "MIDRC-RICORD-1B" else "positive"
        if result and result != covid:
            self.warnings.append(
                f"study {study_uid}: clinical RT-PCR result is {result} but the collection "
                f"{collection} is COVID-{covid}; the collection label is kept"
            )
        return {"age": float(age) if not pd.isna(age) else np.nan, "sex": sex, "covid": covid}

    def study(
        self, study_uid: str, instances: pd.DataFrame, missing_sops: dict[str, set[str]]
    ) -> dict | None:
        patients = sorted(set(instances.patient_id))
        patient_id = patients[0]
        if len(patients) > 1:
            self.warnings.append(f"study {study_uid}: several PatientIDs {patients}; {patient_id} used")
        collection = self.collection(patient_id, instances)
        if collection is None:
            self.skipped.append(
                (
                    study_uid,
                    f"collection unknown: PatientID {patient_id!r} has no "
                    "MIDRC-RICORD-1A/1B/1C prefix, and neither metadata.csv nor the "
                    "TCIA collection tag names one",
                )
            )
            return None
        _, site = parse_patient_id(patient_id)
        site = site or site_from_uid(study_uid) or "unknown"
        if study_uid in self.decisions.index and self.decisions.loc[study_uid, "excluded"]:
            reason = self.decisions.loc[study_uid, "excluded"]
            self.skipped.append((study_uid, f"{reason}; left out of every task"))
            return None
        annotations = self.by_study.get(study_uid)
        if collection == "MIDRC-RICORD-1C" or not (instances.modality == "CT").any():
            chosen = self._radiograph(study_uid, instances)
        else:
            chosen = self._ct(study_uid, instances, annotations, missing_sops)
        if chosen is None:
            return None
        series_uid, files, n_slices, spacing, modality = chosen
        for uid, entry in series_summary(instances).items():
            if uid != series_uid:
                description = entry["description"] or "no description"
                self.ignored.append(
                    (
                        uid,
                        f"study {study_uid}: not the case's series ({description}, {entry['n']} instance(s))",
                    )
                )
        directory = os.path.commonpath([str(Path(p).parent) for p in files.rel_path])
        row = {
            "case_id": "",
            "patient_id": patient_id,
            "collection": collection,
            "site": site,
            "modality": modality,
            "study_uid": study_uid,
            "series_uid": series_uid,
            "n_slices": int(n_slices),
            "rows": int(files.rows.iloc[0]),
            "cols": int(files.cols.iloc[0]),
            "spacing_mm": spacing,
            "n_annotations": 0 if annotations is None else len(annotations),
            "reading_protocol": self.protocol.sha256,
            "series_dir": Path(directory).as_posix(),
        }
        row.update(self.labels(study_uid))
        row.update(self.demographics(study_uid, collection, instances))
        return row

    def _radiograph(self, study_uid: str, instances: pd.DataFrame):
        image = choose_radiograph(instances)
        if image is None:
            self.skipped.append((study_uid, "no single-frame grayscale CR/DX image in the study other than "
                                 "lateral views (never a case image)"))
            return None
        spacing, source = radiograph_spacing(image.pixel_spacing, image.imager_pixel_spacing)
        if source == "assumed":
            self.warnings.append(
                f"study {study_uid}: image {image.sop_uid} has no usable pixel spacing; 1.0 mm assumed"
            )
        for sop in instances[
            (instances.series_uid == image.series_uid) & (instances.sop_uid != image.sop_uid)
        ].sop_uid:
            self.ignored.append((sop, f"study {study_uid}: other image of the chosen series"))
        return (
            image.series_uid,
            instances[instances.sop_uid == image.sop_uid],
            1,
            _fmt(spacing),
            image.modality,
        )

    def _ct(self, study_uid: str, instances: pd.DataFrame, annotations, missing_sops):
        annotated: dict[str, int] = {}
        if annotations is not None:
            hits = instances.series_uid[instances.sop_uid.isin(set(annotations.sop_uid))]
            annotated = dict(Counter(hits))
        series_uid = choose_ct_series(instances, annotated)
        if series_uid is None:
            self.skipped.append(
                (
                    study_uid,
                    "no usable CT series (no annotated series and no axial, "
                    "non-localizer series with more than one slice)",
                )
            )
            return None
        if len(annotated) > 1:
            self.warnings.append(
                f"study {study_uid}: annotations on {len(annotated)} series; the series "
                f"{series_uid} with the most annotated slices is used"
            )
        if missing_sops.get(series_uid):
            self.skipped.append(
                (
                    study_uid,
                    f"series {series_uid} is incomplete: "
                    f"{len(missing_sops[series_uid])} annotated slice(s) are not in "
                    "the download; re-download the series",
                )
            )
            return None
        rows = instances[instances.series_uid == series_uid]
        try:
            ordered, geometry, duplicates = _ordered_series(rows)
        except DicomError as error:
            self.skipped.append((study_uid, str(error)))
            return None
        if duplicates:
            self.geometry["duplicate_slices_dropped"] += len(duplicates)
            self.geometry["series_with_duplicates"] += 1
            self.warnings.append(f"study {study_uid}: series {series_uid}: {len(duplicates)} exact duplicate "
                                 "slice(s) (same position, same pixels) dropped")
        if geometry.irregular:
            self.geometry["series_irregular_spacing_accepted"] += 1
            self.warnings.append(f"study {study_uid}: series {series_uid}: irregular slice spacing accepted "
                                 f"(largest deviation {geometry.max_deviation_mm:.3f} mm from the median "
                                 f"{geometry.slice_spacing_mm:.3f} mm, within the tolerance)")
        pixel = ordered.pixel_spacing.iloc[0]
        if pixel is None:
            self.skipped.append((study_uid, f"series {series_uid} has no PixelSpacing"))
            return None
        spacing = _fmt((geometry.slice_spacing_mm, pixel[0], pixel[1]))
        return series_uid, ordered, len(ordered), spacing, "CT"


def index_download(root: str | os.PathLike, *, annotations=(), clinical=(), progress=None,
                   protocol: ReadingProtocol = RICORD_PROTOCOL, workers: int | None = None,
                   reuse_index: bool = True) -> IndexReport:
    """Index a RICORD download into a case manifest.

    Parameters
    ----------
    root : path
        The download folder (collection folders and ``metadata.csv``; any layout).
    annotations : path or sequence of paths
        MD.ai export JSON file(s), or folders of them (every ``*.json``); merged. May be empty
        (1b has none).
    clinical : path or sequence of paths
        Clinical sheet(s), xlsx or csv, or folders of them (:func:`bench.data.clinical.clinical_files`:
        a sheet present as both xlsx and csv is read once, from the xlsx, with a warning). May
        be empty.
    progress : callable, optional
        ``progress(done, total, description)``.
    protocol : ReadingProtocol
        The reading protocol (a task's ``reading``; default RICORD's). Its sha256 goes into
        every row's ``reading_protocol``, and a task refuses a manifest built with another.
    workers : int, optional
        Processes reading the DICOM headers (default: this one for downloads below
        :data:`bench.data.dicom.POOL_MIN_FILES` files, else one per core). The headers read are
        kept in the download's header index (:mod:`bench.data.header_index`), which later
        commands reuse for every file that did not change.
    reuse_index : bool
        Take unchanged files' headers from that index (default), or read every file again.

    Returns
    -------
    IndexReport

    Raises
    ------
    DataError
        Unreadable annotation export or clinical sheet, or a root that is not a directory.
        Bad DICOM files, incomplete series and dangling annotations are skipped and listed.
    """
    from bench.data.mdai import annotation_files

    root = Path(root)
    exports = annotation_files(_as_list(annotations))
    export = read_exports(exports) if exports else merge_exports([])
    sheets, notes = clinical_files(_as_list(clinical))
    sheet_warnings: list[str] = []
    table = read_clinical(sheets, warnings=sheet_warnings)
    scan = scan_headers(root, progress=progress, workers=workers, update_index=True, reuse_index=reuse_index)
    indexer = _Indexer(root, export, table, protocol)
    indexer.warnings.extend(notes)
    indexer.warnings.extend(sheet_warnings)
    indexer.skipped.extend(scan.skipped)
    indexer.metadata = _metadata_collections(root, indexer.warnings)
    instances = scan.instances
    for sop in export.null_data:
        indexer.skipped.append((sop, "annotation with null data (no polygon)"))
    indexer.skipped.extend(export.malformed)
    missing_sops = indexer.check_annotation_refs(instances)
    clipped = indexer.check_vertices(instances)
    rows = []
    studies = list(instances.groupby("study_uid", sort=True)) if len(instances) else []
    for done, (study_uid, group) in enumerate(studies, start=1):
        row = indexer.study(study_uid, group, missing_sops)
        if row is not None:
            rows.append(row)
        if progress is not None:
            progress(done, len(studies), "building cases")
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    if len(manifest):
        manifest["case_id"] = case_ids(manifest.patient_id, manifest.study_uid)
        manifest = manifest.sort_values("case_id", kind="stable").reset_index(drop=True)
    if table is not None and len(table):
        unknown = sorted(set(table.study_uid) - set(instances.study_uid))
        if unknown:
            indexer.warnings.append(
                f"{len(unknown)} clinical sheet row(s) name studies not in the download (e.g. {unknown[0]})"
            )
    counts = {
        "files_indexed": int(len(instances)),
        "files_skipped": len(scan.skipped),
        "studies": len(studies),
        "cases": int(len(manifest)),
        "series_ignored": len({uid for uid, _ in indexer.ignored}),
        "annotations": int(len(export.annotations)),
        "annotations_null_data": export.n_null_data,
        "annotations_clipped": clipped,
        "skipped": len(indexer.skipped),
        "reading": _reading_counts(manifest, indexer.decisions, set(instances.study_uid)),
        "geometry": _geometry_counts(indexer.geometry, indexer.skipped),
    }
    readers = indexer.readers[indexer.readers.study_uid.isin(set(instances.study_uid))]
    return IndexReport(
        manifest=manifest,
        skipped=tuple(indexer.skipped),
        ignored=tuple(indexer.ignored),
        warnings=tuple(indexer.warnings),
        counts=counts,
        readers=readers.reset_index(drop=True),
    )


#: The CT geometry decisions counted in the report (see docs/data.md, "CT geometry").
GEOMETRY_REJECTIONS = ("missing slice", "uneven slice spacing", "duplicate slice positions")


def _geometry_counts(accepted: Counter, skipped: Sequence[tuple[str, str]]) -> dict:
    """Duplicates dropped, irregular spacing accepted, and series rejected per geometry reason."""
    kinds = Counter(skip_kind(reason) for _, reason in skipped)
    return {
        "duplicate_slices_dropped": int(accepted["duplicate_slices_dropped"]),
        "series_with_duplicates": int(accepted["series_with_duplicates"]),
        "series_irregular_spacing_accepted": int(accepted["series_irregular_spacing_accepted"]),
        "series_rejected": {kind: int(kinds[kind]) for kind in GEOMETRY_REJECTIONS},
    }


def _reading_counts(manifest: pd.DataFrame, decisions: pd.DataFrame, present: set[str]) -> dict:
    """The protocol's outcomes: per family over the cases, invalid studies in the download."""
    excluded = decisions[decisions.excluded != ""]
    return {
        "appearance": {k: int(v) for k, v in sorted(Counter(manifest.appearance_outcome).items())},
        "grade": {k: int(v) for k, v in sorted(Counter(manifest.grade_outcome).items())},
        "invalid_studies": int(excluded.index.isin(present).sum()),
        "cases_with_minority_invalid_flags": int((manifest.invalid_flags > 0).sum()),
    }


def case_series(root: str | os.PathLike, case_row) -> tuple[pd.DataFrame, dict[str, str]]:
    """Header rows of a case's image(s) in array order (CT: along the slice normal, exact
    duplicates dropped), and the dropped duplicates (dropped SOPInstanceUID -> kept one).

    Looks in ``root / case_row.series_dir`` and matches by ``series_uid`` (radiographs: the
    image :func:`choose_radiograph` picks).

    Raises
    ------
    DicomError
        When the series is not found there or no longer matches the manifest.
    """
    directory = Path(root) / str(case_row["series_dir"])
    scan = scan_headers(root, under=str(case_row["series_dir"]))
    rows = scan.instances[scan.instances.series_uid == case_row["series_uid"]]
    if rows.empty:
        raise DicomError(
            f"case {case_row['case_id']}: series {case_row['series_uid']} not found under "
            f"{directory}; the download moved or changed. Re-run `bench data index`."
        )
    if case_row["modality"] in _RADIOGRAPH:
        image = choose_radiograph(rows)
        if image is None:
            raise DicomError(f"case {case_row['case_id']}: no usable radiograph in {directory}.")
        return rows[rows.sop_uid == image.sop_uid], {}
    ordered, _, duplicates = _ordered_series(rows)
    if len(ordered) != int(case_row["n_slices"]):
        raise DicomError(
            f"case {case_row['case_id']}: series {case_row['series_uid']} has {len(ordered)} "
            f"slices on disk, the manifest says {case_row['n_slices']}. Re-run `bench data index`."
        )
    return ordered, duplicates


def case_instances(root: str | os.PathLike, case_row) -> pd.DataFrame:
    """The header rows of :func:`case_series`."""
    return case_series(root, case_row)[0]


def load_case_image(root: str | os.PathLike, case_row) -> CtVolume | Radiograph:
    """Load a case's image: a :class:`CtVolume` for CT (with its dropped duplicates in
    ``sop_aliases``), a :class:`Radiograph` for CR/DX."""
    rows, duplicates = case_series(root, case_row)
    if case_row["modality"] in _RADIOGRAPH:
        return load_radiograph(rows.path.iloc[0])
    return replace(load_ct_series(list(rows.path)), sop_aliases=MappingProxyType(duplicates))


def load_case_mask(
    root: str | os.PathLike,
    export: MdaiExport,
    case_row,
    *,
    labels: Sequence[str] | None = None,
    readers: str = "union",
    protocol: ReadingProtocol = RICORD_PROTOCOL,
) -> np.ndarray:
    """Boolean ``(z, y, x)`` lesion mask of a CT case on its image grid (headers only, no pixels).

    ``labels``: polygon label names (default all); ``readers``: ``union`` or ``majority`` of
    the reader groups; ``protocol``: which groups adjudicate or are no reader.
    """
    if case_row["modality"] in _RADIOGRAPH:
        raise DataError(
            f"case {case_row['case_id']} is a radiograph; RICORD 1c has study labels only, no lesion masks."
        )
    rows, duplicates = case_series(root, case_row)
    return rasterize_case(
        export,
        list(rows.sop_uid),
        (int(case_row["rows"]), int(case_row["cols"])),
        labels=labels,
        readers=readers,
        series_uid=str(case_row["series_uid"]),
        protocol=protocol,
        aliases=duplicates,
    )
