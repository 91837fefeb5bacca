"""DICOM writers for the synthetic collection (pydicom), with real geometry tags.

Files are written without wall-clock values (dates come from the plan) so that one seed
gives byte-identical files.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_dataset, write_file_meta_info
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
SOP_CLASS_NAMES = {
    CT_IMAGE_STORAGE: "CT Image Storage",
    CR_IMAGE_STORAGE: "Computed Radiography Image Storage",
    DX_IMAGE_STORAGE: "Digital X-Ray Image Storage - For Presentation",
}


def _base(common: dict, sop_class: str, sop_uid: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationVersionName = "RICORD_BENCH"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    for key, value in common.items():
        setattr(ds, key, value)
    return ds


#: Elements that change from slice to slice, in tag order (the rest is encoded once per series).
_VARYING = tuple(
    Tag(k) for k in ("SOPInstanceUID", "InstanceNumber", "ImagePositionPatient", "SliceLocation", "PixelData")
)


def _buffer() -> DicomBytesIO:
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = False, True
    return fp


def _constant_segments(ds: Dataset) -> list[bytes]:
    """The encoded elements before, between and after the :data:`_VARYING` tags.

    A dataset is written in tag order, so a slice file is these segments interleaved with
    its varying elements: the same bytes as ``dcmwrite`` (a test checks), several times faster.
    """
    bounds = (-1, *_VARYING, 1 << 32)
    segments = []
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        part = Dataset()
        for tag in sorted(ds.keys()):
            if low < tag < high:
                part.add(ds[tag])
        fp = _buffer()
        write_dataset(fp, part)
        segments.append(fp.getvalue())
    return segments


def _encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _common(study: dict, series: dict) -> dict:
    scanner = study.get("scanner")
    acquisition = {} if scanner is None else {"ManufacturerModelName": scanner["model"],
                                              "ConvolutionKernel": scanner["kernel"]}
    return {
        **acquisition,
        "PatientID": study["patient_id"],
        "PatientName": study["patient_id"],
        "PatientSex": study["sex"],
        "PatientAge": f"{int(study['age']):03d}Y",
        "StudyInstanceUID": study["study_uid"],
        "SeriesInstanceUID": series["series_uid"],
        "StudyDate": study["date"],
        "SeriesDate": study["date"],
        "StudyTime": "120000",
        "StudyID": "",
        "AccessionNumber": "",
        "ReferringPhysicianName": "",
        "StudyDescription": study["description"],
        "SeriesDescription": series["description"],
        "SeriesNumber": series["number"],
        "Modality": series["modality"],
        "Manufacturer": "RICORD-BENCH SYNTHETIC" if scanner is None else scanner["manufacturer"],
        "BodyPartExamined": "CHEST",
    }


class CtSeriesWriter:
    """Writes the slices of one CT series from a template holding the shared elements."""

    def __init__(
        self,
        study: dict,
        series: dict,
        *,
        orientation: tuple[float, ...],
        spacing_yx: tuple[float, float],
        thickness_mm: float,
        intercept: float,
        signed: bool,
        shape_yx: tuple[int, int],
        image_type: str,
        frame_uid: str,
    ):
        ds = _base(_common(study, series), CT_IMAGE_STORAGE, "1.2")
        ds.private_block(0x0013, "CTP", create=True).add_new(0x10, "LO", study["collection"])
        ds.ImageType = image_type.split("\\")
        ds.FrameOfReferenceUID = frame_uid
        ds.InstanceNumber = 1
        ds.AcquisitionNumber = 1
        ds.ImagePositionPatient = ["0", "0", "0"]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
        ds.SliceThickness = f"{thickness_mm:.6g}"
        ds.SliceLocation = "0"
        ds.PixelSpacing = [f"{spacing_yx[0]:.6g}", f"{spacing_yx[1]:.6g}"]
        ds.Rows, ds.Columns = shape_yx
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1 if signed else 0
        ds.RescaleIntercept = f"{intercept:.6g}"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = "-600"
        ds.WindowWidth = "1500"
        ds.PixelData = b""
        ds["PixelData"].VR = "OW"  # what dcmwrite resolves for 16-bit native pixel data
        self.ds = ds
        self.dtype = np.dtype("<i2" if signed else "<u2")
        self.segments = _constant_segments(ds)

    def write(
        self,
        path: Path,
        *,
        sop_uid: str,
        instance: int,
        stored: np.ndarray,
        position: tuple[float, float, float],
    ) -> int:
        """Write one slice; returns the file size in bytes."""
        ds = self.ds
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = instance
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.SliceLocation = f"{position[2]:.6f}"
        ds.PixelData = np.ascontiguousarray(stored, dtype=self.dtype).tobytes()
        fp = _buffer()
        fp.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(fp, ds.file_meta, enforce_standard=True)
        for segment, tag in zip(self.segments, (*_VARYING, None), strict=True):
            fp.write(segment)
            if tag is not None:
                write_data_element(fp, ds[tag])
        data = fp.getvalue()
        path.write_bytes(data)
        return len(data)


def write_radiograph(
    path: Path,
    study: dict,
    series: dict,
    *,
    sop_uid: str,
    density: np.ndarray,
    photometric: str,
    spacing_yx: tuple[float, float],
    view: str,
) -> int:
    """Write one CR or DX image (12-bit); returns the file size in bytes.

    ``density`` is in [0, 4095], higher = denser. MONOCHROME1 stores ``4095 - density``.
    CR carries PixelSpacing, DX only ImagerPixelSpacing (as detectors often do).
    """
    modality = series["modality"]
    sop_class = CR_IMAGE_STORAGE if modality == "CR" else DX_IMAGE_STORAGE
    ds = _base(_common(study, series), sop_class, sop_uid)
    ds.private_block(0x0013, "CTP", create=True).add_new(0x10, "LO", study["collection"])
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.InstanceNumber = 1
    ds.ViewPosition = view
    ds.PatientOrientation = ["L", "F"] if view != "LL" else ["A", "F"]
    stored = density if photometric == "MONOCHROME2" else 4095.0 - density
    stored = np.round(stored).astype("<u2")
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    spacing = [f"{spacing_yx[0]:.6g}", f"{spacing_yx[1]:.6g}"]
    if modality == "CR":
        ds.PixelSpacing = spacing
    else:
        ds.ImagerPixelSpacing = spacing
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
        ds.RescaleType = "US"
    ds.WindowCenter = "2048"
    ds.WindowWidth = "4096"
    ds.PixelData = stored.tobytes()
    data = _encode(ds)
    path.write_bytes(data)
    return len(data)
