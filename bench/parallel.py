"""Run one function over many small items, locally or on a dask.distributed cluster.

Scoring, container runs and re-scoring all have the same shape: a module-level function
applied to a list of small items (paths, case ids, small dicts). Workers receive those items,
never arrays, and load their own data, so the same call scales from one process to a
cluster that organizers already run. Results always come back in the order of ``items``,
whatever the completion order, so a parallel run writes the same bytes as a serial one.

Three back ends, one function:

- ``workers=1``: in this process, a plain loop (easiest to debug; a crash ends the program).
- default: a local :class:`concurrent.futures.ProcessPoolExecutor` (``spawn`` context) with
  ``workers`` processes (default ``os.cpu_count()``). If a worker process dies (killed,
  out of memory), the pool breaks; the unfinished items are resubmitted on a fresh pool, up
  to ``retries`` times.
- ``scheduler="tcp://host:port"`` (or the ``BENCH_SCHEDULER`` environment variable): tasks
  on that dask.distributed cluster. A worker lost mid-task is rescheduled by the dask
  scheduler (up to its ``distributed.scheduler.allowed-failures``, default 3); ``retries``
  re-runs tasks that raised (e.g. a transient shared-filesystem error); ``resources`` such as
  ``{"docker": 1}`` pin tasks to workers started with ``--resources docker=1``.
"""

import contextlib
import importlib
import logging
import multiprocessing
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from bench.errors import ClusterError

log = logging.getLogger(__name__)

SCHEDULER_ENV = "BENCH_SCHEDULER"
"""Environment variable holding a default dask scheduler address (empty: local pool)."""

ProgressCallback = Callable[[int, int, str], None]


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with BLAS (OpenBLAS, MKL, BLIS) on one thread, the previous limits restored after.

    Scoring and ranking multiply the (resamples x cases) count matrix by a few columns at a time:
    products too small to split across threads. With its default of one thread per core, OpenBLAS
    still wakes and spins its helper threads on each of them, which on a two-core machine
    roughly doubled the CPU time of scoring a classification run (measured in
    ``benchmarks.bench_cost``) for no gain in wall time. Parallelism comes from
    :func:`map_ordered`, one process per core, as the docs advise for workers.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def map_ordered(
    func: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    resources: dict[str, float] | None = None,
    retries: int = 2,
    progress: ProgressCallback | None = None,
    connect_timeout_s: float = 10.0,
) -> list:
    """Apply ``func`` to every item, in parallel, and return the results in item order.

    Parameters
    ----------
    func : callable
        A module-level (picklable) function of one item. It loads its own data from the
        paths in the item.
    items : iterable
        Small picklable values (paths, ids, small dicts), never arrays.
    workers : int, optional
        Local processes (default ``os.cpu_count()``); ``1`` runs in this process. Ignored
        with a scheduler: the cluster's size is the organizer's choice.
    scheduler : str, optional
        A dask.distributed scheduler address (``tcp://host:8786``). Default: the
        ``BENCH_SCHEDULER`` environment variable; unset or empty means the local pool.
    resources : dict, optional
        Worker resources each task needs on a cluster, e.g. ``{"docker": 1}``. Not enforced
        locally (bound local concurrency with ``workers``).
    retries : int
        Local pool: how many times unfinished items are resubmitted after a worker process
        died. Cluster: how many times a task that raised is re-run (worker loss is handled
        by the scheduler's ``allowed-failures``).
    progress : callable, optional
        Called as ``progress(done, total, description)`` each time an item completes.
    connect_timeout_s : float
        How long to wait for the scheduler to answer, and for a worker with the requested
        resources to be present, in seconds.

    Returns
    -------
    list
        ``[func(item) for item in items]``, identical whatever the back end.

    Raises
    ------
    BenchError
        The first BenchError raised by ``func`` (in completion order), unchanged; the rest
        of the work is cancelled. A note on the exception names the item. Any other
        exception from ``func`` propagates the same way.
    ClusterError
        The scheduler is unreachable or has no suitable worker, a task kept killing its
        workers, or the local pool kept breaking after ``retries`` resubmissions.
    """
    items = list(items)
    if retries < 0:
        raise ClusterError(f"retries must be 0 or more, got {retries}; pass e.g. retries=2.")
    if scheduler is None:
        scheduler = os.environ.get(SCHEDULER_ENV) or None
    if not items:
        return []
    if scheduler is not None:
        if workers is not None:
            log.debug("workers=%s ignored: the cluster at %s decides its size", workers, scheduler)
        return _map_cluster(func, items, scheduler, resources, retries, progress, connect_timeout_s)
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 1:
        raise ClusterError(f"workers must be 1 or more, got {workers}; use 1 to run in this process.")
    if resources:
        log.debug("resources %s are not enforced by the local pool", resources)
    if workers == 1:
        return _map_inline(func, items, progress)
    return _map_pool(func, items, min(workers, len(items)), retries, progress)


def describe_item(item: Any) -> str:
    """A short label for an item in progress descriptions: a case id, a file name, or a clipped repr."""
    if isinstance(item, Mapping) and "case_id" in item:
        return str(item["case_id"])
    if isinstance(item, str | os.PathLike):
        return os.path.basename(os.fspath(item).rstrip("/")) or os.fspath(item)
    text = repr(item)
    return text if len(text) <= 60 else text[:57] + "..."


def _annotate(error: BaseException, func: Callable, index: int, total: int, item: Any) -> None:
    """Name the failing item on the exception (a PEP 678 note) and in the log."""
    where = f"while running {getattr(func, '__name__', func)!s} on item {index + 1} of {total}: {item!r}"
    error.add_note(where)
    log.error("%s failed %s", type(error).__name__, where)


def _report(progress: ProgressCallback | None, done: int, total: int, item: Any) -> None:
    if progress is not None:
        progress(done, total, describe_item(item))


def _map_inline(func: Callable, items: list, progress: ProgressCallback | None) -> list:
    """The ``workers=1`` back end: a loop in this process."""
    results = []
    for index, item in enumerate(items):
        try:
            results.append(func(item))
        except Exception as error:
            _annotate(error, func, index, len(items), item)
            raise
        _report(progress, index + 1, len(items), item)
    return results


def _map_pool(func: Callable, items: list, workers: int, retries: int,
              progress: ProgressCallback | None) -> list:
    """The local back end: a spawn-context process pool, rebuilt when a worker dies."""
    total = len(items)
    results: dict[int, Any] = {}
    context = multiprocessing.get_context("spawn")
    for attempt in range(retries + 1):
        pending = [index for index in range(total) if index not in results]
        if attempt:
            log.warning("a worker process died; resubmitting %d unfinished item(s) on a fresh pool "
                        "(attempt %d of %d)", len(pending), attempt + 1, retries + 1)
        broken = _run_pool_round(func, items, pending, workers, context, results, progress)
        if not broken:
            return [results[index] for index in range(total)]
    unfinished = [items[index] for index in range(total) if index not in results]
    shown = ", ".join(repr(item) for item in unfinished[:5]) + (" ..." if len(unfinished) > 5 else "")
    raise ClusterError(
        f"local process pool broke {retries + 1} times running {func.__name__}; {len(unfinished)} "
        f"item(s) never finished: {shown}. A worker process died each time (killed, or out of memory: "
        f"check dmesg); run with workers=1 (--workers 1) to see the failure in this process, or give "
        f"each worker more memory by running fewer workers."
    )


def _run_pool_round(func: Callable, items: list, pending: list[int], workers: int, context,
                    results: dict[int, Any], progress: ProgressCallback | None) -> bool:
    """Submit ``pending`` to one fresh pool; fill ``results``. True when the pool broke."""
    total = len(items)
    broken = False
    pool = ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=context)
    futures: dict[Future, int] = {}
    try:
        for index in pending:
            try:
                futures[pool.submit(func, items[index])] = index
            except BrokenProcessPool:  # a worker died before everything was submitted
                broken = True
                break
        waiting = set(futures)
        while waiting:
            finished, waiting = wait(waiting, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=futures.__getitem__):
                index = futures[future]
                try:
                    results[index] = future.result()
                except BrokenProcessPool:
                    broken = True
                    continue
                except Exception as error:
                    _annotate(error, func, index, total, items[index])
                    raise
                _report(progress, len(results), total, items[index])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return broken


def _map_cluster(func: Callable, items: list, address: str, resources: dict[str, float] | None,
                 retries: int, progress: ProgressCallback | None, connect_timeout_s: float) -> list:
    """The cluster back end: ``client.map`` on a dask.distributed scheduler, gathered in order."""
    from distributed import Client, as_completed
    from distributed.scheduler import KilledWorker

    client = _connect(Client, address, connect_timeout_s)
    try:
        _wait_for_capable_worker(client, address, resources, connect_timeout_s)
        _check_importable(client, address, func)
        futures = client.map(func, items, pure=False, retries=retries, resources=resources)
        index_of = {future.key: index for index, future in enumerate(futures)}
        results: dict[int, Any] = {}
        completed = as_completed(futures, loop=client.loop, with_results=True, raise_errors=False)
        for future, value in completed:
            index = index_of[future.key]
            if future.status == "error":
                value = value[1]  # (type, exception, traceback)
                client.cancel([other for other in futures if other.key != future.key])
                if isinstance(value, KilledWorker):
                    raise ClusterError(
                        f"{func.__name__} on item {index + 1} of {len(items)} ({items[index]!r}) killed "
                        f"every worker that ran it on {address} ({value}). It is most likely out of "
                        f"memory: start workers with a larger --memory-limit, or raise "
                        f"distributed.scheduler.allowed-failures on the scheduler if workers are "
                        f"lost for other reasons."
                    ) from value
                _annotate(value, func, index, len(items), items[index])
                raise value
            results[index] = value
            _report(progress, len(results), len(items), items[index])
        return [results[index] for index in range(len(items))]
    finally:
        client.close()


def _connect(client_class, address: str, timeout_s: float):
    """Open a client, or raise a ClusterError that says how to start a scheduler."""
    try:
        _probe(address, timeout_s)
        return client_class(address, timeout=timeout_s, set_as_default=False)
    except Exception as error:  # whatever answers there is not a usable scheduler
        raise ClusterError(
            f"cannot reach the dask scheduler at {address!r} ({type(error).__name__}: {error}; waited "
            f"at most {timeout_s:g} s). Start one with `dask scheduler` and workers with "
            f"`dask worker {address}` (see docs/scaling.md), check the address and port, or run "
            f"on the local pool by dropping --scheduler and unsetting {SCHEDULER_ENV}."
        ) from error


def _probe(address: str, timeout_s: float) -> None:
    """Check that a TCP-based scheduler address accepts connections before building a Client.

    A Client whose constructor failed is still closed by its finalizer, which then waits
    twice the timeout on a dead event loop (20 s at exit); a plain socket fails fast instead
    for the usual cases (refused, unreachable, no answer, unknown scheme). Something that
    accepts the connection but is not a scheduler still costs that wait at exit.
    """
    from distributed.comm import get_address_host_port, parse_address

    scheme, _ = parse_address(address)
    if scheme not in ("tcp", "tls", "ws", "wss"):
        get_address_host_port(address)  # raises ValueError for an unknown scheme
        return
    host, port = get_address_host_port(address)
    with socket.create_connection((host, port), timeout=timeout_s):
        pass


def _check_importable(client, address: str, func: Callable) -> None:
    """Fail with a remedy when a worker lacks the task's module (it would hang, not err, otherwise).

    A worker that cannot unpickle a task drops its connection to the scheduler instead of
    reporting an error, so the run would wait forever; importing the module on every worker
    first turns that into a message.
    """
    module = getattr(func, "__module__", None)
    if not module or module == "__main__":
        return
    answers = client.run(importlib.import_module, module, on_error="return")
    failed = {worker: error for worker, error in answers.items() if isinstance(error, BaseException)}
    if failed:
        worker, error = sorted(failed.items())[0]
        raise ClusterError(
            f"{len(failed)} of {len(answers)} worker(s) on {address} cannot import {module!r}, which "
            f"holds {func.__name__} (e.g. {worker}: {type(error).__name__}: {error}). Install the same "
            f"ricord-bench version in the workers' environment (or set PYTHONPATH) and restart them."
        )


def _wait_for_capable_worker(client, address: str, resources: dict[str, float] | None,
                             timeout_s: float) -> None:
    """Fail fast instead of queueing forever when no worker could run the tasks."""
    needed = resources or {}
    deadline = time.monotonic() + timeout_s
    while True:
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
        capable = [
            name for name, info in workers.items()
            if all(info.get("resources", {}).get(key, 0) >= amount for key, amount in needed.items())
        ]
        if capable:
            log.debug("%d of %d worker(s) on %s can run tasks needing %s",
                      len(capable), len(workers), address, needed)
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    if not needed:
        raise ClusterError(
            f"the dask scheduler at {address} has no workers after {timeout_s:g} s. Start some with "
            f"`dask worker {address}` on machines that see the shared data path."
        )
    declared = ", ".join(f"{addr}: {info.get('resources') or {}}" for addr, info in workers.items())
    wanted = " ".join(f"--resources {key}={amount:g}" for key, amount in needed.items())
    raise ClusterError(
        f"no worker on the dask scheduler at {address} declares the resources {needed} after "
        f"{timeout_s:g} s (workers: {declared or 'none'}). Start a worker on a machine with the "
        f"needed service with `dask worker {address} {wanted}`."
    )
