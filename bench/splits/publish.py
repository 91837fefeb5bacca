"""Publish a split before its images are fingerprinted; complete it later without a new hash.

The canonical TCIA split must be citable today, from what is public: the MD.ai export and the
study -> patient mapping of the clinical sheet. Neither holds a pixel, so:

- :func:`pin_from_export` writes ``tasks/<task>/splits/<name>.json`` whose sha256 (the cited
  hash) covers the strategy, the assignment of every case (case id, patient, study, split,
  strata), each case's annotation fingerprint, the export's file sha256 and the list of
  annotated studies left out with their reasons. ``series_uid`` and the pixel fingerprint are
  null.
- :func:`complete_split` reads a download's manifest and DICOM files and writes
  ``<name>.lock.json`` in the user's tasks folder (also for a built-in split; see
  :func:`bench.splits.pinned.lock_file`): each case's series and pixel fingerprint, bound to the
  split's sha256 and carrying its own. The split file is not touched, so the cited hash stays; reading the
  split applies the lock (:func:`bench.splits.pinned.read_split`), and ``verify`` checks the
  pixels against it. Before the lock exists ``verify`` checks the annotations only and says so.

The split file re-pins byte for byte from the same export and mapping (the procedure has no
random stream; :mod:`bench.splits.assign`).
"""

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from bench.data.export_cases import export_cases
from bench.data.mdai import annotation_files, read_annotation_records
from bench.errors import SplitError
from bench.io import SCHEMA_VERSION, sha256_json, write_json
from bench.splits.assign import assign_splits, strategy_record, task_cases
from bench.splits.fingerprints import annotations_fingerprint
from bench.splits.pin import case_fingerprints, file_sha256
from bench.splits.pinned import (
    PinnedSplit,
    from_document,
    load_split,
    lock_path,
    pinned_split_target,
    read_split,
    split_path,
)
from bench.tasks import TaskSpec
from bench.trees import claim_files, record_files

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


def pin_from_export(spec: TaskSpec, *, name: str, annotations: Iterable[str | os.PathLike],
                    clinical: Iterable[str | os.PathLike], directory: Path | None = None) -> PinnedSplit:
    """Assign the task's cases from the export alone and write the split file (no pixel hashes).

    Parameters
    ----------
    spec : TaskSpec
        A task of one collection with an annotation export (1c; 1a for its labelled studies).
    annotations : paths
        The collection's MD.ai export JSON (files or folders).
    clinical : paths
        Sheets mapping StudyInstanceUID -> ``Anon MRN`` (the collection's clinical xlsx, or the
        ``_v3.csv`` flattening of the 1c export).

    Raises
    ------
    SplitError
        A task over several collections (1b has no export: its cases are only known from the
        images), or no case.
    """
    if len(spec.collections) != 1:
        raise SplitError(f"task {spec.id} spans {spec.collections}; a split can be pinned from an annotation "
                         "export only for one collection that has one (1b has no export, so its cases are "
                         "known only from the images: pin it with --manifest and --root).")
    files = annotation_files(list(annotations))
    if not files:
        raise SplitError(f"task {spec.id}: no MD.ai export given; pass it with --annotations.")
    found = export_cases(files, list(clinical), collection=spec.collections[0], protocol=spec.reading)
    source = ", ".join(str(f) for f in files)
    cases = task_cases(found.cases, spec, source=source)
    assigned = assign_splits(cases, spec.split)
    records = read_annotation_records(files)
    rows = []
    for case, assignment in zip(cases.to_dict("records"), assigned.itertuples(index=False, name=None),
                                strict=True):
        case_id, _, split, *strata = assignment
        rows.append({
            "case_id": case_id, "patient_id": str(case["patient_id"]), "collection": str(case["collection"]),
            "study_uid": str(case["study_uid"]), "series_uid": None, "split": split,
            "strata": dict(zip(spec.split.stratify, strata, strict=True)),
            "fingerprint": {"annotations": annotations_fingerprint(records.get(str(case["study_uid"]), [])),
                            "case": None, "images": None},
        })
    document = {
        "schema_version": SCHEMA_VERSION, "task": spec.id, "name": name,
        "strategy": strategy_record(spec.split),
        "manifest_sha256": None,
        "pinned_from": {
            "annotations": [{"file": Path(f).name, "sha256": file_sha256(f)} for f in files],
            "reading_protocol": spec.reading.sha256,
            "excluded": [{"study_uid": uid, "reason": reason} for uid, reason in found.excluded],
        },
        "cases": rows,
    }
    document["sha256"] = sha256_json(document)
    path = pinned_split_target(spec.id, name, directory=directory)
    claim_files([path], option="--name")
    write_json(path, document)
    record_files([path])
    log.info("pinned %s from the export: %d cases, sha256 %s (pixels pending)", path, len(rows),
             document["sha256"])
    return from_document(document, path)


def complete_split(spec: TaskSpec, *, name: str, manifest: str | os.PathLike, root: str | os.PathLike,
                   annotations: Iterable[str | os.PathLike] = (), directory: Path | None = None,
                   progress: Progress | None = None, workers: int | None = None,
                   scheduler: str | None = None) -> PinnedSplit:
    """Write ``<name>.lock.json`` from a download: every case's series and pixel fingerprint.

    Each case is found in the manifest by StudyInstanceUID (its case id and patient must match
    the split's) and its series is the manifest's; the annotation fingerprints of the given
    exports must equal the pinned ones (the same export). Returns the split with the lock applied.

    Raises
    ------
    SplitError
        A case not in the manifest or with another id or patient there, annotations that differ
        from the pinned ones, or a case's series missing under ``root``.
    """
    from bench.data.manifest import read_manifest

    path = split_path(spec.id, name, directory=directory)
    split = read_split(path)
    load_split(spec.id, name, directory=directory)  # the task's strategy still matches
    manifest = Path(manifest)
    table = read_manifest(manifest).set_index("study_uid")
    problems = []
    for case in split.records:
        if case.study_uid not in table.index:
            problems.append(f"{case.case_id}: study {case.study_uid} is not in the manifest")
        elif (table.loc[case.study_uid, "case_id"], table.loc[case.study_uid, "patient_id"]) != (
                case.case_id, case.patient_id):
            found = table.loc[case.study_uid]
            problems.append(f"{case.case_id}: the manifest has case {found['case_id']} of patient "
                            f"{found['patient_id']} for study {case.study_uid}")
    if problems:
        raise SplitError(f"{manifest}: {len(problems)} case(s) of split {spec.id}/{name} do not match the "
                         f"manifest ({'; '.join(problems[:3])}). Index the complete download with "
                         f"`bench data index ... --task {spec.id}` and pass that manifest.")
    files = annotation_files(list(annotations), root=Path(root))
    records = read_annotation_records(files)
    differ = [c.case_id for c in split.records
              if annotations_fingerprint(records.get(c.study_uid, [])) != c.fingerprint.annotations]
    if differ:
        raise SplitError(f"{len(differ)} case(s) of {spec.id}/{name} have other annotation records in "
                         f"{[str(f) for f in files] or 'no export'} than the pinned ones "
                         f"(e.g. {differ[:3]}). "
                         "Pass the export the split was pinned from with --annotations.")
    rows = table.loc[[c.study_uid for c in split.records]].reset_index()
    prints = case_fingerprints(rows[["case_id", "study_uid", "series_uid", "series_dir"]], root=root,
                               annotations=files, progress=progress, workers=workers, scheduler=scheduler)
    absent = [case_id for case_id, fingerprint in prints.items() if fingerprint is None]
    if absent:
        raise SplitError(f"{root}: {len(absent)} case(s) have no DICOM files there (e.g. {absent[:3]}). "
                         "Complete the split from the download the manifest was indexed from.")
    lock = {
        "schema_version": SCHEMA_VERSION, "task": spec.id, "name": name, "split_sha256": split.sha256,
        "manifest_sha256": file_sha256(manifest),
        "cases": [{"case_id": str(row.case_id), "series_uid": str(row.series_uid),
                   "images": prints[str(row.case_id)].images} for row in rows.itertuples(index=False)],
    }
    lock["sha256"] = sha256_json(lock)
    target = lock_path(pinned_split_target(spec.id, name, directory=directory))
    claim_files([target], option="--name")
    write_json(target, lock)
    record_files([target])
    log.info("completed %s with %s: %d cases, lock sha256 %s", path, target, len(rows), lock["sha256"])
    return read_split(path, lock=target)
