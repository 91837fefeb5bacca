"""Area-weighted NSD against DeepMind's surface-distance on the same masks, and its empty rule."""

import numpy as np
import pytest
from scipy import ndimage

from bench.errors import MetricInputError
from bench.metrics.segmentation import score_case
from bench.metrics.surfels import area_weighted_nsd, surfel_areas

surface_distance = pytest.importorskip("surface_distance")

# surface-distance 0.1 still calls the deprecated scipy.ndimage.morphology namespace.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _blobs(rng, shape):
    return ndimage.binary_opening(rng.random(shape) > 0.6)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tolerance", [0.5, 1.0, 2.0, 4.0])
def test_matches_surface_distance_on_random_anisotropic_masks(seed, tolerance):
    rng = np.random.default_rng(seed)
    pred, ref = _blobs(rng, (28, 24, 18)), _blobs(rng, (28, 24, 18))
    spacing = tuple(float(x) for x in rng.uniform(0.4, 3.0, size=3))
    peer = surface_distance.compute_surface_dice_at_tolerance(
        surface_distance.compute_surface_distances(ref, pred, spacing), tolerance)
    ours = area_weighted_nsd(pred, ref, spacing_mm=spacing, tolerance_mm=tolerance)
    assert ours == pytest.approx(peer, abs=1e-12)


def test_area_table_matches_surface_distance_for_every_code():
    from surface_distance import lookup_tables

    for spacing in [(1.0, 1.0, 1.0), (0.7, 0.7, 2.5), (2.0, 0.5, 1.25)]:
        peer = lookup_tables.create_table_neighbour_code_to_surface_area(spacing)
        assert np.allclose(surfel_areas(spacing), peer, rtol=1e-12, atol=1e-12)


def test_differs_from_the_voxel_count_nsd_on_a_sphere_pair():
    grid = np.indices((40, 40, 40)) - 19.5
    ref = (grid ** 2).sum(axis=0) <= 12 ** 2
    pred = ((grid - np.array([2, 0, 0])[:, None, None, None]) ** 2).sum(axis=0) <= 11 ** 2
    voxel = score_case(pred, ref, spacing_mm=(1.0, 1.0, 1.0), tolerance_mm=1.0).nsd
    area = area_weighted_nsd(pred, ref, spacing_mm=(1.0, 1.0, 1.0), tolerance_mm=1.0)
    assert 0 < area < 1 and 0 < voxel < 1
    assert abs(area - voxel) > 0.01


def test_empty_masks_follow_the_empty_mask_rule():
    empty = np.zeros((5, 5, 5), bool)
    full = empty.copy()
    full[1:3, 1:3, 1:3] = True
    assert area_weighted_nsd(empty, empty, spacing_mm=(1, 1, 1), tolerance_mm=1.0) == 1.0
    assert area_weighted_nsd(full, empty, spacing_mm=(1, 1, 1), tolerance_mm=1.0) == 0.0
    assert area_weighted_nsd(empty, full, spacing_mm=(1, 1, 1), tolerance_mm=1.0) == 0.0
    assert area_weighted_nsd(full, full, spacing_mm=(1, 1, 1), tolerance_mm=0.0) == 1.0


def test_bad_input_names_what_it_got():
    with pytest.raises(MetricInputError, match="3D masks of one shape"):
        area_weighted_nsd(np.zeros((3, 3)), np.zeros((3, 3)), spacing_mm=(1, 1), tolerance_mm=1.0)
    with pytest.raises(MetricInputError, match="spacing_mm must be three positive numbers"):
        area_weighted_nsd(np.zeros((3, 3, 3)), np.zeros((3, 3, 3)), spacing_mm=(1, 0, 1), tolerance_mm=1.0)
