"""Fit cxr-intensity on the train split: two L2-regularised softmax regressions (gradient descent).

Usage: python fit.py --inputs PREPARED/input --labels PREPARED/reference/labels.csv [--out params.json]
where PREPARED is `bench prepare ricord-1c-cxr-appearance --split train --out PREPARED`.
"""

import argparse
import csv
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from features import APPEARANCE, FEATURES, SEVERITY, features, softmax_rows

L2 = 0.1


def fit_softmax(
    x: np.ndarray, y: np.ndarray, classes: int, *, l2: float = L2, steps: int = 2000, rate: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Weights (classes x features) and biases minimising mean cross-entropy + l2/2 |W|^2."""
    n, d = x.shape
    weights, bias = np.zeros((classes, d)), np.zeros(classes)
    onehot = np.eye(classes)[y]
    for _ in range(steps):
        error = softmax_rows(x @ weights.T + bias) - onehot
        weights -= rate * (error.T @ x / n + l2 * weights)
        bias -= rate * error.mean(axis=0)
    return weights, bias


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "params.json")
    args = parser.parse_args(argv)
    with open(args.labels, newline="") as handle:
        labels = {row["case_id"]: row for row in csv.DictReader(handle)}
    cases = json.loads((args.inputs / "cases.json").read_text())["cases"]
    x = np.array([features(np.asanyarray(nib.load(args.inputs / c["image"]).dataobj)) for c in cases])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    params = {
        "features": list(FEATURES),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "fitted_on": str(args.inputs),
        "n": len(cases),
    }
    for head, column, classes in (("appearance", "appearance", APPEARANCE), ("severity", "grade", SEVERITY)):
        rows = [i for i, c in enumerate(cases) if labels.get(c["case_id"], {}).get(column) in classes]
        y = np.array([classes.index(labels[cases[i]["case_id"]][column]) for i in rows], dtype=int)
        if len(rows) == 0:
            print(f"fit.py: no labelled cases for {head}", file=sys.stderr)
            return 1
        weights, bias = fit_softmax(z[rows], y, len(classes))
        params[head] = {"classes": list(classes), "weights": weights.tolist(), "bias": bias.tolist()}
        print(f"fit.py: {head}: {len(rows)} cases")
    args.out.write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
