"""Challenge phases: the definition, the append-only ledger, limits and which run counts."""

import json
from datetime import UTC, datetime

import pytest

from bench.challenges import (
    Challenge,
    Event,
    Ledger,
    check_attempt,
    counted_runs,
    load_challenge,
)
from bench.errors import ChallengeError
from bench.pipeline.demo import BUILTIN_SUBMISSIONS
from bench.store import Store
from bench.tasks import load_task
from tests.helpers.board_fixtures import SEG_TASK, seg_run

SHA = "ab" * 32


def _challenge(counts="best", scores="immediately"):
    return Challenge.model_validate(
        {
            "name": "ricord-seg",
            "title": "RICORD lesions",
            "task": SEG_TASK,
            "phases": [
                {
                    "id": "validation",
                    "title": "Public validation",
                    "split_name": "synthetic",
                    "split": "validation",
                    "split_sha256": SHA,
                    "opens": "2026-11-01T00:00:00Z",
                    "closes": "2026-11-30T00:00:00Z",
                    "limits": {"per_day": 2, "total": 3},
                    "counts": counts,
                    "scores": scores,
                }
            ],
        }
    )


def _event(kind, team="Team A", entry="model", at="2026-11-20T09:00:00Z", run_id=""):
    return Event(
        at=at, challenge="ricord-seg", phase="validation", team=team, entry=entry, event=kind, run_id=run_id
    )


def test_definition_is_validated_field_by_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: Bad Name\ntitle: x\ntask: t\nphases:\n  - id: v\n    title: v\n    split_name: s\n"
        "    split: dev\n    split_sha256: xyz\n    opens: 2026-11-02T00:00:00Z\n"
        "    closes: 2026-11-01T00:00:00Z\n    limits: {per_day: 0, total: 1}\n"
    )
    with pytest.raises(ChallengeError) as error:
        load_challenge(path)
    message = str(error.value)
    for field in ("name", "phases.0.split", "phases.0.split_sha256", "phases.0.limits.per_day"):
        assert f"  - {field}:" in message, message


def test_window_and_limits_refuse_with_a_reason():
    challenge = _challenge()
    phase = challenge.phase("validation")
    entry = "Team A"
    assert "opens at 2026-11-01" in check_attempt(
        challenge, phase, entry, [], datetime(2026, 10, 31, tzinfo=UTC)
    )
    assert "closed at 2026-11-30" in check_attempt(
        challenge, phase, entry, [], datetime(2026, 12, 1, tzinfo=UTC)
    )
    now = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
    two_today = [_event("scored"), _event("scored", entry="other")]  # the limit is per team
    assert "used its 2 scored attempt(s) of 2026-11-20" in check_attempt(
        challenge, phase, entry, two_today, now
    )
    refused = [_event("refused"), _event("failed"), _event("scored")]  # only scored attempts count
    assert check_attempt(challenge, phase, entry, refused, now) is None
    three = [
        _event("scored", at="2026-11-18T09:00:00Z"),
        _event("scored", at="2026-11-19T09:00:00Z"),
        _event("scored", at="2026-11-19T10:00:00Z"),
    ]
    assert "used all 3 scored attempts" in check_attempt(challenge, phase, entry, three, now)
    assert check_attempt(challenge, phase, "Team B", three, now) is None
    withdrawn = [_event("withdrawn", at="2026-11-19T09:00:00Z")]
    assert "model was withdrawn from phase validation at 2026-11-19" in check_attempt(
        challenge, phase, entry, withdrawn, now, entry="model")
    assert check_attempt(challenge, phase, entry, withdrawn, now, entry="other") is None


def test_ledger_appends_and_reads_back_in_order(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.append(_event("refused"))
    ledger.append(_event("scored", run_id="r1"))
    assert [e.event for e in Ledger(tmp_path).events("ricord-seg", "validation")] == ["refused", "scored"]
    assert (tmp_path / "ledger.jsonl").read_text().count("\n") == 2
    with pytest.raises(ChallengeError, match="unknown ledger event"):
        ledger.append(_event("deleted"))


def test_counted_run_follows_the_phase_rule_and_withdrawal(tmp_path):
    spec = load_task(SEG_TASK)
    store = Store(tmp_path)
    days = [datetime(2026, 11, d, 9, 0, tzinfo=UTC) for d in (18, 19, 20)]
    a1 = seg_run(store, spec, "model", [0.9, 0.9], split="validation", started=days[0])
    a2 = seg_run(store, spec, "model", [0.5, 0.5], split="validation", started=days[1])
    b1 = seg_run(store, spec, "model", [0.7, 0.7], split="validation", team="Team B", started=days[0])
    c1 = seg_run(store, spec, "model", [0.8, 0.8], split="validation", team="Team C", started=days[0])
    stray = seg_run(store, spec, "model", [1.0, 1.0], split="validation", team="Team B", started=days[2])
    events = [
        _event("scored", run_id=a1.run_id),
        _event("scored", run_id=a2.run_id),
        _event("scored", team="Team B", run_id=b1.run_id),
        _event("scored", team="Team C", run_id=c1.run_id),
        _event("withdrawn", team="Team C"),
    ]
    runs = store.runs(SEG_TASK)
    assert stray in runs or stray.run_id in {r.run_id for r in runs}  # stored, but not in the ledger

    def counted(counts):
        chosen = _challenge(counts)
        picked = counted_runs(
            chosen, chosen.phase("validation"), runs, events, direction="higher", primary="dice"
        )
        return [(r.team, r.run_id) for r in picked]

    assert counted("best") == [("Team A", a1.run_id), ("Team B", b1.run_id)]
    assert counted("latest") == [("Team A", a2.run_id), ("Team B", b1.run_id)]
    events.append(_event("chosen", run_id=a2.run_id))
    assert counted("chosen") == [("Team A", a2.run_id)]


def test_cli_refusal_is_recorded_and_withdraw_appends(tmp_path):
    from typer.testing import CliRunner

    from bench.cli import app

    path = tmp_path / "challenge.yaml"
    path.write_text(
        "name: ricord-seg\ntitle: RICORD lesions\ntask: ricord-1a-lesion-seg\nphases:\n"
        "  - id: closed\n    title: Closed phase\n    split_name: synthetic\n    split: validation\n"
        f"    split_sha256: '{SHA}'\n    opens: 2020-01-01T00:00:00Z\n    closes: 2020-02-01T00:00:00Z\n"
        "    limits: {per_day: 1, total: 1}\n"
    )
    submission = str(BUILTIN_SUBMISSIONS / "threshold-seg")
    runner = CliRunner()
    args = [
        "evaluate",
        submission,
        "--root",
        str(tmp_path),
        "--challenge",
        str(path),
        "--phase",
        "closed",
        "--results",
        str(tmp_path / "results"),
        "--team",
        "Team A",
        "--entry",
        "model",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code != 0 and "closed at 2020-02-01" in result.output
    result = runner.invoke(
        app,
        [
            "withdraw",
            "--challenge",
            str(path),
            "--phase",
            "closed",
            "--team",
            "Team A",
            "--entry",
            "model",
            "--results",
            str(tmp_path / "results"),
        ],
    )
    assert result.exit_code == 0, result.output
    events = Ledger(tmp_path / "results").events("ricord-seg", "closed")
    assert [(e.event, e.team, e.entry) for e in events] == [
        ("refused", "Team A", "model"),
        ("withdrawn", "Team A", "model"),
    ]
    assert "closed at 2020-02-01" in events[0].reason


def _two_phase_file(tmp_path):
    """A challenge on the fixture split: a public best-run phase and a sealed latest-run test phase."""
    path = tmp_path / "two-phase.yaml"
    path.write_text(
        f"name: ricord-seg\ntitle: RICORD lesions\ntask: {SEG_TASK}\nphases:\n"
        "  - {id: validation, title: Public validation, split_name: synthetic, split: validation,\n"
        f"     split_sha256: '{SHA}', opens: 2026-11-01T00:00:00Z, closes: 2026-11-30T00:00:00Z,\n"
        "     limits: {per_day: 2, total: 5}, counts: best}\n"
        "  - {id: test, title: Hidden test, split_name: synthetic, split: test,\n"
        f"     split_sha256: '{SHA}', opens: 2026-11-01T00:00:00Z, closes: 2026-11-30T00:00:00Z,\n"
        "     limits: {per_day: 1, total: 2}, scores: after_close}\n"
    )
    return path


def _two_phase_store(tmp_path):
    """Team A: two validation runs (the first better) and a test run; Team B: one of each, then
    withdrawn from validation; a stray test run of Team C that the ledger never recorded."""
    spec = load_task(SEG_TASK)
    store, ledger = Store(tmp_path / "results"), Ledger(tmp_path / "results")
    day = [datetime(2026, 11, d, 9, 0, tzinfo=UTC) for d in (18, 19, 20)]
    a1 = seg_run(store, spec, "model", [0.91, 0.93], split="validation", started=day[0])
    a2 = seg_run(store, spec, "model", [0.51, 0.53], split="validation", started=day[1])
    at = seg_run(store, spec, "model", [0.611, 0.613], split="test", started=day[1])
    b1 = seg_run(store, spec, "unet", [0.71, 0.73], split="validation", team="Team B", started=day[0])
    bt = seg_run(store, spec, "unet", [0.417, 0.419], split="test", team="Team B", started=day[2])
    seg_run(store, spec, "x", [0.99, 0.99], split="test", team="Team C", started=day[2])

    logged = ((a1, "validation"), (a2, "validation"), (b1, "validation"), (at, "test"), (bt, "test"))
    for run, phase in logged:
        stamp = datetime.strptime(run.run_id[:15], "%Y%m%dT%H%M%S").strftime("%Y-%m-%dT%H:%M:%SZ")
        ledger.append(Event(stamp, "ricord-seg", phase, run.team, run.name, "scored", run_id=run.run_id))
    ledger.append(Event("2026-11-21T09:00:00Z", "ricord-seg", "test", "Team A", "model", "refused",
                        "team 'Team A' has used all 2 scored attempts of phase test"))
    ledger.append(Event("2026-11-21T10:00:00Z", "ricord-seg", "validation", "Team B", "unet", "withdrawn",
                        "a bug in our post-processing"))
    return spec, store, {"a1": a1, "a2": a2, "at": at, "b1": b1, "bt": bt}


def test_phase_boards_count_by_the_ledger_and_seal_until_close(tmp_path):
    from bench.ranking.board import build_phase_boards

    spec, store, runs = _two_phase_store(tmp_path)
    challenge = load_challenge(_two_phase_file(tmp_path))
    events = Ledger(store.root).events()
    before = datetime(2026, 11, 25, tzinfo=UTC)
    validation, test = build_phase_boards(spec, challenge, store.runs(SEG_TASK), events, now=before)
    assert validation.key == "ricord-seg-validation" and not validation.sealed
    assert [(e.run.team, e.run.run_id, e.value) for e in validation.entries] == [
        ("Team A", runs["a1"].run_id, pytest.approx(0.92))]  # best run; Team B withdrawn
    history = validation.entries[0].history
    assert [(h.event, h.run_id, h.counts) for h in history] == [
        ("scored", runs["a1"].run_id, True), ("scored", runs["a2"].run_id, False)]
    assert [h.value for h in history] == [pytest.approx(0.92), pytest.approx(0.52)]
    assert test.sealed and test.entries == () and test.ranking is None and test.matrix is None
    assert [(s.team, s.name, s.scored) for s in test.submitted] == [
        ("Team A", "model", 1), ("Team B", "unet", 1)]
    assert all(h.value is None and not h.counts for s in test.submitted for h in s.history)
    assert [h.event for h in test.submitted[0].history] == ["scored", "refused"]
    after = datetime(2026, 11, 30, tzinfo=UTC)
    _, test = build_phase_boards(spec, challenge, store.runs(SEG_TASK), events, now=after)
    assert not test.sealed and test.submitted == ()
    assert [(e.rank, e.run.team, e.run.run_id) for e in test.entries] == [
        (1, "Team A", runs["at"].run_id), (2, "Team B", runs["bt"].run_id)]  # Team C not in the ledger


def test_site_of_a_sealed_phase_holds_no_score_until_it_closes(tmp_path):
    from bench.leaderboard import build_leaderboard

    _, store, runs = _two_phase_store(tmp_path)
    challenge = _two_phase_file(tmp_path)
    site = tmp_path / "site"
    build_leaderboard(store.root, site, challenges=[challenge], now=datetime(2026, 11, 25, tzinfo=UTC))
    board = {b["key"]: b for b in json.loads((site / "leaderboard.json").read_text())["tasks"][0]["boards"]}
    assert set(board) == {"ricord-seg-validation", "ricord-seg-test"}
    sealed = board["ricord-seg-test"]
    assert sealed["phase"]["sealed"] and sealed["entries"] == [] and sealed["analysis"] is None
    assert [(s["team"], s["submission"], s["first_at"]) for s in sealed["submitted"]] == [
        ("Team A", "model", "2026-11-19T09:00:00Z"), ("Team B", "unet", "2026-11-20T09:00:00Z")]
    public = board["ricord-seg-validation"]
    assert [(e["team"], e["run_id"]) for e in public["entries"]] == [("Team A", runs["a1"].run_id)]
    assert [(h["run_id"], h["counts"]) for h in public["entries"][0]["history"]] == [
        (runs["a1"].run_id, True), (runs["a2"].run_id, False)]
    page = (site / SEG_TASK / "index.html").read_text()
    assert "Scores are published when the phase closes on 2026-11-30 00:00 UTC" in page
    for path in site.rglob("*"):  # the test runs' Dice (0.612, 0.418) and their cases nowhere
        if path.is_file() and path.suffix in (".html", ".json", ".csv", ".svg"):
            text = path.read_text()
            assert "0.612" not in text and "0.418" not in text and "0.61" not in text, path
    assert not list((site / SEG_TASK).glob("ricord-seg-test*"))  # no plots, no entry pages
    build_leaderboard(store.root, site, challenges=[challenge], now=datetime(2026, 11, 30, tzinfo=UTC))
    board = {b["key"]: b for b in json.loads((site / "leaderboard.json").read_text())["tasks"][0]["boards"]}
    opened = board["ricord-seg-test"]
    assert [(e["team"], e["value"]) for e in opened["entries"]] == [
        ("Team A", pytest.approx(0.612)), ("Team B", pytest.approx(0.418))]
    assert "Scores are published" not in (site / SEG_TASK / "index.html").read_text()


def test_example_challenge_loads_and_pins_the_shipped_split():
    from pathlib import Path

    from bench.splits.pinned import load_split

    example = load_challenge(Path(__file__).resolve().parents[1] / "challenges" / "ricord-seg-synthetic.yaml")
    spec = load_task(example.task)
    assert {phase.split for phase in example.phases} == {"validation", "test"}
    for phase in example.phases:
        pinned = load_split(spec.id, phase.split_name)
        assert phase.split_sha256 == pinned.sha256, phase.id
        assert pinned.case_ids(phase.split), phase.id
    assert example.phase("test").scores == "after_close"


def test_site_of_a_challenge_nobody_entered_yet(tmp_path):
    from bench.leaderboard import build_leaderboard

    site = tmp_path / "site"
    build_leaderboard(tmp_path / "results", site, challenges=[_two_phase_file(tmp_path)],
                      now=datetime(2026, 11, 2, tzinfo=UTC))
    (task,) = json.loads((site / "leaderboard.json").read_text())["tasks"]
    assert [(b["key"], b["entries"], b["submitted"]) for b in task["boards"]] == [
        ("ricord-seg-validation", [], []), ("ricord-seg-test", [], [])]
    page = (site / SEG_TASK / "index.html").read_text()
    assert "No entry has a counted run in this phase yet." in page and "No entry yet." in page
    assert "RICORD lesions: RSNA MIDRC-RICORD" in (site / "index.html").read_text()


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x1c", "\x0b"])
def test_a_team_named_with_a_line_separator_leaves_the_ledger_readable(tmp_path, separator):
    """The attack: submission.yaml's team is free text, the ledger one JSON object a line, and
    json.dumps leaves U+2028 (and U+0085...) raw; read with splitlines() the event broke in two
    and every later evaluate of every team was refused."""
    ledger = Ledger(tmp_path)
    for team in ("Honest", f"Mallory{separator}", "Honest"):
        ledger.append(Event(at="2026-11-02T10:00:00Z", challenge="c", phase="p", team=team, entry="m",
                            event="scored"))
    assert [event.team for event in ledger.events()] == ["Honest", f"Mallory{separator}", "Honest"]
