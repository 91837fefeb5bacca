"""hu-stats-cls: COVID-19 probability of a chest CT from a logistic model on lung HU features.

Reads $BENCH_INPUT/cases.json and params.json (fitted by fit.py on the train split), writes
$BENCH_OUTPUT/predictions.csv with columns case_id, negative, positive.
"""

import csv
import json
import os
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from features import features, probability

HERE = Path(__file__).resolve().parent


def main() -> int:
    inputs = Path(os.environ.get("BENCH_INPUT", "/input"))
    outputs = Path(os.environ.get("BENCH_OUTPUT", "/output"))
    params = json.loads((HERE / "params.json").read_text())
    cases = json.loads((inputs / "cases.json").read_text())["cases"]
    with open(outputs / "predictions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "negative", "positive"])
        for case in cases:
            hu = np.asanyarray(nib.load(inputs / case["image"]).dataobj).astype(np.float32)
            p = float(probability(features(hu)[None, :], params)[0])
            writer.writerow([case["case_id"], f"{1 - p:.6f}", f"{p:.6f}"])
            print(f"{case['case_id']}: P(positive) = {p:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
