"""A `bench run` killed mid-run (SIGTERM, SIGKILL) leaves no container, mount or folder behind.

The harness runs as a real subprocess (``python -m bench run``) on the sleeper submission,
with its own state folder. SIGTERM must clean up before it exits; after SIGKILL, which
nothing can catch, the next ``bench`` invocation (an ordinary ``bench run``) must.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker.errors
import psutil
import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.runners.base_image import BASE_IMAGE
from tests.helpers.runner_fixtures import SUBMISSIONS, make_adversaries
from tests.helpers.runner_inputs import write_prepared

CLS = "ricord-ct-covid-cls"
RUNNERS = [pytest.param("docker", marks=pytest.mark.docker), "process"]
REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")


@pytest.fixture(scope="module")
def process_adversaries(tmp_path_factory):
    return make_adversaries(tmp_path_factory.mktemp("process-adversaries"))


@pytest.fixture
def submissions(request, runner):
    return request.getfixturevalue("adversaries" if runner == "docker" else "process_adversaries")


def _bench(arguments, state: Path) -> subprocess.Popen:
    environment = {**os.environ, "BENCH_STATE_DIR": str(state), "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "bench", *arguments], env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _run_arguments(submission, inputs, out, runner):
    return ["run", str(submission), "--task", CLS, "--inputs", str(inputs), "--out", str(out),
            "--runner", runner, "--timeout", "600"]


def _mounts_under(root: Path) -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(str(root))]


def _containers_under(root: Path) -> list:
    import docker

    client = docker.from_env(timeout=60)
    try:
        return [c for c in client.containers.list(all=True, filters={"label": "ricord-bench.role=submission"},
                                                  ignore_removed=True)
                if c.labels.get("ricord-bench.staging", "").startswith(str(root))]
    finally:
        client.close()


def _sandboxes_of(harness: psutil.Process) -> list[psutil.Process]:
    return [child for child in harness.children(recursive=True) if child.name() == "bwrap"]


def _wait_until_running(harness: subprocess.Popen, runs: Path, runner: str) -> None:
    """Until the sleeper runs: its staging exists and its container (or sandbox) is up."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert harness.poll() is None, harness.stdout.read()
        staged = list(runs.glob(".one.stage-*"))
        if staged and runner == "docker":
            if any(c.status == "running" for c in _containers_under(runs)):
                return
        elif staged and _sandboxes_of(psutil.Process(harness.pid)):
            return
        time.sleep(0.5)
    pytest.fail("the sleeper never started")


def _left_behind(runs: Path, state: Path, runner: str) -> list[str]:
    left = [p.name for p in runs.iterdir() if p.name.startswith(".")]
    left += [f"mount {m}" for m in _mounts_under(runs)]
    left += [f"lease {p.name}" for p in sorted(state.glob("leases/*.json"))]
    if runner == "docker":
        left += [f"container {c.short_id}" for c in _containers_under(runs)]
    return left


@pytest.mark.parametrize("runner", RUNNERS)
def test_sigterm_stops_the_run_and_cleans_up_before_exiting(submissions, runner, tmp_path):
    inputs = write_prepared(tmp_path / "prepared", CLS)
    runs, state = tmp_path / "runs", tmp_path / "state"
    harness = _bench(_run_arguments(submissions["sleeper"], inputs, runs / "one", runner), state)
    _wait_until_running(harness, runs, runner)
    sandboxes = _sandboxes_of(psutil.Process(harness.pid))
    harness.send_signal(signal.SIGTERM)
    output, _ = harness.communicate(timeout=120)
    assert harness.returncode == 128 + signal.SIGTERM, output
    assert "stopped by SIGTERM" in output
    assert _left_behind(runs, state, runner) == [] and not (runs / "one").exists()
    _, alive = psutil.wait_procs(sandboxes, timeout=5)
    assert alive == []


@pytest.mark.parametrize("runner", RUNNERS)
def test_sigkill_leaves_a_lease_that_the_next_invocation_cleans_up(submissions, runner, tmp_path):
    inputs = write_prepared(tmp_path / "prepared", CLS)
    runs, state = tmp_path / "runs", tmp_path / "state"
    harness = _bench(_run_arguments(submissions["sleeper"], inputs, runs / "one", runner), state)
    _wait_until_running(harness, runs, runner)
    harness.kill()
    harness.communicate(timeout=60)
    left = _left_behind(runs, state, runner)
    assert any(name.startswith(".one.stage-") for name in left) and any("lease" in name for name in left)
    if runner == "docker":  # the container outlived its harness, with no one to stop it
        assert any(name.startswith("container") for name in left)
    following = _bench(_run_arguments(SUBMISSIONS / "constant-prior", inputs, runs / "two", runner), state)
    output, _ = following.communicate(timeout=600)
    assert following.returncode == 0, output
    assert "cleanup after a killed run" in output
    assert _left_behind(runs, state, runner) == []
    assert sorted(p.name for p in runs.iterdir()) == ["two"]


@pytest.mark.docker
def test_bench_gc_removes_labelled_containers_past_their_deadline_only(client, base_image, tmp_path):
    def sleeper(deadline):
        return client.containers.run(
            BASE_IMAGE,
            ["sleep", "600"], detach=True, network_mode="none",
            labels={"ricord-bench.role": "submission", "ricord-bench.run-id": f"test-{deadline:.0f}",
                    "ricord-bench.deadline": str(int(deadline)), "ricord-bench.staging": str(tmp_path)},
        )

    expired, current = sleeper(time.time() - 3600), sleeper(time.time() + 3600)
    try:
        answer = CliRunner().invoke(app, ["gc"])
        assert answer.exit_code == 0, answer.output
        # on a shared engine any other bench run reaps the expired container too, maybe first
        reaped = f"removed container {expired.short_id}" in answer.output
        assert reaped or "nothing to remove" in answer.output
        assert current.short_id not in answer.output
        remaining = {c.id for c in client.containers.list(all=True, filters={"label": "ricord-bench.role"},
                                                          ignore_removed=True)}
        assert expired.id not in remaining and current.id in remaining
    finally:
        for container in (expired, current):
            try:
                container.remove(force=True)
            except docker.errors.NotFound:  # removed by bench gc
                pass
