"""The case gallery's cost per case on full-size CT, against the floor of reading its volumes.

Writes ``--cases`` chest CT cases of 512 x 512 x ``--slices`` int16 voxels (a noisy body with
lungs, as prepare writes them: .nii.gz through :mod:`bench.prepare.nifti`), each with a reference
mask and ``--entries`` prediction masks, then times per case, alternating:

- ``gallery``: what the build does for one case of a shown board
  (:func:`bench.leaderboard.gallery.write_gallery`: read the image and the reference, verify the
  reference's content hash, pick the slice, and per entry read its prediction and draw one PNG);
- ``read only``: :func:`bench.prepare.nifti.read_volume` of the same image, reference and
  prediction files, the floor of any gallery that reads the trees the runs recorded.

Usage: python -m benchmarks.bench_gallery [--cases 6] [--slices 300] [--entries 3] [--runs 3]
"""

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.leaderboard.gallery import Prepared, write_gallery
from bench.prepare import nifti
from bench.prepare.reference import Reference
from bench.runners.record import CaseStatus, read_run
from bench.store import EntryId
from bench.tasks import load_task

TASK = "ricord-1a-lesion-seg"


def _volume(rng, slices: int) -> tuple[np.ndarray, np.ndarray]:
    """A (z, y, x) CT in HU with two lungs, and a lesion mask inside one of them."""
    z, y, x = np.ogrid[:slices, :512, :512]
    body = ((y - 256) / 200) ** 2 + ((x - 256) / 240) ** 2 < 1
    lungs = ((((y - 240) / 120) ** 2 + ((x - 160) / 70) ** 2 < 1)
             | (((y - 240) / 120) ** 2 + ((x - 352) / 70) ** 2 < 1))
    hu = np.where(body, 40, -1000) + np.where(lungs, -860, 0) + rng.normal(0, 20, (slices, 512, 512))
    lesion = (((z - slices / 2) / (slices / 6)) ** 2 + ((y - 250) / 30) ** 2 + ((x - 170) / 25) ** 2) < 1
    return hu.astype(np.int16), lesion


def write_cases(root: Path, *, cases: int, slices: int, entries: int):
    """The prepared split (input images, reference masks) and ``entries`` run folders with predictions."""
    rng = np.random.default_rng(0)
    affine = np.diag([2.5, 0.7, 0.7, 1.0])
    rows, images = [], {}
    runs = {f"entry-{e}": root / "runs" / f"entry-{e}" for e in range(entries)}
    for index in range(cases):
        case_id = f"case-{index:04d}"
        hu, lesion = _volume(rng, slices)
        image = nifti.ct_image(hu, affine)
        images[case_id] = root / "input" / "images" / f"{case_id}.nii.gz"
        images[case_id].parent.mkdir(parents=True, exist_ok=True)
        nifti.save(image, images[case_id])
        mask = nifti.mask_image(lesion, image)
        (root / "reference" / "masks").mkdir(parents=True, exist_ok=True)
        nifti.save(mask, root / "reference" / "masks" / f"{case_id}.nii.gz")
        rows.append({"case_id": case_id, "mask_sha256": nifti.mask_sha256(np.asarray(mask.dataobj))})
        for shift, folder in enumerate(runs.values()):
            predicted = np.roll(lesion, 4 * (shift + 1), axis=2)
            (folder / "outputs" / "masks").mkdir(parents=True, exist_ok=True)
            nifti.save(nifti.mask_image(predicted, image), folder / "outputs" / "masks" / f"{case_id}.nii.gz")
    for name, folder in runs.items():
        _run_json(folder, [CaseStatus(row["case_id"], "ok") for row in rows], name)
    reference = Reference(root / "reference", TASK, "", "bench", "validation", "", "", (), pd.DataFrame(rows))
    return Prepared(reference, images), {name: read_run(folder) for name, folder in runs.items()}


def _run_json(folder: Path, cases: list[CaseStatus], name: str) -> None:
    body = {"schema_version": 1, "task": TASK, "submission": {"name": name, "team": "bench"},
            "cases": [{"case_id": c.case_id, "status": c.status, "reason": ""} for c in cases],
            "runner": "process", "isolated": False, "isolation": "", "image": None, "command": None,
            "limits": {}, "started_at": "", "ended_at": "", "duration_s": 0.0, "exit_code": 0,
            "timed_out": False, "oom_killed": False, "error": None, "inputs_sha256": None,
            "task_sha256": "", "rejected": [], "rejected_more": 0}
    (folder / "run.json").write_text(json.dumps(body))


class _Entry:
    """The two things write_gallery reads of a board entry: its page and its stored run."""

    def __init__(self, name: str, case_ids: list[str]):
        self.page = f"{EntryId('bench', name).key}.html"
        self.run = type("Run", (), {"submission": EntryId("bench", name).key,
                                    "per_case": pd.DataFrame({"case_id": case_ids, "status": "ok",
                                                              "dice": 0.8})})()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--entries", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bench-gallery-"))
    try:
        started = time.perf_counter()
        prepared, records = write_cases(scratch / "tree", cases=args.cases, slices=args.slices,
                                        entries=args.entries)
        print(f"{args.cases} cases of 512 x 512 x {args.slices} with {args.entries} predictions each, "
              f"written in {time.perf_counter() - started:.1f} s")
        spec = load_task(TASK)
        board = type("Board", (), {"spec": spec})()
        members = [_Entry(name, prepared.reference.case_ids) for name in records]
        outputs = {entry.run.submission: records[name] for entry, name in zip(members, records, strict=True)}
        files = [path for case_id in prepared.reference.case_ids for path in
                 [prepared.images[case_id], prepared.reference.mask_path(case_id),
                  *(record.mask_path(case_id) for record in records.values())]]
        times: dict[str, list[float]] = {"gallery": [], "read only": []}
        for run in range(args.runs):
            started = time.perf_counter()
            write_gallery(board, scratch / f"site-{run}", prepared, members, outputs)
            times["gallery"].append((time.perf_counter() - started) / args.cases)
            started = time.perf_counter()
            for path in files:
                nifti.read_volume(path)
            times["read only"].append((time.perf_counter() - started) / args.cases)
        for mode, values in times.items():
            print(f"{mode:<10} median {statistics.median(values):6.3f} s per case "
                  f"(min {min(values):6.3f}, max {max(values):6.3f}, n={args.runs})")
        pngs = list((scratch / "site-0").rglob("*.png"))
        size = sum(p.stat().st_size for p in pngs) / len(pngs) / 1024
        print(f"{len(pngs)} thumbnails, {size:.0f} KiB each")
        ratio = statistics.median(times["gallery"]) / statistics.median(times["read only"])
        print(f"ratio gallery/read only: {ratio:.2f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
