"""Helpers shared by the adversarial submissions: the inputs, and valid outputs for the cases kept."""

import csv
import json
import os
from pathlib import Path

INPUT = Path(os.environ.get("BENCH_INPUT", "/input"))
OUTPUT = Path(os.environ.get("BENCH_OUTPUT", "/output"))


def cases() -> list[dict]:
    return json.loads((INPUT / "cases.json").read_text())["cases"]


def extra(key: str):
    """A test-only field the test wrote into cases.json (a port, a host path to attack)."""
    return json.loads((INPUT / "cases.json").read_text()).get(key)


def write_predictions(rows: dict[str, tuple[str, str]]) -> None:
    """predictions.csv for the CT COVID task: {case_id: (negative, positive)} as text."""
    with open(OUTPUT / "predictions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "negative", "positive"])
        for case_id, (negative, positive) in rows.items():
            writer.writerow([case_id, negative, positive])


def write_valid_predictions(case_ids) -> None:
    write_predictions({case_id: ("0.25", "0.75") for case_id in case_ids})


def write_empty_mask(case: dict) -> None:
    import nibabel as nib
    import numpy as np

    image = nib.load(INPUT / case["image"])
    (OUTPUT / "masks").mkdir(exist_ok=True)
    mask = np.zeros(image.shape, np.uint8)
    nib.save(nib.Nifti1Image(mask, image.affine), OUTPUT / "masks" / f"{case['case_id']}.nii.gz")
