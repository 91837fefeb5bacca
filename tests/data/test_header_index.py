"""The header index: written by indexing, reused by every later scan for the files that did not
change, never trusted for a file that did (real DICOM files written and edited with pydicom)."""

import logging
import os
import shutil

import pydicom
import pytest

from bench.data import dicom
from bench.data.dicom import scan_headers
from bench.data.header_index import index_path, read_index
from bench.data.ricord import case_series, index_download
from bench.data.synth import synthesize
from bench.splits.fingerprints import locate_series


@pytest.fixture(scope="module")
def download(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("hdr") / "dl", seed=3, size="tiny")


@pytest.fixture
def root(download, tmp_path):
    """A private copy of the download (its files' ctimes are this copy's), indexed."""
    copy = tmp_path / "dl"
    shutil.copytree(download.out_dir, copy)
    index_download(copy, annotations=[copy / "annotations" / p.name for p in download.annotations])
    return copy


@pytest.fixture
def reads(monkeypatch):
    """The relative paths of every header read from a file, in order."""
    seen: list[str] = []
    real = dicom.read_headers_item

    def counting(item):
        seen.extend(rel for rel, _ in item.files)
        return real(item)

    monkeypatch.setattr(dicom, "read_headers_item", counting)
    return seen


def _dicom_files(root):
    return sorted(p for p in root.rglob("*.dcm") if ".ricord-bench" not in p.parts)


def test_indexing_writes_the_index_and_a_later_scan_reads_no_header(root, reads):
    assert index_path(root).is_file()
    fresh = scan_headers(root, reuse_index=False)
    assert len(reads) == len(_dicom_files(root))
    reads.clear()
    reused = scan_headers(root)
    assert reads == []
    assert reused.instances.equals(fresh.instances)
    assert reused.skipped == fresh.skipped
    assert set(reused.instances.path) == {str(p) for p in _dicom_files(root)}


def test_a_changed_a_new_and_a_removed_file_are_read_again_or_dropped(root, reads):
    first, second, third = _dicom_files(root)[:3]
    ds = pydicom.dcmread(first)
    ds.SeriesDescription = "EDITED AFTER INDEXING"
    ds.save_as(first)
    os.unlink(second)
    shutil.copyfile(third, third.with_name("zz-new.dcm"))  # the same instance again: a duplicate
    scan = scan_headers(root)
    assert sorted(reads) == sorted([first.relative_to(root).as_posix(),
                                    third.with_name("zz-new.dcm").relative_to(root).as_posix()])
    rows = scan.instances.set_index("rel_path")
    assert rows.loc[first.relative_to(root).as_posix(), "series_description"] == "EDITED AFTER INDEXING"
    assert second.relative_to(root).as_posix() not in rows.index
    assert dict(scan.skipped)[third.with_name("zz-new.dcm").relative_to(root).as_posix()].startswith(
        "duplicate SOPInstanceUID")


def test_a_file_replaced_with_the_same_size_and_mtime_is_still_read_again(root, reads):
    target = _dicom_files(root)[0]
    before = target.stat()
    ds = pydicom.dcmread(target)
    ds.PatientSex = "F" if ds.PatientSex != "F" else "M"  # same length: same file size
    ds.save_as(target)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (target.stat().st_size, target.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    scan = scan_headers(root)
    assert reads == [target.relative_to(root).as_posix()]
    assert scan.instances.set_index("rel_path").loc[reads[0], "patient_sex"] == ds.PatientSex


def test_an_unusable_index_is_ignored_with_a_warning(root, reads, caplog):
    expected = scan_headers(root, reuse_index=False)
    reads.clear()
    index_path(root).write_bytes(b"not gzip at all")
    with caplog.at_level(logging.WARNING, logger="bench.data.header_index"):
        scan = scan_headers(root)
    assert "unusable header index ignored" in caplog.text
    assert len(reads) == len(_dicom_files(root))
    assert scan.instances.equals(expected.instances)
    assert read_index(root) == {}


def test_prepare_and_verify_lookups_reuse_the_index(root, download, reads):
    report = index_download(root, annotations=[root / "annotations" / p.name for p in download.annotations])
    assert reads == []  # nothing changed since the fixture indexed it: not even indexing reads again
    for _, case in report.manifest.iterrows():
        rows, _ = case_series(root, case)
        assert len(rows) == (case.n_slices if case.modality == "CT" else 1)
    located = locate_series(root, report.manifest.series_uid, hint_dirs=list(report.manifest.series_dir))
    assert set(located) == set(report.manifest.series_uid)
    assert reads == []


def test_the_index_is_the_same_file_for_the_same_download(root, download, tmp_path):
    other = tmp_path / "again"
    shutil.copytree(download.out_dir, other)
    index_download(other, annotations=[other / "annotations" / p.name for p in download.annotations])
    mine, theirs = read_index(root), read_index(other)
    assert {rel: entry[2] for rel, entry in mine.items()} == {rel: entry[2] for rel, entry in theirs.items()}
