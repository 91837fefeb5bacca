"""The confound floor: the fit on hand-made tables, and on synthetic collections with and without
a confounded acquisition (real DICOM headers read by pydicom, scored and stored like any entry)."""

import numpy as np
import pandas as pd
import pytest

from bench.data.manifest import write_manifest
from bench.data.ricord import index_download
from bench.data.synth import synthesize
from bench.errors import TaskSpecError
from bench.pipeline.confound import FLOOR_NAME, confound_floor, fit_and_predict
from bench.splits.pin import pin_split
from bench.store import Store
from bench.tasks import load_task
from tests.helpers.splits_fixtures import copy_task_specs

TASK = "ricord-ct-covid-cls"


def _table(manufacturers, sites):
    n = len(manufacturers)
    return pd.DataFrame({"manufacturer": manufacturers, "model": [None] * n, "kernel": [None] * n,
                         "site": sites, "slice_thickness_mm": [1.0] * n, "pixel_spacing_mm": [0.7] * n,
                         "rows": [512.0] * n, "columns": [512.0] * n, "study_date": [np.nan] * n})


def test_a_header_field_that_gives_the_label_away_is_learned():
    spec = load_task(TASK)
    train = _table(["A", "A", "A", "B", "B", "B"], ["s1", "s2", "s1", "s2", "s1", "s2"])
    labels = pd.DataFrame({"covid": ["positive"] * 3 + ["negative"] * 3})
    scored = _table(["A", "B", "C"], ["s1", "s1", "s1"])
    probabilities = fit_and_predict(spec, train, labels, scored)
    assert list(probabilities.columns) == ["negative", "positive"]
    assert probabilities["positive"][0] > 0.6 > 0.4 > probabilities["positive"][1]
    assert probabilities["positive"][2] == pytest.approx(0.5, abs=0.05)  # unknown scanner: no information
    assert np.allclose(probabilities.sum(axis=1), 1.0)


def test_a_head_with_one_class_in_train_predicts_it():
    spec = load_task(TASK)
    train = _table(["A", "B"], ["s1", "s2"])
    probabilities = fit_and_predict(spec, train, pd.DataFrame({"covid": ["positive", "positive"]}),
                                    _table(["A"], ["s1"]))
    assert probabilities.loc[0].to_dict() == {"negative": 0.0, "positive": 1.0}


def test_a_task_without_a_floor_says_how_to_declare_one():
    with pytest.raises(TaskSpecError, match="declares no confound_floor"):
        confound_floor(load_task("ricord-1c-cxr-appearance"), root=".", name="synthetic")


def _floor(tmp_path, monkeypatch, confounding):
    root = tmp_path / confounding
    report = synthesize(root, seed=3, confounding=confounding)
    clinical = sorted(p for p in report.clinical if p.suffix == ".csv")
    index = index_download(root, annotations=list(report.annotations), clinical=clinical)
    manifest = write_manifest(index.manifest, root / "manifest.csv")
    tasks = copy_task_specs(tmp_path / f"tasks-{confounding}")
    monkeypatch.setenv("BENCH_TASKS_DIR", str(tasks))
    spec = load_task(TASK, directory=tasks)
    pin_split(spec, manifest, root=root, name="synthetic", directory=tasks)
    results = tmp_path / f"results-{confounding}"
    return confound_floor(spec, root=root, name="synthetic", results=results), Store(results)


@pytest.mark.slow
def test_on_an_unconfounded_collection_the_floor_is_chance(tmp_path, monkeypatch):
    report, store = _floor(tmp_path, monkeypatch, "none")
    auroc = report.stored.scores["metrics"]["covid.auroc"]
    assert auroc["ci_low"] <= 0.5 <= auroc["ci_high"]
    assert report.stored.name == FLOOR_NAME and report.stored.reference_entry["kind"] == FLOOR_NAME
    assert [run.name for run in store.runs(TASK)] == [FLOOR_NAME]


@pytest.mark.slow
def test_on_a_scanner_confounded_collection_the_floor_is_high(tmp_path, monkeypatch):
    report, _ = _floor(tmp_path, monkeypatch, "scanner")
    auroc = report.stored.scores["metrics"]["covid.auroc"]
    assert auroc["value"] >= 0.95 and auroc["ci_low"] > 0.5
