"""The case gallery on the real pipeline's store: the right slice, both contours, found only by hash,
and nothing of it (or of any per-case record) on a hidden split."""

import re
import shutil

import numpy as np
import pytest
from matplotlib.image import imread

from bench.leaderboard import build_leaderboard
from bench.leaderboard.plots import PREDICTION_COLOUR, REFERENCE_COLOUR, THUMBNAIL_PX
from bench.prepare.nifti import read_volume
from bench.prepare.reference import read_reference
from bench.store import slugify
from tests.helpers.gallery_fixtures import CXR, SEG

pytestmark = pytest.mark.slow
TEAM = slugify("ricord-bench reference")


@pytest.fixture(scope="module")
def site(real, tmp_path_factory):
    out = tmp_path_factory.mktemp("gallery") / "site"
    build_leaderboard(real.results, out)
    return out


def _colour_pixels(png, colour: str) -> int:
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    return int((np.abs(imread(png)[:, :, :3] - rgb).max(axis=2) < 0.12).sum())


def test_every_case_of_a_shown_split_has_a_thumbnail_at_its_largest_reference_slice(real, site):
    reference = read_reference(real.prepared[(SEG, "validation")] / "reference")
    page = (site / SEG / "validation-synthetic" / TEAM / "threshold-seg_files" / "gallery.html").read_text()
    images = re.findall(r'<img src="gallery/([^"]+)\.png" loading="lazy" width="256" height="256"', page)
    assert images == reference.case_ids
    for case_id in reference.case_ids:
        mask, _, _ = read_volume(reference.mask_path(case_id))
        area = np.asarray(mask).sum(axis=(0, 1))
        caption = page.split(f'id="case-{case_id}"')[1].split("</figure>")[0]
        png = site / SEG / "validation-synthetic" / TEAM / "threshold-seg_files/gallery" / f"{case_id}.png"
        assert imread(png).shape[:2] == (THUMBNAIL_PX, THUMBNAIL_PX)
        if area.any():
            assert f"axial slice {int(np.argmax(area)) + 1} of {len(area)}" in caption
            assert _colour_pixels(png, REFERENCE_COLOUR) > 0, case_id
        else:
            assert "empty reference (middle slice)" in caption and _colour_pixels(png, REFERENCE_COLOUR) == 0
    dice = real.runs[(SEG, "threshold-seg", "validation")].per_case.set_index("case_id")["dice"]
    folder = site / SEG / "validation-synthetic" / TEAM / "threshold-seg_files" / "gallery"
    drawn = [c for c in reference.case_ids if _colour_pixels(folder / f"{c}.png", PREDICTION_COLOUR)]
    assert drawn and all(f"dice {dice[c]:.3f}" in page for c in reference.case_ids)
    # constant-prior predicts nothing: the reference alone is drawn, no pink anywhere
    empty = site / SEG / "validation-synthetic" / TEAM / "constant-prior_files" / "gallery"
    assert not [p for p in empty.glob("*.png") if _colour_pixels(p, PREDICTION_COLOUR)]
    entry = (site / SEG / "validation-synthetic" / TEAM / "threshold-seg.html").read_text()
    assert 'href="threshold-seg_files/gallery.html"' in entry
    assert 'href="threshold-seg_files/per_case.csv"' in entry


def test_a_radiograph_gallery_shows_reference_and_predicted_class(real, site):
    page = (site / CXR / "validation-synthetic" / TEAM / "cxr-intensity_files" / "gallery.html").read_text()
    per_case = real.runs[(CXR, "cxr-intensity", "validation")].per_case
    row = per_case.iloc[0]
    assert f"appearance: reference {row['appearance']}, predicted {row['appearance_pred']}" in page
    assert page.count('loading="lazy"') == len(per_case)


def test_trees_are_found_by_hash_when_moved_and_refused_when_changed(real, site, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(real.work, moved / "work")
    hidden = real.work.with_name("work-away")
    real.work.rename(hidden)  # where the receipts point is gone
    try:
        build_leaderboard(real.results, tmp_path / "none")
        entry = (tmp_path / "none" / SEG / "validation-synthetic" / TEAM / "threshold-seg.html").read_text()
        assert "No case gallery" in entry and "--prepared" in entry
        assert not list((tmp_path / "none").rglob("*.png"))
        build_leaderboard(real.results, tmp_path / "found", prepared_dirs=[moved / "work" / "prepared"],
                          run_dirs=[moved / "work" / "runs"])
        gallery = tmp_path / "found" / SEG / "validation-synthetic" / TEAM / "threshold-seg_files" / "gallery"
        where_recorded = site / SEG / "validation-synthetic" / TEAM / "threshold-seg_files" / "gallery"
        assert sorted(gallery.glob("*.png")) and all(
            p.read_bytes() == (where_recorded / p.name).read_bytes() for p in gallery.glob("*.png"))
        # one input image changed: the inputs digest no longer matches, the tree is not used
        images = moved / "work" / "prepared" / SEG / "synthetic" / "validation" / "input" / "images"
        image = sorted(images.iterdir())[0]
        image.write_bytes(image.read_bytes() + b"\0")
        build_leaderboard(real.results, tmp_path / "changed", prepared_dirs=[moved / "work" / "prepared"],
                          run_dirs=[moved / "work" / "runs"])
        assert not list((tmp_path / "changed" / SEG / "validation-synthetic").rglob("*.png"))
        # the inputs intact again, but one reference mask swapped for another case's: no gallery on
        # that board, a note on its pages, and the rest of the site is built
        image.write_bytes((hidden / image.relative_to(moved / "work")).read_bytes())
        masks = sorted((images.parent.parent / "reference" / "masks").iterdir())
        other = next(m for m in masks[1:] if m.read_bytes() != masks[0].read_bytes())
        masks[0].write_bytes(other.read_bytes())
        build_leaderboard(real.results, tmp_path / "mask", prepared_dirs=[moved / "work" / "prepared"],
                          run_dirs=[moved / "work" / "runs"])
        assert not list((tmp_path / "mask" / SEG / "validation-synthetic").rglob("*.png"))
        entry = (tmp_path / "mask" / SEG / "validation-synthetic" / TEAM / "threshold-seg.html").read_text()
        assert "no longer matches its recorded hash" in entry
        assert list((tmp_path / "mask" / CXR / "validation-synthetic").rglob("*.png"))
    finally:
        hidden.rename(real.work)


def test_a_hidden_split_publishes_no_gallery_csv_or_per_case_record(real, site):
    reference = read_reference(real.prepared[(SEG, "test")] / "reference", check_masks=False)
    ids = set(reference.case_ids)
    board = site / SEG / "test-synthetic"
    assert board.is_dir() and not list(board.rglob("*.png")) and not list(board.rglob("*.csv"))
    assert not list(board.rglob("gallery*"))
    published = [p for p in site.rglob("*") if p.suffix in (".html", ".json", ".csv", ".svg")]
    for path in published:
        text = path.read_text()
        leaked = [i for i in ids if i in text]
        assert not leaked, (path.relative_to(site), leaked[:3])
    assert list(board.rglob("receipts/*.json")), "the hidden run's receipt is published (and was checked)"
