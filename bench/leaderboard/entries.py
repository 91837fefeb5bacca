"""What an entry publishes beside its page: every run's receipt, the run history, the per-case CSV.

Why: a reader checks a board entry by its receipts (what ran, on which split, with which
harness) and its history (when it was submitted, which run counts). The receipts are
published as JSON files without host folders (:func:`bench.leaderboard.pages.public_receipt`);
on a split whose per-case scores are hidden (:attr:`Board.hide_per_case`) every per-case record
in them (``case_errors``: which case failed and why) is replaced by its count, and no per-case
CSV is written. The history is the challenge ledger's (``BoardEntry.history``, one line per
attempt) when the board is a challenge phase, otherwise the entry's stored runs on the board's
split, oldest first, the one on the board marked.

Layout, relative to the board folder: the entry page ``<team>/<entry>.html`` and its folder
``<team>/<entry>_files/`` with ``receipts/<run_id>.json`` and (shown splits only) ``per_case.csv``.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from bench.io import spreadsheet_safe, write_csv, write_json
from bench.leaderboard.pages import public_receipt
from bench.ranking.board import Board, BoardEntry
from bench.store import StoredRun, plain

RECEIPTS = "receipts"
PER_CASE = "per_case.csv"


@dataclass(frozen=True)
class HistoryRow:
    """One line of an entry's run history, as the page shows it."""

    at: str
    event: str
    run_id: str
    value: float | None
    counts: bool
    reason: str
    harness: str
    """Version (and short git revision) of the harness that scored the run; '' without a run."""
    receipt: str | None
    """The run's published receipt, relative to the entry page; None without a stored run."""


def entry_folder(entry: BoardEntry) -> PurePosixPath:
    """The entry's folder relative to its board folder: ``<team slug>/<entry slug>_files``.

    Beside the pages (``<entry slug>.html``) and plots (``.svg``) of the team's other entries, a
    folder named after the entry alone could be one of them: entry ``x.html``'s folder would
    be entry ``x``'s page, and the build would fail for every entry. No page or plot ends in
    ``_files``, and no two entries' folders share a name.
    """
    page = PurePosixPath(entry.page)
    return page.with_name(f"{page.name.removesuffix('.html')}_files")


def receipt_href(entry: BoardEntry, run_id: str) -> str:
    """Link from the entry page (``<team>/<entry>.html``) to a run's published receipt."""
    return f"{entry_folder(entry).name}/{RECEIPTS}/{run_id}.json"


def published_receipt(receipt: Mapping[str, Any], *, hidden: bool) -> Any:
    """The receipt as published: host folders shortened; on a hidden split no per-case record.

    Any list of records naming a ``case_id`` (``case_errors`` today) becomes the sentence
    "N per-case records withheld", so which test case failed, and why, stays unpublished.
    """
    shown = public_receipt(plain(receipt))
    return _withhold_cases(shown) if hidden else shown


def _withhold_cases(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _withhold_cases(item) for key, item in value.items()}
    if isinstance(value, list):
        if any(isinstance(item, Mapping) and "case_id" in item for item in value):
            return (f"{len(value)} per-case record{'' if len(value) == 1 else 's'} withheld: "
                    "per-case data are hidden on this split")
        return [_withhold_cases(item) for item in value]
    return value


def harness_text(receipt: Mapping[str, Any]) -> str:
    """``0.1.0 (7300775c6ec6)``: the scoring harness's version and short git revision."""
    scored_by = receipt.get("harness") or {}
    revision = scored_by.get("git_revision")
    return f"{scored_by.get('version', 'unknown')}{f' ({str(revision)[:12]})' if revision else ''}"


def board_runs(entry: BoardEntry, board: Board, stored: Iterable[StoredRun]) -> list[StoredRun]:
    """The entry's stored runs on the board's split (name, sha256 and part), oldest first.

    On a challenge phase board only the runs its ledger history names: a run scored outside
    the phase is not the phase's to publish.
    """
    named = {event.run_id for event in entry.history} if board.phase is not None else None
    return sorted((run for run in stored if run.submission == entry.run.submission
                   and run.split_name == board.split_name and run.split == board.split
                   and run.split_sha256 == board.split_sha256 and (named is None or run.run_id in named)),
                  key=lambda run: run.run_id)


def history(entry: BoardEntry, board: Board, runs: list[StoredRun]) -> tuple[HistoryRow, ...]:
    """The entry's run history: the ledger's events on a challenge phase, else its stored runs.

    ``runs`` are :func:`board_runs`; they give each event's harness and receipt link.
    """
    by_id = {run.run_id: run for run in runs}
    if board.phase is not None:
        return tuple(_row(event.at, event.event, event.run_id, event.value, event.counts, event.reason,
                          by_id.get(event.run_id), entry) for event in entry.history)
    return tuple(_row(str(run.receipt["started_at"]), "scored", run.run_id, _primary(run, board),
                      run.run_id == entry.run.run_id, "", run, entry) for run in runs)


def _row(at: str, event: str, run_id: str, value: float | None, counts: bool, reason: str,
         run: StoredRun | None, entry: BoardEntry) -> HistoryRow:
    return HistoryRow(at=at, event=event, run_id=run_id, value=value, counts=counts, reason=reason,
                      harness=harness_text(run.receipt) if run else "",
                      receipt=receipt_href(entry, run.run_id) if run else None)


def _primary(run: StoredRun, board: Board) -> float | None:
    value = (run.scores["metrics"].get(board.spec.primary_key) or {}).get("value")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def write_entry_files(board_folder: Path, entry: BoardEntry, board: Board, runs: list[StoredRun]) -> dict:
    """Write the entry's receipts (every run in ``runs``) and, on shown splits, its per-case CSV.

    Returns the links from the entry page: ``{"per_case": href or None, "gallery": None}`` (the
    gallery, :mod:`bench.leaderboard.gallery`, fills its own).
    """
    folder = board_folder / entry_folder(entry)
    for run in runs:
        write_json(folder / RECEIPTS / f"{run.run_id}.json",
                   published_receipt(run.receipt, hidden=board.hide_per_case))
    if board.hide_per_case:
        return {"per_case": None, "gallery": None}
    write_csv(folder / PER_CASE, spreadsheet_safe(entry.run.per_case))
    return {"per_case": f"{entry_folder(entry).name}/{PER_CASE}", "gallery": None}
