"""A download -> manifest: the synthetic collection through the real ingest, real DICOM files
this project did not write, and every bad input the index must report.

Round-trip tolerance: masks rasterized from the exported polygons must match the
generator's true lesion masks with Dice >= 0.99 per case and at most 1% of the true lesion
voxels differing. (The tracer follows pixel-centre contours, so in practice they are equal.)
"""

import hashlib
import io
import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file
from sklearn.metrics import roc_auc_score

from bench.data.dicom import load_ct_series, scan_headers
from bench.data.manifest import MANIFEST_COLUMNS, read_manifest, write_manifest
from bench.data.mdai import read_exports
from bench.data.ricord import case_id_for, case_instances, index_download, load_case_image, load_case_mask
from bench.data.synth import SIZES, synthesize
from bench.data.synth_dicom import CtSeriesWriter
from bench.errors import ClinicalSheetError, DataError

DICE_TOLERANCE = 0.99
VOXEL_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "ricord"
    report = synthesize(root, seed=11, size="tiny")
    return report


@pytest.fixture(scope="module")
def indexed(synth):
    return index_download(
        synth.out_dir,
        annotations=synth.annotations,
        clinical=[p for p in synth.clinical if p.suffix == ".xlsx"],
    )


def _truth(synth, study_uid):
    return np.load(synth.truth_dir / f"{study_uid}.npz")


def _dice(a, b):
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2 * np.logical_and(a, b).sum() / total


def test_manifest_counts_and_labels(synth, indexed):
    manifest = indexed.manifest
    preset = SIZES["tiny"]
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    counts = manifest.collection.value_counts().to_dict()
    reading = json.loads((synth.truth_dir / "1c_reading.json").read_text())
    invalid = sum(e["excluded"] for e in reading.values())
    assert invalid == 3 and indexed.counts["reading"]["invalid_studies"] == invalid
    assert counts == {
        "MIDRC-RICORD-1A": preset.n_1a,
        "MIDRC-RICORD-1B": preset.n_1b,
        "MIDRC-RICORD-1C": preset.n_1c - invalid,
    }
    assert manifest.case_id.is_unique and list(manifest.case_id) == sorted(manifest.case_id)
    assert set(manifest.loc[manifest.collection == "MIDRC-RICORD-1B", "covid"]) == {"negative"}
    assert set(manifest.loc[manifest.collection != "MIDRC-RICORD-1B", "covid"]) == {"positive"}
    cxr = manifest[manifest.collection == "MIDRC-RICORD-1C"]
    assert set(cxr.modality) == {"CR", "DX"}
    assert set(cxr.appearance) == {"typical", "indeterminate", "atypical", "negative"}
    assert (cxr.loc[cxr.appearance == "negative", "grade"] == "").all()
    assert {"adjudicated", "majority", "tie"} <= set(cxr.appearance_outcome)
    assert {"adjudicated", "majority", "tie"} <= set(cxr.grade_outcome)
    assert set(manifest.sex) == {"M", "F"}
    assert manifest.age.notna().all()
    assert indexed.counts["annotations_null_data"] == 3
    assert sum("null data" in reason for _, reason in indexed.skipped) == 3
    ct = manifest[manifest.modality == "CT"]
    assert (ct.n_slices == preset.ct_shape[0]).all()
    assert ct.spacing_mm.str.split(",").map(len).eq(3).all()


def test_case_id_rule():
    assert (
        case_id_for(
            "MIDRC-RICORD-1A-419639-000082", "1.2.826.0.1.3680043.10.474.419639.3125804554096137330974882046"
        )
        == "MIDRC-RICORD-1A-419639-000082-74882046"
    )
    assert case_id_for("a b/c", "1.2.3") == "a_b_c-123"


def test_synthetic_1c_gets_the_reading_protocols_labels(synth, indexed):
    # The synthetic 1c export has the real structure (reader groups, Adjudication, a Default group
    # with two users, Invalid Study); the generator says what the protocol must give each study.
    expected = json.loads((synth.truth_dir / "1c_reading.json").read_text())
    assert len({e["scenario"] for e in expected.values()}) == len(expected)  # tiny: one per scenario
    cases = indexed.manifest.set_index("study_uid")
    skipped = dict(indexed.skipped)
    columns = ["appearance", "appearance_outcome", "grade", "grade_outcome", "n_readers", "invalid_flags"]
    for study_uid, want in expected.items():
        if want["excluded"]:
            assert study_uid not in cases.index and skipped[study_uid].startswith("invalid study")
            continue
        assert cases.loc[study_uid, columns].to_dict() == {c: want[c] for c in columns}, want["scenario"]
    readers = indexed.readers
    default = readers[readers.group_name == "Default group"]
    assert set(default.role) == {"non_reader"} and default.users.str.contains(";").any()  # two users
    assert set(readers.role) == {"reader", "adjudicator", "non_reader"}


def test_synthetic_1c_export_has_the_real_keys(synth):
    doc = json.loads(synth.annotations[1].read_text())
    assert sorted(doc) == ["createdAt", "datasets", "description", "id", "isPrivate", "labelGroups", "name",
                           "updatedAt"]
    assert {group["type"] for group in doc["labelGroups"]} == {"STANDARD"}
    assert {len(group["labels"]) for group in doc["labelGroups"]} == {8}
    names = [label["name"] for label in doc["labelGroups"][0]["labels"]]
    assert "Mild Opacities  (1-2 lung zones)" in names and "Invalid Study" in names
    label = doc["labelGroups"][0]["labels"][0]
    assert sorted(label) == sorted(["id", "parentId", "createdAt", "updatedAt", "name", "shortName",
                                    "description", "color", "type", "scope", "annotationMode",
                                    "radlexTagIds"])
    assert (label["type"], label["scope"], label["annotationMode"]) == ("GLOBAL", "STUDY", None)
    keys = {tuple(sorted(a)) for a in doc["datasets"][0]["annotations"]}
    assert keys == {tuple(sorted(["id", "parentId", "isImported", "createdAt", "createdById", "updatedAt",
                                  "updatedById", "labelId", "annotationNumber", "height", "width", "data",
                                  "note", "radlexTagIds", "reviewsPositiveCount", "reviewsNegativeCount",
                                  "StudyInstanceUID"]))}


def test_round_trip_masks_match_truth(synth, indexed):
    export = read_exports(synth.annotations)
    cases = indexed.manifest[indexed.manifest.collection == "MIDRC-RICORD-1A"]
    lesion_voxels = 0
    for _, row in cases.iterrows():
        truth = _truth(synth, row.study_uid)
        mask = load_case_mask(synth.out_dir, export, row)
        assert mask.shape == truth["union"].shape
        lesion_voxels += int(truth["union"].sum())
        assert _dice(mask, truth["union"]) >= DICE_TOLERANCE
        assert np.logical_xor(mask, truth["union"]).sum() <= VOXEL_TOLERANCE * max(1, truth["union"].sum())
        for k, label in enumerate(truth["labels"]):
            per_label = load_case_mask(synth.out_dir, export, row, labels=[str(label)])
            assert _dice(per_label, truth["masks"][k]) >= DICE_TOLERANCE
    assert lesion_voxels > 100


def test_two_reader_cases_majority_is_smaller(synth, indexed):
    export = read_exports(synth.annotations)
    double = indexed.manifest[
        (indexed.manifest.collection == "MIDRC-RICORD-1A") & (indexed.manifest.n_readers == 2)
    ]
    assert len(double) >= 1
    shrunk = 0
    for _, row in double.iterrows():
        union = load_case_mask(synth.out_dir, export, row, readers="union")
        majority = load_case_mask(synth.out_dir, export, row, readers="majority")
        assert not np.any(majority & ~union)
        shrunk += int(union.sum() - majority.sum())
    assert shrunk > 0  # the second reader skips the end slices of each lesion


def test_geometry_matches_what_was_written(synth, indexed):
    cases = indexed.manifest[indexed.manifest.collection == "MIDRC-RICORD-1A"]
    for _, row in cases.iterrows():
        truth = _truth(synth, row.study_uid)
        volume = load_case_image(synth.out_dir, row)
        assert volume.series_uid == row.series_uid == str(truth["series_uid"])
        assert volume.sop_uids == tuple(truth["sop_uids"])
        assert np.allclose(volume.spacing_mm, truth["spacing_mm"])
        assert np.allclose(volume.affine_lps, truth["affine_lps"], atol=1e-4)
        assert volume.hu.shape == (int(row.n_slices), int(row.rows), int(row.cols))
        lesion = truth["union"]
        if lesion.any():  # lesions are denser than aerated lung (-850 HU)
            assert volume.hu[lesion].mean() > -800


def test_shuffled_file_order_series(synth, indexed):
    # Find the series whose file names are not in position order, then check the load sorts it.
    found = 0
    for _, row in indexed.manifest[indexed.manifest.modality == "CT"].iterrows():
        rows = case_instances(synth.out_dir, row)
        z = [pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2] for p in sorted(rows.path)]
        if not (np.all(np.diff(z) > 0) or np.all(np.diff(z) < 0)):
            found += 1
            volume = load_ct_series(sorted(rows.path))
            positions = [volume.affine_lps @ [k, 0, 0, 1] for k in range(len(volume.sop_uids))]
            assert np.all(np.diff([p[2] for p in positions]) > 0)
            by_sop = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in rows.path}
            for k, sop in enumerate(volume.sop_uids):
                header = pydicom.dcmread(by_sop[sop], stop_before_pixels=True)
                assert np.allclose(
                    volume.affine_lps @ [k, 0, 0, 1], [*map(float, header.ImagePositionPatient), 1]
                )
    assert found == 1


def test_extra_series_are_ignored(synth, indexed):
    ignored = " ".join(reason for _, reason in indexed.ignored)
    assert "SCOUT" in ignored and "COR 3X3" in ignored and "(LL, 1 instance(s))" in ignored
    scan = scan_headers(synth.out_dir)
    chosen = scan.instances[scan.instances.series_uid.isin(indexed.manifest.series_uid)]
    assert set(chosen.series_description) <= {"ROUTINE CHEST NON-CON", "AP", "PA", ""}
    assert not set(chosen.view_position) & {"LL", "RL", "LATERAL"}  # a lateral is never a case image
    assert not chosen.image_type.str.contains("LOCALIZER").any()


def test_radiograph_case_loads(synth, indexed):
    rows = indexed.manifest[indexed.manifest.collection == "MIDRC-RICORD-1C"]
    for _, row in rows.head(4).iterrows():
        image = load_case_image(synth.out_dir, row)
        assert image.pixels.shape == (row.rows, row.cols)
        # aerated lung (|x| 0.3..0.5 of the half-width) is darker than the body wall (|x| 0.8..0.88)
        h, w = image.pixels.shape
        x = np.abs((np.arange(w) + 0.5) / w * 2 - 1)
        band = image.pixels[h // 2 - h // 10 : h // 2 + h // 10]
        assert np.median(band[:, (x > 0.3) & (x < 0.5)]) < np.median(band[:, (x > 0.8) & (x < 0.88)])
    with pytest.raises(DataError, match="is a radiograph"):
        load_case_mask(synth.out_dir, read_exports(synth.annotations), rows.iloc[0])


def test_manifest_file_round_trip(indexed, tmp_path):
    path = write_manifest(indexed.manifest, tmp_path / "manifest.csv")
    again = read_manifest(path)
    assert list(again.case_id) == list(indexed.manifest.case_id)
    assert again.invalid_flags.dtype.kind == "i" and again.n_slices.dtype.kind == "i"
    pd.testing.assert_series_equal(again.age, indexed.manifest.age.astype(float), check_names=False)


def test_synthesis_is_byte_identical(synth, tmp_path):
    again = synthesize(tmp_path / "again", seed=11, size="tiny")

    def digest(root):  # what synthesize wrote; not the tool state (header index) indexing adds
        return {
            p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in Path(root).rglob("*")
            if p.is_file() and not p.relative_to(root).as_posix().startswith(".ricord-bench/")
        }

    assert digest(again.out_dir) == digest(synth.out_dir)
    other = synthesize(tmp_path / "other", seed=12, size="tiny")
    assert digest(other.out_dir) != digest(synth.out_dir)


def test_fast_ct_writer_matches_dcmwrite(tmp_path):
    # The synthetic CT writer splices pre-encoded constant elements; it must equal dcmwrite.
    study = {
        "patient_id": "MIDRC-RICORD-1A-419639-000001",
        "sex": "F",
        "age": 45.2,
        "study_uid": "1.2.3",
        "date": "20200101",
        "description": "CT",
        "collection": "MIDRC-RICORD-1A",
    }
    series = {"series_uid": "1.2.3.4", "description": "AX", "number": 2, "modality": "CT"}
    writer = CtSeriesWriter(
        study,
        series,
        orientation=(1, 0, 0, 0, 1, 0),
        spacing_yx=(0.7, 0.7),
        thickness_mm=1.25,
        intercept=-1024,
        signed=True,
        shape_yx=(4, 5),
        image_type="ORIGINAL\\PRIMARY\\AXIAL",
        frame_uid="1.2.3.9",
    )
    for k in range(2):
        writer.write(
            tmp_path / f"{k}.dcm",
            sop_uid=f"1.2.3.4.{k}",
            instance=k + 1,
            stored=np.arange(20, dtype=np.int16).reshape(4, 5) - 7 * k,
            position=(1.0, 2.0, 3.5 + k),
        )
        reference = io.BytesIO()
        pydicom.dcmwrite(reference, writer.ds, enforce_file_format=True)
        assert (tmp_path / f"{k}.dcm").read_bytes() == reference.getvalue()
    ds = pydicom.dcmread(tmp_path / "1.dcm")
    assert ds.pixel_array.tolist()[0] == [-7, -6, -5, -4, -3] and ds.SOPInstanceUID == "1.2.3.4.1"


def test_synthesis_refuses_non_empty_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("keep me")
    with pytest.raises(DataError, match="exists and is not empty"):
        synthesize(tmp_path / "x", seed=1, size="tiny")
    with pytest.raises(DataError, match="unknown synthetic size 'huge'"):
        synthesize(tmp_path / "y", seed=1, size="huge")


def test_other_layout_gives_same_cases(synth, indexed, tmp_path):
    # The newer TCIA layout: PatientID/last5(study)/last5(series)/<uuid>.dcm, no metadata.csv.
    root = tmp_path / "flat"
    scan = scan_headers(synth.out_dir)
    for row in scan.instances.itertuples():
        target = root / row.patient_id / row.study_uid[-5:] / row.series_uid[-5:] / f"{uuid.uuid4()}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(row.path, target)
    report = index_download(
        root, annotations=synth.annotations, clinical=[p for p in synth.clinical if p.suffix == ".csv"]
    )
    columns = [c for c in MANIFEST_COLUMNS if c != "series_dir"]
    pd.testing.assert_frame_equal(report.manifest[columns], indexed.manifest[columns])


# --- bad input in a download ---------------------------------------------------------------------


@pytest.fixture()
def broken(synth, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(synth.out_dir, root)
    return root


def _series_files(root, manifest, collection, n=0):
    row = manifest[manifest.collection == collection].iloc[n]
    rows = case_instances(root, row)
    return row, list(rows.path)


def test_bad_files_missing_slice_uneven_spacing_and_dangling_annotations(synth, indexed, broken):
    manifest = indexed.manifest
    # 1. a truncated file and a non-DICOM file in the tree
    row_t, files = _series_files(broken, manifest, "MIDRC-RICORD-1B", 0)
    Path(files[3]).write_bytes(Path(files[3]).read_bytes()[:-100])
    (Path(files[0]).parent / "readme.dcm").write_text("not dicom")
    # 2. a missing slice (middle of the stack) in another 1B case
    row_m, files = _series_files(broken, manifest, "MIDRC-RICORD-1B", 1)
    Path(files[5]).unlink()
    # 3. uneven spacing: move one slice in a third 1B case
    row_u, files = _series_files(broken, manifest, "MIDRC-RICORD-1B", 2)
    ds = pydicom.dcmread(files[4])
    ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + 0.4 * float(
        row_u.spacing_mm.split(",")[0]
    )
    ds.save_as(files[4])
    # 4. an annotated slice of a 1A case removed from the download
    export = read_exports(synth.annotations)
    annotated = manifest[(manifest.collection == "MIDRC-RICORD-1A") & (manifest.n_annotations > 3)].iloc[0]
    polygons = export.annotations[
        (export.annotations.series_uid == annotated.series_uid) & (export.annotations.sop_uid != "")
    ]
    sop = polygons.sop_uid.iloc[0]
    rows = case_instances(broken, annotated)
    Path(rows.loc[rows.sop_uid == sop, "path"].iloc[0]).unlink()

    report = index_download(broken, annotations=synth.annotations, clinical=synth.clinical[:2])
    reasons = dict(report.skipped)
    truncated = [r for item, r in report.skipped if "truncated DICOM file" in r]
    assert len(truncated) == 1 and "Re-download this file" in truncated[0]
    assert any("readme.dcm" in item and "not a DICOM file" in r for item, r in report.skipped)
    assert "missing slice" in reasons[row_m.study_uid]
    assert "uneven slice spacing" in reasons[row_u.study_uid]
    assert reasons[sop].startswith("annotated SOPInstanceUID not in the download")
    assert "is incomplete" in reasons[annotated.study_uid]
    kept = set(report.manifest.study_uid)
    assert row_m.study_uid not in kept and row_u.study_uid not in kept and annotated.study_uid not in kept
    # the truncated slice is gone from its series, which now has a gap -> skipped, not silently shortened
    assert row_t.study_uid not in kept and "missing slice" in reasons[row_t.study_uid]
    assert len(report.manifest) == len(manifest) - 4
    kinds = report.skipped_by_kind()
    assert {
        "truncated DICOM file",
        "not a DICOM file",
        "missing slice",
        "uneven slice spacing",
        "annotated slices missing from the series",
        "annotated SOPInstanceUID not in the download",
        "annotation with null data",
    } <= set(kinds)
    assert set(kinds["missing slice"]) == {row_m.study_uid, row_t.study_uid}
    assert report.counts["geometry"]["series_rejected"] == {"missing slice": 2, "uneven slice spacing": 1,
                                                            "duplicate slice positions": 0}
    assert {entry["kind"] for entry in report.to_dict()["skipped"]} == set(kinds)


def test_mixed_pixel_spacing_in_a_series_is_caught_at_index_time(synth, indexed, broken):
    row, files = _series_files(broken, indexed.manifest, "MIDRC-RICORD-1B", 0)
    ds = pydicom.dcmread(files[2])
    ds.PixelSpacing = [float(ds.PixelSpacing[0]) * 1.5, float(ds.PixelSpacing[1]) * 1.5]
    ds.save_as(files[2])
    report = index_download(broken, annotations=synth.annotations, clinical=synth.clinical[:2])
    reasons = dict(report.skipped)
    assert "slices have different PixelSpacing" in reasons[row.study_uid]
    assert row.study_uid not in set(report.manifest.study_uid)
    assert set(report.skipped_by_kind()["mixed PixelSpacing in a series"]) == {row.study_uid}
    assert len(report.manifest) == len(indexed.manifest) - 1


def _copy_slice(path, target, *, sop_uid, shift_mm=0.0, pixel_delta=0):
    ds = pydicom.dcmread(path)
    ds.SOPInstanceUID = sop_uid
    ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + shift_mm
    if pixel_delta:
        ds.PixelData = (ds.pixel_array + pixel_delta).astype(ds.pixel_array.dtype).tobytes()
    ds.save_as(target)


def test_ct_geometry_quirks_are_counted(synth, indexed, broken):
    """Each real CT geometry quirk gives its counted outcome: an exact duplicate is dropped (and an
    annotation on it lands on its twin), spacing within the tolerance is accepted, a different
    slice at an existing position rejects the series with the reason."""
    manifest = indexed.manifest
    export = read_exports(synth.annotations)
    # 1. an exact duplicate (new SOPInstanceUID, same position and pixels) of an annotated 1A slice
    annotated = manifest[(manifest.collection == "MIDRC-RICORD-1A") & (manifest.n_annotations > 3)].iloc[0]
    rows = case_instances(broken, annotated)
    drawn = export.annotations[(export.annotations.series_uid == annotated.series_uid)
                               & (export.annotations.sop_uid != "")]
    source = rows.loc[rows.sop_uid == drawn.sop_uid.iloc[0], "path"].iloc[0]
    twin = "1.2.826.0.1.3680043.10.474.999.1"
    _copy_slice(source, Path(source).with_name("dup-1.dcm"), sop_uid=twin)
    # 2. one slice of a 1B case moved by 3% of its spacing: irregular, within the tolerance
    row_j, files = _series_files(broken, manifest, "MIDRC-RICORD-1B", 0)
    ds = pydicom.dcmread(files[4])
    spacing = float(row_j.spacing_mm.split(",")[0])
    ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + 0.03 * spacing
    ds.save_as(files[4])
    # 3. a different slice at the position of an existing one in another 1B case
    row_d, files = _series_files(broken, manifest, "MIDRC-RICORD-1B", 1)
    _copy_slice(files[2], Path(files[2]).with_name("other-1.dcm"), sop_uid="1.2.826.0.1.3680043.10.474.999.2",
                pixel_delta=7)

    report = index_download(broken, annotations=synth.annotations, clinical=synth.clinical[:2])
    geometry = report.counts["geometry"]
    assert geometry["duplicate_slices_dropped"] == 1 and geometry["series_with_duplicates"] == 1
    assert geometry["series_irregular_spacing_accepted"] == 1
    assert geometry["series_rejected"] == {"missing slice": 0, "uneven slice spacing": 0,
                                           "duplicate slice positions": 1}
    kept = report.manifest.set_index("study_uid")
    assert kept.loc[annotated.study_uid, "n_slices"] == annotated.n_slices
    assert row_j.study_uid in kept.index
    assert "with different pixel data" in dict(report.skipped)[row_d.study_uid]
    # the twin's polygons would be the same as the kept slice's: move one annotation onto the twin
    moved = export.annotations.copy()
    moved.loc[moved.annotation_id == drawn.annotation_id.iloc[0], "sop_uid"] = twin
    row = kept.loc[annotated.study_uid].to_dict() | {"study_uid": annotated.study_uid}
    from dataclasses import replace

    mask = load_case_mask(broken, replace(export, annotations=moved), row)
    assert np.array_equal(mask, load_case_mask(broken, export, row))
    assert load_case_image(broken, row).sop_aliases == {twin: drawn.sop_uid.iloc[0]}


def test_annotated_study_not_in_download(synth, indexed, broken):
    row = indexed.manifest[indexed.manifest.collection == "MIDRC-RICORD-1C"].iloc[0]
    shutil.rmtree(broken / Path(row.series_dir).parent)
    report = index_download(broken, annotations=synth.annotations)
    reasons = dict(report.skipped)
    assert reasons[row.study_uid].startswith("annotated study not in the download")


def test_clinical_sheet_without_expected_columns(tmp_path, synth):
    bad = tmp_path / "clinical.csv"
    bad.write_text("MRN,Age\nx,3\n")
    with pytest.raises(
        ClinicalSheetError,
        match=r"clinical\.csv: no sheet has a study UID column .*found columns "
        r"\[\['MRN', 'Age'\]\]",
    ):
        index_download(synth.out_dir, clinical=[bad])
    with pytest.raises(ClinicalSheetError, match="clinical sheet not found"):
        index_download(synth.out_dir, clinical=[tmp_path / "none.xlsx"])


def test_unknown_collection_is_skipped(tmp_path):
    source = get_testdata_file("CT_small.dcm")
    (tmp_path / "x").mkdir()
    shutil.copyfile(source, tmp_path / "x" / "1-1.dcm")
    report = index_download(tmp_path)
    assert report.manifest.empty
    assert "collection unknown: PatientID '1CT1'" in report.skipped[0][1]


# --- real DICOM files this project did not write ------------------------------------------------


def _mdai_doc(groups, annotations):
    return {"labelGroups": groups, "datasets": [{"id": "D_real", "annotations": annotations}]}


def test_real_ct_small_in_tcia_tree(tmp_path):
    source = get_testdata_file("CT_small.dcm")
    header = pydicom.dcmread(source, stop_before_pixels=True)
    series_dir = (
        tmp_path / "MIDRC-RICORD-1A" / header.PatientID / "01-19-2004-NA-NA-12322" / "1.000000-NA-12322"
    )
    series_dir.mkdir(parents=True)
    shutil.copyfile(source, series_dir / "1-1.dcm")
    pd.DataFrame(
        {
            "Series UID": [header.SeriesInstanceUID],
            "Collection": ["MIDRC-RICORD-1A"],
            "Subject ID": [header.PatientID],
            "File Location": [f"./{series_dir.relative_to(tmp_path)}"],
        }
    ).to_csv(tmp_path / "metadata.csv", index=False)
    doc = _mdai_doc(
        [
            {
                "id": "G_t1",
                "name": "Team 1",
                "labels": [
                    {
                        "id": "L_x1",
                        "name": "Infectious opacity",
                        "scope": "INSTANCE",
                        "annotationMode": "freeform",
                    },
                    {"id": "L_x2", "name": "Typical", "scope": "STUDY", "annotationMode": None},
                ],
            }
        ],
        [
            {
                "id": "A1",
                "labelId": "L_x1",
                "StudyInstanceUID": header.StudyInstanceUID,
                "SeriesInstanceUID": header.SeriesInstanceUID,
                "SOPInstanceUID": header.SOPInstanceUID,
                "data": {"vertices": [[10, 20], [40, 20], [40, 30], [10, 30]]},
                "createdById": "U1",
            },
            {
                "id": "A2",
                "labelId": "L_x2",
                "StudyInstanceUID": header.StudyInstanceUID,
                "SeriesInstanceUID": None,
                "SOPInstanceUID": None,
                "data": None,
                "createdById": "U1",
            },
        ],
    )
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    report = index_download(tmp_path, annotations=tmp_path / "ann.json")
    assert len(report.manifest) == 1
    row = report.manifest.iloc[0]
    assert row.collection == "MIDRC-RICORD-1A" and row.modality == "CT"
    assert row.study_uid == header.StudyInstanceUID and row.series_uid == header.SeriesInstanceUID
    assert (row.n_slices, row.rows, row.cols) == (1, 128, 128)
    assert row.spacing_mm == "5,0.661468,0.661468"  # single slice: SliceThickness
    assert row.appearance == "typical" and row.n_annotations == 2 and row.n_readers == 1
    assert row.site == "unknown"
    assert row.series_dir == series_dir.relative_to(tmp_path).as_posix()
    volume = load_case_image(tmp_path, row)
    raw = pydicom.dcmread(source)
    assert np.array_equal(volume.hu[0], raw.pixel_array.astype(np.float32) * 1 - 1024)
    mask = load_case_mask(tmp_path, read_exports([tmp_path / "ann.json"]), row)
    assert mask.shape == (1, 128, 128)
    assert mask.sum() == 31 * 11 and mask[0, 20:31, 10:41].all()  # rows 20-30, columns 10-40


def test_real_radiograph_in_tcia_tree(tmp_path):
    source = get_testdata_file("RG1_UNCR.dcm")
    if source is None:
        pytest.skip("pydicom-data is not installed (it ships RG1_UNCR.dcm)")
    header = pydicom.dcmread(source, stop_before_pixels=True)
    target = tmp_path / "MIDRC-RICORD-1C" / header.PatientID / "NA" / "1.000000-NA" / "1-1.dcm"
    target.parent.mkdir(parents=True)
    shutil.copyfile(source, target)
    (tmp_path / "metadata.csv").write_text(
        f"Series UID,Collection\n{header.SeriesInstanceUID},MIDRC-RICORD-1C\n"
    )
    groups, annotations = [], []
    votes = [
        ("Typical Appearance", "Moderate Opacities (3-4 lung zones)"),
        ("Typical Appearance", "Severe Opacities (>4 lung zones)"),
        ("Atypical Appearance", "Severe Opacities (>4 lung zones)"),
    ]
    for r, (appearance, grade) in enumerate(votes):
        labels = [
            {"id": f"L_{r}_{k}", "name": name, "scope": "STUDY", "annotationMode": None}
            for k, name in enumerate(
                [
                    "Typical Appearance",
                    "Atypical Appearance",
                    "Moderate Opacities (3-4 lung zones)",
                    "Severe Opacities (>4 lung zones)",
                ]
            )
        ]
        groups.append({"id": f"G_{r}", "name": f"Reader {r}", "labels": labels})
        ids = {label["name"]: label["id"] for label in labels}
        for name in (appearance, grade):
            annotations.append(
                {
                    "id": f"A{r}{name[:3]}",
                    "labelId": ids[name],
                    "StudyInstanceUID": header.StudyInstanceUID,
                    "SeriesInstanceUID": None,
                    "SOPInstanceUID": None,
                    "data": None,
                    "createdById": f"U{r}",
                }
            )
    (tmp_path / "ann.json").write_text(json.dumps(_mdai_doc(groups, annotations)))
    report = index_download(tmp_path, annotations=[tmp_path / "ann.json"])
    row = report.manifest.iloc[0]
    assert (row.collection, row.modality, row.n_slices, row.rows, row.cols) == (
        "MIDRC-RICORD-1C",
        "CR",
        1,
        1955,
        1841,
    )
    assert (row.appearance, row.grade, row.appearance_outcome, row.grade_outcome) == (
        "typical",
        "severe",
        "majority",
        "majority",
    )
    assert row.n_readers == 3 and row.n_annotations == 6
    assert row.spacing_mm == "1,1"  # PixelSpacing 0\0 in the file: 1 mm assumed and reported
    assert any("no usable pixel spacing" in w for w in report.warnings)
    assert load_case_image(tmp_path, row).pixels.shape == (1955, 1841)


@pytest.mark.slow
def test_small_collection_has_every_stratum(tmp_path):
    report = synthesize(tmp_path / "small", seed=0)
    index = index_download(report.out_dir, annotations=report.annotations, clinical=report.clinical[::2])
    manifest = index.manifest
    assert not index.warnings
    by = manifest.groupby("collection")
    assert by.size().to_dict() == {"MIDRC-RICORD-1A": 24, "MIDRC-RICORD-1B": 24, "MIDRC-RICORD-1C": 57}
    assert by.site.nunique().to_dict() == {"MIDRC-RICORD-1A": 4, "MIDRC-RICORD-1B": 2, "MIDRC-RICORD-1C": 3}
    assert (by.sex.nunique() == 2).all()
    assert (by.patient_id.nunique() < by.size()).all()  # every collection has patients with two studies
    for collection in ("MIDRC-RICORD-1A", "MIDRC-RICORD-1C"):
        counts = manifest[manifest.collection == collection].appearance.value_counts()
        assert set(counts.index) == {"typical", "indeterminate", "atypical", "negative"} and counts.min() >= 3
    grades = manifest[manifest.collection == "MIDRC-RICORD-1C"].grade.value_counts()
    assert grades[["mild", "moderate", "severe"]].min() >= 3
    seg = manifest[manifest.collection == "MIDRC-RICORD-1A"]
    assert (seg.n_readers == 2).sum() >= 4
    export = read_exports(report.annotations)
    drawn = set(export.annotations.loc[export.annotations.scope == "INSTANCE", "label_name"])
    assert drawn == {
        "Infectious opacity",
        "Infectious TIB/micronodules",
        "Infectious cavity",
        "Atelectasis",
        "Noninfectious nodule/mass",
        "Other noninfectious opacity",
    }


@pytest.mark.slow
def test_ct_storage_and_site_do_not_give_away_the_covid_label(tmp_path):
    """Both storage conventions (int16 with intercept 0, uint16 with -1024) occur half and half
    in every (collection, site), so "HU below -1024 exists" (only signed storage can hold it) is
    no better than chance at telling COVID-positive from negative. The sites are as in the
    real collections: 1A spans four, 440808 and SITE2 only in 1A (docs/data.md says so)."""
    report = synthesize(tmp_path / "small", seed=0)
    manifest = index_download(report.out_dir, annotations=report.annotations,
                              clinical=report.clinical[::2]).manifest
    ct = manifest[manifest.modality == "CT"].reset_index(drop=True)
    conventions, below = [], []
    for row in ct.itertuples():
        series = sorted((report.out_dir / row.series_dir).iterdir())
        ds = next(d for d in (pydicom.dcmread(p, stop_before_pixels=True) for p in series)
                  if d.SeriesInstanceUID == row.series_uid)
        conventions.append((int(ds.PixelRepresentation), float(ds.RescaleIntercept)))
        below.append(float(load_case_image(report.out_dir, ct.loc[row.Index]).hu.min()) < -1024)
    ct["convention"], ct["below"] = conventions, below
    assert set(conventions) == {(1, 0.0), (0, -1024.0)}
    groups = ct.groupby(["collection", "site"]).convention.value_counts().unstack()
    assert groups.shape == (6, 2) and (groups.max(axis=1) - groups.min(axis=1) <= 1).all()
    assert (ct.below == (ct.convention == (1, 0.0))).all()  # the feature is the storage convention
    positive = ct.covid == "positive"
    assert roc_auc_score(positive, ct.below) == pytest.approx(0.5, abs=0.05)
    assert set(ct.loc[~positive, "site"]) == {"419639", "660042"}
    assert set(ct.loc[positive, "site"]) == {"419639", "440808", "660042", "SITE2"}
