"""The process runner where it cannot make a pids and memory cgroup: refused, or bounded by rlimits.

As root on this kind of host the sandbox gets a cgroup (the fork bomb and memory hog tests in
``test_outliving.py``). Run as an ordinary user, ``bench`` cannot make one, so it must refuse
the submission with a message saying exactly why, unless ``--unsafe-no-sandbox`` is passed;
then the run goes ahead in the real bubblewrap sandbox with ``RLIMIT_NPROC`` on the sandbox's
host user (a fork bomb still stops) and per-process memory limits (a single-process hog still
stops), and ``run.json``'s ``isolation`` and the printed output say the tree is not bounded.
The harness runs as a real subprocess as uid 1000 (``setpriv``), on a world-accessible copy of
the inputs and submissions, the sandbox with the system's Python. The cgroup v2 path, which this
host's cgroup2 mount (no pids or memory controller) cannot exercise, is checked on a fake tree.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bench.runners.confine import confine_v2
from tests.helpers.runner_fixtures import make_adversaries
from tests.helpers.runner_inputs import write_prepared

CLS = "ricord-ct-covid-cls"
REPO = Path(__file__).resolve().parents[2]
USER = 1000
# the interpreter the sandbox runs: this one may live where uid 1000 cannot read (here, under /root)
SYSTEM_PYTHON = "/usr/bin/python3"

needs = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("bwrap") is None or shutil.which("setpriv") is None
    or not os.access(SYSTEM_PYTHON, os.X_OK),
    reason="needs root (to become another user), bubblewrap, setpriv and /usr/bin/python3")


def _open_to_all(root: Path) -> None:
    for folder, _, files in os.walk(root):
        os.chmod(folder, 0o777)
        for name in files:
            path = Path(folder) / name
            os.chmod(path, path.stat().st_mode | stat.S_IROTH | stat.S_IRGRP)


@pytest.fixture(scope="module")
def shared():
    """A folder uid 1000 can use: adversaries, prepared inputs, state and tasks folders."""
    root = Path(tempfile.mkdtemp(prefix="bench-unconfined-", dir="/tmp"))
    os.chmod(root, 0o777)
    adversaries = make_adversaries(root / "submissions")
    hog = root / "submissions" / "plain-hog"  # the system Python has no numpy: a hog without it
    shutil.copytree(adversaries["oom"], hog)
    (hog / "main.py").write_text(
        "blocks = []\n"
        "for step in range(64):\n"
        "    blocks.append(bytearray(b'x' * (16 << 20)))  # 16 MiB each, written\n"
        "    print(f'oom: {16 * (step + 1)} MiB allocated', flush=True)\n"
        "print('oom: survived', flush=True)\n")
    adversaries["plain-hog"] = hog
    inputs = write_prepared(root / "prepared", CLS)
    for name in ("state", "tasks", "runs"):
        (root / name).mkdir()
    _open_to_all(root)
    yield root, adversaries, inputs
    shutil.rmtree(root)


def _bench_as_user(root: Path, arguments: list[str]) -> subprocess.CompletedProcess:
    environment = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "HOME": str(root),
                   "BENCH_STATE_DIR": str(root / "state"), "BENCH_TASKS_DIR": str(root / "tasks"),
                   "COLUMNS": "200"}
    return subprocess.run(["setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups",
                           sys.executable, "-m", "bench", *arguments],
                          env=environment, capture_output=True, text=True, timeout=600, check=False)


def _run(shared, name, out, *extra):
    root, adversaries, inputs = shared
    return _bench_as_user(root, ["run", str(adversaries[name]), "--task", CLS, "--inputs", str(inputs),
                                 "--out", str(root / "runs" / out), "--runner", "process",
                                 "--timeout", "120", "--python", SYSTEM_PYTHON, *extra])


@needs
def test_without_a_cgroup_untrusted_code_is_refused_saying_why(shared):
    done = _run(shared, "fork-bomb", "refused")
    text = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 2, text
    assert "cannot put the sandbox in a pids and memory cgroup" in text
    assert "not running as root" in text and "--unsafe-no-sandbox" in text
    assert not (shared[0] / "runs" / "refused").exists()


@needs
def test_with_the_unsafe_flag_a_fork_bomb_stops_at_rlimit_nproc_and_is_recorded(shared):
    done = _run(shared, "fork-bomb", "bomb", "--unsafe-no-sandbox", "--cpus", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = shared[0] / "runs" / "bomb"
    body = json.loads((run_dir / "run.json").read_text())
    log = (run_dir / "logs" / "stdout.txt").read_text()
    assert "fork-bomb:" in log, (body["error"], (run_dir / "logs" / "stderr.txt").read_text()[-2000:])
    children, refused = (int(word) for word in log.split() if word.isdigit())
    assert refused > 0 and children < body["limits"]["pids"]
    assert body["isolated"] is True and [c["status"] for c in body["cases"]] == ["ok"] * 4
    assert "NOT for the whole tree" in body["isolation"] and "RLIMIT_NPROC" in body["isolation"]
    assert "not running as root" in body["isolation"]
    assert "NOT for the whole tree" in " ".join((done.stdout + done.stderr).split())


@needs
def test_with_the_unsafe_flag_a_memory_hog_is_stopped_per_process_and_recorded(shared):
    done = _run(shared, "plain-hog", "hog", "--unsafe-no-sandbox", "--memory", "512m")
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = shared[0] / "runs" / "hog"
    body = json.loads((run_dir / "run.json").read_text())
    log = (run_dir / "logs" / "stdout.txt").read_text()
    assert "oom: survived" not in log and body["exit_code"] != 0 and not body["timed_out"]
    assert "RLIMIT_AS 512m (address space) per process only" in body["isolation"]


def test_cgroup_v2_sandbox_cgroup_is_made_at_the_top_with_both_controllers(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma\n")
    (tmp_path / "cgroup.subtree_control").write_text("\n")
    (tmp_path / "ricord-bench").mkdir()  # as the kernel makes a cgroup folder: with its control files
    (tmp_path / "ricord-bench" / "cgroup.subtree_control").write_text("\n")
    confinement, why = confine_v2(tmp_path, pids=64, memory_bytes=256 << 20)
    assert why == "" and confinement is not None and confinement.version == 2
    base = tmp_path / "ricord-bench"
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+pids +memory"
    assert (base / "cgroup.subtree_control").read_text() == "+pids +memory"
    (directory,) = confinement.directories
    assert directory.parent == base and (directory / "pids.max").read_text() == "64"
    assert (directory / "memory.max").read_text() == str(256 << 20)
    (directory / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n")
    assert confinement.oom_kills() == 2
    assert "cgroup v2" in confinement.describe()


def test_cgroup_v2_without_the_controllers_says_which_are_missing(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("hugetlb\n")
    confinement, why = confine_v2(tmp_path, pids=64, memory_bytes=1 << 30)
    assert confinement is None
    assert "lacks the pids and memory controller(s)" in why and "it has: hugetlb" in why
