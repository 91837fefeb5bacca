"""Pin a split: assign the task's cases, fingerprint their content, write the split file.

The fingerprints (:mod:`bench.splits.fingerprints`) make the file checkable against any copy of
the download (:mod:`bench.splits.verify`); the file is written atomically, byte-identical for
the same manifest, download and task, whatever the number of workers.
"""

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pandas as pd

from bench.data.mdai import annotation_files, read_annotation_records
from bench.errors import SplitError
from bench.io import SCHEMA_VERSION, sha256_json, write_json
from bench.parallel import SCHEDULER_ENV, map_ordered
from bench.splits.assign import assign_splits, strategy_record, task_cases
from bench.splits.fingerprints import (
    EMPTY_ANNOTATIONS,
    CaseFiles,
    Fingerprint,
    annotations_fingerprint,
    default_fingerprint_workers,
    fingerprint_images_item,
    locate_series,
)
from bench.splits.pinned import PinnedSplit, from_document, pinned_split_target
from bench.tasks import TaskSpec
from bench.trees import claim_files, record_files

log = logging.getLogger(__name__)


Progress = Callable[[int, int, str], None]


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (what ``sha256sum`` prints)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def case_fingerprints(cases: pd.DataFrame, *, root: str | os.PathLike,
                      annotations: Iterable[str | os.PathLike] = (), use_series_dir: bool = True,
                      progress: Progress | None = None, workers: int | None = None,
                      scheduler: str | None = None) -> dict[str, Fingerprint | None]:
    """Fingerprint each case (``case_id``, ``study_uid``, ``series_uid`` columns) from a download.

    Series are located in this process (header scan); the pixel hashing then runs one case per
    task through :func:`bench.parallel.map_ordered`, and the annotation hashes are computed here
    from the exports read once. Results are keyed by case_id and do not depend on ``workers``.

    Parameters
    ----------
    workers : int, optional
        Local processes for the pixel hashing. Default (no ``scheduler``, no ``BENCH_SCHEDULER``):
        in this process when the estimated work (file sizes plus 256 KiB per file) is below
        :data:`bench.splits.fingerprints.INLINE_BYTES` (1 GiB), else one process per core
        (:func:`bench.splits.fingerprints.default_fingerprint_workers`).
    scheduler : str, optional
        A dask.distributed scheduler address; its workers must see ``root`` at the same path.

    A case whose series is nowhere under ``root`` maps to None. Raises SplitError when ``root``
    holds none of the series at all (not the download these cases come from).
    """
    root = Path(root)
    records = read_annotation_records(annotation_files(annotations, root=root))
    hints = cases["series_dir"].tolist() if use_series_dir and "series_dir" in cases.columns else []
    located = locate_series(root, cases["series_uid"].astype(str), hint_dirs=hints, progress=progress)
    if not located:
        raise SplitError(f"{root}: none of the {len(cases)} series of these cases is there (read by "
                         "SeriesInstanceUID from the DICOM headers). Pass the root of the RICORD download "
                         "(the folder with the MIDRC-RICORD-* collection folders and metadata.csv).")
    items = [CaseFiles(str(row.case_id), tuple(str(p) for p in located[str(row.series_uid)]))
             for row in cases.itertuples(index=False) if str(row.series_uid) in located]
    if workers is None and scheduler is None and not os.environ.get(SCHEDULER_ENV):
        workers = default_fingerprint_workers(items)

    def report(done: int, total: int, _: str) -> None:
        if progress is not None:
            progress(done, total, "fingerprinting cases")

    images = map_ordered(fingerprint_images_item, items, workers=workers, scheduler=scheduler,
                         progress=report)
    images_of = {item.case_id: fingerprint for item, fingerprint in zip(items, images, strict=True)}
    result: dict[str, Fingerprint | None] = {}
    for row in cases.itertuples(index=False):
        case_id = str(row.case_id)
        result[case_id] = None if case_id not in images_of else Fingerprint(
            images=images_of[case_id],
            annotations=annotations_fingerprint(records.get(str(row.study_uid), [])),
        )
    return result


def pin_split(spec: TaskSpec, manifest: str | os.PathLike, *, root: str | os.PathLike, name: str,
              annotations: Iterable[str | os.PathLike] = (), directory: Path | None = None,
              progress: Progress | None = None, workers: int | None = None,
              scheduler: str | None = None) -> PinnedSplit:
    """Assign, fingerprint and write ``<task>/splits/<name>.json`` in the user's tasks folder;
    return it as loaded.

    Parameters
    ----------
    spec : TaskSpec
        The task; its ``split`` strategy and collections decide the cases and their splits.
    manifest : path
        The manifest CSV that ``bench data index`` wrote for the download at ``root``.
    root : path
        The download (DICOM files are read for the pixel fingerprints).
    name : str
        Name of the pinned split, one per download (``synthetic``, ``tcia``).
    annotations : paths
        MD.ai export files or folders (default: ``root/annotations/*.json`` if present).
    directory : path, optional
        The tasks folder to write into (default: :func:`bench.tasks.user_tasks_dir`; see
        :func:`bench.splits.pinned.pinned_split_target`).
    workers, scheduler : optional
        Where the pixel hashing runs (see :func:`case_fingerprints`; default: in this process
        below 1 GiB of DICOM files, else all cores). The file is byte-identical either way.

    Raises
    ------
    SplitError, ManifestError
        A case's series is not in the download, the annotations do not cover the manifest's
        annotated cases, or the manifest lacks a needed column.
    """
    from bench.data.manifest import read_manifest

    path = pinned_split_target(spec.id, name, directory=directory)
    claim_files([path], option="--name")
    manifest = Path(manifest)
    cases = task_cases(read_manifest(manifest), spec, source=str(manifest))
    assigned = assign_splits(cases, spec.split)
    prints = case_fingerprints(cases, root=root, annotations=annotations, progress=progress,
                               workers=workers, scheduler=scheduler)
    absent = [case_id for case_id, fingerprint in prints.items() if fingerprint is None]
    if absent:
        raise SplitError(f"{root}: {len(absent)} case(s) of manifest {manifest} have no DICOM files there "
                         f"(e.g. {absent[:3]}). Pin with the download the manifest was indexed from.")
    _check_annotation_coverage(cases, prints, manifest)
    rows = []
    assignments = assigned.itertuples(index=False, name=None)
    for case, assignment in zip(cases.to_dict("records"), assignments, strict=True):
        case_id, _, split, *strata = assignment
        rows.append({
            "case_id": case_id,
            "patient_id": str(case["patient_id"]),
            "collection": str(case["collection"]),
            "study_uid": str(case["study_uid"]),
            "series_uid": str(case["series_uid"]),
            "split": split,
            "strata": dict(zip(spec.split.stratify, strata, strict=True)),
            "fingerprint": prints[case_id].as_dict(),
        })
    document = {
        "schema_version": SCHEMA_VERSION,
        "task": spec.id,
        "name": name,
        "strategy": strategy_record(spec.split),
        "manifest_sha256": file_sha256(manifest),
        "cases": rows,
    }
    document["sha256"] = sha256_json(document)
    write_json(path, document)
    record_files([path])
    log.info("pinned %s: %d cases, sha256 %s", path, len(rows), document["sha256"])
    return from_document(document, path)


def _check_annotation_coverage(cases: pd.DataFrame, prints: Mapping[str, Fingerprint],
                               manifest: Path) -> None:
    counted = pd.to_numeric(cases["n_annotations"], errors="coerce").fillna(0) > 0
    uncovered = [case_id for case_id, annotated in zip(cases["case_id"], counted, strict=True)
                 if annotated and prints[case_id].annotations == EMPTY_ANNOTATIONS]
    if uncovered:
        raise SplitError(f"{manifest}: {len(uncovered)} case(s) have annotations in the manifest but none in "
                         f"the given MD.ai exports (e.g. {uncovered[:3]}). Pass the export(s) used for "
                         "`bench data index` with --annotations.")
