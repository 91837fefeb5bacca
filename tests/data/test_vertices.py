"""Polygon vertices outside the slice, non-finite or too few, through the real MD.ai JSON path.

Every mask is compared with an exact brute force: the even-odd test of each pixel centre in
rational arithmetic (:class:`fractions.Fraction`), which no vertex magnitude can fool. The
rasterizer alone (skimage, 64-bit integers) is exact up to about 1e18 pixels away, but a polygon
with a vertex past 9.2e18 was silently drawn as nothing (a square wrapping the whole slice gave
an empty mask) and further out it raised OverflowError, which aborted ``bench prepare``;
clipping to the slice first removes both. A fill of the whole slice from outside vertices was
not reproduced: a fuzz of 3,500 polygons at scales 50 to 1e300 found no over-drawing. Then the
whole chain: a vertex pushed out of the image in a synthetic 1a export is counted by
``bench data index`` (report and warning), clipped by ``bench prepare`` (named in
``reference.json``), and a NaN vertex is a malformed annotation skipped with its id.
"""

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.data.mdai import clip_to_image, clipped_annotations, outside_image, rasterize_case, read_export
from bench.data.ricord import index_download
from bench.prepare.materialize import prepare_split
from bench.prepare.reference import read_reference
from bench.splits.pin import pin_split
from bench.tasks import load_task
from tests.data.test_mdai import _ann, _export
from tests.helpers.splits_fixtures import copy_task_specs

SHAPE = (12, 15)  # rows, columns
SEG = "ricord-1a-lesion-seg"


def exact_mask(vertices, shape_yx) -> np.ndarray:
    """Pixels whose centre is inside the polygon by the even-odd rule, in exact arithmetic."""
    points = [(Fraction(x), Fraction(y)) for x, y in vertices]
    mask = np.zeros(shape_yx, dtype=bool)
    for row in range(shape_yx[0]):
        for col in range(shape_yx[1]):
            inside = False
            for (x1, y1), (x2, y2) in zip(points, points[-1:] + points[:-1], strict=True):
                if (y1 > row) != (y2 > row) and col < x1 + (row - y1) * (x2 - x1) / (y2 - y1):
                    inside = not inside
            mask[row, col] = inside
    return mask


CASES = {
    "far": [[2, 2], [1e6, 3], [3, 9]],
    "about 1e17 away": [[11.8, 17.7], [19.0, 27.1], [4.7, 13.0], [1.2e17, -4.2e17], [-1.7e17, 6.4e17],
                        [2.5e17, 9.2e17]],
    "past int64": [[2, 2], [1e19, 3], [3, 9]],
    "astronomical": [[2.3, 2.1], [1e300, -7e299], [3.7, 9.2]],  # edges clear of every pixel centre
    "negative": [[-1e9, -1e9], [10, 2], [2, 10]],
    "wrapping the image": [[-50, -50], [100, -50], [100, 100], [-50, 100]],
    "self-intersecting, out": [[-20, -20], [30, 30], [30, -20], [-20, 30]],
    "entirely outside": [[100, 100], [120, 100], [110, 130]],
}


def _off_lattice(vertices):
    """The vertices nudged off the pixel-centre lattice: a centre exactly on an edge is a tie both
    rules may break either way, which is not what these tests are about."""
    return [[x + 0.137, y + 0.291] for x, y in vertices]


def _one_polygon_export(tmp_path, vertices):
    path = _export(tmp_path, [_ann("poly", "L_op", "U1", sop="I0", vertices=vertices)])
    return read_export(path)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_polygon_outside_the_slice_is_clipped_to_exactly_what_it_encloses(tmp_path, name):
    vertices = _off_lattice(CASES[name])
    export = _one_polygon_export(tmp_path, vertices)
    mask = rasterize_case(export, ["I0"], SHAPE, readers="union")[0]
    expected = exact_mask(vertices, SHAPE)
    assert np.array_equal(mask, expected), f"{name}: {mask.sum()} pixels drawn, {expected.sum()} inside"
    assert clipped_annotations(export, ["I0"], SHAPE) == ("poly",)


def test_a_square_wrapping_the_slice_from_past_int64_covers_it_all(tmp_path):
    square = [[-1e19, -1e19], [1e19, -1e19], [1e19, 1e19], [-1e19, 1e19]]  # was an empty mask
    assert rasterize_case(_one_polygon_export(tmp_path, square), ["I0"], SHAPE, readers="union")[0].all()


def test_vertices_on_the_border_are_inside_and_not_counted(tmp_path):
    rows, cols = SHAPE
    on_border = [[-0.5, -0.5], [cols - 0.5, -0.5], [cols - 0.5, rows - 0.5], [-0.5, rows - 0.5]]
    export = _one_polygon_export(tmp_path, on_border)
    assert not outside_image(np.array(on_border), SHAPE)
    assert clipped_annotations(export, ["I0"], SHAPE) == ()
    assert rasterize_case(export, ["I0"], SHAPE, readers="union")[0].all()
    corners = [[0, 0], [cols - 1, 0], [cols - 1, rows - 1], [0, rows - 1]]
    assert clipped_annotations(_one_polygon_export(tmp_path, corners), ["I0"], SHAPE) == ()


def test_a_self_intersecting_polygon_inside_the_slice_is_drawn_even_odd(tmp_path):
    bowtie = _off_lattice([[1, 1], [13, 10], [13, 1], [1, 10]])
    export = _one_polygon_export(tmp_path, bowtie)
    drawn = rasterize_case(export, ["I0"], SHAPE, readers="union")[0]
    assert np.array_equal(drawn, exact_mask(bowtie, SHAPE))


def test_clipping_keeps_every_vertex_inside_the_box():
    clipped = clip_to_image(np.array(CASES["astronomical"]), SHAPE)
    assert len(clipped) >= 3
    assert clipped[:, 0].min() >= -0.5 and clipped[:, 0].max() <= SHAPE[1] - 0.5
    assert clipped[:, 1].min() >= -0.5 and clipped[:, 1].max() <= SHAPE[0] - 0.5
    assert len(clip_to_image(np.array(CASES["entirely outside"]), SHAPE)) == 0


@pytest.mark.parametrize("vertices, expected", [
    ([[1, 1], [float("nan"), 2], [3, 3]], "vertex 1 is [nan, 2.0]"),
    ([[1, 1], [2, float("inf")], [3, 3]], "vertex 1 is [2.0, inf]"),
    ([[float("-inf"), 1], [2, 2], [3, 3]], "vertex 0 is [-inf, 1.0]"),
    ([[1, 1], [4, 4]], "at least 3 distinct vertices"),
    ([[1, 1], [4, 4], [1, 1]], "at least 3 distinct vertices"),
    ([[5, 5]], "at least 3 distinct vertices"),
])
def test_non_finite_or_too_few_vertices_are_a_malformed_annotation_named_by_id(tmp_path, vertices, expected):
    path = _export(tmp_path, [_ann("good", "L_op", "U1", sop="I0", vertices=[[1, 1], [4, 1], [4, 4]]),
                              _ann("bad-one", "L_op", "U1", sop="I0", vertices=vertices)])
    assert "NaN" in path.read_text() or "Infinity" in path.read_text() or not any(
        math.isnan(v) or math.isinf(v) for pair in vertices for v in pair)  # the JSON carries the literal
    export = read_export(path)
    assert list(export.annotations.annotation_id) == ["good"]
    (ident, reason), = export.malformed
    assert ident == "bad-one" and "annotation bad-one" in reason and expected in reason


def test_a_bbox_with_a_non_finite_side_is_malformed(tmp_path):
    labels = [{"id": "G_1", "name": "Team 1", "labels": [
        {"id": "L_box", "name": "Box", "scope": "INSTANCE", "annotationMode": "bbox", "type": "LOCAL"}]}]
    path = _export(tmp_path, [_ann("box", "L_box", "U1", sop="I0",
                                   data={"x": 1, "y": 1, "width": float("inf"), "height": 2})], groups=labels)
    (ident, reason), = read_export(path).malformed
    assert ident == "box" and "finite" in reason


# --- the whole chain on a synthetic 1a export --------------------------------------------------


@pytest.fixture(scope="module")
def pushed_out(tmp_path_factory):
    """A tiny synthetic collection whose first 1a polygon has a vertex 1e17 pixels to the right
    and which has one more annotation with a NaN vertex; indexed, pinned and the test split prepared."""
    base = tmp_path_factory.mktemp("vertices")
    root = base / "ricord"
    assert CliRunner().invoke(app, ["data", "synth", "--out", str(root), "--seed", "3",
                                    "--size", "tiny"]).exit_code == 0
    export_path = next(p for p in sorted((root / "annotations").glob("*.json")) if "1a" in p.name.lower())
    doc = json.loads(export_path.read_text())
    annotations = doc["datasets"][0]["annotations"]
    spec = load_task(SEG)
    polygon = next(a for a in annotations if (a.get("data") or {}).get("vertices")
                   and a.get("SOPInstanceUID") and _label_name(doc, a["labelId"]) in spec.target.labels)
    original = [list(v) for v in polygon["data"]["vertices"]]
    polygon["data"]["vertices"][0] = [1e17, original[0][1]]
    nan_polygon = json.loads(json.dumps(polygon))
    nan_polygon["id"] = "A_nan_vertex"
    nan_polygon["data"]["vertices"][1] = [float("nan"), 3.0]
    annotations.append(nan_polygon)
    export_path.write_text(json.dumps(doc))
    report = index_download(root, annotations=[root / "annotations"], clinical=[root / "clinical"])
    report.write(root / "manifest.csv")
    tasks = copy_task_specs(base / "tasks")
    spec = load_task(SEG, directory=tasks)
    pinned = pin_split(spec, root / "manifest.csv", root=root, name="pushed", directory=tasks)
    study = polygon["StudyInstanceUID"]
    split = next(c.split for c in pinned.records if c.study_uid == study)
    prepared = prepare_split(spec, "pushed", split, root=root, out=base / "prepared", directory=tasks,
                             annotations=[root / "annotations"], cache=False)
    return {"report": report, "prepared": prepared, "polygon": polygon, "original": original, "study": study}


def _label_name(doc, label_id):
    return next(label["name"] for group in doc["labelGroups"] for label in group["labels"]
                if label["id"] == label_id)


def test_index_counts_and_names_the_polygon_outside_its_slice(pushed_out):
    report, polygon = pushed_out["report"], pushed_out["polygon"]
    assert report.counts["annotations_clipped"] == 1
    warning, = [w for w in report.warnings if "outside their slice" in w]
    assert pushed_out["study"] in warning and polygon["id"] in warning
    nan_reason, = [reason for ident, reason in report.skipped if ident == "A_nan_vertex"]
    assert "finite" in nan_reason


def test_prepare_clips_it_names_it_in_the_reference_and_draws_it_exactly(pushed_out):
    prepared, polygon = pushed_out["prepared"], pushed_out["polygon"]
    case_id, = prepared.clipped
    assert prepared.clipped[case_id] == (polygon["id"],)
    reference = read_reference(prepared.reference_dir)
    record = reference.cases.set_index("case_id").loc[case_id]
    assert list(record["clipped_annotations"]) == [polygon["id"]]
    import nibabel as nib

    mask = np.asanyarray(nib.load(prepared.reference_dir / "masks" / f"{case_id}.nii.gz").dataobj)
    assert 0 < mask.sum() < mask[..., 0].size / 2  # never the whole slice
