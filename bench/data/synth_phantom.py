"""Phantoms for the synthetic collection: a chest CT with known lesions, and a chest radiograph.

Shapes live in normalized coordinates (x, y in [-1, 1] across the matrix, t in [0, 1]
along the slices), so the same case renders at 64x64x24 or 512x512x220. Everything is
computed one slice at a time to keep full-size volumes cheap, and all randomness comes
from the generator passed in (deterministic per seed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.measure import approximate_polygon, find_contours

#: The six RICORD 1a polygon label names.
LESION_LABELS = (
    "Infectious opacity",
    "Infectious TIB/micronodules",
    "Infectious cavity",
    "Atelectasis",
    "Noninfectious nodule/mass",
    "Other noninfectious opacity",
)

HU_AIR, HU_LUNG, HU_SOFT, HU_BONE, HU_VESSEL = -1000.0, -850.0, 40.0, 400.0, 35.0
HU_GGO = -700.0


@dataclass(frozen=True)
class Lesion:
    """An ellipsoid lesion (clipped to the lungs) with its label and density in HU."""

    label: str
    center: tuple[float, float, float]  # (x, y, t)
    radii: tuple[float, float, float]
    hu: float
    cavity: bool = False


@dataclass(frozen=True)
class Vessel:
    """A tube through a lung: centre moves linearly with t."""

    start: tuple[float, float]
    drift: tuple[float, float]
    radius: float


def random_lesions(rng: np.random.Generator, n: int, labels: list[str]) -> list[Lesion]:
    """``n`` lesions with the given labels, placed in the lungs."""
    lesions = []
    for k in range(n):
        label = labels[k]
        side = 1.0 if rng.random() < 0.5 else -1.0
        center = (side * 0.4 + rng.uniform(-0.1, 0.1), rng.uniform(-0.2, 0.2), rng.uniform(0.35, 0.7))
        radii = (rng.uniform(0.07, 0.14), rng.uniform(0.08, 0.16), rng.uniform(0.09, 0.17))
        if label == "Infectious TIB/micronodules":
            radii = tuple(r * 0.7 for r in radii)
        ggo = label in ("Other noninfectious opacity",) or (
            label == "Infectious opacity" and rng.random() < 0.5
        )
        hu = HU_GGO + rng.uniform(-40, 40) if ggo else rng.uniform(-100, 40)
        lesions.append(
            Lesion(label=label, center=center, radii=radii, hu=float(hu), cavity=label == "Infectious cavity")
        )
    return lesions


def random_vessels(rng: np.random.Generator, n_per_lung: int = 3) -> list[Vessel]:
    """Vessels in both lungs."""
    vessels = []
    for side in (-1.0, 1.0):
        for _ in range(n_per_lung):
            vessels.append(
                Vessel(
                    start=(side * 0.4 + rng.uniform(-0.12, 0.12), rng.uniform(-0.25, 0.25)),
                    drift=(rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1)),
                    radius=rng.uniform(0.015, 0.03),
                )
            )
    return vessels


def _grid(ny: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    y = (np.arange(ny) + 0.5) / ny * 2 - 1
    x = (np.arange(nx) + 0.5) / nx * 2 - 1
    return y[:, None], x[None, :]


def lung_mask(t: float, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Both lungs at height t; they taper towards the apex and the base."""
    extent = 1 - ((t - 0.55) / 0.45) ** 2
    if extent <= 0:
        return np.zeros(np.broadcast(y, x).shape, dtype=bool)
    scale = np.sqrt(extent)
    left = ((x - 0.4) / (0.27 * scale)) ** 2 + ((y + 0.02) / (0.42 * scale)) ** 2 < 1
    right = ((x + 0.4) / (0.27 * scale)) ** 2 + ((y + 0.02) / (0.42 * scale)) ** 2 < 1
    return left | right


def ct_slice(
    t: float,
    shape_yx: tuple[int, int],
    vessels: list[Vessel],
    lesions: list[Lesion],
    rng: np.random.Generator,
    *,
    noise_hu: float,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """HU image of one slice and the true lesion mask per label on it."""
    y, x = _grid(*shape_yx)
    hu = np.full(shape_yx, HU_AIR, dtype=np.float32)
    body = (x / 0.85) ** 2 + (y / 0.62) ** 2 < 1
    hu[body] = HU_SOFT
    lungs = lung_mask(t, y, x)
    hu[lungs] = HU_LUNG
    hu[(x**2 + (y - 0.45) ** 2) < 0.08**2] = HU_BONE
    for vessel in vessels:
        cx, cy = vessel.start[0] + vessel.drift[0] * t, vessel.start[1] + vessel.drift[1] * t
        hu[lungs & (((x - cx) ** 2 + (y - cy) ** 2) < vessel.radius**2)] = HU_VESSEL
    truth: dict[str, np.ndarray] = {}
    for lesion in lesions:
        (cx, cy, ct), (rx, ry, rt) = lesion.center, lesion.radii
        dz = ((t - ct) / rt) ** 2
        if dz >= 1:
            continue
        inside = lungs & ((((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + dz) < 1)
        if not inside.any():
            continue
        hu[inside] = lesion.hu
        if lesion.cavity:
            core = inside & ((((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + dz) < 0.3)
            hu[core] = HU_AIR + 50
        truth[lesion.label] = truth.get(lesion.label, np.zeros(shape_yx, dtype=bool)) | inside
    hu += rng.normal(0.0, noise_hu, size=shape_yx).astype(np.float32)
    return hu, truth


def trace_polygons(mask: np.ndarray) -> list[np.ndarray]:
    """Freeform polygons ``[[x, y], ...]`` tracing each region of a 2D mask (pixel centres).

    Contours at level 0.5 of the zero-padded mask run half-way between inside and outside
    pixel centres, so filling them by pixel centre reproduces the mask; collinear points
    are dropped (tolerance 0.05 px) as a human tracer's polygon would not have them.
    """
    padded = np.pad(mask.astype(np.float32), 1)
    polygons = []
    for contour in find_contours(padded, 0.5):
        simplified = approximate_polygon(contour, tolerance=0.05)
        polygons.append(np.round(simplified[:, ::-1] - 1.0, 3))
    return polygons


def radiograph(
    shape_yx: tuple[int, int], rng: np.random.Generator, *, opacities: int, lateral: bool = False
) -> np.ndarray:
    """Chest radiograph density in [0, 4095] (higher = denser), with ``opacities`` blobs."""
    y, x = _grid(*shape_yx)
    image = np.full(shape_yx, 200.0)
    body = (x / (0.6 if lateral else 0.9)) ** 2 + (y / 0.95) ** 2 < 1
    image[body] = 2400.0
    if not lateral:
        lungs = lung_mask(0.55, y * 0.9, x)
        image[lungs] = 900.0
        image[np.broadcast_to(np.abs(x) < 0.1, shape_yx)] = 3000.0
        for _ in range(opacities):
            cx, cy = rng.choice([-0.4, 0.4]) + rng.uniform(-0.1, 0.1), rng.uniform(-0.2, 0.35)
            r = rng.uniform(0.08, 0.18)
            blob = lungs & (((x - cx) ** 2 + (y - cy) ** 2) < r**2)
            image[blob] += rng.uniform(500, 1100)
    image += rng.normal(0.0, 30.0, size=shape_yx)
    return np.clip(image, 0, 4095)
