"""`bench prepare` cold, per full-size CT case, against its floor: read the DICOM, write the .nii.gz.

Run from the repository root::

    python -m benchmarks.bench_prepare                      # ~3-5 min: synthesizes ~900 MB first
    python -m benchmarks.bench_prepare --workdir /tmp/prep  # reuses the download if it is there

The download is the full-size synthetic collection (``bench data synth --size full``: RICORD's
on-disk formats, 512 x 512 x 220 CT series), indexed and pinned for ``ricord-ct-covid-cls`` into
a private tasks folder, exactly as a user does it. Timed in CPU seconds of this process, in
paired runs (the machine is shared; medians of the per-pair ratios):

ours
    :func:`bench.prepare.materialize.prepare_split` of the train split without the cache
    (``--no-cache``): every image fingerprinted against the pin, converted to int16 HU and
    written as .nii.gz, plus cases.json, task.json and the reference; divided by the cases.
floor
    For the same series: ``pydicom.dcmread`` of every file with its decoded pixels into one int16
    volume, and that memory compressed once by python-isal at the level prepare writes. Nothing
    that converts the series can be cheaper (no fingerprint, no header checks, no NIfTI header).
zlib
    The same int16 NIfTI written by ``nibabel.save`` (zlib), what prepare used to do.

Target (issue 15): at most 2 s CPU per full-size case.
"""

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from isal import igzip

from bench.data.manifest import read_manifest
from bench.data.ricord import case_instances, index_download
from bench.data.synth import ANNOTATIONS_1A, ANNOTATIONS_1C, synthesize
from bench.prepare import nifti
from bench.prepare.materialize import prepare_split
from bench.splits.pin import pin_split
from bench.splits.pinned import load_split
from bench.tasks import load_task

TASK = "ricord-ct-covid-cls"
SPLIT = "train"


def _cpu(call) -> tuple[float, object]:
    start = time.process_time()
    value = call()
    return time.process_time() - start, value


def download(workdir: Path) -> tuple[Path, Path, Path]:
    """(root, manifest, tasks folder) of the full synthetic download, made or reused."""
    root, tasks = workdir / "download", workdir / "tasks"
    if not root.is_dir():
        synthesize(root, seed=0, size="full")
    if not (root / "manifest.csv").is_file():
        annotations = [root / "annotations" / ANNOTATIONS_1A, root / "annotations" / ANNOTATIONS_1C]
        report = index_download(root, annotations=annotations, clinical=[root / "clinical"])
        report.write(root / "manifest.csv")
    if not (tasks / TASK / "splits" / "bench.json").is_file():  # a private user tasks folder
        tasks.mkdir(parents=True, exist_ok=True)
        pin_split(load_task(TASK, directory=tasks), root / "manifest.csv", root=root, name="bench",
                  directory=tasks)
    return root, root / "manifest.csv", tasks


def floor(paths: list[Path]) -> int:
    """Read every file with its pixels into one int16 volume, compress that memory once with igzip
    (no stacked copy, no bytes copy)."""
    first = pydicom.dcmread(paths[0]).pixel_array
    volume = np.empty((len(paths), *first.shape), dtype=np.int16)
    for k, path in enumerate(paths):
        volume[k] = pydicom.dcmread(path).pixel_array
    return len(igzip.compress(memoryview(volume).cast("B"), compresslevel=nifti.GZIP_LEVEL))


def zlib_write(paths: list[Path], out: Path) -> None:
    volume = np.stack([pydicom.dcmread(path).pixel_array for path in paths]).astype(np.int16)
    nib.save(nib.Nifti1Image(volume.transpose(2, 1, 0), np.eye(4)), out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="where the download goes (reused if present)")
    parser.add_argument("--pairs", type=int, default=3, help="paired prepare/floor runs (default 3)")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    root, manifest, tasks = download(workdir)
    spec = load_task(TASK, directory=tasks)
    cases = load_split(TASK, "bench", directory=tasks).cases(SPLIT)
    rows = {row["case_id"]: row for row in read_manifest(manifest).to_dict("records")}
    series = [list(case_instances(root, rows[case.case_id]).path) for case in cases]
    n_files = sum(len(paths) for paths in series)
    print(f"{len(cases)} {SPLIT} CT cases, {n_files} DICOM files, in {root} "
          f"({time.perf_counter() - started:.0f} s to make or find)")
    ours_s, floor_s = [], []
    for pair in range(args.pairs):
        out = workdir / f"prepared-{pair}"
        seconds, _ = _cpu(lambda out=out: prepare_split(spec, "bench", SPLIT, root=root, out=out,
                                                        manifest=manifest, cache=False, directory=tasks,
                                                        overwrite=True))
        ours_s.append(seconds / len(cases))
        floor_s.append(sum(_cpu(lambda paths=paths: floor(paths))[0] for paths in series) / len(cases))
        shutil.rmtree(out)
    zlib_s = _cpu(lambda: zlib_write(series[0], workdir / "zlib.nii.gz"))[0]
    ours, base = statistics.median(ours_s), statistics.median(floor_s)
    ratio = statistics.median(o / f for o, f in zip(ours_s, floor_s, strict=True))
    print(f"per case: prepare {ours:.2f} s CPU (target <= 2 s), floor (pydicom read + igzip write) "
          f"{base:.2f} s, prepare / floor {ratio:.2f}x; the same read + nibabel (zlib) write {zlib_s:.2f} s")


if __name__ == "__main__":
    main()
