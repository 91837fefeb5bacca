"""What a series' DICOM header says about how it was acquired, never its pixels.

Why: a model can score well on RICORD's COVID task by recognizing the source rather than the
disease (1a is all COVID-positive, 1b all negative, separate collections: the near worst-case
confounding of DeGrave et al., Nature Machine Intelligence 2021). The confound floor
(:mod:`bench.pipeline.confound`) fits a model on exactly these fields; what it scores is what the
header alone gives away.

Fields (:data:`bench.tasks.ACQUISITION_FEATURES`), read from one instance of the series with
``stop_before_pixels``: ``manufacturer``, ``model`` (ManufacturerModelName), ``kernel``
(ConvolutionKernel, multi-valued joined by ``\\``), ``slice_thickness_mm``, ``pixel_spacing_mm``
(the row spacing; ImagerPixelSpacing for radiographs without PixelSpacing), ``rows``,
``columns``, ``study_date`` (days since 1970-01-01) and ``site`` (from the manifest, not the
header). A field the header lacks is None.
"""

import datetime as dt
import os

import pydicom
from pydicom.errors import InvalidDicomError

from bench.errors import DicomError
from bench.tasks import ACQUISITION_FEATURES

CATEGORICAL = ("manufacturer", "model", "kernel", "site")
NUMERIC = tuple(name for name in ACQUISITION_FEATURES if name not in CATEGORICAL)
_EPOCH = dt.date(1970, 1, 1)


def _text(value) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value) or None
    return str(value).strip() or None


def _number(value) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, pydicom.multival.MultiValue):
        value = value[0] if len(value) else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _days(value) -> float | None:
    text = _text(value)
    try:
        return float((dt.datetime.strptime(text, "%Y%m%d").date() - _EPOCH).days) if text else None
    except ValueError:
        return None


def read_acquisition(path: str | os.PathLike, *, site: str | None = None) -> dict:
    """The acquisition fields of the instance at ``path`` (module docstring), plus ``site``.

    Raises
    ------
    DicomError
        The file is not readable DICOM.
    """
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (OSError, InvalidDicomError, EOFError) as error:
        raise DicomError(
            f"{path}: cannot read the DICOM header ({error}); re-download the series.") from error
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    return {
        "manufacturer": _text(ds.get("Manufacturer")),
        "model": _text(ds.get("ManufacturerModelName")),
        "kernel": _text(ds.get("ConvolutionKernel")),
        "site": site or None,
        "slice_thickness_mm": _number(ds.get("SliceThickness")),
        "pixel_spacing_mm": _number(spacing),
        "rows": _number(ds.get("Rows")),
        "columns": _number(ds.get("Columns")),
        "study_date": _days(ds.get("StudyDate")),
    }
