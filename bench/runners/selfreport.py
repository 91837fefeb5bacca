"""Predictions made outside the harness -> a run directory, validated exactly as a container's output.

A model developer who ran nnU-Net or MONAI on their own machine has a plain folder of
``<case_id>.nii.gz`` masks (nnU-Net's naming; a ``masks/`` subfolder works too) or a
``predictions.csv``, and no ``run.json``. :func:`record_predictions` turns that into the same
run directory ``bench run`` writes: the files go through :func:`bench.runners.collect.collect_outputs`
(the same contract checks, size caps and no-symlink rule as a container's ``/output``), with the
reference masks standing in for the input images (they share the input grid), and ``run.json``
says ``runner: self-reported``: nothing was run by the harness, so there is no image digest,
no command, no limits and no isolation to report. Scoring then reads it like any other run,
so the same predictions give the same per-case rows and aggregates whichever way they came.
"""

import logging
import os
import shutil
import tempfile
from pathlib import Path

from bench.errors import ScoringError
from bench.io import atomic_directory, write_json
from bench.prepare.reference import read_reference
from bench.provenance import utc_now
from bench.runners.collect import collect_outputs
from bench.runners.record import Rejected, RunRecord
from bench.runners.staging import InputCase
from bench.tasks import TaskSpec

log = logging.getLogger(__name__)

SELF_REPORTED = "self-reported"
ISOLATION = (
    "self-reported: the predictions were made outside the harness; no image digest, no command, "
    "no limits and no sandbox are on record, only the files that were scored"
)


def is_run_directory(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a ``run.json`` (a run written by ``bench run`` or by this module)."""
    return (Path(path) / "run.json").is_file()


def record_predictions(
    spec: TaskSpec,
    predictions: str | os.PathLike,
    reference_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    team: str,
    entry: str,
) -> RunRecord:
    """Validate a plain predictions folder (or CSV file) and write it as a self-reported run at ``out_dir``.

    Parameters
    ----------
    spec
        The task; its kind decides what is looked for and how it is checked.
    predictions
        Segmentation: a folder of ``<case_id>.nii.gz`` (or ``masks/<case_id>.nii.gz``) for the
        reference's case ids. Classification: a ``predictions.csv`` file, or a folder holding one.
    reference_dir
        ``<prepared>/reference``: its case ids are the cases expected, its masks the grids.
    out_dir
        The run directory to create (must not exist): ``run.json`` + ``outputs/``.
    team, entry
        Who the entry belongs to and its name: given, never taken from the folder's name.

    Raises
    ------
    ScoringError
        ``predictions`` does not exist, has none of the expected files, or ``out_dir`` exists.
    """
    source = Path(predictions)
    out_dir = Path(out_dir)
    if not source.exists():
        raise ScoringError(f"{source}: no such file or folder; pass the folder of predictions to score.")
    if out_dir.exists():
        raise ScoringError(f"{out_dir} already exists; a self-reported run is written to a new folder.")
    reference = read_reference(reference_dir, check_masks=False)
    if reference.task != spec.id:
        raise ScoringError(
            f"{reference_dir}: the reference is for task {reference.task!r}, not {spec.id!r}; "
            f"pass the reference prepared for {spec.id}."
        )
    case_ids = reference.case_ids
    started_at = utc_now()
    with tempfile.TemporaryDirectory(prefix="bench-self-reported-", dir=out_dir.parent) as scratch:
        view = Path(scratch) / "output"
        if spec.kind == "segmentation":
            stray = _mask_view(source, case_ids, view)
            cases = tuple(InputCase(c, f"masks/{c}.nii.gz") for c in case_ids)
        else:
            stray = _csv_view(source, view)
            cases = tuple(InputCase(c, "") for c in case_ids)
        with atomic_directory(out_dir) as tmp:
            collection = collect_outputs(
                spec,
                cases,
                view,
                Path(reference_dir),
                tmp / "outputs",
                cap_bytes=spec.limits.output_mb * 1024 * 1024,
            )
            (tmp / "outputs").mkdir(exist_ok=True)
            result = RunRecord(
                run_dir=out_dir,
                task=spec.id,
                task_sha256=spec.sha256,
                submission={"name": entry, "team": team, "source": str(source.resolve())},
                runner=SELF_REPORTED,
                isolated=False,
                isolation=ISOLATION,
                image=None,
                command=None,
                limits={},
                started_at=started_at,
                ended_at=utc_now(),
                duration_s=0.0,
                exit_code=None,
                timed_out=False,
                oom_killed=False,
                error=None,
                inputs_sha256=None,
                split={"name": reference.split_name, "split": reference.split,
                       "sha256": reference.split_sha256},
                cases=collection.cases,
                rejected=(*stray, *collection.rejected),
                rejected_more=collection.rejected_more,
            )
            write_json(tmp / "run.json", result.to_json())
    if not result.counts["ok"]:
        log.warning("%s: no valid prediction for any of the %d reference cases", source, len(case_ids))
    return result


def _mask_view(source: Path, case_ids: list[str], view: Path) -> list[Rejected]:
    """Put the masks named after reference cases under ``view/masks``; list the other files.

    Files are hard-linked (copied across filesystems), never followed through a symlink, so
    collection sees exactly what a container's ``/output/masks`` would hold.
    """
    if not source.is_dir():
        raise ScoringError(
            f"{source}: segmentation predictions are a folder of <case_id>.nii.gz masks "
            "(nnU-Net's output naming) or of masks/<case_id>.nii.gz."
        )
    folder = source / "masks" if (source / "masks").is_dir() else source
    wanted = {f"{case_id}.nii.gz" for case_id in case_ids}
    names = sorted(os.listdir(folder))
    if not wanted & set(names):
        raise ScoringError(
            f"{folder}: none of the {len(wanted)} reference cases has a mask here (expected names like "
            f"{sorted(wanted)[0]}). Are these predictions for this reference (same prepared case ids)?"
        )
    (view / "masks").mkdir(parents=True)
    stray = []
    for name in names:
        if name in wanted:
            _link_or_copy(folder / name, view / "masks" / name)
        elif not (folder / name).is_dir():
            stray.append(Rejected(name, "not a mask of a reference case; ignored"))
    return stray


def _csv_view(source: Path, view: Path) -> list[Rejected]:
    csv = source / "predictions.csv" if source.is_dir() else source
    if not csv.is_file() and not csv.is_symlink():
        raise ScoringError(
            f"{source}: classification predictions are a predictions.csv file (case_id + one "
            "probability column per class) or a folder holding one."
        )
    view.mkdir(parents=True)
    _link_or_copy(csv, view / "predictions.csv")
    return []


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` (a symlink stays a symlink, and collection refuses it), else copy it."""
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, target, follow_symlinks=False)
