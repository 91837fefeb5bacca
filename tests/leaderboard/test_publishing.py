"""Publishing: the build deletes only what it wrote, a web server can read the site, CSVs hold no formulas."""

import stat

import pandas as pd
import pytest

from bench.errors import LeaderboardError
from bench.leaderboard import build_leaderboard
from bench.store import Store
from bench.tasks import load_task
from bench.trees import MARKER
from tests.helpers.board_fixtures import SEG_TASK, seg_run


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "results")
    seg = load_task(SEG_TASK)
    formula = '=HYPERLINK("http://example.invalid","win")'
    seg_run(store, seg, formula, [0.8, 0.7, 0.9, 0.6], team="@SUM(A1)")
    seg_run(store, seg, "plain", [0.5, 0.4, 0.6, 0.3], team="-2+3")
    return store


def test_a_results_store_inside_out_is_refused_and_kept(store, tmp_path):
    site = tmp_path / "S"
    build_leaderboard(store.root, site)
    moved = site / "results"
    store.root.rename(moved)
    (site / "NOTES.md").write_text("mine")
    with pytest.raises(LeaderboardError, match="overlap"):
        build_leaderboard(moved, site)
    assert (site / "NOTES.md").read_text() == "mine" and any(moved.iterdir())


def test_a_file_the_build_did_not_write_stops_the_rebuild(store, tmp_path):
    site = tmp_path / "site"
    build_leaderboard(store.root, site)
    (site / SEG_TASK / "NOTES.md").write_text("mine")
    with pytest.raises(LeaderboardError, match=f"holds '{SEG_TASK}/NOTES.md', which ricord-bench did not"):
        build_leaderboard(store.root, site)
    assert (site / SEG_TASK / "NOTES.md").read_text() == "mine"
    (site / SEG_TASK / "NOTES.md").unlink()
    build_leaderboard(store.root, site)  # its own site, untouched by anyone: replaced


def test_an_out_inside_the_store_is_refused(store):
    with pytest.raises(LeaderboardError, match="overlap"):
        build_leaderboard(store.root, store.root / "site")


def test_site_folders_are_0755_and_files_0644(store, tmp_path):
    site = tmp_path / "site"
    build_leaderboard(store.root, site)
    modes = {path: stat.S_IMODE(path.stat().st_mode) for path in [site, *site.rglob("*")]}
    assert {modes[p] for p in modes if p.is_dir()} == {0o755}
    assert {modes[p] for p in modes if p.is_file()} == {0o644}
    assert (site / MARKER).is_file()


def test_csv_export_neutralizes_formulas_in_every_text_field(store, tmp_path):
    site = tmp_path / "site"
    build_leaderboard(store.root, site)
    table = pd.read_csv(site / SEG_TASK / f"{SEG_TASK}.csv", dtype=str, keep_default_na=False)
    text = [cell for cell in table.to_numpy().ravel() if pd.isna(pd.to_numeric(cell, errors="coerce"))]
    assert text and not [cell for cell in text if cell[:1] in ("=", "+", "-", "@")]
    assert "'=HYPERLINK(\"http://example.invalid\",\"win\")" in set(table["submission"])
    assert set(table["team"]) == {"'@SUM(A1)", "'-2+3"}
