"""A scoring run killed midway (SIGKILL of a real `bench score` process, or Ctrl-C) leaves no entry
in the store, and scoring again completes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import bench.io
import bench.scoring.segmentation
from bench.scoring.score import score_and_store
from bench.store import Store
from tests.scoring.test_score import SEG, seg_case_setup

REPO = Path(__file__).resolve().parents[2]


def _entries(results: Path) -> list[Path]:
    """Every non-hidden run directory under the store root (what a reader would take as a result)."""
    return [p for p in results.glob("*/*/*/*") if not any(part.startswith(".") for part in p.parts[-4:])]


@pytest.mark.slow
def test_sigkill_while_storing_leaves_no_entry_and_rerun_completes(tmp_path, monkeypatch):
    _, run, reference = seg_case_setup(tmp_path, monkeypatch)
    results, marker = tmp_path / "results", tmp_path / "storing"
    argv = [
        sys.executable,
        "-m",
        "tests.helpers.store_kill_hook",
        str(marker),
        "score",
        "--task",
        SEG,
        "--predictions",
        str(run),
        "--reference",
        str(reference),
        "--out",
        str(results),
        "--workers",
        "1",
    ]
    process = subprocess.Popen(
        argv, cwd=REPO, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "bench score never reached the store write"
            time.sleep(0.1)
        half_written = Path(marker.read_text())
        assert (half_written / "per_case.csv").is_file() and (half_written / "scores.json").is_file()
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert _entries(results) == []
    assert Store(results).runs() == []
    completed = subprocess.run(
        [sys.executable, "-m", "bench", *argv[4:]], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr
    (stored,) = Store(results).runs()
    assert (stored.path / "receipt.json").is_file() and stored.scores["counts"]["cases"] == 5


def test_ctrl_c_while_storing_leaves_no_entry(tmp_path, monkeypatch):
    spec, run, reference = seg_case_setup(tmp_path, monkeypatch)
    results = tmp_path / "results"
    written = []
    original = bench.io.write_json

    def interrupted(path, obj):
        written.append(Path(path).name)
        if Path(path).name == "receipt.json":
            raise KeyboardInterrupt
        return original(path, obj)

    monkeypatch.setattr("bench.store.write_json", interrupted)
    with pytest.raises(KeyboardInterrupt):
        score_and_store(spec, run, reference, results=results, workers=1)
    assert written == ["scores.json", "receipt.json"]
    assert _entries(results) == [] and list(results.rglob("*.csv")) == []
    monkeypatch.setattr("bench.store.write_json", original)
    stored = score_and_store(spec, run, reference, results=results, workers=1)
    assert [r.path for r in Store(results).runs()] == [stored.path]


def test_ctrl_c_while_scoring_cases_writes_nothing(tmp_path, monkeypatch):
    spec, run, reference = seg_case_setup(tmp_path, monkeypatch)
    results = tmp_path / "results"
    calls = []
    honest = bench.scoring.segmentation.score_case

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return honest(*args, **kwargs)

    monkeypatch.setattr(bench.scoring.segmentation, "score_case", interrupted)
    with pytest.raises(KeyboardInterrupt):
        score_and_store(spec, run, reference, results=results, workers=1)
    assert not results.exists() or list(results.rglob("*")) == []
