"""Build the static leaderboard site from the results store.

The site works from ``file://`` and from any static host: relative links only, no external
fetches, no server. Layout::

    index.html                      tasks, with their boards
    leaderboard.json                every board, machine-readable
    static/style.css, static/sort.js
    <task>/index.html               the task's boards: ranked tables, plots, policies
    <task>/<task>.csv               every board of the task as one table
    <task>/<board>-*.svg            plots of each board
    <task>/<board>/<slug>.html      one page per submission and board
    <task>/<board>/<slug>_files/    its receipts, per-case CSV and case gallery (entries, gallery)

All user-supplied text (names, teams, descriptions, receipts, case ids) goes through
Jinja2's autoescaping; nothing is marked safe. The same store gives the same bytes.
"""

import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from bench.challenges import Challenge, Ledger, load_challenge, utc_now
from bench.errors import LeaderboardError, TaskSpecError
from bench.io import (
    SCHEMA_VERSION,
    is_missing,
    json_number,
    spreadsheet_safe,
    write_bytes,
    write_csv,
    write_json,
    write_text,
)
from bench.leaderboard import entries, gallery, pages, plots
from bench.leases import temp_dir
from bench.metrics.registry import METRICS
from bench.ranking.analysis import BoardAnalysis, analyse_board
from bench.ranking.board import Board, BoardEntry, HistoryEvent, build_boards, build_phase_boards
from bench.splits.citation import cite_board, cite_result, data_sources
from bench.store import Store, StoredRun, plain, reader_band_folder, slugify
from bench.tasks import TaskSpec, load_task
from bench.trees import foreign_content, mark_tree, publish_modes

log = logging.getLogger(__name__)

METHOD_TEXT = {
    "aggregate-then-rank": "aggregate-then-rank: each entry's {aggregate} over cases, then ranked",
    "rank-then-aggregate": "rank-then-aggregate: entries ranked within every case, then by mean rank",
    "test-then-rank": ("test-then-rank: one-sided Wilcoxon signed-rank tests between every pair, "
                       "Holm-corrected at alpha {alpha}; ranked by the number of entries beaten"),
}
SITE_KIND = "leaderboard site"
"""The kind recorded in the marker of a site this module built (:func:`bench.trees.mark_tree`)."""
KEPT = ("README.md",)
"""Files of the site folder that are not the site's (the repository's ``leaderboard/README.md``):
allowed in ``out`` and carried into every rebuilt site."""
SCORE_LABEL = {"aggregate-then-rank": "Ranked by", "rank-then-aggregate": "Mean rank",
               "test-then-rank": "Wins"}


@dataclass(frozen=True)
class LeaderboardReport:
    """What :func:`build_leaderboard` built."""

    index: Path
    tasks: tuple[str, ...]
    boards: int
    entries: int
    skipped: tuple[tuple[str, str], ...] = ()
    """Runs left out because they could not be read: (run directory relative to the store,
    what is wrong)."""


def build_leaderboard(results: str | os.PathLike, out: str | os.PathLike, *,
                      tasks_dir: str | os.PathLike | None = None,
                      progress: Callable[[int, int, str], None] | None = None,
                      challenges: Sequence[str | os.PathLike] = (),
                      now: datetime | None = None,
                      prepared_dirs: Sequence[str | os.PathLike] = (),
                      run_dirs: Sequence[str | os.PathLike] = ()) -> LeaderboardReport:
    """Build the static site for every task in the store ``results`` into ``out``.

    Without ``challenges`` every task in the store gets one board per scored split, ranking the
    latest run of every entry. With challenge files, the site holds exactly their phases: one
    board per phase, of the runs :func:`bench.challenges.counted_runs` selects from the store's
    ledger (:func:`bench.ranking.board.build_phase_boards`); a phase with ``scores: after_close``
    that has not closed at ``now`` shows who submitted and when, and no score of any kind.

    The site is assembled in a temporary directory beside ``out`` and renamed into place at
    the end, so a failed or interrupted build leaves the previous site untouched. ``out`` may
    be a site this harness built (its :data:`bench.trees.MARKER` lists every file, and nothing
    else is there) or an empty or missing directory (a ``README.md`` aside, which is kept, see
    :data:`KEPT`); anything else, and an ``out`` that holds or lies inside the results store, is
    refused: the harness deletes only what it wrote. Folders of the site are 0755 and files
    0644, so a web server running as another user can serve it. A stored run that cannot be
    read (e.g. a corrupt ``scores.json``) is left out with a warning on the index page and in
    the report's ``skipped``; the rest is built.

    Parameters
    ----------
    results : path
        Root of the results store (see :mod:`bench.store`).
    out : path
        Where the site goes.
    tasks_dir : path, optional
        The user's tasks folder, looked up before the built-in tasks (see :mod:`bench.tasks`).
    progress : callable, optional
        ``progress(done, total, description)`` per task.
    challenges : paths, optional
        Challenge files (``challenges/<name>.yaml``, :mod:`bench.challenges`).
    now : datetime, optional
        The time phase visibility is judged at (default: the clock). The same store, challenges
        and ``now`` give the same bytes.
    prepared_dirs, run_dirs : paths, optional
        Where else to look for the prepared splits and run folders the case galleries of shown
        splits are drawn from (besides where each receipt records them; see
        :mod:`bench.leaderboard.gallery`).

    Raises
    ------
    LeaderboardError
        No runs in the store, a task without a definition, inconsistent runs, or an ``out``
        that is not a leaderboard.
    """
    store, out = Store(results), Path(out)
    _check_out(out, store.root)
    broken: list[tuple[Path, str]] = []
    loaded = [load_challenge(path) for path in challenges]
    # a challenge's boards draw on every run of its task (the ledger picks), a local board on the latest
    runs = ([run for task in sorted({c.task for c in loaded}) for run in store.runs(task, broken=broken)]
            if loaded else store.latest_runs(broken=broken))
    # relative to the store: the page names the file without publishing the host's folders
    skipped = tuple((str(path.relative_to(store.root)), message.replace(f"{store.root}{os.sep}", ""))
                    for path, message in broken)
    if not runs and not loaded:
        raise LeaderboardError(f"{store.root}: the results store holds no runs; score a submission "
                               "first (bench score / bench evaluate)")
    task_ids = sorted({c.task for c in loaded} if loaded else {run.task for run in runs})
    events = Ledger(store.root).events() if loaded else []
    now = now or utc_now()
    env = _environment()
    trees = gallery.Sources(prepared_dirs, run_dirs)
    tasks = []
    out.parent.mkdir(parents=True, exist_ok=True)
    # under a lease (bench.leases): a build killed by SIGKILL leaves a folder the next bench removes
    with temp_dir(out.parent, prefix=f".{out.name}.", suffix=".tmp") as site:
        _copy_static(site / "static")
        for done, task_id in enumerate(task_ids):
            if progress:
                progress(done, len(task_ids), f"task {task_id}")
            spec = _load_spec(task_id, tasks_dir)
            task_runs = [run for run in runs if run.task == task_id]
            boards = _task_boards(spec, task_runs, loaded, events, now)
            analyses = {board.key: _analysis(store, board, task_runs) for board in boards
                        if board.ranking is not None}
            # every run, not only the counted ones: the entry pages list each run with its receipt
            stored = task_runs if loaded else store.runs(task_id, broken=[])
            _write_task(env, site / task_id, spec, boards, analyses,
                        [run for run in stored if not run.reference_entry], tasks_dir, trees)
            tasks.append((spec, boards, analyses))
        write_text(site / "index.html", env.get_template("index.html").render(
            root="", tasks=[(spec, boards) for spec, boards, _ in tasks], skipped=skipped,
            challenges=loaded, page_title="Leaderboard"))
        write_json(site / "leaderboard.json", {"schema_version": SCHEMA_VERSION, "tasks": [
            _task_json(spec, boards, analyses) for spec, boards, analyses in tasks]})
        mark_tree(site, SITE_KIND)
        for name in KEPT:
            if (out / name).is_file():
                write_bytes(site / name, (out / name).read_bytes())
        publish_modes(site)
        _swap(site, out)
    if progress:
        progress(len(task_ids), len(task_ids), "done")
    return LeaderboardReport(out / "index.html", tuple(task_ids), sum(len(b) for _, b, _ in tasks),
                             sum(len(board.entries) for _, b, _ in tasks for board in b), skipped)


def _task_boards(spec: TaskSpec, task_runs: list[StoredRun], challenges: list[Challenge], events,
                 now: datetime) -> list[Board]:
    """The task's boards: its challenges' phases when challenges are given, else latest per split."""
    entries = [run for run in task_runs if not run.reference_entry]
    if not challenges:
        return build_boards(spec, entries)
    boards = [board for challenge in challenges if challenge.task == spec.id
              for board in build_phase_boards(spec, challenge, entries, events, now=now)]
    keys = [board.key for board in boards]
    if len(set(keys)) != len(keys):
        raise LeaderboardError(f"task {spec.id}: two challenges give phase boards of the same name "
                               f"({keys}); give each challenge a distinct name")
    return boards


def _analysis(store: Store, board: Board, task_runs: list[StoredRun]) -> BoardAnalysis:
    """The board's analysis, with the reference entries and the reader band of its split."""
    references = [run for run in task_runs if run.reference_entry and run.split_name == board.split_name
                  and run.split == board.split and run.split_sha256 == board.split_sha256]
    band = reader_band_folder(store.root, board.spec.id, board.split_name, board.split)
    return analyse_board(board, references=references, band_dir=band)


def _check_out(out: Path, results: Path) -> None:
    """Refuse an ``out`` whose replacement would delete what the harness did not write there."""
    site, store = out.absolute(), results.absolute()
    if store.is_relative_to(site) or site.is_relative_to(store):
        raise LeaderboardError(f"--out {out} and the results store {results} overlap; building replaces "
                               "--out entirely. Choose an --out outside the store (e.g. a sibling folder).")
    problem = foreign_content(out, SITE_KIND, kept=KEPT)
    if problem is not None:
        raise LeaderboardError(f"{problem}. `bench leaderboard build` replaces --out entirely, so it only "
                               "replaces a site it built; choose an empty or new --out directory.")


def _swap(site: Path, out: Path) -> None:
    """Put the finished ``site`` at ``out``: two renames, the previous site removed after
    (and put back if the second rename fails)."""
    if not out.exists():
        os.replace(site, out)
        return
    with temp_dir(out.parent, prefix=f".{out.name}.", suffix=".old") as old:
        os.replace(out, old / out.name)
        try:
            os.replace(site, out)
        except BaseException:
            os.replace(old / out.name, out)
            raise


def _load_spec(task_id: str, tasks_dir) -> TaskSpec:
    try:
        return load_task(task_id, directory=tasks_dir)
    except TaskSpecError as error:
        raise LeaderboardError(f"the store has runs of task {task_id!r} but its definition cannot be "
                               f"loaded; pass --tasks-dir pointing at its folder. {error}") from error


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("bench.leaderboard", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["num"] = _num
    env.filters["sortkey"] = _sortkey
    env.filters["pretty"] = lambda value: json.dumps(plain(value), indent=1, sort_keys=True,
                                                     ensure_ascii=False)
    env.globals.update(METHOD_TEXT=METHOD_TEXT, SCORE_LABEL=SCORE_LABEL, METRICS=METRICS,
                       flatten=_flatten, pages=pages, entries=entries)
    return env


def _copy_static(target: Path) -> None:
    target.mkdir(parents=True)
    for item in sorted(resources.files("bench.leaderboard").joinpath("static").iterdir(),
                       key=lambda p: p.name):
        write_bytes(target / item.name, item.read_bytes())


def _write_task(env: jinja2.Environment, folder: Path, spec: TaskSpec, boards: list[Board],
                analyses: dict[str, BoardAnalysis], stored: list[StoredRun], tasks_dir,
                trees: gallery.Sources) -> None:
    plots_of, withheld = {}, {}
    sources = data_sources(spec)
    citations = {board.key: cite_board(spec, board.split_name, board.split, board.split_sha256)
                 for board in boards}
    for board in boards:
        if board.ranking is None:  # a sealed or empty phase: nothing to draw or to page
            continue
        withheld[board.key] = plots.withheld(board)
        drawn = {"distribution": plots.distribution_svg(board), "ranks": plots.blob_svg(board),
                 "roc": plots.roc_svg(board)}
        plots_of[board.key] = {}
        for kind, svg in drawn.items():
            if svg is not None:
                write_bytes(folder / f"{board.key}-{kind}.svg", svg)
                plots_of[board.key][kind] = f"{board.key}-{kind}.svg"
        thumbnails, no_gallery = gallery.board_galleries(board, folder / board.key, trees)
        for entry in board.entries:
            reliability = {}
            if not board.hide_per_case:
                for head, calibration in (entry.run.scores.get("calibration") or {}).items():
                    svg = plots.reliability_svg(calibration)
                    if svg is not None:
                        page = Path(entry.page)  # beside the entry's page, linked by file name
                        name = f"{page.stem}-calibration-{slugify(head)}.svg"
                        write_bytes(folder / board.key / page.parent / name, svg)
                        reliability[head] = name
            runs = entries.board_runs(entry, board, stored)
            links = entries.write_entry_files(folder / board.key, entry, board, runs)
            links["no_gallery"] = no_gallery.get(entry.run.submission, "")
            if thumbnails.get(entry.run.submission):
                links["gallery"] = gallery.gallery_href(entry)
                write_text(folder / board.key / entries.entry_folder(entry) / gallery.PAGE,
                           env.get_template("gallery.html").render(
                               root="../../../../", spec=spec, board=board, entry=entry,
                               entry_page=Path(entry.page).name, thumbnails=thumbnails[entry.run.submission],
                               page_title=f"Case gallery · {entry.run.name} · {spec.title}"))
            write_text(folder / board.key / entry.page, env.get_template("submission.html").render(
                root="../../../", spec=spec, board=board, entry=entry, reliability=reliability,
                history=entries.history(entry, board, runs), links=links, sources=sources,
                receipt=entries.receipt_href(entry, entry.run.run_id),
                citation=cite_result(entry.run.path, directory=tasks_dir),
                page_title=f"{entry.run.name} · {spec.title}",
                per_case=None if board.hide_per_case else _per_case_rows(entry.run.per_case)))
    write_text(folder / "index.html", env.get_template("task.html").render(
        root="../", spec=spec, boards=boards, plots=plots_of, withheld=withheld, csv=f"{spec.id}.csv",
        analyses=analyses, sources=sources, citations=citations, page_title=spec.title))
    write_csv(folder / f"{spec.id}.csv", spreadsheet_safe(_task_table(spec, boards)))


def _per_case_rows(table: pd.DataFrame) -> dict[str, Any]:
    """Columns (name, ``number`` or ``text`` for sorting) and rows with missing values as None."""
    types = ["number" if pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])
             else "text" for c in table.columns]
    return {"columns": list(zip(table.columns, types, strict=True)),
            "rows": [[None if is_missing(v) else v for v in row] for row in table.itertuples(index=False)]}


def _entry_json(entry: BoardEntry, spec: TaskSpec) -> dict[str, Any]:
    return {
        "rank": entry.rank, "submission": entry.run.name, "slug": entry.run.submission,
        "team": entry.run.team, "run_id": entry.run.run_id, "primary_metric": spec.primary_key,
        "value": json_number(entry.value), "ci_low": json_number(entry.ci_low),
        "ci_high": json_number(entry.ci_high), "ranking_score": json_number(entry.ranking_score),
        "rank_low": entry.rank_low, "rank_high": entry.rank_high,
        "median_rank": json_number(entry.median_rank), "tied_group": entry.group,
        "cases": entry.cases, "ok": entry.ok, "failures": entry.failures,
        "task_sha256": entry.run.task_sha256, "task_spec_matches": entry.spec_matches,
        "started_at": entry.run.receipt["started_at"], "harness": entries.harness_text(entry.run.receipt),
        "self_reported": entry.run.self_reported,
        "history": [_history_json(item) for item in entry.history],
    }


def _history_json(item: HistoryEvent) -> dict[str, Any]:
    return {"at": item.at, "event": item.event, "reason": item.reason, "run_id": item.run_id,
            "value": json_number(item.value), "counts": item.counts}


def _phase_json(board: Board) -> dict[str, Any] | None:
    phase = board.phase
    if phase is None:
        return None
    return {"challenge": phase.challenge, "challenge_title": phase.challenge_title, "id": phase.id,
            "title": phase.title, "opens": _utc(phase.opens), "closes": _utc(phase.closes),
            "counts": phase.counts, "scores": phase.scores,
            "limits": {"per_day": phase.per_day, "total": phase.total}, "sealed": phase.sealed}


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _analysis_json(analysis: BoardAnalysis) -> dict[str, Any]:
    power = analysis.power
    readers = analysis.readers
    return {
        "power": None if power is None else {
            "method": power.method, "alpha": power.alpha, "power": power.power, "n_cases": power.n_cases,
            "mdd": json_number(power.mdd),
            "gaps": [{"upper": g.upper, "lower": g.lower, "gap": json_number(g.gap),
                      "standard_error": json_number(g.standard_error), "mdd": json_number(g.mdd),
                      "resolvable": g.resolvable} for g in power.gaps]},
        "definition_sensitivity": [variant.as_dict() for variant in analysis.sensitivity],
        "reference_lines": [{"name": r.name, "kind": r.kind, "explanation": r.explanation,
                             "value": json_number(r.value), "ci_low": json_number(r.ci_low),
                             "ci_high": json_number(r.ci_high)} for r in analysis.references],
        "reader_band": None if readers is None else {
            "kind": readers.kind, "readers": [dict(r) for r in readers.readers],
            "low": json_number(readers.low),
            "high": json_number(readers.high), "margin": readers.margin,
            "non_inferiority": [{"entry": t.entry, "difference": json_number(t.difference),
                                 "lower_bound": json_number(t.lower_bound), "n_cases": t.n_cases,
                                 "non_inferior": t.non_inferior} for t in readers.tests]},
    }


def _task_json(spec: TaskSpec, boards: list[Board], analyses: dict[str, BoardAnalysis]) -> dict[str, Any]:
    return {
        "id": spec.id, "title": spec.title, "kind": spec.kind, "task_sha256": spec.sha256,
        "primary_metric": spec.primary_key, "direction": spec.primary_direction,
        "ranking": spec.ranking.model_dump(mode="json"),
        "policies": spec.policies.model_dump(mode="json"),
        "boards": [{
            "key": board.key, "split_name": board.split_name, "split": board.split,
            "split_sha256": board.split_sha256, "per_case_hidden": board.hide_per_case,
            "note": board.note, "phase": _phase_json(board),
            "bootstrap": None if board.bootstrap is None else {
                "resamples": board.bootstrap.resamples, "kept": int(board.bootstrap.ranks.shape[0]),
                "dropped": board.bootstrap.dropped, "stratified": spec.bootstrap.stratify,
                "seed": board.bootstrap.seed, "confidence": board.bootstrap.confidence,
                "unit": board.clusters,
                "kendall_tau": {k: json_number(v) for k, v in board.bootstrap.tau_summary.items()}},
            "entries": [_entry_json(entry, spec) for entry in board.entries],
            "submitted": [{"team": s.team, "submission": s.name, "slug": s.slug, "first_at": s.first_at,
                           "last_at": s.last_at, "scored": s.scored, "counted": s.counted,
                           "history": [_history_json(item) for item in s.history]} for s in board.submitted],
            "analysis": _analysis_json(analyses[board.key]) if board.key in analyses else None,
        } for board in boards],
    }


def _task_table(spec: TaskSpec, boards: list[Board]) -> pd.DataFrame:
    rows = []
    for board in boards:
        for entry in board.entries:
            row = {"task": spec.id, "split_name": board.split_name, "split": board.split,
                   "split_sha256": board.split_sha256}
            if board.phase is not None:
                row.update(challenge=board.phase.challenge, phase=board.phase.id)
            row.update(_entry_json(entry, spec))
            del row["history"]  # a list: leaderboard.json carries it
            rows.append(row)
    return pd.DataFrame(rows)


def _num(value: Any, digits: int = 3) -> str:
    """Format a number for a table cell; an en dash for missing values."""
    if value is None or isinstance(value, bool):
        return "–" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        text = f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.{digits}g}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"
    return str(value)


def _sortkey(value: Any) -> str:
    """``data-sort`` attribute value: numbers as plain decimals, text as is, missing as empty."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(float(value))
    return str(value)


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested mappings as (dotted key, leaf) pairs, sorted by key; lists stay leaves."""
    if hasattr(obj, "items"):
        pairs = []
        for key in sorted(obj):
            pairs.extend(_flatten(obj[key], f"{prefix}{key}."))
        return pairs
    return [(prefix[:-1], plain(obj))]
