"""bench.parallel.map_ordered: in-process, local pool and a real dask LocalCluster agree bit for bit.

The reference result is always the plain serial loop ``[func(item) for item in items]``
run in the test process: map_ordered's whole contract is to equal it.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from dask.utils import key_split

import tests.helpers.parallel_tasks as tasks
from bench.errors import ClusterError, ScoringError
from bench.parallel import SCHEDULER_ENV, describe_item, map_ordered

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def case_paths(tmp_path_factory):
    return tasks.write_cases(tmp_path_factory.mktemp("cases"), 6)


@pytest.fixture(scope="module")
def expected(case_paths):
    return [tasks.summarize(path) for path in case_paths]


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") as local:
        yield local


def _worker_env(*, with_tasks: bool = True) -> dict[str, str]:
    """Environment for a `dask worker` subprocess: the package, and the test tasks unless told not.

    Without the tasks, only a folder holding a link to ``bench`` is on the path, so the
    ``tests`` package (and with it ``tests.helpers.parallel_tasks``) cannot be imported.
    """
    if with_tasks:
        return {**os.environ, "PYTHONPATH": str(REPO)}
    bare = Path(tempfile.mkdtemp(prefix="bench-bare-worker-"))
    (bare / "bench").symlink_to(REPO / "bench")
    return {**os.environ, "PYTHONPATH": str(bare)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_in_process_returns_serial_results_in_order(case_paths, expected):
    calls = []
    results = map_ordered(tasks.summarize, case_paths, workers=1,
                          progress=lambda done, total, text: calls.append((done, total, text)))
    assert results == expected
    assert calls == [(i + 1, 6, f"case-{i:03d}.npy") for i in range(6)]


def test_empty_items_give_empty_list():
    assert map_ordered(tasks.summarize, [], workers=2) == []


def test_local_pool_returns_serial_results_in_order(case_paths, expected):
    calls = []
    results = map_ordered(tasks.summarize, case_paths, workers=2,
                          progress=lambda done, total, text: calls.append((done, total)))
    assert results == expected
    assert calls == [(i + 1, 6) for i in range(6)]


def test_local_pool_survives_a_killed_worker(case_paths, expected, tmp_path):
    marker = str(tmp_path / "killed-once")
    results = map_ordered(tasks.summarize_or_die_once, [(p, marker) for p in case_paths], workers=2)
    assert (tmp_path / "killed-once").exists()
    assert results == expected


def test_local_pool_gives_up_after_retries_naming_items(case_paths):
    with pytest.raises(ClusterError, match=r"broke 2 times running always_die; 2 item\(s\) never finished"):
        map_ordered(tasks.always_die, case_paths[:2], workers=2, retries=1)


@pytest.mark.parametrize("workers", [1, 2])
def test_bench_error_propagates_unchanged_with_item_noted(workers):
    items = [("a", ""), ("bad", ""), ("c", "")]
    with pytest.raises(ScoringError) as caught:
        map_ordered(tasks.fail_on, items, workers=workers)
    assert str(caught.value) == "case bad: prediction mask has shape (1, 2), expected (3, 4)"
    assert caught.value.__notes__ == ["while running fail_on on item 2 of 3: ('bad', '')"]


def test_invalid_workers_and_retries_are_user_errors():
    with pytest.raises(ClusterError, match="workers must be 1 or more, got 0"):
        map_ordered(tasks.summarize, ["x"], workers=0)
    with pytest.raises(ClusterError, match="retries must be 0 or more, got -1"):
        map_ordered(tasks.summarize, ["x"], retries=-1)


def test_describe_item():
    assert describe_item("/data/cases/case-001.nii.gz") == "case-001.nii.gz"
    assert describe_item({"case_id": "c1", "reference": "/long/path/c1.nii.gz"}) == "c1"
    assert describe_item({"run_dir": "r1"}) == "{'run_dir': 'r1'}"
    assert describe_item(tuple(range(40))).endswith("...")


def test_unreachable_scheduler_names_address_and_remedy(monkeypatch):
    address = f"tcp://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    with pytest.raises(ClusterError) as caught:
        map_ordered(tasks.summarize, ["x"], scheduler=address, connect_timeout_s=1)
    assert time.monotonic() - started < 15
    message = str(caught.value)
    assert f"cannot reach the dask scheduler at '{address}' (ConnectionRefusedError" in message
    assert "`dask scheduler`" in message and SCHEDULER_ENV in message


def test_scheduler_address_from_environment(monkeypatch):
    address = f"tcp://127.0.0.1:{_free_port()}"
    monkeypatch.setenv(SCHEDULER_ENV, address)
    with pytest.raises(ClusterError, match=f"cannot reach the dask scheduler at '{address}'"):
        map_ordered(tasks.summarize, ["x"], workers=1, connect_timeout_s=1)


@pytest.mark.slow
def test_local_cluster_matches_local_pool_bit_for_bit(cluster, case_paths, expected):
    pool = map_ordered(tasks.summarize, case_paths, workers=2)
    calls = []
    distributed = map_ordered(tasks.summarize, case_paths, scheduler=cluster.scheduler_address,
                              progress=lambda done, total, text: calls.append((done, total)))
    assert distributed == pool == expected
    assert calls == [(i + 1, 6) for i in range(6)]


@pytest.mark.slow
def test_local_cluster_error_propagates_unchanged(cluster):
    items = [("a", ""), ("bad", ""), ("c", "")]
    with pytest.raises(ScoringError) as caught:
        map_ordered(tasks.fail_on, items, scheduler=cluster.scheduler_address, retries=0)
    assert str(caught.value) == "case bad: prediction mask has shape (1, 2), expected (3, 4)"
    assert caught.value.__notes__ == ["while running fail_on on item 2 of 3: ('bad', '')"]


@pytest.mark.slow
def test_local_cluster_survives_a_killed_worker(cluster, case_paths, expected, tmp_path):
    marker = str(tmp_path / "killed-once")
    seen = len(cluster.scheduler.get_events("all"))
    results = map_ordered(tasks.summarize_or_die_once, [(p, marker) for p in case_paths],
                          scheduler=cluster.scheduler_address)
    assert results == expected
    assert _lost_while_processing(cluster, seen) == {"summarize_or_die_once"}  # lost mid-task, rerun


def _lost_while_processing(cluster, seen: int) -> set[str]:
    """Task names the scheduler had in flight on workers it lost, from its event log after ``seen``."""
    events = [event for _, event in cluster.scheduler.get_events("all")[seen:]]
    keys = [key for event in events if event.get("action") == "remove-worker"
            for key in event["processing-tasks"]]
    return {key_split(key) for key in keys}


@pytest.mark.slow
def test_local_cluster_task_that_keeps_killing_workers_is_a_cluster_error(cluster, case_paths):
    allowed = cluster.scheduler.allowed_failures
    cluster.scheduler.allowed_failures = 0  # the first lost worker already marks the task as bad
    try:
        with pytest.raises(ClusterError) as caught:
            map_ordered(tasks.always_die, case_paths[:1], scheduler=cluster.scheduler_address)
    finally:
        cluster.scheduler.allowed_failures = allowed
    message = str(caught.value)
    assert "always_die on item 1 of 1 ('" in message and "killed every worker that ran it" in message
    assert "--memory-limit" in message and "allowed-failures" in message


def _start_worker(address: str, name: str, *options: str, with_tasks: bool = True) -> subprocess.Popen:
    """Start the documented `dask worker` command against ``address`` and wait until it joined."""
    from distributed import Client

    worker = subprocess.Popen(
        [sys.executable, "-m", "dask", "worker", address, "--name", name, "--nthreads", "1",
         "--no-dashboard", *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_worker_env(with_tasks=with_tasks),
        cwd=REPO if with_tasks else tempfile.gettempdir(),  # `python -m` puts the cwd on the path
    )
    with Client(address, timeout=10, set_as_default=False) as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            workers = client.scheduler_info(n_workers=-1)["workers"].values()
            if name in {info["name"] for info in workers} and len(workers) >= 3:
                return worker
            time.sleep(0.2)
    _stop(worker)
    raise RuntimeError(f"dask worker {name} did not join {address} within 60 s")


def _stop(worker: subprocess.Popen) -> None:
    worker.terminate()
    worker.wait(timeout=30)


@pytest.mark.slow
def test_worker_without_the_task_module_is_reported_not_waited_on(cluster, case_paths):
    worker = _start_worker(cluster.scheduler_address, "bare-host", with_tasks=False)
    try:
        with pytest.raises(ClusterError) as caught:
            map_ordered(tasks.summarize, case_paths, scheduler=cluster.scheduler_address)
    finally:
        _stop(worker)
    message = str(caught.value)
    assert "1 of 3 worker(s)" in message and "cannot import 'tests.helpers.parallel_tasks'" in message
    assert "Install the same ricord-bench version" in message


@pytest.mark.slow
def test_resources_route_tasks_to_the_worker_that_declares_them(cluster):
    address = cluster.scheduler_address
    with pytest.raises(ClusterError, match=r"no worker .* declares the resources \{'docker': 1\}"):
        map_ordered(tasks.worker_name, [1], scheduler=address, resources={"docker": 1}, connect_timeout_s=1)
    # The documented command an organizer runs on a machine with a Docker engine.
    worker = _start_worker(address, "docker-host", "--resources", "docker=1")
    try:
        results = map_ordered(tasks.worker_name, list(range(8)), scheduler=address,
                              resources={"docker": 1}, connect_timeout_s=60)
        declared = sorted((dict(state.resources) for state in cluster.scheduler.workers.values()), key=len)
    finally:
        _stop(worker)
    assert declared == [{}, {}, {"docker": 1}]  # two idle plain workers could have taken tasks
    assert results == [(item, "docker-host") for item in range(8)]


@pytest.mark.slow
@pytest.mark.docker
def test_container_runs_go_to_the_docker_worker_and_write_to_the_shared_path(cluster, tmp_path):
    from bench.pipeline.demo import BUILTIN_SUBMISSIONS
    from bench.pipeline.evaluate import run_on_worker
    from bench.runners.base_image import build_base_image
    from bench.tasks import load_task
    from tests.helpers.runner_inputs import write_prepared

    build_base_image()  # reused when present (the runners' tests build it)
    submissions = BUILTIN_SUBMISSIONS
    items = []
    for name, task in (("threshold-seg", "ricord-1a-lesion-seg"), ("hu-stats-cls", "ricord-ct-covid-cls")):
        inputs = write_prepared(tmp_path / "prepared" / task, task)
        items.append({"submission": str(submissions / name), "team": None, "entry": None,
                      "spec": load_task(task),
                      "inputs": str(inputs), "run_dir": str(tmp_path / "runs" / name),
                      "runner": "docker", "limits": {"timeout_s": 120}})
    worker = _start_worker(cluster.scheduler_address, "docker-host", "--resources", "docker=1")
    try:
        runs = map_ordered(run_on_worker, items, scheduler=cluster.scheduler_address,
                           resources={"docker": 1}, connect_timeout_s=60)
    finally:
        _stop(worker)
    assert [run["worker"] for run in runs] == ["docker-host", "docker-host"]
    assert [run["exit_code"] for run in runs] == [0, 0]
    assert [run["counts"] for run in runs] == [{"ok": 4, "missing": 0, "malformed": 0}] * 2
    assert sorted(p.name for p in (tmp_path / "runs/threshold-seg/outputs/masks").iterdir()) == [
        f"CASE-{i:03d}.nii.gz" for i in range(4)]
    assert (tmp_path / "runs/hu-stats-cls/outputs/predictions.csv").is_file()
