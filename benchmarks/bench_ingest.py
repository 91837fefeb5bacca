"""Ingest throughput on a full-size synthetic CT collection (512x512, 220 slices per series).

Measures, in one run (wall time; the machine is shared, so each figure is the median of
``--pairs`` paired runs, the runs of one pair back to back in alternating order):

- header indexing (files/s), warm page cache: :func:`bench.data.dicom.scan_headers` (one
  process) against the peer a user writes, ``pydicom.dcmread(path, stop_before_pixels=True)``
  over the same files (bare, and reading the index's values through the Dataset API), and the
  floor: ``os.stat`` plus one read of the head bytes :func:`~bench.data.headers.read_header`
  takes (:data:`~bench.data.headers.HEAD_BYTES`) of every file, which no header reader can beat;
- the same on a large tree (the collection hard-linked ``--copies`` times, so its headers are
  all read again and its copies skipped as duplicate SOPInstanceUIDs): one process against two
  (a spawned pool, its start-up included; both timed inside a fresh interpreter, as the CLI
  runs them), and the same on a cold page cache (the collection's pages dropped with
  ``posix_fadvise(DONTNEED)``, this collection only). Each figure also in files per CPU
  second (this process and its pool's workers): on a shared machine the wall time measures
  the other jobs as much as ours, and a second process adds little when the cores are busy;
- polygon rasterization (annotated slices/s): :func:`bench.data.mdai.reader_masks` on the 1a
  cases against an independent peer, ``matplotlib.path.Path.contains_points`` on the pixel
  centres of each polygon's bounding box; the masks (union over every group drawn) must agree;
- the whole ``index_download`` (files/s end to end: annotations, clinical sheets, geometry
  checks included), from scratch and again with the header index it wrote, and a scan that
  reuses the index (what ``splits verify`` and ``prepare`` do); one full CT volume load, for scale.

Run: ``python -m benchmarks.bench_ingest [--keep DIR] [--pairs 5] [--copies 8]`` (synthesizes
~500 MB into a temporary folder unless ``--keep`` names one, which is reused when it exists).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from matplotlib.path import Path as MplPath

from bench.data.dicom import scan_headers
from bench.data.headers import HEAD_BYTES, HEADER_KEYWORDS, candidate_files
from bench.data.mdai import AREA_MODES, polygon_label_names, read_exports, reader_masks
from bench.data.protocol import group_roles
from bench.data.ricord import case_instances, index_download, load_case_image
from bench.data.synth import ANNOTATIONS_1A, ANNOTATIONS_1C, synthesize
from bench.tasks import RICORD_PROTOCOL


def _files(root: Path) -> list[str]:
    return [os.path.join(root, rel) for rel, _, _ in candidate_files(root)]


def _floor(root: Path) -> int:
    """stat + one read of the head of every candidate file: the I/O any header reader does."""
    files = _files(root)
    for path in files:
        os.stat(path)
        with open(path, "rb", buffering=0) as handle:
            handle.read(HEAD_BYTES)
    return len(files)


def _peer_headers(root: Path, *, fields: bool) -> int:
    """Bare ``dcmread(stop_before_pixels=True)``; with ``fields``, also read the same values
    through pydicom's attribute API, as a straightforward indexer would."""
    files = _files(root)
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if fields:
            [ds.get(name) for name in HEADER_KEYWORDS]
    return len(files)


def _ours(root: Path, workers: int = 1, *, reuse_index: bool = False) -> int:
    scan = scan_headers(root, workers=workers, reuse_index=reuse_index)
    return len(scan.instances) + len(scan.skipped)


_CHILD = """
import json, os, sys, time
from bench.data.dicom import scan_headers
start, t = time.perf_counter(), os.times()
scan = scan_headers(sys.argv[1], workers=int(sys.argv[2]), reuse_index=False)
wall, u = time.perf_counter() - start, os.times()
cpu = sum(getattr(u, k) - getattr(t, k) for k in ("user", "system", "children_user", "children_system"))
print(json.dumps([len(scan.instances) + len(scan.skipped), wall, cpu]))
"""


def _ours_fresh(root: Path, workers: int) -> tuple[int, float, float]:
    """(files, wall s, CPU s) of :func:`_ours` in a fresh interpreter, timed there, as
    ``bench data index --workers N`` runs it: spawned pool workers import the parent's main
    module, which here would be this benchmark with matplotlib and pandas, not the CLI."""
    out = subprocess.run([sys.executable, "-c", _CHILD, str(root), str(workers)], check=True,
                         capture_output=True, text=True).stdout
    n, wall, cpu = json.loads(out.strip().splitlines()[-1])
    return n, wall, cpu


def _link_copies(root: Path, target: Path, copies: int) -> None:
    """``copies`` hard-linked copies of the collection's DICOM files under ``target``."""
    for rel, _, _ in candidate_files(root):
        for k in range(copies):
            path = target / f"copy-{k}" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            os.link(root / rel, path)


def _drop_cache(root: Path) -> None:
    """Evict this collection's pages from the page cache (its files only, nothing else)."""
    for path in _files(root):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _cpu_s() -> float:
    """CPU seconds of this process and of its reaped children (a pool's workers, once shut down)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _paired(runs: dict, pairs: int, *, before=None) -> dict[str, dict[str, list[float]]]:
    """files per wall second and per CPU second of each named run, ``pairs`` times, alternating
    the order within each pair. A run returns the files it read, or (files, wall s, CPU s)."""
    rates: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in runs}
    names = list(runs)
    for k in range(pairs):
        for name in names if k % 2 == 0 else names[::-1]:
            if before is not None:
                before()
            start, cpu = time.perf_counter(), _cpu_s()
            n = runs[name]()
            wall, cpu = time.perf_counter() - start, _cpu_s() - cpu
            if isinstance(n, tuple):  # a run timed where it ran
                n, wall, cpu = n
            rates[name]["wall"].append(n / wall)
            rates[name]["cpu"].append(n / max(cpu, 1e-9))
    return rates


def _ratio(rates, top: str, bottom: str, kind: str = "wall") -> float:
    """Median over the pairs of the per-pair throughput ratio."""
    return statistics.median(a / b for a, b in zip(rates[top][kind], rates[bottom][kind], strict=True))


def _print_rates(title: str, rates, labels: dict[str, str]) -> None:
    print(f"\n{title}")
    print(f"  {'':<50} {'files/s':>8} {'(range)':>13} {'files/CPU-s':>12}")
    for name, label in labels.items():
        wall, cpu = rates[name]["wall"], rates[name]["cpu"]
        print(f"  {label:<50} {statistics.median(wall):8.0f} {f'({min(wall):.0f}-{max(wall):.0f})':>13} "
              f"{statistics.median(cpu):12.0f}")


def header_benchmarks(root: Path, pairs: int, copies: int) -> None:
    n = len(candidate_files(root))
    print(f"{os.cpu_count()} CPUs; files/CPU-s counts this process and its pool workers")
    rates = _paired({"floor": lambda: _floor(root), "bare": lambda: _peer_headers(root, fields=False),
                     "api": lambda: _peer_headers(root, fields=True), "ours": lambda: _ours(root)}, pairs)
    _print_rates(f"header indexing, {n} files, warm page cache, medians of {pairs} paired runs", rates, {
        "floor": f"floor: stat + read {HEAD_BYTES // 1024} KiB per file",
        "bare": "peer: dcmread(stop_before_pixels=True)",
        "api": f"peer: dcmread + {len(HEADER_KEYWORDS)} values via the API",
        "ours": "bench scan_headers, 1 process"})
    print(f"  ratio bench/peer (wall): {_ratio(rates, 'ours', 'bare'):.2f} (bare), "
          f"{_ratio(rates, 'ours', 'api'):.2f} (API); floor/bench: {_ratio(rates, 'floor', 'ours'):.1f}; "
          f"bench/peer (CPU): {_ratio(rates, 'ours', 'bare', 'cpu'):.2f} (bare)")

    with tempfile.TemporaryDirectory(prefix="bench-ingest-links-", dir=root.parent) as tmp:
        large = Path(tmp)
        _link_copies(root, large, copies)
        runs = {"bare": lambda: _peer_headers(large, fields=False), "one": lambda: _ours_fresh(large, 1),
                "two": lambda: _ours_fresh(large, 2)}
        rates = _paired(runs, pairs)
        labels = {"bare": "peer: dcmread(stop_before_pixels=True)", "one": "bench scan_headers, 1 process",
                  "two": "bench scan_headers, 2 processes (pool start-up in)"}
        _print_rates(f"large tree: {n * copies} files ({copies} hard-linked copies), warm page cache", rates,
                     labels)
        print(f"  ratio bench/peer (wall): {_ratio(rates, 'one', 'bare'):.2f} (1 process), "
              f"{_ratio(rates, 'two', 'bare'):.2f} (2 processes); 2 vs 1 process: "
              f"{_ratio(rates, 'two', 'one'):.2f}")
        cold_pairs = max(1, pairs // 2)
        cold = _paired(runs, cold_pairs, before=lambda: _drop_cache(root))
        _print_rates(f"large tree, cold page cache (dropped before each run), medians of {cold_pairs}", cold,
                     labels)
        print(f"  ratio bench/peer (wall): {_ratio(cold, 'one', 'bare'):.2f} (1 process), "
              f"{_ratio(cold, 'two', 'bare'):.2f} (2 processes)")


def _peer_rasterize(export, sop_uids, shape_yx) -> np.ndarray:
    """The polygons ``reader_masks`` draws (area labels of reader and adjudicator groups), their
    union drawn by matplotlib point-in-polygon on pixel centres."""
    index = {uid: k for k, uid in enumerate(sop_uids)}
    mask = np.zeros((len(sop_uids), *shape_yx), dtype=bool)
    table = export.annotations
    roles = group_roles(export.labels, RICORD_PROTOCOL)
    drawing = {group for group, role in roles.items() if role in ("reader", "adjudicator")}
    rows = table[table.sop_uid.isin(index) & table.vertices.notna() & table.annotation_mode.isin(AREA_MODES)
                 & table.label_name.isin(polygon_label_names(export)) & table.group_id.isin(drawing)]
    for row in rows.itertuples(index=False):
        vertices = row.vertices
        x0, y0 = np.floor(vertices.min(axis=0)).astype(int).clip(0)
        x1, y1 = np.ceil(vertices.max(axis=0)).astype(int)
        x1, y1 = min(x1, shape_yx[1] - 1), min(y1, shape_yx[0] - 1)
        ys, xs = np.mgrid[y0 : y1 + 1, x0 : x1 + 1]
        inside = MplPath(vertices).contains_points(np.column_stack([xs.ravel(), ys.ravel()]))
        mask[index[row.sop_uid], ys.ravel()[inside], xs.ravel()[inside]] = True
    return mask


def _timed(function, *args, **kwargs):
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - start


def run(root: Path, *, pairs: int, copies: int) -> None:
    if not root.exists():
        print(f"synthesizing the full-size collection into {root} ...")
        report, seconds = _timed(synthesize, root, seed=2021, size="full")
        print(f"  {report.n_dicom_files} DICOM files in {seconds:.1f} s")
    annotations = [root / "annotations" / ANNOTATIONS_1A, root / "annotations" / ANNOTATIONS_1C]
    print(f"load average at the start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    header_benchmarks(root, pairs, copies)

    report = index_download(root, annotations=annotations)
    n_files = report.counts["files_indexed"] + report.counts["files_skipped"]

    def index(reuse: bool) -> int:
        index_download(root, annotations=annotations, reuse_index=reuse)
        return n_files

    rates = _paired({"scratch": lambda: index(False), "reuse": lambda: index(True),
                     "scan": lambda: _ours(root, reuse_index=True)}, pairs)
    title = f"index_download end to end ({len(report.manifest)} cases, {n_files} files) and a later scan"
    _print_rates(title, rates, {"scratch": "index_download, every header read",
                         "reuse": "index_download again, header index reused",
                         "scan": "scan_headers with the index (verify, prepare)"})

    export = read_exports(annotations)
    cases = report.manifest[report.manifest.collection == "MIDRC-RICORD-1A"]
    slices = ours_total = peer_total = 0
    agree = True
    for _, row in cases.iterrows():
        sops = list(case_instances(root, row).sop_uid)
        shape = (int(row.rows), int(row.cols))
        masks, seconds = _timed(reader_masks, export, sops, shape, series_uid=row.series_uid)
        ours_total += seconds
        # every group's mask, readers and adjudicators: {"reader": {group: mask}, "adjudicator": ...}
        union = np.any(np.stack([mask for role in masks.values() for mask in role.values()]), axis=0)
        peer, seconds = _timed(_peer_rasterize, export, sops, shape)
        peer_total += seconds
        agree &= bool(np.array_equal(union, peer))
        drawn = export.annotations[export.annotations.sop_uid.isin(set(sops))]
        slices += drawn.groupby(["reader", "sop_uid"]).ngroups
    print(
        f"\npolygon rasterization ({slices} annotated reader-slices, {len(cases)} cases of 512x512x"
        f"{int(cases.n_slices.iloc[0])})"
    )
    print(f"  bench (skimage.draw.polygon)   : {slices / ours_total:8.1f} slices/s")
    print(f"  peer (matplotlib contains_points): {slices / peer_total:8.1f} slices/s")
    ratio = peer_total / ours_total
    print(f"  ratio bench/peer throughput: {ratio:.2f}; masks identical: {agree}")

    row = cases.iloc[0]
    volume, seconds = _timed(load_case_image, root, row)
    print(
        f"\nload_case_image: {volume.hu.shape} {volume.hu.dtype} volume in {seconds:.2f} s "
        f"({volume.hu.shape[0] / seconds:.1f} slices/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="synthesize into (or reuse) this folder")
    parser.add_argument("--pairs", type=int, default=5, help="paired runs per header figure (medians)")
    parser.add_argument("--copies", type=int, default=8, help="hard-linked copies in the large tree")
    args = parser.parse_args()
    if args.keep:
        run(args.keep, pairs=args.pairs, copies=args.copies)
        return
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        run(Path(tmp) / "ricord-full", pairs=args.pairs, copies=args.copies)


if __name__ == "__main__":
    main()
