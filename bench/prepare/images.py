"""Converted images by pinned fingerprint: from the cache, else from DICOM (checked, then cached).

Every image is checked against the pinned fingerprint before use, so a prepared split is
exactly the pinned one; converted images are cached by that fingerprint, so a second prepare
reads no DICOM at all. A cache entry is written once, in a folder renamed into place, and never
rewritten. Images are *copied* into the cache and out of it, never hard-linked: a prepared image
is what a submission sees (its snapshot links it), and a link would tell it the image's history.
The cache is shared by every task, so in a CT COVID split the images already converted for the
1a segmentation task (all COVID positive) would come out of the cache with an older modification
time, an older inode and one link more than the 1b (negative) ones converted now: the label, read
by ``stat``. A copy is a new file, written in the split's opaque case order like every other.
"""

import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import nibabel as nib

from bench.errors import PrepareError
from bench.io import atomic_directory, write_json
from bench.prepare import nifti
from bench.splits.fingerprints import fingerprint_of_pixels, images_fingerprint, locate_series
from bench.splits.pinned import SplitCase
from bench.tasks import TaskSpec

log = logging.getLogger(__name__)

#: Version of the DICOM -> NIfTI conversion; part of the cache key (v3: compressed in fixed pieces as
#: written, :func:`bench.prepare.nifti.save`, so the bytes differ from v2 files).
CONVERSION = "nifti-v3"


_CACHE_FILES = ("image.nii.gz", "geometry.json")


def default_cache_dir() -> Path:
    """``$BENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/ricord-bench``, else ``~/.cache/ricord-bench``."""
    if os.environ.get("BENCH_CACHE_DIR"):
        return Path(os.environ["BENCH_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ricord-bench"


def cache_entry(cache_dir: str | os.PathLike, case: SplitCase) -> Path:
    """The cache folder of a case's converted image: ``<cache_dir>/<CONVERSION>/<images fingerprint>``.

    It holds ``image.nii.gz`` and ``geometry.json`` once the case has been converted.
    """
    return Path(cache_dir) / CONVERSION / case.fingerprint.images


class ImageSource:
    """Converted images by pinned fingerprint: from the cache, else from DICOM (checked, then cached)."""

    def __init__(self, spec: TaskSpec, root: Path, cache_dir: Path | None, rows: Mapping[str, dict],
                 cases: tuple[SplitCase, ...]):
        self.spec, self.root, self.rows = spec, root, rows
        self.cache = Path(cache_dir) if cache_dir is not None else None
        self.hits = 0
        self._located: dict[str, list[Path]] | None = None
        self._pending = [case for case in cases if not self._cached(case)]

    def _entry(self, case: SplitCase) -> Path | None:
        return cache_entry(self.cache, case) if self.cache is not None else None

    def _cached(self, case: SplitCase) -> bool:
        entry = self._entry(case)
        return entry is not None and all((entry / name).is_file() for name in _CACHE_FILES)

    def _paths(self, case: SplitCase) -> list[Path]:
        if self._located is None:
            hints = [self.rows[c.case_id].get("series_dir") for c in self._pending]
            self._located = locate_series(self.root, [c.series_uid for c in self._pending], hint_dirs=hints)
        paths = self._located.get(case.series_uid)
        if not paths:
            raise PrepareError(f"case {case.case_id}: series {case.series_uid} is not under {self.root}. "
                               "Run `bench splits verify` on this download.")
        return paths

    def get(self, case: SplitCase, into: Path) -> tuple[nib.Nifti1Image, dict]:
        """Write the case's image to ``into``; return it with its geometry (slice SOP UIDs, shape)."""
        if self._cached(case):
            self.hits += 1
            entry = self._entry(case)
            shutil.copyfile(entry / "image.nii.gz", into)
            return nib.load(into), json.loads((entry / "geometry.json").read_text(encoding="utf-8"))
        image, geometry = self._convert(case)
        nifti.save(image, into)
        entry = self._entry(case)
        if entry is not None and not entry.exists():
            try:
                with atomic_directory(entry) as tmp:
                    shutil.copyfile(into, tmp / "image.nii.gz")
                    write_json(tmp / "geometry.json", geometry)
            except OSError as error:  # another prepare filled the entry first, or the cache is read-only
                log.warning("could not cache %s: %s", entry, error)
        return nib.load(into), geometry

    def _convert(self, case: SplitCase) -> tuple[nib.Nifti1Image, dict]:
        from bench.data.dicom import CtVolume
        from bench.data.ricord import load_case_image

        image = load_case_image(self.root, self.rows[case.case_id])
        # a CT volume carries its pixels' fingerprint from the read that loaded it; a radiograph is
        # one file of its series, whose fingerprint covers every file
        found = fingerprint_of_pixels(image.pixel_sha256) if isinstance(image, CtVolume) \
            else images_fingerprint(self._paths(case))
        if found != case.fingerprint.images:
            raise PrepareError(f"case {case.case_id}: the pixel data under {self.root} differ from the "
                               "pinned split. Run `bench splits verify` and re-download the changed cases.")
        if isinstance(image, CtVolume):
            return (nifti.ct_image(image.hu, image.affine_lps),
                    {"kind": "CT", "sop_uids": list(image.sop_uids), "shape_zyx": list(image.hu.shape),
                     "sop_aliases": dict(image.sop_aliases)})
        return (nifti.radiograph_image(image.pixels, image.spacing_mm),
                {"kind": "CXR", "sop_uids": [image.sop_uid], "shape_yx": list(image.pixels.shape)})
