"""DICOM layer: header index, slice ordering, HU, affine, radiograph LUTs, bad files.

Expected values are written out by hand (small hand-made series) or come from the
headers read back independently with pydicom.
"""

import hashlib

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from bench.data.dicom import (
    index_headers,
    load_ct_series,
    load_radiograph,
    order_slices,
    scan_headers,
)
from bench.data.headers import read_header
from bench.errors import DicomError


def _ct(
    path,
    *,
    z,
    stored,
    intercept=-1024.0,
    slope=1.0,
    series="1.2.3.4",
    sop=None,
    orientation=None,
    spacing=(0.5, 0.7),
):
    meta = FileMetaDataset()
    sop = sop or generate_uid()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = "1.2.3"
    ds.SeriesInstanceUID = series
    ds.PatientID = "P1"
    ds.Modality = "CT"
    ds.ImagePositionPatient = [10.0, 20.0, z]
    ds.ImageOrientationPatient = orientation or [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = list(spacing)
    ds.SliceThickness = 2.5
    stored = np.asarray(stored, dtype=np.uint16)
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = intercept
    ds.RescaleSlope = slope
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return sop


def test_order_slices_sorts_along_normal_and_reports_spacing():
    positions = np.array([[0, 0, 5.0], [0, 0, -5.0], [0, 0, 0.0], [0, 0, 10.0]])
    geometry = order_slices(positions, (1, 0, 0, 0, 1, 0), sop_uids=list("abcd"), where="s")
    assert list(geometry.order) == [1, 2, 0, 3]
    assert geometry.slice_spacing_mm == pytest.approx(5.0)
    assert np.allclose(geometry.step_lps, [0, 0, 5.0])


def test_order_slices_coronal_normal():
    # Coronal: row direction +x, column direction -z -> normal = x cross (-z) = +y.
    positions = np.array([[0, 3.0, 0], [0, 1.0, 0], [0, 2.0, 0]])
    geometry = order_slices(positions, (1, 0, 0, 0, 0, -1), sop_uids=list("abc"), where="s")
    assert list(geometry.order) == [1, 2, 0]


def test_missing_slice_message():
    positions = np.array([[0, 0, z] for z in (0.0, 2.0, 4.0, 8.0, 10.0)])
    with pytest.raises(
        DicomError, match=r"series S1: missing slice: gap of 4\.000 mm between slices c and d"
    ):
        order_slices(positions, (1, 0, 0, 0, 1, 0), sop_uids=list("abcde"), where="S1")


def test_uneven_spacing_message():
    positions = np.array([[0, 0, z] for z in (0.0, 2.0, 4.0, 7.0, 9.0, 11.0)])
    with pytest.raises(DicomError, match=r"series S1: uneven slice spacing: gap of 3\.000 mm .*tolerance "
                                         r"0\.200 mm \(0\.1 mm \+ 5%\).*resample it"):
        order_slices(positions, (1, 0, 0, 0, 1, 0), sop_uids=list("abcdef"), where="S1")


def test_spacing_variation_within_the_tolerance_is_accepted():
    # 2 mm slices: tolerance 0.1 + 5% x 2 = 0.2 mm per gap (dicom2nifti's rtol 0.05, atol 0.1)
    positions = np.array([[0, 0, z] for z in (0.0, 2.0, 4.15, 6.0, 8.0)])
    order = order_slices(positions, (1, 0, 0, 0, 1, 0), sop_uids=list("abcde"), where="S1")
    assert order.irregular and order.max_deviation_mm == pytest.approx(0.15)
    assert order.slice_spacing_mm == pytest.approx(2.0) and np.allclose(order.step_lps, [0, 0, 2.0])
    regular = order_slices(np.array([[0, 0, 2.0 * k] for k in range(4)]), (1, 0, 0, 0, 1, 0),
                           sop_uids=list("abcd"), where="S1")
    assert not regular.irregular


def test_duplicate_position_message():
    positions = np.array([[0, 0, z] for z in (0.0, 2.0, 2.0, 4.0)])
    with pytest.raises(DicomError, match="share the position"):
        order_slices(positions, (1, 0, 0, 0, 1, 0), sop_uids=list("abcd"), where="S1")


def test_load_ct_series_hu_order_spacing_affine(tmp_path):
    # Files written in an order unrelated to position; HU by hand: stored * slope + intercept.
    sops = {}
    for name, z, value in (("x.dcm", 5.0, 1024), ("y.dcm", 0.0, 0), ("z.dcm", 2.5, 2048)):
        sops[z] = _ct(tmp_path / name, z=z, stored=[[value, value + 1, 0], [3000, value, value]])
    volume = load_ct_series(sorted(tmp_path.glob("*.dcm")))
    assert volume.hu.shape == (3, 2, 3)
    assert volume.hu.dtype == np.int16
    assert volume.hu[:, 0, 0].tolist() == [-1024, 1024, 0]  # z = 0, 2.5, 5
    assert volume.hu[0, 1, 0] == 1976.0
    assert volume.sop_uids == (sops[0.0], sops[2.5], sops[5.0])
    assert volume.spacing_mm == pytest.approx((2.5, 0.5, 0.7))
    # index (k, j, i) -> LPS: origin + k * 2.5 z + j * 0.5 (col dir y) + i * 0.7 (row dir x)
    expected = np.array([[0, 0, 0.7, 10.0], [0, 0.5, 0, 20.0], [2.5, 0, 0, 0.0], [0, 0, 0, 1]])
    assert np.allclose(volume.affine_lps, expected)
    assert np.allclose(volume.affine_lps @ [1, 1, 2, 1], [10 + 1.4, 20 + 0.5, 2.5, 1])
    # the pixels' fingerprint comes from the same read, equal to hashing each file's PixelData
    files = sorted(tmp_path.glob("*.dcm"))
    assert volume.pixel_sha256 == tuple(sorted(
        (str(pydicom.dcmread(f).SOPInstanceUID), hashlib.sha256(pydicom.dcmread(f).PixelData).hexdigest())
        for f in files))


def test_load_ct_series_rescale_slope(tmp_path):
    _ct(tmp_path / "a.dcm", z=0.0, stored=[[10, 20]], slope=2.0, intercept=-100.0)
    _ct(tmp_path / "b.dcm", z=1.0, stored=[[0, 1]], slope=2.0, intercept=-100.0)
    volume = load_ct_series(sorted(tmp_path.glob("*.dcm")))
    assert volume.hu.tolist() == [[[-80, -60]], [[-100, -98]]]


def test_load_ct_series_rounds_half_to_even_and_clips_to_int16(tmp_path):
    """Fractional HU are rounded as numpy.rint does (half to even) and clipped to the int16 range,
    the values prepare writes; in the same order the volume equals the series given in any order."""
    _ct(tmp_path / "a.dcm", z=0.0, stored=[[3, 5, 7, 65535]], slope=0.5, intercept=0.0)
    _ct(tmp_path / "b.dcm", z=1.0, stored=[[0, 65535, 1, 2]], slope=1.0, intercept=-1024.0)
    _ct(tmp_path / "c.dcm", z=2.0, stored=[[65535, 0, 1, 2]], slope=1.0, intercept=1000.0)
    files = sorted(tmp_path.glob("*.dcm"))
    volume = load_ct_series(files)
    assert volume.hu.dtype == np.int16
    assert volume.hu.tolist() == [[[2, 2, 4, 32767]], [[-1024, 32767, -1023, -1022]],
                                  [[32767, 1000, 1001, 1002]]]
    reversed_order = load_ct_series(files[::-1])
    assert np.array_equal(reversed_order.hu, volume.hu) and reversed_order.sop_uids == volume.sop_uids


def test_load_ct_series_rejects_mixed_series(tmp_path):
    _ct(tmp_path / "a.dcm", z=0.0, stored=[[0]], series="1.2.3.4")
    _ct(tmp_path / "b.dcm", z=1.0, stored=[[0]], series="1.2.3.5")
    with pytest.raises(DicomError, match="SeriesInstanceUID"):
        load_ct_series(sorted(tmp_path.glob("*.dcm")))


def test_load_ct_series_missing_slice(tmp_path):
    for z in (0.0, 1.0, 3.0, 4.0):
        _ct(tmp_path / f"{z}.dcm", z=z, stored=[[0]])
    with pytest.raises(DicomError, match="missing slice"):
        load_ct_series(sorted(tmp_path.glob("*.dcm")))


def test_truncated_and_non_dicom_files_are_skipped_with_reasons(tmp_path):
    _ct(tmp_path / "good.dcm", z=0.0, stored=np.zeros((8, 8)))
    data = (tmp_path / "good.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[:-40])
    (tmp_path / "header_cut.dcm").write_bytes(data[:200])
    (tmp_path / "notes.dcm").write_text("this is not DICOM")
    (tmp_path / "metadata.csv").write_text("a,b\n")  # not a DICOM candidate at all
    scan = scan_headers(tmp_path)
    assert list(scan.instances.rel_path) == ["good.dcm"]
    reasons = dict(scan.skipped)
    assert set(reasons) == {"cut.dcm", "header_cut.dcm", "notes.dcm"}
    assert "truncated DICOM file: 88 bytes left for pixel data, 128 expected" in reasons["cut.dcm"]
    assert "not a DICOM file" in reasons["notes.dcm"]
    assert "Re-download" in reasons["header_cut.dcm"]
    with pytest.raises(DicomError, match=r"cut\.dcm: truncated"):
        read_header(tmp_path / "cut.dcm")


def test_a_dicom_without_pixel_data_is_reported_as_missing_pixel_data(tmp_path):
    _ct(tmp_path / "good.dcm", z=0.0, stored=np.zeros((8, 8)))
    ds = pydicom.dcmread(tmp_path / "good.dcm")
    del ds.PixelData
    ds.save_as(tmp_path / "nopixels.dcm")
    reasons = dict(scan_headers(tmp_path).skipped)
    assert set(reasons) == {"nopixels.dcm"}
    assert "no PixelData element (missing pixel data" in reasons["nopixels.dcm"]
    assert "bytes left" not in reasons["nopixels.dcm"]


def test_load_radiograph_rejects_non_dicom(tmp_path):
    (tmp_path / "x.dcm").write_text("nope")
    with pytest.raises(DicomError, match=r"x\.dcm: not a DICOM file"):
        load_radiograph(tmp_path / "x.dcm")


def test_index_headers_real_ct_small(tmp_path):
    source = get_testdata_file("CT_small.dcm")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1-1.dcm").write_bytes(open(source, "rb").read())
    frame = index_headers(tmp_path)
    row = frame.iloc[0]
    header = pydicom.dcmread(source, stop_before_pixels=True)
    assert row.sop_uid == header.SOPInstanceUID
    assert row.series_uid == header.SeriesInstanceUID
    assert row.modality == "CT"
    assert row.position == pytest.approx((-158.135803, -179.035797, -75.699997))
    assert row.rows == 128 and row.cols == 128


def test_read_header_same_for_implicit_and_explicit_vr(tmp_path):
    source = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(source)
    ds.private_block(0x0013, "CTP", create=True).add_new(0x10, "LO", "MIDRC-RICORD-1A")
    ds.save_as(tmp_path / "explicit.dcm", enforce_file_format=True)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.save_as(tmp_path / "implicit.dcm", implicit_vr=True, little_endian=True, enforce_file_format=True)
    explicit, implicit = read_header(tmp_path / "explicit.dcm"), read_header(tmp_path / "implicit.dcm")
    for key in ("path", "file_size"):
        explicit.pop(key), implicit.pop(key)
    assert implicit == explicit
    assert explicit["tcia_collection"] == "MIDRC-RICORD-1A"
    assert explicit["series_number"] == int(ds.SeriesNumber) and explicit["rows"] == 128
    assert explicit["image_type"] == "\\".join(ds.ImageType)
    assert explicit["pixel_spacing"] == pytest.approx(tuple(float(v) for v in ds.PixelSpacing))


def _radiograph(path, stored, photometric, *, window=(2048, 4096)):
    meta = FileMetaDataset()
    sop = generate_uid()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = "1.2.3"
    ds.SeriesInstanceUID = "1.2.3.4"
    ds.Modality = "CR"
    stored = np.asarray(stored, dtype=np.uint16)
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.ImagerPixelSpacing = [0.2, 0.3]
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_monochrome1_is_the_inverse_of_monochrome2(tmp_path):
    # A MONOCHROME1 image with stored S must display like a MONOCHROME2 image with 4095 - S.
    stored = np.array([[0, 100, 2048], [3000, 4095, 1]])
    _radiograph(tmp_path / "m1.dcm", stored, "MONOCHROME1")
    _radiograph(tmp_path / "m2.dcm", 4095 - stored, "MONOCHROME2")
    m1, m2 = load_radiograph(tmp_path / "m1.dcm"), load_radiograph(tmp_path / "m2.dcm")
    assert np.allclose(m1.pixels, m2.pixels)
    assert m1.pixels[1, 1] < m1.pixels[0, 0]  # stored 4095 (MONOCHROME1: black) darkest
    assert m1.spacing_mm == (0.2, 0.3) and m1.spacing_source == "ImagerPixelSpacing"


def test_radiograph_without_window_keeps_stored_values(tmp_path):
    stored = np.array([[0, 7], [4095, 12]])
    _radiograph(tmp_path / "a.dcm", stored, "MONOCHROME2", window=None)
    assert load_radiograph(tmp_path / "a.dcm").pixels.tolist() == [[0, 7], [4095, 12]]


def test_real_radiograph_rg1_monochrome1():
    path = get_testdata_file("RG1_UNCR.dcm")
    if path is None:
        pytest.skip("pydicom-data is not installed (it ships RG1_UNCR.dcm)")
    image = load_radiograph(path)
    raw = pydicom.dcmread(path).pixel_array.astype(float)
    assert image.pixels.shape == raw.shape == (1955, 1841)
    assert image.photometric == "MONOCHROME1"
    # Inverted: brighter output wherever the stored value is lower (window 15000/30000 is linear here).
    sample = np.argsort(raw.ravel())[:: raw.size // 500]
    out = image.pixels.ravel()[sample]
    assert np.all(np.diff(out) <= 1e-3)
    assert image.spacing_source == "assumed" and image.spacing_mm == (1.0, 1.0)  # PixelSpacing is 0\0
