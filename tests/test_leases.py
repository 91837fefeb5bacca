"""Leases: what a killed process made is found and removed by the next invocation, and nothing else."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.leases import clean, owner_alive, read_leases, stale_leases, take, temp_dir

REPO = Path(__file__).resolve().parents[1]
KILLED_BUILD = """
import os, signal, sys
from pathlib import Path
from bench.leases import temp_dir
with temp_dir(Path(sys.argv[1]), prefix=".site.", suffix=".tmp") as folder:
    (folder / "index.html").write_text("half a site")
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_a_live_owner_keeps_its_lease_and_a_released_one_is_gone(state, tmp_path):
    lease = take(paths=[tmp_path / "mine"], note="test")
    assert owner_alive(lease) and stale_leases() == [] and read_leases() == [lease]
    lease.release()
    assert read_leases() == []
    with temp_dir(tmp_path, prefix=".x.") as folder:
        assert folder.is_dir() and [p for p in read_leases() if str(folder) in p.paths]
    assert not folder.exists() and read_leases() == []


def test_a_reused_pid_is_not_the_owner(state, tmp_path):
    lease = take(paths=[tmp_path / "gone"])
    body = json.loads(lease.file.read_text())
    body["started"] -= 3600  # same pid, another process start: the owner is gone
    lease.file.write_text(json.dumps(body))
    assert [stale.id for stale in stale_leases()] == [lease.id]


def test_a_sigkilled_build_is_cleaned_up_by_the_next_invocation(state, tmp_path):
    parent = tmp_path / "site-parent"
    parent.mkdir()
    (parent / "NOTES.md").write_text("not the harness's")
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", KILLED_BUILD, str(parent)], env=environment, check=False)
    assert done.returncode == -signal.SIGKILL
    left = sorted(p.name for p in parent.iterdir())
    assert len(left) == 2 and left[0].startswith(".site.") and len(stale_leases()) == 1
    answer = CliRunner().invoke(app, ["gc", "--no-engine"])
    assert answer.exit_code == 0, answer.output
    assert "cleanup after a killed run: removed" in answer.output
    assert sorted(p.name for p in parent.iterdir()) == ["NOTES.md"] and read_leases() == []
    assert "nothing to remove" in CliRunner().invoke(app, ["gc", "--no-engine"]).output


def test_clean_touches_only_what_the_lease_names(state, tmp_path):
    named, other = tmp_path / "named", tmp_path / "other"
    for folder in (named, other):
        folder.mkdir()
        (folder / "f").write_text("x")
    lease = take(paths=[named, tmp_path / "never-made"])
    assert clean(lease) == [f"removed {named}"]
    assert not named.exists() and (other / "f").read_text() == "x" and read_leases() == []
