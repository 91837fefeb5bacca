"""Ingest throughput on a full-size synthetic CT collection (512x512, 220 slices per series).

Measures, in one run:

- header indexing (files/s): :func:`bench.data.dicom.scan_headers` against the bare peer
  loop ``pydicom.dcmread(path, stop_before_pixels=True)`` over the same files;
- polygon rasterization (annotated slices/s): :func:`bench.data.mdai.rasterize_case` on the
  1a cases against an independent peer, ``matplotlib.path.Path.contains_points`` on the
  pixel centres of each polygon's bounding box (their masks must agree);
- the whole ``index_download`` and one full CT volume load, for scale.

Run: ``python -m benchmarks.bench_ingest [--keep DIR]`` (synthesizes ~500 MB into a
temporary folder unless ``--keep`` names one, which is reused when it already exists).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from matplotlib.path import Path as MplPath

from bench.data.dicom import scan_headers
from bench.data.headers import HEADER_KEYWORDS, is_candidate
from bench.data.mdai import read_exports, reader_masks
from bench.data.ricord import case_instances, index_download, load_case_image
from bench.data.synth import ANNOTATIONS_1A, ANNOTATIONS_1C, synthesize

PAIRS = 3
"""Paired runs of the header scan and its peers (medians are reported)."""


def _peer_headers(root: Path, *, fields: bool) -> int:
    """Bare ``dcmread(stop_before_pixels=True)``; with ``fields``, also read the same values
    through pydicom's attribute API, as a straightforward indexer would."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and is_candidate(p.relative_to(root)))
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if fields:
            [ds.get(name) for name in HEADER_KEYWORDS]
    return len(files)


def _peer_rasterize(export, sop_uids, shape_yx) -> np.ndarray:
    """Union over readers, via matplotlib point-in-polygon on pixel centres."""
    index = {uid: k for k, uid in enumerate(sop_uids)}
    mask = np.zeros((len(sop_uids), *shape_yx), dtype=bool)
    rows = export.annotations[export.annotations.sop_uid.isin(index) & export.annotations.vertices.notna()]
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


def run(root: Path) -> None:
    if not root.exists():
        print(f"synthesizing the full-size collection into {root} ...")
        report, seconds = _timed(synthesize, root, seed=2021, size="full")
        print(f"  {report.n_dicom_files} DICOM files in {seconds:.1f} s")
    annotations = [root / "annotations" / ANNOTATIONS_1A, root / "annotations" / ANNOTATIONS_1C]

    # paired runs (peer, peer with values, ours) on a shared machine: medians of per-run throughputs
    bare, api, ours, bare_ratio, api_ratio = [], [], [], [], []
    for _ in range(PAIRS):
        n_bare, bare_s = _timed(_peer_headers, root, fields=False)
        n_api, api_s = _timed(_peer_headers, root, fields=True)
        scan, ours_s = _timed(scan_headers, root)
        n_ours = len(scan.instances) + len(scan.skipped)
        bare.append(n_bare / bare_s)
        api.append(n_api / api_s)
        ours.append(n_ours / ours_s)
        bare_ratio.append(ours[-1] / bare[-1])
        api_ratio.append(ours[-1] / api[-1])
    median = statistics.median
    print(f"\nheader indexing (stop_before_pixels), {n_ours} files, medians of {PAIRS} paired runs")
    print(f"  bench scan_headers              : {median(ours):8.1f} files/s")
    print(f"  peer dcmread, no values read    : {median(bare):8.1f} files/s")
    print(f"  peer dcmread + 26 values via API: {median(api):8.1f} files/s")
    print(f"  ratio bench/peer throughput: {median(bare_ratio):.2f} (bare), {median(api_ratio):.2f} (API)")

    report, index_s = _timed(index_download, root, annotations=annotations)
    print(
        f"\nindex_download: {len(report.manifest)} cases from {report.counts['files_indexed']} files "
        f"in {index_s:.2f} s"
    )

    export = read_exports(annotations)
    cases = report.manifest[report.manifest.collection == "MIDRC-RICORD-1A"]
    slices = ours_total = peer_total = 0
    agree = True
    for _, row in cases.iterrows():
        sops = list(case_instances(root, row).sop_uid)
        shape = (int(row.rows), int(row.cols))
        masks, seconds = _timed(reader_masks, export, sops, shape, series_uid=row.series_uid)
        ours_total += seconds
        union = np.any(np.stack(list(masks.values())), axis=0)
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
        f"\nload_case_image: {volume.hu.shape} float32 volume in {seconds:.2f} s "
        f"({volume.hu.shape[0] / seconds:.1f} slices/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="synthesize into (or reuse) this folder")
    args = parser.parse_args()
    if args.keep:
        run(args.keep)
        return
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        run(Path(tmp) / "ricord-full")


if __name__ == "__main__":
    main()
