"""Wall time of `bench splits pin` / `verify` fingerprinting with 1 and 2 workers, on one download.

Run from the repository root on an indexed download (``bench data synth`` + ``bench data index``)::

    python -m benchmarks.bench_fingerprints --root /tmp/ricord-synth
    python -m benchmarks.bench_fingerprints --root /tmp/ricord-full --repeat 3

It pins ``--task`` (default the segmentation task) into a temporary copy of the task specs (the
built-in tasks folder is never written), then verifies that split against the same download,
each with ``workers=1`` (the former single-process loop, the peer), ``workers=2`` and the
default (in-process below :data:`bench.splits.fingerprints.INLINE_BYTES` of estimated work). One
unmeasured pin first warms the page cache; each figure is the median of ``--repeat`` runs. It
checks that every pin wrote the same bytes and that every verify found all cases ok, and prints
the 1-worker / 2-worker ratio. Then it times the pixel hashing alone (the part that
``map_ordered`` spreads) on the task's series listed ``--replicate`` times, to show where a
pool starts to pay off on larger downloads than the synthetic ones.
"""

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.parallel import map_ordered
from bench.splits.fingerprints import (
    INLINE_BYTES,
    PER_FILE_BYTES,
    CaseFiles,
    fingerprint_images_item,
    locate_series,
)
from bench.splits.pin import pin_split
from bench.splits.verify import verify_split
from bench.tasks import BUILTIN_TASKS, list_tasks, load_task

CONFIGS = (("workers=1", 1), ("workers=2", 2), ("default", None))


def _task_specs(target: Path) -> Path:
    for task_id in list_tasks(BUILTIN_TASKS):
        (target / task_id).mkdir(parents=True)
        shutil.copyfile(BUILTIN_TASKS / task_id / "task.yaml", target / task_id / "task.yaml")
    return target


def _median_s(run, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _pin(spec, manifest: Path, root: Path, tasks: Path, workers: int | None, reference: bytes,
         label: str) -> None:
    pin_split(spec, manifest, root=root, name="bench", directory=tasks, workers=workers)
    if (tasks / spec.id / "splits" / "bench.json").read_bytes() != reference:
        raise SystemExit(f"pin with {label} wrote other bytes than workers=1")


def _verify(split, root: Path, workers: int | None, label: str) -> None:
    report = verify_split(split, root=root, workers=workers)
    if not report.ok:
        raise SystemExit(f"verify with {label} found {report.counts()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="An indexed download.")
    parser.add_argument("--manifest", type=Path, help="Default ROOT/manifest.csv.")
    parser.add_argument("--task", default="ricord-1a-lesion-seg")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--replicate", type=int, default=4, help="Copies of the series list to hash.")
    args = parser.parse_args(argv)
    manifest = args.manifest or args.root / "manifest.csv"
    with tempfile.TemporaryDirectory(prefix="bench-fingerprints-") as scratch:
        tasks = _task_specs(Path(scratch) / "tasks")
        spec = load_task(args.task, directory=tasks)
        path = tasks / args.task / "splits" / "bench.json"
        split = pin_split(spec, manifest, root=args.root, name="bench", directory=tasks, workers=1)
        reference = path.read_bytes()
        print(f"{args.task} on {args.root}: {len(split.records)} cases; in-process default below "
              f"{INLINE_BYTES / 2**30:.0f} GiB of estimated work; median of {args.repeat}")
        figures: dict[tuple[str, str], float] = {}
        for label, workers in CONFIGS:
            figures["pin", label] = _median_s(
                lambda w=workers, k=label: _pin(spec, manifest, args.root, tasks, w, reference, k),
                args.repeat)
            figures["verify", label] = _median_s(
                lambda w=workers, k=label: _verify(split, args.root, w, k), args.repeat)
            print(f"  {label:10s} pin {figures['pin', label]:6.2f} s   "
                  f"verify {figures['verify', label]:6.2f} s")
        for step in ("pin", "verify"):
            ratio = figures[step, "workers=1"] / figures[step, "workers=2"]
            print(f"  {step}: workers=1 / workers=2 = {ratio:.2f}x")
        print("  every pin wrote the same bytes; every verify: all cases ok")
        _hashing_only(split, args.root, args.replicate, args.repeat)


def _hashing_only(split, root: Path, replicate: int, repeat: int) -> None:
    located = locate_series(root, [case.series_uid for case in split.records])
    items = [CaseFiles(case.case_id, tuple(str(p) for p in located[case.series_uid]))
             for case in split.records] * replicate
    files = sum(len(item.paths) for item in items)
    size = sum(Path(path).stat().st_size for item in items for path in item.paths)
    work = size + files * PER_FILE_BYTES
    print(f"  pixel hashing only, series x{replicate}: {len(items)} items, {files} files, "
          f"{size / 2**20:.0f} MiB (estimated work {work / 2**30:.2f} GiB)")
    seconds = {}
    for workers in (1, 2):
        seconds[workers] = _median_s(
            lambda w=workers: map_ordered(fingerprint_images_item, items, workers=w), repeat)
        rate = size / 2**20 / seconds[workers]
        print(f"    workers={workers}: {seconds[workers]:6.2f} s ({rate:.0f} MiB/s)")
    print(f"    workers=1 / workers=2 = {seconds[1] / seconds[2]:.2f}x")


if __name__ == "__main__":
    main()
