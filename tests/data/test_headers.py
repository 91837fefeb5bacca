"""Fast header reading: the same index rows as pydicom reading each file directly, for every
encoding, header length and kind of damage; the same scan whatever the number of workers.

Expected values come from ``pydicom.dcmread`` on the whole file (the independent peer) or are
written out by hand.
"""

import shutil

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian

from bench.data import dicom
from bench.data.dicom import scan_headers
from bench.data.headers import HEAD_BYTES, candidate_files, read_header
from bench.data.synth import synthesize

#: pydicom's own test files, one per encoding the fast path takes or hands to dcmread.
ENCODINGS = (
    "CT_small.dcm",  # explicit VR little endian
    "MR_small_implicit.dcm",  # implicit VR little endian
    "MR_small_bigendian.dcm",  # explicit VR big endian (dcmread path)
    "MR_small_jp2klossless.dcm",  # JPEG 2000: encapsulated pixel data, no size check
    "image_dfl.dcm",  # deflated data set (dcmread path)
)


def _floats(ds, keyword: str) -> tuple[float, ...] | None:
    return tuple(float(v) for v in ds[keyword].value) if keyword in ds else None


def _peer(path) -> dict:
    """The index values read independently: the whole file through pydicom's Dataset API."""
    ds = pydicom.dcmread(path)
    return {
        "sop_uid": str(ds.SOPInstanceUID),
        "series_uid": str(ds.SeriesInstanceUID),
        "study_uid": str(ds.StudyInstanceUID),
        "modality": str(ds.get("Modality", "")),
        "rows": int(ds.Rows),
        "cols": int(ds.Columns),
        "position": _floats(ds, "ImagePositionPatient"),
        "pixel_spacing": _floats(ds, "PixelSpacing"),
    }


@pytest.mark.parametrize("name", ENCODINGS)
def test_read_header_matches_pydicom_reading_the_whole_file(tmp_path, name):
    source = get_testdata_file(name)
    if source is None:
        pytest.skip(f"pydicom test file {name} not installed")
    target = tmp_path / "image"
    shutil.copyfile(source, target)
    row, expected = read_header(target), _peer(target)
    assert {key: row[key] for key in expected} == expected  # floats parsed from the same text


def _ct_with_private_block(path, block_bytes: int) -> pydicom.Dataset:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if block_bytes:  # a large private block before the pixels, as Siemens CSA headers are
        ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True).add_new(0x10, "OB", b"\x01" * block_bytes)
    ds.save_as(path, enforce_file_format=True)
    return ds


def test_a_header_longer_than_the_head_read_gives_the_same_row(tmp_path):
    _ct_with_private_block(tmp_path / "short.dcm", 0)
    _ct_with_private_block(tmp_path / "long.dcm", 2 * HEAD_BYTES)
    short, long = read_header(tmp_path / "short.dcm"), read_header(tmp_path / "long.dcm")
    assert long["file_size"] > short["file_size"] + 2 * HEAD_BYTES
    for row in (short, long):
        row.pop("path"), row.pop("file_size")
    assert long == short
    assert long["sop_uid"] == _peer(tmp_path / "long.dcm")["sop_uid"]


def test_a_header_cut_inside_a_long_element_is_skipped_with_its_reason(tmp_path):
    _ct_with_private_block(tmp_path / "good.dcm", 1000)
    data = (tmp_path / "good.dcm").read_bytes()
    at = data.index(b"\x29\x00\x10\x11OB") + 6  # (0029,1110): cut between its VR and 4-byte length
    (tmp_path / "cut.dcm").write_bytes(data[:at + 2])
    scan = scan_headers(tmp_path)
    assert list(scan.instances.rel_path) == ["good.dcm"]
    (item, reason), = scan.skipped
    assert item == "cut.dcm"
    assert reason.startswith("unreadable or truncated DICOM header") and "Re-download" in reason


def test_candidate_files_are_in_path_order_and_skip_hidden_and_non_dicom(tmp_path):
    for rel in ("a b/1.dcm", "a/2.dcm", "a/sub/3", "b.DCM", ".ricord-bench/headers", "a/.hidden",
                "a/notes.CSV", "metadata.csv"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x" * len(rel))
    (tmp_path / "link").symlink_to(tmp_path / "a", target_is_directory=True)  # not entered
    found = candidate_files(tmp_path)
    # component order, as sorted() orders Path objects: "a" < "a b" although "a b/" < "a/" as text
    assert [rel for rel, _, _ in found] == ["a/2.dcm", "a/sub/3", "a b/1.dcm", "b.DCM"]
    assert [size for _, size, _ in found] == [7, 7, 9, 5]


def test_the_scan_is_the_same_whatever_the_number_of_workers(tmp_path, monkeypatch):
    root = synthesize(tmp_path / "dl", seed=5, size="tiny").out_dir
    first = sorted(p for p in root.rglob("*.dcm"))[0]
    (first.parent / "zz-copy.dcm").write_bytes(first.read_bytes())  # a duplicate SOPInstanceUID
    (first.parent / "broken.dcm").write_bytes(first.read_bytes()[:300])
    monkeypatch.setattr(dicom, "BATCH_FILES", 7)  # many batches, spread over the pool
    inline = scan_headers(root, workers=1)
    pooled = scan_headers(root, workers=2)
    assert pooled.skipped == inline.skipped
    assert len(inline.instances) > 20
    assert pooled.instances.equals(inline.instances)
    assert dict(inline.skipped)[f"{first.parent.relative_to(root).as_posix()}/zz-copy.dcm"].startswith(
        "duplicate SOPInstanceUID")
