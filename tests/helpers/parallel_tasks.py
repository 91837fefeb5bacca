"""Module-level task functions for tests/test_parallel.py.

They live in their own light module (numpy only) because worker processes, local or
dask, import a task function's module by name: importing the test module would drag
pytest and distributed into every spawned worker.
"""

import hashlib
import os
import signal
import time
from pathlib import Path

import numpy as np


def write_cases(directory: Path, count: int, *, seed: int = 7) -> list[str]:
    """Write ``count`` seeded float32 volumes as .npy files; return their paths (as str)."""
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        path = directory / f"case-{index:03d}.npy"
        np.save(path, rng.normal(size=(8, 32, 32)).astype(np.float32))
        paths.append(str(path))
    return paths


def summarize(path: str) -> dict:
    """Load one volume and reduce it with float arithmetic whose rounding depends on order."""
    volume = np.load(path)
    spectrum = np.abs(np.fft.rfftn(volume))
    smoothed = np.cumsum(np.sort(volume.ravel()).astype(np.float64))
    return {
        "case": Path(path).stem,
        "mean": float(volume.mean(dtype=np.float64)),
        "spectrum_sum": float(spectrum.sum()),
        "cumsum_last": float(smoothed[-1]),
        "sha256": hashlib.sha256(spectrum.tobytes()).hexdigest(),
    }


def summarize_or_die_once(item: tuple[str, str]) -> dict:
    """Like :func:`summarize`, but the first call of the whole run kills its own process.

    ``item`` is (path, marker): the marker file is created exclusively, so exactly one call
    (whichever comes first) SIGKILLs the worker process it runs in.
    """
    path, marker = item
    try:
        with open(marker, "x"):
            pass
    except FileExistsError:
        return summarize(path)
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: the process was killed")


def always_die(path: str) -> dict:
    """Kill the worker process every time (a case that is always out of memory)."""
    os._exit(1)


def fail_on(item: tuple[str, str]) -> str:
    """Raise a ScoringError for the item named ``"bad"``, return the name otherwise."""
    from bench.errors import ScoringError

    name, _ = item
    if name == "bad":
        raise ScoringError(f"case {name}: prediction mask has shape (1, 2), expected (3, 4)")
    time.sleep(0.05)
    return name


def worker_name(item: int) -> tuple[int, str]:
    """Return the item and the name of the dask worker that ran it."""
    from distributed import get_worker

    time.sleep(0.05)
    return item, str(get_worker().name)
