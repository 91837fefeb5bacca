"""Scoring throughput with 1 and 2 workers (local pool and a dask LocalCluster), and per-case costs.

Run from the repository root::

    python -m benchmarks.bench_scaling                 # 6 full-size cases, ~2-4 min on 2 cores
    python -m benchmarks.bench_scaling --cases 4 --workdir /tmp/scaling-cases   # reuse the files

Full-size synthetic segmentation cases (512 x 512 x 200 uint8 masks, 0.75 x 0.75 x 1.5 mm, a
few COVID-like lesions per case, the prediction a perturbed copy with one false positive) are
written as .nii.gz; workers get the two paths and load their own data, exactly as scoring does.
It prints cases/s per back end, the 2-worker / 1-worker scaling ratio, and the per-case costs
(NIfTI load, score_case, peak worker memory, container start-up when a local image exists)
that docs/scaling.md's capacity plan is built from.
"""

import argparse
import importlib
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

from bench.metrics.segmentation import score_case
from bench.parallel import map_ordered

SHAPE = (512, 512, 200)
"""NIfTI (i, j, k) = (x, y, z) shape of a full-size chest CT."""
SPACING_MM = (0.75, 0.75, 1.5)


def _ellipsoid(mask: np.ndarray, center, radii) -> None:
    """OR an axis-aligned ellipsoid (voxel radii) into ``mask`` in place."""
    bounds = zip(center, radii, mask.shape, strict=True)
    box = tuple(slice(max(0, c - r), min(n, c + r + 1)) for c, r, n in bounds)
    grids = np.ogrid[box]
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, center, radii, strict=True)) <= 1.0
    mask[box] |= inside


def make_case(directory: Path, index: int, *, seed: int = 20240601) -> tuple[str, str]:
    """Write (or reuse) case ``index``: reference and prediction masks as .nii.gz; return both paths."""
    ref_path, pred_path = directory / f"ref-{index:03d}.nii.gz", directory / f"pred-{index:03d}.nii.gz"
    if ref_path.exists() and pred_path.exists():
        return str(pred_path), str(ref_path)
    rng = np.random.default_rng([seed, index])
    ref, pred = np.zeros(SHAPE, dtype=bool), np.zeros(SHAPE, dtype=bool)
    for _ in range(int(rng.integers(4, 10))):
        center = rng.integers((110, 130, 30), (402, 382, 170))
        radii = rng.integers((10, 10, 5), (55, 55, 30))
        _ellipsoid(ref, center, radii)
        _ellipsoid(pred, center + rng.integers(-4, 5, 3), np.maximum(radii + rng.integers(-5, 6, 3), 2))
    _ellipsoid(pred, rng.integers((110, 130, 30), (402, 382, 170)), (8, 8, 4))
    affine = np.diag([-SPACING_MM[0], -SPACING_MM[1], SPACING_MM[2], 1.0])
    for path, mask in ((ref_path, ref), (pred_path, pred)):
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), path)
    return str(pred_path), str(ref_path)


def _load(path: str) -> tuple[np.ndarray, tuple[float, ...]]:
    image = nib.load(path)
    return np.asanyarray(image.dataobj), tuple(float(z) for z in image.header.get_zooms()[:3])


def score_files(item: tuple[str, str]) -> dict:
    """The per-case unit of work: load prediction and reference from their paths, score them."""
    pred, _ = _load(item[0])
    ref, spacing_mm = _load(item[1])
    return score_case(pred, ref, spacing_mm=spacing_mm, tolerance_mm=1.0).as_dict()


def score_files_peak_rss(item: tuple[str, str]) -> float:
    """Score one case in a fresh worker process and return that process's peak RSS in MiB."""
    score_files(item)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _seconds(call: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _cluster_seconds(items: list, n_workers: int, expected: list) -> float:
    """Wall time of map_ordered on a warm LocalCluster with ``n_workers`` single-threaded processes."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=n_workers, processes=True, threads_per_worker=1,
                      dashboard_address=None) as cluster:
        with Client(cluster, set_as_default=False) as client:  # warm up: import the task module
            client.run(importlib.import_module, __name__)
        started = time.perf_counter()
        results = map_ordered(score_files, items, scheduler=cluster.scheduler_address)
        elapsed = time.perf_counter() - started
    if results != expected:
        raise RuntimeError(f"LocalCluster({n_workers}) results differ from the in-process run")
    return elapsed


def _container_start_s(repeats: int) -> tuple[str, float] | None:
    """Median `docker run --rm --network none IMAGE true` time via the docker SDK, if an image exists."""
    try:
        import docker

        client = docker.from_env(timeout=30)
        images = [tag for image in client.images.list() for tag in image.tags]
    except Exception:  # no engine: the measurement is simply not available
        return None
    preferred = [t for t in images if t.startswith("ricord-bench/python")] or sorted(images)
    if not preferred:
        return None
    image = preferred[0]
    run = lambda: client.containers.run(image, ["true"], remove=True, network_mode="none")  # noqa: E731
    run()
    return image, _seconds(run, repeats)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=6, help="full-size cases to score (default 6)")
    parser.add_argument("--workdir", type=Path, help="where the .nii.gz cases go (reused if present)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the single-case timings")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    workdir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    items = [make_case(workdir, index) for index in range(args.cases)]
    print(f"{args.cases} full-size cases {SHAPE} in {workdir} ({time.perf_counter() - started:.1f} s to "
          f"write or find); cpu_count={os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")

    pred, ref = items[0]
    load_s = _seconds(lambda: _load(ref), args.repeats)
    ref_array, spacing_mm = _load(ref)
    pred_array, _ = _load(pred)
    score_s = _seconds(lambda: score_case(pred_array, ref_array, spacing_mm=spacing_mm), args.repeats)
    rss_mib = map_ordered(score_files_peak_rss, [items[0]], workers=2)[0]
    print(f"per case: load one mask {load_s:.2f} s, score_case {score_s:.2f} s, "
          f"peak worker RSS {rss_mib:.0f} MiB, file size {os.path.getsize(ref) / 2**20:.2f} MiB")
    container = _container_start_s(args.repeats)
    print("container start-up: " + (f"{container[1]:.2f} s ({container[0]}, docker run --rm --network none "
                                     f"IMAGE true)" if container else "not measured (no local image)"))

    started = time.perf_counter()
    expected = map_ordered(score_files, items, workers=1)
    rows = [("local, in-process (workers=1)", 1, time.perf_counter() - started)]
    started = time.perf_counter()
    if map_ordered(score_files, items, workers=2) != expected:
        raise RuntimeError("local pool results differ from the in-process run")
    rows.append(("local process pool (workers=2)", 2, time.perf_counter() - started))
    for n_workers in (1, 2):
        rows.append((f"dask LocalCluster (n_workers={n_workers})", n_workers,
                     _cluster_seconds(items, n_workers, expected)))

    print(f"\n{'back end':<34} {'workers':>7} {'seconds':>8} {'cases/s':>8}")
    for name, workers, seconds in rows:
        print(f"{name:<34} {workers:>7} {seconds:>8.2f} {len(items) / seconds:>8.3f}")
    print(f"\nscaling ratio, 2 workers / 1 worker (throughput): local pool {rows[0][2] / rows[1][2]:.2f}x, "
          f"LocalCluster {rows[2][2] / rows[3][2]:.2f}x (ideal 2.00x; {os.cpu_count()} cores shared)")
    print("all back ends returned identical per-case results")

if __name__ == "__main__":
    # Run the functions from the importable module, not __main__, so workers import them by name.
    from benchmarks.bench_scaling import main as _main

    _main()
