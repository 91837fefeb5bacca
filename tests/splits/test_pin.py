"""Pinning, loading and verifying splits on the synthetic collection, through the real data layer."""

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.errors import ManifestError, SplitError
from bench.splits.pin import pin_split
from bench.splits.pinned import load_split, read_split
from bench.splits.verify import summarize_split, verify_split
from bench.tasks import BUILTIN_TASKS, load_task
from tests.helpers.splits_fixtures import TASKS, copy_task_specs, synthetic

pytestmark = pytest.mark.slow

SEG = "ricord-1a-lesion-seg"


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    return synthetic(tmp_path_factory)


def _document(synth, task_id: str) -> dict:
    return json.loads((synth.tasks / task_id / "splits" / "synthetic.json").read_text())


def test_pinning_again_gives_a_byte_identical_file(synth, tmp_path):
    tasks = copy_task_specs(tmp_path / "tasks")
    spec = load_task(SEG, directory=tasks)
    pin_split(spec, synth.manifest, root=synth.root, name="synthetic", directory=tasks)
    first = (tasks / SEG / "splits" / "synthetic.json").read_bytes()
    pin_split(spec, synth.manifest, root=synth.root, name="synthetic", directory=tasks)
    assert (tasks / SEG / "splits" / "synthetic.json").read_bytes() == first
    assert first == (synth.tasks / SEG / "splits" / "synthetic.json").read_bytes()


def test_pinning_with_one_or_two_workers_writes_the_same_bytes(synth, tmp_path):
    written = {}
    for workers in (1, 2):
        tasks = copy_task_specs(tmp_path / f"tasks-{workers}")
        pin_split(load_task(SEG, directory=tasks), synth.manifest, root=synth.root, name="synthetic",
                  directory=tasks, workers=workers)
        written[workers] = (tasks / SEG / "splits" / "synthetic.json").read_bytes()
    assert written[1] == written[2] == (synth.tasks / SEG / "splits" / "synthetic.json").read_bytes()


@pytest.mark.parametrize("task_id", TASKS)
def test_committed_synthetic_split_is_reproduced_byte_for_byte(synth, task_id):
    committed = BUILTIN_TASKS / task_id / "splits" / "synthetic.json"
    assert committed.is_file(), f"{committed} is not committed; see docs/splits.md to pin it"
    assert (synth.tasks / task_id / "splits" / "synthetic.json").read_bytes() == committed.read_bytes(), (
        f"{committed} no longer matches `bench data synth --seed 0` + `bench splits pin`; "
        "regenerate it as docs/splits.md says (and cite the new sha256)")


@pytest.mark.parametrize("task_id", TASKS)
def test_no_patient_is_in_two_splits_and_every_split_is_used(synth, task_id):
    cases = _document(synth, task_id)["cases"]
    splits_of: dict[str, set] = {}
    for case in cases:
        splits_of.setdefault(case["patient_id"], set()).add(case["split"])
    assert all(len(s) == 1 for s in splits_of.values())
    assert {case["split"] for case in cases} == {"train", "validation", "test"}


def test_file_sha256_is_over_its_canonical_json_without_the_field(synth):
    document = _document(synth, SEG)
    claimed = document.pop("sha256")
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert hashlib.sha256(canonical).hexdigest() == claimed == synth.splits[SEG].sha256


def test_task_cases_come_from_the_task_collections(synth):
    manifest = pd.read_csv(synth.manifest, dtype=str, keep_default_na=False)
    collections = {task_id: {c.collection for c in split.records} for task_id, split in synth.splits.items()}
    assert collections == {SEG: {"MIDRC-RICORD-1A"},
                           "ricord-ct-covid-cls": {"MIDRC-RICORD-1A", "MIDRC-RICORD-1B"},
                           "ricord-1c-cxr-appearance": {"MIDRC-RICORD-1C"}}
    n_1a = int((manifest.collection == "MIDRC-RICORD-1A").sum())
    assert len(synth.splits[SEG].records) == n_1a == 24
    assert len(synth.splits["ricord-ct-covid-cls"].records) == 48


def test_images_fingerprint_matches_a_hand_computation(synth):
    case = synth.splits[SEG].records[0]
    manifest = pd.read_csv(synth.manifest, dtype=str, keep_default_na=False).set_index("case_id")
    folder = synth.root / manifest.loc[case.case_id, "series_dir"]
    pairs = []
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        if ds.SeriesInstanceUID == case.series_uid:
            pairs.append([ds.SOPInstanceUID, hashlib.sha256(ds.PixelData).hexdigest()])
    text = json.dumps(sorted(pairs), separators=(",", ":"))
    assert len(pairs) == 24
    assert hashlib.sha256(text.encode()).hexdigest() == case.fingerprint.images


def test_verify_reports_ok_on_the_pinned_download(synth):
    report = verify_split(synth.splits[SEG], root=synth.root)
    assert report.ok and report.counts() == {"ok": 24}


def _series_files(root: Path, series_uid: str) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*.dcm")):
        if pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID == series_uid:
            found.append(path)
    return found


def test_verify_catches_a_changed_pixel_a_moved_vertex_and_a_missing_case(synth, tmp_path):
    root = tmp_path / "download"
    shutil.copytree(synth.root, root)
    split = synth.splits[SEG]
    export_path = next((root / "annotations").glob("MIDRC-RICORD-1a*.json"))
    export = json.loads(export_path.read_text())
    polygons = [a for dataset in export["datasets"] for a in dataset["annotations"]
                if (a.get("data") or {}).get("vertices")]
    polygon_studies = {a["StudyInstanceUID"] for a in polygons}
    pixel_case, missing_case = split.records[0], split.records[1]
    vertex_case = next(c for c in split.records[2:] if c.study_uid in polygon_studies)
    # one pixel of one slice
    path = _series_files(root / "MIDRC-RICORD-1A", pixel_case.series_uid)[5]
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array.copy()
    pixels[10, 10] += 1
    ds.PixelData = pixels.tobytes()
    ds.save_as(path)
    # one vertex of one polygon
    polygon = next(a for a in polygons if a["StudyInstanceUID"] == vertex_case.study_uid)
    polygon["data"]["vertices"][0][0] += 1.0
    export_path.write_text(json.dumps(export))
    # a whole series
    for path in _series_files(root / "MIDRC-RICORD-1A", missing_case.series_uid):
        path.unlink()

    report = verify_split(split, root=root)
    status = {check.case_id: check.label for check in report.checks}
    assert status[pixel_case.case_id] == "changed (pixels)"
    assert status[vertex_case.case_id] == "changed (annotations)"
    assert status[missing_case.case_id] == "missing"
    assert sorted(status.values()).count("ok") == 21
    assert not report.ok
    assert verify_split(split, root=root, workers=2) == report

    result = CliRunner().invoke(app, ["splits", "verify", "--task", SEG, "--name", "synthetic",
                                      "--root", str(root), "--workers", "2"],
                                env={"BENCH_TASKS_DIR": str(synth.tasks)})
    assert result.exit_code == 1, result.output
    assert "changed (pixels)" in result.output and "missing 1" in result.output


def test_verify_refuses_a_root_that_is_not_a_ricord_download(synth, tmp_path):
    (tmp_path / "notes.txt").write_text("not a download")
    with pytest.raises(SplitError, match="none of the 24 series"):
        verify_split(synth.splits[SEG], root=tmp_path, annotations=[synth.root / "annotations"])


def test_verify_without_annotations_says_to_pass_them(synth, tmp_path):
    with pytest.raises(SplitError, match="Pass the export"):
        verify_split(synth.splits[SEG], root=tmp_path)


def test_pin_refuses_a_manifest_without_the_stratification_column(synth, tmp_path):
    table = pd.read_csv(synth.manifest, dtype=str, keep_default_na=False).drop(columns="appearance")
    manifest = tmp_path / "manifest.csv"
    table.to_csv(manifest, index=False)
    with pytest.raises(ManifestError, match=r"lacks column\(s\) \['appearance'\]"):
        pin_split(load_task(SEG, directory=synth.tasks), manifest, root=synth.root, name="x",
                  directory=copy_task_specs(tmp_path / "tasks"))


def test_pin_refuses_a_root_that_does_not_hold_the_manifest_cases(synth, tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(SplitError, match="Pass the root of the RICORD download"):
        pin_split(load_task(SEG, directory=synth.tasks), synth.manifest, root=root, name="x",
                  annotations=[synth.root / "annotations"], directory=copy_task_specs(tmp_path / "tasks"))


def test_load_split_refuses_an_edited_file_and_a_changed_strategy(synth, tmp_path):
    tasks = copy_task_specs(tmp_path / "tasks")
    (tasks / SEG / "splits").mkdir()
    target = tasks / SEG / "splits" / "synthetic.json"
    document = _document(synth, SEG)
    document["cases"][0]["split"] = "test" if document["cases"][0]["split"] != "test" else "train"
    target.write_text(json.dumps(document))
    with pytest.raises(SplitError, match="edited after pinning"):
        load_split(SEG, "synthetic", directory=tasks)
    shutil.copyfile(synth.tasks / SEG / "splits" / "synthetic.json", target)
    assert load_split(SEG, "synthetic", directory=tasks).sha256 == synth.splits[SEG].sha256
    yaml_path = tasks / SEG / "task.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("seed: 20201208", "seed: 1"))
    with pytest.raises(SplitError, match="Pin the split again"):
        load_split(SEG, "synthetic", directory=tasks)
    with pytest.raises(SplitError, match="no pinned split 'tcia'"):
        load_split(SEG, "tcia", directory=tasks)


def test_a_patient_in_two_splits_is_refused_even_with_a_recomputed_hash(synth, tmp_path):
    document = _document(synth, SEG)
    by_patient: dict[str, list] = {}
    for case in document["cases"]:
        by_patient.setdefault(case["patient_id"], []).append(case)
    patient, cases = next((p, c) for p, c in by_patient.items() if len(c) > 1)
    cases[1]["split"] = "test" if cases[0]["split"] != "test" else "train"
    document.pop("sha256")
    document["sha256"] = hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":"),
                                                   ensure_ascii=False).encode()).hexdigest()
    path = tmp_path / "leaky.json"
    path.write_text(json.dumps(document))
    with pytest.raises(SplitError, match=f"patient {patient} is in both"):
        read_split(path)


def test_cli_names_an_unknown_task_and_a_missing_split(synth):
    env = {"BENCH_TASKS_DIR": str(synth.tasks)}
    result = CliRunner().invoke(app, ["splits", "show", "--task", "nope", "--name", "synthetic"], env=env)
    assert result.exit_code == 2 and "task 'nope': no task.yaml" in result.output
    result = CliRunner().invoke(app, ["splits", "show", "--task", SEG, "--name", "tcia"], env=env)
    assert result.exit_code == 2 and "no pinned split 'tcia'" in result.output


def test_summary_counts_every_case_once(synth):
    summary = summarize_split(synth.splits["ricord-1c-cxr-appearance"])
    assert summary.counts["cases"].sum() == summary.totals["cases"].sum() == 57  # 60 studies, 3 invalid
    assert list(summary.counts.columns) == ["split", "appearance", "site", "cases", "patients"]
    assert summary.leaked_patients == ()


def test_cli_pin_and_show(synth, tmp_path):
    tasks = copy_task_specs(tmp_path / "tasks")
    runner = CliRunner()
    env = {"BENCH_TASKS_DIR": str(tasks)}
    result = runner.invoke(app, ["splits", "pin", "--task", "ricord-1c-cxr-appearance", "--name", "synthetic",
                                 "--manifest", str(synth.manifest), "--root", str(synth.root),
                                 "--workers", "2"], env=env)
    assert result.exit_code == 0, result.output
    assert f"split sha256:{synth.splits['ricord-1c-cxr-appearance'].sha256}" in result.output
    result = runner.invoke(app, ["splits", "show", "--task", "ricord-1c-cxr-appearance",
                                 "--name", "synthetic"], env=env)
    assert result.exit_code == 0, result.output
    assert "no patient leakage" in result.output and "SITE2" in result.output


def test_cli_shows_a_bad_task_yaml_field_by_field(synth, tmp_path):
    tasks = copy_task_specs(tmp_path / "tasks")
    yaml_path = tasks / SEG / "task.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("metrics: [dice,", "metrics: [dice, sharpness,"))
    result = CliRunner().invoke(app, ["splits", "pin", "--task", SEG, "--name", "synthetic", "--manifest",
                                      str(synth.manifest), "--root", str(synth.root)],
                                env={"BENCH_TASKS_DIR": str(tasks)})
    assert result.exit_code == 2
    assert "unknown metric(s) ['sharpness']" in result.output
    assert "Traceback" not in result.output


def test_cli_pin_on_a_dask_cluster_writes_the_same_bytes(synth, tmp_path):
    from distributed import LocalCluster

    tasks = copy_task_specs(tmp_path / "tasks")
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") as cluster:
        result = CliRunner().invoke(app, ["splits", "pin", "--task", SEG, "--name", "synthetic",
                                          "--manifest", str(synth.manifest), "--root", str(synth.root),
                                          "--scheduler", cluster.scheduler_address],
                                    env={"BENCH_TASKS_DIR": str(tasks)})
        assert result.exit_code == 0, result.output
        prefix = cluster.scheduler.task_prefixes.get("fingerprint_images_item")
        assert prefix is not None and prefix.all_durations["compute"] > 0  # the hashing ran there
    assert (tasks / SEG / "splits" / "synthetic.json").read_bytes() == \
        (synth.tasks / SEG / "splits" / "synthetic.json").read_bytes()
