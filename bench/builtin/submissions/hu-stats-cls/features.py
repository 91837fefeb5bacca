"""CT features for hu-stats-cls: lesion burden and the HU histogram of the lungs.

Shared by predict.py (inference) and fit.py (fitting the logistic model on the train split).
"""

import numpy as np
from scipy import ndimage

FEATURES = ("lesion_fraction", "ggo_fraction", "consolidation_fraction", "lung_mean_hu", "lung_std_hu")


def lung_mask(hu: np.ndarray) -> np.ndarray:
    """Lungs of a CT volume indexed (x, y, z): inner air, closed and hole-filled per axial slice."""
    air = hu < -400
    labels, count = ndimage.label(air)
    if count == 0:
        return np.zeros(hu.shape, bool)
    border = np.unique(
        np.concatenate([labels[0].ravel(), labels[-1].ravel(), labels[:, 0].ravel(), labels[:, -1].ravel()])
    )
    inside = air & ~np.isin(labels, border)
    labels, count = ndimage.label(inside)
    if count == 0:
        return inside
    sizes = ndimage.sum(inside, labels, np.arange(1, count + 1))
    lungs = np.isin(labels, np.flatnonzero(sizes >= max(0.05 * sizes.max(), 50)) + 1)
    lungs = ndimage.binary_closing(lungs, structure=np.ones((5, 5, 1), bool), iterations=2)
    for k in range(lungs.shape[2]):
        lungs[:, :, k] = ndimage.binary_fill_holes(lungs[:, :, k])
    return lungs


def features(hu: np.ndarray) -> np.ndarray:
    """The FEATURES of one CT volume, in order."""
    lungs = lung_mask(hu)
    values = hu[lungs]
    if values.size == 0:
        return np.array([0.0, 0.0, 0.0, -1000.0, 0.0])
    lesion = np.mean((values >= -800) & (values <= -100))
    ggo = np.mean((values >= -700) & (values <= -300))
    consolidation = np.mean((values > -300) & (values <= 100))
    return np.array([lesion, ggo, consolidation, float(values.mean()), float(values.std())])


def probability(x: np.ndarray, params: dict) -> np.ndarray:
    """P(COVID positive) of the logistic model in params for feature rows x."""
    z = (x - np.asarray(params["mean"])) / np.asarray(params["scale"])
    score = z @ np.asarray(params["weights"]) + params["bias"]
    return 1.0 / (1.0 + np.exp(-score))
