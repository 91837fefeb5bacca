"""bench.scoring.score on hand-built references and runs: values written out by hand, policies, refusal,
determinism, and the store entry (library layer and `bench score` through the CLI)."""

import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.errors import PrepareError, ScoringError
from bench.scoring.score import score_and_store, score_run
from bench.store import Store
from bench.tasks import load_task
from tests.helpers.scoring_fixtures import make_tasks_dir, pin_fixture_split, write_reference, write_run

SEG = "ricord-1a-lesion-seg"
COVID = "ricord-ct-covid-cls"
CXR = "ricord-1c-cxr-appearance"
SHAPE = (4, 4, 2)


def _fast(raw):
    raw["bootstrap"]["resamples"] = 200


def _block(*slices):
    mask = np.zeros(SHAPE, dtype=np.uint8)
    mask[slices] = 1
    return mask


REF_BLOCK = _block(slice(0, 2), slice(0, 2), 0)  # 4 voxels
HALF_BLOCK = _block(slice(0, 2), 0, 0)  # 2 of them
EMPTY = np.zeros(SHAPE, dtype=np.uint8)


def seg_case_setup(tmp_path, monkeypatch, *, edit=_fast):
    """Five cases: partial overlap, missing, both empty, malformed, perfect (see the test)."""
    make_tasks_dir(tmp_path, monkeypatch, SEG, edit=edit)
    cases = [("a", "p1"), ("b", "p2"), ("c", "p3"), ("d", "p4"), ("e", "p5")]
    pin_fixture_split(SEG, cases)
    refs = {"a": REF_BLOCK, "b": REF_BLOCK, "c": EMPTY, "d": REF_BLOCK, "e": REF_BLOCK}
    reference = write_reference(
        tmp_path / "prepared",
        SEG,
        [
            {
                "case_id": c,
                "patient_id": p,
                "mask": refs[c],
                "site": "S1" if c < "c" else "S2",
                "sex": "F",
                "age": 55.0,
            }
            for c, p in cases
        ],
    )
    statuses = {
        "a": ("ok", ""),
        "b": ("missing", "no output file"),
        "c": ("ok", ""),
        "d": ("malformed", "mask is not 0/1"),
        "e": ("ok", ""),
    }
    run = write_run(tmp_path / "run", SEG, statuses, masks={"a": HALF_BLOCK, "c": EMPTY, "e": REF_BLOCK})
    return load_task(SEG), run, reference


def test_segmentation_values_by_hand(tmp_path, monkeypatch):
    spec, run, reference = seg_case_setup(tmp_path, monkeypatch)
    result = score_run(spec, run, reference, workers=1)
    table = result.per_case.set_index("case_id")
    # a: TP 2, |P| 2, |R| 4 -> Dice 4/6, IoU 2/4, precision 1, recall 1/2; reference surface voxels at
    # distances 0, 0, 1, 1 from the prediction, prediction voxels at 0: HD95 = 1, ASSD = 2/6.
    assert table.loc["a", "dice"] == pytest.approx(2 / 3)
    assert table.loc["a", "iou"] == pytest.approx(0.5)
    assert table.loc["a", "precision"] == pytest.approx(1.0)
    assert table.loc["a", "recall"] == pytest.approx(0.5)
    assert table.loc["a", "hd95"] == pytest.approx(1.0)
    assert table.loc["a", "assd"] == pytest.approx(1 / 3)
    # b (missing) and d (malformed), policy worst: Dice 0, HD95 the image diagonal
    # sqrt(4^2 + 4^2 + 2^2) = 6 mm.
    for case in ("b", "d"):
        assert table.loc[case, "dice"] == 0.0
        assert table.loc[case, "hd95"] == pytest.approx(6.0)
        assert "worst value (policy missing_prediction=worst)" in table.loc[case, "reason"]
    assert table.loc["b", "status"] == "missing" and table.loc["d", "status"] == "malformed"
    assert table.loc["d", "reason"].startswith("mask is not 0/1")
    # c: both empty -> perfect; e: identical -> perfect.
    assert table.loc["c", "dice"] == 1.0 and table.loc["c", "hd95"] == 0.0
    assert table.loc["e", "dice"] == 1.0 and table.loc["e", "hd95"] == 0.0
    metrics = result.scores["metrics"]
    assert metrics["dice"]["value"] == pytest.approx((2 / 3 + 0 + 1 + 0 + 1) / 5)
    assert metrics["hd95"]["value"] == pytest.approx((1 + 6 + 0 + 6 + 0) / 5)
    assert metrics["dice"]["direction"] == "higher" and metrics["hd95"]["direction"] == "lower"
    assert metrics["dice"]["ci_low"] <= metrics["dice"]["value"] <= metrics["dice"]["ci_high"]
    assert result.scores["counts"] == {"cases": 5, "ok": 3, "missing": 1, "malformed": 1, "error": 0}
    assert list(result.per_case["case_id"]) == ["a", "b", "c", "d", "e"]
    assert result.scores["policies"]["missing_prediction"] == "worst"
    # subgroups of the primary metric: both sites are below min_size 5, reported but not scored
    site = result.scores["subgroups"]["site"]
    assert site["S1"] == {**site["S1"], "n": 2, "too_small": True, "value": None}
    assert site["S2"]["n"] == 3 and site["S2"]["too_small"]
    assert (
        result.scores["subgroups"]["sex"]["F"]["n"] == 5
        and not result.scores["subgroups"]["sex"]["F"]["too_small"]
    )
    assert result.scores["subgroups"]["sex"]["F"]["value"] == pytest.approx(8 / 15)
    assert result.scores["fairness"] == {}


@pytest.mark.parametrize(("policy", "dice", "hd95"), [("worst", 0.0, 6.0), ("empty_mask", 1.0, 0.0)])
def test_missing_prediction_on_an_empty_reference(tmp_path, monkeypatch, policy, dice, hd95):
    def edit(raw):
        _fast(raw)
        raw["policies"]["missing_prediction"] = policy

    spec, _, reference = seg_case_setup(tmp_path, monkeypatch, edit=edit)
    statuses = {
        "a": ("ok", ""),
        "b": ("ok", ""),
        "c": ("missing", "timed out"),
        "d": ("ok", ""),
        "e": ("ok", ""),
    }
    run = write_run(tmp_path / "run-c", SEG, statuses, masks={c: REF_BLOCK for c in "abde"})
    table = score_run(spec, run, reference, workers=1).per_case.set_index("case_id")
    # c's reference is empty: an empty prediction is perfect, the worst values are not.
    assert table.loc["c", "dice"] == dice and table.loc["c", "hd95"] == pytest.approx(hd95)
    assert table.loc["c", "reason"].startswith("timed out; ")
    assert f"policy missing_prediction={policy}" in table.loc["c", "reason"]


def test_exclude_policy_leaves_missing_cases_out_but_counts_them(tmp_path, monkeypatch):
    def edit(raw):
        _fast(raw)
        raw["policies"]["missing_prediction"] = "exclude"

    spec, run, reference = seg_case_setup(tmp_path, monkeypatch, edit=edit)
    result = score_run(spec, run, reference, workers=1)
    table = result.per_case.set_index("case_id")
    assert np.isnan(table.loc["b", "dice"]) and np.isnan(table.loc["d", "dice"])
    assert "left out of the aggregates" in table.loc["b", "reason"]
    assert result.scores["metrics"]["dice"]["value"] == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert result.scores["metrics"]["dice"]["n"] == 3
    assert result.scores["counts"]["missing"] == 1 and result.scores["counts"]["cases"] == 5


def test_ok_without_file_and_wrong_grid_are_errors_scored_by_the_policy(tmp_path, monkeypatch):
    spec, run, reference = seg_case_setup(tmp_path, monkeypatch)
    (run / "outputs" / "masks" / "a.nii.gz").unlink()
    from tests.helpers.scoring_fixtures import _save_mask, affine_for

    _save_mask(
        run / "outputs" / "masks" / "e.nii.gz", np.ones((3, 3, 2), dtype=np.uint8), affine_for((1, 1, 1))
    )
    table = score_run(spec, run, reference, workers=1).per_case.set_index("case_id")
    assert table.loc["a", "status"] == "error" and "absent" in table.loc["a", "reason"]
    assert table.loc["e", "status"] == "error" and "shape" in table.loc["e", "reason"]
    assert table.loc["a", "dice"] == 0.0 and table.loc["e", "dice"] == 0.0


@pytest.mark.parametrize("values", [(0, 2), (-1, 1)])
def test_a_mask_that_is_not_0_1_at_scoring_time_is_an_error(tmp_path, monkeypatch, values):
    spec, run, reference = seg_case_setup(tmp_path, monkeypatch)
    from tests.helpers.scoring_fixtures import _save_mask, affine_for

    mask = REF_BLOCK.astype(np.int16) * values[1]
    mask[3, 3, 1] = values[0]
    _save_mask(run / "outputs" / "masks" / "e.nii.gz", mask, affine_for((1, 1, 1)))
    table = score_run(spec, run, reference, workers=1).per_case.set_index("case_id")
    assert table.loc["e", "status"] == "error" and "not binary" in table.loc["e", "reason"]
    assert table.loc["e", "dice"] == 0.0


def test_a_plain_nifti_named_nii_gz_scores_as_it_was_collected(tmp_path, monkeypatch):
    """Collection accepts plain NIfTI-1 bytes under masks/<id>.nii.gz; scoring applies the same rule."""
    spec, run, reference = seg_case_setup(tmp_path, monkeypatch)
    from tests.helpers.scoring_fixtures import affine_for

    plain = nib.Nifti1Image(REF_BLOCK.astype(np.uint8), affine_for((1, 1, 1)))
    plain.header.set_xyzt_units("mm")
    (run / "outputs" / "masks" / "e.nii.gz").write_bytes(plain.to_bytes())  # not gzip-compressed
    table = score_run(spec, run, reference, workers=1).per_case.set_index("case_id")
    assert table.loc["e", "status"] == "ok" and table.loc["e", "dice"] == 1.0


def test_refuses_reference_of_another_split_or_spec(tmp_path, monkeypatch):
    spec, run, reference = seg_case_setup(tmp_path, monkeypatch)
    pin_fixture_split(SEG, [("a", "p1"), ("b", "p2")])  # the pinned split changed
    with pytest.raises(ScoringError, match="split sha256"):
        score_run(spec, run, reference, workers=1)
    edited = load_task(SEG).model_copy(update={"metric_options": {"tolerance_mm": 5.0}})
    with pytest.raises(ScoringError, match="task spec sha256"):
        score_run(edited, run, reference, workers=1)


def test_refuses_an_edited_reference(tmp_path, monkeypatch):
    spec, run, reference = seg_case_setup(tmp_path, monkeypatch)
    document = json.loads((reference / "reference.json").read_text())
    document["cases"][0]["patient_id"] = "someone-else"
    (reference / "reference.json").write_text(json.dumps(document))
    with pytest.raises(PrepareError, match="does not match its content"):
        score_run(spec, run, reference, workers=1)


@pytest.mark.parametrize("workers", [1, 2])
def test_refuses_a_changed_reference_mask(tmp_path, monkeypatch, workers):
    """The hash is taken in the worker on the array it scores (the mask is decompressed once)."""
    import nibabel as nib

    spec, run, reference = seg_case_setup(tmp_path, monkeypatch)
    mask = reference / "masks" / "e.nii.gz"
    image = nib.load(mask)
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj) * 0, image.affine), mask)
    with pytest.raises(PrepareError, match=r"e\.nii\.gz: mask content sha256 .* the mask was changed"):
        score_run(spec, run, reference, workers=workers)


def test_binary_classification_by_hand_with_chance_policy(tmp_path, monkeypatch):
    make_tasks_dir(tmp_path, monkeypatch, COVID, edit=_fast)
    cases = [
        ("a", "p1", "positive"),
        ("b", "p2", "positive"),
        ("c", "p3", "negative"),
        ("d", "p4", "negative"),
        ("e", "p5", "positive"),
    ]
    pin_fixture_split(COVID, [(c, p) for c, p, _ in cases])
    reference = write_reference(
        tmp_path / "prepared",
        COVID,
        [{"case_id": c, "patient_id": p, "covid": label} for c, p, label in cases],
    )
    scores = {"a": 0.9, "b": 0.4, "c": 0.6, "d": 0.1}
    run = write_run(
        tmp_path / "run",
        COVID,
        {**{c: ("ok", "") for c in scores}, "e": ("missing", "no row")},
        predictions={c: {"negative": 1 - s, "positive": s} for c, s in scores.items()},
    )
    result = score_run(load_task(COVID), run, reference, workers=1)
    metrics = result.scores["metrics"]
    # e scores 0.5 (uniform). Positives {0.9, 0.4, 0.5} vs negatives {0.6, 0.1}: 4 of 6 pairs ordered.
    assert metrics["covid.auroc"]["value"] == pytest.approx(4 / 6)
    assert metrics["covid.sensitivity"]["value"] == pytest.approx(2 / 3)  # 0.9, 0.5 >= 0.5
    assert metrics["covid.specificity"]["value"] == pytest.approx(1 / 2)  # 0.6 is a false positive
    assert metrics["covid.balanced_accuracy"]["value"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert metrics["covid.brier"]["value"] == pytest.approx((0.01 + 0.36 + 0.36 + 0.01 + 0.25) / 5)
    # ranked 0.9+, 0.6-, 0.5+, 0.4+, 0.1-: precision at each positive 1, 2/3, 3/4
    assert metrics["covid.average_precision"]["value"] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    table = result.per_case.set_index("case_id")
    assert table.loc["e", "positive"] == 0.5 and table.loc["e", "covid_pred"] == "positive"
    assert table.loc["b", "covid_pred"] == "negative" and table.loc["b", "covid"] == "positive"
    assert "uniform probabilities" in table.loc["e", "reason"]
    assert set(result.scores["fairness"]["covid"]["attributes"]) == {"site", "sex", "age_band"}


def test_multiclass_and_severity_by_hand(tmp_path, monkeypatch):
    make_tasks_dir(tmp_path, monkeypatch, CXR, edit=_fast)
    labels = {
        "c1": ("typical", "mild"),
        "c2": ("indeterminate", "moderate"),
        "c3": ("atypical", None),
        "c4": ("negative", None),
        "c5": ("typical", "severe"),
        "c6": ("indeterminate", "mild"),
    }
    pin_fixture_split(CXR, [(c, f"p{c}") for c in labels])
    reference = write_reference(
        tmp_path / "prepared",
        CXR,
        [{"case_id": c, "patient_id": f"p{c}", "appearance": a, "grade": g} for c, (a, g) in labels.items()],
    )
    appearance = {
        "c1": [0.7, 0.1, 0.1, 0.1],
        "c2": [0.1, 0.6, 0.2, 0.1],
        "c3": [0.1, 0.2, 0.6, 0.1],
        "c4": [0.4, 0.1, 0.1, 0.4],
        "c6": [0.1, 0.1, 0.7, 0.1],
    }
    severity = {
        "c1": [0.8, 0.1, 0.1],
        "c2": [0.1, 0.8, 0.1],
        "c3": [0.3, 0.4, 0.3],
        "c4": [0.34, 0.33, 0.33],
        "c6": [0.2, 0.2, 0.6],
    }
    spec = load_task(CXR)
    rows = {
        c: dict(zip(spec.output_columns[1:], appearance[c] + severity[c], strict=True)) for c in appearance
    }
    run = write_run(
        tmp_path / "run", CXR, {**{c: ("ok", "") for c in rows}, "c5": ("malformed", "NaN")}, predictions=rows
    )
    scores = score_run(spec, run, reference, workers=1).scores
    metrics = scores["metrics"]
    assert scores["fairness"]["severity"]["measure"] == "delta_quadratic_weighted_kappa"
    assert "appearance" not in scores["fairness"]  # neither binary nor ordinal
    # one-vs-rest AUROC per class (c5 uniform): typical 7/8, indeterminate 5/8, atypical 4/5, negative 1
    assert metrics["appearance.auroc_per_class"]["value"] == pytest.approx(
        {"typical": 7 / 8, "indeterminate": 5 / 8, "atypical": 4 / 5, "negative": 1.0}
    )
    assert metrics["appearance.auroc"]["value"] == pytest.approx((7 / 8 + 5 / 8 + 4 / 5 + 1) / 4)
    # argmax (ties to the first class): c4 -> typical, c5 (uniform) -> typical, c6 -> atypical
    assert metrics["appearance.confusion_matrix"]["value"] == [
        [2, 0, 0, 0],
        [0, 1, 1, 0],
        [0, 0, 1, 0],
        [1, 0, 0, 0],
    ]
    assert metrics["appearance.balanced_accuracy"]["value"] == pytest.approx((1 + 1 / 2 + 1 + 0) / 4)
    # severity only on graded cases c1, c2, c5, c6: true (0, 1, 2, 0), predicted (0, 1, 0, 2);
    # quadratic disagreement 8 observed vs 5.5 expected -> 1 - 8 / 5.5
    assert metrics["severity.quadratic_weighted_kappa"]["value"] == pytest.approx(1 - 8 / 5.5)
    assert metrics["severity.quadratic_weighted_kappa"]["n"] == 4


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_same_inputs_same_bytes_apart_from_times(tmp_path, monkeypatch, workers):
    spec, run, reference = seg_case_setup(tmp_path, monkeypatch)
    first = score_and_store(spec, run, reference, results=tmp_path / "results", workers=1)
    second = score_and_store(spec, run, reference, results=tmp_path / "results2", workers=workers)
    assert first.per_case.equals(second.per_case)
    assert (first.path / "per_case.csv").read_bytes() == (second.path / "per_case.csv").read_bytes()

    def strip(path, *keys):
        body = json.loads(path.read_text())
        for key in keys:
            body.pop(key)
        return body

    assert strip(first.path / "scores.json", "run_id") == strip(second.path / "scores.json", "run_id")
    assert strip(first.path / "receipt.json", "run_id", "started_at", "ended_at") == strip(
        second.path / "receipt.json", "run_id", "started_at", "ended_at"
    )
    assert first.run_id[-8:] == second.run_id[-8:]
    assert sorted(p.name for p in (first.path / "logs").iterdir()) == ["stderr.txt", "stdout.txt"]


def test_receipt_names_everything_that_produced_the_numbers(tmp_path, monkeypatch):
    spec, run, reference = seg_case_setup(tmp_path, monkeypatch)
    stored = score_and_store(spec, run, reference, results=tmp_path / "results", workers=1)
    receipt = stored.receipt
    assert receipt["task"]["sha256"] == spec.sha256
    assert receipt["split"]["name"] == "fixture" and len(receipt["split"]["sha256"]) == 64
    assert (
        receipt["reference"]["sha256"]
        == json.loads((reference / "reference.json").read_text())["reference_sha256"]
    )
    assert receipt["harness"]["version"] and receipt["hardware"]["cpu_count"] >= 1
    assert (
        list(receipt["run"]["command"]) == ["python", "predict.py"] and receipt["run"]["runner"] == "process"
    )
    assert receipt["seed"]["bootstrap"] == spec.bootstrap.seed
    assert receipt["exit_status"]["exit_code"] == 0
    assert [e["case_id"] for e in receipt["case_errors"]] == ["b", "d"]
    assert receipt["submission"]["name"] == "entry"


def test_cli_score_writes_the_store(tmp_path, monkeypatch):
    _, run, reference = seg_case_setup(tmp_path, monkeypatch)
    result = CliRunner().invoke(
        app,
        [
            "score",
            "--task",
            SEG,
            "--predictions",
            str(run),
            "--reference",
            str(reference),
            "--out",
            str(tmp_path / "results"),
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "dice" in result.output
    (stored,) = Store(tmp_path / "results").runs(SEG)
    assert stored.scores["metrics"]["dice"]["value"] == pytest.approx(8 / 15)


def test_cli_score_refusal_is_a_message_not_a_traceback(tmp_path, monkeypatch):
    _, run, reference = seg_case_setup(tmp_path, monkeypatch)
    make_tasks_dir(tmp_path, monkeypatch, COVID)
    result = CliRunner().invoke(
        app,
        [
            "score",
            "--task",
            COVID,
            "--predictions",
            str(run),
            "--reference",
            str(reference),
            "--out",
            str(tmp_path / "results"),
        ],
    )
    assert result.exit_code == 2
    assert "is for task 'ricord-1a-lesion-seg'" in result.output
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_scoring_on_a_dask_cluster_equals_the_local_result(tmp_path, monkeypatch):
    from distributed import LocalCluster

    spec, run, reference = seg_case_setup(tmp_path, monkeypatch)
    local = score_run(spec, run, reference, workers=1)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = score_run(spec, run, reference, scheduler=cluster.scheduler_address)
    assert remote.per_case.equals(local.per_case)
    assert {**remote.scores, "run_id": ""} == {**local.scores, "run_id": ""}


def test_a_run_on_another_split_or_preparation_is_refused_naming_both(tmp_path, monkeypatch):
    spec, run, reference = seg_case_setup(tmp_path, monkeypatch)
    split_sha = json.loads((reference / "reference.json").read_text())["split_sha256"]
    on_validation = write_run(tmp_path / "run-validation", SEG, {"a": ("ok", "")}, masks={"a": REF_BLOCK},
                              split="validation")
    with pytest.raises(ScoringError) as error:
        score_run(spec, on_validation, reference, workers=1)
    message = str(error.value)
    assert f"the run was made on split fixture/validation (sha256 {split_sha})" in message
    assert f"is split fixture/test (sha256 {split_sha})" in message
    other = write_run(tmp_path / "run-other", SEG, {"a": ("ok", "")}, masks={"a": REF_BLOCK},
                      inputs_sha256="e" * 64)
    with pytest.raises(ScoringError) as error:
        score_run(spec, other, reference, workers=1)
    message = str(error.value)
    assert f"the run read prepared inputs {'e' * 64}" in message
    assert f"was prepared with inputs {'0' * 64}" in message and "another preparation" in message
    body = json.loads((other / "run.json").read_text())
    body["split"] = None
    (other / "run.json").write_text(json.dumps(body))
    with pytest.raises(ScoringError, match="records no split"):
        score_run(spec, other, reference, workers=1)
    result = CliRunner().invoke(app, ["score", "--task", SEG, "--predictions", str(on_validation),
                                      "--reference", str(reference), "--out", str(tmp_path / "results")])
    assert result.exit_code != 0 and "fixture/validation" in result.output and "fixture/test" in result.output
    assert not (tmp_path / "results").exists()
