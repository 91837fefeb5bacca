"""Fit cxr-intensity on the train split: two L2-regularised softmax regressions (gradient descent).

Usage: python fit.py --inputs PREPARED/input --labels PREPARED/reference/labels.csv [--out params.json]
where PREPARED is
  `bench prepare --task ricord-1c-cxr-appearance --name NAME --root ROOT --split train --out PREPARED`
(fit.py refuses any other split: validation and test cases must not reach the parameters).
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


def training_split(inputs: Path, labels: Path, task: str) -> dict:
    """Provenance of the training data, from the prepared split: refuse anything but a train split.

    The labels' folder holds ``reference.json`` (written by `bench prepare`), which names the
    task, the pinned split and its sha256, and the part; ``cases.json`` must agree with it.
    Fitting on validation or test cases would leak them into the reference submission.
    """
    reference_path = labels.parent / "reference.json"
    try:
        reference = json.loads(reference_path.read_text())
        split = json.loads((inputs / "cases.json").read_text())
    except (OSError, ValueError) as error:
        raise SystemExit(f"fit.py: {error}; pass --inputs PREPARED/input and --labels "
                         "PREPARED/reference/labels.csv of one `bench prepare --split train`.") from error
    for where, document in ((reference_path, reference), (inputs / "cases.json", split)):
        found = f"task {document.get('task')!r}, split {document.get('split')!r}"
        if document.get("task") != task or document.get("split") != "train":
            raise SystemExit(f"fit.py: {where} is {found}; fit only on the train split of {task} "
                             "(bench prepare --split train).")
    ids = sorted(c["case_id"] for c in split["cases"])
    if sorted(c["case_id"] for c in reference.get("cases", [])) != ids:
        raise SystemExit(f"fit.py: {reference_path} and {inputs / 'cases.json'} list different cases; "
                         "pass the input and reference folders of the same `bench prepare`.")
    return {
        "task": reference["task"],
        "split_name": reference.get("split_name"),
        "split": "train",
        "split_sha256": reference.get("split_sha256"),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "params.json")
    args = parser.parse_args(argv)
    fitted_on = training_split(args.inputs, args.labels, "ricord-1c-cxr-appearance")
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
        "fitted_on": fitted_on,
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
