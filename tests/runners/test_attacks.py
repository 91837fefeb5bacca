"""Attacks of an expert participant through the real engine, each named after what it tries.

Each builds a real image from the base image (a Dockerfile of its own where the attack lives in
the image, not the script), runs it through the harness, and checks the recorded statuses and
that nothing of it is left on the host: no volume, no container, no folder beside the run.
"""

import grp
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bench.errors import SubmissionError
from bench.runners import run_submission
from bench.runners.docker import ensure_image
from bench.runners.intake import entry_reference
from bench.runners.submission import load_submission
from bench.tasks import load_task
from tests.helpers.runner_fixtures import SUBMISSIONS
from tests.helpers.runner_inputs import write_prepared

pytestmark = pytest.mark.docker

CLS = "ricord-ct-covid-cls"
FAST = {"timeout_s": 60}


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


class _CountingHTTP:
    """An HTTP server on 127.0.0.1 that counts the requests it gets (it should get none)."""

    def __init__(self):
        import http.server
        import threading

        counter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the standard library's name
                counter.requests.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"fetched by the engine\n")

            def log_message(self, *args):
                pass

        self.requests: list[str] = []
        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _folder(tmp_path, name, dockerfile: str, **yaml_fields):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "main.py").write_text("print('never built')\n")
    (folder / "Dockerfile").write_text(dockerfile)
    extra = "".join(f"{key}: {value}\n" for key, value in yaml_fields.items())
    (folder / "submission.yaml").write_text(
        f"name: {name}\nteam: Mallory\n{extra or 'docker: {context: ., dockerfile: Dockerfile}'}\n")
    return folder


def test_an_add_url_is_refused_before_the_engine_fetches_it(client, base_image, tmp_path):
    server = _CountingHTTP()
    try:
        url = f"http://127.0.0.1:{server.port}/metadata?exfil=1"
        submission = _folder(tmp_path, "add-url", f"FROM {base_image}\nADD {url} /opt/x\n"
                             "COPY main.py /opt/\nCMD [\"python3\", \"/opt/main.py\"]\n")
        inputs = write_prepared(tmp_path / "prepared", CLS)
        with pytest.raises(SubmissionError, match=r"ADD 'http://127\.0\.0\.1:\d+/metadata\?exfil=1' is "
                           "downloaded by the engine from the host's network"):
            run_submission(submission, load_task(CLS), inputs, tmp_path / "runs/run", limits=FAST)
        assert server.requests == []
        assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == []
    finally:
        server.close()


def test_building_from_another_entrys_image_is_refused(client, base_image, tmp_path):
    victim = load_submission(SUBMISSIONS / "constant-prior", team="Team A", entry="secret-model")
    image, _ = ensure_image(victim, client, scratch=tmp_path / "scratch")
    inputs = write_prepared(tmp_path / "prepared", CLS)
    tag = entry_reference("Team A", "secret-model", image.id)
    attempts = {
        "by-id": f"FROM {image.id}\n",
        "by-short-id": f"FROM {base_image}\nCOPY --from={image.id[7:19]} /opt/submission /opt/stolen\n",
        "by-tag": f"ARG WHAT={tag}\nFROM ${{WHAT}}\n",
    }
    for name, dockerfile in attempts.items():
        folder = _folder(tmp_path, name, dockerfile)
        with pytest.raises(SubmissionError, match="only another entry's name carries|another entry's image"):
            run_submission(folder, load_task(CLS), inputs, tmp_path / f"runs/{name}", limits=FAST)
    runs_image = _folder(tmp_path, "runs-image", "", image=image.id)
    with pytest.raises(SubmissionError, match="an entry runs its own image only"):
        run_submission(runs_image, load_task(CLS), inputs, tmp_path / "runs/image", limits=FAST)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == []
    own = run_submission(load_submission(SUBMISSIONS / "constant-prior", team="Team A", entry="secret-model"),
                         load_task(CLS), inputs, tmp_path / "own", limits=FAST)
    assert own.counts["ok"] == 4  # the entry itself builds FROM the base image as before


@pytest.fixture
def non_root_area():
    """A folder another user may write, under /tmp itself.

    Not under pytest's temporary folder: pytest makes ``/tmp/pytest-of-<user>`` mode 0700, so a
    harness started as another user could not reach an absolute path below it.
    """
    root = Path(tempfile.mkdtemp(prefix="bench-attack-", dir="/tmp"))
    root.chmod(0o777)
    yield root
    shutil.rmtree(root)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start the harness as another user")
def test_a_locked_folder_is_recorded_and_removed_by_a_harness_that_is_not_root(
        client, adversaries, non_root_area):
    try:
        docker_group = grp.getgrnam("docker").gr_gid
    except KeyError:
        pytest.skip("no docker group to give the non-root harness the engine")
    area = non_root_area
    submission = shutil.copytree(adversaries["locked-folder"], area / "locked-folder")
    inputs = write_prepared(area / "prepared", CLS)
    repository = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        ["setpriv", "--reuid=65533", "--regid=65533", f"--groups={docker_group}", sys.executable, "-m",
         "bench", "run", str(submission), "--task", CLS, "--inputs", str(inputs),
         "--out", str(area / "runs/run"), "--timeout", "120"],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(repository), "HOME": str(area),
             "BENCH_STATE_DIR": str(area / "state")},
        capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    body = json.loads((area / "runs/run/run.json").read_text())
    assert [case["status"] for case in body["cases"]] == ["ok"] * 4
    stray = {"path": "locked/inner/kept-away", "reason": "not part of the output contract; not kept"}
    assert stray in body["rejected"]
    assert sorted(p.name for p in (area / "runs").iterdir()) == ["run"]  # the staging folder is gone
