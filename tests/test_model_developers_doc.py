"""docs/model-developers.md is a walk-through that works: its ``bash`` blocks, run in order from a wheel
installed in a fresh venv (the ``console``/``python`` blocks, installation and the frameworks' own
training, are not run), on the synthetic collection: export to nnU-Net, MONAI and CSV, score a
plain folder as self-reported, run a submission with ``--python`` in the sandbox, score, cite."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_wheel import _build_wheel, _fresh_venv

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "model-developers.md"

pytestmark = pytest.mark.slow


def doc_script() -> str:
    """The page's bash blocks, in order, as one script that stops at the first failing command."""
    blocks = re.findall(r"^```bash\n(.*?)^```$", DOC.read_text(encoding="utf-8"), flags=re.S | re.M)
    assert len(blocks) >= 6
    return "set -euo pipefail\n" + "\n".join(blocks)


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="the walk-through runs the process runner in bwrap")
def test_the_walk_through_runs_from_the_wheel(tmp_path):
    python = _fresh_venv(tmp_path / "venv", _build_wheel(tmp_path))
    work = tmp_path / "work"
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{python.parent}:{env['PATH']}", BENCH_CACHE_DIR=str(tmp_path / "cache"),
               BENCH_TASKS_DIR=str(tmp_path / "user-tasks"), BENCH_STATE_DIR=str(tmp_path / "state"))
    done = subprocess.run(["bash", "-c", doc_script()], cwd=work, env=env, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    dataset = json.loads((work / "nnUNet_raw/Dataset501_RICORD1a/dataset.json").read_text())
    assert dataset["numTraining"] == len(list((work / "nnUNet_raw/Dataset501_RICORD1a/imagesTr").iterdir()))
    receipts = {path.parent.parent.name: json.loads(path.read_text())
                for path in (work / "results").rglob("receipt.json")}
    assert set(receipts) == {"nnunet-fold0", "my-model"}
    assert receipts["nnunet-fold0"]["self_reported"] and not receipts["my-model"]["self_reported"]
    val_scores = json.loads(next((work / "results").rglob("nnunet-fold0/*/scores.json")).read_text())
    assert val_scores["metrics"]["dice"]["value"] == 1.0  # the labels scored as predictions
    run = json.loads((work / "runs/test/run.json").read_text())
    assert run["counts"]["ok"] == len(run["cases"]) > 0
    assert run["command"][0] == str(python) and str(tmp_path / "venv") in run["isolation"]
    split_sha = receipts["my-model"]["split"]["sha256"]
    assert done.stdout.count(f"split sha256      {split_sha}") == 2  # both `bench cite` calls
    assert "@misc{midrc_ricord_1a" in done.stdout
