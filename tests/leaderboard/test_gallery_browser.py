"""The case gallery in a real browser: headless chromium loads the built site of the real pipeline's
store, scrolls so the lazy thumbnails load, and every image renders."""

import pytest

from bench.leaderboard import build_leaderboard
from bench.store import slugify
from tests.helpers.cdp import Chromium
from tests.helpers.gallery_fixtures import SEG

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TEAM = slugify("ricord-bench reference")
IMAGES = "Array.from(document.querySelectorAll('.gallery img'))"
SCROLL = """new Promise(done => {
  let y = 0;
  const step = () => { window.scrollTo(0, y); y += 300;
    if (y > document.documentElement.scrollHeight + 300) { done(window.scrollY); }
    else { setTimeout(step, 60); } };
  step(); })"""
LOADED = f"""new Promise(done => {{
  const all = () => {IMAGES}.every(i => i.complete);
  const wait = (left) => (all() || left === 0) ? done(all()) : setTimeout(() => wait(left - 1), 100);
  wait(100); }})"""


def test_gallery_thumbnails_load_lazily_and_all_render(real, tmp_path):
    build_leaderboard(real.results, tmp_path / "site")
    entry = tmp_path / "site" / SEG / "validation-synthetic" / TEAM / "threshold-seg.html"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with Chromium(tmp_path / "profile", width=1000, height=420) as browser:
        browser.open(entry.as_uri())
        browser.evaluate("Array.from(document.querySelectorAll('a'))"
                         ".find(a => a.textContent === 'case gallery').click()")
        browser.wait_for("Page.loadEventFired")
        assert browser.evaluate("document.querySelector('h1').textContent") == "Case gallery · threshold-seg"
        count = browser.evaluate(f"{IMAGES}.length")
        assert count == len(real.runs[(SEG, "threshold-seg", "validation")].per_case) > 0
        assert browser.evaluate(f"{IMAGES}.every(i => i.loading === 'lazy')")
        # the small window shows the first row only: the last thumbnails wait for the scroll
        assert browser.evaluate(f"{IMAGES}.at(-1).getBoundingClientRect().top") > 420
        assert browser.evaluate(SCROLL) > 0
        assert browser.evaluate(LOADED) is True
        widths = browser.evaluate(f"{IMAGES}.map(i => i.naturalWidth)")
        assert widths == [256] * count, widths
        assert browser.evaluate(f"{IMAGES}.every(i => i.naturalHeight === 256)")
        browser.evaluate("window.scrollTo(0, 0)")
        browser.screenshot(shots / "gallery.png")
        assert browser.dialogs() == []
        assert [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"] == []
    assert (shots / "gallery.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
