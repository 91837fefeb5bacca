"""A small but realistic results store for the board's tests (CONTRACTS section 7).

Scoring is not merged yet, so these runs are written by hand in the exact layout the scorer
writes: per_case.csv with status/reason and per-case metrics (segmentation) or labels and
probabilities (classification), scores.json with CIs and counts, and a full receipt.
"""

import hashlib
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from bench.store import EntryId, Store, make_run_id

SEG_TASK = "ricord-1a-lesion-seg"
CLS_TASK = "ricord-1c-cxr-appearance"
EVIL = "<script>alert(1)</script>"
APPEARANCE = ["typical", "indeterminate", "atypical", "negative"]
GRADES = ["mild", "moderate", "severe"]


def receipt(task: str, task_sha: str, name: str, *, split: str = "test", team: str = "Team A",
            started: datetime, run_errors: list | None = None) -> dict:
    """A receipt with every field the scorer records."""
    return {
        "schema_version": 1,
        "harness": {"version": "0.1.0", "git_revision": "5ddb84d"},
        "task": {"id": task, "sha256": task_sha},
        "split": {"name": "synthetic", "split": split, "sha256": "ab" * 32},
        "reference_sha256": "cd" * 32,
        "submission": {"name": name, "team": team, "description": f"{name} <b>desc</b>",
                       "source": "submissions/x"},
        "runner": "process",
        "isolated": False,
        "command": ["python", "predict.py"],
        "limits": {"timeout_s": 600, "memory": "4g", "cpus": 2},
        "seed": 1208,
        "hardware": {"cpu_count": 2, "cpu_model": "AMD EPYC", "memory_bytes": 24_000_000_000},
        "started_at": started.isoformat(),
        "ended_at": (started + timedelta(seconds=42)).isoformat(),
        "exit_status": {"exit_code": 0, "timed_out": False, "oom_killed": False, "error": None},
        "case_errors": run_errors or [],
    }


def _counts(table: pd.DataFrame) -> dict:
    status = table["status"].value_counts()
    return {"cases": len(table), **{key: int(status.get(key, 0)) for key in
                                     ("ok", "missing", "malformed", "error")}}


def seg_run(store: Store, spec, name: str, dice: list[float], *, split: str = "test",
            team: str = "Team A", started: datetime | None = None, missing: tuple[int, ...] = ()):
    """Store one segmentation run whose per-case Dice are ``dice`` (cases c00, c01, ...)."""
    started = started or datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    n = len(dice)
    table = pd.DataFrame({
        "case_id": [f"c{i:02d}" for i in range(n)],
        "patient_id": [f"p{i // 2:02d}" for i in range(n)],
        "site": ["419639" if i % 3 else "660042" for i in range(n)],
        "sex": ["F" if i % 2 else "M" for i in range(n)],
        "age_band": ["40-60" if i % 2 else "60-80" for i in range(n)],
        "status": ["missing" if i in missing else "ok" for i in range(n)],
        "reason": ["no mask file" if i in missing else "" for i in range(n)],
        "dice": dice,
        "iou": [d / (2 - d) for d in dice],
        "hd95": [20 * (1 - d) + 1 for d in dice],
        "tp": [int(1000 * d) for d in dice],
    })
    value = float(np.mean(dice))
    scores = {
        "schema_version": 1, "task": spec.id, "submission": name, "run_id": "",
        "primary_metric": "dice",
        "metrics": {"dice": {"value": value, "ci_low": value - 0.05, "ci_high": value + 0.05,
                             "direction": "higher"},
                    "hd95": {"value": float(np.mean(table["hd95"])), "ci_low": 1.0, "ci_high": 9.0,
                             "direction": "lower"}},
        "counts": _counts(table),
        "policies": spec.policies.model_dump(mode="json"),
        "subgroups": {"site": {"419639": {"n": 4, "value": value, "ci_low": 0.1, "ci_high": 0.9,
                                          "difference": 0.01, "too_small": True},
                               "660042": {"n": 2, "value": value, "ci_low": None, "ci_high": None,
                                          "difference": -0.01, "too_small": True}}},
        "fairness": {},
    }
    errors = [{"case_id": f"c{i:02d}", "status": "missing", "reason": "no mask file"} for i in missing]
    run_id = make_run_id(started, hashlib.sha256(f"{name}/{split}".encode()).hexdigest())
    scores["run_id"] = run_id
    return store.write_run(spec.id, EntryId(team, name), run_id, receipt=receipt(
        spec.id, spec.sha256, name, split=split, team=team, started=started, run_errors=errors),
        scores=scores, per_case=table, logs={"stdout.txt": "done\n", "stderr.txt": ""})


def cls_run(store: Store, spec, name: str, skill: float, *, seed: int, n: int = 24,
            split: str = "test", team: str = "Team A", started: datetime | None = None,
            calibration: dict | None = None):
    """Store one 1c appearance/severity run; ``skill`` in [0, 1] sharpens the true class."""
    started = started or datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    rng = np.random.default_rng(seed)
    truth = [APPEARANCE[i % 4] for i in range(n)]
    grade = [GRADES[i % 3] for i in range(n)]
    noise = rng.dirichlet(np.ones(4), size=n)
    onehot = np.eye(4)[[APPEARANCE.index(t) for t in truth]]
    probs = (1 - skill) * noise + skill * onehot
    probs = probs / probs.sum(axis=1, keepdims=True)
    gnoise = rng.dirichlet(np.ones(3), size=n)
    table = pd.DataFrame({
        "case_id": [f"x{i:02d}" for i in range(n)],
        "patient_id": [f"q{i:02d}" for i in range(n)],
        "site": ["SITE1" if i % 2 else "SITE2" for i in range(n)],
        "sex": ["F" if i % 3 else "M" for i in range(n)],
        "age_band": ["18-40" if i % 2 else "40-60" for i in range(n)],
        "status": ["ok"] * n, "reason": [""] * n,
        "appearance": truth, "severity": grade,
        **{c: probs[:, k] for k, c in enumerate(APPEARANCE)},
        **{c: gnoise[:, k] for k, c in enumerate(GRADES)},
        "appearance_pred": [APPEARANCE[k] for k in probs.argmax(axis=1)],
        "severity_pred": [GRADES[k] for k in gnoise.argmax(axis=1)],
    })
    order = np.argsort(APPEARANCE)  # sklearn wants the labels sorted; macro OvR does not care
    auroc = float(roc_auc_score(truth, probs[:, order], multi_class="ovr", labels=sorted(APPEARANCE)))
    scores = {
        "schema_version": 1, "task": spec.id, "submission": name, "run_id": "",
        "primary_metric": "appearance.auroc",
        "metrics": {"appearance.auroc": {"value": auroc, "ci_low": auroc - 0.1,
                                         "ci_high": min(1.0, auroc + 0.1), "direction": "higher"}},
        "counts": _counts(table), "policies": spec.policies.model_dump(mode="json"),
        "subgroups": {}, "fairness": {}, **({"calibration": calibration} if calibration else {}),
    }
    run_id = make_run_id(started, f"{seed:08x}")
    scores["run_id"] = run_id
    return store.write_run(spec.id, EntryId(team, name), run_id, receipt=receipt(
        spec.id, spec.sha256, name, split=split, team=team, started=started),
        scores=scores, per_case=table)


def build_fake_store(root, tasks_dir=None) -> Store:
    """Three segmentation entries (one named like a script), two validation runs, two 1c entries."""
    from bench.tasks import load_task

    seg = load_task(SEG_TASK, directory=tasks_dir)
    cls = load_task(CLS_TASK, directory=tasks_dir)
    store = Store(root)
    seg_run(store, seg, "unet-baseline", [0.80, 0.72, 0.91, 0.65, 0.77, 0.83, 0.70, 0.88], team="RSNA")
    seg_run(store, seg, "threshold-hu", [0.41, 0.52, 0.38, 0.0, 0.47, 0.55, 0.30, 0.49],
            team="Lab $x$", missing=(3,))
    seg_run(store, seg, EVIL, [0.78, 0.70, 0.90, 0.66, 0.75, 0.80, 0.72, 0.86], team="<b>bold</b>")
    seg_run(store, seg, "unet-baseline", [0.6, 0.7, 0.8, 0.9], split="validation", team="RSNA",
            started=datetime(2026, 11, 19, 9, 0, tzinfo=UTC))
    cls_run(store, cls, "cxr-resnet", 0.3, seed=1)
    cls_run(store, cls, "cxr-prior", 0.05, seed=2)
    return store
