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
- :math:`d_P(s)` is the Euclidean distance in mm from surfel s of P to the nearest surfel of R
  (exact distance transform over the cell grid), and the other way round.
- :math:`\\mathrm{NSD}_\\tau = \\dfrac{\\sum_{s \\in S_P, d_P(s) \\le \\tau} a(s) + \\sum_{s \\in S_R,
  d_R(s) \\le \\tau} a(s)}{\\sum_{s \\in S_P} a(s) + \\sum_{s \\in S_R} a(s)}`.

Empty masks follow :class:`bench.metrics.segmentation.EmptyMaskPolicy`'s rule for NSD: both
empty scores 1.0, exactly one empty scores 0.0; never NaN. (``surface-distance`` returns NaN for
two empty masks.) A distance within a relative epsilon of the tolerance (``TOLERANCE_RTOL``, 1e-9)
counts as within it, so that float rounding of spacing times index never decides a boundary case.
"""

import itertools
from functools import lru_cache

import numpy as np
from scipy import ndimage

from bench.errors import MetricInputError

#: Weight of each corner (i, j, k) of a 2x2x2 neighbourhood in its 8-bit code.
_CORNER_WEIGHTS = np.array([[[128, 64], [32, 16]], [[8, 4], [2, 1]]], dtype=np.int32)
#: Relative slack on the tolerance: a distance d counts as within tau when d <= tau * (1 + rtol).
TOLERANCE_RTOL = 1e-9


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


def _codes(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1).astype(np.int32)
    shape = tuple(n - 1 for n in padded.shape)
    codes = np.zeros(shape, dtype=np.int32)
    for i, j, k in itertools.product(range(2), repeat=3):
        codes += _CORNER_WEIGHTS[i, j, k] * padded[i:i + shape[0], j:j + shape[1], k:k + shape[2]]
    return codes


def area_weighted_nsd(pred: np.ndarray, ref: np.ndarray, *, spacing_mm, tolerance_mm: float) -> float:
    """Surface-area-weighted NSD of two 3D binary masks at ``tolerance_mm`` (module docstring).

    Parameters
    ----------
    pred, ref : (I, J, K) array-like of 0/1 or bool, same shape
    spacing_mm : three voxel sizes in mm, in array-axis order
    tolerance_mm : float >= 0

    Returns
    -------
    float in [0, 1]; 1.0 for two empty masks, 0.0 when exactly one is empty.
    """
    pred, ref = np.asarray(pred).astype(bool), np.asarray(ref).astype(bool)
    if pred.ndim != 3 or pred.shape != ref.shape:
        raise MetricInputError(f"area_weighted_nsd needs two 3D masks of one shape, got {pred.shape} "
                               f"and {ref.shape}.")
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise MetricInputError(f"spacing_mm must be three positive numbers, got {spacing_mm!r}.")
    if not np.isfinite(tolerance_mm) or tolerance_mm < 0:
        raise MetricInputError(f"tolerance_mm must be a non-negative number, got {tolerance_mm!r}.")
    if not pred.any() and not ref.any():
        return 1.0
    if not pred.any() or not ref.any():
        return 0.0
    union = pred | ref
    box = tuple(slice(int(idx.min()), int(idx.max()) + 1) for idx in np.nonzero(union))
    codes_p, codes_r = _codes(pred[box]), _codes(ref[box])
    surfels_p = (codes_p != 0) & (codes_p != 255)
    surfels_r = (codes_r != 0) & (codes_r != 255)
    to_r = ndimage.distance_transform_edt(~surfels_r, sampling=spacing)[surfels_p]
    to_p = ndimage.distance_transform_edt(~surfels_p, sampling=spacing)[surfels_r]
    areas = surfel_areas(spacing)
    area_p, area_r = areas[codes_p[surfels_p]], areas[codes_r[surfels_r]]
    limit = tolerance_mm * (1 + TOLERANCE_RTOL)
    within = area_p[to_r <= limit].sum() + area_r[to_p <= limit].sum()
    return float(within / (area_p.sum() + area_r.sum()))
