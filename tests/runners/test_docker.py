"""The Docker runner against the real engine: reference submissions and ten adversarial ones.

Images are shared across the session: the base image is built once (kept if present), each
submission image is built by the engine's cache after its first build.
"""

import json
import os

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.runners import read_run, run_submission
from bench.runners.base_image import BASE_IMAGE
from bench.runners.docker import container_options
from bench.runners.intake import entry_reference
from bench.runners.submission import load_submission
from bench.tasks import Limits, load_task
from tests.helpers.runner_fixtures import (
    SUBMISSIONS,
    LoopbackListener,
    add_to_cases_json,
    links_under,
    tree_state,
)
from tests.helpers.runner_inputs import write_prepared

pytestmark = pytest.mark.docker


@pytest.fixture
def loopback_listener():
    listener = LoopbackListener()
    yield listener
    listener.close()


SEG, CLS, CXR = "ricord-1a-lesion-seg", "ricord-ct-covid-cls", "ricord-1c-cxr-appearance"
FAST = {"timeout_s": 120}


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    """Prepared inputs per task, shared (runs never change them): {task: (root, input dir)}."""
    trees = {}
    for task in (SEG, CLS, CXR):
        root = tmp_path_factory.mktemp(task)
        trees[task] = (root, write_prepared(root, task))
    return trees


def _run(submission, task, prepared, out, **limits):
    root, inputs = prepared[task]
    return run_submission(
        submission, load_task(task), inputs, out, runner="docker", limits={**FAST, **limits}
    )


# --- the container policy ---------------------------------------------------------------------


def test_container_options_lock_the_container_down(tmp_path):
    limits = Limits(timeout_s=10, memory="512m", cpus=1.5, gpus=1, pids=64, tmpfs_mb=32, output_mb=8)
    labels = {"ricord-bench.run-id": "r1", "ricord-bench.deadline": "123"}
    options = container_options("sha256:abc", tmp_path / "in", tmp_path / "out", limits, labels)
    assert options["network_mode"] == "none" and options["read_only"] is True
    assert options["user"] == "65534:65534" and options["cap_drop"] == ["ALL"]
    assert options["security_opt"][0] == "no-new-privileges" and options["init"] is True
    profile = json.loads(options["security_opt"][1].removeprefix("seccomp="))
    rules = profile["syscalls"]
    allowed = {name for rule in rules if rule["action"] == "SCMP_ACT_ALLOW" for name in rule["names"]}
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and "ptrace" not in allowed and "read" in allowed
    assert not {"process_vm_readv", "process_vm_writev"} & allowed
    assert options["labels"] == {"ricord-bench.role": "submission", **labels}
    assert options["log_config"]["Type"] == "none"  # the harness streams the logs itself, capped
    assert options["mem_limit"] == options["memswap_limit"] == 512 * 1024 * 1024
    assert options["nano_cpus"] == 1_500_000_000 and options["pids_limit"] == 64
    assert options["tmpfs"] == {"/tmp": "rw,nosuid,nodev,size=32m,mode=1777"}
    assert options["volumes"][str(tmp_path / "in")] == {"bind": "/input", "mode": "ro"}
    assert options["volumes"][str(tmp_path / "out")] == {"bind": "/output", "mode": "rw"}
    assert options["device_requests"][0]["Count"] == 1
    with_volumes = container_options("x", tmp_path, tmp_path, limits, labels, ["/data", "/tmp", "/output/"])
    assert with_volumes["tmpfs"] == {"/tmp": options["tmpfs"]["/tmp"], "/data": options["tmpfs"]["/tmp"]}
    assert "device_requests" not in container_options(
        "x", tmp_path, tmp_path, limits.model_copy(update={"gpus": 0}), labels
    )


def test_base_image_runs_python_stack_as_nobody(client, base_image):
    output = client.containers.run(
        BASE_IMAGE,
        [
            "python3",
            "-c",
            "import numpy, scipy.ndimage, nibabel, os; print(os.getuid(), nibabel.__version__)",
        ],
        network_mode="none",
        remove=True,
    )
    uid, version = output.decode().split()
    assert uid == "65534" and version.startswith("5.")


# --- reference submissions --------------------------------------------------------------------


def test_threshold_seg_finds_the_synthetic_lesions(base_image, prepared, tmp_path):
    result = _run(SUBMISSIONS / "threshold-seg", SEG, prepared, tmp_path / "run")
    assert result.counts == {"ok": 4, "missing": 0, "malformed": 0}
    assert result.exit_code == 0 and result.error is None and result.isolated
    assert result.image["id"].startswith("sha256:") and result.image["digest"].startswith("sha256:")
    tag = entry_reference("ricord-bench reference", "threshold-seg", result.image["id"])
    assert tag in result.image["tags"]
    root, _ = prepared[SEG]
    for case_id, positive in (("CASE-000", True), ("CASE-001", False), ("CASE-002", True)):
        predicted = np.asanyarray(nib.load(tmp_path / "run/outputs/masks" / f"{case_id}.nii.gz").dataobj) > 0
        truth = np.asanyarray(nib.load(root / "reference/masks" / f"{case_id}.nii.gz").dataobj) > 0
        overlap = np.logical_and(predicted, truth).sum()
        if positive:  # most of each synthetic lesion found, little outside it
            assert overlap >= 0.8 * truth.sum() and predicted.sum() <= 1.3 * truth.sum()
        else:
            assert predicted.sum() == 0
    body = json.loads((tmp_path / "run/run.json").read_text())
    assert body["runner"] == "docker" and body["task_sha256"] == load_task(SEG).sha256
    assert read_run(tmp_path / "run") == result


def test_hu_stats_ranks_positive_ct_above_negative(base_image, prepared, tmp_path):
    result = _run(SUBMISSIONS / "hu-stats-cls", CLS, prepared, tmp_path / "run")
    assert result.counts["ok"] == 4
    predictions = pd.read_csv(tmp_path / "run/outputs/predictions.csv").set_index("case_id")
    assert list(predictions.columns) == ["negative", "positive"]
    assert min(predictions.loc[["CASE-000", "CASE-002"], "positive"]) > max(
        predictions.loc[["CASE-001", "CASE-003"], "positive"]
    )


@pytest.mark.parametrize(
    ("name", "task"),
    [("cxr-intensity", CXR), ("constant-prior", CXR), ("constant-prior", SEG), ("constant-prior", CLS)],
)
def test_other_references_produce_valid_outputs(base_image, prepared, tmp_path, name, task):
    result = _run(SUBMISSIONS / name, task, prepared, tmp_path / "run")
    assert result.counts["ok"] == 4 and result.error is None


def test_tarball_and_image_name_submissions(client, base_image, prepared, tmp_path):
    first = _run(SUBMISSIONS / "constant-prior", CLS, prepared, tmp_path / "first")
    tag = entry_reference("ricord-bench reference", "constant-prior", first.image["id"])
    tarball = tmp_path / "model.tar"
    with open(tarball, "wb") as handle:
        for chunk in client.images.get(tag).save(named=False):  # by id: the tarball claims no tag
            handle.write(chunk)
    from_tar = _run(load_submission(tarball, team="Team T", entry="prior"), CLS, prepared, tmp_path / "tar")
    from_name = _run(load_submission(tag, team="Team T", entry="by-name"), CLS, prepared, tmp_path / "name")
    assert from_tar.counts["ok"] == from_name.counts["ok"] == 4
    assert from_tar.image["id"] == from_name.image["id"] == first.image["id"]
    assert (from_tar.submission["team"], from_tar.submission["name"]) == ("Team T", "prior")
    assert from_tar.image["claimed_tags"] == [] and from_tar.image["digest"] == first.image["id"]
    assert entry_reference("Team T", "prior", first.image["id"]) in from_tar.image["tags"]


def test_cli_run_docker_with_a_relative_out(base_image, prepared, tmp_path, monkeypatch):
    _, inputs = prepared[CLS]
    monkeypatch.chdir(tmp_path)
    answer = CliRunner().invoke(
        app,
        [
            "run",
            str(SUBMISSIONS / "constant-prior"),
            "--task",
            CLS,
            "--inputs",
            str(inputs),
            "--out",
            "runs/one",
            "--timeout",
            "60",
            "--memory",
            "1g",
        ],
    )
    assert answer.exit_code == 0, answer.output
    assert "4 ok" in answer.output
    assert json.loads((tmp_path / "runs/one/run.json").read_text())["limits"]["memory"] == "1g"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["one"]  # no staging left behind


# --- adversarial submissions ------------------------------------------------------------------


def test_network_is_unreachable(adversaries, prepared, tmp_path, loopback_listener):
    root = tmp_path / "prepared"
    inputs = write_prepared(root, CLS)
    add_to_cases_json(inputs, probe_port=loopback_listener.port)
    result = run_submission(adversaries["network"], load_task(CLS), inputs, tmp_path / "run", limits=FAST)
    log = (tmp_path / "run/logs/stdout.txt").read_text()
    assert "interfaces: ['lo']" in log and "network: blocked" in log and "CONNECTED" not in log
    assert loopback_listener.accepted == 0
    assert result.counts["ok"] == 4


def test_input_is_read_only(adversaries, prepared, tmp_path):
    root, inputs = prepared[CLS]
    before = tree_state(root)
    result = _run(adversaries["write-input"], CLS, prepared, tmp_path / "run")
    log = (tmp_path / "run/logs/stdout.txt").read_text()
    assert log.count("refused (Read-only file system)") == 3 and "SUCCEEDED" not in log
    assert tree_state(root) == before
    assert result.counts["ok"] == 4


def test_symlinks_are_rejected_and_the_host_file_untouched(adversaries, tmp_path):
    sentinel = tmp_path / "host-secret.nii.gz"
    sentinel.write_bytes(b"host data that must not change")
    inputs = write_prepared(tmp_path / "prepared", SEG)
    add_to_cases_json(inputs, sentinel=str(sentinel))
    result = run_submission(adversaries["symlink"], load_task(SEG), inputs, tmp_path / "run", limits=FAST)
    assert result.status("CASE-000").status == "malformed" and "symlink" in result.status("CASE-000").reason
    assert [c.status for c in result.cases[1:]] == ["ok"] * 3
    assert {r.path for r in result.rejected} == {"passwd-link", "root-link"}
    assert sentinel.read_bytes() == b"host data that must not change"
    assert links_under(tmp_path / "run") == []
    assert not (tmp_path / "run/outputs/masks/CASE-000.nii.gz").exists()


def test_memory_hog_is_oom_killed(adversaries, prepared, tmp_path):
    result = _run(adversaries["oom"], CLS, prepared, tmp_path / "run", memory="128m")
    assert result.oom_killed and result.exit_code == 137 and not result.timed_out
    assert "out of memory" in result.error
    assert result.counts == {"ok": 0, "missing": 4, "malformed": 0}
    assert "oom: survived" not in (tmp_path / "run/logs/stdout.txt").read_text()


def test_sleeper_is_killed_at_the_timeout_and_keeps_what_it_wrote(adversaries, prepared, tmp_path):
    result = _run(adversaries["sleeper"], CLS, prepared, tmp_path / "run", timeout_s=4)
    assert result.timed_out and "timeout" in result.error and 4 <= result.duration_s < 30
    assert [c.status for c in result.cases] == ["ok", "ok", "missing", "missing"]


def test_fork_bomb_is_stopped_by_the_pids_limit(adversaries, prepared, tmp_path):
    result = _run(adversaries["fork-bomb"], CLS, prepared, tmp_path / "run", pids=32, cpus=1)
    log = (tmp_path / "run/logs/stdout.txt").read_text()
    children, refused = (int(word) for word in log.split() if word.isdigit())
    assert refused > 0 and children < 32
    assert result.exit_code == 0 and result.counts["ok"] == 4


def test_oversized_output_is_rejected_and_the_flood_contained(adversaries, prepared, tmp_path):
    result = _run(adversaries["oversize"], SEG, prepared, tmp_path / "run", output_mb=8)
    case = result.status("CASE-000")
    assert case.status == "malformed" and "size cap" in case.reason
    assert [c.status for c in result.cases[1:]] == ["ok"] * 3
    log = (tmp_path / "run/logs/stdout.txt").read_text()
    if os.geteuid() == 0:  # the output folder is a tmpfs of output_mb: the flood hits its end
        assert "No space left on device" in log
    assert "flood.bin" in {r.path for r in result.rejected}
    assert not (tmp_path / "run/outputs/flood.bin").exists()


def test_nan_and_inf_probabilities_are_malformed(adversaries, prepared, tmp_path):
    result = _run(adversaries["nan-probs"], CLS, prepared, tmp_path / "run")
    assert (
        result.status("CASE-000").status == "malformed" and "not finite" in result.status("CASE-000").reason
    )
    assert result.status("CASE-001").status == "malformed" and "'inf'" in result.status("CASE-001").reason
    assert [c.status for c in result.cases[2:]] == ["ok", "ok"]
    kept = pd.read_csv(tmp_path / "run/outputs/predictions.csv")
    assert kept["case_id"].tolist() == ["CASE-002", "CASE-003"]


def test_skipped_cases_are_missing(adversaries, prepared, tmp_path):
    result = _run(adversaries["skipper"], CLS, prepared, tmp_path / "run")
    assert [c.status for c in result.cases] == ["ok", "missing", "ok", "missing"]
    assert result.status("CASE-001").reason == "no row in predictions.csv"


def test_label_hunter_finds_nothing(adversaries, prepared, tmp_path):
    result = _run(adversaries["label-hunter"], CLS, prepared, tmp_path / "run")
    log = (tmp_path / "run/logs/stdout.txt").read_text()
    assert "found 0 label candidates" in log, log
    assert int(log.split("scanned ")[1].split()[0]) > 1000  # it did look around the whole image
    assert result.counts["ok"] == 4
