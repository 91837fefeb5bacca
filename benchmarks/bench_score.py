"""`bench score` per case on prepared NIfTI files, against the user's script and the decode floor.

Run from the repository root::

    python -m benchmarks.bench_score                     # 3 full-size cases, ~3-4 min (medpy)
    python -m benchmarks.bench_score --cases 2 --workdir /tmp/score-cases --no-medpy

Each case is a pair of full-size 512 x 512 x 200 uint8 masks written as .nii.gz (the reference
by the harness's writer, :func:`bench.prepare.nifti.save`; the prediction by plain nibabel, as a
participant writes it), a few COVID-like lesions each. Three things are timed on the same files,
in CPU seconds of this process:

ours
    The per-case task `bench score` hands to its workers,
    :func:`bench.scoring.segmentation.score_segmentation_case`: read both files, check the
    reference against its content hash, validate the prediction, score the whole suite.
floor
    Decompressing both files in one zlib call each (``zlib.decompress(raw, 31)``): nothing that
    scores a case can be cheaper.
peer
    The script a user writes without the harness: ``nibabel.load`` both files, then medpy 0.5.2
    ``dc``, ``hd95`` and ``assd`` (medpy's ``hd95`` is our ``hd95_pooled``; values compared).

Ours and the floor are timed in paired runs (ours, floor, ours, floor, ...) and reported as the
median of the per-pair ratios, because the machine is shared; medpy runs once per case.
Targets (issue 15): at most 0.5 s CPU per case, within 5x of the floor, at least 100x medpy.
"""

import argparse
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

from bench.prepare import nifti
from bench.scoring.segmentation import case_item, score_segmentation_case
from bench.tasks import load_task

SHAPE = (512, 512, 200)
"""NIfTI (i, j, k) = (x, y, z) shape of a full-size chest CT."""
SPACING_MM = (0.75, 0.75, 1.5)


def _ellipsoid(mask: np.ndarray, center, radii) -> None:
    bounds = zip(center, radii, mask.shape, strict=True)
    box = tuple(slice(max(0, c - r), min(n, c + r + 1)) for c, r, n in bounds)
    grids = np.ogrid[box]
    mask[box] |= sum(((g - c) / r) ** 2 for g, c, r in zip(grids, center, radii, strict=True)) <= 1.0


def make_case(directory: Path, index: int, *, seed: int = 20240601) -> tuple[Path, Path, str]:
    """Write (or reuse) case ``index``; return (prediction, reference, reference content sha256)."""
    ref_path, pred_path = directory / f"ref-{index:03d}.nii.gz", directory / f"pred-{index:03d}.nii.gz"
    affine = np.diag([-SPACING_MM[0], -SPACING_MM[1], SPACING_MM[2], 1.0])
    if not (ref_path.exists() and pred_path.exists()):
        rng = np.random.default_rng([seed, index])
        ref, pred = np.zeros(SHAPE, dtype=bool), np.zeros(SHAPE, dtype=bool)
        for _ in range(int(rng.integers(4, 10))):
            center = rng.integers((110, 130, 30), (402, 382, 170))
            radii = rng.integers((10, 10, 5), (55, 55, 30))
            _ellipsoid(ref, center, radii)
            _ellipsoid(pred, center + rng.integers(-4, 5, 3), np.maximum(radii + rng.integers(-5, 6, 3), 2))
        _ellipsoid(pred, rng.integers((110, 130, 30), (402, 382, 170)), (8, 8, 4))
        like = nib.Nifti1Image(np.zeros(SHAPE, dtype=np.uint8), affine)
        nifti.save(nifti.mask_image(ref.transpose(2, 1, 0), like), ref_path)
        nib.save(nib.Nifti1Image(pred.astype(np.uint8), affine), pred_path)
    return pred_path, ref_path, nifti.mask_sha256(nifti.read_volume(ref_path)[0])


def _cpu(call: Callable[[], object]) -> tuple[float, object]:
    start = time.process_time()
    value = call()
    return time.process_time() - start, value


def decode_floor(pred: Path, ref: Path) -> int:
    """Both files decompressed in one zlib call each; returns the decoded bytes (so nothing is skipped)."""
    return sum(len(zlib.decompress(path.read_bytes(), 31)) for path in (pred, ref))


def medpy_script(pred: Path, ref: Path) -> dict[str, float]:
    """What a user writes: nibabel load, medpy dc + hd95 + assd with the header's spacing."""
    from medpy.metric import binary

    ref_image = nib.load(ref)
    r = np.asanyarray(ref_image.dataobj)
    p = np.asanyarray(nib.load(pred).dataobj)
    spacing = ref_image.header.get_zooms()[:3]
    return {"dice": binary.dc(p, r), "hd95_pooled": binary.hd95(p, r, voxelspacing=spacing),
            "assd": binary.assd(p, r, voxelspacing=spacing)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3, help="full-size cases (default 3)")
    parser.add_argument("--pairs", type=int, default=5, help="paired ours/floor runs per case (default 5)")
    parser.add_argument("--workdir", type=Path, help="where the cases go (reused if present)")
    parser.add_argument("--no-medpy", action="store_true", help="skip the medpy script (~1 min per case)")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-score-"))
    workdir.mkdir(parents=True, exist_ok=True)
    spec = load_task("ricord-1a-lesion-seg")
    print(f"{args.cases} full-size cases {SHAPE} uint8, spacing {SPACING_MM} mm, in {workdir}")
    print(f"{'case':>5} {'ours s':>8} {'floor s':>8} {'ours/floor':>10} {'medpy s':>8} "
          f"{'medpy/ours':>10}  agree")
    ours_all, ratio_all, peer_ratios = [], [], []
    for index in range(args.cases):
        pred, ref, sha = make_case(workdir, index)
        item = case_item(spec, f"case-{index:03d}", ref, pred, "ok", "", reference_sha256=sha)
        ours_s, floor_s = [], []
        for _ in range(args.pairs):
            seconds, result = _cpu(lambda item=item: score_segmentation_case(item))
            ours_s.append(seconds)
            floor_s.append(_cpu(lambda pred=pred, ref=ref: decode_floor(pred, ref))[0])
        if result["status"] != "ok":
            raise RuntimeError(f"case {index} did not score: {result['reason']}")
        ours = statistics.median(ours_s)
        ratio = statistics.median(o / f for o, f in zip(ours_s, floor_s, strict=True))
        ours_all.append(ours)
        ratio_all.append(ratio)
        peer_text, agree = f"{'-':>8} {'-':>10}", "-"
        if not args.no_medpy:
            peer_s, peer = _cpu(lambda pred=pred, ref=ref: medpy_script(pred, ref))
            metrics = result["metrics"]
            agree = str(all(abs(metrics[k] - v) <= 1e-9 * max(abs(v), 1.0) for k, v in peer.items()))
            peer_ratios.append(peer_s / ours)
            peer_text = f"{peer_s:>8.2f} {peer_s / ours:>9.0f}x"
        floor = statistics.median(floor_s)
        print(f"{index:>5} {ours:>8.3f} {floor:>8.3f} {ratio:>9.2f}x {peer_text}  {agree}")
    summary = (f"\nmedian per case: ours {statistics.median(ours_all):.3f} s CPU (target <= 0.5 s), "
               f"{statistics.median(ratio_all):.2f}x the decode floor (target <= 5x)")
    if peer_ratios:
        summary += f", {statistics.median(peer_ratios):.0f}x faster than nibabel + medpy (target >= 100x)"
    print(summary)


if __name__ == "__main__":
    main()
