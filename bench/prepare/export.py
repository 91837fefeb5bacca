"""Export the pinned train or validation split in the layouts training frameworks read.

A model developer trains on the pinned train split and checks on the pinned validation split;
this writes them the way nnU-Net v2 and MONAI expect, so nobody writes a datalist by hand:

- ``nnunet`` (segmentation): nnU-Net v2's raw dataset folder. Train: ``imagesTr/<case>_0000.nii.gz``
  (one channel, CT), ``labelsTr/<case>.nii.gz`` (0 background, 1 lesion), ``dataset.json``
  (``channel_names``, ``labels``, ``numTraining``, ``file_ending`` and the provenance) and
  ``splits_final.json``, patient-grouped folds drawn inside the train split
  (:mod:`bench.prepare.folds`; copy it into ``nnUNet_preprocessed/<dataset>/``). Validation:
  ``imagesTs/<case>_0000.nii.gz`` and ``labelsTs/<case>.nii.gz``, so both fit one dataset folder.
- ``monai`` (both kinds): ``images/``, ``labels/`` (segmentation) and ``datalist.json`` whose
  ``training`` (with a ``fold`` per entry) or ``validation`` list ``load_decathlon_datalist`` reads.
  Classification entries carry ``label`` (the class index of the first head) and each head's
  class name.
- ``csv`` (classification): ``images/`` and ``<split>.csv`` with the image path, case id, patient
  id, site, every label column and (train) the fold.

Everything goes through :func:`bench.prepare.materialize.prepare_split`, so the images are the
pinned, fingerprint-checked ones and the case ids are the opaque ids ``bench prepare`` gives the
same download (predictions on an exported validation split score against ``bench prepare``'s
validation reference). Images are hard links to the converted-image cache when it is on the same
filesystem (no second copy; do not edit exported images in place), else the prepared copy is
moved in. Each export writes ``ricord-bench-<split>.json`` (task, split and reference hashes,
harness version, the cases with their patient ids and folds) for citing. The test split is
refused: its labels are what the benchmark scores, and training or tuning on them would make
the reported number meaningless.
"""

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.errors import PrepareError
from bench.io import SCHEMA_VERSION, write_csv, write_json
from bench.prepare.folds import DEFAULT_FOLDS, nnunet_splits, patient_folds
from bench.prepare.images import cache_entry, default_cache_dir
from bench.prepare.materialize import prepare_split
from bench.prepare.reference import read_reference
from bench.provenance import harness
from bench.splits.citation import LICENCE
from bench.splits.pinned import load_split
from bench.tasks import TaskSpec
from bench.trees import claim_files, record_files

log = logging.getLogger(__name__)

FORMATS = ("nnunet", "monai", "csv")
EXPORTABLE = ("train", "validation")
_KINDS = {"nnunet": ("segmentation",), "monai": ("segmentation", "classification"),
          "csv": ("classification",)}
_CHANNEL = {"CT": "CT", "CXR": "X-ray"}


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_split` wrote: where, how many cases, how the images got there."""

    out: Path
    format: str
    split: str
    cases: int
    linked: int
    moved: int
    split_sha256: str
    files: tuple[Path, ...]


def export_split(
    spec: TaskSpec,
    name: str,
    split: str,
    *,
    root: str | os.PathLike,
    out: str | os.PathLike,
    format: str,
    folds: int = DEFAULT_FOLDS,
    manifest: str | os.PathLike | None = None,
    annotations: Iterable[str | os.PathLike] = (),
    cache_dir: str | os.PathLike | None = None,
    salt_file: str | os.PathLike | None = None,
    directory: Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> ExportReport:
    """Write split ``split`` of the pinned split ``name`` in ``format`` under ``out``.

    Parameters
    ----------
    spec, name, split
        The task, the pinned split (``<task>/splits/<name>.json``), ``train`` or ``validation``.
    root, manifest, annotations, cache_dir, salt_file, directory
        As for :func:`bench.prepare.materialize.prepare_split` (same ids, same cache).
    out
        The dataset folder; it may exist, but nothing this export writes may already be in it.
    format
        ``nnunet``, ``monai`` or ``csv`` (module docstring).
    folds
        Cross-validation folds of the train split (patient-grouped).

    Raises
    ------
    PrepareError
        The test split, a format that does not fit the task kind, a file that already exists,
        or anything ``prepare_split`` refuses.
    """
    _check_request(spec, split, format)
    pinned = load_split(spec.id, name, directory=directory)
    out = Path(out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".export-"))
    try:
        prepared = prepare_split(spec, name, split, root=root, out=staging / "prepared", manifest=manifest,
                                 annotations=annotations, cache_dir=cache_dir, salt_file=salt_file,
                                 directory=directory, progress=progress)
        reference = read_reference(prepared.reference_dir, check_masks=False)
        cases = reference.cases.set_index("case_id", drop=False)
        fold_of = (patient_folds(dict(zip(cases["case_id"], cases["patient_id"], strict=True)), folds=folds,
                                 seed=spec.split.seed) if split == "train" else {})
        layout = _Layout(format, split, spec.kind)
        tree = staging / "tree"
        by_id = {case.case_id: case for case in pinned.cases(split)}
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        linked = moved = 0
        for case_id in cases.index:
            target = tree / layout.image(case_id)
            target.parent.mkdir(parents=True, exist_ok=True)
            cached = cache_entry(cache, by_id[prepared.source_case_ids[case_id]]) / "image.nii.gz"
            if _link(cached, target):
                linked += 1
            else:
                os.replace(prepared.input_dir / "images" / f"{case_id}.nii.gz", target)
                moved += 1
            if spec.kind == "segmentation":
                label = tree / layout.label(case_id)
                label.parent.mkdir(parents=True, exist_ok=True)
                os.replace(reference.mask_path(case_id), label)
        documents = _documents(spec, reference, cases, fold_of, layout, out, prepared, folds)
        _check_free(out, tree, documents)
        written = _commit(tree, out, documents)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("exported %d %s cases of %s/%s as %s into %s (%d linked, %d moved)", len(cases), split,
             spec.id, name, format, out, linked, moved)
    return ExportReport(out=out, format=format, split=split, cases=len(cases), linked=linked, moved=moved,
                        split_sha256=pinned.sha256, files=tuple(written))


def _check_request(spec: TaskSpec, split: str, format: str) -> None:
    if split == "test":
        raise PrepareError(
            "--split test cannot be exported: the test split's labels are what the benchmark scores, "
            "so training or tuning on them would make the reported number meaningless. Export train "
            "(and validation) to train on; run your model on `bench prepare --split test` inputs and "
            "score its predictions with `bench score`."
        )
    if split not in EXPORTABLE:
        raise PrepareError(f"--split {split!r} is not one of {list(EXPORTABLE)}.")
    if format not in FORMATS:
        raise PrepareError(f"--format {format!r} is not one of {list(FORMATS)}.")
    if spec.kind not in _KINDS[format]:
        fitting = [f for f, kinds in _KINDS.items() if spec.kind in kinds]
        raise PrepareError(
            f"--format {format} does not fit task {spec.id} ({spec.kind}); use one of {fitting}.")


class _Layout:
    """Relative paths of one export's images, labels and documents."""

    def __init__(self, format: str, split: str, kind: str):
        self.format, self.split, self.kind = format, split, kind

    def image(self, case_id: str) -> str:
        if self.format == "nnunet":
            return f"images{'Tr' if self.split == 'train' else 'Ts'}/{case_id}_0000.nii.gz"
        return f"images/{case_id}.nii.gz"

    def label(self, case_id: str) -> str:
        if self.format == "nnunet":
            return f"labels{'Tr' if self.split == 'train' else 'Ts'}/{case_id}.nii.gz"
        return f"labels/{case_id}.nii.gz"


def _documents(spec, reference, cases: pd.DataFrame, fold_of, layout: _Layout, out: Path, prepared,
               folds: int) -> dict[str, object]:
    """The JSON/CSV documents of the export, by relative path (datalist.json merged into an existing one)."""
    provenance = {
        "task": spec.id, "task_sha256": spec.sha256, "split_name": reference.split_name,
        "split": reference.split, "split_sha256": reference.split_sha256,
        "reference_sha256": reference.reference_sha256, "format": layout.format, "harness": harness(),
    }
    documents: dict[str, object] = {f"ricord-bench-{layout.split}.json": {
        "schema_version": SCHEMA_VERSION, **provenance, "folds": folds if fold_of else None,
        "cases": [{"case_id": c, "patient_id": str(cases.at[c, "patient_id"]), "fold": fold_of.get(c)}
                  for c in cases.index]}}
    if layout.format == "nnunet":
        if layout.split == "train":
            documents["dataset.json"] = {
                "channel_names": {"0": _CHANNEL[spec.modality]},
                "labels": {"background": 0, "lesion": 1},
                "numTraining": len(cases),
                "file_ending": ".nii.gz",
                "name": spec.id,
                "description": spec.title,
                "licence": f"{LICENCE} (RICORD on TCIA; TCIA Data Usage Policy)",
                "release": f"ricord-bench {provenance['harness']['version']}, split {reference.split_name} "
                           f"sha256 {reference.split_sha256}",
                "ricord_bench": provenance,
            }
            documents["splits_final.json"] = nnunet_splits(fold_of)
    elif layout.format == "monai":
        key = "training" if layout.split == "train" else "validation"
        entries = [_monai_entry(spec, cases.loc[c], layout, fold_of.get(c)) for c in cases.index]
        existing = _read_datalist(out / "datalist.json", key, spec)
        documents["datalist.json"] = {**existing, key: entries, "ricord_bench": {
            **existing.get("ricord_bench", {}), key: provenance}}
    else:
        table = pd.DataFrame({
            "image": [layout.image(c) for c in cases.index], "case_id": list(cases.index),
            "patient_id": cases["patient_id"].astype(str).to_list(),
            "site": cases["site"].fillna("").astype(str).to_list(),
            **{column: cases[column].to_list() for column in spec.label_columns},
        })
        if fold_of:
            table["fold"] = [fold_of[c] for c in cases.index]
        documents[f"{layout.split}.csv"] = table
    return documents


def _monai_entry(spec: TaskSpec, case: pd.Series, layout: _Layout, fold: int | None) -> dict:
    entry: dict = {"image": layout.image(case["case_id"]), "case_id": case["case_id"]}
    if spec.kind == "segmentation":
        entry["label"] = layout.label(case["case_id"])
    else:
        for head in spec.heads:
            value = case.get(head.column)
            entry[head.column] = value if isinstance(value, str) and value else None
        first = spec.heads[0]
        value = entry[first.column]
        entry["label"] = first.classes.index(value) if value in first.classes else None
    if fold is not None:
        entry["fold"] = fold
    return entry


def _read_datalist(path: Path, key: str, spec: TaskSpec) -> dict:
    if not path.exists():
        return {}
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise PrepareError(f"{path}: unreadable ({error}); export into another --out.") from error
    if key in body:
        raise PrepareError(f"{path} already has a {key!r} list; export into another --out.")
    tasks = {entry.get("task") for entry in body.get("ricord_bench", {}).values() if isinstance(entry, dict)}
    if tasks - {spec.id}:
        raise PrepareError(f"{path} is an export of {sorted(tasks)}, not {spec.id}; use another --out.")
    return body


def _check_free(out: Path, tree: Path, documents: dict) -> None:
    """Refuse before moving anything when a file this export writes is already in ``out``; the
    MONAI ``datalist.json`` the other split extends must be one the harness wrote
    (:func:`bench.trees.claim_files`)."""
    taken = [str(path.relative_to(tree)) for path in tree.rglob("*")
             if path.is_file() and (out / path.relative_to(tree)).exists()]
    taken += [name for name in documents if name != "datalist.json" and (out / name).exists()]
    if taken:
        raise PrepareError(f"{out} already holds {len(taken)} file(s) this export writes (e.g. {taken[:3]}); "
                           "export into an empty folder, or remove that earlier export first.")
    if "datalist.json" in documents:
        claim_files([out / "datalist.json"])


def _commit(tree: Path, out: Path, documents: dict) -> list[Path]:
    """Move the images and labels in (renames), then write the documents atomically."""
    written = []
    for path in sorted(tree.rglob("*")):
        if path.is_file():
            target = out / path.relative_to(tree)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    for name, body in documents.items():
        target = out / name
        if isinstance(body, pd.DataFrame):
            write_csv(target, body)
        else:
            write_json(target, body)
        written.append(target)
    if "datalist.json" in documents:  # the one file a later export (the other split) may extend
        record_files([out / "datalist.json"])
    return written


def _link(source: Path, target: Path) -> bool:
    """Hard-link ``source`` to ``target``; False when it does not exist or cannot be linked here."""
    try:
        os.link(source, target)
    except OSError:
        return False
    return True
