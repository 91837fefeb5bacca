"""The results store: one directory per scored run, written atomically, read back validated.

Layout (CONTRACTS section 7)::

    <root>/<task>/<team slug>/<entry slug>/<run_id>/
        receipt.json   what produced the numbers (harness, task, split, reference, submission, ...)
        per_case.csv   one row per case of the split, with its status and every per-case value
        scores.json    aggregates with confidence intervals, counts, policies, subgroups
        logs/          the run's logs (stdout.txt, stderr.txt, ...)

A run directory is assembled in a temporary directory beside its final place and renamed
into place only when every file is written, so a crash, ``SIGKILL`` or Ctrl-C never leaves a
half result: listing skips the hidden temporary directories such a crash leaves behind. The
leaderboard is built from the store alone, so it can be rebuilt at any time.

An entry is the pair (team, entry name) of the receipt's ``submission`` block
(:class:`EntryId`), never a file name: two teams' ``model.tar`` are two entries. Names are free
text (they are shown on the board); each directory level is a filesystem-safe slug of one of
them (:func:`slugify`), so two entries never share a directory (not even a team that names
itself with another team's slug), and the display names stay in the receipt.
"""

import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

from bench.errors import StoreError
from bench.io import SCHEMA_VERSION, atomic_directory, exclusive, write_bytes, write_csv, write_json
from bench.text import injective_name

log = logging.getLogger(__name__)

RECEIPT = "receipt.json"
SCORES = "scores.json"
PER_CASE = "per_case.csv"
LOGS = "logs"

STATUSES = ("ok", "missing", "malformed", "error")
"""Values of ``per_case.csv``'s ``status`` column."""

RECEIPT_REQUIRED = {
    "schema_version": None,
    "task": ("id", "sha256"),
    "split": ("name", "split", "sha256"),
    "submission": ("name", "team"),
    "started_at": None,
}
"""Receipt fields the store and the leaderboard rely on (nested keys listed per mapping).

Every other receipt field (harness version and git revision, reference sha256, image or
command, runner, limits, seed, hardware, ended_at, exit status, per-case errors) is kept as
written and shown on the submission's page.
"""

SCORES_REQUIRED = ("schema_version", "task", "primary_metric", "metrics", "counts")
COUNT_KEYS = ("cases", "ok", "missing", "malformed", "error")

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_RUN_ID = re.compile(r"^\d{8}T\d{6}(\.\d{6})?Z(-[0-9a-f]{4})?-[0-9a-f]{8}$")
LOCK = ".store.lock"
"""Lock file at the store's root; :meth:`Store.write_run` holds it while it checks and renames."""
LOCK_TIMEOUT_S = 300


#: Hidden folder of the store holding each task's reader band (:mod:`bench.pipeline.readers`).
READER_BANDS = ".readers"


def reader_band_folder(results: str | os.PathLike, task: str, split_name: str, split: str) -> Path:
    """Where the reader band of one task and scored split lives in the results store."""
    return Path(results) / READER_BANDS / task / f"{split}-{split_name}"


def slugify(name: str) -> str:
    """Filesystem-safe directory name for a submission (or task) name, never shared by two names.

    A name that is already safe (``[A-Za-z0-9][A-Za-z0-9._-]*``, at most 64 characters) and does
    not end like a hashed slug is kept as it is. Any other name becomes its safe characters
    joined by ``-`` plus 16 hex digits of the sha256 of the name
    (:func:`bench.text.injective_name`): ``<script>alert(1)</script>`` becomes
    ``script-alert-1-script-<16 hex>``, and a team named ``Team-A-<16 hex>`` (``Team A``'s slug)
    is hashed again instead of landing in ``Team A``'s folder.
    """
    if not isinstance(name, str) or not name.strip():
        raise StoreError(f"submission name must be a non-empty string, got {name!r}")
    return injective_name(name, keep=_SAFE, unsafe=_UNSAFE, strip="-._", empty="entry")


@dataclass(frozen=True, order=True)
class EntryId:
    """One entry of a board: a team and the entry's name within it (both free text).

    ``key`` (``<team slug>/<entry slug>``) names the entry's folder in the store and on the
    site; it is unique because each part is an injective slug without ``/``.
    """

    team: str
    name: str

    @property
    def key(self) -> str:
        return f"{slugify(self.team)}/{slugify(self.name)}"

    def __str__(self) -> str:
        return f"{self.team} / {self.name}"


def make_run_id(started_at: datetime | str, inputs_hash: str) -> str:
    """``<UTC yyyymmddTHHMMSS.ffffffZ>-<4 random hex>-<8 hex of inputs_hash>``: sorts by start time.

    The one builder of run ids (scoring names every stored result with it). Microseconds and
    16 random bits keep ids unique when several processes score the same inputs at once (a
    second of resolution made concurrent evaluates of one entry collide); the inputs hash
    stays last, so reruns on the same inputs share the suffix. Ids of the older form
    ``<yyyymmddTHHMMSSZ>-<8 hex>`` are still read.

    Parameters
    ----------
    started_at : datetime or str
        When the run started: an aware datetime (it is converted to UTC), or the UTC time as
        receipts record it, ``yyyy-mm-ddTHH:MM:SSZ`` (:func:`bench.provenance.utc_now`).
    inputs_hash : str
        Hex digest identifying the inputs (e.g. sha256 over task, reference and predictions).
    """
    if isinstance(started_at, str):
        try:
            started_at = datetime.strptime(started_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise StoreError(f"make_run_id: started_at {started_at!r} is not a UTC time written "
                             "yyyy-mm-ddTHH:MM:SSZ") from None
    if started_at.tzinfo is None:
        raise StoreError(f"make_run_id: started_at {started_at.isoformat()} has no timezone; "
                         "pass an aware datetime such as datetime.now(timezone.utc)")
    if not re.fullmatch(r"[0-9a-f]{8,}", inputs_hash or ""):
        raise StoreError(f"make_run_id: inputs_hash must be at least 8 lowercase hex digits, "
                         f"got {inputs_hash!r}")
    return f"{started_at.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(2)}-{inputs_hash[:8]}"


@dataclass(frozen=True, eq=False)
class StoredRun:
    """One scored run as read back from the store (validated).

    Attributes
    ----------
    task : str
        Task id (the first directory level).
    submission : str
        The entry's key, ``<team slug>/<entry slug>`` (:attr:`EntryId.key`); the display
        names are :attr:`team` and :attr:`name`.
    run_id : str
        ``<UTC time>-<inputs hash>``, see :func:`make_run_id`.
    path : Path
        The run directory.
    receipt, scores : Mapping
        The parsed ``receipt.json`` and ``scores.json`` (read-only views).
    per_case : pandas.DataFrame
        ``per_case.csv``, rows sorted by ``case_id``, ``case_id`` read as text.
    """

    task: str
    submission: str
    run_id: str
    path: Path
    receipt: Mapping[str, Any] = field(repr=False)
    scores: Mapping[str, Any] = field(repr=False)
    per_case: pd.DataFrame = field(repr=False)

    @property
    def name(self) -> str:
        """The submission's display name (free text: escape it wherever it is shown)."""
        return self.receipt["submission"]["name"]

    @property
    def team(self) -> str:
        return str(self.receipt["submission"]["team"])

    @property
    def entry(self) -> EntryId:
        return EntryId(self.team, self.name)

    @property
    def split(self) -> str:
        """Which part of the split was scored: ``train``, ``validation`` or ``test``."""
        return self.receipt["split"]["split"]

    @property
    def split_name(self) -> str:
        return self.receipt["split"]["name"]

    @property
    def split_sha256(self) -> str:
        return self.receipt["split"]["sha256"]

    @property
    def task_sha256(self) -> str:
        return self.receipt["task"]["sha256"]

    @property
    def reference_entry(self) -> dict | None:
        """The receipt's ``reference_entry`` for a built-in reference line (confound floor), else None."""
        entry = self.receipt.get("reference_entry")
        return dict(entry) if entry else None

    @property
    def self_reported(self) -> bool:
        """True for predictions made outside the harness (``bench score`` on a plain folder)."""
        return bool(self.receipt.get("self_reported"))

    @property
    def logs(self) -> list[Path]:
        """Files under ``logs/``, sorted."""
        folder = self.path / LOGS
        return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


class Store:
    """The results store rooted at ``root`` (created on first write)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def run_dir(self, task: str, entry: EntryId, run_id: str) -> Path:
        """Where run ``run_id`` of ``entry`` on ``task`` lives."""
        return self.root / slugify(task) / entry.key / run_id

    def write_run(
        self,
        task: str,
        entry: EntryId,
        run_id: str,
        *,
        receipt: Mapping[str, Any],
        scores: Mapping[str, Any],
        per_case: pd.DataFrame,
        logs: Mapping[str, str | bytes | os.PathLike] | None = None,
    ) -> StoredRun:
        """Validate and write one run atomically; return it as read back.

        Parameters
        ----------
        task : str
            Task id.
        entry : EntryId
            The entry (its key names the directories; the receipt's ``submission.team`` and
            ``submission.name`` must equal its parts).
        run_id : str
            From :func:`make_run_id`.
        receipt, scores : Mapping
            Bodies of ``receipt.json`` and ``scores.json`` (see :data:`RECEIPT_REQUIRED`,
            :data:`SCORES_REQUIRED`).
        per_case : pandas.DataFrame
            At least ``case_id`` and ``status``; written sorted by ``case_id``.
        logs : Mapping, optional
            File name under ``logs/`` -> text (``str``), ``bytes``, or a ``Path`` of a file to copy.

        Raises
        ------
        StoreError
            Invalid inputs, or a run with this id is already stored.
        """
        if not _RUN_ID.match(run_id):
            raise StoreError(f"run id {run_id!r} does not look like "
                             "<yyyymmddTHHMMSS.ffffffZ>-<4 hex>-<8 hex>; make it with "
                             "bench.store.make_run_id")
        where = f"run {task}/{entry.key}/{run_id}"
        _check_receipt(receipt, where)
        _check_scores(scores, where)
        if receipt["task"]["id"] != task or scores["task"] != task:
            raise StoreError(f"{where}: receipt task {receipt['task']['id']!r} / scores task "
                             f"{scores['task']!r} differ from the task {task!r} it is stored under")
        claimed = EntryId(receipt["submission"]["team"], receipt["submission"]["name"])
        if claimed != entry:
            raise StoreError(f"{where}: receipt submission {claimed} differs from the entry {entry}")
        table = _check_per_case(per_case, where).sort_values("case_id", kind="stable")
        final = self.run_dir(task, entry, run_id)
        with exclusive(self.root / LOCK, timeout_s=LOCK_TIMEOUT_S, what=f"the results store {self.root}",
                       error=StoreError):
            if final.exists():
                raise StoreError(f"{final} already exists: run {run_id} of {entry} is stored. "
                                 "Runs are immutable; score again to make a new run id.")
            with atomic_directory(final) as tmp:
                write_csv(tmp / PER_CASE, table)
                write_json(tmp / SCORES, dict(scores))
                (tmp / LOGS).mkdir()
                for name, content in sorted((logs or {}).items()):
                    _write_log(tmp / LOGS, name, content, where)
                write_json(tmp / RECEIPT, dict(receipt))
        log.info("stored %s", final)
        return self.read_run(final)

    def read_run(self, path: str | os.PathLike) -> StoredRun:
        """Read and validate the run directory ``path`` (``<root>/<task>/<team>/<entry>/<run_id>``)."""
        path = Path(path)
        if not path.is_dir():
            raise StoreError(f"{path}: no such run directory")
        receipt = _read_json(path / RECEIPT)
        _check_receipt(receipt, str(path / RECEIPT))
        scores = _read_json(path / SCORES)
        _check_scores(scores, str(path / SCORES))
        task, run_id = path.parent.parent.parent.name, path.name
        slug = f"{path.parent.parent.name}/{path.parent.name}"
        if receipt["task"]["id"] != task:
            raise StoreError(f"{path / RECEIPT}: task {receipt['task']['id']!r} but the run is stored "
                             f"under task directory {task!r}")
        expected = EntryId(receipt["submission"]["team"], receipt["submission"]["name"]).key
        if expected != slug:
            raise StoreError(f"{path / RECEIPT}: entry {receipt['submission']['team']!r} / "
                             f"{receipt['submission']['name']!r} does not belong in directory {slug!r} "
                             f"(expected {expected!r})")
        try:
            table = pd.read_csv(path / PER_CASE, dtype={"case_id": str}, keep_default_na=True)
        except FileNotFoundError:
            raise StoreError(f"{path / PER_CASE}: missing; the run directory is incomplete") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            raise StoreError(f"{path / PER_CASE}: not a readable CSV ({error})") from error
        table = _check_per_case(table, str(path / PER_CASE))
        table = table.sort_values("case_id", kind="stable").reset_index(drop=True)
        return StoredRun(task=task, submission=slug, run_id=run_id, path=path,
                         receipt=_freeze(receipt), scores=_freeze(scores), per_case=table)

    def runs(self, task: str | None = None, *,
             broken: list[tuple[Path, str]] | None = None) -> list[StoredRun]:
        """Every stored run (of ``task`` if given), sorted by task, submission slug and run id.

        Hidden entries (temporary directories left by an interrupted write) are skipped. A
        run that cannot be read raises :class:`StoreError`, unless a ``broken`` list is given:
        then it is left out and ``(run directory, error message)`` is appended to the list.
        """
        tasks = [self.root / slugify(task)] if task else _children(self.root)
        found = []
        for task_dir in tasks:
            for entry_dir in (e for team_dir in _children(task_dir) for e in _children(team_dir)):
                for run_dir in _children(entry_dir):
                    try:
                        found.append(self.read_run(run_dir))
                    except StoreError as error:
                        if broken is None:
                            raise
                        log.warning("skipping run %s: %s", run_dir, error)
                        broken.append((run_dir, str(error)))
        return found

    def latest(self, task: str, entry: EntryId, *, split: str | None = None) -> StoredRun | None:
        """The most recent run (largest run id = latest start) of ``entry`` on ``task``.

        With ``split`` (``train``/``validation``/``test``), only runs scored on that split count.
        """
        runs = [self.read_run(d) for d in _children(self.root / slugify(task) / entry.key)]
        runs = [run for run in runs if split is None or run.split == split]
        return runs[-1] if runs else None

    def latest_runs(self, task: str | None = None, *,
                    broken: list[tuple[Path, str]] | None = None) -> list[StoredRun]:
        """The latest run of every (task, entry, split name, split), sorted by those keys.

        An entry scored on the validation and the test split keeps one run of each, so
        the two never mix in one ranking. ``broken``: as in :meth:`runs` (an unreadable run
        is left out, so the submission's previous readable run counts as its latest).
        """
        latest: dict[tuple[str, str, str, str], StoredRun] = {}
        for run in self.runs(task, broken=broken):
            latest[(run.task, run.submission, run.split_name, run.split)] = run
        return [latest[key] for key in sorted(latest)]


def plain(obj: Any) -> Any:
    """A deep copy of a read-only receipt or scores view as plain dicts and lists (for JSON)."""
    if isinstance(obj, Mapping):
        return {key: plain(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(value) for value in obj]
    return obj


def _children(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _freeze(obj: Any) -> Any:
    if isinstance(obj, dict):
        return MappingProxyType({key: _freeze(value) for key, value in obj.items()})
    if isinstance(obj, list):
        return tuple(_freeze(value) for value in obj)
    return obj


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"{path}: missing; the run directory is incomplete") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise StoreError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise StoreError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _check_receipt(receipt: Mapping, where: str) -> None:
    missing = []
    for key, nested in RECEIPT_REQUIRED.items():
        if key not in receipt:
            missing.append(key)
        elif nested is not None:
            if not isinstance(receipt[key], Mapping):
                missing.extend(f"{key}.{sub}" for sub in nested)
            else:
                missing.extend(f"{key}.{sub}" for sub in nested if sub not in receipt[key])
    if missing:
        raise StoreError(f"{where}: receipt lacks {missing}; a receipt needs schema_version, "
                         "task{id, sha256}, split{name, split, sha256}, submission{name, team}, started_at")
    if receipt["schema_version"] != SCHEMA_VERSION:
        raise StoreError(f"{where}: receipt schema_version {receipt['schema_version']!r}, this harness "
                         f"reads {SCHEMA_VERSION}; rescore the run with this harness")
    if receipt["split"]["split"] not in ("train", "validation", "test"):
        raise StoreError(f"{where}: receipt split.split is {receipt['split']['split']!r}, expected "
                         "train, validation or test")
    for part in ("name", "team"):
        value = receipt["submission"][part]
        if not isinstance(value, str) or not value.strip():
            raise StoreError(f"{where}: receipt submission.{part} must be a non-empty string, got {value!r}")


def _check_scores(scores: Mapping, where: str) -> None:
    missing = [key for key in SCORES_REQUIRED if key not in scores]
    if missing:
        raise StoreError(f"{where}: scores lack {missing}; expected keys {list(SCORES_REQUIRED)}")
    metrics = scores["metrics"]
    if not isinstance(metrics, Mapping) or scores["primary_metric"] not in metrics:
        raise StoreError(f"{where}: scores.metrics must be a mapping containing the primary metric "
                         f"{scores['primary_metric']!r}")
    for key, entry in metrics.items():
        if not isinstance(entry, Mapping) or "value" not in entry:
            raise StoreError(f"{where}: scores.metrics[{key!r}] must be an object with 'value' "
                             "(and ci_low, ci_high, direction)")
    counts = scores["counts"]
    if not isinstance(counts, Mapping) or any(key not in counts for key in COUNT_KEYS):
        raise StoreError(f"{where}: scores.counts must have {list(COUNT_KEYS)}, got {counts!r}")


def _check_per_case(table: pd.DataFrame, where: str) -> pd.DataFrame:
    missing = [column for column in ("case_id", "status") if column not in table.columns]
    if missing:
        raise StoreError(f"{where}: per-case table lacks column(s) {missing}; "
                         f"it has {list(table.columns)}")
    duplicated = sorted(set(table.loc[table["case_id"].duplicated(), "case_id"]))
    if duplicated:
        raise StoreError(f"{where}: per-case table repeats case id(s) {duplicated[:5]}")
    bad = sorted(set(table["status"].astype(str)) - set(STATUSES))
    if bad:
        raise StoreError(f"{where}: per-case status values {bad} are not among {list(STATUSES)}")
    return table


def _write_log(folder: Path, name: str, content: str | bytes | os.PathLike, where: str) -> None:
    if "/" in name or "\\" in name or name.startswith(".") or not name:
        raise StoreError(f"{where}: log name {name!r} must be a plain file name")
    if isinstance(content, str):
        write_bytes(folder / name, content.encode("utf-8"))
    elif isinstance(content, bytes):
        write_bytes(folder / name, content)
    else:
        source = Path(content)
        if not source.exists():
            raise StoreError(f"{where}: log file {source} does not exist")
        with open(source, "rb") as reader, open(folder / name, "wb") as writer:
            shutil.copyfileobj(reader, writer)
