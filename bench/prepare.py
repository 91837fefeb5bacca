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
second prepare reads no DICOM at all. NIfTI conventions: :mod:`bench.nifti`.
"""

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import nibabel as nib
import numpy as np
import pandas as pd

from bench import nifti
from bench.errors import PrepareError, SplitError
from bench.fingerprints import (
    annotation_files,
    annotations_fingerprint,
    images_fingerprint,
    locate_series,
    read_annotation_records,
)
from bench.io import SCHEMA_VERSION, atomic_directory, sha256_json, write_csv, write_json
from bench.metrics.subgroups import age_band
from bench.splits import PinnedSplit, SplitCase, load_split
from bench.tasks import SPLITS, TaskSpec

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

#: Version of the DICOM -> NIfTI conversion; part of the cache key.
CONVERSION = "nifti-v1"
DEMOGRAPHICS = ("site", "sex", "age", "age_band")
_CACHE_FILES = ("image.nii.gz", "geometry.json")
#: Where the case-id salt of a download is kept by default, relative to the download root (a
#: hidden folder: `bench data index` and `bench splits verify` skip it).
SALT_PATH = Path(".ricord-bench") / "salt"
_SALT_PATTERN = re.compile(r"[0-9a-f]{32,}")


def default_cache_dir() -> Path:
    """``$BENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/ricord-bench``, else ``~/.cache/ricord-bench``."""
    if os.environ.get("BENCH_CACHE_DIR"):
        return Path(os.environ["BENCH_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ricord-bench"


@dataclass(frozen=True)
class PreparedSplit:
    """What :func:`prepare_split` wrote.

    ``case_ids`` are the opaque ids used in both trees (sorted); ``source_case_ids`` maps each
    to its manifest case_id. ``cache_hits`` counts images taken from the cache.
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


@dataclass(frozen=True, eq=False)
class Reference:
    """A reference tree, read and verified by :func:`read_reference`.

    ``cases``: one row per case sorted by case_id, columns ``case_id, source_case_id,
    patient_id, site, sex, age, age_band``, then the label columns (classification: each
    head's manifest column, e.g. ``appearance``, ``grade``, ``covid``; listed in
    ``label_columns``) or ``mask, mask_sha256`` (segmentation). Missing values are None/NaN.
    """

    directory: Path
    task: str
    task_sha256: str
    split_name: str
    split: str
    split_sha256: str
    reference_sha256: str
    label_columns: tuple[str, ...]
    cases: pd.DataFrame

    @property
    def case_ids(self) -> list[str]:
        return self.cases["case_id"].tolist()

    def mask_path(self, case_id: str) -> Path:
        """Path of a segmentation case's reference mask."""
        return self.directory / "masks" / f"{case_id}.nii.gz"


def case_id_salt(root: str | os.PathLike, *, salt_file: str | os.PathLike | None = None) -> str:
    """The secret salt of the opaque case ids, created on first use.

    The split file is public and lists every case's manifest id and strata, so an unsalted
    hash of the manifest id would let anyone map a prepared id back to its label. The salt is
    read from ``salt_file`` (default ``root/.ricord-bench/salt``); when that file does not exist a
    new one is written with :func:`secrets.token_hex` (128 bits, mode 0600). Reruns on the same
    download therefore give the same ids. The salt must stay with whoever prepares: it is never
    written to the input tree, the split file or the reference.

    Raises
    ------
    PrepareError
        The salt file is unreadable, not at least 32 lowercase hex digits, or cannot be created
        (a read-only download: pass ``salt_file`` in a writable place).
    """
    path = Path(salt_file) if salt_file is not None else Path(root) / SALT_PATH
    if not path.exists():
        _create_salt(path)
    try:
        salt = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise PrepareError(f"{path}: unreadable case-id salt ({error}). Restore it from your backup, or "
                           "delete it to start a new salt (prepared ids will change).") from error
    if not _SALT_PATTERN.fullmatch(salt):
        raise PrepareError(f"{path}: the case-id salt must be at least 32 lowercase hex digits (got "
                           f"{len(salt)} characters). Write one with "
                           "`python -c 'import secrets; print(secrets.token_hex(16))'`.")
    return salt


def _create_salt(path: Path) -> None:
    """Write a new salt without ever replacing one (two prepares racing agree on the winner's)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".salt-")
    except OSError as error:
        raise PrepareError(f"{path}: cannot create the case-id salt ({error}). Pass --salt-file with a "
                           "path you can write (keep it private and reuse it for this download).") from error
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_hex(16) + "\n")
        os.link(tmp, path)
        log.info("created the case-id salt %s", path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def prepared_case_id(task_id: str, case_id: str, *, salt: str) -> str:
    """The opaque id of a manifest case in a prepared split of ``task_id``.

    ``case-`` + the first 12 hex of ``HMAC-SHA256(key=salt, "<task id>/<case_id>")``; ``salt``
    from :func:`case_id_salt`.
    """
    digest = hmac.new(salt.encode(), f"{task_id}/{case_id}".encode(), hashlib.sha256).hexdigest()
    return "case-" + digest[:12]


def reference_sha256(document: Mapping) -> str:
    """sha256 of the canonical JSON of ``reference.json`` without its ``reference_sha256`` field.

    The document holds the task and split hashes and every case record, including each mask's
    :func:`bench.nifti.mask_sha256`, so the hash covers labels and masks alike.
    """
    return sha256_json({key: value for key, value in document.items() if key != "reference_sha256"})


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


def _json_value(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
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


class _ImageSource:
    """Converted images by pinned fingerprint: from the cache, else from DICOM (checked, then cached)."""

    def __init__(self, spec: TaskSpec, root: Path, cache_dir: Path | None, rows: Mapping[str, dict],
                 cases: tuple[SplitCase, ...]):
        self.spec, self.root, self.rows = spec, root, rows
        self.cache = Path(cache_dir) / CONVERSION if cache_dir is not None else None
        self.hits = 0
        self._located: dict[str, list[Path]] | None = None
        self._pending = [case for case in cases if not self._cached(case)]

    def _entry(self, case: SplitCase) -> Path | None:
        return self.cache / case.fingerprint.images if self.cache is not None else None

    def _cached(self, case: SplitCase) -> bool:
        entry = self._entry(case)
        return entry is not None and all((entry / name).is_file() for name in _CACHE_FILES)

    def _paths(self, case: SplitCase) -> list[Path]:
        if self._located is None:
            hints = [self.rows[c.case_id].get("series_dir") for c in self._pending]
            self._located = locate_series(self.root, [c.series_uid for c in self._pending], hint_dirs=hints)
        paths = self._located.get(case.series_uid)
        if not paths:
            raise PrepareError(f"case {case.case_id}: series {case.series_uid} is not under {self.root}. "
                               "Run `bench splits verify` on this download.")
        return paths

    def get(self, case: SplitCase, into: Path) -> tuple[nib.Nifti1Image, dict]:
        """Write the case's image to ``into``; return it with its geometry (slice SOP UIDs, shape)."""
        if self._cached(case):
            self.hits += 1
            entry = self._entry(case)
            shutil.copyfile(entry / "image.nii.gz", into)
            return nib.load(into), json.loads((entry / "geometry.json").read_text(encoding="utf-8"))
        image, geometry = self._convert(case)
        nifti.save(image, into)
        entry = self._entry(case)
        if entry is not None and not entry.exists():
            try:
                with atomic_directory(entry) as tmp:
                    shutil.copyfile(into, tmp / "image.nii.gz")
                    write_json(tmp / "geometry.json", geometry)
            except OSError as error:  # another prepare filled the entry first, or the cache is read-only
                log.warning("could not cache %s: %s", entry, error)
        return nib.load(into), geometry

    def _convert(self, case: SplitCase) -> tuple[nib.Nifti1Image, dict]:
        from bench.data.dicom import CtVolume
        from bench.data.ricord import load_case_image

        if images_fingerprint(self._paths(case)) != case.fingerprint.images:
            raise PrepareError(f"case {case.case_id}: the pixel data under {self.root} differ from the "
                               "pinned split. Run `bench splits verify` and re-download the changed cases.")
        image = load_case_image(self.root, self.rows[case.case_id])
        if isinstance(image, CtVolume):
            return (nifti.ct_image(image.hu, image.affine_lps),
                    {"kind": "CT", "sop_uids": list(image.sop_uids), "shape_zyx": list(image.hu.shape)})
        return (nifti.radiograph_image(image.pixels, image.spacing_mm),
                {"kind": "CXR", "sop_uids": [image.sop_uid], "shape_yx": list(image.pixels.shape)})


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
        The pinned split (``tasks/<task>/splits/<name>.json``).
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
        The tasks folder (default :func:`bench.tasks.tasks_dir`).

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
    images = _ImageSource(spec, root, cache_dir if cache else None, rows, cases)
    ordered = sorted(cases, key=lambda c: ids[c.case_id])
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".prepare-"))
    try:
        document = _build(spec, pinned, split, ordered, ids, rows, images, export, staging, progress)
        _commit(staging, out, overwrite=overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PreparedSplit(out=out, input_dir=out / "input", reference_dir=out / "reference", task=spec.id,
                         split_name=name, split=split, split_sha256=pinned.sha256,
                         reference_sha256=document["reference_sha256"],
                         case_ids=tuple(ids[c.case_id] for c in ordered),
                         source_case_ids=MappingProxyType({ids[c.case_id]: c.case_id for c in ordered}),
                         cache_hits=images.hits)


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
            from bench.data.mdai import rasterize_case

            shape = geometry["shape_zyx"]
            mask = rasterize_case(export, geometry["sop_uids"], (shape[1], shape[2]),
                                  labels=list(spec.target.labels), readers=spec.target.readers,
                                  series_uid=case.series_uid)
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
        "schema_version": SCHEMA_VERSION, "task": spec.id, "split": split,
        "cases": [{"case_id": r["case_id"], "image": f"images/{r['case_id']}.nii.gz"} for r in records]})
    write_json(input_dir / "task.json", spec.public_dict())
    document = {"schema_version": SCHEMA_VERSION, "task": spec.id, "task_sha256": spec.sha256,
                "split_name": pinned.name, "split": split, "split_sha256": pinned.sha256,
                "label_columns": spec.label_columns, "cases": records}
    document["reference_sha256"] = reference_sha256(document)
    write_json(reference_dir / "reference.json", document)
    if spec.kind == "classification":
        write_csv(reference_dir / "labels.csv", labels_table(records, spec.label_columns))
    return document


def labels_table(records: list[dict], label_columns: list[str]) -> pd.DataFrame:
    """``labels.csv``: case_id, source_case_id, patient_id, demographics, label columns; by case_id."""
    columns = ["case_id", "source_case_id", "patient_id", *DEMOGRAPHICS, *label_columns]
    table = pd.DataFrame([{key: record.get(key) for key in columns} for record in records], columns=columns)
    return table.sort_values("case_id", kind="stable").reset_index(drop=True)


def _readable(tree: Path) -> None:
    """Files 0644, folders 0755: a container runs as another, unprivileged user and must read
    its inputs (atomic writes create files 0600)."""
    tree.chmod(0o755)
    for path in tree.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _commit(staging: Path, out: Path, *, overwrite: bool) -> None:
    """Move the finished trees into place (a rename each: nobody sees a half-written tree)."""
    _readable(staging / "input")
    _readable(staging / "reference")
    for part in ("input", "reference"):
        target = out / part
        if target.exists() and overwrite:
            shutil.rmtree(target)
        os.replace(staging / part, target)


def read_reference(reference_dir: str | os.PathLike, *, check_masks: bool = True) -> Reference:
    """Read ``reference.json`` (and ``labels.csv`` or the masks) and verify the reference hash.

    Parameters
    ----------
    reference_dir : path
        The ``OUT/reference`` folder written by :func:`prepare_split`.
    check_masks : bool
        Also recompute every mask's :func:`bench.nifti.mask_sha256` (reads every mask once).

    Raises
    ------
    PrepareError
        Missing or unreadable files, a ``reference_sha256`` that does not match the content, a
        mask or ``labels.csv`` that does not match the records.
    """
    directory = Path(reference_dir)
    path = directory / "reference.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise PrepareError(f"{path}: no reference.json; pass the reference folder written by `bench prepare` "
                           "(OUT/reference).") from error
    except (OSError, ValueError) as error:
        raise PrepareError(f"{path}: unreadable ({error}). Prepare the split again.") from error
    needed = {"schema_version", "task", "task_sha256", "split_name", "split", "split_sha256", "cases",
              "reference_sha256"}
    if not isinstance(document, dict) or needed - set(document):
        raise PrepareError(f"{path}: not a reference: needs {sorted(needed)}.")
    actual = reference_sha256(document)
    if actual != document["reference_sha256"]:
        raise PrepareError(f"{path}: reference_sha256 {document['reference_sha256']} does not match its "
                           f"content ({actual}); the reference was edited. Prepare the split again.")
    cases = pd.DataFrame(document["cases"])
    if cases.empty or "case_id" not in cases.columns:
        raise PrepareError(f"{path}: no case records.")
    label_columns = list(document.get("label_columns") or [])
    first = ["case_id", "source_case_id", "patient_id", *DEMOGRAPHICS, *label_columns]
    cases = cases[[c for c in first if c in cases.columns] + [c for c in cases.columns if c not in first]]
    cases = cases.sort_values("case_id", kind="stable").reset_index(drop=True)
    reference = Reference(directory=directory, task=document["task"], task_sha256=document["task_sha256"],
                          split_name=document["split_name"], split=document["split"],
                          split_sha256=document["split_sha256"], reference_sha256=actual,
                          label_columns=tuple(label_columns), cases=cases)
    if "mask_sha256" in cases.columns and check_masks:
        for case_id, expected in zip(cases["case_id"], cases["mask_sha256"], strict=True):
            mask = reference.mask_path(case_id)
            try:
                found = nifti.mask_sha256(np.asanyarray(nib.load(mask).dataobj))
            except (OSError, ValueError, nib.filebasedimages.ImageFileError) as error:
                raise PrepareError(f"{mask}: unreadable reference mask ({error}). Prepare the split "
                                   "again.") from error
            if found != expected:
                raise PrepareError(f"{mask}: mask content sha256 {found} differs from reference.json "
                                   f"({expected}); the mask was changed. Prepare the split again.")
    labels = directory / "labels.csv"
    if label_columns:
        expected = labels_table(document["cases"], label_columns).to_csv(index=False, lineterminator="\n",
                                                                         float_format="%.10g")
        if not labels.is_file() or labels.read_text(encoding="utf-8") != expected:
            raise PrepareError(f"{labels}: missing or different from the records of reference.json; the "
                               "reference was edited. Prepare the split again.")
    return reference
