"""The built site in a real browser: Debian's headless chromium, driven over the DevTools pipe."""

import pytest

from bench.leaderboard import build_leaderboard
from tests.helpers.board_fixtures import EVIL, SEG_TASK, build_fake_store
from tests.helpers.cdp import Chromium

pytestmark = pytest.mark.browser

ROWS = "Array.from(document.querySelectorAll('#test-synthetic table.ranked tbody tr'))"
NAMES = f"{ROWS}.map(r => r.cells[1].querySelector('a').textContent)"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    build_fake_store(root / "results")
    build_leaderboard(root / "results", root / "site")
    return root


def test_ranked_table_sorts_and_user_text_never_runs(site):
    shots = site / "screenshots"
    shots.mkdir()
    with Chromium(site / "profile") as browser:
        browser.open((site / "site" / SEG_TASK / "index.html").as_uri())
        assert browser.evaluate("document.title").startswith("RICORD 1a")
        assert browser.evaluate(NAMES) == ["unet-baseline", EVIL, "threshold-hu"]
        assert browser.evaluate(f"{ROWS}.map(r => r.cells[0].textContent)") == ["1", "2", "3"]
        assert browser.evaluate(f"{ROWS}.map(r => r.cells[6].textContent)") == ["8 / 8", "8 / 8", "7 / 8"]
        # the malicious name is text, not an element, and no script from user text exists
        assert browser.evaluate("document.querySelectorAll('script').length") == 1
        assert browser.evaluate("document.querySelector('#test-synthetic table b')") is None
        assert browser.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        browser.screenshot(shots / "task.png")

        # click "Entry": ascending by name; again: descending; then "Failures" ascending
        browser.evaluate("document.querySelectorAll('#test-synthetic table.ranked th')[1].click()")
        assert browser.evaluate(NAMES) == [EVIL, "threshold-hu", "unet-baseline"]
        assert browser.evaluate("document.querySelectorAll('#test-synthetic th')[1]"
                                ".getAttribute('aria-sort')") == "ascending"
        browser.evaluate("document.querySelectorAll('#test-synthetic table.ranked th')[1].click()")
        assert browser.evaluate(NAMES) == ["unet-baseline", "threshold-hu", EVIL]
        browser.evaluate("document.querySelectorAll('#test-synthetic table.ranked th')[3].click()")
        assert browser.evaluate(NAMES) == ["threshold-hu", EVIL, "unet-baseline"]
        browser.screenshot(shots / "task-sorted.png")

        browser.evaluate("Array.from(document.querySelectorAll('#test-synthetic table.ranked a'))"
                         f".find(a => a.textContent === {EVIL!r}).click()")
        browser.wait_for("Page.loadEventFired")
        assert browser.evaluate("document.querySelector('h1').textContent") == EVIL
        assert "hidden" in browser.evaluate("document.body.textContent")
        browser.screenshot(shots / "submission.png")

        browser.open((site / "site" / "index.html").as_uri())
        assert browser.evaluate("document.querySelectorAll('.card').length") == 2
        browser.screenshot(shots / "index.png")
        browser.open((site / "site" / "ricord-1c-cxr-appearance" / "index.html").as_uri())
        browser.screenshot(shots / "classification.png")
        assert browser.dialogs() == []
        exceptions = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"]
        assert exceptions == []
    assert (shots / "task.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
