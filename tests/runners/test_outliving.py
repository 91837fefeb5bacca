"""Attacks on containment, through the real Docker engine and the real bubblewrap sandbox.

Each submission of ``tests/adversarial/`` tries one way to outlive its deadline or to reach
past its limits (a self-traced init that leaks a worker, ptrace of the init, a nested user
namespace, writing everywhere, flooding stdout/stderr, a setsid daemon). Each test runs it
under both runners and checks the recorded status, the after-run sweep in ``run.json``, and
that nothing of it is left running on the host or written outside the run.
"""

import os
import secrets
import shutil
import time

import psutil
import pytest

from bench.runners import run_submission
from bench.tasks import load_task
from tests.helpers.runner_fixtures import add_to_cases_json, make_adversaries
from tests.helpers.runner_inputs import write_prepared

CLS = "ricord-ct-covid-cls"
SEG = "ricord-1a-lesion-seg"
RUNNERS = [pytest.param("docker", marks=pytest.mark.docker), "process"]
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
pytestmark = needs_bwrap


@pytest.fixture(scope="module")
def process_adversaries(tmp_path_factory):
    return make_adversaries(tmp_path_factory.mktemp("process-adversaries"))


@pytest.fixture
def submissions(request, runner):
    """The adversaries: built as images for the Docker runner, plain folders for the process one."""
    return request.getfixturevalue("adversaries" if runner == "docker" else "process_adversaries")


def _run(submissions, name, runner, tmp_path, **limits):
    inputs = write_prepared(tmp_path / "prepared", CLS)
    token = f"bench-token-{secrets.token_hex(8)}"
    add_to_cases_json(inputs, token=token)
    result = run_submission(submissions[name], load_task(CLS), inputs, tmp_path / "runs/run", runner=runner,
                            limits={"timeout_s": 60, **limits})
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["run"]  # no staging left
    return result, (tmp_path / "runs/run/logs/stdout.txt").read_text(), token


def _host_processes(token: str) -> list[psutil.Process]:
    """Processes anywhere on the host whose command line carries ``token``, after a short grace."""
    for _ in range(20):
        found = []
        for process in psutil.process_iter(["cmdline"]):
            if token in " ".join(process.info["cmdline"] or ()):
                found.append(process)
        if not found:
            return []
        time.sleep(0.1)
    return found


@pytest.mark.parametrize("runner", RUNNERS)
def test_self_traced_init_leaks_no_worker(submissions, runner, tmp_path):
    result, log, token = _run(submissions, "ptrace-traceme", runner, tmp_path, timeout_s=8)
    assert "traceme: refused" in log and "ALLOWED" not in log
    assert result.timed_out and "timeout" in result.error  # it stopped itself: killed at the deadline
    assert result.survivors["checked"] is True
    assert _host_processes(token) == []


@pytest.mark.parametrize("runner", RUNNERS)
def test_ptrace_of_the_init_is_refused_and_the_run_ends(submissions, runner, tmp_path):
    result, log, _ = _run(submissions, "ptrace-init", runner, tmp_path)
    for attempt in ("attach init", "seize init", "attach sibling", "process_vm_readv"):
        assert f"{attempt}: refused" in log, log
    assert result.exit_code == 0 and not result.timed_out and result.duration_s < 30
    assert result.counts["ok"] == 4


@pytest.mark.parametrize("runner", RUNNERS)
def test_nested_user_namespace_and_mounts_are_refused(submissions, runner, tmp_path):
    result, log, _ = _run(submissions, "nested-userns", runner, tmp_path)
    for attempt in ("unshare user", "unshare mount", "unshare net", "mount"):
        assert f"{attempt}: refused" in log, log
    assert "ALLOWED" not in log and result.counts["ok"] == 4


@pytest.mark.parametrize("runner", RUNNERS)
def test_every_writable_place_is_a_capped_tmpfs(submissions, runner, tmp_path):
    result, log, _ = _run(submissions, "fill-disks", runner, tmp_path, tmpfs_mb=16)
    filled = {line.split()[1].rstrip(":"): int(line.split()[2]) for line in log.splitlines()
              if line.startswith("fill ")}
    assert filled["/tmp"] == 16 and filled["/dev/shm"] == 16, log  # exactly the cap, then ENOSPC
    for folder in ("/", "/dev", "/submission", "/input", "/usr", "/var/tmp", "/run", "/etc"):
        assert filled[folder] == 0, log
    assert "no limit reached" not in log
    assert "uid 65534 gid 65534" in log
    if os.geteuid() == 0:  # no user namespace: the sandbox's uid 65534 is host uid 65534, not root
        assert "uid_map 0 0 4294967295" in log
    assert result.counts["ok"] == 4


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_stream_flood_is_capped_while_it_streams(submissions, runner, tmp_path):
    result, log, _ = _run(submissions, "flood-streams", runner, tmp_path)
    stderr = (tmp_path / "runs/run/logs/stderr.txt").read_text()
    for saved in (log, stderr):
        assert saved.startswith("FIRST LINE\n") and saved.endswith("LAST LINE\n")
        assert "bytes cut by ricord-bench" in saved and len(saved) < (1 << 20) + 100
    assert result.exit_code == 0 and result.counts["ok"] == 4


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_setsid_daemon_dies_with_the_run(submissions, runner, tmp_path):
    result, log, token = _run(submissions, "setsid-daemon", runner, tmp_path)
    assert "daemon started" in log and result.exit_code == 0 and result.counts["ok"] == 4
    assert result.survivors["checked"] is True
    assert _host_processes(token) == []


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_fork_bomb_stops_at_the_pids_limit(submissions, runner, tmp_path):
    if runner == "process" and os.geteuid() != 0:
        pytest.skip("the sandbox's pids cgroup needs root")
    result, log, _ = _run(submissions, "fork-bomb", runner, tmp_path, pids=32, cpus=1)
    children, refused = (int(word) for word in log.split() if word.isdigit())
    assert refused > 0 and children < 32
    assert result.exit_code == 0 and result.counts["ok"] == 4


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_memory_hog_is_oom_killed(submissions, runner, tmp_path):
    if runner == "process" and os.geteuid() != 0:
        pytest.skip("the sandbox's memory cgroup needs root")
    result, log, _ = _run(submissions, "oom", runner, tmp_path, memory="128m")
    assert "oom: survived" not in log and result.counts["ok"] == 0 and not result.timed_out
    if runner == "docker":
        assert result.oom_killed and "out of memory" in result.error
    else:  # the per-process rlimit may refuse the allocation before the cgroup's OOM killer acts
        assert result.oom_killed or result.exit_code != 0


@pytest.mark.parametrize("runner", RUNNERS)
def test_millions_of_empty_files_and_deep_folders_stop_at_the_output_entry_limit(submissions, runner,
                                                                                  tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the output tmpfs (and its inode limit) needs root")
    result, log, _ = _run(submissions, "inode-flood", runner, tmp_path, output_entries=5000)
    assert "3000 levels" in log and "No space left on device" in log, log
    assert result.counts == {"ok": 4, "missing": 0, "malformed": 0} and not result.timed_out
    limit, = [r for r in result.rejected if r.path == "..."]
    assert "holds 5000 entries, its limit (limits.output_entries)" in limit.reason
    assert "d/d/d/d/...2993 levels.../d/d/d/bottom.txt" in {r.path for r in result.rejected}
    assert result.rejected_more > 0


@pytest.mark.parametrize("runner", RUNNERS)
def test_an_entry_flood_beside_valid_masks_keeps_the_masks(submissions, runner, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the output tmpfs (and its inode limit) needs root")
    inputs = write_prepared(tmp_path / "prepared", SEG)
    result = run_submission(submissions["inode-flood"], load_task(SEG), inputs, tmp_path / "runs/run",
                            runner=runner, limits={"timeout_s": 120, "output_entries": 3500})
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["run"]
    assert [c.status for c in result.cases] == ["ok"] * len(result.cases) and not result.timed_out
    assert sorted(p.name for p in (tmp_path / "runs/run/outputs/masks").iterdir()) == sorted(
        f"{c.case_id}.nii.gz" for c in result.cases)
    assert "holds 3500 entries, its limit" in result.rejected[0].reason
