"""The canonical TCIA split: pinned from the export, completed later by a lock file, same hash.

The built-in ``bench/builtin/tasks/ricord-1c-cxr-appearance/splits/tcia.json`` is checked three ways:
against a committed excerpt of the real export (each case record re-derived), by re-running the
assignment on its own records, and (when the whole export is on disk: ``RICORD_1C_EXPORT`` and
``RICORD_1C_V3`` name the export JSON and its ``_v3.csv``) by re-pinning it byte for byte.
"""

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.data.export_cases import export_cases
from bench.data.ricord import index_download
from bench.data.synth import synthesize
from bench.errors import PrepareError, SplitError
from bench.prepare.materialize import prepare_split
from bench.splits.assign import assign_splits
from bench.splits.pinned import load_split, lock_path, read_split, split_path
from bench.splits.publish import complete_split, pin_from_export
from bench.splits.verify import verify_split
from bench.tasks import BUILTIN_TASKS, load_task

TASK = "ricord-1c-cxr-appearance"
EXCERPT = Path(__file__).parents[1] / "data" / "fixtures" / "ricord_1c_excerpt"
TCIA = BUILTIN_TASKS / TASK / "splits" / "tcia.json"


def test_tcia_records_rederive_from_the_real_excerpt():
    document = json.loads(TCIA.read_text())
    pinned = {row["study_uid"]: row for row in document["cases"]}
    excluded = {row["study_uid"]: row["reason"] for row in document["pinned_from"]["excluded"]}
    found = export_cases([EXCERPT / "1c_mdai_excerpt.json"], [EXCERPT / "patients_v3_excerpt.csv"],
                         collection="MIDRC-RICORD-1C", protocol=load_task(TASK).reading)
    from bench.data.mdai import read_annotation_records
    from bench.splits.fingerprints import annotations_fingerprint

    records = read_annotation_records([EXCERPT / "1c_mdai_excerpt.json"])
    assert len(found.cases) == 9 and len(found.excluded) == 4  # 3 invalid, 1 not in the study list
    for case in found.cases.itertuples(index=False):
        row = pinned[case.study_uid]
        assert (row["case_id"], row["patient_id"]) == (case.case_id, case.patient_id)
        assert row["strata"] == {"appearance": case.appearance, "site": case.site}
        assert row["fingerprint"]["annotations"] == annotations_fingerprint(records[case.study_uid])
    for study_uid, reason in found.excluded:
        assert excluded[study_uid] == reason and study_uid not in pinned


def test_tcia_assignment_reruns_on_its_own_records():
    split = read_split(TCIA)
    assert not split.complete and split.manifest_sha256 is None
    cases = pd.DataFrame([{"case_id": c.case_id, "patient_id": c.patient_id, **c.strata}
                          for c in split.records])
    assigned = assign_splits(cases, load_task(TASK).split)
    assert list(assigned.split) == [c.split for c in split.records]
    assert len(split.records) == 963 and len({c.patient_id for c in split.records}) == 351


@pytest.mark.skipif(not (os.environ.get("RICORD_1C_EXPORT") and os.environ.get("RICORD_1C_V3")),
                    reason="the whole real 1c export is not on disk (set RICORD_1C_EXPORT and RICORD_1C_V3)")
def test_tcia_repins_byte_for_byte_from_the_real_export(tmp_path):
    shutil.copytree(BUILTIN_TASKS / TASK, tmp_path / TASK, ignore=shutil.ignore_patterns("tcia*"))
    pin_from_export(load_task(TASK), name="tcia", annotations=[os.environ["RICORD_1C_EXPORT"]],
                    clinical=[os.environ["RICORD_1C_V3"]], directory=tmp_path)
    assert (tmp_path / TASK / "splits" / "tcia.json").read_bytes() == TCIA.read_bytes()


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The synthetic 1c pinned from its export, then its download indexed."""
    base = tmp_path_factory.mktemp("publish")
    report = synthesize(base / "ricord", seed=3, size="tiny")
    tasks = base / "tasks"
    shutil.copytree(BUILTIN_TASKS / TASK, tasks / TASK, ignore=shutil.ignore_patterns("*.json"))
    export = report.out_dir / "annotations" / report.annotations[1].name
    sheet = next(p for p in report.clinical if "1c" in p.name and p.suffix == ".xlsx")
    split = pin_from_export(load_task(TASK, directory=tasks), name="tcia", annotations=[export],
                            clinical=[sheet], directory=tasks)
    index = index_download(report.out_dir, annotations=report.annotations, clinical=[sheet])
    index.write(base / "manifest.csv")
    return base, report, tasks, split, export


def test_publish_then_complete_keeps_the_cited_hash(published):
    base, report, tasks, split, export = published
    spec = load_task(TASK, directory=tasks)
    path = split_path(TASK, "tcia", directory=tasks)
    before = path.read_bytes()
    assert not split.complete and all(c.series_uid is None for c in split.records)
    pending = verify_split(split, root=report.out_dir, annotations=[export])
    assert pending.ok and not pending.pixels_checked
    with pytest.raises(PrepareError, match="published before its pixels were fingerprinted"):
        prepare_split(spec, "tcia", "test", root=report.out_dir, out=base / "prepared-pending",
                      manifest=base / "manifest.csv", annotations=[export], directory=tasks)
    completed = complete_split(spec, name="tcia", manifest=base / "manifest.csv", root=report.out_dir,
                               annotations=[export], directory=tasks)
    assert path.read_bytes() == before and completed.sha256 == split.sha256  # the cited hash stays
    assert completed.complete and completed.lock_sha256
    assert load_split(TASK, "tcia", directory=tasks).complete
    full = verify_split(completed, root=report.out_dir, annotations=[export])
    assert full.ok and full.pixels_checked and len(full.checks) == len(split.records)
    prepared = prepare_split(spec, "tcia", "test", root=report.out_dir, out=base / "prepared",
                             manifest=base / "manifest.csv", annotations=[export], directory=tasks)
    assert prepared.split_sha256 == split.sha256 and prepared.case_ids


def test_an_edited_or_foreign_lock_is_refused(published):
    base, report, tasks, split, export = published
    complete_split(load_task(TASK, directory=tasks), name="tcia", manifest=base / "manifest.csv",
                   root=report.out_dir, annotations=[export], directory=tasks)
    lock = lock_path(split_path(TASK, "tcia", directory=tasks))
    original = lock.read_text()
    document = json.loads(original)
    document["cases"][0]["images"] = "0" * 64
    lock.write_text(json.dumps(document))
    with pytest.raises(SplitError, match="lock file was edited"):
        read_split(split_path(TASK, "tcia", directory=tasks))
    document = json.loads(original)
    document["split_sha256"] = "f" * 64
    from bench.io import sha256_json

    document["sha256"] = sha256_json({k: v for k, v in document.items() if k != "sha256"})
    lock.write_text(json.dumps(document))
    with pytest.raises(SplitError, match="not this split's"):
        read_split(split_path(TASK, "tcia", directory=tasks))
    lock.write_text(original)


def test_export_pin_needs_one_collection_with_an_export(tmp_path):
    with pytest.raises(SplitError, match="1b has no export"):
        pin_from_export(load_task("ricord-ct-covid-cls"), name="tcia", annotations=[], clinical=[],
                        directory=tmp_path)


def test_a_task_refuses_cases_labelled_by_another_protocol():
    from bench.splits.assign import task_cases
    from bench.tasks import ReadingProtocol

    other = ReadingProtocol(non_reader_groups=[])  # the Default group would vote
    found = export_cases([EXCERPT / "1c_mdai_excerpt.json"], [EXCERPT / "patients_v3_excerpt.csv"],
                         collection="MIDRC-RICORD-1C", protocol=other)
    with pytest.raises(SplitError, match=r"labelled by reading protocol .* --task ricord-1c-cxr-appearance"):
        task_cases(found.cases, load_task(TASK))
