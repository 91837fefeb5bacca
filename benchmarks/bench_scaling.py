"""Scoring throughput with 1 and 2 workers (local pool and a dask LocalCluster), and per-case costs.

Run from the repository root::

    python -m benchmarks.bench_scaling                 # 6 full-size cases, ~2-4 min on 2 cores
    python -m benchmarks.bench_scaling --cases 4 --workdir /tmp/scaling-cases   # reuse the files

Full-size synthetic segmentation cases (512 x 512 x 200 uint8 masks, 0.75 x 0.75 x 1.5 mm, a
few COVID-like lesions per case, the prediction a perturbed copy with one false positive) are
written as .nii.gz, and scored by `bench score`'s own per-case task
(``bench.scoring.segmentation.score_segmentation_case``): workers get the paths, load their own data.
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
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from bench.data.dicom import load_ct_series
from bench.metrics.segmentation import score_case
from bench.parallel import map_ordered
from bench.prepare import nifti
from bench.scoring.segmentation import case_item, score_segmentation_case
from bench.tasks import load_task

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


def make_ct_series(directory: Path, *, seed: int = 20240601) -> Path:
    """Write (or reuse) one full-size CT series: 200 DICOM files of 512 x 512 int16 with noise."""
    series = directory / "dicom"
    if series.is_dir() and len(list(series.glob("*.dcm"))) == SHAPE[2]:
        return series
    series.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    y, x = np.ogrid[: SHAPE[1], : SHAPE[0]]
    body = ((x - 256) / 230) ** 2 + ((y - 256) / 180) ** 2 <= 1
    lungs = (((np.abs(x - 256) - 86) / 80) ** 2 + ((y - 250) / 120) ** 2) <= 1
    base = np.where(lungs, -850, np.where(body, 40, -1000)).astype(np.int16)
    study, series_uid = generate_uid(), generate_uid()
    for k in range(SHAPE[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study, series_uid, "CT"
        ds.PatientID, ds.InstanceNumber = "SCALING-0001", k + 1
        ds.ImagePositionPatient = [-192.0, -192.0, -300.0 + SPACING_MM[2] * k]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness = [SPACING_MM[1], SPACING_MM[0]], SPACING_MM[2]
        ds.Rows, ds.Columns, ds.SamplesPerPixel = SHAPE[1], SHAPE[0], 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        stored = base + 1024 + rng.normal(0, 20, size=base.shape).astype(np.int16)
        ds.PixelData = stored.astype(np.int16).tobytes()
        dcmwrite(series / f"{k:04d}.dcm", ds, enforce_file_format=True)
    return series


def prepare_case(series: Path, out: Path) -> Path:
    """The per-case prepare work: load the DICOM series (bench.data.dicom), write int16 HU .nii.gz
    with the harness's own converter and writer (bench.prepare.nifti)."""
    volume = load_ct_series(sorted(series.glob("*.dcm")))
    nifti.save(nifti.ct_image(volume.hu, volume.affine_lps), out)
    return out


def _load(path: str) -> tuple[np.ndarray, tuple[float, ...]]:
    data, header, _ = nifti.read_volume(path)
    return data, tuple(float(z) for z in header.get_zooms()[:3])


def scoring_items(cases: list[tuple[str, str]]) -> list[dict]:
    """The work items `bench score` hands to map_ordered for these (prediction, reference) pairs."""
    spec = load_task("ricord-1a-lesion-seg")
    return [case_item(spec, f"case-{index:03d}", Path(ref), Path(pred), "ok", "")
            for index, (pred, ref) in enumerate(cases)]


def score_peak_rss(item: dict) -> float:
    """Score one case in a fresh worker process and return that process's peak RSS in MiB."""
    score_segmentation_case(item)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _seconds(call: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls, in seconds."""
    return _timed(call, repeats)[0]


def _timed(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU (this process) time of ``repeats`` calls, in seconds.

    On a shared machine the wall time includes waiting for a core; the CPU time does not, so
    it is the better per-case cost for a capacity plan.
    """
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def _cluster_seconds(items: list, n_workers: int, expected: list) -> float:
    """Wall time of map_ordered on a warm LocalCluster with ``n_workers`` single-threaded processes."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=n_workers, processes=True, threads_per_worker=1,
                      dashboard_address=":0") as cluster:
        with Client(cluster, set_as_default=False) as client:  # warm up: import the task module
            client.run(importlib.import_module, __name__)
        started = time.perf_counter()
        results = map_ordered(score_segmentation_case, items, scheduler=cluster.scheduler_address)
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


def per_case_costs(workdir: Path, items: list[tuple[str, str]], repeats: int) -> None:
    """Print the single-case costs the capacity plan multiplies out."""
    pred, ref = items[0]
    load_s, load_cpu_s = _timed(lambda: _load(ref), repeats)
    ref_array, spacing_mm = _load(ref)
    pred_array, _ = _load(pred)
    score_s, score_cpu_s = _timed(lambda: score_case(pred_array, ref_array, spacing_mm=spacing_mm), repeats)
    rss_mib = map_ordered(score_peak_rss, scoring_items(items[:1]), workers=2)[0]
    print(f"per case: load one mask {load_s:.2f} s wall / {load_cpu_s:.2f} s CPU, score_case "
          f"{score_s:.2f} s wall / {score_cpu_s:.2f} s CPU ({int(ref_array.sum())} reference voxels), "
          f"peak worker RSS {rss_mib:.0f} MiB, mask file {os.path.getsize(ref) / 2**20:.2f} MiB")
    series = make_ct_series(workdir)
    image = workdir / "ct.nii.gz"
    prepare_s, prepare_cpu_s = _timed(lambda: prepare_case(series, image), 1)
    dicom_mib = sum(path.stat().st_size for path in series.glob("*.dcm")) / 2**20
    read_s = _seconds(lambda: nifti.read_volume(image), repeats)
    print(f"prepare (DICOM series -> int16 .nii.gz): {prepare_s:.2f} s wall / {prepare_cpu_s:.2f} s CPU; "
          f"DICOM {dicom_mib:.0f} MiB -> NIfTI {image.stat().st_size / 2**20:.1f} MiB; "
          f"reading that NIfTI {read_s:.2f} s")
    container = _container_start_s(repeats)
    print("container start-up: " + (f"{container[1]:.2f} s ({container[0]}, docker run --rm --network none "
                                     f"IMAGE true)" if container else "not measured (no local image)"))


def throughput(cases: list[tuple[str, str]]) -> None:
    """Print cases/s for 1 and 2 workers on each back end, and the scaling ratios."""
    items = scoring_items(cases)
    started = time.perf_counter()
    expected = map_ordered(score_segmentation_case, items, workers=1)
    rows = [("local, in-process (workers=1)", 1, time.perf_counter() - started)]
    started = time.perf_counter()
    if map_ordered(score_segmentation_case, items, workers=2) != expected:
        raise RuntimeError("local pool results differ from the in-process run")
    rows.append(("local process pool (workers=2)", 2, time.perf_counter() - started))
    for n_workers in (1, 2):
        rows.append((f"dask LocalCluster (n_workers={n_workers})", n_workers,
                     _cluster_seconds(items, n_workers, expected)))
    print(f"\n{'back end':<34} {'workers':>7} {'seconds':>8} {'cases/s':>8}")
    for name, workers, seconds in rows:
        print(f"{name:<34} {workers:>7} {seconds:>8.2f} {len(items) / seconds:>8.3f}")
    print(f"\nscaling ratio, 2 workers / 1 worker (throughput): local pool {rows[0][2] / rows[1][2]:.2f}x, "
          f"LocalCluster {rows[2][2] / rows[3][2]:.2f}x (ideal 2.00x; {os.cpu_count()} cores, "
          f"load average now {os.getloadavg()[0]:.2f})")
    print("all back ends returned identical per-case results")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=6, help="full-size cases to score (default 6)")
    parser.add_argument("--workdir", type=Path, help="where the generated cases go (reused if present)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the single-case timings")
    parser.add_argument("--costs-only", action="store_true", help="only the per-case costs")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    items = [make_case(workdir, index) for index in range(args.cases)]
    print(f"{args.cases} full-size cases {SHAPE} in {workdir} ({time.perf_counter() - started:.1f} s to "
          f"write or find); cpu_count={os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    per_case_costs(workdir, items, args.repeats)
    if not args.costs_only:
        throughput(items)


if __name__ == "__main__":
    # Run the functions from the importable module, not __main__, so workers import them by name.
    from benchmarks.bench_scaling import main as _main

    _main()
