"""Radiograph features for cxr-intensity: simple intensity statistics of the lung fields.

Shared by predict.py and fit.py. The image is normalised to its 1st..99th percentile, then
measured over the whole film and over a central box standing in for the lung fields.
"""

import numpy as np

FEATURES = ("mean", "std", "lung_mean", "lung_bright_fraction", "lower_minus_upper", "left_minus_right")
APPEARANCE = ("typical", "indeterminate", "atypical", "negative")
SEVERITY = ("mild", "moderate", "severe")


def features(pixels: np.ndarray) -> np.ndarray:
    """The FEATURES of one radiograph (2-D, or 3-D with one singleton axis)."""
    image = np.squeeze(np.asarray(pixels, dtype=np.float64))
    low, high = np.percentile(image, [1, 99])
    image = np.clip((image - low) / max(high - low, 1e-6), 0, 1)
    width, height = image.shape[:2]
    box = image[int(0.15 * width) : int(0.85 * width), int(0.2 * height) : int(0.8 * height)]
    half = box.shape[1] // 2
    middle = box.shape[0] // 2
    return np.array(
        [
            image.mean(),
            image.std(),
            box.mean(),
            float(np.mean(box > 0.6)),
            box[:, half:].mean() - box[:, :half].mean(),
            box[:middle].mean() - box[middle:].mean(),
        ]
    )


def softmax_rows(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def probabilities(x: np.ndarray, head: dict, mean, scale) -> np.ndarray:
    """Class probabilities of one softmax head for feature rows x."""
    z = (x - np.asarray(mean)) / np.asarray(scale)
    return softmax_rows(z @ np.asarray(head["weights"]).T + np.asarray(head["bias"]))
