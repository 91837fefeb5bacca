"""Small prepared input trees (CONTRACTS section 5) for the runner tests, written with nibabel.

CT cases are 48x48x12 int16 HU volumes: air around a body, two lungs, and for "positive"
cases ground-glass blobs inside the lungs. Radiographs are 64x64 float32. A ``reference/``
folder with labels sits beside ``input/`` so tests can check that no submission reaches it.
"""

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from bench.tasks import load_task

CT_SHAPE = (48, 48, 12)
CT_AFFINE = np.array([[-0.8, 0, 0, 20.0], [0, -0.8, 0, 30.0], [0, 0, 2.5, -100.0], [0, 0, 0, 1]])


def ct_volume(rng: np.random.Generator, *, lesions: int) -> tuple[np.ndarray, np.ndarray]:
    """(HU int16 volume, true lesion mask) indexed (x, y, z)."""
    x, y, z = np.meshgrid(*(np.arange(n) for n in CT_SHAPE), indexing="ij")
    hu = np.full(CT_SHAPE, -1000.0)
    body = ((x - 24) / 21) ** 2 + ((y - 24) / 17) ** 2 <= 1
    hu[body] = 40
    lungs = (((x - 15) / 7) ** 2 + ((y - 24) / 11) ** 2 <= 1) | (
        ((x - 33) / 7) ** 2 + ((y - 24) / 11) ** 2 <= 1
    )
    lungs &= (z >= 1) & (z <= 10)
    hu[lungs] = -860
    truth = np.zeros(CT_SHAPE, bool)
    for _ in range(lesions):
        cx = rng.choice([14, 34]) + rng.integers(-2, 3)
        cy, cz = 24 + rng.integers(-5, 6), rng.integers(3, 9)
        blob = ((x - cx) ** 2 + (y - cy) ** 2) / 9 + ((z - cz) / 1.5) ** 2 <= 1
        truth |= blob & lungs
    hu[truth] = -450
    hu += rng.normal(0, 15, CT_SHAPE)
    return hu.astype(np.int16), truth


def write_prepared(root: Path, task_id: str, *, n_cases: int = 4, seed: int = 0) -> Path:
    """Write ``root/input`` and ``root/reference`` for ``task_id``; return ``root/input``."""
    spec = load_task(task_id)
    rng = np.random.default_rng(seed)
    images = root / "input" / "images"
    images.mkdir(parents=True)
    reference = root / "reference"
    (reference / "masks").mkdir(parents=True)
    cases, labels = [], []
    for index in range(n_cases):
        case_id = f"CASE-{index:03d}"
        if spec.modality == "CT":
            positive = index % 2 == 0
            hu, truth = ct_volume(rng, lesions=2 if positive else 0)
            nib.save(nib.Nifti1Image(hu, CT_AFFINE), images / f"{case_id}.nii.gz")
            nib.save(
                nib.Nifti1Image(truth.astype(np.uint8), CT_AFFINE), reference / "masks" / f"{case_id}.nii.gz"
            )
            labels.append(f"{case_id},P{index},{'positive' if positive else 'negative'}")
        else:
            pixels = rng.normal(0.5, 0.1, (64, 64)).astype(np.float32)
            affine = np.diag([-0.2, -0.2, 1.0, 1.0])
            nib.save(nib.Nifti1Image(pixels, affine), images / f"{case_id}.nii.gz")
            labels.append(f"{case_id},P{index},typical,mild")
        cases.append({"case_id": case_id, "image": f"images/{case_id}.nii.gz"})
    (root / "input" / "cases.json").write_text(
        json.dumps({"schema_version": 1, "task": task_id, "split": "test", "cases": cases})
    )
    (root / "input" / "task.json").write_text(json.dumps(spec.public_dict()))
    header = "case_id,patient_id,covid" if spec.modality == "CT" else "case_id,patient_id,appearance,grade"
    (reference / "labels.csv").write_text(header + "\n" + "\n".join(labels) + "\n")
    (reference / "reference.json").write_text(
        json.dumps({"schema_version": 1, "task": task_id, "reference_sha256": "0" * 64})
    )
    return root / "input"
