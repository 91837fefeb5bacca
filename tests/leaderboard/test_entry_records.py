"""What a board publishes for citing and checking: citation boxes, data sources, receipts, history, CSV."""

import json
from datetime import UTC, datetime

import pandas as pd
import pytest
from markupsafe import escape

from bench.leaderboard import build_leaderboard
from bench.leaderboard.pages import public_receipt
from bench.splits.citation import DATA_SOURCES, cite_board, cite_result
from bench.store import EntryId, Store, plain
from bench.tasks import load_task
from tests.helpers.board_fixtures import CLS_TASK, SEG_TASK, build_fake_store, seg_run

LATER = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    store = build_fake_store(root / "results")
    seg = load_task(SEG_TASK)
    # a second, later validation run of the same entry, and one whose name is a formula
    seg_run(store, seg, "unet-baseline", [0.7, 0.8, 0.9, 1.0], split="validation", team="RSNA", started=LATER)
    seg_run(store, seg, "=cmd|' /C calc'!A0", [0.5, 0.6, 0.7, 0.8], split="validation", team="@evil")
    build_leaderboard(root / "results", root / "site")
    return root, store


def _page(root, task, board, entry: EntryId) -> str:
    return (root / "site" / task / board / f"{entry.key}.html").read_text()


def test_each_board_has_a_citation_box_from_bench_cite(built):
    root, _ = built
    page = (root / "site" / SEG_TASK / "index.html").read_text()
    spec = load_task(SEG_TASK)
    citation = cite_board(spec, "synthetic", "test", "ab" * 32)
    assert str(escape(citation.text())) in page
    assert str(escape(citation.bibtex())) in page
    assert "doi = {10.7937/VTW4-X588}" in citation.bibtex() and "10.1148/radiol.2021203957" in page
    assert f"bench cite --task {SEG_TASK} --name synthetic --split test" in page


def test_every_task_page_names_its_data_source_with_tcia_link_doi_and_licence(built):
    root, _ = built
    for task, collection in [(SEG_TASK, "MIDRC-RICORD-1A"), (CLS_TASK, "MIDRC-RICORD-1C")]:
        page = (root / "site" / task / "index.html").read_text()
        source = DATA_SOURCES[collection]
        assert f'href="{source.tcia_url}"' in page and f'href="https://doi.org/{source.doi}"' in page
        assert "CC BY-NC 4.0" in page and 'href="https://creativecommons.org/licenses/by-nc/4.0/"' in page
    assert source.tcia_url == "https://www.cancerimagingarchive.net/collection/midrc-ricord-1c/"
    assert DATA_SOURCES["MIDRC-RICORD-1B"].doi == "10.7937/31V8-4A40"


def test_entry_page_dates_team_harness_receipt_and_its_citation(built):
    root, store = built
    entry = EntryId("RSNA", "unet-baseline")
    page = _page(root, SEG_TASK, "validation-synthetic", entry)
    run = store.latest(SEG_TASK, entry, split="validation")
    assert "first 2026-11-19T09:00:00+00:00, latest 2026-11-21T09:00:00+00:00 (2 runs)" in page
    assert "ricord-bench 0.1.0 (5ddb84d)" in page
    assert str(escape(cite_result(run.path).text())) in page
    href = f"unet-baseline_files/receipts/{run.run_id}.json"
    assert f'href="{href}"' in page
    published = json.loads((root / "site" / SEG_TASK / "validation-synthetic" / "RSNA" / href).read_text())
    assert published == public_receipt(plain(run.receipt))


def test_history_lists_every_stored_run_on_the_split_and_marks_the_one_that_counts(built):
    root, store = built
    page = _page(root, SEG_TASK, "validation-synthetic", EntryId("RSNA", "unet-baseline"))
    history = page.split("<h2>Run history</h2>")[1].split("</table>")[0]
    runs = [r for r in store.runs(SEG_TASK) if r.name == "unet-baseline" and r.split == "validation"]
    assert len(runs) == 2
    assert history.index(runs[0].run_id) < history.index(runs[1].run_id)
    assert history.count('class="counts"') == 1 and history.count("receipt.json") == 2
    rows = history.split("<tr")[2:]
    assert "0.750" in rows[0] and "0.850" in rows[1] and 'class="counts"' in rows[1]
    for run in runs:
        folder = root / "site" / SEG_TASK / "validation-synthetic" / "RSNA" / "unet-baseline_files"
        assert (folder / "receipts" / f"{run.run_id}.json").is_file()
    test_page = _page(root, SEG_TASK, "test-synthetic", EntryId("RSNA", "unet-baseline"))
    assert runs[0].run_id not in test_page  # a run on another split is not in this board's history


def test_per_case_csv_on_shown_splits_with_formulas_neutralized(built):
    root, store = built
    folder = root / "site" / SEG_TASK / "validation-synthetic"
    evil = EntryId("@evil", "=cmd|' /C calc'!A0")
    table = pd.read_csv(folder / f"{evil.key}_files" / "per_case.csv", dtype=str, keep_default_na=False)
    run = store.latest(SEG_TASK, evil, split="validation")
    assert list(table.columns) == list(run.per_case.columns) and len(table) == 4
    assert table["dice"].tolist() == ["0.5", "0.6", "0.7", "0.8"]
    page = _page(root, SEG_TASK, "validation-synthetic", evil)
    assert 'href="' + evil.key.split("/")[1] + '_files/per_case.csv"' in page
    spec_sites = set(table["site"])
    assert spec_sites == {"419639", "660042"}
    assert not list((root / "site" / SEG_TASK / "test-synthetic").rglob("per_case.csv"))


def test_hidden_split_receipts_withhold_per_case_records(built):
    root, store = built
    entry = EntryId("Lab $x$", "threshold-hu")
    run = store.latest(SEG_TASK, entry, split="test")
    assert [e["case_id"] for e in run.receipt["case_errors"]] == ["c03"]
    folder = root / "site" / SEG_TASK / "test-synthetic"
    published = json.loads((folder / f"{entry.key}_files" / "receipts" / f"{run.run_id}.json").read_text())
    assert published["case_errors"] == "1 per-case record withheld: per-case data are hidden on this split"
    assert "c03" not in _page(root, SEG_TASK, "test-synthetic", entry)


def test_a_phase_board_publishes_the_receipts_its_ledger_names_only(tmp_path):
    from tests.test_challenges import _two_phase_file, _two_phase_store

    spec, store, runs = _two_phase_store(tmp_path)
    outside = seg_run(store, spec, "model", [0.1, 0.2], split="validation",
                      started=datetime(2026, 11, 10, tzinfo=UTC))  # never in the challenge ledger
    build_leaderboard(store.root, tmp_path / "site", challenges=[_two_phase_file(tmp_path)],
                      now=datetime(2026, 11, 30, tzinfo=UTC))
    board = tmp_path / "site" / SEG_TASK / "ricord-seg-validation"
    entry = EntryId("Team A", "model")
    published = sorted(p.stem for p in (board / f"{entry.key}_files" / "receipts").glob("*.json"))
    assert published == sorted([runs["a1"].run_id, runs["a2"].run_id])
    page = (board / f"{entry.key}.html").read_text()
    assert outside.run_id not in page and "from the challenge ledger" in page
    history = page.split("<h2>Run history</h2>")[1].split("</table>")[0]
    assert history.count("receipt.json") == 2 and history.count('class="counts"') == 1
    test_page = (tmp_path / "site" / SEG_TASK / "ricord-seg-test" / f"{entry.key}.html").read_text()
    assert "refused" in test_page and "has used all 2 scored attempts" in test_page


def test_an_entry_named_like_another_entrys_page_does_not_break_the_build(tmp_path):
    """The attack: entries ``x`` and ``x.html`` of one team. ``x``'s page is ``<team>/x.html``;
    with the folder named after the page, ``x.html``'s receipts went into a folder of that
    name, a file already, and the whole site build failed for every entry."""
    spec = load_task(SEG_TASK)
    store = Store(tmp_path / "results")
    seg_run(store, spec, "victim", [0.8, 0.7], team="Honest")
    page_of_x = seg_run(store, spec, "x", [0.5, 0.4], team="Mallory")
    folder_of_x_html = seg_run(store, spec, "x.html", [0.4, 0.3], team="Mallory",
                               started=datetime(2026, 11, 21, tzinfo=UTC))
    build_leaderboard(store.root, tmp_path / "site")
    board = tmp_path / "site" / SEG_TASK / "test-synthetic"
    assert (board / f"{page_of_x.entry.key}.html").is_file() and (board / "Honest/victim.html").is_file()
    page = (board / f"{folder_of_x_html.entry.key}.html").read_text()
    href = page.split('href="')[1:]
    receipt = next(link.split('"')[0] for link in href if "/receipts/" in link)
    assert (board / "Mallory" / receipt).is_file()
