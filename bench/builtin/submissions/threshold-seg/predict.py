"""threshold-seg: classical CT lesion segmentation by lung-window thresholding and morphology.

1. Lungs: air (HU < -400) not connected to the air around the body (components touching the
   in-plane border are outside air), large components only, closed and hole-filled per axial
   slice so that dense lesions inside the lungs belong to the lung mask.
2. Lesions: lung voxels in the ground-glass / consolidation window (LOW_HU..HIGH_HU), cleaned by
   an in-plane opening, components under MIN_VOXELS dropped.

Reads $BENCH_INPUT/cases.json, writes $BENCH_OUTPUT/masks/<case_id>.nii.gz (uint8 0/1, input grid).
"""

import json
import os
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

LOW_HU, HIGH_HU = -800.0, -100.0
MIN_VOXELS = 10


def lung_mask(hu: np.ndarray) -> np.ndarray:
    """Lungs of a CT volume indexed (x, y, z), lesions inside them included."""
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
    keep = np.flatnonzero(sizes >= max(0.05 * sizes.max(), 50)) + 1
    lungs = np.isin(labels, keep)
    lungs = ndimage.binary_closing(lungs, structure=np.ones((5, 5, 1), bool), iterations=2)
    for k in range(lungs.shape[2]):
        lungs[:, :, k] = ndimage.binary_fill_holes(lungs[:, :, k])
    return lungs


def segment(hu: np.ndarray) -> np.ndarray:
    lungs = lung_mask(hu)
    lesion = lungs & (hu >= LOW_HU) & (hu <= HIGH_HU)
    lesion = ndimage.binary_opening(lesion, structure=np.ones((2, 2, 1), bool))
    labels, count = ndimage.label(lesion)
    if count:
        sizes = ndimage.sum(lesion, labels, np.arange(1, count + 1))
        lesion = np.isin(labels, np.flatnonzero(sizes >= MIN_VOXELS) + 1)
    return lesion


def main() -> int:
    inputs = Path(os.environ.get("BENCH_INPUT", "/input"))
    outputs = Path(os.environ.get("BENCH_OUTPUT", "/output"))
    (outputs / "masks").mkdir(parents=True, exist_ok=True)
    cases = json.loads((inputs / "cases.json").read_text())["cases"]
    for case in cases:
        image = nib.load(inputs / case["image"])
        hu = np.asanyarray(image.dataobj).astype(np.float32)
        mask = segment(hu).astype(np.uint8)
        nib.save(nib.Nifti1Image(mask, image.affine), outputs / "masks" / f"{case['case_id']}.nii.gz")
        print(f"{case['case_id']}: {int(mask.sum())} lesion voxels", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
