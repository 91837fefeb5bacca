"""DICOM: index headers by UID, load CT series in HU and radiographs for display.

Identity is always the Study/Series/SOP Instance UID read from the header, never a folder
or file name: TCIA ships RICORD in at least two folder layouts and file names that encode
neither UIDs nor slice order.

Conventions (relied on by prepare and the metrics):

- A CT volume is an int16 array ``(z, y, x)`` of HU (rounded, clipped to int16: the values
  prepare writes, so no float copy of the volume is ever made): ``z`` runs along the slice normal
  (row direction x column direction of ImageOrientationPatient) in increasing order of the
  ImagePositionPatient projected onto it; ``y`` is the DICOM row index, ``x`` the column.
- ``spacing_mm`` is in the same axis order as the array: (slice spacing from the positions,
  PixelSpacing[0] = row spacing, PixelSpacing[1] = column spacing).
- ``affine_lps`` maps an index ``(z, y, x, 1)`` to patient LPS millimetres.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.tag import Tag

from bench.data.hu import hu_into
from bench.errors import DicomError

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

#: Files whose name ends in one of these are not considered DICOM candidates at all.
NON_DICOM_SUFFIXES = frozenset(
    {
        ".csv",
        ".json",
        ".xlsx",
        ".xls",
        ".txt",
        ".md",
        ".npz",
        ".npy",
        ".zip",
        ".pdf",
        ".html",
        ".xml",
        ".tcia",
        ".nii",
        ".gz",
        ".yaml",
        ".yml",
        ".png",
        ".jpg",
        ".log",
    }
)

#: TCIA's private tag carrying the collection name.
TCIA_COLLECTION_TAG = Tag(0x0013, 0x1010)

HEADER_COLUMNS = (
    "path",
    "rel_path",
    "file_size",
    "study_uid",
    "series_uid",
    "sop_uid",
    "patient_id",
    "modality",
    "sop_class_uid",
    "series_number",
    "instance_number",
    "study_description",
    "series_description",
    "study_date",
    "image_type",
    "rows",
    "cols",
    "position",
    "orientation",
    "pixel_spacing",
    "imager_pixel_spacing",
    "slice_thickness",
    "view_position",
    "photometric",
    "number_of_frames",
    "patient_sex",
    "patient_age",
    "tcia_collection",
)

#: Slices closer than this along the normal share a position (positions are printed with ~6 decimals).
SAME_POSITION_MM = 0.01
#: Accepted slice-spacing variation: every gap within SPACING_ATOL_MM + SPACING_RTOL x the median gap
#: of it. These are dicom2nifti's slice-increment check (``numpy.allclose(..., rtol=0.05,
#: atol=0.1)``), which the field uses on RICORD (real 1a/1b series are irregular at the 0.01 mm
#: level); a gap beyond it means the series is not one regular stack.
SPACING_ATOL_MM = 0.1
SPACING_RTOL = 0.05


@dataclass(frozen=True, eq=False)
class HeaderScan:
    """Result of walking a tree: one row per readable instance, and what was skipped."""

    instances: pd.DataFrame
    skipped: tuple[tuple[str, str], ...]


@dataclass(frozen=True, eq=False)
class CtVolume:
    """A CT series in HU, sorted along the slice normal (see the module docstring).

    ``sop_aliases``: exact duplicate slices left out of the volume, dropped SOPInstanceUID ->
    the kept one (an annotation on a dropped slice belongs to the kept one's index).
    """

    hu: np.ndarray
    spacing_mm: tuple[float, float, float]
    affine_lps: np.ndarray
    sop_uids: tuple[str, ...]
    study_uid: str
    series_uid: str
    sop_aliases: Mapping[str, str] = field(default_factory=dict)
    pixel_sha256: tuple[tuple[str, str], ...] = ()
    """(SOPInstanceUID, :func:`pixel_data_sha256`) of every file read, sorted: the pixels'
    fingerprint taken from the same read that built the volume."""


@dataclass(frozen=True, eq=False)
class Radiograph:
    """A radiograph, modality + VOI LUT applied, MONOCHROME1 inverted (bright = dense)."""

    pixels: np.ndarray
    spacing_mm: tuple[float, float]
    sop_uid: str
    study_uid: str
    series_uid: str
    photometric: str
    spacing_source: str


@dataclass(frozen=True, eq=False)
class SeriesOrder:
    """Slice order and spacing of a series, derived from its headers alone.

    ``max_deviation_mm``: the largest difference of a gap from the median gap (within
    :data:`SPACING_ATOL_MM` + :data:`SPACING_RTOL` x median, or the series was rejected).
    """

    order: np.ndarray
    slice_spacing_mm: float
    step_lps: np.ndarray
    max_deviation_mm: float = 0.0

    @property
    def irregular(self) -> bool:
        """True when some gap differs from the median by more than the print precision."""
        return self.max_deviation_mm > SAME_POSITION_MM


def is_candidate(path: Path) -> bool:
    """True for files that may be DICOM: not hidden, not in a hidden folder, not a known non-DICOM suffix.

    ``path`` is relative to the download root. Hidden folders hold tool state, not images
    (e.g. the case-id salt in ``.ricord-bench/``).
    """
    if any(part.startswith(".") for part in path.parts):
        return False
    name = path.name
    return not any(name.lower().endswith(suffix) for suffix in NON_DICOM_SUFFIXES)


def _floats(value) -> tuple[float, ...] | None:
    if value is None or value == "":
        return None
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None


def _text(ds, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


_TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UI", "UT"}
)
#: The header elements every indexed instance is read for (the columns of :func:`scan_headers`).
HEADER_KEYWORDS = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "PatientID",
    "Modality",
    "SOPClassUID",
    "SeriesNumber",
    "InstanceNumber",
    "StudyDescription",
    "SeriesDescription",
    "StudyDate",
    "ImageType",
    "Rows",
    "Columns",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "SliceThickness",
    "ViewPosition",
    "PhotometricInterpretation",
    "NumberOfFrames",
    "PatientSex",
    "PatientAge",
    "BitsAllocated",
    "SamplesPerPixel",
)
_TAGS = {keyword: Tag(keyword) for keyword in HEADER_KEYWORDS}
_VRS = {keyword: dictionary_VR(tag) for keyword, tag in _TAGS.items()}


class _Fields:
    """Header values read from the raw elements, skipping pydicom's value conversion.

    Indexing reads ~30 elements of every file; converting them through the Dataset API
    costs several times the parse itself. Raw text VRs (from the file, or from the data
    dictionary for implicit-VR files) are decoded directly (Latin-1: only identifiers and
    descriptions are read); anything else goes through pydicom.
    """

    def __init__(self, ds):
        self.ds = ds

    def _elem(self, keyword: str):
        return self.ds.get_item(_TAGS[keyword])

    @staticmethod
    def _vr(keyword: str, elem) -> str | None:
        return elem.VR if elem.VR is not None else _VRS[keyword]

    def text(self, keyword: str) -> str:
        elem = self._elem(keyword)
        if elem is None:
            return ""
        if isinstance(elem, RawDataElement) and self._vr(keyword, elem) in _TEXT_VRS:
            return "" if elem.value is None else elem.value.decode("latin-1").strip("\x00 ")
        value = self.ds[_TAGS[keyword]].value
        if value is None:
            return ""
        if isinstance(value, list | pydicom.multival.MultiValue):
            return "\\".join(str(v) for v in value)
        return str(value).strip()

    def floats(self, keyword: str) -> tuple[float, ...] | None:
        text = self.text(keyword)
        if not text:
            return None
        try:
            return tuple(float(v) for v in text.split("\\"))
        except ValueError:
            return None

    def integer(self, keyword: str, default: int = 0) -> int:
        elem = self._elem(keyword)
        raw = isinstance(elem, RawDataElement)
        if raw and self._vr(keyword, elem) == "US" and elem.value and len(elem.value) >= 2:
            return int.from_bytes(elem.value[:2], "little" if elem.is_little_endian else "big")
        if elem is None:
            return default
        if raw and self._vr(keyword, elem) in _TEXT_VRS:
            text = self.text(keyword)
        else:
            text = str(self.ds[_TAGS[keyword]].value)
        try:
            return int(float(text))
        except (TypeError, ValueError):
            return default


def _decoded(value) -> str:
    """Text of an element value; bytes (private tags read as UN in implicit VR) as Latin-1."""
    if isinstance(value, bytes):
        return value.decode("latin-1").strip("\x00 ")
    return "" if value is None else str(value).strip()


def _expected_pixel_bytes(ds, fields: _Fields) -> int | None:
    """Bytes of native (uncompressed) pixel data, or None for encapsulated syntaxes."""
    meta = getattr(ds, "file_meta", None)
    syntax = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if syntax is not None and syntax.is_compressed:
        return None
    rows, bits = fields.integer("Rows"), fields.integer("BitsAllocated")
    if not rows or not bits:
        return None
    frames = fields.integer("NumberOfFrames", 1) or 1
    samples = fields.integer("SamplesPerPixel", 1) or 1
    return rows * fields.integer("Columns") * samples * frames * bits // 8


def read_header(path: str | os.PathLike) -> dict:
    """Read one file's header (no pixels) into an index row.

    Raises
    ------
    DicomError
        When the file is not DICOM, is truncated, or lacks one of the three instance UIDs.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            ds = pydicom.dcmread(handle, stop_before_pixels=True)
            remaining = size - handle.tell()
    except InvalidDicomError as error:
        raise DicomError(
            f"{path}: not a DICOM file ({error}). Remove it from the download or re-download the series."
        ) from error
    except (EOFError, OSError, ValueError, KeyError, TypeError) as error:
        raise DicomError(
            f"{path}: unreadable or truncated DICOM header ({type(error).__name__}: "
            f"{error}). Re-download this file."
        ) from error
    fields = _Fields(ds)
    uids = {k: fields.text(k) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")}
    missing = [k for k, v in uids.items() if not v]
    if missing:
        raise DicomError(
            f"{path}: DICOM header lacks {', '.join(missing)} (truncated or incomplete header); "
            "cannot identify the instance. Re-download it or remove it."
        )
    expected = _expected_pixel_bytes(ds, fields)
    if expected is not None and remaining == 0:  # dcmread reached the end: no (7FE0,0010) element
        raise DicomError(
            f"{path}: no PixelData element (missing pixel data; the header describes a "
            f"{fields.integer('Rows')}x{fields.integer('Columns')} image). Re-download this file."
        )
    if expected is not None:
        # dcmread stops at the (7FE0,0010) tag: its tag + VR + length take 12 bytes (explicit VR)
        # or 8 (implicit VR) before the values.
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        remaining -= 8 if syntax is not None and syntax.is_implicit_VR else 12
    if expected is not None and remaining < expected:
        raise DicomError(
            f"{path}: truncated DICOM file: {remaining} bytes left for pixel data, "
            f"{expected} expected ({fields.integer('Rows')}x{fields.integer('Columns')}). "
            "Re-download this file."
        )
    collection = ds.get(TCIA_COLLECTION_TAG)
    thickness = fields.floats("SliceThickness")
    return {
        "path": str(path),
        "rel_path": "",
        "file_size": size,
        "study_uid": uids["StudyInstanceUID"],
        "series_uid": uids["SeriesInstanceUID"],
        "sop_uid": uids["SOPInstanceUID"],
        "patient_id": fields.text("PatientID"),
        "modality": fields.text("Modality"),
        "sop_class_uid": fields.text("SOPClassUID"),
        "series_number": fields.integer("SeriesNumber"),
        "instance_number": fields.integer("InstanceNumber"),
        "study_description": fields.text("StudyDescription"),
        "series_description": fields.text("SeriesDescription"),
        "study_date": fields.text("StudyDate"),
        "image_type": fields.text("ImageType").upper(),
        "rows": fields.integer("Rows"),
        "cols": fields.integer("Columns"),
        "position": fields.floats("ImagePositionPatient"),
        "orientation": fields.floats("ImageOrientationPatient"),
        "pixel_spacing": fields.floats("PixelSpacing"),
        "imager_pixel_spacing": fields.floats("ImagerPixelSpacing"),
        "slice_thickness": thickness[0] if thickness else 0.0,
        "view_position": fields.text("ViewPosition").upper(),
        "photometric": fields.text("PhotometricInterpretation"),
        "number_of_frames": fields.integer("NumberOfFrames", 1) or 1,
        "patient_sex": fields.text("PatientSex"),
        "patient_age": fields.text("PatientAge"),
        "tcia_collection": _decoded(collection.value) if collection is not None else "",
    }


def scan_headers(root: str | os.PathLike, *, progress: Progress | None = None) -> HeaderScan:
    """Walk ``root`` and read every candidate file's header (``stop_before_pixels``).

    Files that fail (not DICOM, truncated, no UIDs) are listed in ``skipped`` with the
    reason instead of stopping the walk. Duplicate SOPInstanceUIDs keep the first path in
    sorted order and list the others as skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise DicomError(
            f"{root}: download root is not a directory. Pass the folder that holds "
            "the collection folders (and metadata.csv)."
        )
    files = sorted(p for p in root.rglob("*") if p.is_file() and is_candidate(p.relative_to(root)))
    rows: list[dict] = []
    skipped: list[tuple[str, str]] = []
    total = len(files)
    for done, path in enumerate(files, start=1):
        try:
            row = read_header(path)
        except DicomError as error:
            log.warning("%s", error)
            reason = str(error)
            skipped.append((path.relative_to(root).as_posix(), reason.removeprefix(f"{path}: ")))
        else:
            row["rel_path"] = path.relative_to(root).as_posix()
            rows.append(row)
        if progress is not None:
            progress(done, total, "reading DICOM headers")
    frame = pd.DataFrame(rows, columns=list(HEADER_COLUMNS))
    duplicated = frame.duplicated("sop_uid", keep="first")
    for _, row in frame[duplicated].iterrows():
        skipped.append((row["rel_path"], f"duplicate SOPInstanceUID {row['sop_uid']} (first copy kept)"))
    frame = frame[~duplicated].reset_index(drop=True)
    return HeaderScan(instances=frame, skipped=tuple(skipped))


def index_headers(root: str | os.PathLike, *, progress: Progress | None = None) -> pd.DataFrame:
    """One row per readable DICOM instance under ``root`` (columns :data:`HEADER_COLUMNS`).

    ``path`` is the file path as found (root joined with the relative path), ``rel_path`` the
    POSIX path relative to ``root``. Unreadable files are left out; use :func:`scan_headers`
    to see them with their reasons.
    """
    return scan_headers(root, progress=progress).instances


def slice_normal(orientation: Sequence[float]) -> np.ndarray:
    """Unit normal (row direction x column direction) of an ImageOrientationPatient."""
    row_dir = np.asarray(orientation[:3], dtype=float)
    col_dir = np.asarray(orientation[3:6], dtype=float)
    normal = np.cross(row_dir, col_dir)
    return normal / np.linalg.norm(normal)


def order_slices(
    positions: np.ndarray,
    orientation: Sequence[float],
    *,
    sop_uids: Sequence[str],
    where: str,
    slice_thickness_mm: float = 0.0,
) -> SeriesOrder:
    """Sort slices along the normal and check that they are evenly spaced within the tolerance.

    Parameters
    ----------
    positions : (n, 3) array
        ImagePositionPatient of each slice, in file order.
    orientation : sequence of 6 floats
        The shared ImageOrientationPatient.
    sop_uids : sequence of str
        SOPInstanceUID of each slice (named in error messages).
    where : str
        Series UID or directory, named in error messages.
    slice_thickness_mm : float
        Used as the slice spacing of a single-slice series.

    Raises
    ------
    DicomError
        Two slices at one position (exact duplicates are dropped before, by
        :func:`duplicate_slices`), a missing slice (a gap that is a multiple of the median one),
        or a gap beyond :data:`SPACING_ATOL_MM` + :data:`SPACING_RTOL` x the median gap.
    """
    positions = np.asarray(positions, dtype=float)
    normal = slice_normal(orientation)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    n = len(order)
    if n == 1:
        spacing = float(slice_thickness_mm) if slice_thickness_mm > 0 else 1.0
        return SeriesOrder(order=order, slice_spacing_mm=spacing, step_lps=normal * spacing)
    gaps = np.diff(along[order])
    if np.any(gaps <= SAME_POSITION_MM):
        k = int(np.argmax(gaps <= SAME_POSITION_MM))
        raise DicomError(
            f"series {where}: slices {sop_uids[order[k]]} and {sop_uids[order[k + 1]]} share the "
            f"position {along[order[k]]:.3f} mm along the normal with different pixel data; two series "
            "are mixed. Remove the files of the other series."
        )
    spacing = float(np.median(gaps))
    tolerance = SPACING_ATOL_MM + SPACING_RTOL * abs(spacing)
    deviation = np.abs(gaps - spacing)
    bad = np.flatnonzero(deviation > tolerance)
    if bad.size:
        k = int(bad[0])
        ratio = gaps[k] / spacing
        if abs(ratio - round(ratio)) * spacing <= tolerance and round(ratio) >= 2:
            raise DicomError(
                f"series {where}: missing slice: gap of {gaps[k]:.3f} mm between slices "
                f"{sop_uids[order[k]]} and {sop_uids[order[k + 1]]}, {round(ratio) - 1} slice(s) of "
                f"{spacing:.3f} mm expected there. Re-download the series."
            )
        raise DicomError(
            f"series {where}: uneven slice spacing: gap of {gaps[k]:.3f} mm between slices "
            f"{sop_uids[order[k]]} and {sop_uids[order[k + 1]]}, {spacing:.3f} mm (the median) expected, "
            f"tolerance {tolerance:.3f} mm ({SPACING_ATOL_MM} mm + {SPACING_RTOL:.0%}). The series is not "
            "one regular stack: resample it to a regular grid (e.g. with SimpleITK) or remove the odd "
            "slices, then index again."
        )
    step = (positions[order[-1]] - positions[order[0]]) / (n - 1)
    return SeriesOrder(order=order, slice_spacing_mm=spacing, step_lps=step,
                       max_deviation_mm=float(deviation.max()))


def pixel_data_sha256(ds: pydicom.Dataset) -> str:
    """sha256 of a dataset's PixelData bytes as stored (no decoding)."""
    return hashlib.sha256(bytes(ds.PixelData)).hexdigest()


def stored_pixel_sha256(path: str | os.PathLike) -> str:
    """:func:`pixel_data_sha256` of a file."""
    try:
        return pixel_data_sha256(pydicom.dcmread(path))
    except (InvalidDicomError, AttributeError, EOFError, OSError, ValueError, KeyError, TypeError) as error:
        raise DicomError(f"{path}: cannot read its pixel data ({type(error).__name__}: {error}). "
                         "Re-download it.") from error


def duplicate_slices(paths: Sequence[str | os.PathLike], positions: np.ndarray, orientation: Sequence[float],
                     sop_uids: Sequence[str]) -> dict[str, str]:
    """Exact duplicates of a series: dropped SOPInstanceUID -> the kept one.

    Slices within :data:`SAME_POSITION_MM` of each other along the normal whose stored pixel
    data are identical are one slice written twice (real RICORD 1a/1b series have them); the
    one with the smallest SOPInstanceUID is kept. Slices at one position with different pixels
    are not duplicates and stay (:func:`order_slices` then rejects the series). Only the files
    that share a position are read.
    """
    along = np.asarray(positions, dtype=float) @ slice_normal(orientation)
    order = np.argsort(along, kind="stable")
    groups: list[list[int]] = []
    for previous, index in zip(order[:-1], order[1:], strict=True):
        if along[index] - along[previous] <= SAME_POSITION_MM:
            if groups and groups[-1][-1] == previous:
                groups[-1].append(int(index))
            else:
                groups.append([int(previous), int(index)])
    aliases: dict[str, str] = {}
    for group in groups:
        hashes = {stored_pixel_sha256(paths[i]) for i in group}
        if len(hashes) == 1:
            kept = min(sop_uids[i] for i in group)
            aliases.update({sop_uids[i]: kept for i in group if sop_uids[i] != kept})
    return aliases


def _same(values: list, what: str, where: str, paths: Sequence) -> None:
    first = values[0]
    for value, path in zip(values, paths, strict=True):
        if value != first and not (
            isinstance(value, tuple)
            and isinstance(first, tuple)
            and len(value) == len(first)
            and np.allclose(value, first, atol=1e-4)
        ):
            raise DicomError(
                f"series {where}: {path} has {what} {value}, other slices {first}. "
                "A series must share one grid; remove the odd file."
            )


def _read_with_pixels(path) -> tuple[pydicom.Dataset, np.ndarray]:
    """Read one instance with its decoded pixels; any failure is a DicomError naming the file."""
    try:
        ds = pydicom.dcmread(path)
        return ds, ds.pixel_array
    except InvalidDicomError as error:
        raise DicomError(f"{path}: not a DICOM file ({error}). Re-download it.") from error
    except (EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise DicomError(
            f"{path}: cannot read pixel data ({type(error).__name__}: {error}); the "
            "file is truncated or its encoding unsupported. Re-download it."
        ) from error


@dataclass(frozen=True)
class _Slice:
    """What :func:`load_ct_series` keeps of one file once its pixels are in the volume."""

    series_uid: str
    matrix: tuple[int, int]
    orientation: tuple[float, ...] | None
    position: tuple[float, ...] | None
    spacing: tuple[float, ...] | None
    sop_uid: str
    pixel_sha256: str


def load_ct_series(paths: Sequence[str | os.PathLike]) -> CtVolume:
    """Load the files of one CT series into an int16 volume in HU (see the module docstring).

    HU = stored value x RescaleSlope + RescaleIntercept, per slice, rounded and clipped to int16
    (:func:`bench.data.hu.hu_into`). Each file is read once: its pixels go straight into the
    volume and its pixel data's sha256 into ``pixel_sha256``; the slices are then put in order
    along the normal (no copy when ``paths`` already are, as
    :func:`bench.data.ricord.case_series` gives them).

    Raises
    ------
    DicomError
        Unreadable files, mixed series, inconsistent grids, a missing slice or uneven spacing.
    """
    if not paths:
        raise DicomError("load_ct_series: no files given; the series has no instances in the index.")
    first = None
    hu = np.empty(0, dtype=np.int16)
    slices = []
    for k, path in enumerate(paths):
        ds, pixels = _read_with_pixels(path)
        matrix = (int(ds.Rows), int(ds.Columns))
        if first is None:
            first = ds
            hu = np.empty((len(paths), *matrix), dtype=np.int16)
        if matrix == hu.shape[1:]:  # another grid is reported below, naming the file
            if pixels.shape != matrix:
                raise DicomError(f"{path}: pixel data of shape {pixels.shape}, not one "
                                 f"{matrix[0]}x{matrix[1]} frame; a CT series must hold one slice per "
                                 "file. Remove the file.")
            hu_into(pixels[None], hu[k:k + 1], float(ds.get("RescaleSlope", 1.0) or 1.0),
                    float(ds.get("RescaleIntercept", 0.0) or 0.0))
        slices.append(_Slice(_text(ds, "SeriesInstanceUID"), matrix,
                             _floats(ds.get("ImageOrientationPatient")),
                             _floats(ds.get("ImagePositionPatient")), _floats(ds.get("PixelSpacing")),
                             _text(ds, "SOPInstanceUID"), pixel_data_sha256(ds)))
        del ds, pixels
    where = slices[0].series_uid
    _same([s.series_uid for s in slices], "SeriesInstanceUID", where, paths)
    _same([s.matrix for s in slices], "matrix", where, paths)
    orientations = [s.orientation for s in slices]
    positions = [s.position for s in slices]
    spacings = [s.spacing for s in slices]
    for name, values in (
        ("ImageOrientationPatient", orientations),
        ("ImagePositionPatient", positions),
        ("PixelSpacing", spacings),
    ):
        for value, path in zip(values, paths, strict=True):
            if value is None:
                raise DicomError(
                    f"{path}: CT slice lacks {name}; cannot place it in 3D. "
                    "This series cannot be loaded as a volume."
                )
    _same(orientations, "ImageOrientationPatient", where, paths)
    _same(spacings, "PixelSpacing", where, paths)
    sop_uids = [s.sop_uid for s in slices]
    geometry = order_slices(
        np.array(positions),
        orientations[0],
        sop_uids=sop_uids,
        where=where,
        slice_thickness_mm=float(first.get("SliceThickness") or 0.0),
    )
    if not np.array_equal(geometry.order, np.arange(len(slices))):
        hu = hu[geometry.order]
    row_spacing, col_spacing = spacings[0]
    orientation = np.asarray(orientations[0], dtype=float)
    affine = np.eye(4)
    affine[:3, 0] = geometry.step_lps
    affine[:3, 1] = orientation[3:6] * row_spacing
    affine[:3, 2] = orientation[:3] * col_spacing
    affine[:3, 3] = positions[geometry.order[0]]
    return CtVolume(
        hu=hu,
        spacing_mm=(geometry.slice_spacing_mm, float(row_spacing), float(col_spacing)),
        affine_lps=affine,
        sop_uids=tuple(sop_uids[i] for i in geometry.order),
        study_uid=_text(first, "StudyInstanceUID"),
        series_uid=where,
        pixel_sha256=tuple(sorted((s.sop_uid, s.pixel_sha256) for s in slices)),
    )


def radiograph_spacing(pixel_spacing, imager_pixel_spacing) -> tuple[tuple[float, float], str]:
    """(row, column) spacing in mm and where it came from.

    PixelSpacing first, then ImagerPixelSpacing; when neither holds two positive numbers,
    1.0 mm is assumed (and reported as ``"assumed"``).
    """
    for value, source in ((pixel_spacing, "PixelSpacing"), (imager_pixel_spacing, "ImagerPixelSpacing")):
        if value is not None and len(value) == 2 and min(value) > 0:
            return (float(value[0]), float(value[1])), source
    return (1.0, 1.0), "assumed"


def load_radiograph(path: str | os.PathLike) -> Radiograph:
    """Load a CR/DX image for viewing: modality LUT, then VOI LUT, then MONOCHROME1 inversion.

    The VOI step uses pydicom's :func:`~pydicom.pixels.apply_voi_lut` (a VOI LUT Sequence is
    preferred over WindowCenter/Width) and is skipped when the header has neither.
    MONOCHROME1 images are inverted as ``min + max - value`` so that, as in MONOCHROME2,
    higher values are brighter (denser). Returns float32 ``(y, x)``.

    Raises
    ------
    DicomError
        Not DICOM, truncated or undecodable pixel data, colour or multi-frame images.
    """
    path = Path(path)
    ds, pixels = _read_with_pixels(path)
    photometric = _text(ds, "PhotometricInterpretation")
    if photometric not in ("MONOCHROME1", "MONOCHROME2") or pixels.ndim != 2:
        raise DicomError(
            f"{path}: radiograph must be one grayscale frame, got {photometric} with "
            f"pixel array shape {pixels.shape}. Remove it or pick another image."
        )
    values = apply_modality_lut(pixels, ds)
    if "VOILUTSequence" in ds or "WindowCenter" in ds:
        values = apply_voi_lut(values, ds, prefer_lut=True)
    values = np.asarray(values, dtype=np.float32)
    if photometric == "MONOCHROME1":
        values = np.float32(values.min() + values.max()) - values
    spacing, source = radiograph_spacing(
        _floats(ds.get("PixelSpacing")), _floats(ds.get("ImagerPixelSpacing"))
    )
    if source == "assumed":
        log.warning("%s: no usable PixelSpacing/ImagerPixelSpacing; assuming 1.0 mm", path)
    return Radiograph(
        pixels=values,
        spacing_mm=spacing,
        sop_uid=_text(ds, "SOPInstanceUID"),
        study_uid=_text(ds, "StudyInstanceUID"),
        series_uid=_text(ds, "SeriesInstanceUID"),
        photometric=photometric,
        spacing_source=source,
    )
