"""The ranked table says each thing once, and a board where every entry failed says so in words."""

import re

import numpy as np

from bench.leaderboard import build_leaderboard
from bench.store import Store
from bench.tasks import load_task
from tests.helpers.board_fixtures import SEG_TASK, build_fake_store, seg_run
from tests.leaderboard.test_site import _custom_tasks


def _headers(page: str, board: str) -> list[str]:
    section = page.split(f'id="{board}"')[1].split("</thead>")[0]
    return [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", section)]


def test_no_column_repeats_the_primary_of_a_mean_or_dataset_level_board(tmp_path):
    build_fake_store(tmp_path / "results")
    build_leaderboard(tmp_path / "results", tmp_path / "site")
    seg = (tmp_path / "site" / SEG_TASK / "index.html").read_text()
    assert _headers(seg, "test-synthetic") == ["Rank", "Entry", "Team", "dice (95% CI)", "Rank interval",
                                               "Tied group", "Cases scored", "Failures"]
    cls = (tmp_path / "site" / "ricord-1c-cxr-appearance" / "index.html").read_text()
    assert not [h for h in _headers(cls, "test-synthetic") if h.startswith("Ranked by")]


def test_a_statistic_other_than_the_primary_keeps_its_column(tmp_path):
    folder = _custom_tasks(tmp_path, SEG_TASK,
                           ranking={"method": "aggregate-then-rank", "aggregate": "median"})
    spec = load_task(SEG_TASK, directory=folder)
    store = Store(tmp_path / "results")
    seg_run(store, spec, "a", list(np.linspace(0.5, 0.9, 6)))
    seg_run(store, spec, "b", list(np.linspace(0.4, 0.8, 6)))
    build_leaderboard(tmp_path / "results", tmp_path / "site", tasks_dir=folder)
    page = (tmp_path / "site" / SEG_TASK / "index.html").read_text()
    assert "Ranked by median" in _headers(page, "test-synthetic")


def test_every_entry_failing_reads_as_text_not_dashes(tmp_path):
    spec = load_task(SEG_TASK)
    store = Store(tmp_path / "results")
    for team in ("A", "B"):
        seg_run(store, spec, "model", [0.0] * 4, team=team, missing=(0, 1, 2, 3))
    build_leaderboard(tmp_path / "results", tmp_path / "site")
    page = (tmp_path / "site" / SEG_TASK / "index.html").read_text()
    assert "No entry scored a single case on this split" in page
    assert "Kendall's &tau; is undefined here" in page
    assert "(IQR –" not in page and "median –" not in page
    assert "Power" not in page  # a minimum detectable difference of 0 between two zeros says nothing
