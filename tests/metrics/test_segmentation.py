"""Segmentation metrics against medpy 0.5.2, a brute-force all-pairs reference and hand literals."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from medpy.metric import binary as medpy_binary
from scipy import ndimage
from scipy.spatial.distance import cdist

from bench.errors import BenchError, MetricInputError
from bench.metrics.segmentation import (
    NSD_RTOL,
    SCORE_FIELDS,
    EmptyMaskPolicy,
    SegmentationScores,
    score_case,
    worst_case_scores,
)
from bench.metrics.surface import bounding_box, split_box, surface_distances, surface_of

MEDPY_FIELDS = ("dice", "iou", "precision", "recall", "hd", "hd95_pooled", "assd")


def medpy_values(pred, ref, spacing):
    return {
        "dice": medpy_binary.dc(pred, ref),
        "iou": medpy_binary.jc(pred, ref),
        "precision": medpy_binary.precision(pred, ref),
        "recall": medpy_binary.recall(pred, ref),
        "hd": medpy_binary.hd(pred, ref, voxelspacing=spacing),
        "hd95_pooled": medpy_binary.hd95(pred, ref, voxelspacing=spacing),
        "assd": medpy_binary.assd(pred, ref, voxelspacing=spacing),
        "ravd": medpy_binary.ravd(pred, ref),
    }


def assert_matches_medpy(pred, ref, spacing):
    ours = score_case(pred, ref, spacing_mm=spacing)
    for name, expected in medpy_values(pred, ref, spacing).items():
        assert getattr(ours, name) == pytest.approx(expected, rel=1e-9, abs=1e-12), name


def brute_force(pred, ref, spacing, tolerance_mm):
    """Independent reference: scipy erosion for surfaces, every pairwise distance via cdist."""
    structure = ndimage.generate_binary_structure(pred.ndim, 1)
    surface_p = pred ^ ndimage.binary_erosion(pred, structure=structure, border_value=0)
    surface_r = ref ^ ndimage.binary_erosion(ref, structure=structure, border_value=0)
    points_p = np.argwhere(surface_p) * np.asarray(spacing)
    points_r = np.argwhere(surface_r) * np.asarray(spacing)
    pairwise = cdist(points_p, points_r)
    d_pr, d_rp = pairwise.min(axis=1), pairwise.min(axis=0)
    pooled = np.concatenate([d_pr, d_rp])
    return {
        "hd": max(d_pr.max(), d_rp.max()),
        "hd95": max(np.percentile(d_pr, 95), np.percentile(d_rp, 95)),
        "hd95_pooled": np.percentile(pooled, 95),
        "assd": pooled.mean(),
        "masd": (d_pr.mean() + d_rp.mean()) / 2,
        "nsd": np.mean(pooled <= tolerance_mm * (1 + NSD_RTOL)),  # the documented boundary rule
        "n_surface_pred": len(points_p),
        "n_surface_ref": len(points_r),
    }


def ball(shape, centre, radius):
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True)) <= radius ** 2


# ---- medpy: non-empty masks, 2D and 3D, anisotropic, border-touching ------------------------------------


def test_matches_medpy_3d_anisotropic_several_blobs():
    shape = (40, 48, 30)
    ref = ball(shape, (12, 15, 10), 7) | ball(shape, (30, 35, 20), 5)
    pred = ball(shape, (13, 14, 11), 6) | ball(shape, (29, 36, 19), 5) | ball(shape, (5, 40, 25), 2)
    assert_matches_medpy(pred, ref, (0.7, 0.7, 1.25))


def test_matches_medpy_2d():
    shape = (60, 70)
    ref = ball(shape, (20, 30), 9) | ball(shape, (45, 50), 4)
    pred = ball(shape, (22, 28), 8)
    assert_matches_medpy(pred, ref, (0.5, 1.5))


def test_matches_medpy_masks_touching_the_border():
    shape = (20, 24, 16)
    ref = np.zeros(shape, bool)
    ref[0:6, 0:10, 3:16] = True          # touches three faces of the array
    pred = np.zeros(shape, bool)
    pred[0:5, 2:12, 0:14] = True
    pred[19, 23, 15] = True              # a lone voxel in the far corner
    assert_matches_medpy(pred, ref, (1.0, 0.8, 2.5))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), ndim=st.sampled_from([2, 3]))
def test_matches_medpy_on_random_shapes(data, ndim):
    shape = tuple(data.draw(st.lists(st.integers(1, 9 if ndim == 3 else 16), min_size=ndim, max_size=ndim)))
    pred = data.draw(arrays(bool, shape))
    ref = data.draw(arrays(bool, shape))
    spacing = tuple(data.draw(st.lists(st.floats(0.25, 4.0), min_size=ndim, max_size=ndim)))
    if not pred.any() or not ref.any():
        return  # empty masks follow the policy (tested below), medpy raises on them
    assert_matches_medpy(pred, ref, spacing)
    expected = brute_force(pred, ref, spacing, 1.0)
    ours = score_case(pred, ref, spacing_mm=spacing, tolerance_mm=1.0)
    for name, value in expected.items():
        assert getattr(ours, name) == pytest.approx(value, rel=1e-9, abs=1e-12), name


# ---- hd95, masd, nsd: hand literals and brute force -----------------------------------------------------


def test_nsd_counts_a_distance_equal_to_the_tolerance_up_to_rounding():
    """The example hypothesis once found: every surface distance is 0 or 4 x 0.25000000000000006 mm.

    pred = all of a 3x12 grid, ref = the same with a hole at (0, 7). The hole's two neighbours
    along a row are 0.25 mm away, along a column 2 mm; the pred voxel at the hole is 0.25 mm from
    ref's surface, and every other surface voxel lies on both surfaces: nsd(1 mm) = 1 by hand.
    The KD-tree's distance for a 4-voxel gap is 1.0000000000000002 mm, the same as 1 mm on paper.
    """
    pred = np.ones((3, 12), bool)
    ref = pred.copy()
    ref[0, 7] = False
    assert score_case(pred, ref, spacing_mm=(2.0, 0.25000000000000006), tolerance_mm=1.0).nsd == 1.0


def test_nsd_boundary_is_a_relative_epsilon_not_a_wider_tolerance():
    """Two voxels one column apart: inside the boundary at 1 + 1e-12 mm, outside at 1 + 1e-6 mm."""
    pred = np.zeros((1, 2), bool)
    pred[0, 1] = True
    ref = ~pred
    assert score_case(pred, ref, spacing_mm=(1.0, 1.0 + 1e-12), tolerance_mm=1.0).nsd == 1.0
    assert score_case(pred, ref, spacing_mm=(1.0, 1.0 + 1e-6), tolerance_mm=1.0).nsd == 0.0




def test_hand_computed_literals_far_false_positive():
    """A 1x3 reference bar, the prediction equals it plus one voxel 10 columns away (spacing 1).

    Surfaces are whole masks here. D_PR = [0, 0, 0, 8] (the stray voxel at column 12 is 8 from
    column 4); D_RP = [0, 0, 0]. P95(D_PR) = 0 + 0.85 * (8 - 0) = 6.8 (linear, position 2.85).
    Pooled: [0 x 6, 8], position 5.7 -> 0.7 * 8 = 5.6. assd = 8/7, masd = (2 + 0)/2 = 1.
    nsd at 1 mm = 6/7.
    """
    ref = np.zeros((3, 15), bool)
    ref[1, 2:5] = True
    pred = ref.copy()
    pred[1, 12] = True
    s = score_case(pred, ref, spacing_mm=(1.0, 1.0), tolerance_mm=1.0)
    assert s.hd == 8.0
    assert s.hd95 == pytest.approx(6.8, rel=1e-12)
    assert s.hd95_pooled == pytest.approx(5.6, rel=1e-12)
    assert s.assd == pytest.approx(8 / 7, rel=1e-12)
    assert s.masd == pytest.approx(1.0, rel=1e-12)
    assert s.nsd == pytest.approx(6 / 7, rel=1e-12)
    assert (s.tp, s.fp, s.fn) == (3, 1, 0)
    assert (s.n_surface_pred, s.n_surface_ref) == (4, 3)


def test_hand_computed_literals_shifted_square_anisotropic():
    """A 3x3 square and the same square shifted by one row, spacing (2, 1) mm.

    Surfaces: the 8 ring voxels of each (centres are interior). P's ring: four voxels lie on
    R's ring (0), its top-centre voxel (2, 2) is R's interior centre, 1 mm (one column) from
    R's ring, and its bottom row is 2 mm (one row) below R's. D_PR = [0, 1, 0, 0, 0, 2, 2, 2]
    and by symmetry D_RP = [2, 2, 2, 0, 0, 0, 1, 0]. hd = 2; hd95 = P95 of sorted
    [0, 0, 0, 0, 1, 2, 2, 2] = 2 (position 6.65); masd = assd = 7/8; nsd(1 mm) = 10/16;
    nsd(2 mm) = 1.
    """
    ref = np.zeros((7, 7), bool)
    ref[1:4, 1:4] = True
    pred = np.zeros((7, 7), bool)
    pred[2:5, 1:4] = True
    s = score_case(pred, ref, spacing_mm=(2.0, 1.0), tolerance_mm=1.0)
    assert s.hd == 2.0 and s.hd95 == 2.0
    assert s.masd == pytest.approx(0.875) and s.assd == pytest.approx(0.875)
    assert s.nsd == pytest.approx(10 / 16)
    assert score_case(pred, ref, spacing_mm=(2.0, 1.0), tolerance_mm=2.0).nsd == 1.0
    assert s.dice == pytest.approx(2 * 6 / 18)
    assert s.volume_ref_ml == pytest.approx(9 * 2.0 / 1000)


def test_brute_force_on_larger_3d_case_with_unequal_surfaces():
    rng = np.random.default_rng(3)
    shape = (30, 30, 20)
    ref = ndimage.binary_dilation(rng.random(shape) > 0.995, iterations=2)
    pred = ndimage.binary_dilation(rng.random(shape) > 0.997, iterations=3)
    spacing = (0.8, 0.6, 2.0)
    expected = brute_force(pred, ref, spacing, 1.5)
    ours = score_case(pred, ref, spacing_mm=spacing, tolerance_mm=1.5)
    for name, value in expected.items():
        assert getattr(ours, name) == pytest.approx(value, rel=1e-9), name
    assert ours.hd95 != pytest.approx(ours.hd95_pooled)  # the two definitions do differ here


def test_edt_method_agrees_with_kdtree():
    shape = (30, 32, 20)
    ref = ball(shape, (10, 10, 10), 6) | ball(shape, (22, 25, 8), 4)
    pred = ball(shape, (11, 11, 9), 5)
    a = surface_distances(pred, ref, spacing_mm=(0.7, 0.7, 1.25))
    b = surface_distances(pred, ref, spacing_mm=(0.7, 0.7, 1.25), method="edt")
    np.testing.assert_allclose(a.pred_to_ref_mm, b.pred_to_ref_mm, rtol=1e-12)
    np.testing.assert_allclose(a.ref_to_pred_mm, b.ref_to_pred_mm, rtol=1e-12)


def test_surface_matches_scipy_erosion_and_split_boxes_cover_foreground():
    rng = np.random.default_rng(0)
    shape = (30, 30, 30)
    random_mask = ndimage.binary_dilation(rng.random(shape) > 0.999, iterations=2)
    structure = ndimage.generate_binary_structure(3, 1)
    expected = random_mask ^ ndimage.binary_erosion(random_mask, structure=structure)
    assert np.array_equal(surface_of(random_mask), expected)
    mask = ball(shape, (5, 5, 5), 4) | ball(shape, (25, 24, 26), 5) | ball(shape, (5, 27, 29), 2)
    boxes = split_box(mask, bounding_box(mask))
    assert len(boxes) == 3
    covered = np.zeros_like(mask)
    for box in boxes:
        covered[box] |= mask[box]
    assert np.array_equal(covered, mask)


# ---- lesion detection ------------------------------------------------------------------------------------


def test_lesion_detection_counts_and_match_rule():
    """Reference: lesions A and B. Prediction: overlaps A by exactly one voxel, plus a false lesion C."""
    ref = np.zeros((10, 20), bool)
    ref[1:4, 1:4] = True      # A
    ref[6:9, 10:13] = True    # B
    pred = np.zeros((10, 20), bool)
    pred[3:6, 3:6] = True     # overlaps A at (3, 3) only
    pred[1:3, 16:19] = True   # C, far from everything
    s = score_case(pred, ref, spacing_mm=(1.0, 1.0))
    assert (s.n_lesions_ref, s.n_lesions_pred) == (2, 2)
    assert (s.n_lesions_ref_detected, s.n_lesions_pred_matched) == (1, 1)
    assert s.lesion_recall == 0.5 and s.lesion_precision == 0.5 and s.lesion_f1 == 0.5
    assert s.tp == 1


def test_lesions_use_full_connectivity():
    """Two voxels touching only at a corner are one lesion (8-connectivity in 2D, 26 in 3D)."""
    mask2 = np.zeros((4, 4), bool)
    mask2[0, 0] = mask2[1, 1] = True
    assert score_case(mask2, mask2, spacing_mm=(1, 1)).n_lesions_ref == 1
    mask3 = np.zeros((3, 3, 3), bool)
    mask3[0, 0, 0] = mask3[1, 1, 1] = True
    assert score_case(mask3, mask3, spacing_mm=(1, 1, 1)).n_lesions_pred == 1
    apart = np.zeros((4, 4), bool)
    apart[0, 0] = apart[2, 2] = True
    assert score_case(apart, apart, spacing_mm=(1, 1)).n_lesions_ref == 2


# ---- empty masks: every combination, no numpy warnings --------------------------------------------------


@pytest.mark.parametrize("ndim", [2, 3])
def test_every_empty_combination_follows_the_default_policy(ndim):
    shape = (6, 7, 5)[:ndim]
    spacing = (0.5, 1.0, 2.0)[:ndim]
    empty = np.zeros(shape, bool)
    full = np.zeros(shape, bool)
    full[(slice(1, 3),) * ndim] = True
    diagonal = math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        both = score_case(empty, empty, spacing_mm=spacing)
        pred_empty = score_case(empty, full, spacing_mm=spacing)
        ref_empty = score_case(full, empty, spacing_mm=spacing)
    assert both.empty == "both"
    overlap_like = ("dice", "iou", "precision", "recall", "nsd",
                    "lesion_precision", "lesion_recall", "lesion_f1")
    for name in overlap_like:
        assert getattr(both, name) == 1.0, name
        assert getattr(pred_empty, name) == 0.0, name
        assert getattr(ref_empty, name) == 0.0, name
    for name in ("hd", "hd95", "hd95_pooled", "assd", "masd"):
        assert getattr(both, name) == 0.0, name
        assert getattr(pred_empty, name) == pytest.approx(diagonal), name
        assert getattr(ref_empty, name) == pytest.approx(diagonal), name
    assert (both.ravd, pred_empty.ravd, ref_empty.ravd) == (0.0, -1.0, float(full.sum()))
    assert (pred_empty.fn, ref_empty.fp) == (full.sum(), full.sum())
    assert pred_empty.n_surface_ref == full.sum() and ref_empty.n_surface_pred == full.sum()
    for scores in (both, pred_empty, ref_empty):
        assert all(math.isfinite(v) for v in scores.as_dict().values() if not isinstance(v, str))


def test_custom_policy_values():
    policy = EmptyMaskPolicy(both_empty_score=0.0, both_empty_distance_mm=5.0, worst_distance_mm=373.0)
    empty = np.zeros((4, 4, 4), bool)
    one = empty.copy()
    one[1, 1, 1] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        both = score_case(empty, empty, spacing_mm=(1, 1, 1), policy=policy)
        missing = score_case(empty, one, spacing_mm=(1, 1, 1), policy=policy)
    assert both.dice == 0.0 and both.nsd == 0.0 and both.hd95 == 5.0
    assert missing.hd == 373.0 and missing.masd == 373.0


def test_worst_case_scores_for_a_missing_prediction():
    ref = np.zeros((5, 5), bool)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        on_empty_ref = worst_case_scores(ref, spacing_mm=(1, 2))
    assert on_empty_ref.empty == "missing"
    assert on_empty_ref.dice == 0.0 and on_empty_ref.hd95 == pytest.approx(math.sqrt(25 + 100))
    ref[2, 2] = True
    on_lesion = worst_case_scores(ref, spacing_mm=(1, 2), policy=EmptyMaskPolicy(worst_distance_mm=99.0))
    assert on_lesion.lesion_recall == 0.0 and on_lesion.assd == 99.0 and on_lesion.fn == 1


@pytest.mark.parametrize("kwargs", [dict(worst_distance_mm=0.0), dict(both_empty_score=2.0),
                                    dict(both_empty_distance_mm=float("nan"))])
def test_policy_rejects_bad_values(kwargs):
    with pytest.raises(MetricInputError):
        EmptyMaskPolicy(**kwargs)


# ---- input validation and record -------------------------------------------------------------------------


def test_invalid_inputs_raise_bench_errors_naming_the_argument():
    a = np.zeros((4, 4), bool)
    with pytest.raises(MetricInputError, match="same shape"):
        score_case(a, np.zeros((4, 5), bool), spacing_mm=(1, 1))
    with pytest.raises(MetricInputError, match="spacing_mm"):
        score_case(a, a, spacing_mm=(1, 1, 1))
    with pytest.raises(MetricInputError, match="spacing_mm"):
        score_case(a, a, spacing_mm=(1, 0))
    with pytest.raises(MetricInputError, match="tolerance_mm"):
        score_case(a, a, spacing_mm=(1, 1), tolerance_mm=-1)
    with pytest.raises(MetricInputError, match="2D or 3D"):
        score_case(np.zeros(4), np.zeros(4), spacing_mm=(1,))
    assert issubclass(MetricInputError, BenchError) and issubclass(MetricInputError, ValueError)


def test_scores_record_is_frozen_and_dict_is_plain():
    a = np.zeros((4, 4), np.uint8)
    a[1:3, 1:3] = 1
    s = score_case(a, a, spacing_mm=(1, 1))
    assert isinstance(s, SegmentationScores)
    with pytest.raises(AttributeError):
        s.dice = 0.5  # type: ignore[misc]
    d = s.as_dict()
    assert tuple(d) == SCORE_FIELDS
    assert d["dice"] == 1.0 and d["hd95"] == 0.0 and d["nsd"] == 1.0 and d["lesion_f1"] == 1.0
    assert all(type(v) in (int, float, str) for v in d.values())


# ---- memory order and dtype: what nibabel hands over (Fortran-ordered uint8) scores the same ----------


@pytest.mark.parametrize("empty", ["none", "pred", "ref"])
def test_fortran_uint8_masks_score_like_c_bool_and_like_medpy(empty):
    rng = np.random.default_rng(11)
    shape, spacing = (23, 19, 11), (0.7, 0.8, 1.5)
    ref = ball(shape, (8, 9, 5), 5) | ball(shape, (17, 5, 6), 3)
    pred = ball(shape, (9, 9, 5), 5) | (rng.random(shape) > 0.995)
    if empty == "pred":
        pred[...] = False
    elif empty == "ref":
        ref[...] = False
    c_bool = score_case(pred, ref, spacing_mm=spacing).as_dict()
    f_uint8 = score_case(np.asfortranarray(pred.astype(np.uint8)), np.asfortranarray(ref.astype(np.uint8)),
                         spacing_mm=spacing).as_dict()
    mixed = score_case(np.asfortranarray(pred.astype(np.uint8)), ref, spacing_mm=spacing).as_dict()
    assert f_uint8["empty"] == mixed["empty"] == c_bool["empty"] == empty
    for name in SCORE_FIELDS:
        if name != "empty":
            assert f_uint8[name] == pytest.approx(c_bool[name], rel=1e-12, abs=1e-12), name
            assert mixed[name] == pytest.approx(c_bool[name], rel=1e-12, abs=1e-12), name
    if empty == "none":
        f_pred, f_ref = np.asfortranarray(pred), np.asfortranarray(ref)
        for name, expected in medpy_values(f_pred, f_ref, spacing).items():
            assert f_uint8[name] == pytest.approx(expected, rel=1e-9, abs=1e-12), name


def test_one_byte_masks_beyond_0_1_count_every_nonzero_voxel():
    ref = np.zeros((6, 6, 3), dtype=np.uint8)
    ref[1:4, 1:4, 1] = 1
    pred = ref * 7  # non-zero is foreground: not a bool view of 7s
    assert score_case(np.asfortranarray(pred), np.asfortranarray(ref), spacing_mm=(1, 1, 1)).dice == 1.0
    worst = worst_case_scores(np.asfortranarray(ref), spacing_mm=(1, 1, 1))
    assert worst.fn == 9 and worst.empty == "missing"


def test_int8_masks_with_negative_values_count_as_foreground():
    ref = np.zeros((6, 6, 3), dtype=np.int8)
    ref[1:4, 1:4, 1] = 1
    pred = ref.copy()
    pred[1, 1, 1] = -1  # non-zero: foreground, never a bool view of the byte 0xFF
    expected = score_case(pred != 0, ref != 0, spacing_mm=(1, 1, 1)).as_dict()
    assert score_case(np.asfortranarray(pred), np.asfortranarray(ref),
                      spacing_mm=(1, 1, 1)).as_dict() == expected
