"""The reporting appendix: filled from the task spec, the pinned split and the receipts; the rest missing."""

from typer.testing import CliRunner

from bench.cli import app
from bench.leaderboard.appendix import build_appendix
from bench.splits.pinned import load_split
from bench.tasks import load_task
from tests.helpers.board_fixtures import SEG_TASK, build_fake_store


def _item(appendix, checklist_start, topic_start):
    return next(i for i in appendix.items if i.checklist.startswith(checklist_start)
                and i.topic.startswith(topic_start))


def test_items_are_filled_from_the_spec_and_the_split():
    spec = load_task(SEG_TASK)
    split = load_split(SEG_TASK, "synthetic")
    appendix = build_appendix(spec, name="synthetic")
    assert split.sha256 in _item(appendix, "BIAS", "Data split").text
    assert "10.7937/VTW4-X588" in _item(appendix, "BIAS", "Data sources").text
    assert "CC BY-NC 4.0" in _item(appendix, "BIAS", "Data sources").text
    assert "missing prediction: worst" in _item(appendix, "CLAIM", "Handling of missing data").text
    assert f"seed {spec.bootstrap.seed}" in _item(appendix, "BIAS", "Uncertainty").text
    assert spec.sha256 in _item(appendix, "BIAS", "Harness").text
    assert "readers combined by union" in _item(appendix, "CLAIM", "Definition of ground truth").text
    submissions = _item(appendix, "BIAS", "Submissions")
    assert not submissions.filled and "bench evaluate" in submissions.text
    assert {i.checklist for i in appendix.items} == {"BIAS (Maier-Hein et al. 2020)", "CLAIM 2024",
                                                      "TRIPOD+AI (2024)"}


def test_receipts_fill_the_submissions_item_and_text_is_escaped_in_html(tmp_path):
    build_fake_store(tmp_path / "results")
    appendix = build_appendix(load_task(SEG_TASK), name="synthetic", results=tmp_path / "results")
    submissions = _item(appendix, "BIAS", "Submissions")
    assert submissions.filled and "unet-baseline" in submissions.text
    html = appendix.html()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert html.count('class="missing"') == len(appendix.missing)


def test_cli_writes_both_files_and_lists_what_is_missing(tmp_path):
    result = CliRunner().invoke(app, ["report", "--task", SEG_TASK, "--name", "synthetic", "--out",
                                      str(tmp_path / "appendix")])
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "appendix" / "appendix.md").read_text()
    assert markdown.startswith("# Reporting appendix") and "**MISSING**: " in markdown
    assert (tmp_path / "appendix" / "appendix.html").is_file()
    assert "missing: CLAIM 2024: Failure analysis" in result.output
