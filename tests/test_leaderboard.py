"""The leaderboard builder on a hand-made store (scoring is another part), and its CLI."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from board_fixtures import CLS_TASK, EVIL, SEG_TASK, build_fake_store, seg_run
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from bench.cli import app
from bench.errors import LeaderboardError
from bench.leaderboard import build_leaderboard
from bench.leaderboard.plots import label
from bench.leaderboard.statistics import resampled_auroc
from bench.ranking import resample_indices
from bench.store import Store, slugify
from bench.tasks import load_task, tasks_dir


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("board")
    build_fake_store(root / "results")
    report = build_leaderboard(root / "results", root / "site")
    return root, report


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_site_layout_and_report(built):
    root, report = built
    site = root / "site"
    assert report.index == site / "index.html"
    assert report.tasks == (SEG_TASK, CLS_TASK) and report.boards == 3 and report.entries == 6
    evil = slugify(EVIL)
    for path in ["index.html", "leaderboard.json", "static/style.css", "static/sort.js",
                 f"{SEG_TASK}/index.html", f"{SEG_TASK}/{SEG_TASK}.csv",
                 f"{SEG_TASK}/test-synthetic-distribution.svg", f"{SEG_TASK}/test-synthetic-ranks.svg",
                 f"{SEG_TASK}/test-synthetic/{evil}.html",
                 f"{SEG_TASK}/validation-synthetic/unet-baseline.html",
                 f"{CLS_TASK}/test-synthetic-roc.svg", f"{CLS_TASK}/test-synthetic-ranks.svg"]:
        assert (site / path).is_file(), path
    assert not list(root.glob(".site*")), "no temporary build folder is left behind"


def test_leaderboard_json_ranks_and_groups(built):
    root, _ = built
    data = json.loads((root / "site" / "leaderboard.json").read_text())
    assert data["schema_version"] == 1
    seg = data["tasks"][0]
    assert seg["id"] == SEG_TASK and seg["primary_metric"] == "dice" and seg["direction"] == "higher"
    test_board, validation = seg["boards"]
    assert (test_board["split"], validation["split"]) == ("test", "validation")
    rows = [(e["rank"], e["submission"], e["tied_group"], e["failures"]) for e in test_board["entries"]]
    # means 0.7825, 0.77125, 0.39: the two U-Nets are statistically tied, threshold-hu is not
    assert rows == [(1, "unet-baseline", 1, 0), (2, EVIL, 1, 0), (3, "threshold-hu", 2, 1)]
    first = test_board["entries"][0]
    assert first["ranking_score"] == pytest.approx(np.mean([0.80, 0.72, 0.91, 0.65, 0.77, 0.83, 0.70, 0.88]))
    assert first["rank_low"] == 1 and test_board["entries"][2]["rank_low"] == 3
    assert test_board["per_case_hidden"] and not validation["per_case_hidden"]
    assert test_board["bootstrap"]["resamples"] == 2000 and test_board["bootstrap"]["unit"] == "patient_id"
    cls = data["tasks"][1]["boards"][0]["entries"]
    assert [e["submission"] for e in cls] == ["cxr-resnet", "cxr-prior"]
    # the recomputed macro AUROC equals the scorer's value written in the fixture (sklearn)
    assert [e["ranking_score"] for e in cls] == pytest.approx([e["value"] for e in cls])


def test_task_csv(built):
    root, _ = built
    table = pd.read_csv(root / "site" / SEG_TASK / f"{SEG_TASK}.csv")
    assert table["split"].tolist() == ["test", "test", "test", "validation"]
    assert table["submission"].tolist()[:3] == ["unet-baseline", EVIL, "threshold-hu"]
    assert {"rank", "value", "ci_low", "ci_high", "rank_low", "rank_high", "tied_group", "split_sha256",
            "run_id"} <= set(table.columns)


def test_user_text_is_escaped_everywhere(built):
    root, _ = built
    for name, content in _files(root / "site").items():
        text = content.decode("utf-8")
        if name.endswith((".html", ".svg")):
            assert "<script>alert(1)" not in text, name
            assert "<b>bold</b>" not in text and "<b>desc</b>" not in text, name
    page = (root / "site" / SEG_TASK / "test-synthetic" / f"{slugify(EVIL)}.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script") == 1  # only the site's own sort.js
    svg = (root / "site" / SEG_TASK / "test-synthetic-distribution.svg").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg


def test_per_case_hidden_on_test_shown_on_validation(built):
    root, _ = built
    hidden = (root / "site" / SEG_TASK / "test-synthetic" / "unet-baseline.html").read_text()
    shown = (root / "site" / SEG_TASK / "validation-synthetic" / "unet-baseline.html").read_text()
    assert "c00" not in hidden and "Per-case scores are hidden" in hidden
    assert "c00" in shown and "c03" in shown
    # subgroups under the minimum size keep their count but not their score on a hidden split
    assert "hidden: fewer than 5 cases" in hidden and "0.782" not in hidden.split("Subgroups")[1]
    assert "[0.100, 0.900]" in shown
    # box plot only on the hidden split: no case points (PathCollection) in the SVG
    test_svg = (root / "site" / SEG_TASK / "test-synthetic-distribution.svg").read_text()
    validation_svg = (root / "site" / SEG_TASK / "validation-synthetic-distribution.svg").read_text()
    assert "PathCollection" not in test_svg and "PathCollection" in validation_svg


@pytest.mark.slow
def test_same_store_same_bytes_and_rebuild_in_place(built, tmp_path):
    root, _ = built
    build_leaderboard(root / "results", tmp_path / "again")
    assert _files(tmp_path / "again") == _files(root / "site")
    build_leaderboard(root / "results", tmp_path / "again")  # replaces a previous leaderboard
    assert _files(tmp_path / "again") == _files(root / "site")


def test_refuses_foreign_output_and_empty_store(built, tmp_path):
    root, _ = built
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("mine")
    with pytest.raises(LeaderboardError, match="not a leaderboard"):
        build_leaderboard(root / "results", tmp_path / "docs")
    assert (tmp_path / "docs" / "notes.txt").read_text() == "mine"
    with pytest.raises(LeaderboardError, match="holds no runs"):
        build_leaderboard(tmp_path / "empty", tmp_path / "out")


def test_missing_task_definition_is_named(built, tmp_path):
    root, _ = built
    (tmp_path / "tasks").mkdir()
    with pytest.raises(LeaderboardError, match=f"runs of task '{SEG_TASK}'.*--tasks-dir"):
        build_leaderboard(root / "results", tmp_path / "out", tasks_dir=tmp_path / "tasks")


def _custom_tasks(tmp_path: Path, task: str, **changes) -> Path:
    folder = tmp_path / "tasks"
    shutil.copytree(tasks_dir() / task, folder / task)
    spec = yaml.safe_load((folder / task / "task.yaml").read_text())
    spec.update(changes)
    (folder / task / "task.yaml").write_text(yaml.safe_dump(spec))
    return folder


def test_dataset_level_metric_refuses_per_case_schemes(tmp_path):
    folder = _custom_tasks(tmp_path, CLS_TASK, ranking={"method": "rank-then-aggregate"})
    build_fake_store(tmp_path / "results")
    shutil.copytree(tasks_dir() / SEG_TASK, folder / SEG_TASK)
    with pytest.raises(LeaderboardError, match="needs a per-case primary metric"):
        build_leaderboard(tmp_path / "results", tmp_path / "out", tasks_dir=folder)


def test_test_then_rank_board_and_stale_spec_marker(tmp_path):
    folder = _custom_tasks(tmp_path, SEG_TASK, ranking={"method": "test-then-rank", "alpha": 0.05})
    spec = load_task(SEG_TASK, directory=folder)
    old = load_task(SEG_TASK)
    store = Store(tmp_path / "results")
    dice = np.linspace(0.5, 0.9, 12)
    seg_run(store, spec, "strong", list(dice + 0.08))
    seg_run(store, spec, "weak", list(dice))
    seg_run(store, old, "weak-twin", list(dice + 0.001))  # scored under the original spec
    build_leaderboard(tmp_path / "results", tmp_path / "out", tasks_dir=folder)
    board = json.loads((tmp_path / "out" / "leaderboard.json").read_text())["tasks"][0]["boards"][0]
    # strong beats both on all 12 cases (Holm-adjusted exact p well below 0.05); weak-twin beats
    # weak on all 12 as well; so wins are 2, 1, 0.
    assert [(e["submission"], e["ranking_score"], e["rank"]) for e in board["entries"]] == [
        ("strong", 2.0, 1), ("weak-twin", 1.0, 2), ("weak", 0.0, 3)]
    assert [e["task_spec_matches"] for e in board["entries"]] == [True, False, True]
    assert "other spec" in (tmp_path / "out" / SEG_TASK / "index.html").read_text()


def test_mathtext_in_names_is_drawn_literally(tmp_path):
    spec = load_task(SEG_TASK)
    store = Store(tmp_path / "results")
    seg_run(store, spec, "mean $x^$ \\alpha", [0.5, 0.6, 0.7])
    seg_run(store, spec, "plain", [0.4, 0.6, 0.6])
    build_leaderboard(tmp_path / "results", tmp_path / "out")
    svg = (tmp_path / "out" / SEG_TASK / "test-synthetic-distribution.svg").read_text()
    assert "mean $x^$ \\alpha" in svg
    assert label("a$b") == "a\\$b" and label("x" * 40).endswith("…")


def test_resampled_auroc_matches_sklearn():
    rng = np.random.default_rng(3)
    classes = ["typical", "indeterminate", "atypical", "negative"]
    labels = np.array([classes[i % 4] for i in range(30)])
    probabilities = rng.dirichlet(np.ones(4), size=(30, 2))  # (cases, entries, classes)
    indices = resample_indices(30, resamples=5, seed=1)
    values = resampled_auroc(labels, probabilities, classes, indices)
    for b in range(5):
        for e in range(2):
            row = indices[b]
            order = np.argsort(classes)  # sklearn wants sorted labels; the macro mean does not care
            expected = roc_auc_score(labels[row], probabilities[row, e][:, order], multi_class="ovr",
                                     labels=sorted(classes))
            assert values[b, e] == pytest.approx(expected)
    binary = np.array(["positive" if i % 3 else "negative" for i in range(30)])
    two = rng.uniform(size=(30, 1, 2))
    got = resampled_auroc(binary, two, ["negative", "positive"], np.arange(30)[None], positive="positive")
    assert got[0, 0] == pytest.approx(roc_auc_score(binary == "positive", two[:, 0, 1]))


def test_cli_build(built, tmp_path):
    root, _ = built
    result = CliRunner().invoke(app, ["leaderboard", "build", "--results", str(root / "results"),
                                      "--out", str(tmp_path / "cli-site")])
    assert result.exit_code == 0, result.output
    assert "2 task(s), 3 board(s), 6 ranked entries" in result.output
    assert str((tmp_path / "cli-site" / "index.html").resolve()) in result.output.replace("\n", "")
    failed = CliRunner().invoke(app, ["leaderboard", "build", "--results", str(tmp_path / "none"),
                                      "--out", str(tmp_path / "x")])
    assert failed.exit_code == 2 and "holds no runs" in failed.output
