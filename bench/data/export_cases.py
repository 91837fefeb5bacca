"""The cases of a collection from its annotation export alone, before any image is downloaded.

A canonical split must be publishable from what is public: the MD.ai export (labels, readers)
and a study -> patient mapping (the clinical sheet's ``Anon MRN`` and study UID columns; the
FDA group's ``_v3.csv`` flattening of the 1c export has the same two columns). This module
builds the manifest-shaped case table that :func:`bench.splits.assign.task_cases` takes, with the
same reading protocol, case ids and site rule as ``bench data index``, so that the split
pinned from the export names the same cases a manifest of the download does.

Rules, in order, each exclusion listed with its reason:

1. The studies are those of the export's ``datasets[].studies`` lists (the project's study
   list); an annotated study outside them is left out (``not in the export's study list``).
2. The reading protocol (:mod:`bench.data.protocol`) labels each study; an invalid one is left out.
3. PatientID is ``<collection>-<Anon MRN>`` from the mapping; a study without a row is left out.
4. ``case_id`` and ``site`` as :mod:`bench.data.ricord` derives them. ``series_uid`` is empty:
   which image is the case's is only known from the download (the split's lock file).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.data.clinical import read_clinical
from bench.data.manifest import MANIFEST_COLUMNS
from bench.data.mdai import read_exports
from bench.data.protocol import apply_protocol, reader_labels
from bench.data.ricord import case_ids, parse_patient_id
from bench.errors import AnnotationError
from bench.tasks import RICORD_PROTOCOL, ReadingProtocol


@dataclass(frozen=True, eq=False)
class ExportCases:
    """Manifest-shaped cases (:data:`bench.data.manifest.MANIFEST_COLUMNS`; no image columns
    filled) and ``excluded``: one ``(study_uid, reason)`` per annotated study left out."""

    cases: pd.DataFrame
    excluded: tuple[tuple[str, str], ...]


def _listed_studies(paths: Sequence[Path]) -> set[str]:
    listed: set[str] = set()
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8-sig"))
        except (OSError, ValueError) as error:
            raise AnnotationError(f"{path}: not a readable MD.ai export ({error}).") from error
        for dataset in doc.get("datasets") or []:
            listed.update(str(study.get("StudyInstanceUID")) for study in dataset.get("studies") or []
                          if isinstance(study, dict))
    return listed


def export_cases(annotations: Sequence[str | os.PathLike], clinical: Sequence[str | os.PathLike], *,
                 collection: str, protocol: ReadingProtocol = RICORD_PROTOCOL) -> ExportCases:
    """The labelled cases of ``collection`` in the exports, by the module's rules.

    Raises
    ------
    AnnotationError, ClinicalSheetError
        An unreadable export or sheet (see :func:`bench.data.mdai.read_exports`,
        :func:`bench.data.clinical.read_clinical`).
    """
    paths = [Path(p) for p in annotations]
    export = read_exports(paths)
    decisions = apply_protocol(reader_labels(export.annotations, protocol), protocol).set_index("study_uid")
    listed = _listed_studies(paths)
    mrn = read_clinical(list(clinical)).set_index("study_uid")["mrn"]
    counts = export.annotations.groupby("study_uid").size()
    rows, excluded = [], []
    for study_uid, decided in decisions.iterrows():
        if study_uid not in listed:
            excluded.append((study_uid, "not in the export's study list (datasets[].studies)"))
        elif decided.excluded:
            excluded.append((study_uid, decided.excluded))
        elif not (decided.appearance or decided.grade):
            excluded.append((study_uid, "no label from the reading protocol"))
        elif not mrn.get(study_uid):
            excluded.append((study_uid, "no patient id: no row with an MRN in the clinical sheets"))
        else:
            patient_id = f"{collection}-{mrn[study_uid]}"
            rows.append({
                "patient_id": patient_id, "collection": collection,
                "site": parse_patient_id(patient_id)[1] or "unknown", "study_uid": study_uid,
                "modality": "", "series_uid": "", "n_slices": 0, "rows": 0, "cols": 0, "spacing_mm": "",
                "covid": "",
                "appearance": decided.appearance, "grade": decided.grade,
                "appearance_outcome": decided.appearance_outcome, "grade_outcome": decided.grade_outcome,
                "age": float("nan"), "sex": "", "n_annotations": int(counts.get(study_uid, 0)),
                "n_readers": int(decided.n_readers), "invalid_flags": int(decided.invalid_flags),
                "reading_protocol": protocol.sha256, "series_dir": "",
            })
    cases = pd.DataFrame(rows, columns=[c for c in MANIFEST_COLUMNS if c != "case_id"])
    cases.insert(0, "case_id", case_ids(list(cases.patient_id), list(cases.study_uid)))
    return ExportCases(cases=cases.sort_values("case_id", kind="stable").reset_index(drop=True),
                       excluded=tuple(sorted(excluded)))
