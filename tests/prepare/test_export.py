"""`bench export` round trips on the synthetic collection: nnU-Net v2 raw layout, MONAI datalist, CSV.

Checked against what `bench prepare` writes for the same split (same opaque ids, the same image
bytes, labels equal to the reference masks), read back with SimpleITK (nnU-Net's default reader),
folds grouped by patient, hard links into the image cache, the test split refused.
"""

import json
import os
import re

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from bench.cli import app
from bench.errors import OutputExistsError, PrepareError
from bench.prepare.export import export_split
from bench.prepare.images import cache_entry
from bench.prepare.materialize import prepare_split
from bench.tasks import load_task
from tests.helpers.splits_fixtures import synthetic

pytestmark = pytest.mark.slow

SEG, CLS, CXR = "ricord-1a-lesion-seg", "ricord-ct-covid-cls", "ricord-1c-cxr-appearance"


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synthetic(tmp_path_factory)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("export-cache")


def _export(synth, cache, task, split, fmt, out, **options):
    spec = load_task(task, directory=synth.tasks)
    return export_split(spec, "synthetic", split, root=synth.root, out=out, format=fmt, cache_dir=cache,
                        directory=synth.tasks, **options)


def _prepared(synth, cache, task, split, out):
    spec = load_task(task, directory=synth.tasks)
    return prepare_split(spec, "synthetic", split, root=synth.root, out=out, cache_dir=cache,
                         directory=synth.tasks)


def test_nnunet_train_layout_round_trips(synth, cache, tmp_path):
    out = tmp_path / "Dataset501_RICORD1a"
    report = _export(synth, cache, SEG, "train", "nnunet", out)
    prepared = _prepared(synth, cache, SEG, "train", tmp_path / "prepared")
    ids = sorted(prepared.case_ids)
    assert report.cases == len(ids) == len(synth.splits[SEG].cases("train"))
    assert sorted(os.listdir(out / "imagesTr")) == [f"{c}_0000.nii.gz" for c in ids]
    assert sorted(os.listdir(out / "labelsTr")) == [f"{c}.nii.gz" for c in ids]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "CT"}
    assert dataset["labels"] == {"background": 0, "lesion": 1}
    assert dataset["numTraining"] == len(ids)
    assert dataset["file_ending"] == ".nii.gz"
    assert dataset["ricord_bench"]["split_sha256"] == synth.splits[SEG].sha256
    for case_id in ids:
        image = out / "imagesTr" / f"{case_id}_0000.nii.gz"
        assert image.read_bytes() == (prepared.input_dir / "images" / f"{case_id}.nii.gz").read_bytes()
        label = nib.load(out / "labelsTr" / f"{case_id}.nii.gz")
        reference = nib.load(prepared.reference_dir / "masks" / f"{case_id}.nii.gz")
        np.testing.assert_array_equal(np.asanyarray(label.dataobj), np.asanyarray(reference.dataobj))
        # nnU-Net reads both with SimpleITK and requires the same geometry
        a, b = sitk.ReadImage(str(image)), sitk.ReadImage(str(out / "labelsTr" / f"{case_id}.nii.gz"))
        assert a.GetSize() == b.GetSize() and a.GetDirection() == b.GetDirection()
        assert np.allclose(a.GetSpacing(), b.GetSpacing()) and np.allclose(a.GetOrigin(), b.GetOrigin())
        assert set(np.unique(sitk.GetArrayViewFromImage(b))) <= {0, 1}
    # images are hard links to the converted-image cache
    by_id = {c.case_id: c for c in synth.splits[SEG].cases("train")}
    first = ids[0]
    cached = cache_entry(cache, by_id[prepared.source_case_ids[first]]) / "image.nii.gz"
    assert os.stat(out / "imagesTr" / f"{first}_0000.nii.gz").st_ino == os.stat(cached).st_ino
    assert report.linked == len(ids)


def test_nnunet_folds_are_grouped_by_patient_inside_train(synth, cache, tmp_path):
    out = tmp_path / "ds"
    _export(synth, cache, SEG, "train", "nnunet", out, folds=3)
    splits = json.loads((out / "splits_final.json").read_text())
    provenance = json.loads((out / "ricord-bench-train.json").read_text())
    patient_of = {c["case_id"]: c["patient_id"] for c in provenance["cases"]}
    assert len(splits) == 3
    vals = [set(fold["val"]) for fold in splits]
    assert set().union(*vals) == set(patient_of) and sum(map(len, vals)) == len(patient_of)
    for fold in splits:
        assert set(fold["train"]) | set(fold["val"]) == set(patient_of)
        train_patients = {patient_of[c] for c in fold["train"]}
        assert not train_patients & {patient_of[c] for c in fold["val"]}
    pinned_patients = {c.patient_id for c in synth.splits[SEG].cases("train")}
    assert set(patient_of.values()) == pinned_patients


def test_validation_joins_the_dataset_folder_and_nothing_is_overwritten(synth, cache, tmp_path):
    out = tmp_path / "ds"
    _export(synth, cache, SEG, "train", "nnunet", out)
    _export(synth, cache, SEG, "validation", "nnunet", out)
    n_val = len(synth.splits[SEG].cases("validation"))
    assert len(os.listdir(out / "imagesTs")) == len(os.listdir(out / "labelsTs")) == n_val
    assert all(re.fullmatch(r"case-[0-9a-f]{12}_0000\.nii\.gz", n) for n in os.listdir(out / "imagesTs"))
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(PrepareError, match="already holds"):
        _export(synth, cache, SEG, "validation", "nnunet", out)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_the_test_split_and_mismatched_formats_are_refused(synth, cache, tmp_path):
    result = CliRunner().invoke(app, ["export", "--task", SEG, "--name", "synthetic", "--split", "test",
                                      "--format", "nnunet", "--out", str(tmp_path / "x"), "--root",
                                      str(synth.root)])
    assert result.exit_code != 0
    assert "test split's labels are what the benchmark scores" in result.output
    assert not (tmp_path / "x").exists()
    with pytest.raises(PrepareError, match="does not fit task ricord-1c-cxr-appearance"):
        _export(synth, cache, CXR, "train", "nnunet", tmp_path / "y")
    with pytest.raises(PrepareError, match="use one of \\['nnunet', 'monai'\\]"):
        _export(synth, cache, SEG, "train", "csv", tmp_path / "z")


def test_monai_datalist_with_training_and_validation(synth, cache, tmp_path):
    out = tmp_path / "monai"
    _export(synth, cache, SEG, "train", "monai", out)
    _export(synth, cache, SEG, "validation", "monai", out)
    datalist = json.loads((out / "datalist.json").read_text())
    assert len(datalist["training"]) == len(synth.splits[SEG].cases("train"))
    assert len(datalist["validation"]) == len(synth.splits[SEG].cases("validation"))
    assert {e["fold"] for e in datalist["training"]} == set(range(5))
    assert all("fold" not in e for e in datalist["validation"])
    for entry in datalist["training"] + datalist["validation"]:
        assert (out / entry["image"]).is_file() and (out / entry["label"]).is_file()
    assert set(datalist["ricord_bench"]) == {"training", "validation"}


def test_monai_export_never_extends_a_datalist_it_did_not_write(synth, cache, tmp_path):
    out = tmp_path / "monai"
    out.mkdir()
    theirs = '{"testing": [{"image": "mine.nii.gz"}]}\n'
    (out / "datalist.json").write_text(theirs)
    with pytest.raises(OutputExistsError, match="datalist.json exists and ricord-bench did not write it"):
        _export(synth, cache, SEG, "validation", "monai", out)
    assert (out / "datalist.json").read_text() == theirs
    assert sorted(p.name for p in out.iterdir()) == ["datalist.json"]


def test_csv_for_radiograph_classification_carries_the_reference_labels(synth, cache, tmp_path):
    out = tmp_path / "cxr"
    _export(synth, cache, CXR, "train", "csv", out)
    table = pd.read_csv(out / "train.csv", dtype=str, keep_default_na=False)
    prepared = _prepared(synth, cache, CXR, "train", tmp_path / "prepared")
    labels = pd.read_csv(prepared.reference_dir / "labels.csv", dtype=str, keep_default_na=False)
    assert list(table.columns) == ["image", "case_id", "patient_id", "site", "appearance", "grade", "fold"]
    merged = table.merge(labels, on="case_id", suffixes=("", "_ref"))
    assert len(merged) == len(table) == len(labels)
    for column in ("patient_id", "site", "appearance", "grade"):
        assert (merged[column] == merged[f"{column}_ref"]).all(), column
    assert all((out / path).is_file() for path in table["image"])
    assert table.groupby("patient_id")["fold"].nunique().max() == 1


def test_monai_datalist_for_ct_classification_has_class_indexes(synth, cache, tmp_path):
    out = tmp_path / "cls"
    _export(synth, cache, CLS, "train", "monai", out)
    spec = load_task(CLS, directory=synth.tasks)
    head = spec.heads[0]
    entries = json.loads((out / "datalist.json").read_text())["training"]
    assert entries and all(head.classes[e["label"]] == e[head.column] for e in entries)
