"""Reading DICOM headers fast: which files are candidates, and one file -> one index row.

Indexing reads a few dozen elements from the start of every file of a download (the real
RICORD one has ~54,000). What makes ``pydicom.dcmread(path, stop_before_pixels=True)`` slow is
not the parse but its many small reads and seeks on the open file and its conversion of every
element into a Dataset. So :func:`read_header` reads the head of the file with one system
call (:data:`HEAD_BYTES`), lets pydicom parse that buffer keeping only the elements the index
uses (``specific_tags``), and decodes the raw values itself. A header that does not end inside
the head (a large private block) is parsed again from the whole file, so the result never
depends on the head's size.

This module imports only the standard library and pydicom: it is what a process-pool worker
of :func:`bench.data.dicom.scan_headers` loads (:func:`read_headers_item`).
"""

from __future__ import annotations

import functools
import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.errors import InvalidDicomError
from pydicom.filereader import data_element_generator
from pydicom.tag import Tag
from pydicom.uid import UID

from bench.errors import DicomError

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
TCIA_COLLECTION_TAG = 0x00131010

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

#: The header elements every indexed instance is read for (the columns of :data:`HEADER_COLUMNS`).
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
# Plain ints, not pydicom's BaseTag: a BaseTag in a set or dict key is compared by a Python-level
# __eq__ on every hit, which was a tenth of the time of a header read.
_TAGS = {keyword: int(Tag(keyword)) for keyword in HEADER_KEYWORDS}
_VRS = {keyword: dictionary_VR(tag) for keyword, tag in _TAGS.items()}
#: What pydicom keeps of a header (it still walks past the rest): the index's elements.
READ_TAGS = sorted([*_TAGS.values(), TCIA_COLLECTION_TAG])
_TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UI", "UT"}
)

#: Bytes read from the start of each file in one call. Synthetic and typical CT headers take
#: 1-10 KiB; headers with large private blocks (Siemens CSA) up to a few tens.
HEAD_BYTES = 64 * 1024
#: PixelData, FloatPixelData, DoubleFloatPixelData tags as they start an element (little endian).
_PIXEL_TAG_BYTES = frozenset({b"\xe0\x7f\x10\x00", b"\xe0\x7f\x08\x00", b"\xe0\x7f\x09\x00"})


def is_candidate(path: Path) -> bool:
    """True for files that may be DICOM: not hidden, not in a hidden folder, not a known non-DICOM suffix.

    ``path`` is relative to the download root. Hidden folders hold tool state, not images
    (e.g. the case-id salt and the header index in ``.ricord-bench/``).
    """
    if any(part.startswith(".") for part in path.parts):
        return False
    return _candidate_name(path.name)


def _candidate_name(name: str) -> bool:
    lower = name.lower()
    return not name.startswith(".") and not any(lower.endswith(suffix) for suffix in NON_DICOM_SUFFIXES)


def candidate_files(root: str | os.PathLike) -> list[tuple[str, int, tuple[int, int]]]:
    """(POSIX path relative to ``root``, size, stamp) of every candidate file, in path order.

    ``stamp`` is (mtime, ctime) in ns: with the size, what tells a file changed since its
    header was read (:mod:`bench.data.header_index`); the ctime cannot be set back by any tool,
    so a file replaced with another of the same size and mtime is still told apart. The
    order is that of the paths' components (as ``sorted`` orders :class:`~pathlib.Path` objects),
    so the first copy of a duplicated instance is the same whatever the walk order. Folders
    reached through a symbolic link are not entered (as ``Path.rglob``); linked files are
    followed to their target. Hidden files and folders are skipped (:func:`is_candidate`).
    """
    found: list[tuple[tuple[str, ...], int, tuple[int, int]]] = []
    pending: list[tuple[str, tuple[str, ...]]] = [(os.fspath(root), ())]
    while pending:
        directory, parts = pending.pop()
        try:
            with os.scandir(directory) as entries:
                listed = list(entries)
        except PermissionError:
            continue
        for entry in listed:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, (*parts, entry.name)))
                elif entry.is_file() and _candidate_name(entry.name):
                    info = entry.stat()
                    found.append(((*parts, entry.name), info.st_size, (info.st_mtime_ns, info.st_ctime_ns)))
            except FileNotFoundError:  # removed during the walk
                continue
    found.sort()
    return [("/".join(parts), size, stamp) for parts, size, stamp in found]


class _Fields:
    """Header values read from the raw elements, skipping pydicom's value conversion.

    Converting ~30 elements through the Dataset API costs several times the parse itself. Raw
    text VRs (from the file, or from the data dictionary for implicit-VR files) are decoded
    directly (Latin-1: only identifiers and descriptions are read); anything else goes
    through pydicom (``convert``: tag -> the element's value).
    """

    def __init__(self, elements: dict, convert):
        self.elements = elements
        self.convert = convert

    def _elem(self, keyword: str):
        return self.elements.get(_TAGS[keyword])

    @staticmethod
    def _vr(keyword: str, elem) -> str | None:
        return elem.VR if elem.VR is not None else _VRS[keyword]

    def text(self, keyword: str) -> str:
        elem = self._elem(keyword)
        if elem is None:
            return ""
        if isinstance(elem, RawDataElement) and self._vr(keyword, elem) in _TEXT_VRS:
            return "" if elem.value is None else elem.value.decode("latin-1").strip("\x00 ")
        value = self.convert(_TAGS[keyword])
        if value is None:
            return ""
        if isinstance(value, list | pydicom.multival.MultiValue):
            return "\\".join(str(v) for v in value)
        return str(value).strip()

    def private_text(self, tag) -> str:
        """Text of a private element; read as UN (implicit VR, no dictionary entry) it is Latin-1."""
        elem = self.elements.get(tag)
        if elem is None:
            return ""
        if isinstance(elem, RawDataElement) and elem.VR in (None, "UN", *_TEXT_VRS):
            return "" if elem.value is None else elem.value.decode("latin-1").strip("\x00 ")
        value = self.convert(tag)
        if isinstance(value, bytes):
            return value.decode("latin-1").strip("\x00 ")
        return "" if value is None else str(value).strip()

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
            text = str(self.convert(_TAGS[keyword]))
        try:
            return int(float(text))
        except (TypeError, ValueError):
            return default


def _expected_pixel_bytes(syntax, fields: _Fields) -> int | None:
    """Bytes of native (uncompressed) pixel data, or None when the file cannot tell: encapsulated
    syntaxes, and deflated data sets (their bytes on disk are not the data set's)."""
    if syntax is not None and (syntax.is_compressed or syntax.is_deflated):
        return None
    rows, bits = fields.integer("Rows"), fields.integer("BitsAllocated")
    if not rows or not bits:
        return None
    frames = fields.integer("NumberOfFrames", 1) or 1
    samples = fields.integer("SamplesPerPixel", 1) or 1
    return rows * fields.integer("Columns") * samples * frames * bits // 8


def _at_pixel_data(tag, vr, length) -> bool:
    # int arithmetic, not BaseTag comparisons: this runs for every element of every file
    return tag >> 16 == 0x7FE0 and tag & 0xFFFF in (0x0010, 0x0008, 0x0009)


def _not_meta(tag, vr, length) -> bool:
    return tag >> 16 != 2


def _explicit_vr(data: bytes, offset: int) -> bool:
    """True when the element at ``offset`` carries an explicit VR (two capital letters)."""
    vr = data[offset + 4:offset + 6]
    return len(vr) == 2 and 0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B


@functools.lru_cache(maxsize=64)
def _syntax(value: bytes) -> UID:
    """The transfer syntax UID of a file meta value (a download holds a handful of them)."""
    return UID(value.decode("ascii", "replace").strip("\x00 "))


def _parse_head(head: bytes):
    """(elements, transfer syntax, offset of the pixel data) from a file's head, or None.

    The common case, parsed with pydicom's element generator alone: a Part 10 file (preamble,
    ``DICM``, an explicit-VR file meta group) whose little-endian, non-deflated data set encodes
    its VRs as its transfer syntax says and reaches a pixel data element inside ``head``. Any
    other file gives None and is read by :func:`_parse_dataset`, as pydicom reads it.
    """
    if head[128:132] != b"DICM" or not _explicit_vr(head, 132):
        return None
    buffer = io.BytesIO(head)
    buffer.seek(132)
    meta = {int(elem.tag): elem for elem in data_element_generator(buffer, False, True, stop_when=_not_meta)}
    raw_syntax = meta.get(0x00020010)
    if raw_syntax is None or not raw_syntax.value:
        return None
    syntax = _syntax(raw_syntax.value)
    if not syntax.is_transfer_syntax or not syntax.is_little_endian or syntax.is_deflated:
        return None
    start = buffer.tell()
    if head[start:start + 2] in (b"\x00\x00", b"") or _explicit_vr(head, start) == syntax.is_implicit_VR:
        return None  # a command set, an empty data set, or VRs that contradict the syntax
    elements = {int(elem.tag): elem for elem in data_element_generator(
        buffer, syntax.is_implicit_VR, True, stop_when=_at_pixel_data, specific_tags=READ_TAGS)}
    stop = buffer.tell()
    if head[stop:stop + 4] not in _PIXEL_TAG_BYTES or stop + 12 > len(head):
        return None
    return elements, syntax, stop


def _parse_dataset(data: bytes):
    """(elements, transfer syntax or None, offset where parsing stopped, convert) by ``dcmread``."""
    buffer = io.BytesIO(data)
    ds = pydicom.dcmread(buffer, stop_before_pixels=True, specific_tags=READ_TAGS)
    elements = {tag: ds.get_item(tag) for tag in READ_TAGS if tag in ds}
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return elements, syntax, buffer.tell(), (lambda tag: ds[tag].value)


def _parse_file(path: str, size: int):
    """(elements, syntax, stop offset, convert) of a file's header, up to its pixel data.

    One read of :data:`HEAD_BYTES`; the head is parsed by :func:`_parse_head` when it can be.
    Anything else (a longer header, a file without pixel data, another encoding, a malformed
    header) is read whole and parsed by ``dcmread``, which is exactly what reading the file
    directly would give.
    """
    with open(path, "rb", buffering=0) as handle:
        head = handle.read(HEAD_BYTES)
        try:
            parsed = _parse_head(head)
        except Exception:  # noqa: BLE001 - any surprise: parsed below by dcmread, errors included
            parsed = None
        if parsed is not None:
            elements, syntax, stop = parsed
            return elements, syntax, stop, (lambda tag: convert_raw_data_element(elements[tag]).value)
        if len(head) < size:
            head += handle.read()
    return _parse_dataset(head)


def read_header(path: str | os.PathLike, *, size: int | None = None) -> dict:
    """Read one file's header (no pixels) into an index row (:data:`HEADER_COLUMNS`).

    ``size``: the file's size when the caller has it from the walk (saves a ``stat``).

    Raises
    ------
    DicomError
        When the file is not DICOM, is truncated, or lacks one of the three instance UIDs.
    """
    path = os.fspath(path)
    try:
        if size is None:
            size = os.stat(path).st_size
        elements, syntax, stop, convert = _parse_file(path, size)
        remaining = size - min(stop, size)  # skipping a cut element seeks past the end
    except InvalidDicomError as error:
        raise DicomError(
            f"{path}: not a DICOM file ({error}). Remove it from the download or re-download the series."
        ) from error
    except (EOFError, OSError, ValueError, KeyError, TypeError, struct.error) as error:
        raise DicomError(
            f"{path}: unreadable or truncated DICOM header ({type(error).__name__}: "
            f"{error}). Re-download this file."
        ) from error
    fields = _Fields(elements, convert)
    uids = {k: fields.text(k) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")}
    missing = [k for k, v in uids.items() if not v]
    if missing:
        raise DicomError(
            f"{path}: DICOM header lacks {', '.join(missing)} (truncated or incomplete header); "
            "cannot identify the instance. Re-download it or remove it."
        )
    expected = _expected_pixel_bytes(syntax, fields)
    if expected is not None and remaining == 0:  # parsing reached the end: no (7FE0,0010) element
        raise DicomError(
            f"{path}: no PixelData element (missing pixel data; the header describes a "
            f"{fields.integer('Rows')}x{fields.integer('Columns')} image). Re-download this file."
        )
    if expected is not None:
        # parsing stops at the (7FE0,0010) tag: its tag + VR + length take 12 bytes (explicit VR)
        # or 8 (implicit VR) before the values.
        remaining -= 8 if syntax is not None and syntax.is_implicit_VR else 12
    if expected is not None and remaining < expected:
        raise DicomError(
            f"{path}: truncated DICOM file: {remaining} bytes left for pixel data, "
            f"{expected} expected ({fields.integer('Rows')}x{fields.integer('Columns')}). "
            "Re-download this file."
        )
    thickness = fields.floats("SliceThickness")
    return {
        "path": path,
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
        "tcia_collection": fields.private_text(TCIA_COLLECTION_TAG),
    }


@dataclass(frozen=True)
class HeaderBatch:
    """Files whose headers one task reads: the work item of :func:`read_headers_item`.

    Paths relative to ``root`` with their sizes from the walk, never file contents. Its repr
    names the first file and the count, so an error note from :func:`bench.parallel.map_ordered`
    stays one line instead of listing hundreds of paths.
    """

    root: str
    files: tuple[tuple[str, int], ...]

    def __repr__(self) -> str:
        first = self.files[0][0] if self.files else "-"
        return f"<{len(self.files)} DICOM file(s) under {self.root}, from {first}>"


def read_headers_item(item: HeaderBatch) -> list[tuple[str, dict | str]]:
    """Read a batch of files -> ``[(rel_path, row or reason)]``, in the batch's order.

    The module-level task :func:`bench.data.dicom.scan_headers` hands to
    :func:`bench.parallel.map_ordered`: a batch of a few hundred files per task keeps the
    pickling and scheduling cost per file small. A file that fails gives its reason (the
    DicomError's message without the path) instead of a row, so one bad file never stops a batch.
    """
    out: list[tuple[str, dict | str]] = []
    for rel_path, size in item.files:
        path = os.path.join(item.root, rel_path)
        try:
            row = read_header(path, size=size)
        except DicomError as error:
            out.append((rel_path, str(error).removeprefix(f"{path}: ")))
        else:
            row["rel_path"] = rel_path
            out.append((rel_path, row))
    return out
