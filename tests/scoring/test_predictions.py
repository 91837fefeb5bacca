"""Scoring predictions made outside the harness: a plain folder of masks or a predictions.csv, no run.json.

The self-reported path must give the same per-case rows and aggregates as a run directory holding
the same predictions (same bytes of per_case.csv, same scores.json apart from the run id), say
``self_reported`` in the receipt, and take every option from the task spec (the notebook API).
"""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.errors import ScoringError
from bench.metrics.segmentation import DEFAULT_TOLERANCE_MM, score_case
from bench.scoring.predictions import score_predictions, score_predictions_and_store
from bench.scoring.score import score_and_store
from bench.scoring.segmentation import tolerance_mm
from bench.store import Store
from bench.tasks import load_task
from tests.helpers.scoring_fixtures import (
    make_tasks_dir,
    pin_fixture_split,
    write_reference,
    write_run,
)
from tests.scoring.test_score import EMPTY, HALF_BLOCK, REF_BLOCK, _fast

SEG = "ricord-1a-lesion-seg"
CXR = "ricord-1c-cxr-appearance"


def _seg_reference(tmp_path, monkeypatch):
    make_tasks_dir(tmp_path, monkeypatch, SEG, edit=_fast)
    cases = [("a", "p1"), ("b", "p2"), ("c", "p3")]
    pin_fixture_split(SEG, cases)
    refs = {"a": REF_BLOCK, "b": REF_BLOCK, "c": EMPTY}
    return write_reference(
        tmp_path / "prepared",
        SEG,
        [{"case_id": c, "patient_id": p, "mask": refs[c]} for c, p in cases],
    )


def _stored_bytes(stored) -> tuple[bytes, dict]:
    scores = json.loads((stored.path / "scores.json").read_text())
    scores.pop("run_id")
    return (stored.path / "per_case.csv").read_bytes(), scores


def test_plain_folder_scores_like_the_run_holding_the_same_masks(tmp_path, monkeypatch):
    reference = _seg_reference(tmp_path, monkeypatch)
    spec = load_task(SEG)
    run = write_run(
        tmp_path / "run",
        SEG,
        {"a": ("ok", ""), "b": ("missing", "no masks/b.nii.gz"), "c": ("ok", "")},
        masks={"a": HALF_BLOCK, "c": EMPTY},
        name="nnunet-fold0",
    )
    # nnU-Net's output folder: <case_id>.nii.gz plus its own json files
    folder = tmp_path / "nnunet-fold0"
    folder.mkdir()
    for case in ("a", "c"):
        shutil.copy(run / "outputs" / "masks" / f"{case}.nii.gz", folder / f"{case}.nii.gz")
    (folder / "plans.json").write_text("{}")
    from_run = score_and_store(spec, run, reference, results=tmp_path / "results-run", workers=1)
    from_folder = score_predictions_and_store(spec, folder, reference, results=tmp_path / "results",
                                              workers=1, team="Team T", entry=folder.name)
    assert _stored_bytes(from_folder) == _stored_bytes(from_run)
    assert from_folder.run_id.split("-")[-1] == from_run.run_id.split("-")[-1]
    receipt = from_folder.receipt
    assert receipt["self_reported"] is True and from_folder.self_reported
    assert from_run.receipt["self_reported"] is False
    assert receipt["run"]["runner"] == "self-reported"
    assert receipt["run"]["image"] is None and receipt["run"]["limits"] == {}
    run_json = json.loads(
        (tmp_path / "results" / ".work" / "self-reported").rglob("run.json").__next__().read_text())
    assert {c["case_id"]: c["status"] for c in run_json["cases"]} == {"a": "ok", "b": "missing", "c": "ok"}
    assert run_json["rejected"] == [
        {"path": "plans.json", "reason": "not a mask of a reference case; ignored"}]
    assert [r.name for r in Store(tmp_path / "results").runs()] == ["nnunet-fold0"]


def test_folder_masks_are_checked_as_strictly_as_a_container_output(tmp_path, monkeypatch):
    reference = _seg_reference(tmp_path, monkeypatch)
    folder = tmp_path / "preds"
    (folder / "masks").mkdir(parents=True)
    shutil.copy(reference / "masks" / "a.nii.gz", folder / "masks" / "a.nii.gz")
    (folder / "masks" / "b.nii.gz").write_bytes(b"not a nifti")
    (folder / "masks" / "c.nii.gz").symlink_to(reference / "masks" / "c.nii.gz")
    result = score_predictions(SEG, folder, reference)
    table = result.per_case.set_index("case_id")
    assert table.loc["a", "status"] == "ok" and table.loc["a", "dice"] == 1.0
    assert table.loc["b", "status"] == "malformed" and "not a readable NIfTI" in table.loc["b", "reason"]
    assert table.loc["c", "status"] == "malformed" and "symlink" in table.loc["c", "reason"]
    # missing_prediction: worst, from the task
    assert table.loc["b", "dice"] == 0.0 and table.loc["c", "dice"] == 0.0


def test_a_folder_for_another_reference_is_refused_with_the_expected_names(tmp_path, monkeypatch):
    reference = _seg_reference(tmp_path, monkeypatch)
    folder = tmp_path / "preds"
    folder.mkdir()
    (folder / "case-0123456789ab.nii.gz").write_bytes(b"x")
    with pytest.raises(ScoringError, match="none of the 3 reference cases has a mask here.*a.nii.gz"):
        score_predictions(SEG, folder, reference)


def test_notebook_defaults_come_from_the_task_and_match_score_case(tmp_path, monkeypatch):
    """The NSD tolerance of the board (task) and of a bare score_case call are the same 2 mm."""
    reference = _seg_reference(tmp_path, monkeypatch)
    spec = load_task(SEG)
    assert tolerance_mm(spec) == DEFAULT_TOLERANCE_MM == 2.0
    # prediction shifted by 2 voxels of 1 mm: every surface distance is 0 or 2 mm, so NSD is 1
    # at a 2 mm tolerance and below 1 at 1 mm
    shifted = np.zeros_like(REF_BLOCK)
    shifted[2:4, 0:2, 0] = 1
    folder = tmp_path / "preds"
    folder.mkdir()
    from tests.helpers.scoring_fixtures import _save_mask, affine_for

    for case, mask in {"a": shifted, "b": REF_BLOCK, "c": EMPTY}.items():
        _save_mask(folder / f"{case}.nii.gz", mask, affine_for((1.0, 1.0, 1.0)))
    result = score_predictions(SEG, folder, reference)
    notebook_nsd = result.per_case.set_index("case_id").loc["a", "nsd"]
    assert notebook_nsd == score_case(shifted, REF_BLOCK, spacing_mm=(1.0, 1.0, 1.0)).nsd == 1.0
    assert score_case(shifted, REF_BLOCK, spacing_mm=(1.0, 1.0, 1.0), tolerance_mm=1.0).nsd < 1.0
    assert set(result.scores["metrics"]["dice"]) >= {"value", "ci_low", "ci_high"}
    assert result.scores["policies"] == spec.policies.model_dump(mode="json")


def _cxr_reference(tmp_path, monkeypatch):
    make_tasks_dir(tmp_path, monkeypatch, CXR, edit=_fast)
    spec = load_task(CXR)
    cases = [(f"c{i}", f"p{i}") for i in range(6)]
    pin_fixture_split(CXR, cases)
    rows = []
    for i, (case, patient) in enumerate(cases):
        row = {"case_id": case, "patient_id": patient}
        for head in spec.heads:
            row[head.column] = head.classes[i % len(head.classes)]
        rows.append(row)
    return spec, write_reference(tmp_path / "prepared", CXR, rows)


def test_predictions_csv_file_and_dataframe_score_alike(tmp_path, monkeypatch):
    spec, reference = _cxr_reference(tmp_path, monkeypatch)
    rows = []
    for i in range(6):
        row = {"case_id": f"c{i}"}
        for head in spec.heads:
            k = len(head.classes)
            row.update({cls: (0.7 if j == i % k else 0.3 / (k - 1)) for j, cls in enumerate(head.classes)})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=spec.output_columns)
    csv = tmp_path / "mine.csv"
    frame.to_csv(csv, index=False)
    from_file = score_predictions(CXR, csv, reference, team="Team T", entry="mine")
    from_frame = score_predictions(CXR, frame, reference)
    assert from_file.per_case.equals(from_frame.per_case)
    assert (from_file.per_case["status"] == "ok").all()
    assert from_file.scores["metrics"] == from_frame.scores["metrics"]
    assert (from_file.entry.team, from_file.entry.name) == ("Team T", "mine")
    assert (from_frame.entry.team, from_frame.entry.name) == ("local", "notebook")


def test_cli_scores_a_plain_folder_and_prints_the_hashes(tmp_path, monkeypatch):
    reference = _seg_reference(tmp_path, monkeypatch)
    folder = tmp_path / "my-model"
    folder.mkdir()
    shutil.copy(reference / "masks" / "a.nii.gz", folder / "a.nii.gz")
    result = CliRunner().invoke(
        app,
        ["score", "--task", SEG, "--predictions", str(folder), "--reference", str(reference),
         "--out", str(tmp_path / "results"), "--workers", "1", "--team", "Team T", "--entry", "my-model"],
    )
    assert result.exit_code == 0, result.output
    spec = load_task(SEG)
    split_sha = json.loads((reference / "reference.json").read_text())["split_sha256"]
    assert "self-reported" in result.output
    assert f"sha256 {split_sha}" in result.output and f"sha256 {spec.sha256}" in result.output


def test_board_marks_the_self_reported_entry(tmp_path, monkeypatch):
    from bench.leaderboard.site import build_leaderboard

    reference = _seg_reference(tmp_path, monkeypatch)
    spec = load_task(SEG)
    run = write_run(tmp_path / "run", SEG, {"a": ("ok", ""), "b": ("ok", ""), "c": ("ok", "")},
                    masks={"a": REF_BLOCK, "b": HALF_BLOCK, "c": EMPTY}, name="container-entry")
    score_and_store(spec, run, reference, results=tmp_path / "results", workers=1)
    folder = tmp_path / "home-made"
    folder.mkdir()
    shutil.copy(run / "outputs" / "masks" / "a.nii.gz", folder / "a.nii.gz")
    score_predictions_and_store(spec, folder, reference, results=tmp_path / "results", workers=1,
                                              team="Team T", entry=folder.name)
    build_leaderboard(tmp_path / "results", tmp_path / "site")
    board = json.loads((tmp_path / "site" / "leaderboard.json").read_text())["tasks"][0]["boards"][0]
    marks = {entry["submission"]: entry["self_reported"] for entry in board["entries"]}
    assert marks == {"container-entry": False, "home-made": True}
    page = (tmp_path / "site" / SEG / "index.html").read_text()
    assert page.count(">self-reported</span>") == 1
