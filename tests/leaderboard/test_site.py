"""The leaderboard builder on a hand-made store (scoring is another part), and its CLI."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from bench.cli import app
from bench.errors import LeaderboardError, StoreError
from bench.leaderboard import build_leaderboard
from bench.leaderboard.plots import label
from bench.metrics.uncertainty import bootstrap_counts
from bench.ranking.statistics import resampled_auroc
from bench.store import EntryId, Store, plain
from bench.tasks import BUILTIN_TASKS, load_task
from tests.helpers.board_fixtures import CLS_TASK, EVIL, SEG_TASK, build_fake_store, cls_run, seg_run


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
    evil = EntryId("<b>bold</b>", EVIL).key
    for path in ["index.html", "leaderboard.json", "static/style.css", "static/sort.js",
                 f"{SEG_TASK}/index.html", f"{SEG_TASK}/{SEG_TASK}.csv",
                 f"{SEG_TASK}/validation-synthetic-distribution.svg", f"{SEG_TASK}/test-synthetic-ranks.svg",
                 f"{SEG_TASK}/test-synthetic/{evil}.html",
                 f"{SEG_TASK}/validation-synthetic/RSNA/unet-baseline.html",
                 f"{CLS_TASK}/test-synthetic-ranks.svg"]:
        assert (site / path).is_file(), path
    # hidden test split: no ROC curves, and no boxes over 8 cases (their quartiles are case values)
    assert not (site / CLS_TASK / "test-synthetic-roc.svg").exists()
    assert not (site / SEG_TASK / "test-synthetic-distribution.svg").exists()
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
    for task in data["tasks"]:
        for board in task["boards"]:
            boot = board["bootstrap"]
            assert boot["kept"] + boot["dropped"] == boot["resamples"] == 2000
            assert boot["stratified"] == (task["id"] == CLS_TASK)  # as the task.yaml files say
        assert "of 2000 bootstrap resamples" in (root / "site" / task["id"] / "index.html").read_text()
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
    evil = EntryId("<b>bold</b>", EVIL).key
    page = (root / "site" / SEG_TASK / "test-synthetic" / f"{evil}.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script") == 1  # only the site's own sort.js
    svg = (root / "site" / SEG_TASK / "test-synthetic-ranks.svg").read_text()
    assert "&lt;script&gt;alert(1)" in svg


def test_per_case_hidden_on_test_shown_on_validation(built):
    root, _ = built
    hidden = (root / "site" / SEG_TASK / "test-synthetic" / "RSNA" / "unet-baseline.html").read_text()
    shown = (root / "site" / SEG_TASK / "validation-synthetic" / "RSNA" / "unet-baseline.html").read_text()
    assert "c00" not in hidden and "Per-case scores are hidden" in hidden
    assert "c00" in shown and "c03" in shown
    # subgroups under the minimum size keep their count but not their score on a hidden split
    subgroups = hidden.split("Subgroups")[1].split("<h2>")[0]
    assert "hidden: fewer than 5 cases" in hidden and "0.782" not in subgroups
    assert "[0.100, 0.900]" in shown
    validation_svg = (root / "site" / SEG_TASK / "validation-synthetic-distribution.svg").read_text()
    assert "PathCollection" in validation_svg  # the case points
    board = (root / "site" / SEG_TASK / "index.html").read_text()
    assert "an entry has 8 counted cases, fewer than 20" in board
    assert "ROC curves are not shown on this split" in (root / "site" / CLS_TASK / "index.html").read_text()


def _hidden_values(store_root: Path) -> tuple[set[str], set[str]]:
    """Case ids and per-case numbers (as the site could print them) of every hidden-split run.

    Round values such as 0.72 also occur as digits of aggregates, so only values with more
    digits are looked for (the 1c probabilities); the 1a Dice values are covered by the absent
    per-case table and distribution plot.
    """
    ids, numbers = set(), set()
    for run in Store(store_root).runs():
        if run.split != "test":
            continue
        ids.update(run.per_case["case_id"])
        for column in run.per_case.columns:
            if column in ("tp",) or not pd.api.types.is_float_dtype(run.per_case[column]):
                continue
            for value in run.per_case[column].dropna():
                if len(repr(float(value))) >= 10:
                    numbers.update({repr(float(value)), f"{value:.4f}"})
    return ids, numbers


def test_hidden_split_publishes_no_per_case_values(built):
    root, _ = built
    site = root / "site"
    ids, numbers = _hidden_values(root / "results")
    assert len(ids) == 8 + 24 and numbers
    hidden_files = [p for p in site.rglob("*") if p.is_file() and p.parent.name != "static"
                    and "validation" not in str(p.relative_to(site))]
    assert {p.suffix for p in hidden_files} == {".html", ".svg", ".json", ".csv"}
    for path in hidden_files:
        text = path.read_text()
        if path.name == "leaderboard.json":  # the validation board is in here too
            data = json.loads(text)
            boards = [b for task in data["tasks"] for b in task["boards"] if b["per_case_hidden"]]
            text = json.dumps(boards)
        if path.suffix == ".csv":
            table = pd.read_csv(path)
            text = table[table["split"] == "test"].to_csv()
        if path.suffix == ".svg":  # the written text; the path coordinates are drawing units
            text = " ".join(re.findall(r"<text[^>]*>(.*?)</text>", text, flags=re.S))
        # ids as whole words: a short id such as "c05" also occurs inside hex hashes (task sha256)
        leaked = ([i for i in ids if re.search(rf"\b{re.escape(i)}\b", text)]
                  + [v for v in numbers if v in text])
        assert not leaked, (path.relative_to(site), leaked[:5])
    assert not list(site.rglob("*roc*")), "no ROC plot of a hidden split"
    receipts = [p for p in hidden_files if p.parent.name == "receipts"]
    assert len(receipts) == 5, "every hidden-split run's receipt is published, and was checked above"
    assert not [p for p in hidden_files if p.name == "per_case.csv" or p.suffix == ".png"
                or "gallery" in p.name], "no per-case CSV or case gallery of a hidden split"


@pytest.mark.slow
def test_same_store_same_bytes_and_rebuild_in_place(built, tmp_path):
    root, _ = built
    build_leaderboard(root / "results", tmp_path / "again")
    assert _files(tmp_path / "again") == _files(root / "site")
    build_leaderboard(root / "results", tmp_path / "again")  # replaces a previous leaderboard
    assert _files(tmp_path / "again") == _files(root / "site")


def test_the_repository_leaderboard_folder_keeps_its_readme(built, tmp_path):
    root, _ = built
    (tmp_path / "leaderboard").mkdir()
    (tmp_path / "leaderboard" / "README.md").write_text("how it is built and published")
    for _ in range(2):  # the first build and a rebuild over it
        build_leaderboard(root / "results", tmp_path / "leaderboard")
        assert (tmp_path / "leaderboard" / "README.md").read_text() == "how it is built and published"
        site = _files(tmp_path / "leaderboard")
        assert {name: data for name, data in site.items() if name != "README.md"} == _files(root / "site")


def test_refuses_foreign_output_and_empty_store(built, tmp_path):
    root, _ = built
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("mine")
    with pytest.raises(LeaderboardError, match="ricord-bench did not create it"):
        build_leaderboard(root / "results", tmp_path / "docs")
    assert (tmp_path / "docs" / "notes.txt").read_text() == "mine"
    with pytest.raises(LeaderboardError, match="holds no runs"):
        build_leaderboard(tmp_path / "empty", tmp_path / "out")


def test_missing_task_definition_is_named(tmp_path):
    # the built-in tasks are always found, so the store holds runs of a task defined elsewhere
    raw = yaml.safe_load((BUILTIN_TASKS / SEG_TASK / "task.yaml").read_text())
    raw["id"] = "my-lesion-seg"
    (tmp_path / "custom" / "my-lesion-seg").mkdir(parents=True)
    (tmp_path / "custom" / "my-lesion-seg" / "task.yaml").write_text(yaml.safe_dump(raw))
    seg_run(Store(tmp_path / "results"), load_task("my-lesion-seg", directory=tmp_path / "custom"), "entry",
            [0.5, 0.6, 0.7])
    (tmp_path / "tasks").mkdir()
    with pytest.raises(LeaderboardError, match="runs of task 'my-lesion-seg'.*--tasks-dir"):
        build_leaderboard(tmp_path / "results", tmp_path / "out", tasks_dir=tmp_path / "tasks")


def _custom_tasks(tmp_path: Path, task: str, **changes) -> Path:
    folder = tmp_path / "tasks"
    shutil.copytree(BUILTIN_TASKS / task, folder / task)
    spec = yaml.safe_load((folder / task / "task.yaml").read_text())
    spec.update(changes)
    (folder / task / "task.yaml").write_text(yaml.safe_dump(spec))
    return folder


def test_dataset_level_metric_refuses_per_case_schemes(tmp_path):
    folder = _custom_tasks(tmp_path, CLS_TASK, ranking={"method": "rank-then-aggregate"})
    build_fake_store(tmp_path / "results")
    shutil.copytree(BUILTIN_TASKS / SEG_TASK, folder / SEG_TASK)
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
    seg_run(store, spec, "mean $x^$ \\alpha", [0.5, 0.6, 0.7], split="validation")
    seg_run(store, spec, "plain", [0.4, 0.6, 0.6], split="validation")
    build_leaderboard(tmp_path / "results", tmp_path / "out")
    svg = (tmp_path / "out" / SEG_TASK / "validation-synthetic-distribution.svg").read_text()
    assert "mean $x^$ \\alpha" in svg
    assert label("a$b") == "a\\$b" and label("x" * 40).endswith("…")


def test_resampled_auroc_matches_sklearn():
    rng = np.random.default_rng(3)
    classes = ["typical", "indeterminate", "atypical", "negative"]
    labels = np.array([classes[i % 4] for i in range(30)])
    probabilities = rng.dirichlet(np.ones(4), size=(30, 2))  # (cases, entries, classes)
    counts = bootstrap_counts(30, n_resamples=5, seed=1)
    values = resampled_auroc(labels, probabilities, classes, counts)
    for b in range(5):
        for e in range(2):
            row = np.repeat(np.arange(30), counts[b])
            order = np.argsort(classes)  # sklearn wants sorted labels; the macro mean does not care
            expected = roc_auc_score(labels[row], probabilities[row, e][:, order], multi_class="ovr",
                                     labels=sorted(classes))
            assert values[b, e] == pytest.approx(expected)
    binary = np.array(["positive" if i % 3 else "negative" for i in range(30)])
    two = rng.uniform(size=(30, 1, 2))
    got = resampled_auroc(binary, two, ["negative", "positive"], np.ones((1, 30)), positive="positive")
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
    assert "0/?" not in failed.output and failed.output.startswith("error:")  # no empty bar first


def test_hidden_split_with_enough_cases_draws_bare_boxes(tmp_path):
    spec = load_task(SEG_TASK)
    store = Store(tmp_path / "results")
    rng = np.random.default_rng(4)
    a, b = list(rng.uniform(0.5, 0.9, 20)), list(rng.uniform(0.3, 0.7, 20))
    for split in ("test", "validation"):  # the same cases on a hidden and on a shown split
        seg_run(store, spec, "a", a, split=split)
        seg_run(store, spec, "b", b, split=split)
    build_leaderboard(tmp_path / "results", tmp_path / "out")
    hidden = (tmp_path / "out" / SEG_TASK / "test-synthetic-distribution.svg").read_text()
    shown = (tmp_path / "out" / SEG_TASK / "validation-synthetic-distribution.svg").read_text()
    assert "PathCollection" not in hidden and "PathCollection" in shown  # case points
    assert 'id="whiskers-3"' in shown and 'id="caps-3"' in shown and 'id="medians-1"' in shown
    assert "whiskers-" not in hidden and "caps-" not in hidden and 'id="medians-1"' in hidden


def _page_run(store: Store, spec, scratch: Path) -> None:
    """A 1c run whose scores.json has every nested shape the page renders, and host paths."""
    run = cls_run(Store(scratch), spec, "nested", 0.3, seed=5)
    scores = json.loads(json.dumps(plain(run.scores)))
    metrics = scores["metrics"]
    metrics["appearance.auroc_per_class"] = {
        "value": {"typical": 0.91, "atypical": 0.62}, "ci_low": {"typical": 0.81, "atypical": 0.44},
        "ci_high": {"typical": 0.97, "atypical": 0.79}, "direction": "higher", "n": 24}
    metrics["appearance.confusion_matrix"] = {
        "value": [[5.0, 1.0], [2.0, 7.0]], "labels": ["typical", "atypical"], "ci_low": None,
        "ci_high": None, "direction": None, "n": 15}
    metrics["severity.quadratic_weighted_kappa"] = {"value": -0.0000001, "ci_low": -0.25, "ci_high": 0.2,
                                                    "direction": "higher", "n": 24}
    group = {"too_small": False, "n_resamples": 2000, "difference_ci_low": None, "difference_ci_high": None}
    scores["subgroups"] = {"sex": {
        "F": {**group, "n": 16, "value": None, "ci_low": None, "ci_high": None, "difference": None,
              "n_undefined": 2000},
        "M": {**group, "n": 8, "value": 0.675, "ci_low": None, "ci_high": None, "difference": -0.01,
              "n_undefined": 1100}}}
    sex = {"F": {**group, "n": 16, "value": 0.4321, "ci_low": 0.2, "ci_high": 0.6, "difference": 0.0,
                 "n_undefined": 0},
           "M": {**group, "n": 8, "value": 0.5432, "ci_low": 0.1, "ci_high": 0.8, "difference": 0.1111,
                 "n_undefined": 3}}
    scores["fairness"] = {"severity": {"measure": "delta_quadratic_weighted_kappa",
                                       "reference": "largest group", "attributes": {"sex": sex}}}
    receipt = json.loads(json.dumps(plain(run.receipt)))
    receipt["reference"] = {"path": "/srv/secret/prepared/reference", "sha256": "cd" * 32}
    receipt["run"] = {"path": "/srv/secret/runs/nested-1",
                      "command": ["/srv/secret/venv/bin/python", "predict.py"]}
    receipt["submission"]["source"] = "/home/alice/submissions/nested"
    store.write_run(spec.id, EntryId("Team A", "nested"), run.run_id, receipt=receipt, scores=scores,
                    per_case=run.per_case)


def test_submission_page_tables_notes_and_public_receipt(tmp_path):
    spec = load_task(CLS_TASK)
    store = Store(tmp_path / "results")
    _page_run(store, spec, tmp_path / "scratch")
    build_leaderboard(tmp_path / "results", tmp_path / "out")
    nested = EntryId("Team A", "nested").key
    page = (tmp_path / "out" / CLS_TASK / "test-synthetic" / f"{nested}.html").read_text()
    # one row per class, with its own interval; no raw dict or nested list anywhere
    assert "appearance.auroc_per_class · typical" in page and "[0.8100, 0.9700]" in page
    assert "appearance.auroc_per_class · atypical" in page and "[0.4400, 0.7900]" in page
    assert "{'" not in page and '{"' not in page.split("<h2>Receipt</h2>")[0]
    assert "[[" not in page and "5.0, 1.0" not in page
    confusion = page.split('<table class="confusion">')[1].split("</table>")[0]
    assert "<th>typical</th><td class=\"num\">5</td><td class=\"num\">1</td>" in confusion.replace("\n", "")
    # negative zero is printed as zero
    assert "-0.0000" not in page and "-0.000" not in page
    # undefined value and withheld interval are explained
    assert "undefined on this group (e.g. a class is absent)" in page
    assert "no interval: 1100 of 2000 resamples were undefined" in page
    # fairness as a table with the reference group, not flattened keys
    assert "severity · sex" in page and "reference group F" in page and "0.543" in page
    assert "attributes.sex" not in page and "3 of 2000 resamples undefined" in page
    # the receipt keeps no host folder on the page, but the store keeps the full paths
    receipt = page.split("<h2>Receipt</h2>")[1]
    for secret in ("/srv/secret", "/home/alice"):
        assert secret not in page
    assert "nested-1" in receipt and "predict.py" in receipt and "&#34;python&#34;" in receipt
    stored = Store(tmp_path / "results").latest(CLS_TASK, EntryId("Team A", "nested")).receipt
    assert stored["reference"]["path"] == "/srv/secret/prepared/reference"
    assert stored["submission"]["source"] == "/home/alice/submissions/nested"


def test_corrupt_run_is_skipped_with_a_warning(built, tmp_path):
    root, _ = built
    shutil.copytree(root / "results", tmp_path / "results")
    store = Store(tmp_path / "results")
    broken = store.latest(CLS_TASK, EntryId("Team A", "cxr-prior"))
    (broken.path / "scores.json").write_text('{"schema_version": 1, "metrics": ')  # cut off mid-write
    relative = (broken.path / "scores.json").relative_to(tmp_path / "results")
    report = build_leaderboard(tmp_path / "results", tmp_path / "site")
    assert report.tasks == (SEG_TASK, CLS_TASK) and report.entries == 5  # the rest is built
    assert report.skipped == ((str(relative.parent), f"{relative}: not valid JSON "
                               f"(Expecting value: line 1 column 34 (char 33))"),)
    index = (tmp_path / "site" / "index.html").read_text()
    assert "1 stored run could not be read" in index and f"{relative}: not valid JSON" in index
    assert str(tmp_path) not in index  # named relative to the store, no host folders
    data = json.loads((tmp_path / "site" / "leaderboard.json").read_text())
    assert [e["submission"] for e in data["tasks"][1]["boards"][0]["entries"]] == ["cxr-resnet"]
    result = CliRunner().invoke(app, ["leaderboard", "build", "--results", str(tmp_path / "results"),
                                      "--out", str(tmp_path / "cli-site")])
    assert result.exit_code == 0, result.output
    assert "warning: skipped an unreadable run" in result.output and "not valid JSON" in result.output
    with pytest.raises(StoreError, match="not valid JSON"):  # strict readers still refuse it
        store.runs()


def test_binary_roc_title_names_both_classes():
    from bench.leaderboard.plots import _binary_title

    head = load_task("ricord-ct-covid-cls").heads[0]
    assert _binary_title(head) == "covid: positive vs negative"


_CALIBRATION = {"appearance": {"typical": {
    "slope": 0.8, "intercept": 0.1, "slope_model_intercept": 0.05, "n": 24, "subgroups": {},
    "bins": [{"low": 0.0, "high": 0.5, "n": 14, "mean_predicted": 0.2, "observed": 0.25, "observed_low": 0.1,
              "observed_high": 0.4},
             {"low": 0.5, "high": 1.0, "n": 10, "mean_predicted": 0.7, "observed": 0.6, "observed_low": 0.4,
              "observed_high": 0.8}]}}}


def test_calibration_is_drawn_on_shown_splits_and_only_summarized_on_hidden_ones(tmp_path):
    spec = load_task(CLS_TASK)
    store = Store(tmp_path / "results")
    for split in ("test", "validation"):
        cls_run(store, spec, "calibrated", 0.5, seed=3 if split == "test" else 4, split=split,
                calibration=_CALIBRATION)
    build_leaderboard(tmp_path / "results", tmp_path / "out")
    shown_dir, hidden_dir = (tmp_path / "out" / CLS_TASK / key
                             for key in ("validation-synthetic", "test-synthetic"))
    (svg,) = sorted(shown_dir.rglob("*-calibration-appearance.svg"))
    assert "<svg" in svg.read_text()
    shown = next(shown_dir.rglob("*.html")).read_text()
    assert f'src="{svg.name}"' in shown and "Calibration" in shown and "0.800" in shown
    assert not list(hidden_dir.rglob("*-calibration-*.svg"))
    hidden = next(hidden_dir.rglob("*.html")).read_text()
    assert "The reliability diagram is not shown on this split" in hidden and "0.800" in hidden
