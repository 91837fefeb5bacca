"""Surface-area-weighted normalized surface distance: NSD as Nikolov et al. first defined it.

Why a second NSD: :func:`bench.metrics.segmentation.score_case` counts surface *voxels*
(MetricsReloaded's and MONAI's default), while the definition of Nikolov et al. (2018), as
DeepMind's ``surface-distance`` computes it, weights every surface element by its area. The two
differ by several points on real masks (0.075 on full-size CT pairs), enough to reorder a board,
so the definition-sensitivity analysis ranks under both.

Definition (3D only):

- The masks are read on the grid of 2x2x2 voxel neighbourhoods (the voxel lattice shifted by half
  a voxel, the array padded by one background voxel on every side). Each neighbourhood has an
  8-bit code of which of its corners are foreground; codes other than 0 and 255 are *surfels*.
- A surfel's area is the area, in mm^2 with ``spacing_mm``, of the marching-cubes surface at
  level 0.5 inside its cell. A configuration and its complement bound the same region, but the
  ambiguous ones triangulate differently; as in Lorensen and Cline's 15 base cases (and in
  ``surface-distance``), each configuration is triangulated as the one of it and its complement
  with at most four foreground corners. The 256 areas come from :func:`skimage.measure.marching_cubes`
  (Lorensen's method) on each configuration.
- :math:`d_P(s)` is the Euclidean distance in mm between the centre of surfel s of P and the
  nearest surfel centre of R, and the other way round.
- :math:`\\mathrm{NSD}_\\tau = \\dfrac{\\sum_{s \\in S_P, d_P(s) \\le \\tau} a(s) + \\sum_{s \\in S_R,
  d_R(s) \\le \\tau} a(s)}{\\sum_{s \\in S_P} a(s) + \\sum_{s \\in S_R} a(s)}`.

Empty masks follow :class:`bench.metrics.segmentation.EmptyMaskPolicy`'s rule for NSD: both
empty scores 1.0, exactly one empty scores 0.0; never NaN. (``surface-distance`` returns NaN for
two empty masks.) As for the voxel-count NSD, a distance within a relative
:data:`bench.metrics.segmentation.NSD_RTOL` of the tolerance counts as within it.
"""

import itertools
from functools import lru_cache

import numpy as np
from scipy.spatial import cKDTree

from bench.errors import MetricInputError
from bench.metrics.segmentation import NSD_RTOL
from bench.metrics.surface import bounding_box, coordinates

#: Weight of each corner (i, j, k) of a 2x2x2 neighbourhood in its 8-bit code.
_CORNER_WEIGHTS = np.array([[[128, 64], [32, 16]], [[8, 4], [2, 1]]], dtype=np.int32)


@lru_cache(maxsize=64)
def surfel_areas(spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """Area in mm^2 of the surface inside a cell, for each of the 256 neighbourhood codes."""
    from skimage.measure import marching_cubes

    scale = np.asarray(spacing_mm, dtype=np.float64)
    areas = np.zeros(256)
    for code in range(1, 255):
        corners = int(code).bit_count()
        drawn = code if corners <= 4 else 255 - code
        cube = np.zeros((2, 2, 2))
        for corner in itertools.product(range(2), repeat=3):
            cube[corner] = bool(drawn & _CORNER_WEIGHTS[corner])
        # Unit spacing keeps skimage's float32 vertices exact (multiples of 0.5); scale in float64.
        vertices, faces, _, _ = marching_cubes(cube, 0.5, method="lorensen")
        corners_mm = vertices.astype(np.float64)[faces] * scale
        cross = np.cross(corners_mm[:, 1] - corners_mm[:, 0], corners_mm[:, 2] - corners_mm[:, 0])
        areas[code] = 0.5 * np.linalg.norm(cross, axis=1).sum()
    areas.setflags(write=False)
    return areas


def _surfels(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell coordinates (n, 3) and codes (n,) of a mask's surfels, in the cell grid of the full array.

    Cell (i, j, k) has corners at voxels (i - 1 .. i, j - 1 .. j, k - 1 .. k), so the cell grid is
    the array padded by one background voxel; only the mask's tight box (plus that pad) is read.
    """
    box = bounding_box(mask)
    if box is None:
        return np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int64)
    padded = np.pad(np.ascontiguousarray(mask[box], dtype=np.uint8), 1)
    # the code of a cell, built one axis at a time: corner (i, j, k) weighs 2 ** (7 - 4i - 2j - k)
    pair = padded[:, :, :-1] << 1
    pair |= padded[:, :, 1:]
    quad = pair[:, :-1, :] << 2
    quad |= pair[:, 1:, :]
    codes = quad[:-1] << 4
    codes |= quad[1:]
    local = coordinates((codes != 0) & (codes != 255))
    cells = local + np.array([s.start for s in box])
    return cells, codes[tuple(local.T)].astype(np.int64)


def area_weighted_nsd(pred: np.ndarray, ref: np.ndarray, *, spacing_mm, tolerance_mm: float) -> float:
    """Surface-area-weighted NSD of two 3D binary masks at ``tolerance_mm`` (module docstring).

    Distances between surfel centres come from a KD-tree over each mask's surfels in mm (the
    same nearest neighbours as an exact distance transform over the cell grid), so the cost
    grows with the surface, not with the volume between the masks.

    Parameters
    ----------
    pred, ref : (I, J, K) array-like of 0/1 or bool, same shape
    spacing_mm : three voxel sizes in mm, in array-axis order
    tolerance_mm : float >= 0

    Returns
    -------
    float in [0, 1]; 1.0 for two empty masks, 0.0 when exactly one is empty.
    """
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.ndim != 3 or pred.shape != ref.shape:
        raise MetricInputError(f"area_weighted_nsd needs two 3D masks of one shape, got {pred.shape} "
                               f"and {ref.shape}.")
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise MetricInputError(f"spacing_mm must be three positive numbers, got {spacing_mm!r}.")
    if not np.isfinite(tolerance_mm) or tolerance_mm < 0:
        raise MetricInputError(f"tolerance_mm must be a non-negative number, got {tolerance_mm!r}.")
    if ref.flags.f_contiguous and not ref.flags.c_contiguous:
        # as in score_case: the transposed views of a nibabel (Fortran-ordered) mask are C-ordered;
        # surfel areas and distances are invariant when the spacing is permuted with the axes
        pred, ref, spacing = pred.T, ref.T, spacing[::-1]
    pred, ref = pred.astype(bool, copy=False), ref.astype(bool, copy=False)
    cells_p, codes_p = _surfels(pred)
    cells_r, codes_r = _surfels(ref)
    if not len(codes_p) and not len(codes_r):
        return 1.0
    if not len(codes_p) or not len(codes_r):
        return 0.0
    scale = np.asarray(spacing)
    points_p, points_r = cells_p * scale, cells_r * scale
    limit = tolerance_mm * (1 + NSD_RTOL)
    # only "within the tolerance or not" matters: the bounded query stops searching beyond it
    # (and returns inf there), which is several times faster than the full nearest distance; the
    # bound is a little above the limit because the tree compares squared distances strictly
    bound = limit * (1 + 1e-6) + 1e-6
    to_r, _ = cKDTree(points_r, balanced_tree=False, compact_nodes=False).query(
        points_p, distance_upper_bound=bound)
    to_p, _ = cKDTree(points_p, balanced_tree=False, compact_nodes=False).query(
        points_r, distance_upper_bound=bound)
    areas = surfel_areas(spacing)
    area_p, area_r = areas[codes_p], areas[codes_r]
    within = area_p[to_r <= limit].sum() + area_r[to_p <= limit].sum()
    return float(within / (area_p.sum() + area_r.sum()))
