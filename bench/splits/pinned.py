"""A pinned split file: its records, where it lives, and reading it back with every check.

``<task>/splits/<name>.json`` (in a tasks folder, see :mod:`bench.tasks`) lists each case with
its split, strata and content fingerprint, and carries its own sha256 over canonical JSON: the
hash a paper cites. Reading refuses a file whose hash, records or strategy do not match (a hand
edit, a stale task).

A split pinned from the annotation export alone (:mod:`bench.splits.publish`) has no series
and no pixel hash yet: ``series_uid`` and ``fingerprint.images`` are null. They are completed
later in ``<name>.lock.json`` beside it, which names the split's sha256 it completes and has its
own; reading applies a lock that is present (after checking both hashes and that it covers
exactly the split's cases), and the cited sha256 never changes.
"""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from bench.errors import SplitError
from bench.io import sha256_json
from bench.splits.assign import strategy_record
from bench.splits.fingerprints import (
    Fingerprint,
)
from bench.tasks import SPLITS, load_task, task_folders, task_yaml, user_tasks_dir

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class SplitCase:
    """One case of a pinned split: identity, split, strata values and content fingerprint."""

    case_id: str
    patient_id: str
    collection: str
    study_uid: str
    series_uid: str | None
    split: str
    strata: Mapping[str, str | None]
    fingerprint: Fingerprint


@dataclass(frozen=True)
class PinnedSplit:
    """A pinned split file, read and integrity-checked (see :func:`load_split`).

    ``records`` holds every case sorted by case_id; ``cases(split)`` those of one split.
    ``sha256`` is the file's own hash, what a paper cites. ``manifest_sha256`` is None for a
    split pinned from the export; ``lock_sha256`` the hash of the lock file that completed it.
    """

    task: str
    name: str
    strategy: Mapping
    manifest_sha256: str | None
    records: tuple[SplitCase, ...]
    sha256: str
    path: Path | None = field(default=None, compare=False)
    lock_sha256: str | None = None

    @property
    def complete(self) -> bool:
        """True when every case has its series and pixel fingerprint (pinned or locked)."""
        return all(case.fingerprint.images is not None for case in self.records)

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
    """The pinned split ``<task_id>/splits/<name>.json`` that :func:`load_split` reads.

    The first of :func:`bench.tasks.task_folders` that holds it (the user's tasks folder, then
    the built-in tasks); when none does, where :func:`pinned_split_target` would write it.
    """
    file = f"{_checked(name)}.json"
    candidates = [folder / task_id / "splits" / file for folder in task_folders(directory)]
    return next((path for path in candidates if path.is_file()), candidates[0])


def pinned_split_target(task_id: str, name: str, *, directory: Path | None = None) -> Path:
    """Where pinning writes ``<task_id>/splits/<name>.json``: always the user's tasks folder
    (:func:`bench.tasks.user_tasks_dir`), never the package; it then shadows a built-in split
    of the same name.

    >>> from bench.tasks import BUILTIN_TASKS
    >>> mine = Path("my-tasks")
    >>> pinned_split_target("ricord-1a-lesion-seg", "synthetic", directory=mine).as_posix()
    'my-tasks/ricord-1a-lesion-seg/splits/synthetic.json'
    >>> split_path("ricord-1a-lesion-seg", "synthetic", directory=mine).is_relative_to(BUILTIN_TASKS)
    True
    """
    return user_tasks_dir(directory) / task_id / "splits" / f"{_checked(name)}.json"


def pinned_names(task_id: str, *, directory: Path | None = None) -> list[str]:
    """Names of the task's pinned splits in the user's folder and built in, sorted."""
    return sorted({path.stem for folder in task_folders(directory)
                   for path in (folder / task_id / "splits").glob("*.json")})


def _checked(name: str) -> str:
    if not _NAME.match(name):
        raise SplitError(f"split name {name!r} must match {_NAME.pattern} (e.g. 'synthetic', 'tcia').")
    return name


def lock_path(path: Path) -> Path:
    """``<name>.lock.json`` beside the split file ``<name>.json``."""
    return path.with_name(path.stem + ".lock.json")


def lock_file(task_id: str, name: str, *, directory: Path | None = None) -> Path:
    """The lock ``<task_id>/splits/<name>.lock.json`` that completes a split: the first of
    :func:`bench.tasks.task_folders` that holds it, else where completing writes it (the user's
    tasks folder, also for a built-in split)."""
    candidates = [lock_path(folder / task_id / "splits" / f"{_checked(name)}.json")
                  for folder in task_folders(directory)]
    return next((path for path in candidates if path.is_file()), candidates[0])


def _apply_lock(split: PinnedSplit, path: Path) -> PinnedSplit:
    """``split`` with the series and pixel hashes of its lock file (checked, see the module)."""
    import json

    try:
        lock = json.loads(path.read_text(encoding="utf-8"))
        body = {key: value for key, value in lock.items() if key != "sha256"}
        cases = {row["case_id"]: row for row in lock["cases"]}
        bound = lock["split_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SplitError(f"{path}: not a readable lock file ({type(error).__name__}: {error}). Write it "
                         "again with `bench splits pin --complete`.") from error
    if sha256_json(body) != lock.get("sha256"):
        raise SplitError(f"{path}: sha256 does not match the content; the lock file was edited. Write it "
                         "again with `bench splits pin --complete`.")
    if bound != split.sha256:
        raise SplitError(f"{path}: completes split sha256 {bound}, not this split's {split.sha256}. Complete "
                         "the current split again with `bench splits pin --complete`.")
    if set(cases) != {case.case_id for case in split.records}:
        raise SplitError(f"{path}: does not list exactly the split's {len(split.records)} cases.")
    records = tuple(
        replace(case, series_uid=cases[case.case_id]["series_uid"],
                fingerprint=Fingerprint(images=cases[case.case_id]["images"],
                                        annotations=case.fingerprint.annotations))
        for case in split.records)
    return replace(split, records=records, lock_sha256=lock["sha256"])


def from_document(document: Mapping, path: Path | None) -> PinnedSplit:
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


def read_split(path: str | os.PathLike, *, lock: str | os.PathLike | None = None) -> PinnedSplit:
    """Read a split file and check its own sha256 and its shape.

    A split pinned from the export alone is completed by its lock file: ``lock`` when given
    (:func:`lock_file` finds it in the tasks folders), else ``<name>.lock.json`` beside it.

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
        split = from_document(document, path)
    except (KeyError, TypeError) as error:
        raise SplitError(f"{path}: malformed case record ({type(error).__name__}: {error}).") from error
    _check_records(split, path)
    lock = Path(lock) if lock is not None else lock_path(path)
    if not split.complete and lock.is_file():
        split = _apply_lock(split, lock)
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
    """Read the pinned split ``<task_id>/splits/<name>.json`` (:func:`split_path`) and check it
    against the task's current spec.

    Raises
    ------
    SplitError
        See :func:`read_split`; also when the file belongs to another task or when the task's
        split strategy (seed, group key, strata, fractions) changed since the split was pinned.
    """
    spec = load_task(task_id, directory=directory)
    path = split_path(task_id, name, directory=directory)
    if not path.is_file():
        pinned = pinned_names(task_id, directory=directory)
        raise SplitError(f"task {task_id}: no pinned split {name!r} ({path} does not exist; pinned: "
                         f"{pinned or 'none'}). Pin it with "
                         f"`bench splits pin --task {task_id} --name {name} ...`.")
    split = read_split(path, lock=lock_file(task_id, name, directory=directory))
    if split.task != task_id or split.name != name:
        raise SplitError(f"{path}: belongs to task {split.task!r} / name {split.name!r}, not "
                         f"{task_id!r} / {name!r}.")
    expected = strategy_record(spec.split)
    if dict(split.strategy) != expected:
        raise SplitError(f"{path}: pinned with strategy {dict(split.strategy)}, but "
                         f"{task_yaml(task_id, directory)} now says {expected}. Pin the split again "
                         "(and cite the new sha256).")
    return split
