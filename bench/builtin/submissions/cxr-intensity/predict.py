"""cxr-intensity: appearance and severity probabilities of a chest radiograph from intensity statistics.

Two softmax heads on six features (params.json, fitted by fit.py on the train split); honest
and close to chance. Writes $BENCH_OUTPUT/predictions.csv with case_id, the four appearance
and the three severity classes.
"""

import csv
import json
import os
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from features import APPEARANCE, SEVERITY, features, probabilities

HERE = Path(__file__).resolve().parent


def main() -> int:
    inputs = Path(os.environ.get("BENCH_INPUT", "/input"))
    outputs = Path(os.environ.get("BENCH_OUTPUT", "/output"))
    params = json.loads((HERE / "params.json").read_text())
    cases = json.loads((inputs / "cases.json").read_text())["cases"]
    with open(outputs / "predictions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", *APPEARANCE, *SEVERITY])
        for case in cases:
            x = features(np.asanyarray(nib.load(inputs / case["image"]).dataobj))[None, :]
            appearance = probabilities(x, params["appearance"], params["mean"], params["scale"])[0]
            severity = probabilities(x, params["severity"], params["mean"], params["scale"])[0]
            writer.writerow(
                [case["case_id"], *(f"{p:.6f}" for p in appearance), *(f"{p:.6f}" for p in severity)]
            )
    print(f"cxr-intensity: {len(cases)} radiographs", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
