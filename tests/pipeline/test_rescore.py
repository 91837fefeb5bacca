"""bench rescore: an unchanged store reports nothing; a changed metric definition shows in the diff."""

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

import bench.metrics.classification as classification
import bench.scoring.segmentation as score_segmentation
from bench.cli import app
from bench.leaderboard.site import build_leaderboard
from bench.pipeline.rescore import rescore_store
from bench.scoring.score import score_and_store
from bench.tasks import load_task
from tests.helpers.scoring_fixtures import make_tasks_dir, pin_fixture_split, write_reference, write_run
from tests.scoring.test_score import seg_case_setup

COVID = "ricord-ct-covid-cls"


def _fast(raw):
    raw["bootstrap"]["resamples"] = 200


@pytest.fixture
def covid_store(tmp_path, monkeypatch):
    """Two entries on one five-case reference: A ranks first (AUROC 1), B second (AUROC 4/6)."""
    make_tasks_dir(tmp_path, monkeypatch, COVID, edit=_fast)
    labels = {"a": "positive", "b": "positive", "c": "negative", "d": "negative", "e": "positive"}
    pin_fixture_split(COVID, [(c, f"p{c}") for c in labels])
    reference = write_reference(
        tmp_path / "prepared",
        COVID,
        [{"case_id": c, "patient_id": f"p{c}", "covid": label} for c, label in labels.items()],
    )
    entries = {
        "A": {"a": 0.9, "b": 0.8, "c": 0.2, "d": 0.1, "e": 0.7},
        "B": {"a": 0.9, "b": 0.4, "c": 0.6, "d": 0.1, "e": 0.5},
    }
    spec = load_task(COVID)
    for name, scores in entries.items():
        run = write_run(
            tmp_path / f"run-{name}",
            COVID,
            {c: ("ok", "") for c in scores},
            name=name,
            predictions={c: {"negative": 1 - s, "positive": s} for c, s in scores.items()},
        )
        score_and_store(spec, run, reference, results=tmp_path / "results", workers=1)
    return tmp_path / "results"


def _score(tmp_path, reference, name, scores):
    run = write_run(tmp_path / f"run-{name}", COVID, {c: ("ok", "") for c in scores}, name=name,
                    predictions={c: {"negative": 1 - s, "positive": s} for c, s in scores.items()})
    score_and_store(load_task(COVID), run, reference, results=tmp_path / "results", workers=1)


def test_rescore_ranks_are_the_leaderboards_after_the_split_is_pinned_again(covid_store, tmp_path):
    """A and B (AUROC 1 and 4/6) on the first pin; the split is pinned again with one more case and
    C (AUROC 5/9) scored on it. The leaderboard shows two boards, C first on its own; rescore
    reports the very same ranks per board, AUROC primaries included (A and B cannot be rescored:
    their reference no longer matches the pinned split)."""
    labels = {"a": "positive", "b": "positive", "c": "negative", "d": "negative", "e": "positive",
              "f": "negative"}
    pin_fixture_split(COVID, [(c, f"p{c}") for c in labels])
    cases = [{"case_id": c, "patient_id": f"p{c}", "covid": label} for c, label in labels.items()]
    reference = write_reference(tmp_path / "prepared-again", COVID, cases)
    _score(tmp_path, reference, "C", {"a": 0.9, "b": 0.2, "c": 0.6, "d": 0.1, "e": 0.5, "f": 0.7})
    build_leaderboard(covid_store, tmp_path / "site")
    boards = json.loads((tmp_path / "site" / "leaderboard.json").read_text())["tasks"][0]["boards"]
    shown = {(board["split_sha256"], entry["run_id"]): entry["rank"]
             for board in boards for entry in board["entries"]}
    assert len(boards) == 2
    assert sorted(len(board["entries"]) for board in boards) == [1, 2]
    report = rescore_store(covid_store, workers=1)
    assert {(row.split_sha256, row.run_id): row.stored for row in report.ranks} == shown
    assert {(row.split_sha256, row.run_id): row.now for row in report.ranks} == shown
    assert sorted(shown.values()) == [1, 1, 2] and report.checked == 1
    assert not any(change.what.startswith("rank") for change in report.changes)


def test_unchanged_store_reports_no_changes(covid_store):
    report = rescore_store(covid_store, workers=1)
    assert report.checked == 2
    assert report.changes == () and report.skipped == ()


def test_changed_metric_definition_shows_values_and_ranks(covid_store, monkeypatch):
    honest = classification.auroc
    monkeypatch.setattr(classification, "auroc", lambda y, s: 1.0 - honest(y, s))  # an upgrade gone wrong
    report = rescore_store(covid_store, workers=1)
    changed = {(c.submission, c.what): (c.stored, c.now) for c in report.changes}
    assert changed[("Team T / A", "covid.auroc")] == ("1", "0")
    assert changed[("Team T / B", "covid.auroc")] == ("0.6666666667", "0.3333333333")
    assert changed[("Team T / A", "rank (test)")] == ("1", "2")
    assert changed[("Team T / B", "rank (test)")] == ("2", "1")
    assert not any(what.startswith(("covid.sensitivity", "per_case")) for _, what in changed)


def test_changed_segmentation_metric_shows_per_case_and_mean(tmp_path, monkeypatch):
    spec, run, reference = seg_case_setup(tmp_path, monkeypatch)
    score_and_store(spec, run, reference, results=tmp_path / "results", workers=1)
    assert rescore_store(tmp_path / "results", workers=1).changes == ()
    honest = score_segmentation.score_case

    def squared_dice(pred, ref, **options):
        scores = honest(pred, ref, **options)
        return type(scores)(**{**scores.as_dict(), "dice": scores.dice**2})

    monkeypatch.setattr(score_segmentation, "score_case", squared_dice)
    report = rescore_store(tmp_path / "results", workers=1)
    whats = {c.what: (c.stored, c.now) for c in report.changes}
    assert whats["dice"] == (f"{8 / 15:.10g}", f"{(4 / 9 + 1 + 1) / 5:.10g}")
    assert whats["per_case.dice (1 cases, e.g. a)"] == (f"{2 / 3:.10g}", f"{4 / 9:.10g}")
    assert not any(w.startswith("iou") for w in whats)


def test_runs_whose_inputs_are_gone_are_listed_as_skipped(covid_store, tmp_path):
    shutil.rmtree(tmp_path / "run-B")
    report = rescore_store(covid_store, workers=1)
    assert report.checked == 1
    ((label, reason),) = report.skipped
    assert "/B/" in label and "run-B" in reason and "not there" in reason


def test_spec_change_is_refused_and_reported_not_hidden(covid_store, tmp_path, monkeypatch):
    make_tasks_dir(tmp_path, monkeypatch, COVID, edit=lambda raw: raw["bootstrap"].update(resamples=300))
    report = rescore_store(covid_store, workers=1)
    assert report.checked == 0 and len(report.skipped) == 2
    assert all("task spec sha256" in reason for _, reason in report.skipped)


def test_cli_rescore(covid_store, monkeypatch):
    result = CliRunner().invoke(app, ["rescore", "--results", str(covid_store), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "no changes" in result.output and "2 stored run(s)" in result.output
    honest = classification.auroc
    monkeypatch.setattr(classification, "auroc", lambda y, s: float(np.round(honest(y, s), 1)))
    result = CliRunner().invoke(app, ["rescore", "--results", str(covid_store), "--workers", "1"])
    assert result.exit_code == 1
    assert "covid.auroc" in result.output and "0.6666666667" in result.output


def test_challenge_rescore_picks_the_best_run_again_on_the_fresh_values(covid_store, tmp_path, monkeypatch):
    """A best-run phase: entry A's first run is best as stored (AUROC 1 vs 4/6); with an AUROC that an
    upgrade inverted, its second run is best, and rescore reports the counted run that changes."""
    from bench.challenges import Event, Ledger
    from bench.store import Store

    scores = {"a": 0.9, "b": 0.4, "c": 0.6, "d": 0.1, "e": 0.5}  # B's: AUROC 4/6
    run = write_run(tmp_path / "run-A2", COVID, {c: ("ok", "") for c in scores}, name="A",
                    predictions={c: {"negative": 1 - s, "positive": s} for c, s in scores.items()})
    score_and_store(load_task(COVID), run, tmp_path / "prepared" / "reference", results=covid_store,
                    workers=1)
    runs = {run.run_id: run for run in Store(covid_store).runs(COVID)}
    first, second = sorted(r for r, run in runs.items() if run.name == "A")
    sample = runs[first]
    challenge = tmp_path / "challenge.yaml"
    challenge.write_text(
        f"name: covid\ntitle: COVID\ntask: {COVID}\nphases:\n"
        f"  - {{id: final, title: Final, split_name: {sample.split_name}, split: {sample.split},\n"
        f"     split_sha256: '{sample.split_sha256}', opens: 2026-01-01T00:00:00Z,\n"
        "     closes: 2030-01-01T00:00:00Z, limits: {per_day: 5, total: 5}, counts: best,\n"
        "     scores: after_close}\n")
    for run_id in (first, second):
        Ledger(covid_store).append(Event("2026-11-20T09:00:00Z", "covid", "final", "Team T", "A", "scored",
                                         run_id=run_id))
    report = rescore_store(covid_store, workers=1, challenges=[challenge])
    assert [(row.board, row.submission, row.run_id, row.stored) for row in report.ranks] == [
        ("covid-final", "Team T / A", first, 1)]  # B is not in the ledger: not on the phase board
    assert not any(c.what.startswith("counted run") for c in report.changes)
    honest = classification.auroc
    monkeypatch.setattr(classification, "auroc", lambda y, s: 1.0 - honest(y, s))
    report = rescore_store(covid_store, workers=1, challenges=[challenge])
    changed = {(c.submission, c.what): (c.stored, c.now) for c in report.changes}
    assert changed[("Team T / A", "counted run (covid-final)")] == (first, second)
