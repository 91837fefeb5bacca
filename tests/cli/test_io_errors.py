"""I/O errors through the CLI: a full or read-only disk is a message naming the path, never a traceback.

The disk is real: a 1 MiB tmpfs mounted for the test (needs root; skipped otherwise).
"""

import os
import subprocess

import pytest
from typer.testing import CliRunner

from bench.cli import IO_EXIT_CODE, app
from tests.helpers.board_fixtures import build_fake_store

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "bench-test-disk", str(disk)], check=True)
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def _build(results, out):
    return CliRunner().invoke(app, ["leaderboard", "build", "--results", str(results), "--out", str(out)])


def test_a_full_disk_is_a_message_naming_the_path(small_disk, tmp_path):
    build_fake_store(tmp_path / "results")
    with open(small_disk / "filler", "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass
    answer = _build(tmp_path / "results", small_disk / "site")
    assert answer.exit_code == IO_EXIT_CODE, answer.output
    assert "No space left on device (ENOSPC) on " in answer.output and str(small_disk) in answer.output
    assert "the disk is full" in answer.output and "Traceback" not in answer.output
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]  # the half-built site is rolled back


def test_a_read_only_filesystem_is_a_message_naming_the_path(small_disk, tmp_path):
    build_fake_store(tmp_path / "results")
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    answer = _build(tmp_path / "results", small_disk / "site")
    assert answer.exit_code == IO_EXIT_CODE, answer.output
    assert "(EROFS) on " in answer.output and str(small_disk) in answer.output
    assert "read-only; choose a writable path" in answer.output
