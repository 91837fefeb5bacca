"""Content fingerprints of a case: what a pinned split promises about each case's data.

A split is only citable if anyone can check that their download holds the same cases with the
same content. A case's fingerprint has three parts, each a hex sha256:

``images``
    sha256 of the canonical JSON of ``[[SOPInstanceUID, sha256(PixelData)], ...]`` over every
    instance of the case's series, sorted by SOPInstanceUID. The pixel hash is over the
    PixelData element's bytes exactly as stored in the file (encapsulated bytes for compressed
    transfer syntaxes), so it does not depend on any decoder or library version; header edits
    (re-anonymization, private tags) do not change it, a changed pixel does.
``annotations``
    sha256 of the canonical JSON of the case's MD.ai annotation records (every record whose
    StudyInstanceUID is the case's study), each reduced to the fields that carry meaning
    (:data:`bench.data.mdai.ANNOTATION_FIELDS`, read by :func:`bench.data.mdai.read_annotation_records`,
    the one parser of the export) and sorted by its own canonical JSON. Volatile fields that an
    export rewrites without a change of content (record ids, timestamps, review counters,
    update history) are left out, label ids are replaced by label names, and integral numbers
    are written as integers (``47.0`` and ``47`` hash alike). A study without records hashes
    the empty list.
``case``
    sha256 of the canonical JSON of ``{"annotations": ..., "images": ...}``.

Pixel hashing is the slow part (the real RICORD download is ~54,000 instances), so it runs one
case per task through :func:`bench.parallel.map_ordered` (:func:`fingerprint_images_item`);
:func:`default_fingerprint_workers` keeps small jobs in this process, where a process pool's
start-up would cost more than it saves (in-process below 1 GiB of estimated work).
"""

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from bench.errors import DicomError
from bench.io import canonical_json, sha256_json

Progress = Callable[[int, int, str], None]


#: sha256 of a study with no annotation records.
EMPTY_ANNOTATIONS = sha256_json([])

#: Fingerprinting runs in this process by default below this much estimated work, in bytes
#: (file sizes plus :data:`PER_FILE_BYTES` per file). Measured on a 2-core machine with a warm
#: page cache: one process hashes ~400 MiB/s of full-size CT files and spends ~0.6 ms opening
#: each file, while a spawned pool costs ~2 s before its first result; 1 GiB is ~2.5 s of
#: hashing, about what a pool on two free cores would save (docs/splits.md, "Costs": on the
#: busy build machine no job size gained from a second worker).
INLINE_BYTES = 1024 * 1024 * 1024
#: What opening and parsing one DICOM file costs, expressed in bytes of pixel hashing (~0.6 ms).
PER_FILE_BYTES = 256 * 1024


@dataclass(frozen=True)
class Fingerprint:
    """The three content hashes of one case (see the module docstring).

    ``images`` is None for a split published before its pixels were fingerprinted (pinned
    from the annotation export; :mod:`bench.splits.publish`): then ``case`` is None too, until
    the split's lock file supplies the pixel hash.
    """

    images: str | None
    annotations: str

    @property
    def case(self) -> str | None:
        """sha256 over both parts: the one hash that changes whenever the case does."""
        if self.images is None:
            return None
        return sha256_json({"annotations": self.annotations, "images": self.images})

    def as_dict(self) -> dict:
        return {"annotations": self.annotations, "case": self.case, "images": self.images}


def pixel_sha256(path: str | os.PathLike) -> tuple[str, str]:
    """(SOPInstanceUID, sha256 of the stored PixelData bytes) of one DICOM file.

    Raises
    ------
    DicomError
        The file is not DICOM, is truncated, or has no pixel data.
    """
    try:
        ds = pydicom.dcmread(path)
        sop_uid = str(ds.SOPInstanceUID)
        data = ds.PixelData
    except InvalidDicomError as error:
        raise DicomError(f"{path}: not a DICOM file ({error}). Re-download it.") from error
    except AttributeError as error:
        raise DicomError(f"{path}: DICOM file without SOPInstanceUID or PixelData ({error}); it cannot "
                         "be fingerprinted. Re-download it.") from error
    except (EOFError, OSError, ValueError, KeyError, TypeError) as error:
        raise DicomError(f"{path}: unreadable or truncated DICOM file ({type(error).__name__}: {error}). "
                         "Re-download it.") from error
    return sop_uid, hashlib.sha256(bytes(data)).hexdigest()


def images_fingerprint(paths: Sequence[str | os.PathLike]) -> str:
    """sha256 over the sorted (SOPInstanceUID, pixel sha256) pairs of a series' files."""
    return fingerprint_of_pixels(pixel_sha256(path) for path in paths)


def fingerprint_of_pixels(pairs) -> str:
    """:func:`images_fingerprint` from (SOPInstanceUID, pixel sha256) pairs already at hand (e.g.
    :attr:`bench.data.dicom.CtVolume.pixel_sha256`, taken while loading the volume)."""
    return sha256_json([list(pair) for pair in sorted(pairs)])


@dataclass(frozen=True)
class CaseFiles:
    """One case's DICOM files: the work item of :func:`fingerprint_images_item`.

    Paths only, never pixels: the worker reads the files itself. Its repr names the case and
    the number of files, so an error note from :func:`bench.parallel.map_ordered` stays one line
    instead of listing hundreds of paths.
    """

    case_id: str
    paths: tuple[str, ...]

    def __repr__(self) -> str:
        return f"<case {self.case_id}: {len(self.paths)} DICOM files>"


def fingerprint_images_item(item: CaseFiles) -> str:
    """:func:`images_fingerprint` of one case; the module-level task for ``map_ordered``."""
    return images_fingerprint(item.paths)


def default_fingerprint_workers(items: Sequence[CaseFiles], *,
                                inline_bytes: int = INLINE_BYTES) -> int | None:
    """Workers when none were asked for: 1 (this process) for small jobs, else None (all cores).

    The rule: estimated work = the items' file sizes (``os.stat``, nothing is read) plus
    :data:`PER_FILE_BYTES` (256 KiB) per file; below ``inline_bytes`` (:data:`INLINE_BYTES`,
    1 GiB) the job runs in this process, because a process pool's start-up of about two seconds
    would cost more than it saves. So the built-in synthetic collections (``small`` and ``full``)
    pin in-process, and the real RICORD download (tens of GB) on every core. A file that
    cannot be stat-ed counts only its per-file cost; reading it raises later, naming it.
    """
    total = 0
    for item in items:
        for path in item.paths:
            try:
                total += os.stat(path).st_size + PER_FILE_BYTES
            except OSError:
                total += PER_FILE_BYTES
            if total >= inline_bytes:
                return None
    return 1


def annotations_fingerprint(records: Sequence[Mapping]) -> str:
    """sha256 of one study's reduced records, sorted by their canonical JSON."""
    return sha256_json(sorted(records, key=canonical_json))


def locate_series(root: str | os.PathLike, series_uids: Iterable[str], *, hint_dirs: Iterable[str] = (),
                  progress: Progress | None = None) -> dict[str, list[Path]]:
    """Files of each wanted series under ``root``, found by the SeriesInstanceUID in their headers.

    ``hint_dirs`` (paths relative to ``root``, e.g. the manifest's ``series_dir``) are read first;
    series not found there are looked for in a scan of the whole tree. Folder names are only a
    shortcut, never the identity. Series that are nowhere are absent from the result. The
    download's header index (written by ``bench data index``) stands in for every file that
    did not change since (:mod:`bench.data.header_index`).
    """
    from bench.data.dicom import scan_headers

    root = Path(root)
    wanted = set(series_uids)
    found: dict[str, set[Path]] = {}

    def take(instances) -> None:
        for series_uid, group in instances[instances["series_uid"].isin(wanted)].groupby("series_uid"):
            found.setdefault(str(series_uid), set()).update(Path(p) for p in group["path"])

    dirs = sorted({d for d in hint_dirs if isinstance(d, str) and d and (root / d).is_dir()})
    for done, directory in enumerate(dirs, start=1):
        take(scan_headers(root, under=directory).instances)
        if progress is not None:
            progress(done, len(dirs), "locating series")
    if wanted - set(found):
        take(scan_headers(root, progress=progress).instances)
    return {uid: sorted(paths) for uid, paths in found.items()}
