"""The per-run input snapshot: hard-linking the images vs copying them (the old behaviour).

Writes a prepared input folder of ``--files`` images of ``--mb`` MB each (random bytes, which
is what compressed NIfTI looks like to a copy), then times :func:`stage_inputs` three ways
on the same filesystem, alternating, each into a fresh snapshot that is removed afterwards:

- ``hardlink``: what a run does now (link, then sha256 of the linked file);
- ``copy``: the same call with ``os.link`` failing with EXDEV, i.e. the fallback path, which
  is the pre-hardlink behaviour (read, hash, write a private copy);
- ``link only``: ``os.link`` of every image without hashing, the floor of any snapshot that
  still records ``inputs_sha256`` from the bytes the submission sees.

Also reports the bytes each snapshot added to the filesystem. The page cache is warm (the
images were just written); on a shared filesystem the copy's writes also cross the network.

Usage: python -m benchmarks.bench_snapshot [--files 20] [--mb 60] [--runs 3] [--dir PATH]
"""

import argparse
import errno
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

from bench.runners.staging import read_inputs, remove_staging, stage_inputs


def write_inputs(root: Path, *, files: int, mb: int) -> Path:
    """A prepared input folder (cases.json, task.json, images/) of random images, mode 0644."""
    images = root / "input" / "images"
    images.mkdir(parents=True)
    cases = []
    for index in range(files):
        case_id = f"case-{index:05d}"
        path = images / f"{case_id}.nii.gz"
        with open(path, "wb") as handle:
            for _ in range(mb):
                handle.write(os.urandom(1 << 20))
        path.chmod(0o644)
        cases.append({"case_id": case_id, "image": f"images/{case_id}.nii.gz"})
    body = {"schema_version": 1, "task": "ricord-1a-lesion-seg", "split": "test", "cases": cases}
    (root / "input" / "cases.json").write_text(json.dumps(body))
    (root / "input" / "task.json").write_text(json.dumps({"id": "ricord-1a-lesion-seg"}))
    return root / "input"


def _exdev(source, target, *args, **kwargs):
    raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(source), None, str(target))


def _used_bytes(folder: Path) -> int:
    usage = os.statvfs(folder)
    return (usage.f_blocks - usage.f_bfree) * usage.f_frsize


def time_stage(inputs, scratch: Path, mode: str) -> tuple[float, int, str]:
    """(seconds, bytes added to the filesystem, staging) of one snapshot in ``mode``."""
    stage = Path(tempfile.mkdtemp(prefix=f"stage-{mode.replace(' ', '-')}-", dir=scratch))
    os.sync()
    used = _used_bytes(scratch)
    started = time.perf_counter()
    if mode == "link only":
        (stage / "input" / "images").mkdir(parents=True)
        for case in inputs.cases:
            os.link(inputs.directory / case.image, stage / "input" / case.image)
        staging = "hardlink"
    elif mode == "copy":
        with mock.patch("os.link", _exdev):
            staging = stage_inputs(inputs, stage / "input").staging
    else:
        staging = stage_inputs(inputs, stage / "input").staging
    elapsed = time.perf_counter() - started
    os.sync()
    added = _used_bytes(scratch) - used
    remove_staging(stage)
    return elapsed, added, staging


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--mb", type=int, default=60, help="size of each image in MiB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: the temp folder)")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bench-snapshot-", dir=args.dir))
    try:
        started = time.perf_counter()
        inputs = read_inputs(write_inputs(scratch / "prepared", files=args.files, mb=args.mb))
        total_mb = args.files * args.mb
        print(
            f"{args.files} images x {args.mb} MiB = {total_mb} MiB written in "
            f"{time.perf_counter() - started:.1f} s under {scratch}"
        )
        modes = ("hardlink", "copy", "link only")
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        added: dict[str, list[int]] = {mode: [] for mode in modes}
        for _ in range(args.runs):
            for mode in modes:
                elapsed, grown, staging = time_stage(inputs, scratch, mode)
                expected = "copy" if mode == "copy" else "hardlink"
                if staging != expected:
                    raise RuntimeError(f"{mode}: the snapshot was staged as {staging!r}, not {expected!r}")
                times[mode].append(elapsed)
                added[mode].append(grown)
        for mode in modes:
            median = statistics.median(times[mode])
            print(
                f"{mode:<10} median {median:7.3f} s  ({total_mb / median:8.0f} MiB/s)  "
                f"min {min(times[mode]):7.3f} s  max {max(times[mode]):7.3f} s  "
                f"disk +{statistics.median(added[mode]) / 2**20:7.1f} MiB  n={args.runs}"
            )
        ratio = statistics.median(times["copy"]) / statistics.median(times["hardlink"])
        print(f"ratio copy/hardlink: {ratio:.2f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
