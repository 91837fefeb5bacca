"""The reader band: leave-one-reader-out references by hand, and the band on the synthetic 1c."""

import json

import numpy as np
import pandas as pd
import pytest

from bench.errors import TaskSpecError
from bench.pipeline.readers import leave_one_out, reader_band, reader_scores
from bench.store import reader_band_folder
from bench.tasks import load_task
from tests.helpers.splits_fixtures import synthetic

CXR = "ricord-1c-cxr-appearance"


def _row(study, group, role, appearance, invalid=False):
    return {"study_uid": study, "group_id": group, "group_name": group, "role": role, "users": "u",
            "appearance": appearance, "grade": "", "invalid": invalid, "n_labels": 1}


def test_each_reader_is_compared_with_the_protocol_of_the_others():
    readers = pd.DataFrame([
        _row("s1", "A", "reader", "typical"), _row("s1", "B", "reader", "typical"),
        _row("s1", "C", "reader", "atypical"),
        _row("s2", "A", "reader", "negative"), _row("s2", "B", "reader", "atypical"),
        _row("s2", "C", "reader", "atypical"), _row("s2", "Adjudication", "adjudicator", "indeterminate"),
    ])
    loo = leave_one_out(readers, load_task(CXR), "appearance").set_index(["study_uid", "group_name"])
    assert loo.loc[("s1", "A"), "consensus"] == "atypical"  # B typical, C atypical: tied, the lower median
    assert loo.loc[("s1", "C"), "consensus"] == "typical"  # A and B agree
    assert loo.loc[("s2", "B"), "consensus"] == "indeterminate"  # the adjudicator decides
    assert ("s2", "Adjudication") not in loo.index  # an adjudicator is not scored as a reader


def test_a_perfect_reader_scores_one_and_a_contrarian_less():
    classes = ["typical", "indeterminate", "atypical", "negative"]
    consensus = np.array(classes * 3)
    full = np.ones((1, consensus.size))
    assert reader_scores(consensus, consensus, classes, full)[0] == pytest.approx(1.0)
    wrong = np.roll(consensus, 1)
    assert reader_scores(wrong, consensus, classes, full)[0] < 0.5


def test_the_band_needs_a_reader_labelled_auroc_primary():
    with pytest.raises(TaskSpecError, match="reader band needs an AUROC primary"):
        reader_band(load_task("ricord-ct-covid-cls"), root=".")


@pytest.mark.slow
def test_band_of_the_synthetic_1c_test_split(tmp_path_factory, tmp_path, monkeypatch):
    built = synthetic(tmp_path_factory)
    monkeypatch.setenv("BENCH_TASKS_DIR", str(built.tasks))
    spec = load_task(CXR, directory=built.tasks)
    results = tmp_path / "results"
    scores = reader_band(spec, root=built.root, name="synthetic", split="test", results=results)
    assert len(scores) >= 3 and all(0 <= s.value <= 1 and s.ci_low <= s.value <= s.ci_high for s in scores)
    folder = reader_band_folder(results, CXR, "synthetic", "test")
    document = json.loads((folder / "band.json").read_text())
    assert [r["group"] for r in document["readers"]] == [s.group for s in scores]
    per_case = pd.read_csv(folder / "per_case.csv")
    assert set(per_case.columns) == {"case_id", "patient_id", "group_name", "label", "consensus"}
    assert per_case.case_id.str.startswith("case-").all()  # prepared (salted) ids, never manifest ids
    again = reader_band(spec, root=built.root, name="synthetic", split="test", results=results)
    assert again == scores and not folder.with_name(folder.name + ".old").exists()


@pytest.mark.slow
def test_inter_reader_dice_of_the_synthetic_1a_test_split(tmp_path_factory, tmp_path, monkeypatch):
    """The second synthetic 1a reader skips the end slices of each lesion: agreement high, below 1."""
    import nibabel as nib

    built = synthetic(tmp_path_factory)
    monkeypatch.setenv("BENCH_TASKS_DIR", str(built.tasks))
    spec = load_task("ricord-1a-lesion-seg", directory=built.tasks)
    results = tmp_path / "results"
    dice, nsd = reader_band(spec, root=built.root, name="synthetic", split="test", results=results)
    assert (dice.group, nsd.group) == ("inter-reader dice", "inter-reader nsd")
    assert 0.5 < dice.value < 1 and dice.ci_low <= dice.value <= dice.ci_high and 0 < nsd.value <= 1
    traced = sorted((results / ".work" / "prepared" / spec.id / "synthetic" / "test" / "reference"
                     / "readers").iterdir())
    by_hand = []
    for folder in traced:
        a, b = (np.asanyarray(nib.load(p).dataobj).astype(bool) for p in sorted(folder.glob("*.nii.gz")))
        by_hand.append(2 * (a & b).sum() / (a.sum() + b.sum()))
    assert dice.n == len(traced) and dice.value == pytest.approx(np.mean(by_hand))
    # two readers: the majority is where both traced, which prepare keeps where it differs from the union
    alternatives = traced[0].parent.parent / "alternatives" / "majority"
    for folder in traced:
        a, b = (np.asanyarray(nib.load(p).dataobj).astype(bool) for p in sorted(folder.glob("*.nii.gz")))
        kept = alternatives / f"{folder.name}.nii.gz"
        assert kept.is_file() and (np.asanyarray(nib.load(kept).dataobj).astype(bool) == (a & b)).all()
