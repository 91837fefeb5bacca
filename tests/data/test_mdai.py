"""MD.ai export parsing, polygon rasterization, reader-group combination.

Masks are checked against hand-drawn expectations; the [x=column, y=row] convention is
pinned by a non-square rectangle.
"""

import json

import numpy as np
import pytest

from bench.data.mdai import (
    combine_readers,
    polygon_label_names,
    rasterize_case,
    rasterize_polygon,
    read_export,
    read_exports,
    reader_masks,
)
from bench.errors import AnnotationError


def _label(label_id, name, scope="INSTANCE", mode="freeform"):
    return {"id": label_id, "name": name, "scope": scope, "annotationMode": mode, "type": "LOCAL"}


#: Label groups of the default export: three reader teams, an adjudicator, the Default group.
GROUPS = {1: "Team 1", 2: "Team 2", 3: "Team 3", 4: "Adjudication", 5: "Default group"}


def _ann(ident, label_id, reader, *, sop=None, vertices=None, study="S1", series="SE1", created="", data=...,
         group=1):
    """An annotation with ``label_id`` of label group ``group`` (each group has its own ids)."""
    if data is ...:
        data = {"vertices": vertices} if vertices is not None else None
    return {
        "id": ident,
        "labelId": label_id if group == 1 else f"{label_id}_{group}",
        "StudyInstanceUID": study,
        "SeriesInstanceUID": series,
        "SOPInstanceUID": sop,
        "data": data,
        "createdById": reader,
        "createdAt": created,
    }


SQUARE = [[1, 1], [3, 1], [3, 3], [1, 3]]


def _export(tmp_path, annotations, *, groups=None, name="export.json"):
    labels = [
        ("L_op", "Infectious opacity", "INSTANCE", "freeform"),
        ("L_at", "Atelectasis", "INSTANCE", "freeform"),
        ("L_typ", "Typical", "STUDY", None),
        ("L_ind", "Indeterminate Appearance", "STUDY", None),
        ("L_neg", "Negative for pneumonia", "STUDY", None),
    ]
    groups = groups or [
        {
            "id": f"G_{k}",
            "name": name_,
            "labels": [_label(ident if k == 1 else f"{ident}_{k}", label, scope, mode)
                       for ident, label, scope, mode in labels],
        }
        for k, name_ in GROUPS.items()
    ]
    path = tmp_path / name
    path.write_text(
        json.dumps({"labelGroups": groups, "datasets": [{"id": "D_1", "annotations": annotations}]})
    )
    return path


def test_rasterize_polygon_square_by_hand():
    mask = rasterize_polygon(np.array(SQUARE), (5, 5))
    expected = np.zeros((5, 5), dtype=bool)
    expected[1:4, 1:4] = True
    assert np.array_equal(mask, expected)


def test_rasterize_polygon_x_is_column_y_is_row():
    # x spans 0..4 (columns), y spans 1..2 (rows): a wide, short rectangle.
    mask = rasterize_polygon(np.array([[0, 1], [4, 1], [4, 2], [0, 2]]), (4, 6))
    assert mask.sum() == 10
    assert mask[1:3, 0:5].all() and not mask[0].any() and not mask[:, 5].any()


def test_read_export_tables_and_null_data(tmp_path):
    path = _export(
        tmp_path,
        [
            _ann("a1", "L_op", "U1", sop="I1", vertices=SQUARE),
            _ann("a2", "L_op", "U1", sop="I2", data=None),
            _ann("a3", "L_typ", "U1", series=None, data=None),
        ],
    )
    export = read_export(path)
    assert export.n_null_data == 1 and export.null_data == ("a2",)
    assert list(export.annotations.annotation_id) == ["a1", "a3"]  # study label kept despite null data
    assert export.annotations.set_index("annotation_id").loc["a1", "label_name"] == "Infectious opacity"
    assert polygon_label_names(export) == ["Atelectasis", "Infectious opacity"]
    assert set(export.labels.label_name) >= {"Typical", "Negative for pneumonia"}


def test_reader_masks_union_and_majority(tmp_path):
    sops = ["I0", "I1"]
    path = _export(
        tmp_path,
        [
            _ann("a", "L_op", "U1", sop="I0", vertices=SQUARE),
            _ann("b", "L_op", "U2", sop="I0", vertices=[[2, 2], [4, 2], [4, 4], [2, 4]], group=2),
            _ann("c", "L_op", "U3", sop="I0", vertices=[[2, 1], [3, 1], [3, 3], [2, 3]], group=3),
            _ann("d", "L_at", "U3", sop="I1", vertices=SQUARE, group=3),
        ],
    )
    export = read_export(path)
    masks = reader_masks(export, sops, (5, 5), labels=["Infectious opacity"])
    assert sorted(masks["reader"]) == ["G_1", "G_2", "G_3"] and masks["adjudicator"] == {}
    assert masks["reader"]["G_3"][1].sum() == 0  # Atelectasis not selected
    union = rasterize_case(export, sops, (5, 5), labels=["Infectious opacity"], readers="union")
    majority = rasterize_case(export, sops, (5, 5), labels=["Infectious opacity"], readers="majority")
    expected_union = np.zeros((2, 5, 5), dtype=bool)
    expected_union[0, 1:4, 1:4] = True
    expected_union[0, 2:5, 2:5] = True
    expected_majority = np.zeros((2, 5, 5), dtype=bool)
    expected_majority[0, 1:4, 2:4] = True  # rows 1-3, cols 2-3: U1 and U3 (rows 2-3 also U2)
    assert np.array_equal(union, expected_union)
    assert np.array_equal(majority, expected_majority)
    both = rasterize_case(export, sops, (5, 5), readers="union")  # default: every polygon label
    assert both[1].sum() == 9


def test_majority_of_two_readers_is_intersection():
    a = np.array([True, True, False, False])
    b = np.array([True, False, True, False])
    assert combine_readers([a, b], readers="majority").tolist() == [True, False, False, False]
    assert combine_readers([a, b], readers="union").tolist() == [True, True, True, False]
    assert combine_readers([], readers="majority", shape=(2,)).tolist() == [False, False]
    with pytest.raises(AnnotationError, match="readers must be one of"):
        combine_readers([a], readers="vote")


def test_reader_without_polygons_counts_for_majority(tmp_path):
    path = _export(
        tmp_path,
        [
            _ann("a", "L_op", "U1", sop="I0", vertices=SQUARE),
            _ann("b", "L_typ", "U2", series=None, data=None, group=2),
        ],
    )
    export = read_export(path)
    assert rasterize_case(export, ["I0"], (5, 5), readers="majority").sum() == 0
    assert rasterize_case(export, ["I0"], (5, 5), readers="union").sum() == 9


def test_two_users_of_one_group_are_one_reader(tmp_path):
    # Team 1's two users draw different halves; with Team 2 drawing nothing, the majority of the
    # two reader groups is their intersection: empty. Per user it would have been 2 of 3.
    path = _export(
        tmp_path,
        [
            _ann("a", "L_op", "U1", sop="I0", vertices=SQUARE),
            _ann("b", "L_op", "U9", sop="I0", vertices=SQUARE),
            _ann("c", "L_typ", "U2", series=None, data=None, group=2),
        ],
    )
    export = read_export(path)
    assert sorted(reader_masks(export, ["I0"], (5, 5))["reader"]) == ["G_1", "G_2"]
    assert rasterize_case(export, ["I0"], (5, 5), readers="majority").sum() == 0


def test_adjudicator_polygons_decide_and_default_group_draws_nothing(tmp_path):
    adjudicated = [[0, 0], [1, 0], [1, 1], [0, 1]]
    path = _export(
        tmp_path,
        [
            _ann("a", "L_op", "U1", sop="I0", vertices=SQUARE),
            _ann("b", "L_op", "U2", sop="I0", vertices=SQUARE, group=2),
            _ann("c", "L_op", "U5", sop="I0", vertices=[[0, 0], [4, 0], [4, 4], [0, 4]], group=5),
        ],
    )
    export = read_export(path)
    assert rasterize_case(export, ["I0"], (5, 5), readers="majority").sum() == 9  # Default group ignored
    path = _export(tmp_path, [*json.loads(path.read_text())["datasets"][0]["annotations"],
                              _ann("d", "L_op", "U4", sop="I0", vertices=adjudicated, group=4)],
                   name="adjudicated.json")
    expected = np.zeros((1, 5, 5), dtype=bool)
    expected[0, 0:2, 0:2] = True
    assert np.array_equal(rasterize_case(read_export(path), ["I0"], (5, 5), readers="union"), expected)


def test_polygon_without_vertices_counts_as_null_data(tmp_path):
    path = _export(
        tmp_path,
        [
            _ann("a1", "L_op", "U1", sop="I0", data={"vertices": []}),
            _ann("a2", "L_op", "U1", sop="I0", vertices=SQUARE),
        ],
    )
    export = read_export(path)
    assert export.null_data == ("a1",)


def test_merge_two_files(tmp_path):
    a = _export(tmp_path, [_ann("a", "L_op", "U1", sop="I0", vertices=SQUARE)], name="a.json")
    b = _export(tmp_path, [_ann("b", "L_op", "U2", sop="I0", vertices=SQUARE)], name="b.json")
    merged = read_exports([a, b])
    assert list(merged.annotations.annotation_id) == ["a", "b"]


# --- bad input -----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(AnnotationError, match=r"nope\.json: annotation export not found"):
        read_export(tmp_path / "nope.json")


def test_empty_file(tmp_path):
    (tmp_path / "e.json").write_text("  \n")
    with pytest.raises(AnnotationError, match=r"e\.json: annotation export is empty"):
        read_export(tmp_path / "e.json")


def test_malformed_json(tmp_path):
    (tmp_path / "m.json").write_text('{"labelGroups": [\n  {"id": 1,}\n]}')
    with pytest.raises(AnnotationError, match=r"m\.json: not valid JSON \(line 2, column"):
        read_export(tmp_path / "m.json")


def test_not_an_export(tmp_path):
    (tmp_path / "x.json").write_text('{"studies": []}')
    with pytest.raises(AnnotationError, match="not an MD.ai export: expected top-level 'labelGroups'"):
        read_export(tmp_path / "x.json")


def test_unknown_label_id(tmp_path):
    path = _export(tmp_path, [_ann("a9", "L_missing", "U1", sop="I0", vertices=SQUARE)])
    with pytest.raises(
        AnnotationError,
        match=r"1 annotation\(s\) use a labelId that no labelGroups entry defines "
        r"\(a9 -> L_missing\)",
    ):
        read_export(path)


def test_a_malformed_annotation_is_skipped_with_its_reason_and_the_rest_kept(tmp_path):
    path = _export(tmp_path, [_ann("a1", "L_op", "U1", sop="I0", vertices=[[1, 2, 3]]),
                              _ann("a2", "L_op", "U1", sop="I1", vertices=SQUARE)])
    export = read_export(path)
    assert export.annotations["annotation_id"].tolist() == ["a2"]
    ((ident, reason),) = export.malformed
    assert ident == "a1" and "annotation a1: data.vertices must be a list of" in reason
    from bench.data.ricord import skip_kind

    assert skip_kind(reason) == "malformed annotation"  # counted under its kind in the index report


def test_unknown_label_name(tmp_path):
    export = read_export(_export(tmp_path, [_ann("a", "L_op", "U1", sop="I0", vertices=SQUARE)]))
    with pytest.raises(AnnotationError, match=r"label\(s\) \['Consolidation'\] are not polygon labels"):
        rasterize_case(export, ["I0"], (5, 5), labels=["Consolidation"])


def test_polygon_on_a_slice_not_in_the_volume(tmp_path):
    export = read_export(
        _export(
            tmp_path,
            [
                _ann("a", "L_op", "U1", sop="I0", vertices=SQUARE),
                _ann("z", "L_op", "U1", sop="I7", vertices=SQUARE),
            ],
        )
    )
    with pytest.raises(AnnotationError, match="annotation z .* refers to SOPInstanceUID I7 of series SE1"):
        rasterize_case(export, ["I0"], (5, 5), series_uid="SE1")
