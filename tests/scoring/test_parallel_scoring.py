"""A worker killed during a real scoring run, on a dask cluster or the local pool: the store is
complete and identical to a run without the loss (issue 7's fault-tolerance tests, end to end)."""

import json
import logging
import socket

import numpy as np
import psutil
import pytest
from dask.utils import key_split
from typer.testing import CliRunner

from bench.cli import app
from bench.scoring.score import score_and_store
from bench.store import Store
from bench.tasks import load_task
from tests.helpers.cluster_plugins import KillFirstExecution
from tests.helpers.scoring_fixtures import make_tasks_dir, pin_fixture_split, write_reference, write_run

SEG = "ricord-1a-lesion-seg"
SHAPE = (64, 64, 32)


def _fast(raw):
    raw["bootstrap"]["resamples"] = 200


def _ball(center, radius):
    x, y, z = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    return ((x - center[0]) ** 2 + (y - center[1]) ** 2 + (z - center[2]) ** 2 <= radius**2).astype(np.uint8)


def _seg_setup(tmp_path, monkeypatch, n_cases: int = 8):
    """``n_cases`` cases with one reference ball each and a shifted, resized predicted ball."""
    make_tasks_dir(tmp_path, monkeypatch, SEG, edit=_fast)
    cases = [(f"case-{i:02d}", f"p{i}") for i in range(n_cases)]
    pin_fixture_split(SEG, cases)
    rng = np.random.default_rng(3)
    refs, preds = {}, {}
    for case_id, _ in cases:
        center = rng.integers(12, 20, 3) * (2, 2, 1)
        refs[case_id] = _ball(center, int(rng.integers(4, 10)))
        preds[case_id] = _ball(center + rng.integers(-2, 3, 3), int(rng.integers(4, 10)))
    reference = write_reference(
        tmp_path / "prepared", SEG,
        [{"case_id": c, "patient_id": p, "mask": refs[c], "site": "S1", "sex": "F", "age": 50.0}
         for c, p in cases],
    )
    run = write_run(tmp_path / "run", SEG, {c: ("ok", "") for c, _ in cases}, masks=preds)
    return load_task(SEG), run, reference


def _scores_without_run_id(stored) -> dict:
    """scores.json of a stored run; the run id (start time + inputs hash) is the one field that differs."""
    return {**json.loads((stored.path / "scores.json").read_text()), "run_id": ""}


@pytest.mark.slow
def test_worker_killed_during_scoring_still_gives_a_complete_identical_store(tmp_path, monkeypatch):
    from distributed import Client, LocalCluster

    spec, run, reference = _seg_setup(tmp_path, monkeypatch)
    local = score_and_store(spec, run, reference, results=tmp_path / "local", workers=2)
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") as cluster:
        with Client(cluster, set_as_default=False) as client:
            client.register_plugin(KillFirstExecution(str(tmp_path / "killed")))
        result = CliRunner().invoke(app, [
            "score", "--task", SEG, "--predictions", str(run), "--reference", str(reference),
            "--out", str(tmp_path / "cluster"), "--scheduler", cluster.scheduler_address,
        ])
        events = [event for _, event in cluster.scheduler.get_events("all")]
    assert result.exit_code == 0, result.output
    (remote,) = Store(tmp_path / "cluster").runs()
    lost = {key_split(key) for event in events if event.get("action") == "remove-worker"
            for key in event["processing-tasks"]}
    assert lost == {"score_segmentation_case"}  # the worker died mid-task, inside real scoring
    assert (remote.path / "per_case.csv").read_bytes() == (local.path / "per_case.csv").read_bytes()
    assert len(remote.per_case) == 8 and set(remote.per_case["status"]) == {"ok"}
    assert _scores_without_run_id(remote) == _scores_without_run_id(local)


def test_cli_score_with_an_unreachable_scheduler_says_what_to_do(tmp_path, monkeypatch):
    spec, run, reference = _seg_setup(tmp_path, monkeypatch, n_cases=2)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("BENCH_SCHEDULER", address)
    result = CliRunner().invoke(app, ["score", "--task", SEG, "--predictions", str(run),
                                      "--reference", str(reference), "--out", str(tmp_path / "results")])
    assert result.exit_code == 2
    assert f"cannot reach the dask scheduler at '{address}'" in result.output
    assert "dask scheduler" in result.output and not (tmp_path / "results").exists()


def _command(process) -> str:
    """A child's command line; empty for one that is gone or a zombie (an earlier test's child
    not yet reaped by this process), which is not a pool worker either."""
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


@pytest.mark.slow
def test_local_pool_worker_killed_during_scoring_gives_an_identical_store(tmp_path, monkeypatch, caplog):
    spec, run, reference = _seg_setup(tmp_path, monkeypatch)
    serial = score_and_store(spec, run, reference, results=tmp_path / "serial", workers=1)
    killed = []

    def kill_a_pool_worker(done, total, text):
        """After the first case comes back, SIGKILL one of the pool's worker processes."""
        workers = [child for child in psutil.Process().children() if "spawn_main" in _command(child)]
        if not killed and workers:
            workers[0].kill()
            killed.append(workers[0].pid)

    with caplog.at_level(logging.WARNING, logger="bench.parallel"):
        pooled = score_and_store(spec, run, reference, results=tmp_path / "pool", workers=2,
                                 progress=kill_a_pool_worker)
    assert killed and "a worker process died; resubmitting" in caplog.text
    assert (pooled.path / "per_case.csv").read_bytes() == (serial.path / "per_case.csv").read_bytes()
    assert _scores_without_run_id(pooled) == _scores_without_run_id(serial)
