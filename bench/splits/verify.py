"""Checking a pinned split: against a download (verify) and on its own (summary, leakage).

``verify`` is what lets a reader of a paper trust "split sha256:...": it recomputes every case's
content fingerprint from their local download and names each case that is missing or whose
pixels or annotations differ. The summary counts cases per split x strata and confirms that no
patient is in two splits.
"""

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.data.mdai import annotation_files, read_annotation_records
from bench.errors import SplitError
from bench.splits.fingerprints import EMPTY_ANNOTATIONS, annotations_fingerprint
from bench.splits.pin import case_fingerprints
from bench.splits.pinned import PinnedSplit
from bench.tasks import SPLITS

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

STATUSES = ("ok", "missing", "changed")


@dataclass(frozen=True)
class CaseCheck:
    """One case's verification: ``ok``, ``missing`` or ``changed`` (``changed`` lists
    ``pixels`` and/or ``annotations``)."""

    case_id: str
    split: str
    status: str
    changed: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``ok``, ``missing``, ``changed (pixels)``, ``changed (pixels, annotations)``..."""
        return f"changed ({', '.join(self.changed)})" if self.status == "changed" else self.status


@dataclass(frozen=True)
class VerifyReport:
    """Result of :func:`verify_split`: one check per pinned case, sorted by case_id."""

    task: str
    name: str
    split_sha256: str
    root: Path
    annotation_files: tuple[Path, ...]
    checks: tuple[CaseCheck, ...]
    pixels_checked: bool = True

    @property
    def ok(self) -> bool:
        return all(check.status == "ok" for check in self.checks)

    @property
    def mismatches(self) -> tuple[CaseCheck, ...]:
        return tuple(check for check in self.checks if check.status != "ok")

    def counts(self) -> dict[str, int]:
        """Number of cases per status label (``ok``, ``missing``, ``changed (pixels)``, ...)."""
        counts: dict[str, int] = {}
        for check in self.checks:
            counts[check.label] = counts.get(check.label, 0) + 1
        return dict(sorted(counts.items()))


def verify_split(split: PinnedSplit, *, root: str | os.PathLike,
                 annotations: Iterable[str | os.PathLike] = (),
                 progress: Progress | None = None, workers: int | None = None,
                 scheduler: str | None = None) -> VerifyReport:
    """Recompute every case's fingerprint from the download at ``root`` and compare.

    Series are found by SeriesInstanceUID in a scan of the whole tree, so any folder layout
    works. A case whose series is absent is ``missing``; a case whose pixel hash or annotation
    hash differs is ``changed`` with the part(s) named. A split published before its pixels were
    fingerprinted (no lock file yet) has its annotations checked only (``pixels_checked`` False).
    ``workers`` and ``scheduler`` say where
    the pixel hashing runs (see :func:`bench.splits.pin.case_fingerprints`; default: in this process
    below 1 GiB of DICOM files, else all cores); the report is the same either way.

    Raises
    ------
    SplitError
        ``root`` holds none of the split's series (not a RICORD download, or another one), or
        the split pins annotations but no MD.ai export was given or found.
    """
    root = Path(root)
    files = tuple(annotation_files(annotations, root=root))
    if not files and any(case.fingerprint.annotations != EMPTY_ANNOTATIONS for case in split.records):
        raise SplitError(f"split {split.task}/{split.name} pins annotation records, but no MD.ai export was "
                         f"given and {root / 'annotations'} has none. Pass the export(s) with --annotations.")
    if not split.complete:
        return _verify_annotations(split, root, files)
    cases = pd.DataFrame([{"case_id": c.case_id, "study_uid": c.study_uid, "series_uid": c.series_uid}
                          for c in split.records])
    prints = case_fingerprints(cases, root=root, annotations=files, use_series_dir=False, progress=progress,
                               workers=workers, scheduler=scheduler)
    checks = []
    for case in split.records:
        found = prints[case.case_id]
        if found is None:
            checks.append(CaseCheck(case.case_id, case.split, "missing"))
            continue
        changed = tuple(part for part, same in (
            ("pixels", found.images == case.fingerprint.images),
            ("annotations", found.annotations == case.fingerprint.annotations)) if not same)
        checks.append(CaseCheck(case.case_id, case.split, "changed" if changed else "ok", changed))
    report = VerifyReport(task=split.task, name=split.name, split_sha256=split.sha256, root=root,
                          annotation_files=files, checks=tuple(checks))
    if not report.ok:
        log.warning("split %s/%s: %d of %d cases do not match %s", split.task, split.name,
                    len(report.mismatches), len(checks), root)
    return report


def _verify_annotations(split: PinnedSplit, root: Path, files: tuple[Path, ...]) -> VerifyReport:
    """A split without pixel fingerprints yet (no lock file): check each case's annotations."""
    records = read_annotation_records(files)
    checks = []
    for case in split.records:
        same = annotations_fingerprint(records.get(case.study_uid, [])) == case.fingerprint.annotations
        checks.append(CaseCheck(case.case_id, case.split, "ok" if same else "changed",
                                () if same else ("annotations",)))
    log.warning("split %s/%s has no pixel fingerprints yet: annotations checked, pixels not (complete it "
                "with `bench splits pin --complete`)", split.task, split.name)
    return VerifyReport(task=split.task, name=split.name, split_sha256=split.sha256, root=root,
                        annotation_files=files, checks=tuple(checks), pixels_checked=False)


@dataclass(frozen=True)
class SplitSummary:
    """Counts of a pinned split: ``counts`` has one row per split x strata values with
    ``cases`` and ``patients``; ``totals`` one row per split; ``leaked_patients`` the patients
    found in more than one split (empty for any split that :func:`bench.splits.pinned.read_split`
    accepted)."""

    task: str
    name: str
    sha256: str
    counts: pd.DataFrame
    totals: pd.DataFrame
    leaked_patients: tuple[str, ...]


def summarize_split(split: PinnedSplit) -> SplitSummary:
    """Cases and patients per split x strata, per split, and the patient-leakage check."""
    columns = split.strata_columns
    table = pd.DataFrame([{"split": c.split, "patient_id": c.patient_id, "case_id": c.case_id,
                           **{k: (c.strata.get(k) or "(none)") for k in columns}} for c in split.records])
    table["split"] = pd.Categorical(table["split"], categories=list(SPLITS), ordered=True)
    grouped = table.groupby(["split", *columns], observed=True, sort=True)
    counts = grouped.agg(cases=("case_id", "size"), patients=("patient_id", "nunique")).reset_index()
    totals = (table.groupby("split", observed=False)
              .agg(cases=("case_id", "size"), patients=("patient_id", "nunique")).reset_index())
    splits_per_patient = table.groupby("patient_id")["split"].nunique()
    leaked = tuple(sorted(splits_per_patient[splits_per_patient > 1].index))
    counts["split"] = counts["split"].astype(str)
    totals["split"] = totals["split"].astype(str)
    return SplitSummary(task=split.task, name=split.name, sha256=split.sha256, counts=counts, totals=totals,
                        leaked_patients=leaked)
