"""`bench evaluate` and `bench demo` end to end on the synthetic collection, through the real parts:
synthesize, index, pin, prepare, run (process runner, or Docker where marked), score, store, rescore,
leaderboard. Slow: each test builds or reuses a synthetic collection."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.data.manifest import write_manifest
from bench.data.ricord import index_download
from bench.data.synth import synthesize
from bench.pipeline.demo import BUILTIN_SUBMISSIONS, ENTRIES, run_demo
from bench.pipeline.evaluate import evaluate
from bench.pipeline.rescore import rescore_store
from bench.splits.pin import pin_split
from bench.store import Store
from bench.tasks import BUILTIN_TASKS, load_task

COVID = "ricord-ct-covid-cls"
SEG = "ricord-1a-lesion-seg"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """The default synthetic collection (seed 0, small), indexed, with its manifest at root."""
    root = tmp_path_factory.mktemp("synthetic") / "data"
    synth = synthesize(root, seed=0, size="small")
    report = index_download(root, annotations=synth.annotations, clinical=synth.clinical)
    write_manifest(report.manifest, root / "manifest.csv")
    return root, list(synth.annotations)


@pytest.fixture
def tasks(tmp_path, monkeypatch):
    """A copy of the built-in tasks folder (with its pinned splits), as BENCH_TASKS_DIR."""
    shutil.copytree(BUILTIN_TASKS, tmp_path / "tasks")
    monkeypatch.setenv("BENCH_TASKS_DIR", str(tmp_path / "tasks"))
    return tmp_path / "tasks"


def _pin(task, root, annotations, name="evaluate-test"):
    return pin_split(load_task(task), root / "manifest.csv", root=root, name=name, annotations=annotations)


def test_evaluate_process_runner_caches_prepare_and_rescores_clean(collection, tasks, tmp_path):
    root, annotations = collection
    _pin(COVID, root, annotations)
    spec, results = load_task(COVID), tmp_path / "results"
    first = evaluate(
        BUILTIN_SUBMISSIONS / "hu-stats-cls",
        spec,
        root=root,
        name="evaluate-test",
        split="test",
        results=results,
        runner="process",
    )
    second = evaluate(
        BUILTIN_SUBMISSIONS / "constant-prior",
        spec,
        root=root,
        name="evaluate-test",
        split="test",
        results=results,
        runner="process",
    )
    assert not first.prepare_cached and second.prepare_cached
    assert first.prepared_dir == second.prepared_dir
    for report in (first, second):
        counts = report.stored.scores["counts"]
        assert counts["ok"] == counts["cases"] > 0
        assert Path(report.stored.receipt["run"]["path"]) == report.run_dir
        assert report.run_dir.is_relative_to(results / ".work")
    assert second.stored.scores["metrics"]["covid.auroc"]["value"] == 0.5  # uniform probabilities
    assert {run.name for run in Store(results).runs()} == {"hu-stats-cls", "constant-prior"}
    rescored = rescore_store(results)
    assert rescored.checked == 2 and rescored.changes == () and rescored.skipped == ()


def test_evaluate_on_a_cluster_runs_the_submission_on_a_worker(collection, tasks, tmp_path):
    """With a scheduler, the run and the scoring are cluster tasks; the result equals a local one."""
    from distributed import LocalCluster

    root, annotations = collection
    _pin(COVID, root, annotations)
    spec = load_task(COVID)
    local = evaluate(BUILTIN_SUBMISSIONS / "hu-stats-cls", spec, root=root, name="evaluate-test",
                     results=tmp_path / "local", runner="process")
    with LocalCluster(n_workers=1, processes=True, threads_per_worker=1, dashboard_address=":0") as cluster:
        remote = evaluate(BUILTIN_SUBMISSIONS / "hu-stats-cls", spec, root=root, name="evaluate-test",
                          results=tmp_path / "cluster", runner="process", scheduler=cluster.scheduler_address)
    assert (remote.run_dir / "run.json").is_file() and remote.run_dir.is_relative_to(tmp_path / "cluster")
    assert remote.stored.per_case.equals(local.stored.per_case)
    assert remote.stored.scores["metrics"] == local.stored.scores["metrics"]


def test_cli_evaluate_segmentation_with_process_runner(collection, tasks, tmp_path):
    root, annotations = collection
    _pin(SEG, root, annotations)
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(BUILTIN_SUBMISSIONS / "threshold-seg"),
            "--task",
            SEG,
            "--root",
            str(root),
            "--name",
            "evaluate-test",
            "--split",
            "validation",
            "--runner",
            "process",
            "--results",
            str(tmp_path / "results"),
        ],
    )
    assert result.exit_code == 0, result.output
    (stored,) = Store(tmp_path / "results").runs(SEG)
    assert stored.split == "validation" and stored.name == "threshold-seg"
    assert 0 < stored.scores["metrics"]["dice"]["value"] <= 1
    assert "dice (primary)" in result.output and "stored:" in result.output


def _check_demo(out: Path, report) -> None:
    assert report.index_html.is_file() and report.index_html == out / "leaderboard" / "index.html"
    assert len(report.evaluations) == sum(len(entries) for entries in ENTRIES.values())
    stored = Store(out / "results").runs()
    runs = [r for r in stored if not r.reference_entry]
    assert {(r.task, r.name) for r in runs} == {(t, e) for t, entries in ENTRIES.items() for e in entries}
    assert {(r.task, r.name) for r in stored if r.reference_entry} == {
        ("ricord-ct-covid-cls", "confound-floor")}
    boards = {t["id"]: t["boards"]
              for t in json.loads((out / "leaderboard" / "leaderboard.json").read_text())["tasks"]}
    for task_boards in boards.values():
        for board in task_boards:
            assert board["analysis"]["power"]["gaps"] and board["analysis"]["definition_sensitivity"]
            assert "confound-floor" not in {e["submission"] for e in board["entries"]}  # a line, not a rank
    (seg,) = boards["ricord-1a-lesion-seg"]
    questions = {v["question"] for v in seg["analysis"]["definition_sensitivity"]}
    assert {"HD95 definition", "NSD definition", "Readers combined", "Missing prediction"} <= questions
    assert seg["analysis"]["reader_band"]["kind"] == "inter-reader"
    (ct,) = boards["ricord-ct-covid-cls"]
    assert [r["name"] for r in ct["analysis"]["reference_lines"]] == ["confound-floor"]
    (cxr,) = boards["ricord-1c-cxr-appearance"]
    band = cxr["analysis"]["reader_band"]
    assert band["readers"] and {t["entry"] for t in band["non_inferiority"]} == set(
        ENTRIES["ricord-1c-cxr-appearance"])
    assert all(r.split == "test" and r.split_name == "synthetic" for r in runs)
    assert all(
        json.loads((r.path / "receipt.json").read_text())["run"]["runner"] == report.runner for r in runs
    )
    html = report.index_html.read_text(encoding="utf-8")
    assert all(task in html for task in ENTRIES)


def test_demo_end_to_end_with_process_runner(tasks, tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--runner", "process"])
    assert result.exit_code == 0, result.output
    assert "runner: process" in result.output
    assert f"leaderboard: {out / 'leaderboard' / 'index.html'}" in result.output
    report = run_demo(out, runner="process")  # rerun into the same folder: reuses the collection
    assert report.runner == "process"
    assert dict(report.stages)["synthesize"] < 5
    _check_demo(out, report)
    assert all(entry["action"] in ("verified", "pinned") for entry in report.splits.values())


@pytest.mark.docker
def test_demo_end_to_end_with_docker_runner(tasks, tmp_path):
    out = tmp_path / "demo"
    report = run_demo(out, runner="docker")
    assert report.runner == "docker" and "Docker engine reachable" in report.runner_reason
    _check_demo(out, report)


def test_concurrent_evaluates_of_one_entry_are_all_stored(collection, tasks, tmp_path):
    """Four `bench evaluate` processes of the same entry at once, on a fresh store: the prepare is
    shared under its lock, every run gets its own run id and every result is stored."""
    import os
    import subprocess
    import sys

    root, annotations = collection
    _pin(COVID, root, annotations)
    results = tmp_path / "results"
    command = [sys.executable, "-m", "bench", "evaluate", str(BUILTIN_SUBMISSIONS / "constant-prior"),
               "--task", COVID, "--root", str(root), "--name", "evaluate-test", "--split", "test",
               "--results", str(results), "--runner", "process"]
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "BENCH_TASKS_DIR": str(tasks), "PYTHONPATH": str(repo)}
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True) for _ in range(4)]
    outputs = [process.communicate(timeout=900)[0] for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, outputs
    runs = Store(results).runs(COVID)
    assert len(runs) == 4 and len({run.run_id for run in runs}) == 4
    assert all(run.scores["counts"]["ok"] == run.scores["counts"]["cases"] > 0 for run in runs)
    assert len(list((results / ".work" / "prepared" / COVID / "evaluate-test").glob("test"))) == 1


def test_a_real_run_is_refused_against_another_split_or_preparation(collection, tasks, tmp_path):
    from bench.errors import ScoringError
    from bench.pipeline.evaluate import prepared_split
    from bench.prepare.materialize import prepare_split
    from bench.runners import run_submission
    from bench.scoring.score import score_run

    root, annotations = collection
    _pin(COVID, root, annotations)
    spec = load_task(COVID)
    test, _ = prepared_split(spec, root=root, name="evaluate-test", split="test", work=tmp_path / "work")
    validation, _ = prepared_split(spec, root=root, name="evaluate-test", split="validation",
                                   work=tmp_path / "work")
    other = prepare_split(spec, "evaluate-test", "test", root=root, out=tmp_path / "other",
                          salt_file=tmp_path / "another-salt", cache_dir=tmp_path / "work" / "cache")
    run = run_submission(BUILTIN_SUBMISSIONS / "constant-prior", spec, test / "input", tmp_path / "run",
                         runner="process")
    assert run.split == {"name": "evaluate-test", "split": "test", "sha256": other.split_sha256}
    assert score_run(spec, run.run_dir, test / "reference", workers=1).scores["counts"]["ok"] > 0
    with pytest.raises(ScoringError,
                       match=r"on split evaluate-test/test .* is split evaluate-test/validation"):
        score_run(spec, run.run_dir, validation / "reference", workers=1)
    with pytest.raises(ScoringError, match="another preparation"):
        score_run(spec, run.run_dir, other.reference_dir, workers=1)
