"""Pinned, citable splits: assign patients to train / validation / test, fingerprint, pin, load.

A paper cites a split by the sha256 of ``tasks/<task>/splits/<name>.json``; anyone with the
same download must get the same cases with the same content. So the assignment uses no random
number stream (whose algorithm a library upgrade may change) but a documented procedure on
sha256 ranks and exact rational arithmetic, and every case carries a content fingerprint
(:mod:`bench.fingerprints`) that ``bench splits verify`` recomputes from a download.

Procedure ``sha256-greedy/v1`` (see docs/splits.md):

1. The task's cases: manifest rows of the task's collections (segmentation: only cases whose
   series carries annotations; classification: only cases with a label for at least one head).
2. Each patient (``group_by``) gets the stratum (values of the ``stratify`` columns; an empty
   value is its own stratum value) of their first case in case_id order, and a weight: their
   number of cases. All of a patient's cases go to one split.
3. Strata are taken in sorted order of their values; within a stratum, patients in increasing
   order of ``sha256("<seed>:<patient_id>")`` (hex), ties by patient_id.
4. A split's deficit for a patient of weight ``w`` is ``f_s * (n + w) - n_s``: its target share
   minus what it holds, counted after the patient (``n`` cases placed so far, ``n_s`` of them
   in split ``s``, ``f_s`` the target fraction as an exact decimal fraction, no floating point).
   The candidates are the splits with a positive deficit within the patient's stratum (there
   is always one: the deficits sum to ``w``); the patient goes to the candidate with the
   largest deficit over all strata so far, ties to the larger deficit within the stratum,
   then to test, validation, train in that order.

Hence within each stratum no split exceeds its target by a patient's weight or more, and the
overall fractions stay close to the targets although small strata cannot be split evenly.
"""

import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType

import pandas as pd

from bench.errors import ManifestError, SplitError
from bench.fingerprints import (
    EMPTY_ANNOTATIONS,
    CaseFiles,
    Fingerprint,
    annotation_files,
    annotations_fingerprint,
    default_fingerprint_workers,
    fingerprint_images_item,
    locate_series,
    read_annotation_records,
)
from bench.io import SCHEMA_VERSION, sha256_json, write_json
from bench.parallel import SCHEDULER_ENV, map_ordered
from bench.tasks import SPLITS, SplitStrategy, TaskSpec, load_task, tasks_dir

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

PROCEDURE = "sha256-greedy/v1"
#: Preference among splits whose deficits tie exactly.
_TIE_ORDER = ("test", "validation", "train")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class SplitCase:
    """One case of a pinned split: identity, split, strata values and content fingerprint."""

    case_id: str
    patient_id: str
    collection: str
    study_uid: str
    series_uid: str
    split: str
    strata: Mapping[str, str | None]
    fingerprint: Fingerprint


@dataclass(frozen=True)
class PinnedSplit:
    """A pinned split file, read and integrity-checked (see :func:`load_split`).

    ``records`` holds every case sorted by case_id; ``cases(split)`` those of one split.
    ``sha256`` is the file's own hash, what a paper cites.
    """

    task: str
    name: str
    strategy: Mapping
    manifest_sha256: str
    records: tuple[SplitCase, ...]
    sha256: str
    path: Path | None = field(default=None, compare=False)

    def cases(self, split: str | None = None) -> tuple[SplitCase, ...]:
        """Cases of ``split`` (``train``, ``validation``, ``test``), or all cases when None."""
        if split is not None and split not in SPLITS:
            raise SplitError(f"split {split!r} is not one of {list(SPLITS)}.")
        return tuple(case for case in self.records if split is None or case.split == split)

    def case_ids(self, split: str | None = None) -> list[str]:
        return [case.case_id for case in self.cases(split)]

    @property
    def strata_columns(self) -> list[str]:
        return list(self.strategy["strata"])


def split_path(task_id: str, name: str, *, directory: Path | None = None) -> Path:
    """``tasks/<task_id>/splits/<name>.json`` in ``directory`` (default: the tasks folder)."""
    if not _NAME.match(name):
        raise SplitError(f"split name {name!r} must match {_NAME.pattern} (e.g. 'synthetic', 'tcia').")
    return (directory or tasks_dir()) / task_id / "splits" / f"{name}.json"


def _value(value) -> str | None:
    """A stratum value as text; missing (NaN, None, empty) becomes None."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    return text or None


def _stratum_order(key: tuple) -> tuple:
    return tuple((_value(value) is not None, _value(value) or "") for value in key)


def _rank(seed: int, patient_id: str) -> str:
    return hashlib.sha256(f"{seed}:{patient_id}".encode()).hexdigest()


def _choose(fractions: Mapping[str, Fraction], placed: Mapping[str, int], placed_all: Mapping[str, int],
            weight: int) -> str:
    """Step 4 of the procedure: the split for the next patient of ``weight`` cases."""
    n, n_all = sum(placed.values()), sum(placed_all.values())
    best, best_priority = "", None
    for split in SPLITS:
        local = fractions[split] * (n + weight) - placed[split]
        overall = fractions[split] * (n_all + weight) - placed_all[split]
        priority = (local > 0, overall, local, -_TIE_ORDER.index(split))
        if best_priority is None or priority > best_priority:
            best, best_priority = split, priority
    return best


def task_cases(manifest: pd.DataFrame, spec: TaskSpec, *, source: str = "manifest") -> pd.DataFrame:
    """The manifest rows that form ``spec``'s cases (rule 1 of the module docstring), by case_id.

    Raises
    ------
    SplitError
        The manifest lacks a column the task needs, has no case of the task's collections, or
        holds a label value that is not one of a head's classes.
    """
    needed = ["case_id", "patient_id", "collection", "study_uid", "series_uid", spec.split.group_by,
              *spec.split.stratify, *spec.label_columns, "n_annotations"]
    missing = [column for column in dict.fromkeys(needed) if column not in manifest.columns]
    if missing:
        raise ManifestError(f"{source}: lacks column(s) {missing} that task {spec.id} needs (split "
                            f"stratification {spec.split.stratify}, labels {spec.label_columns}). Rebuild it "
                            "with `bench data index`, or fix split.stratify in the task.yaml.")
    cases = manifest[manifest["collection"].isin(spec.collections)]
    if spec.kind == "segmentation":
        cases = cases[pd.to_numeric(cases["n_annotations"], errors="coerce").fillna(0) > 0]
    else:
        labelled = pd.Series(False, index=cases.index)
        for head in spec.heads:
            values = cases[head.column].map(_value)
            bad = cases[values.notna() & ~values.isin(head.classes)]
            if len(bad):
                row = bad.iloc[0]
                raise SplitError(f"{source}: case {row['case_id']} has {head.column}={row[head.column]!r}, "
                                 f"not one of head {head.name!r}'s classes {head.classes}.")
            labelled |= values.notna()
        cases = cases[labelled]
    if cases.empty:
        raise SplitError(f"{source}: no case of {spec.collections} for task {spec.id} (collections present: "
                         f"{sorted(manifest['collection'].dropna().unique())}). Index the right download.")
    if cases["case_id"].duplicated().any():
        raise ManifestError(f"{source}: case_id {cases['case_id'][cases['case_id'].duplicated()].iloc[0]!r} "
                            "appears twice; case ids must be unique. Rebuild it with `bench data index`.")
    return cases.sort_values("case_id", kind="stable").reset_index(drop=True)


def assign_splits(cases: pd.DataFrame, strategy: SplitStrategy) -> pd.DataFrame:
    """Assign every case to train / validation / test by procedure ``sha256-greedy/v1``.

    Parameters
    ----------
    cases : DataFrame
        One row per case with ``case_id``, the ``strategy.group_by`` column and every
        ``strategy.stratify`` column.
    strategy : SplitStrategy
        Seed, patient key, stratification columns and target fractions of the task.

    Returns
    -------
    DataFrame
        ``case_id``, the patient key, ``split`` and the strata columns (as text, None when
        missing), sorted by case_id. The same input gives the same output on any machine.
    """
    group, columns = strategy.group_by, list(strategy.stratify)
    missing = [c for c in ["case_id", group, *columns] if c not in cases.columns]
    if missing:
        raise SplitError(f"cases lack column(s) {missing} needed to stratify by {columns} and group by "
                         f"{group!r}.")
    table = cases[["case_id", group, *columns]].copy()
    for column in columns:
        table[column] = pd.Series([_value(v) for v in table[column]], index=table.index, dtype=object)
    table[group] = table[group].astype(str)
    table = table.sort_values("case_id", kind="stable").reset_index(drop=True)
    weights = table.groupby(group, sort=True).size()
    firsts = table.drop_duplicates(group, keep="first")
    strata: dict[tuple, list[str]] = {}
    for values in firsts[[group, *columns]].itertuples(index=False, name=None):
        strata.setdefault(tuple(values[1:]), []).append(values[0])
    fractions = {s: Fraction(repr(float(strategy.fractions[s]))) for s in SPLITS}
    placed_all = dict.fromkeys(SPLITS, 0)
    split_of: dict[str, str] = {}
    for key in sorted(strata, key=_stratum_order):
        placed = dict.fromkeys(SPLITS, 0)
        for patient in sorted(strata[key], key=lambda p: (_rank(strategy.seed, p), p)):
            best = _choose(fractions, placed, placed_all, int(weights[patient]))
            split_of[patient] = best
            placed[best] += int(weights[patient])
            placed_all[best] += int(weights[patient])
    table.insert(2, "split", table[group].map(split_of))
    return table


def _strategy_record(strategy: SplitStrategy) -> dict:
    return {
        "procedure": PROCEDURE,
        "seed": strategy.seed,
        "group_key": strategy.group_by,
        "strata": list(strategy.stratify),
        "fractions": {s: float(strategy.fractions[s]) for s in SPLITS},
    }


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
        :data:`bench.fingerprints.INLINE_BYTES` (1 GiB), else one process per core
        (:func:`bench.fingerprints.default_fingerprint_workers`).
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
    """Assign, fingerprint and write ``tasks/<task>/splits/<name>.json``; return it as loaded.

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
        The tasks folder to write into (default: :func:`bench.tasks.tasks_dir`).
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

    path = split_path(spec.id, name, directory=directory)
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
        "strategy": _strategy_record(spec.split),
        "manifest_sha256": file_sha256(manifest),
        "cases": rows,
    }
    document["sha256"] = sha256_json(document)
    write_json(path, document)
    log.info("pinned %s: %d cases, sha256 %s", path, len(rows), document["sha256"])
    return _from_document(document, path)


def _check_annotation_coverage(cases: pd.DataFrame, prints: Mapping[str, Fingerprint],
                               manifest: Path) -> None:
    counted = pd.to_numeric(cases["n_annotations"], errors="coerce").fillna(0) > 0
    uncovered = [case_id for case_id, annotated in zip(cases["case_id"], counted, strict=True)
                 if annotated and prints[case_id].annotations == EMPTY_ANNOTATIONS]
    if uncovered:
        raise SplitError(f"{manifest}: {len(uncovered)} case(s) have annotations in the manifest but none in "
                         f"the given MD.ai exports (e.g. {uncovered[:3]}). Pass the export(s) used for "
                         "`bench data index` with --annotations.")


def _from_document(document: Mapping, path: Path | None) -> PinnedSplit:
    records = tuple(
        SplitCase(
            case_id=row["case_id"], patient_id=row["patient_id"], collection=row["collection"],
            study_uid=row["study_uid"], series_uid=row["series_uid"], split=row["split"],
            strata=MappingProxyType(dict(row["strata"])),
            fingerprint=Fingerprint(images=row["fingerprint"]["images"],
                                    annotations=row["fingerprint"]["annotations"]),
        )
        for row in document["cases"]
    )
    return PinnedSplit(task=document["task"], name=document["name"],
                       strategy=MappingProxyType(dict(document["strategy"])),
                       manifest_sha256=document["manifest_sha256"], records=records,
                       sha256=document["sha256"], path=path)


def read_split(path: str | os.PathLike) -> PinnedSplit:
    """Read a split file and check its own sha256 and its shape.

    Raises
    ------
    SplitError
        Missing or unreadable file, missing fields, a sha256 that does not match the content
        (the file was edited), a case fingerprint that does not match its parts, a split name
        other than train / validation / test, or a patient in two splits.
    """
    import json

    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise SplitError(f"{path}: no such split file. Pin it with `bench splits pin`.") from error
    except (OSError, ValueError) as error:
        raise SplitError(f"{path}: not a readable split file ({error}).") from error
    needed = {"schema_version", "task", "name", "strategy", "manifest_sha256", "cases", "sha256"}
    if not isinstance(document, dict) or needed - set(document):
        have = sorted(document) if isinstance(document, dict) else type(document).__name__
        raise SplitError(f"{path}: not a pinned split: needs fields {sorted(needed)}, got {have}.")
    body = {key: value for key, value in document.items() if key != "sha256"}
    if sha256_json(body) != document["sha256"]:
        raise SplitError(f"{path}: sha256 {document['sha256']} does not match the content "
                         f"({sha256_json(body)}); the file was edited after pinning. Restore it "
                         "(git checkout) or pin again.")
    try:
        split = _from_document(document, path)
    except (KeyError, TypeError) as error:
        raise SplitError(f"{path}: malformed case record ({type(error).__name__}: {error}).") from error
    _check_records(split, path)
    return split


def _check_records(split: PinnedSplit, path: Path) -> None:
    seen: dict[str, str] = {}
    ids = [case.case_id for case in split.records]
    if ids != sorted(set(ids)):
        raise SplitError(f"{path}: case ids must be unique and sorted; the file was not written by "
                         "`bench splits pin`.")
    for case in split.records:
        if case.split not in SPLITS:
            raise SplitError(f"{path}: case {case.case_id} has split {case.split!r}, not one of "
                             f"{list(SPLITS)}.")
        other = seen.setdefault(case.patient_id, case.split)
        if other != case.split:
            raise SplitError(f"{path}: patient {case.patient_id} is in both {other} and {case.split}; "
                             "a pinned split must keep each patient in one split.")


def load_split(task_id: str, name: str, *, directory: Path | None = None) -> PinnedSplit:
    """Read ``tasks/<task_id>/splits/<name>.json`` and check it against the task's current spec.

    Raises
    ------
    SplitError
        See :func:`read_split`; also when the file belongs to another task or when the task's
        split strategy (seed, group key, strata, fractions) changed since the split was pinned.
    """
    spec = load_task(task_id, directory=directory)
    path = split_path(task_id, name, directory=directory)
    if not path.is_file():
        pinned = sorted(p.stem for p in path.parent.glob("*.json")) if path.parent.is_dir() else []
        raise SplitError(f"task {task_id}: no pinned split {name!r} ({path} does not exist; pinned: "
                         f"{pinned or 'none'}). Pin it with "
                         f"`bench splits pin --task {task_id} --name {name} ...`.")
    split = read_split(path)
    if split.task != task_id or split.name != name:
        raise SplitError(f"{path}: belongs to task {split.task!r} / name {split.name!r}, not "
                         f"{task_id!r} / {name!r}.")
    expected = _strategy_record(spec.split)
    if dict(split.strategy) != expected:
        raise SplitError(f"{path}: pinned with strategy {dict(split.strategy)}, but "
                         f"tasks/{task_id}/task.yaml now says {expected}. Pin the split again (and cite "
                         "the new sha256).")
    return split
