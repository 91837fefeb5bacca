"""The process runner: the reference submissions as local commands, and the bubblewrap sandbox."""

import json
import os
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.errors import RunnerError, SubmissionError
from bench.runners import run_submission
from bench.runners.process import NOT_ISOLATED
from bench.tasks import load_task
from tests.helpers.runner_fixtures import (
    SUBMISSIONS,
    LoopbackListener,
    add_to_cases_json,
    make_adversaries,
    tree_state,
)
from tests.helpers.runner_inputs import write_prepared


@pytest.fixture
def loopback_listener():
    listener = LoopbackListener()
    yield listener
    listener.close()


SEG, CLS, CXR = "ricord-1a-lesion-seg", "ricord-ct-covid-cls", "ricord-1c-cxr-appearance"
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
LIMITS = {"timeout_s": 120}


@pytest.fixture(scope="module")
def adversaries(tmp_path_factory):
    return make_adversaries(tmp_path_factory.mktemp("adversaries"))


@pytest.fixture(scope="module")
def cls_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cls")
    return root, write_prepared(root, CLS)


def _run(submission, task, inputs, out, **limits):
    return run_submission(
        submission, load_task(task), inputs, out, runner="process", limits={**LIMITS, **limits}
    )


def test_constant_prior_runs_as_a_process(cls_inputs, tmp_path):
    root, inputs = cls_inputs
    result = _run(SUBMISSIONS / "constant-prior", CLS, inputs, tmp_path / "run")
    assert result.counts == {"ok": 4, "missing": 0, "malformed": 0}
    assert result.runner == "process" and result.image is None and result.command[1] == "predict.py"
    frame = pd.read_csv(tmp_path / "run/outputs/predictions.csv")
    assert frame["negative"].tolist() == [0.5] * 4


def test_the_prepared_root_is_accepted_and_only_its_input_seen(cls_inputs, tmp_path):
    root, _ = cls_inputs
    result = _run(SUBMISSIONS / "constant-prior", CLS, root, tmp_path / "run")
    assert result.counts["ok"] == 4


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "task"),
    [("threshold-seg", SEG), ("hu-stats-cls", CLS), ("cxr-intensity", CXR), ("constant-prior", SEG)],
)
def test_references_run_as_processes(tmp_path, name, task):
    inputs = write_prepared(tmp_path / "prepared", task)
    result = _run(SUBMISSIONS / name, task, inputs, tmp_path / "run")
    assert result.counts["ok"] == 4 and result.error is None, (tmp_path / "run/logs/stderr.txt").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hu-stats-cls", "cxr-intensity"])
def test_fit_scripts_fit_on_a_train_split(tmp_path, name):
    import subprocess
    import sys

    task = CLS if name == "hu-stats-cls" else CXR
    inputs = write_prepared(tmp_path / "prepared", task, n_cases=6)
    if task == CXR:  # give the two heads more than one class to learn
        labels = tmp_path / "prepared/reference/labels.csv"
        rows = labels.read_text().splitlines()
        grades = ["typical,mild", "negative,moderate", "atypical,severe"]
        rows = [rows[0]] + [",".join(r.split(",")[:2]) + "," + grades[i % 3] for i, r in enumerate(rows[1:])]
        labels.write_text("\n".join(rows) + "\n")
    folder = tmp_path / name
    shutil.copytree(SUBMISSIONS / name, folder)
    labels = tmp_path / "prepared/reference/labels.csv"
    fit = [sys.executable, "fit.py", "--inputs", str(inputs), "--labels", str(labels)]
    refused = subprocess.run(fit, cwd=folder, capture_output=True, text=True, check=False)
    assert refused.returncode != 0 and "fit only on the train split" in refused.stderr  # a test split
    ids = [case["case_id"] for case in json.loads((inputs / "cases.json").read_text())["cases"]]
    for path, extra in ((inputs / "cases.json", {}),
                        (tmp_path / "prepared/reference/reference.json",
                         {"split_name": "synthetic", "split_sha256": "ab" * 32,
                          "cases": [{"case_id": case_id} for case_id in ids]})):
        path.write_text(json.dumps({**json.loads(path.read_text()), "split": "train", **extra}))
    done = subprocess.run(fit, cwd=folder, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    params = json.loads((folder / "params.json").read_text())
    assert params["n"] == 6
    assert params["fitted_on"] == {"task": task, "split_name": "synthetic", "split": "train",
                                   "split_sha256": "ab" * 32}
    result = _run(folder, task, inputs, tmp_path / "run")
    assert result.counts["ok"] == 6
    if task == CLS:  # fitted on the same separable cases, the model ranks them perfectly
        frame = pd.read_csv(tmp_path / "run/outputs/predictions.csv").set_index("case_id")
        assert (
            frame.loc[["CASE-000", "CASE-002", "CASE-004"], "positive"].min()
            > frame.loc[["CASE-001", "CASE-003", "CASE-005"], "positive"].max()
        )


@needs_bwrap
def test_bwrap_unshares_the_network(adversaries, tmp_path, loopback_listener):
    inputs = write_prepared(tmp_path / "prepared", CLS)
    add_to_cases_json(inputs, probe_port=loopback_listener.port)
    result = _run(adversaries["network"], CLS, inputs, tmp_path / "run")
    log = (tmp_path / "run/logs/stdout.txt").read_text()
    assert result.isolated and "network: blocked" in log and "CONNECTED" not in log
    assert loopback_listener.accepted == 0


@needs_bwrap
def test_bwrap_input_is_read_only(adversaries, cls_inputs, tmp_path):
    root, inputs = cls_inputs
    before = tree_state(root)
    result = _run(adversaries["write-input"], CLS, inputs, tmp_path / "run")
    log = (tmp_path / "run/logs/stdout.txt").read_text()
    assert log.count("refused (Read-only file system)") == 3
    assert tree_state(root) == before and result.counts["ok"] == 4


@needs_bwrap
@pytest.mark.slow
def test_bwrap_hides_the_reference(adversaries, cls_inputs, tmp_path):
    root, inputs = cls_inputs
    result = _run(adversaries["label-hunter"], CLS, inputs, tmp_path / "run")
    assert "found 0 label candidates" in (tmp_path / "run/logs/stdout.txt").read_text()
    assert result.counts["ok"] == 4


@needs_bwrap
def test_process_timeout_kills_the_sandbox(adversaries, cls_inputs, tmp_path):
    _, inputs = cls_inputs
    result = _run(adversaries["sleeper"], CLS, inputs, tmp_path / "run", timeout_s=3)
    assert result.timed_out and result.duration_s < 30
    assert [c.status for c in result.cases] == ["ok", "ok", "missing", "missing"]


def test_without_bwrap_untrusted_code_is_refused_unless_unsafe(cls_inputs, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_NO_BWRAP", "1")
    _, inputs = cls_inputs
    with pytest.raises(RunnerError, match="--unsafe-no-sandbox"):
        _run(SUBMISSIONS / "constant-prior", CLS, inputs, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    result = run_submission(SUBMISSIONS / "constant-prior", load_task(CLS), inputs, tmp_path / "run",
                            runner="process", limits=LIMITS, unsafe_no_sandbox=True)
    assert result.isolated is False and result.isolation == NOT_ISOLATED
    body = json.loads((tmp_path / "run/run.json").read_text())
    assert body["isolated"] is False and body["survivors"]["checked"] is False
    assert result.counts["ok"] == 4
    command = ["run", str(SUBMISSIONS / "constant-prior"), "--task", CLS, "--inputs", str(inputs),
               "--runner", "process"]
    refused = CliRunner().invoke(app, [*command, "--out", str(tmp_path / "cli-refused")])
    assert refused.exit_code == 2 and "bubblewrap (bwrap) is not installed" in refused.output
    answer = CliRunner().invoke(app, [*command, "--out", str(tmp_path / "cli"), "--unsafe-no-sandbox"])
    assert answer.exit_code == 0 and "NOT ISOLATED" in answer.output


def test_harness_errors_leave_no_run_directory(cls_inputs, tmp_path):
    _, inputs = cls_inputs
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken/file").write_text("x")
    with pytest.raises(RunnerError, match="already exists"):
        _run(SUBMISSIONS / "constant-prior", CLS, inputs, tmp_path / "taken")
    with pytest.raises(RunnerError, match="is for task 'ricord-ct-covid-cls', not 'ricord-1a-lesion-seg'"):
        _run(SUBMISSIONS / "constant-prior", SEG, inputs, tmp_path / "wrong-task")
    with pytest.raises(RunnerError, match="memory"):
        _run(SUBMISSIONS / "constant-prior", CLS, inputs, tmp_path / "bad-limits", memory="lots")
    folder = tmp_path / "no-command"
    folder.mkdir()
    (folder / "submission.yaml").write_text("name: x\nteam: t\nimage: team/model:1\n")
    with pytest.raises(SubmissionError, match="no 'command'"):
        _run(folder, CLS, inputs, tmp_path / "no-command-run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no-command", "taken"]


def test_cli_reports_a_bad_submission_as_a_message(cls_inputs, tmp_path):
    _, inputs = cls_inputs
    answer = CliRunner().invoke(
        app,
        [
            "run",
            str(tmp_path / "nowhere"),
            "--task",
            CLS,
            "--inputs",
            str(inputs),
            "--out",
            str(tmp_path / "run"),
            "--runner",
            "process",
        ],
    )
    assert answer.exit_code == 2 and "not a folder with submission.yaml" in answer.output
    assert not os.path.exists(tmp_path / "run")


def test_describe_end_is_shared_by_both_runners():
    from bench.runners import docker, process
    from bench.runners.result import describe_end

    limits = load_task("ricord-1c-cxr-appearance").limits
    assert docker.describe_end is describe_end and process.describe_end is describe_end
    assert describe_end(0, False, False, limits) is None
    assert describe_end(3, False, False, limits) == "exited with code 3"
    assert describe_end(-9, False, False, limits) == "killed by signal 9"
    assert (limits.timeout_s, limits.memory) == (1800, "4g")  # as tasks/ricord-1c-cxr-appearance says
    assert describe_end(None, True, False, limits) == "killed after the 1800 s wall-clock timeout"
    assert describe_end(137, False, True, limits) == "killed for running out of memory (limit 4g)"
