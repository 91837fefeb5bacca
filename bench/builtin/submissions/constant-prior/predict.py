"""constant-prior: the floor. Empty masks for segmentation, uniform probabilities for classification.

Reads the task contract from $BENCH_INPUT/task.json, so the same entry runs on every task.
"""

import csv
import json
import os
import sys
from pathlib import Path

import nibabel as nib
import numpy as np


def main() -> int:
    inputs = Path(os.environ.get("BENCH_INPUT", "/input"))
    outputs = Path(os.environ.get("BENCH_OUTPUT", "/output"))
    task = json.loads((inputs / "task.json").read_text())
    cases = json.loads((inputs / "cases.json").read_text())["cases"]
    if task["kind"] == "segmentation":
        (outputs / "masks").mkdir(parents=True, exist_ok=True)
        for case in cases:
            image = nib.load(inputs / case["image"])
            empty = np.zeros(image.shape, dtype=np.uint8)
            nib.save(nib.Nifti1Image(empty, image.affine), outputs / "masks" / f"{case['case_id']}.nii.gz")
    else:
        heads = task["output"]["heads"]
        row = [f"{1 / len(head['classes']):.10f}" for head in heads for _ in head["classes"]]
        with open(outputs / "predictions.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(task["output"]["columns"])
            for case in cases:
                writer.writerow([case["case_id"], *row])
    print(f"constant-prior: {len(cases)} cases of {task['id']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
