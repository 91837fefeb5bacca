"""Materialize one split of a pinned split: container inputs on one side, the reference on the other.

``OUT/input`` is what a submission sees (mounted read-only): ``cases.json``, ``task.json`` (the
public part of the task) and ``images/<case_id>.nii.gz``. It holds no label: case ids are
opaque (``case-`` + 12 hex of ``HMAC-SHA256(salt, "<task>/<manifest case_id>")``) because
manifest ids name the collection (for the CT COVID task the collection *is* the label) and the
public split file lists every case's manifest id and strata; without the secret salt, kept by
whoever prepares (:func:`case_id_salt`), an opaque id cannot be matched to a split-file row.
cases.json lists ids and image paths only, NIfTI headers carry no free text. ``OUT/reference`` holds the
labels and masks and ``reference.json`` with its own sha256 (:func:`reference_sha256`) and the
split's sha256; it is never written under the input tree.

Every image is checked against the pinned fingerprint before use, so a prepared split is
exactly the pinned one; converted images are cached by that fingerprint (``cache_dir``), so a
second prepare reads no DICOM at all. NIfTI conventions: :mod:`bench.prepare.nifti`.
"""

import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np

from bench.data.mdai import annotation_files, read_annotation_records
from bench.errors import PrepareError, SplitError
from bench.io import SCHEMA_VERSION, is_missing, write_csv, write_json
from bench.leases import temp_dir
from bench.prepare import nifti
from bench.prepare.caseids import SALT_PATH, case_id_salt, prepared_case_id
from bench.prepare.demographics import age_band
from bench.prepare.digest import input_tree_digest
from bench.prepare.images import ImageSource, default_cache_dir
from bench.prepare.reference import labels_table, reference_sha256
from bench.splits.fingerprints import (
    annotations_fingerprint,
)
from bench.splits.pinned import PinnedSplit, SplitCase, load_split
from bench.tasks import SPLITS, TaskSpec
from bench.trees import foreign_content, mark_tree, publish_modes, remove_tree

log = logging.getLogger(__name__)


Progress = Callable[[int, int, str], None]
TREE_KINDS = {"input": "prepared input", "reference": "prepared reference"}
"""Kinds recorded in the markers of ``OUT/input`` and ``OUT/reference`` (:func:`bench.trees.mark_tree`)."""


@dataclass(frozen=True)
class PreparedSplit:
    """What :func:`prepare_split` wrote.

    ``case_ids`` are the opaque ids used in both trees (sorted); ``source_case_ids`` maps each
    to its manifest case_id. ``cache_hits`` counts images taken from the cache. ``clipped``:
    opaque case id -> the annotations of its reference mask that had vertices outside their slice
    and were clipped to it (also in each case's record of ``reference.json``).
    """

    out: Path
    input_dir: Path
    reference_dir: Path
    task: str
    split_name: str
    split: str
    split_sha256: str
    reference_sha256: str
    case_ids: tuple[str, ...]
    source_case_ids: Mapping[str, str] = field(repr=False)
    cache_hits: int = 0
    clipped: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False)


def _check_out(out: Path, *, overwrite: bool) -> None:
    for parent in [out, *out.parents]:
        if (parent / "cases.json").is_file() and (parent / "images").is_dir():
            raise PrepareError(f"--out {out} lies inside the container input tree {parent}; the reference "
                               "would be visible to submissions. Choose an --out outside any prepared input.")
    for part in ("input", "reference"):
        target = out / part
        if target.is_symlink():
            raise PrepareError(f"{target} is a symbolic link; prepare writes real directories only "
                               "(a link could put the reference inside the input tree). Remove it.")
        if target.exists() and not overwrite:
            raise PrepareError(f"{target} already exists. Pass --overwrite to replace it, or another --out.")
        problem = foreign_content(target, TREE_KINDS[part])
        if problem is not None:
            raise PrepareError(f"{problem}. --overwrite replaces only a tree `bench prepare` wrote; move "
                               f"what you keep there elsewhere, or choose another --out.")


def _json_value(value):
    if is_missing(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        return value.strip() or None
    return value


def _manifest_rows(split: PinnedSplit, cases: tuple[SplitCase, ...], manifest: Path) -> dict[str, dict]:
    from bench.data.manifest import read_manifest

    table = read_manifest(manifest)
    rows = {str(row["case_id"]): row for row in table.to_dict("records")}
    absent = [case.case_id for case in cases if case.case_id not in rows]
    if absent:
        raise SplitError(f"{manifest}: {len(absent)} case(s) of split {split.task}/{split.name} are not in "
                         f"the manifest (e.g. {absent[:3]}). Use the manifest of the download the split was "
                         "pinned from (`bench data index`), or pin a split for this download.")
    for case in cases:
        row = rows[case.case_id]
        for key in ("patient_id", "study_uid", "series_uid"):
            if str(row[key]) != getattr(case, key):
                raise SplitError(f"{manifest}: case {case.case_id} has {key} {row[key]!r}, the pinned split "
                                 f"says {getattr(case, key)!r}. The manifest is from another download.")
    return {case.case_id: rows[case.case_id] for case in cases}


def prepare_split(spec: TaskSpec, name: str, split: str, *, root: str | os.PathLike, out: str | os.PathLike,
                  manifest: str | os.PathLike | None = None, annotations: Iterable[str | os.PathLike] = (),
                  cache_dir: str | os.PathLike | None = None, cache: bool = True,
                  salt_file: str | os.PathLike | None = None, overwrite: bool = False,
                  directory: Path | None = None, progress: Progress | None = None) -> PreparedSplit:
    """Write ``out/input`` and ``out/reference`` for split ``split`` of the pinned split ``name``.

    Parameters
    ----------
    spec : TaskSpec
        The task.
    name : str
        The pinned split (``<task>/splits/<name>.json``).
    split : str
        ``train``, ``validation`` or ``test``.
    root : path
        The download the split was pinned from.
    out : path
        Output folder; ``input/`` and ``reference/`` are created in it.
    manifest : path, optional
        The download's manifest (default ``root/manifest.csv``): labels and demographics.
    annotations : paths
        MD.ai export files or folders (default ``root/annotations/*.json``).
    cache_dir : path, optional
        Converted images are kept here by pinned fingerprint (default :func:`default_cache_dir`,
        the same as the CLI's).
    cache : bool
        False: convert every image and cache nothing (``--no-cache``).
    salt_file : path, optional
        The secret salt of the opaque case ids (:func:`case_id_salt`; default
        ``root/.ricord-bench/salt``, created on first use). Keep it private.
    overwrite : bool
        Replace existing ``out/input`` and ``out/reference``.
    directory : path, optional
        The user's tasks folder (default :func:`bench.tasks.user_tasks_dir`), looked up before
        the built-in tasks.

    Raises
    ------
    PrepareError, SplitError
        A bad --out layout, a case missing from the manifest or the download, content that
        differs from the pinned fingerprints.
    """
    if split not in SPLITS:
        raise PrepareError(f"--split {split!r} is not one of {list(SPLITS)}.")
    root, out = Path(root), Path(out).absolute()
    _check_out(out, overwrite=overwrite)
    salt_path = (Path(salt_file) if salt_file is not None else root / SALT_PATH).absolute()
    if salt_path.is_relative_to(out / "input"):
        raise PrepareError(f"--salt-file {salt_path} lies inside the container input tree {out / 'input'}; "
                           "submissions would see it. Keep the salt outside OUT/input.")
    pinned = load_split(spec.id, name, directory=directory)
    if not pinned.complete:
        raise PrepareError(f"split {spec.id}/{name} was published before its pixels were fingerprinted; "
                           f"complete it from your download first: `bench splits pin --task {spec.id} "
                           f"--name {name} --complete --manifest MANIFEST --root ROOT` (writes "
                           f"{name}.lock.json; the split's sha256 stays {pinned.sha256}).")
    cases = pinned.cases(split)
    if not cases:
        raise PrepareError(f"split {spec.id}/{name} has no {split} case; nothing to prepare.")
    manifest = Path(manifest) if manifest is not None else root / "manifest.csv"
    if not manifest.is_file():
        raise PrepareError(f"{manifest}: no manifest. Index the download with `bench data index` and pass "
                           "its manifest with --manifest.")
    rows = _manifest_rows(pinned, cases, manifest)
    files = annotation_files(annotations, root=root)
    records = read_annotation_records(files)
    for case in cases:
        if annotations_fingerprint(records.get(case.study_uid, [])) != case.fingerprint.annotations:
            given = [str(f) for f in files] or "no export"
            raise PrepareError(f"case {case.case_id}: the annotation records in {given} "
                               "differ from the pinned split. Pass the export the split was pinned with "
                               "(--annotations) or run `bench splits verify`.")
    export = None
    if spec.kind == "segmentation":
        from bench.data.mdai import read_exports

        export = read_exports(files)
    salt = case_id_salt(root, salt_file=salt_file)
    ids = {case.case_id: prepared_case_id(spec.id, case.case_id, salt=salt) for case in cases}
    if len(set(ids.values())) != len(ids):
        raise PrepareError(f"two cases of {spec.id}/{name} share an opaque id; report this as a bug.")
    if cache:
        cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    images = ImageSource(spec, root, cache_dir if cache else None, rows, cases)
    ordered = sorted(cases, key=lambda c: ids[c.case_id])
    out.mkdir(parents=True, exist_ok=True)
    # under a lease (bench.leases): a prepare killed by SIGKILL leaves a folder the next bench removes
    with temp_dir(out, prefix=".prepare-") as staging:
        document = _build(spec, pinned, split, ordered, ids, rows, images, export, staging, progress)
        _commit(staging, out, overwrite=overwrite)
    return PreparedSplit(out=out, input_dir=out / "input", reference_dir=out / "reference", task=spec.id,
                         split_name=name, split=split, split_sha256=pinned.sha256,
                         reference_sha256=document["reference_sha256"],
                         case_ids=tuple(ids[c.case_id] for c in ordered),
                         source_case_ids=MappingProxyType({ids[c.case_id]: c.case_id for c in ordered}),
                         cache_hits=images.hits,
                         clipped=MappingProxyType({
                             r["case_id"]: tuple(r["clipped_annotations"])
                             for r in document["cases"] if r.get("clipped_annotations")}))


def _build(spec, pinned, split, ordered, ids, rows, images, export, staging: Path, progress) -> dict:
    input_dir, reference_dir = staging / "input", staging / "reference"
    (input_dir / "images").mkdir(parents=True)
    reference_dir.mkdir()
    if spec.kind == "segmentation":
        (reference_dir / "masks").mkdir()
    records = []
    for done, case in enumerate(ordered, start=1):
        case_id, row = ids[case.case_id], rows[case.case_id]
        image, geometry = images.get(case, input_dir / "images" / f"{case_id}.nii.gz")
        record = {"case_id": case_id, "source_case_id": case.case_id, "patient_id": case.patient_id,
                  "site": _json_value(row.get("site")), "sex": _json_value(row.get("sex")),
                  "age": _json_value(row.get("age")),
                  "age_band": age_band(_json_value(row.get("age")), spec.subgroups.age_band_edges)}
        if spec.kind == "segmentation":
            from bench.data.mdai import clipped_annotations, combine_readers, reader_masks, reference_mask

            shape = geometry["shape_zyx"]
            masks = reader_masks(export, geometry["sop_uids"], (shape[1], shape[2]),
                                 labels=list(spec.target.labels), series_uid=case.series_uid,
                                 protocol=spec.reading, aliases=geometry["sop_aliases"])
            clipped = clipped_annotations(export, geometry["sop_uids"], (shape[1], shape[2]),
                                          labels=list(spec.target.labels), series_uid=case.series_uid,
                                          aliases=geometry["sop_aliases"])
            if clipped:  # provenance of the mask: which polygons were cut at the slice's edge
                record["clipped_annotations"] = list(clipped)
                log.warning("case %s: %d annotation(s) with vertices outside their slice clipped to it: %s",
                            case.case_id, len(clipped), ", ".join(clipped[:5]))
            mask = reference_mask(masks, readers=spec.target.readers, shape=tuple(shape))
            other = spec.target.other_readers
            if not masks["adjudicator"] and len(masks["reader"]) > 1:  # the readers decide: the other rule
                alternative = combine_readers(list(masks["reader"].values()), readers=other,
                                              shape=tuple(shape))
                if not np.array_equal(alternative, mask):  # the definition-sensitivity variant; not hashed
                    folder = reference_dir / "alternatives" / other
                    folder.mkdir(parents=True, exist_ok=True)
                    nifti.save(nifti.mask_image(alternative, image), folder / f"{case_id}.nii.gz")
            traced = {group: m for group, m in masks["reader"].items() if m.any()}
            if len(traced) > 1:  # inter-reader agreement (bench.pipeline.readers); not part of the hash
                folder = reference_dir / "readers" / case_id
                folder.mkdir(parents=True)
                for group, reader_mask in traced.items():
                    safe = re.sub(r"[^A-Za-z0-9_-]", "_", group)
                    nifti.save(nifti.mask_image(reader_mask, image), folder / f"{safe}.nii.gz")
            mask_image = nifti.mask_image(mask, image)
            nifti.save(mask_image, reference_dir / "masks" / f"{case_id}.nii.gz")
            record["mask"] = f"masks/{case_id}.nii.gz"
            record["mask_sha256"] = nifti.mask_sha256(np.asanyarray(mask_image.dataobj))
        else:
            for column in spec.label_columns:
                record[column] = _json_value(row.get(column))
        records.append(record)
        if progress is not None:
            progress(done, len(ordered), f"preparing {split} cases")
    write_json(input_dir / "cases.json", {
        "schema_version": SCHEMA_VERSION, "task": spec.id, "split": split, "split_name": pinned.name,
        "split_sha256": pinned.sha256,
        "cases": [{"case_id": r["case_id"], "image": f"images/{r['case_id']}.nii.gz"} for r in records]})
    write_json(input_dir / "task.json", spec.public_dict())
    document = {"schema_version": SCHEMA_VERSION, "task": spec.id, "task_sha256": spec.sha256,
                "split_name": pinned.name, "split": split, "split_sha256": pinned.sha256,
                "inputs_sha256": input_tree_digest(input_dir),
                "label_columns": spec.label_columns, "cases": records}
    document["reference_sha256"] = reference_sha256(document)
    write_json(reference_dir / "reference.json", document)
    if spec.kind == "classification":
        write_csv(reference_dir / "labels.csv", labels_table(records, spec.label_columns))
    return document


def _commit(staging: Path, out: Path, *, overwrite: bool) -> None:
    """Move the finished trees into place (a rename each: nobody sees a half-written tree).

    Each tree gets its marker (what ``--overwrite`` may later replace) and modes 0755/0644: a
    container runs as another, unprivileged user and must read its inputs.
    """
    for part in ("input", "reference"):
        mark_tree(staging / part, TREE_KINDS[part])
        publish_modes(staging / part)
    for part in ("input", "reference"):
        target = out / part
        if target.exists() and overwrite:
            remove_tree(target)
        os.replace(staging / part, target)
