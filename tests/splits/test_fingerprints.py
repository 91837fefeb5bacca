"""Content fingerprints: what changes them and what does not (fast; small hand-made inputs)."""

import copy
import hashlib
import json
import shutil

import pydicom
import pytest
from pydicom.data import get_testdata_file

from bench.data.mdai import annotation_files, read_annotation_records
from bench.errors import AnnotationError, DicomError
from bench.parallel import map_ordered
from bench.splits.fingerprints import (
    EMPTY_ANNOTATIONS,
    CaseFiles,
    annotations_fingerprint,
    default_fingerprint_workers,
    fingerprint_images_item,
    images_fingerprint,
    pixel_sha256,
)

STUDY = "1.2.3.4"

EXPORT = {
    "labelGroups": [{"id": "G_1", "name": "Team 1", "labels": [
        {"id": "L_op", "name": "Infectious opacity", "scope": "INSTANCE", "annotationMode": "freeform"},
        {"id": "L_ty", "name": "Typical", "scope": "STUDY", "annotationMode": None}]}],
    "datasets": [{"id": "D_1", "annotations": [
        {"id": "A_1", "labelId": "L_op", "StudyInstanceUID": STUDY, "SeriesInstanceUID": "1.2.3.4.5",
         "SOPInstanceUID": "1.2.3.4.5.6", "frameNumber": None, "createdById": "U_1",
         "createdAt": "2020-11-02T09:02:00.000Z", "updatedAt": "2020-11-02T09:02:00.000Z",
         "data": {"vertices": [[47.0, 32.5], [46.0, 32.5], [44.5, 31.0]]}, "reviews": []},
        {"id": "A_2", "labelId": "L_ty", "StudyInstanceUID": STUDY, "SeriesInstanceUID": None,
         "SOPInstanceUID": None, "createdById": "U_1", "data": None},
        {"id": "A_3", "labelId": "L_ty", "StudyInstanceUID": "9.9", "createdById": "U_2", "data": None}]}],
}


def _fingerprint(tmp_path, export, name="export.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(export))
    return annotations_fingerprint(read_annotation_records([path]).get(STUDY, []))


def test_volatile_fields_order_and_integral_floats_do_not_change_the_annotation_hash(tmp_path):
    original = _fingerprint(tmp_path, EXPORT)
    edited = copy.deepcopy(EXPORT)
    annotations = edited["datasets"][0]["annotations"]
    annotations[0].update(id="A_99", createdAt="2024-01-01T00:00:00Z", updatedAt="2024-01-01", reviews=[1])
    annotations[0]["data"]["vertices"][0] = [47, 32.5]  # re-serialized 47.0 as 47
    annotations.reverse()
    edited["labelGroups"][0]["labels"][0]["id"] = "L_other"
    annotations[-1]["labelId"] = "L_other"
    assert _fingerprint(tmp_path, edited, "edited.json") == original


def test_a_moved_vertex_another_reader_or_label_changes_the_annotation_hash(tmp_path):
    original = _fingerprint(tmp_path, EXPORT)
    for change in ("vertex", "reader", "label"):
        edited = copy.deepcopy(EXPORT)
        first = edited["datasets"][0]["annotations"][0]
        if change == "vertex":
            first["data"]["vertices"][1][1] += 0.5
        elif change == "reader":
            first["createdById"] = "U_2"
        else:
            edited["labelGroups"][0]["labels"][0]["name"] = "Atelectasis"
        assert _fingerprint(tmp_path, edited, f"{change}.json") != original, change


def test_a_study_without_records_hashes_the_empty_list(tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(EXPORT))
    records = read_annotation_records([path])
    assert annotations_fingerprint(records.get("no.such.study", [])) == EMPTY_ANNOTATIONS
    assert EMPTY_ANNOTATIONS == hashlib.sha256(b"[]").hexdigest()


def test_bad_exports_are_named(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{\"labelGroups\": []")
    with pytest.raises(AnnotationError, match="bad.json: not valid JSON"):
        read_annotation_records([bad])
    bad.write_text(json.dumps({"datasets": []}))
    with pytest.raises(AnnotationError, match="not an MD.ai export"):
        read_annotation_records([bad])
    undefined = copy.deepcopy(EXPORT)
    undefined["datasets"][0]["annotations"][0]["labelId"] = "L_nope"
    bad.write_text(json.dumps(undefined))
    with pytest.raises(AnnotationError, match="'L_nope'"):
        read_annotation_records([bad])
    with pytest.raises(AnnotationError, match="annotation export not found"):
        annotation_files([tmp_path / "missing.json"])


def test_annotation_files_default_to_the_annotations_folder(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "b.json").write_text("{}")
    (tmp_path / "annotations" / "a.json").write_text("{}")
    assert [p.name for p in annotation_files([], root=tmp_path)] == ["a.json", "b.json"]
    assert annotation_files([], root=tmp_path / "annotations") == []


def test_pixel_hash_of_real_files_is_over_the_stored_bytes_and_ignores_the_header(tmp_path):
    ct = tmp_path / "ct.dcm"
    shutil.copyfile(get_testdata_file("CT_small.dcm"), ct)
    ds = pydicom.dcmread(ct)
    uid, digest = pixel_sha256(ct)
    assert uid == ds.SOPInstanceUID and digest == hashlib.sha256(ds.PixelData).hexdigest()
    ds.PatientName = "Someone^Else"
    ds.save_as(ct)
    assert pixel_sha256(ct) == (uid, digest)
    # compressed (encapsulated) pixel data hash without any decoder
    jpeg = get_testdata_file("JPEG2000.dcm")
    assert pixel_sha256(jpeg)[1] == hashlib.sha256(pydicom.dcmread(jpeg).PixelData).hexdigest()


def test_images_hash_is_over_sorted_uid_and_pixel_hash_pairs(tmp_path):
    files = [get_testdata_file("CT_small.dcm"), get_testdata_file("MR_small.dcm")]
    datasets = [pydicom.dcmread(f) for f in files]
    pairs = sorted([ds.SOPInstanceUID, hashlib.sha256(ds.PixelData).hexdigest()] for ds in datasets)
    expected = hashlib.sha256(json.dumps(pairs, separators=(",", ":")).encode()).hexdigest()
    assert images_fingerprint(files) == images_fingerprint(files[::-1]) == expected
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"not dicom at all")
    with pytest.raises(DicomError, match="broken.dcm"):
        images_fingerprint([broken])


def test_small_jobs_stay_in_this_process_and_large_ones_use_a_pool(tmp_path):
    files = []
    for name, size in (("a.dcm", 300), ("b.dcm", 500), ("c.dcm", 200)):
        (tmp_path / name).write_bytes(b"\0" * size)
        files.append(str(tmp_path / name))
    items = [CaseFiles("x", tuple(files[:2])), CaseFiles("y", (files[2], str(tmp_path / "gone")))]
    per_file = 256 * 1024  # 1000 bytes of files and 4 files (one of them gone) in all
    assert default_fingerprint_workers(items, inline_bytes=1000 + 4 * per_file + 1) == 1
    assert default_fingerprint_workers(items, inline_bytes=1000 + 4 * per_file) is None
    assert default_fingerprint_workers(items[:1], inline_bytes=800 + 2 * per_file + 1) == 1
    assert default_fingerprint_workers([]) == 1
    many = [CaseFiles("z", (files[0],) * 4096)]  # 4096 small files: 1 GiB of estimated work
    assert default_fingerprint_workers(many) is None and default_fingerprint_workers(many[:0]) == 1


def test_case_items_hash_alike_in_this_process_and_in_two_worker_processes():
    items = [CaseFiles("ct", (get_testdata_file("CT_small.dcm"),)),
             CaseFiles("two", (get_testdata_file("MR_small.dcm"), get_testdata_file("CT_small.dcm"))),
             CaseFiles("jpeg", (get_testdata_file("JPEG2000.dcm"),))]
    expected = []
    for item in items:
        datasets = [pydicom.dcmread(path) for path in item.paths]
        pairs = sorted([ds.SOPInstanceUID, hashlib.sha256(ds.PixelData).hexdigest()] for ds in datasets)
        expected.append(hashlib.sha256(json.dumps(pairs, separators=(",", ":")).encode()).hexdigest())
    assert map_ordered(fingerprint_images_item, items, workers=1) == expected
    assert map_ordered(fingerprint_images_item, items, workers=2) == expected


def test_an_unreadable_file_in_a_worker_raises_the_dicom_error_naming_it(tmp_path):
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"not dicom at all")
    items = [CaseFiles("ok", (get_testdata_file("CT_small.dcm"),)), CaseFiles("bad", (str(broken),))]
    with pytest.raises(DicomError, match="broken.dcm: not a DICOM file") as raised:
        map_ordered(fingerprint_images_item, items, workers=2)
    assert raised.value.__notes__ == ["while running fingerprint_images_item on item 2 of 2: "
                                      "<case bad: 1 DICOM files>"]
