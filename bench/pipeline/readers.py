"""The reader band: how the RICORD readers themselves score, each against the other readers.

Why: 1c has three readers per study (plus an adjudicator on the disputed ones), so the human
agreement an algorithm should be compared with is measurable. A model whose AUROC sits inside
the readers' band is doing what a reader does; a board without the band cannot say so.

For a classification task whose primary head is read by the RICORD readers (``appearance`` or
``grade``, the families of :mod:`bench.data.protocol`), on the prepared split:

1. every reader group's label of every study it read comes from the manifest's reader table
   (``<manifest>.readers.csv``);
2. leave one reader out: the study's reference *without that reader* is the task's reading
   protocol (:func:`bench.data.protocol.apply_protocol`) applied to the other groups (the
   adjudicator still decides where it labelled);
3. the reader's label is scored as a one-hot prediction against that reference with the task's
   primary metric, and a percentile bootstrap interval on the task's resampling design
   (clustered by patient, stratified by the reference class).

The band is written to the results store under ``.readers/<task>/<split key>/``: ``band.json``
(each reader's value and interval) and ``per_case.csv`` (each reader's label and leave-one-out
reference per case), which the board uses for the paired non-inferiority test of every entry
(:mod:`bench.ranking.readers`). Per-case rows stay in the store; only aggregates are published.
"""

import logging
import os
import shutil
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.manifest import read_manifest
from bench.data.protocol import FAMILIES, apply_protocol
from bench.errors import TaskSpecError
from bench.io import SCHEMA_VERSION, atomic_directory, json_number, write_csv, write_json
from bench.metrics.segmentation import score_case
from bench.metrics.uncertainty import percentile_interval, resampled_means
from bench.pipeline.evaluate import ProgressCallback, prepared_split
from bench.prepare import nifti
from bench.prepare.reference import read_reference
from bench.ranking.statistics import resampled_auroc
from bench.scoring.bootstrap import design
from bench.scoring.segmentation import metric_policy, tolerance_mm
from bench.store import reader_band_folder
from bench.tasks import TaskSpec

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ReaderScore:
    """One reader group scored against the leave-one-out reference."""

    group: str
    n: int
    value: float
    ci_low: float
    ci_high: float


def _primary_head(spec: TaskSpec):
    head_name, _, metric = spec.primary_key.partition(".")
    head = next((h for h in spec.heads if h.name == head_name), None)
    if spec.kind != "classification" or head is None or head.column not in FAMILIES or metric != "auroc":
        raise TaskSpecError(f"task {spec.id}: the reader band needs an AUROC primary on a head the RICORD "
                            f"readers label ({', '.join(FAMILIES)}); {spec.primary_key!r} is not one.")
    return head


def leave_one_out(readers: pd.DataFrame, spec: TaskSpec, family: str) -> pd.DataFrame:
    """Per (study, reader group): the reader's label and the protocol's label without that reader.

    Columns ``study_uid, group_name, label, consensus``; rows only where the reader labelled the
    study and the others give a label.
    """
    rows = []
    voting = readers[readers.role == "reader"]
    for (study_uid, group_name), own in voting.groupby(["study_uid", "group_name"], sort=True):
        label = str(own[family].iloc[0] or "")
        if not label or label == "nan":
            continue
        others = readers[(readers.study_uid == study_uid) & (readers.group_name != group_name)]
        decided = apply_protocol(others, spec.reading) if len(others) else pd.DataFrame()
        consensus = str(decided[family].iloc[0]) if len(decided) else ""
        if consensus and consensus != "nan":
            rows.append({"study_uid": study_uid, "group_name": group_name, "label": label,
                         "consensus": consensus})
    return pd.DataFrame(rows, columns=["study_uid", "group_name", "label", "consensus"])


def reader_scores(labels: np.ndarray, consensus: np.ndarray, classes: list[str], counts: np.ndarray,
                  *, positive: str | None = None) -> np.ndarray:
    """The primary AUROC of a reader's one-hot labels against ``consensus`` on every row of ``counts``."""
    one_hot = np.eye(len(classes))[[classes.index(label) for label in labels]]
    return resampled_auroc(np.asarray(consensus), one_hot[:, None, :], classes, counts,
                           positive=positive)[:, 0]


def _score(spec: TaskSpec, head, table: pd.DataFrame) -> ReaderScore:
    classes = list(head.classes)
    positive = head.positive if len(classes) == 2 else None
    consensus = table["consensus"].to_numpy()
    counts = design(spec, table.reset_index(drop=True), strata=consensus).counts()
    labels = table["label"].to_numpy()
    value = float(reader_scores(labels, consensus, classes, np.ones((1, len(table))), positive=positive)[0])
    resampled = reader_scores(labels, consensus, classes, counts, positive=positive)
    interval = percentile_interval(value, resampled, confidence=spec.bootstrap.confidence)
    return ReaderScore(str(table["group_name"].iloc[0]), len(table), interval.estimate, interval.low,
                       interval.high)


def _write_band(results, reference, document: dict, per_case: pd.DataFrame) -> Path:
    folder = reader_band_folder(results, document["task"], reference.split_name, reference.split)
    folder.parent.mkdir(parents=True, exist_ok=True)
    fresh = folder.with_name(folder.name + ".new")
    with atomic_directory(fresh) as tmp:
        write_json(tmp / "band.json", document)
        write_csv(tmp / "per_case.csv", per_case)
    if folder.exists():  # a band this module wrote before: swapped out, then removed
        old = folder.with_name(folder.name + ".old")
        os.replace(folder, old)
        os.replace(fresh, folder)
        shutil.rmtree(old)
    else:
        os.replace(fresh, folder)
    return folder


def inter_reader_agreement(spec: TaskSpec, *, root: str | Path, name: str = "synthetic", split: str = "test",
                           results: str | Path = "results", work: str | Path | None = None,
                           tasks_dir: str | Path | None = None,
                           progress: ProgressCallback | None = None) -> tuple[ReaderScore, ...]:
    """1a: Dice and NSD between every two reader groups that traced a study, with bootstrap intervals.

    ``prepare`` keeps each reader group's mask of a study traced by more than one group under
    ``reference/readers/<case>/``; each pair is scored with :func:`bench.metrics.segmentation.score_case`
    (the task's tolerance and empty-mask policy), a study's value is the mean over its pairs, and the
    interval is the task's bootstrap over studies.
    """
    root = Path(root)
    work = Path(work) if work is not None else Path(results) / ".work"
    prepared, _ = prepared_split(spec, root=root, name=name, split=split, work=work, tasks_dir=tasks_dir,
                                 progress=progress)
    reference = read_reference(prepared / "reference", check_masks=False)
    patients = dict(zip(reference.cases.case_id.astype(str), reference.cases.patient_id.astype(str),
                        strict=True))
    rows = []
    traced = prepared / "reference" / "readers"
    for folder in sorted(traced.iterdir()) if traced.is_dir() else []:
        loaded = [(path.name.removesuffix(".nii.gz"), nifti.read_volume(path))
                  for path in sorted(folder.glob("*.nii.gz"))]
        for (first, (a, header, _)), (second, (b, _, _)) in combinations(loaded, 2):
            spacing = tuple(float(z) for z in header.get_zooms()[:a.ndim])
            scores = score_case(a, b, spacing_mm=spacing, tolerance_mm=tolerance_mm(spec),
                                policy=metric_policy(spec))
            rows.append({"case_id": folder.name, "patient_id": patients.get(folder.name, folder.name),
                         "group_name": f"{first}|{second}", "dice": scores.dice, "nsd": scores.nsd})
    pairs = pd.DataFrame(rows, columns=["case_id", "patient_id", "group_name", "dice", "nsd"])
    per_study = pairs.groupby(["case_id", "patient_id"], as_index=False)[["dice", "nsd"]].mean()
    boot = spec.bootstrap
    scores_out = []
    if len(per_study):
        counts = design(spec, per_study, strata=None).counts()
        for metric in ("dice", "nsd"):
            values = per_study[metric].to_numpy(dtype=float)
            interval = percentile_interval(float(values.mean()), resampled_means(values, counts),
                                           confidence=boot.confidence)
            scores_out.append(ReaderScore(f"inter-reader {metric}", len(per_study), interval.estimate,
                                          interval.low, interval.high))
    document = {
        "schema_version": SCHEMA_VERSION, "task": spec.id, "task_sha256": spec.sha256, "kind": "inter-reader",
        "split": {"name": reference.split_name, "split": reference.split, "sha256": reference.split_sha256},
        "readers": [{"group": s.group, "n": s.n, "value": json_number(s.value),
                     "ci_low": json_number(s.ci_low),
                     "ci_high": json_number(s.ci_high)} for s in scores_out],
    }
    _write_band(results, reference, document, pairs)
    return tuple(scores_out)


def reader_band(spec: TaskSpec, *, root: str | Path, name: str = "synthetic", split: str = "test",
                results: str | Path = "results", work: str | Path | None = None,
                tasks_dir: str | Path | None = None,
                progress: ProgressCallback | None = None) -> tuple[ReaderScore, ...]:
    """Score every reader group of the prepared ``split`` against the other readers; store the band."""
    if spec.kind == "segmentation":
        return inter_reader_agreement(spec, root=root, name=name, split=split, results=results, work=work,
                                      tasks_dir=tasks_dir, progress=progress)
    head = _primary_head(spec)
    classes = list(head.classes)
    root = Path(root)
    work = Path(work) if work is not None else Path(results) / ".work"
    prepared, _ = prepared_split(spec, root=root, name=name, split=split, work=work, tasks_dir=tasks_dir,
                                 progress=progress)
    reference = read_reference(prepared / "reference", check_masks=False)
    readers_path = root / "manifest.readers.csv"  # written beside the manifest by `bench data index`
    if not readers_path.is_file():
        raise TaskSpecError(f"{readers_path}: no reader table; index the download again with "
                            "`bench data index` "
                            "(it writes the reader table beside the manifest).")
    manifest = read_manifest(root / "manifest.csv").set_index("case_id")
    cases = reference.cases[["case_id", "source_case_id", "patient_id"]].copy()
    cases["study_uid"] = manifest.loc[cases["source_case_id"].astype(str), "study_uid"].astype(str).to_numpy()
    readers = pd.read_csv(readers_path, dtype=str, keep_default_na=False)
    readers = readers[readers.study_uid.isin(set(cases.study_uid))].copy()
    readers["invalid"] = readers["invalid"].astype(str).str.lower().isin(("true", "1"))
    loo = leave_one_out(readers, spec, head.column).merge(cases, on="study_uid")
    loo = loo[loo.label.isin(classes) & loo.consensus.isin(classes)].sort_values(["group_name", "case_id"])
    scores = tuple(_score(spec, head, group) for _, group in loo.groupby("group_name", sort=True))
    document = {
        "schema_version": SCHEMA_VERSION, "task": spec.id, "task_sha256": spec.sha256,
        "split": {"name": reference.split_name, "split": reference.split, "sha256": reference.split_sha256},
        "head": head.name, "metric": spec.primary_key,
        "readers": [{"group": s.group, "n": s.n, "value": json_number(s.value),
                     "ci_low": json_number(s.ci_low),
                     "ci_high": json_number(s.ci_high)} for s in scores],
    }
    _write_band(results, reference, document,
                loo[["case_id", "patient_id", "group_name", "label", "consensus"]])
    log.info("reader band of %s on %s/%s: %d readers", spec.id, name, split, len(scores))
    return scores
