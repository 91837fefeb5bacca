"""Attacks of an expert participant through the real engine, each named after what it tries.

Each builds a real image from the base image (a Dockerfile of its own where the attack lives in
the image, not the script), runs it through the harness, and checks the recorded statuses and
that nothing of it is left on the host: no volume, no container, no folder beside the run.
"""

import shutil

import pytest

from bench.runners import run_submission
from bench.tasks import load_task
from tests.helpers.runner_inputs import write_prepared

pytestmark = pytest.mark.docker

CLS = "ricord-ct-covid-cls"


def _with_dockerfile(folder, tmp_path, lines: str):
    """A copy of an adversary's folder whose Dockerfile adds ``lines`` before its COPY."""
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    dockerfile = (copy / "Dockerfile").read_text()
    (copy / "Dockerfile").write_text(dockerfile.replace("COPY ", f"{lines}\nCOPY ", 1))
    return copy


def test_an_image_volume_is_a_capped_tmpfs_and_leaves_no_volume(client, adversaries, tmp_path):
    writable_volume = "USER root\nRUN mkdir /scratch && chmod 1777 /scratch\nVOLUME /scratch\nUSER 65534"
    submission = _with_dockerfile(adversaries["volume-flood"], tmp_path, writable_volume)
    inputs = write_prepared(tmp_path / "prepared", CLS)
    volumes = {volume.id for volume in client.volumes.list()}
    result = run_submission(submission, load_task(CLS), inputs, tmp_path / "runs/run",
                            limits={"timeout_s": 120, "tmpfs_mb": 16})
    assert "volume: refused (No space left on device)" in (tmp_path / "runs/run/logs/stdout.txt").read_text()
    assert result.counts["ok"] == 4
    assert {volume.id for volume in client.volumes.list()} == volumes
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["run"]
    assert not client.containers.list(all=True, filters={"ancestor": result.image["id"]})
