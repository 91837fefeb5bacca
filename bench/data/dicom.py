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
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from bench.data.header_index import read_index, write_index
from bench.data.headers import HEADER_COLUMNS, HeaderBatch, candidate_files, read_headers_item
from bench.data.hu import hu_into
from bench.errors import DicomError

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

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


#: Files per task when headers are read by a process pool: large enough that pickling a
#: batch's rows costs little per file, small enough to spread the work over the workers.
BATCH_FILES = 256
#: Below this many files the headers are read in this process by default: a spawned pool
#: costs about a second (each worker imports pydicom) before its first result, more than a
#: second core saves on a smaller download (docs/scaling.md, "Indexing").
POOL_MIN_FILES = 6000


def default_scan_workers(n_files: int) -> int | None:
    """Workers when none were asked for: 1 (this process) below :data:`POOL_MIN_FILES`
    files, else None (one per core)."""
    return 1 if n_files < POOL_MIN_FILES else None


def scan_headers(root: str | os.PathLike, *, progress: Progress | None = None, workers: int | None = None,
                 under: str | None = None, update_index: bool = False,
                 reuse_index: bool = True) -> HeaderScan:
    """Walk ``root`` and read every candidate file's header (up to the pixel data).

    Files that fail (not DICOM, truncated, no UIDs) are listed in ``skipped`` with the
    reason instead of stopping the walk. Duplicate SOPInstanceUIDs keep the first path in
    sorted order and list the others as skipped.

    Parameters
    ----------
    workers : int, optional
        Processes reading headers (default :func:`default_scan_workers`); the result is the
        same whatever their number.
    under : str, optional
        A folder relative to ``root`` (a manifest's ``series_dir``): only the files below it
        are scanned; ``rel_path`` stays relative to ``root``.
    update_index : bool
        Store what was read as the download's header index (:mod:`bench.data.header_index`;
        ``bench data index`` does).
    reuse_index : bool
        Take the rows of the files that did not change since the header index was written from
        it, and read only the others (default); False reads every file.
    """
    root = Path(root)
    under = None if under is None or Path(under).as_posix() in ("", ".") else Path(under).as_posix()
    top = root / under if under else root
    if not top.is_dir():
        if under:
            raise DicomError(f"{top}: not a folder of the download {root} any more; the download moved or "
                             "changed. Re-run `bench data index`.")
        raise DicomError(
            f"{root}: download root is not a directory. Pass the folder that holds "
            "the collection folders (and metadata.csv)."
        )
    prefix = f"{under}/" if under else ""
    files = [(prefix + rel_path, size, stamp) for rel_path, size, stamp in candidate_files(top)]
    index = read_index(root) if reuse_index else {}
    changed = [(rel_path, size) for rel_path, size, stamp in files
               if (entry := index.get(rel_path)) is None or entry[:2] != (size, stamp)]
    fresh = dict(_read_headers(root, changed, workers, progress))
    if index and changed:
        log.info("%s: %d of %d file(s) are new or changed since the header index was written; read again",
                 top, len(changed), len(files))
    rows: list[dict] = []
    skipped: list[tuple[str, str]] = []
    entries = {}
    base = str(root)
    for rel_path, size, stamp in files:
        result = fresh[rel_path] if rel_path in fresh else index[rel_path][2]
        entries[rel_path] = (size, stamp, result)
        if isinstance(result, str):
            log.warning("%s: %s", root / rel_path, result)
            skipped.append((rel_path, result))
        else:
            rows.append(result if rel_path in fresh else {**result, "path": os.path.join(base, rel_path)})
    if update_index and under is None and (changed or len(index) != len(files)):
        write_index(root, entries)
    return _deduplicated(rows, skipped)


def _read_headers(root: Path, files: list[tuple[str, int]], workers: int | None,
                  progress: Progress | None) -> list[tuple[str, dict | str]]:
    """:func:`read_headers_item` over ``files`` in batches of :data:`BATCH_FILES`, in file order."""
    from bench.parallel import map_ordered

    batches = [HeaderBatch(str(root), tuple(files[start:start + BATCH_FILES]))
               for start in range(0, len(files), BATCH_FILES)]
    ends = [min(len(files), (k + 1) * BATCH_FILES) for k in range(len(batches))]

    def report(done: int, total: int, _: str) -> None:
        if progress is not None:
            progress(ends[done - 1], len(files), "reading DICOM headers")

    if workers is None:
        workers = default_scan_workers(len(files))
    if workers == 1:  # in this process, whatever BENCH_SCHEDULER says: no pool to start
        results = []
        for done, batch in enumerate(batches, start=1):
            results.append(read_headers_item(batch))
            report(done, len(batches), "")
    else:
        results = map_ordered(read_headers_item, batches, workers=workers, progress=report)
    return [pair for batch in results for pair in batch]


def _deduplicated(rows: list[dict], skipped: list[tuple[str, str]]) -> HeaderScan:
    """The scan's table; a SOPInstanceUID seen again keeps its first row, the others are skipped."""
    frame = pd.DataFrame(rows, columns=list(HEADER_COLUMNS))
    duplicated = frame.duplicated("sop_uid", keep="first")
    for rel_path, sop_uid in zip(frame.rel_path[duplicated], frame.sop_uid[duplicated], strict=True):
        skipped.append((rel_path, f"duplicate SOPInstanceUID {sop_uid} (first copy kept)"))
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
