"""Session-scoped pieces shared by the Docker and process runner tests.

The adversarial submissions are generated from ``tests/adversarial/<name>.py``: each gets a
build context with the script as ``main.py``, ``common.py``, a Dockerfile ``FROM`` the base
image and a ``submission.yaml`` with both ``docker`` and ``command``, so the same folder runs
under either runner.
"""

import json
import os
import shutil
import socket
import threading
from pathlib import Path

from bench.pipeline.demo import BUILTIN_SUBMISSIONS as SUBMISSIONS  # noqa: F401 (re-exported to the runner tests)

ADVERSARIAL = Path(__file__).resolve().parents[1] / "adversarial"

_DOCKERFILE = """ARG BASE_IMAGE=ricord-bench/python:bookworm
FROM ${BASE_IMAGE}
COPY common.py main.py /opt/adversary/
ENTRYPOINT ["python3", "/opt/adversary/main.py"]
"""


def make_adversaries(root: Path) -> dict[str, Path]:
    """One submission folder per adversarial script under ``root``; {name: folder}."""
    folders = {}
    for script in sorted(ADVERSARIAL.glob("*.py")):
        if script.stem == "common":
            continue
        name = script.stem.replace("_", "-")
        folder = root / name
        folder.mkdir(parents=True)
        shutil.copy(script, folder / "main.py")
        shutil.copy(ADVERSARIAL / "common.py", folder / "common.py")
        (folder / "Dockerfile").write_text(_DOCKERFILE)
        (folder / "submission.yaml").write_text(
            f"name: adv-{name}\nteam: adversarial tests\ndescription: {name}\n"
            "docker: {context: ., dockerfile: Dockerfile}\ncommand: ['{python}', 'main.py']\n"
        )
        folders[name] = folder
    return folders


def add_to_cases_json(input_dir: Path, **fields) -> None:
    """Add test-only top-level fields to cases.json (copied verbatim into the snapshot)."""
    path = input_dir / "cases.json"
    body = json.loads(path.read_text())
    body.update(fields)
    path.write_text(json.dumps(body))


def tree_state(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: to show a tree unchanged."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def links_under(root: Path) -> list[Path]:
    return [
        Path(folder) / name
        for folder, dirs, files in os.walk(root)
        for name in dirs + files
        if (Path(folder) / name).is_symlink()
    ]


class LoopbackListener:
    """A TCP server on 127.0.0.1 that counts the connections it accepts (it should get none)."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            connection.close()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.socket.close()

