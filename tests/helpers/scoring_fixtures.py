"""Hand-built inputs for the scoring tests, in the exact on-disk formats of CONTRACTS 4-6.

A temporary tasks folder (``BENCH_TASKS_DIR``) holds a copy of a real task.yaml and a pinned
split ``fixture.json``; a reference tree is written the way ``bench prepare`` writes it
(reference.json with its hash, masks or labels.csv), and a run directory the way ``bench run``
does (run.json with per-case statuses, validated outputs only). Masks are tiny so every
expected value can be written out by hand.
"""

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import yaml

from bench.io import SCHEMA_VERSION, sha256_json, write_csv, write_json
from bench.prepare import nifti
from bench.prepare.reference import labels_table, reference_sha256
from bench.runners.record import CaseStatus, RunRecord
from bench.splits.assign import PROCEDURE
from bench.splits.pinned import load_split
from bench.tasks import BUILTIN_TASKS, SPLITS, load_task

SPLIT_NAME = "fixture"
FIXTURE_INPUTS = "0" * 64
"""The prepared-inputs digest hand-built references and runs share (a real one covers files)."""


def make_tasks_dir(root: Path, monkeypatch, task_id: str, *, edit=None) -> Path:
    """Copy the built-in ``<task_id>/task.yaml`` under ``root/tasks`` (optionally edited) and point
    ``BENCH_TASKS_DIR`` at it."""
    folder = root / "tasks" / task_id
    folder.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load((BUILTIN_TASKS / task_id / "task.yaml").read_text())
    if edit is not None:
        edit(raw)
    (folder / "task.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("BENCH_TASKS_DIR", str(root / "tasks"))
    return root / "tasks"


def pin_fixture_split(task_id: str, cases: list[tuple[str, str]], *, split: str = "test") -> str:
    """Write ``<task_id>/splits/fixture.json`` in ``BENCH_TASKS_DIR`` holding ``(case_id, patient_id)``
    in ``split``."""
    spec = load_task(task_id)
    strategy = {
        "procedure": PROCEDURE,
        "seed": spec.split.seed,
        "group_key": spec.split.group_by,
        "strata": list(spec.split.stratify),
        "fractions": {s: float(spec.split.fractions[s]) for s in SPLITS},
    }
    records = []
    for case_id, patient_id in sorted(cases):
        images, annotations = sha256_json(["img", case_id]), sha256_json(["ann", case_id])
        records.append(
            {
                "case_id": case_id,
                "patient_id": patient_id,
                "collection": spec.collections[0],
                "study_uid": f"1.2.3.{len(records)}",
                "series_uid": f"1.2.3.{len(records)}.1",
                "split": split,
                "strata": {},
                "fingerprint": {
                    "images": images,
                    "annotations": annotations,
                    "case": sha256_json({"annotations": annotations, "images": images}),
                },
            }
        )
    body = {
        "schema_version": SCHEMA_VERSION,
        "task": task_id,
        "name": SPLIT_NAME,
        "strategy": strategy,
        "manifest_sha256": "0" * 64,
        "cases": records,
    }
    body["sha256"] = sha256_json(body)
    path = Path(__import__("os").environ["BENCH_TASKS_DIR"]) / task_id / "splits" / f"{SPLIT_NAME}.json"
    write_json(path, body)
    return body["sha256"]


def affine_for(spacing_mm) -> np.ndarray:
    """RAS affine of a grid with (i, j, k) spacing ``spacing_mm`` (DICOM LPS with x, y negated)."""
    return np.diag([-spacing_mm[0], -spacing_mm[1], spacing_mm[2], 1.0])


def _save_mask(path: Path, mask: np.ndarray, affine: np.ndarray) -> str:
    data = np.asarray(mask, dtype=np.uint8)
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)
    return nifti.mask_sha256(data)


def _demographics(case: dict, spec) -> dict:
    from bench.prepare.demographics import age_band

    return {
        "site": case.get("site", "S1"),
        "sex": case.get("sex", "F"),
        "age": case.get("age", 50.0),
        "age_band": age_band(case.get("age", 50.0), spec.subgroups.age_band_edges),
    }


def write_reference(out: Path, task_id: str, cases: list[dict], *, spacing_mm=(1.0, 1.0, 1.0)) -> Path:
    """A reference tree as ``bench prepare`` writes it.

    ``cases``: dicts with ``case_id``, ``patient_id``, optional ``site``/``sex``/``age`` and either
    ``mask`` (segmentation, an (i, j, k) array) or the task's label columns (classification).
    Returns ``out/reference``.
    """
    spec = load_task(task_id)
    split = load_split(task_id, SPLIT_NAME)
    reference = out / "reference"
    records = []
    for case in sorted(cases, key=lambda c: c["case_id"]):
        record = {
            "case_id": case["case_id"],
            "source_case_id": case["case_id"],
            "patient_id": case["patient_id"],
            **_demographics(case, spec),
        }
        if spec.kind == "segmentation":
            record["mask"] = f"masks/{case['case_id']}.nii.gz"
            record["mask_sha256"] = _save_mask(
                reference / record["mask"], case["mask"], affine_for(spacing_mm)
            )
        else:
            for column in spec.label_columns:
                record[column] = case.get(column)
        records.append(record)
    document = {
        "schema_version": SCHEMA_VERSION,
        "task": task_id,
        "task_sha256": spec.sha256,
        "split_name": SPLIT_NAME,
        "split": "test",
        "split_sha256": split.sha256,
        "inputs_sha256": FIXTURE_INPUTS,
        "cases": records,
    }
    document["reference_sha256"] = reference_sha256(document)
    write_json(reference / "reference.json", document)
    if spec.kind == "classification":
        write_csv(reference / "labels.csv", labels_table(records, spec.label_columns))
    return reference


def write_run(
    out: Path,
    task_id: str,
    statuses: dict[str, tuple[str, str]],
    *,
    masks: dict | None = None,
    predictions: dict | None = None,
    spacing_mm=(1.0, 1.0, 1.0),
    name: str = "entry",
    split: str = "test",
    inputs_sha256: str = FIXTURE_INPUTS,
) -> Path:
    """A run directory as ``bench run`` writes it: run.json, validated outputs, logs.

    It records the fixture split (``split`` part) and ``inputs_sha256``, as if it had run on the
    inputs prepared beside :func:`write_reference`'s reference.
    """
    spec = load_task(task_id)
    run = out
    (run / "outputs").mkdir(parents=True, exist_ok=True)
    for case_id, mask in (masks or {}).items():
        _save_mask(run / "outputs" / "masks" / f"{case_id}.nii.gz", mask, affine_for(spacing_mm))
    if predictions is not None:
        rows = [
            {"case_id": case_id, **probabilities} for case_id, probabilities in sorted(predictions.items())
        ]
        write_csv(run / "outputs" / "predictions.csv", pd.DataFrame(rows, columns=spec.output_columns))
    (run / "logs").mkdir(exist_ok=True)
    (run / "logs" / "stdout.txt").write_text("predicted\n")
    (run / "logs" / "stderr.txt").write_text("")
    record = RunRecord(
        run_dir=run,
        task=task_id,
        task_sha256=spec.sha256,
        submission={"name": name, "team": "Team T", "description": "hand-built", "source": "tests"},
        runner="process",
        isolated=False,
        isolation="none (hand-built test run)",
        image=None,
        command=("python", "predict.py"),
        limits=spec.limits.model_dump(mode="json"),
        started_at="2026-11-25T08:00:00Z",
        ended_at="2026-11-25T08:00:05Z",
        duration_s=5.0,
        exit_code=0,
        timed_out=False,
        oom_killed=False,
        error=None,
        inputs_sha256=inputs_sha256,
        cases=tuple(CaseStatus(c, s, r) for c, (s, r) in sorted(statuses.items())),
        split={"name": SPLIT_NAME, "split": split, "sha256": load_split(task_id, SPLIT_NAME).sha256},
    )
    write_json(run / "run.json", record.to_json())
    return run


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
