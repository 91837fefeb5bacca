"""Fit hu-stats-cls on the train split: L2-regularised logistic regression by Newton's method.

Usage: python fit.py --inputs PREPARED/input --labels PREPARED/reference/labels.csv [--out params.json]
where PREPARED is
  `bench prepare --task ricord-ct-covid-cls --name NAME --root ROOT --split train --out PREPARED`
(fit.py refuses any other split: validation and test cases must not reach the parameters).
"""

import argparse
import csv
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from features import FEATURES, features

L2 = 1.0


def fit_logistic(
    x: np.ndarray, y: np.ndarray, *, l2: float = L2, steps: int = 50
) -> tuple[np.ndarray, float]:
    """Weights and bias minimising the mean log loss + l2/2 |w|^2 / n (Newton iterations)."""
    n, d = x.shape
    design = np.hstack([x, np.ones((n, 1))])
    theta = np.zeros(d + 1)
    penalty = np.diag([l2] * d + [0.0])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-design @ theta))
        gradient = design.T @ (p - y) + penalty @ theta
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(d + 1)
        update = np.linalg.solve(hessian, gradient)
        theta -= update
        if np.abs(update).max() < 1e-8:
            break
    return theta[:d], float(theta[d])


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
    fitted_on = training_split(args.inputs, args.labels, "ricord-ct-covid-cls")
    with open(args.labels, newline="") as handle:
        labels = {row["case_id"]: row["covid"] for row in csv.DictReader(handle)}
    cases = json.loads((args.inputs / "cases.json").read_text())["cases"]
    rows, y = [], []
    for case in cases:
        if labels.get(case["case_id"]) not in ("positive", "negative"):
            continue
        hu = np.asanyarray(nib.load(args.inputs / case["image"]).dataobj).astype(np.float32)
        rows.append(features(hu))
        y.append(1.0 if labels[case["case_id"]] == "positive" else 0.0)
    if len(set(y)) < 2:
        print("fit.py: need both positive and negative training cases", file=sys.stderr)
        return 1
    x = np.array(rows)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    weights, bias = fit_logistic((x - mean) / scale, np.array(y))
    params = {
        "features": list(FEATURES),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "weights": weights.tolist(),
        "bias": bias,
        "fitted_on": fitted_on,
        "n": len(y),
    }
    args.out.write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
    print(f"fit.py: {len(y)} cases, weights {np.round(weights, 3).tolist()}, bias {bias:.3f} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
