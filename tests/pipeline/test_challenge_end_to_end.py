"""A two-phase challenge played end to end through the real CLI: three teams, the bubblewrap runner,
limits hit and refused, a withdrawn entry, a best-run phase and a chosen-run phase whose scores are
sealed until it closes. The challenge is the example ``challenges/ricord-seg-synthetic.yaml`` on the
default synthetic collection (whose split the harness ships pinned)."""

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.challenges import Ledger
from bench.cli import app
from bench.data.manifest import write_manifest
from bench.data.ricord import index_download
from bench.data.synth import synthesize
from bench.pipeline.demo import BUILTIN_SUBMISSIONS
from bench.splits.pinned import load_split
from bench.store import Store

pytestmark = pytest.mark.slow

CHALLENGE = Path(__file__).resolve().parents[2] / "challenges" / "ricord-seg-synthetic.yaml"
TASK = "ricord-1a-lesion-seg"
DAY1, DAY1_LATER, DAY2, DAY3 = ("2026-11-02T09:00:00Z", "2026-11-02T15:00:00Z", "2026-11-03T09:00:00Z",
                                "2026-11-04T09:00:00Z")
CLOSED = "2030-01-01T00:00:00Z"  # the example's phases close then


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """The default synthetic collection (seed 0, small): the one the shipped split was pinned from."""
    root = tmp_path_factory.mktemp("challenge") / "data"
    synth = synthesize(root, seed=0, size="small")
    report = index_download(root, annotations=synth.annotations, clinical=synth.clinical)
    write_manifest(report.manifest, root / "manifest.csv")
    return root


def _worse(tmp_path: Path) -> Path:
    """threshold-seg with its lesion window starting at -500 HU instead of -800: it misses most
    ground-glass opacity, so it scores lower on both splits (the premise of the best-run check)."""
    folder = tmp_path / "narrow-window"
    shutil.copytree(BUILTIN_SUBMISSIONS / "threshold-seg", folder)
    code = (folder / "predict.py").read_text()
    assert "LOW_HU, HIGH_HU = -800.0, -100.0" in code
    (folder / "predict.py").write_text(code.replace("LOW_HU, HIGH_HU = -800.0, -100.0",
                                                    "LOW_HU, HIGH_HU = -500.0, -100.0"))
    return folder


def test_two_phase_challenge_with_three_teams(collection, tmp_path):
    runner, results, site = CliRunner(), tmp_path / "results", tmp_path / "site"
    good, worse = BUILTIN_SUBMISSIONS / "threshold-seg", _worse(tmp_path)

    def bench(*args, ok=True):
        result = runner.invoke(app, [str(a) for a in args])
        assert (result.exit_code == 0) == ok, result.output
        return " ".join(result.output.split())  # rich wraps long lines

    def evaluate(phase, team, entry, submission, now, ok=True):
        return bench("evaluate", submission, "--root", collection, "--challenge", CHALLENGE, "--phase", phase,
                     "--team", team, "--entry", entry, "--runner", "process", "--results", results,
                     "--now", now, ok=ok)

    def last_run(phase, team):
        events = [e for e in Ledger(results).events("ricord-seg-synthetic", phase) if e.team == team]
        assert events[-1].event == "scored", events[-1]
        return events[-1].run_id

    # validation: 1 scored attempt per team per day, 2 in all; the best run counts
    assert "dice (primary)" in evaluate("validation", "Alpha", "thresh", good, DAY1)
    a1 = last_run("validation", "Alpha")
    assert "used its 1 scored attempt(s) of 2026-11-02" in evaluate(
        "validation", "Alpha", "thresh", worse, DAY1_LATER, ok=False)
    evaluate("validation", "Alpha", "thresh", worse, DAY2)
    a2 = last_run("validation", "Alpha")
    assert "used all 2 scored attempts of phase validation" in evaluate(
        "validation", "Alpha", "thresh", good, DAY3, ok=False)
    evaluate("validation", "Beta", "narrow", worse, DAY1)
    b1 = last_run("validation", "Beta")
    evaluate("validation", "Gamma", "thresh", good, DAY1)  # same entry name as Alpha's: no collision
    bench("withdraw", "--challenge", CHALLENGE, "--phase", "validation", "--team", "Gamma", "--entry",
          "thresh", "--results", results, "--reason", "trained on the validation cases", "--now", DAY2)
    assert "Gamma / thresh was withdrawn from phase validation" in evaluate(
        "validation", "Gamma", "thresh", good, DAY3, ok=False)
    # test: 2 a day, 2 in all, the run the team chose counts, scores sealed until the phase closes
    output = evaluate("test", "Alpha", "thresh", good, DAY1)
    assert "sealed until it closes on 2030-01-01" in output and "dice" not in output
    t_a1 = last_run("test", "Alpha")
    evaluate("test", "Alpha", "thresh", worse, DAY1_LATER)
    t_a2 = last_run("test", "Alpha")
    assert "used all 2 scored attempts of phase test" in evaluate(
        "test", "Alpha", "thresh", good, DAY2, ok=False)
    evaluate("test", "Beta", "narrow", worse, DAY2)
    t_b1 = last_run("test", "Beta")
    evaluate("test", "Gamma", "thresh", good, DAY2)  # never chooses: not ranked at close
    assert "is not a scored run of Alpha / thresh" in bench(
        "choose", "--challenge", CHALLENGE, "--phase", "test", "--team", "Alpha", "--entry", "thresh",
        "--run", t_b1, "--results", results, ok=False)
    for team, entry, run in (("Alpha", "thresh", t_a1), ("Beta", "narrow", t_b1)):
        bench("choose", "--challenge", CHALLENGE, "--phase", "test", "--team", team, "--entry", entry,
              "--run", run, "--results", results, "--now", DAY3)

    store = Store(results)
    value = {run.run_id: run.scores["metrics"]["dice"]["value"] for run in store.runs(TASK)}
    assert len(value) == 8  # refused attempts ran nothing
    assert value[a1] > value[a2] and value[t_a1] > value[t_a2]  # the worse variant is worse

    # before the test phase closes
    build = ("leaderboard", "build", "--results", results, "--out", site, "--challenge", CHALLENGE, "--now")
    bench(*build, DAY3)
    boards = _boards(site)
    assert list(boards) == ["ricord-seg-synthetic-validation", "ricord-seg-synthetic-test"]
    validation = boards["ricord-seg-synthetic-validation"]
    assert _rows(validation) == [  # the best run of each entry; Gamma withdrawn
        (1, "Alpha", "thresh", a1, value[a1]), (2, "Beta", "narrow", b1, value[b1])]
    history = validation["entries"][0]["history"]
    assert [(h["at"], h["event"], h["run_id"], h["value"], h["counts"]) for h in history] == [
        (DAY1, "scored", a1, value[a1], True), (DAY1_LATER, "refused", "", None, False),
        (DAY2, "scored", a2, value[a2], False), (DAY3, "refused", "", None, False)]
    assert "used all 2 scored attempts" in history[3]["reason"]
    sealed = boards["ricord-seg-synthetic-test"]
    assert sealed["phase"]["sealed"] and sealed["entries"] == [] and sealed["analysis"] is None
    assert [(s["team"], s["submission"], s["first_at"], s["last_at"], s["scored"], s["counted"])
            for s in sealed["submitted"]] == [
        ("Alpha", "thresh", DAY1, DAY1_LATER, 2, True), ("Beta", "narrow", DAY2, DAY2, 1, True),
        ("Gamma", "thresh", DAY2, DAY2, 1, False)]
    assert all(h["value"] is None and not h["counts"] for s in sealed["submitted"] for h in s["history"])
    page = (site / TASK / "index.html").read_text()
    section = _section(page, "ricord-seg-synthetic-test")
    assert "Scores are published when the phase closes on 2030-01-01 00:00 UTC" in section
    test_values = {f"{value[r]:.3f}" for r in (t_a1, t_a2, t_b1)} - {"0.000"}
    assert not [v for v in test_values if v in section]
    test_cases = load_split(TASK, "synthetic").case_ids("test")
    for path in (p for p in site.rglob("*") if p.is_file()):  # no per-case trace of the test split
        text = path.read_text(errors="replace")
        assert not [case for case in test_cases if case in text], path
    assert not list((site / TASK).glob("ricord-seg-synthetic-test*"))  # no plots, no entry pages
    assert "ricord-seg-synthetic-test" not in (site / TASK / f"{TASK}.csv").read_text()

    # after it closes
    bench(*build, CLOSED)
    opened = _boards(site)["ricord-seg-synthetic-test"]
    assert not opened["phase"]["sealed"] and opened["submitted"] == []
    assert _rows(opened) == [  # the chosen runs; Gamma never chose
        (1, "Alpha", "thresh", t_a1, value[t_a1]), (2, "Beta", "narrow", t_b1, value[t_b1])]
    assert [(h["event"], h["run_id"], h["counts"]) for h in opened["entries"][0]["history"]] == [
        ("scored", t_a1, True), ("scored", t_a2, False), ("refused", "", False), ("chosen", t_a1, True)]
    assert "Scores are published" not in (site / TASK / "index.html").read_text()
    entry_page = site / TASK / "ricord-seg-synthetic-test" / "Alpha" / "thresh.html"
    assert "Run history" in entry_page.read_text() and t_a2 in entry_page.read_text()

    # rescore ranks the same phase boards and finds nothing changed
    assert "no changes in 8 stored run(s)" in bench("rescore", "--results", results, "--challenge", CHALLENGE)


def _rows(board: dict) -> list[tuple]:
    return [(e["rank"], e["team"], e["submission"], e["run_id"], e["value"]) for e in board["entries"]]


def _boards(site: Path) -> dict:
    (task,) = json.loads((site / "leaderboard.json").read_text())["tasks"]
    return {board["key"]: board for board in task["boards"]}


def _section(page: str, key: str) -> str:
    match = re.search(rf'<section class="board" id="{key}">(.*?)</section>', page, re.S)
    assert match, key
    return match.group(1)
