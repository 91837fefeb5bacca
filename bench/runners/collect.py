"""Output collection: validate what a submission left in ``/output``, case by case, and keep the good part.

The output folder is hostile ground. Files are opened relative to directory descriptors with
``O_NOFOLLOW``, so a symlink (to a host file, or a ``masks`` folder pointing at ``/``) is
never followed; anything but a regular file is rejected; each file is read at most up to its
size cap, and the bytes that were validated are the bytes that are copied. A bad case gets
its own status and reason and never spoils another.

Rules (the task contract, see docs/submissions.md):

- segmentation: ``masks/<case_id>.nii.gz``, a NIfTI-1 image (gzip or plain) with the shape
  and affine (tolerance 1e-4 mm) of the case's input image, an integer or boolean data type
  without intensity scaling, and only the values 0 and 1;
- classification: ``predictions.csv`` with exactly the columns ``spec.output_columns``; one
  row per case id (duplicates make that case malformed; unknown ids are ignored and listed);
  every probability a finite number in [0, 1]; each head's probabilities summing to 1 within
  :data:`SUM_TOLERANCE`.
"""

import csv
import errno
import io
import logging
import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from bench.io import write_bytes, write_csv
from bench.runners.record import CaseStatus, Rejected
from bench.runners.staging import InputCase
from bench.tasks import TaskSpec
from bench.text import clean_reason, display_name
from bench.trees import walk_entries

log = logging.getLogger(__name__)

SUM_TOLERANCE = 1e-3
AFFINE_TOLERANCE_MM = 1e-4
MAX_REJECTED_LISTED = 100
_SHOWN_LEVELS = 8
"""Folder levels of a stray entry's path that are recorded (the first and last ones)."""
_NIFTI_OVERHEAD_BYTES = 352 + (1 << 16)  # header, magic and room for header extensions


class OutputInvalid(Exception):
    """One output file or row breaks the contract; the message is the case's reason."""

    def __init__(self, reason: str, *, status: str = "malformed"):
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Collection:
    """The result of :func:`collect_outputs`: a status per case, and what was rejected besides."""

    cases: tuple[CaseStatus, ...]
    rejected: tuple[Rejected, ...]
    rejected_more: int = 0


def collect_outputs(
    spec: TaskSpec,
    cases: tuple[InputCase, ...],
    output_dir: Path,
    inputs_dir: Path,
    destination: Path,
    *,
    cap_bytes: int,
    max_entries: int | None = None,
) -> Collection:
    """Validate ``output_dir`` against the task contract; copy the valid outputs to ``destination``.

    Parameters
    ----------
    spec
        The task: its ``kind`` picks the rules, ``output_columns`` and ``heads`` the CSV checks.
    cases
        The cases the submission was given (from ``cases.json``).
    output_dir
        What the submission wrote (``/output``). Only read, never followed through a symlink.
    inputs_dir
        The input folder the submission saw; segmentation masks are checked against its images.
    destination
        ``RUN/outputs``: receives ``masks/<case_id>.nii.gz`` or ``predictions.csv``, only valid data.
    cap_bytes
        Total bytes read from ``output_dir`` at most (the task's ``output_mb``); a file that
        would pass it is rejected.
    max_entries
        Entries of ``output_dir`` examined at most (default the task's ``output_entries``, which
        as root is also the output tmpfs's inode count): the walk's memory and time are bounded
        by what the submission was allowed to write, and reaching the limit is recorded.

    Returns
    -------
    Collection
        A :class:`CaseStatus` per case (sorted by case id) and the stray or unsafe entries.
    """
    budget = Budget(cap_bytes)
    rejected_rows: list[Rejected] = []
    rows_more = 0
    if spec.kind == "segmentation":
        statuses = _collect_masks(cases, output_dir, inputs_dir, destination, budget)
        expected = {f"masks/{case.case_id}.nii.gz" for case in cases}
    else:
        statuses, rejected_rows, rows_more = _collect_predictions(
            spec, cases, output_dir, destination, budget
        )
        expected = {"predictions.csv"}
    limit = spec.limits.output_entries if max_entries is None else max_entries
    stray, more, notice = stray_entries(output_dir, expected, limit)
    rejected = notice + rejected_rows + stray  # the entry limit first: it is never cut from the list
    return Collection(
        cases=tuple(sorted((_recorded(c) for c in statuses), key=lambda c: c.case_id)),
        rejected=tuple(Rejected(display_name(r.path), clean_reason(r.reason))
                       for r in rejected[:MAX_REJECTED_LISTED]),
        rejected_more=rows_more + more + max(0, len(rejected) - MAX_REJECTED_LISTED),
    )


def _recorded(case: CaseStatus) -> CaseStatus:
    """A case status as ``run.json`` records it: reason capped, no control characters, no host paths."""
    return CaseStatus(case.case_id, case.status, clean_reason(case.reason))


class Budget:
    """Bytes still allowed to be read from the output folder."""

    def __init__(self, cap_bytes: int):
        self.cap_bytes = cap_bytes
        self.left = cap_bytes

    def take(self, size: int, what: str) -> None:
        if size > self.left:
            raise OutputInvalid(
                f"{what} is {size} bytes; with the outputs before it this passes the total "
                f"output cap of {self.cap_bytes} bytes"
            )
        self.left -= size


def read_output_file(
    output_dir: Path, relative: str, *, max_bytes: int, budget: Budget | None = None
) -> bytes:
    """Read ``output_dir/relative`` without following any symlink, at most ``max_bytes``.

    Raises
    ------
    OutputInvalid
        ``status="missing"`` when the file or a folder on its path does not exist; otherwise
        (malformed) when a component is a symlink, a folder component is not a folder, the
        file is not a regular file (device, fifo, socket, folder) or is larger than the cap.
    """
    parts = relative.split("/")
    flags_dir = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    descriptor = os.open(output_dir, flags_dir)
    try:
        for depth, part in enumerate(parts[:-1]):
            where = "/".join(parts[: depth + 1])
            _refuse_link(descriptor, part, where)
            try:
                child = os.open(part, flags_dir, dir_fd=descriptor)
            except FileNotFoundError as error:
                raise OutputInvalid(f"no {relative} (no folder {where}/)", status="missing") from error
            except NotADirectoryError as error:
                raise OutputInvalid(f"{where} is not a folder") from error
            except OSError as error:
                raise OutputInvalid(f"{where}/ cannot be opened ({error.strerror})") from error
            os.close(descriptor)
            descriptor = child
        name = parts[-1]
        try:
            info = os.stat(name, dir_fd=descriptor, follow_symlinks=False)
        except FileNotFoundError as error:
            raise OutputInvalid(f"no {relative}", status="missing") from error
        except OSError as error:
            raise OutputInvalid(f"{relative} cannot be examined ({error.strerror})") from error
        _check_regular(info, relative, max_bytes)
        try:
            handle = os.open(
                name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=descriptor
            )
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise OutputInvalid(f"{relative} is a symlink; symlinks are never followed") from error
            raise OutputInvalid(f"{relative} cannot be opened ({error.strerror})") from error
        try:
            opened = os.fstat(handle)
            if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
                raise OutputInvalid(f"{relative} changed while it was being read")
            _check_regular(opened, relative, max_bytes)
            if budget is not None:
                budget.take(opened.st_size, relative)
            with os.fdopen(os.dup(handle), "rb") as reader:
                data = reader.read(max_bytes + 1)
        finally:
            os.close(handle)
    finally:
        os.close(descriptor)
    if len(data) > max_bytes:
        raise OutputInvalid(f"{relative} is larger than its size cap of {max_bytes} bytes")
    return data


def _refuse_link(descriptor: int, part: str, where: str) -> None:
    try:
        info = os.stat(part, dir_fd=descriptor, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise OutputInvalid(f"{where} is a symlink; symlinks are never followed")


def _check_regular(info: os.stat_result, relative: str, max_bytes: int) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise OutputInvalid(f"{relative} is a symlink; symlinks are never followed")
    if not stat.S_ISREG(info.st_mode):
        raise OutputInvalid(f"{relative} is not a regular file ({_kind(info.st_mode)})")
    if info.st_size > max_bytes:
        raise OutputInvalid(f"{relative} is {info.st_size} bytes, over its size cap of {max_bytes} bytes")


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a fifo"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symlink"),
    ):
        if test(mode):
            return name
    return "unknown file type"


# --- segmentation ---------------------------------------------------------------------------


def _collect_masks(cases, output_dir: Path, inputs_dir: Path, destination: Path, budget: Budget):
    statuses = []
    for case in sorted(cases, key=lambda c: c.case_id):
        relative = f"masks/{case.case_id}.nii.gz"
        try:
            reference = nib.load(inputs_dir / case.image)
            raw_cap = mask_byte_cap(reference.shape)
            data = read_output_file(
                output_dir, relative, max_bytes=min(budget.cap_bytes, raw_cap + raw_cap // 50), budget=budget
            )
            validate_mask_bytes(data, shape=reference.shape, affine=reference.affine, max_raw_bytes=raw_cap)
        except OutputInvalid as invalid:
            statuses.append(CaseStatus(case.case_id, invalid.status, str(invalid)))
            continue
        write_bytes(destination / relative, data)
        statuses.append(CaseStatus(case.case_id, "ok", ""))
    return statuses


def mask_byte_cap(shape: tuple[int, ...]) -> int:
    """Most bytes an uncompressed mask of ``shape`` can need: header, extensions, 8 bytes a voxel."""
    return _NIFTI_OVERHEAD_BYTES + int(np.prod(shape)) * 8


def validate_mask_bytes(
    data: bytes, *, shape: tuple[int, ...], affine: np.ndarray, max_raw_bytes: int
) -> None:
    """Check that ``data`` (a .nii.gz or .nii file's bytes) is a binary mask on the given grid.

    Gzip or plain NIfTI-1 bytes are both accepted, whatever the file name says (told apart by
    the gzip magic, as :func:`bench.prepare.nifti.read_volume` does at scoring); memory is
    bounded by ``max_raw_bytes``. The grid and value checks are :func:`check_mask`.

    Raises
    ------
    OutputInvalid
        With the reason: not gzip / not NIfTI-1, decompresses past ``max_raw_bytes``, wrong
        shape or affine, non-integer data type or intensity scaling, values other than 0 and 1.
    """
    raw = _gunzip(data, max_raw_bytes) if data[:2] == b"\x1f\x8b" else data
    try:
        image = nib.Nifti1Image.from_bytes(raw)
        # nibabel moves scl_slope/scl_inter from the loaded header into the array proxy
        slope, inter = float(image.dataobj.slope), float(image.dataobj.inter)
    except Exception as error:  # nibabel raises many types for a broken header
        raise OutputInvalid(f"not a readable NIfTI-1 image ({type(error).__name__}: {error})") from error
    if slope != 1 or inter != 0:
        raise OutputInvalid(f"intensity scaling (slope {slope}, intercept {inter}) is set; write plain 0/1")
    if tuple(image.shape) != tuple(shape):  # before reading the voxels
        raise OutputInvalid(f"shape {tuple(image.shape)} differs from the input image's {tuple(shape)}")
    try:
        values = np.asanyarray(image.dataobj)
    except Exception as error:
        raise OutputInvalid(f"voxel data unreadable ({type(error).__name__}: {error})") from error
    check_mask(values, image.affine, shape=shape, affine=affine)


def check_mask(
    values: np.ndarray, mask_affine: np.ndarray, *, shape: tuple[int, ...], affine: np.ndarray
) -> None:
    """The one rule for a mask's grid and values, applied at collection and again at scoring.

    Collection (:func:`validate_mask_bytes`) and scoring
    (:func:`bench.scoring.segmentation.score_segmentation_case`) both call it, so a mask ``ok``
    at collection is never an error at scoring.

    Raises
    ------
    OutputInvalid
        Wrong shape, affine (beyond :data:`AFFINE_TOLERANCE_MM`), non-integer data type, or
        values other than 0 and 1.
    """
    if tuple(values.shape) != tuple(shape):
        raise OutputInvalid(f"shape {tuple(values.shape)} differs from the input image's {tuple(shape)}")
    if not np.allclose(mask_affine, affine, rtol=0, atol=AFFINE_TOLERANCE_MM):
        worst = float(np.max(np.abs(mask_affine - affine)))
        raise OutputInvalid(
            f"affine differs from the input image's by up to {worst:.6g} mm "
            f"(tolerance {AFFINE_TOLERANCE_MM} mm)"
        )
    if values.dtype.kind not in "iub":
        raise OutputInvalid(f"data type {values.dtype} is not an integer type; write uint8 0/1")
    # min/max instead of np.unique: the same answer for integer masks, 100x cheaper on a CT
    if values.size and (values.min() < 0 or values.max() > 1):
        found = np.unique(values)[:5].tolist()
        raise OutputInvalid(f"not binary: values {found}... found, only 0 and 1 allowed")


def _gunzip(data: bytes, max_raw_bytes: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        raw = inflater.decompress(data, max_raw_bytes + 1)
    except zlib.error as error:
        raise OutputInvalid(f"not a valid gzip stream ({error})") from error
    if len(raw) > max_raw_bytes:
        raise OutputInvalid(
            f"decompresses to more than {max_raw_bytes} bytes, more than any mask of this grid"
        )
    if not inflater.eof:
        raise OutputInvalid("truncated gzip stream")
    return raw


# --- classification -------------------------------------------------------------------------


def _collect_predictions(spec: TaskSpec, cases, output_dir: Path, destination: Path, budget: Budget):
    ids = sorted(case.case_id for case in cases)
    try:
        data = read_output_file(output_dir, "predictions.csv", max_bytes=budget.cap_bytes, budget=budget)
        parsed = parse_predictions(data, spec, ids)
    except OutputInvalid as invalid:
        return [CaseStatus(case_id, invalid.status, f"predictions.csv: {invalid}") for case_id in ids], [], 0
    valid, statuses = validate_predictions(parsed, spec, ids)
    if len(valid):
        write_csv(destination / "predictions.csv", valid)
    rejected = [Rejected(f"predictions.csv:{case_id}", _UNKNOWN_ROW) for case_id in parsed.unknown]
    return statuses, rejected, parsed.unknown_more


_UNKNOWN_ROW = "row for a case id that is not in cases.json; ignored"


@dataclass(frozen=True)
class ParsedPredictions:
    """``predictions.csv`` read with memory bounded by the run's cases, whatever the file holds.

    ``frame`` has the task's columns as text, one row per case id of the run that the file
    names (its first row); ``repeats`` counts the case ids named more than once; ``problems``
    holds a reason for a case whose row has the wrong number of fields. ``unknown`` lists the
    first :data:`MAX_REJECTED_LISTED` other case ids in file order, ``unknown_more`` counts the
    rows with other case ids beyond those.
    """

    frame: pd.DataFrame
    repeats: dict[str, int]
    problems: dict[str, str]
    unknown: tuple[str, ...]
    unknown_more: int


def parse_predictions(data: bytes, spec: TaskSpec, case_ids: list[str]) -> ParsedPredictions:
    """Read ``predictions.csv`` bytes, keeping only the rows of ``case_ids`` (see :class:`ParsedPredictions`).

    One pass of the standard library's CSV reader: time grows with the file's size (capped by
    the task's ``output_mb``), memory with the number of cases, never with the number of rows.

    Raises
    ------
    OutputInvalid
        When the bytes are not UTF-8 CSV, or the header is not ``spec.output_columns`` (in any order).
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise OutputInvalid(f"not UTF-8 ({error.reason} at byte {error.start})") from error
    expected, known = spec.output_columns, set(case_ids)
    previous_limit = csv.field_size_limit(max(len(text), 1 << 17))
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        header = next((row for row in reader if row), None)
        if header is None:
            raise OutputInvalid("empty file: no header row")
        columns = [name.strip() for name in header]
        missing = [c for c in expected if c not in columns]
        unknown_columns = [c for c in columns if c not in expected]
        if missing or unknown_columns or len(set(columns)) != len(columns):
            raise OutputInvalid(
                f"columns {columns} do not match the task's {expected} "
                f"(missing {missing}, unknown {unknown_columns})"
            )
        order = [columns.index(c) for c in expected]
        rows: dict[str, list[str]] = {}
        repeats: dict[str, int] = {}
        problems: dict[str, str] = {}
        unknown: dict[str, None] = {}
        unknown_more = 0
        for row in reader:
            if not row:
                continue
            case_id = row[order[0]].strip() if len(row) > order[0] else ""
            if case_id not in known:
                if case_id in unknown:
                    continue
                if len(unknown) < MAX_REJECTED_LISTED:
                    unknown[case_id] = None
                else:
                    unknown_more += 1
                continue
            if case_id in rows:
                repeats[case_id] = repeats.get(case_id, 1) + 1
                continue
            if len(row) != len(columns):
                problems[case_id] = f"row has {len(row)} fields, the header {len(columns)}"
                row = (row + [""] * len(columns))[: len(columns)]
            rows[case_id] = [case_id, *(row[i] for i in order[1:])]
    except csv.Error as error:
        raise OutputInvalid(f"not parsable as CSV (line {reader.line_num}: {error})") from error
    finally:
        csv.field_size_limit(previous_limit)
    frame = pd.DataFrame(list(rows.values()), columns=expected, dtype=object)
    return ParsedPredictions(frame, repeats, problems, tuple(unknown), unknown_more)


def validate_predictions(parsed: ParsedPredictions, spec: TaskSpec, case_ids: list[str]):
    """Check each row of parsed predictions; return (valid rows, a status per case).

    Valid rows come back as floats in ``spec.output_columns`` order, sorted by case id. Every
    case in ``case_ids`` gets a status: ``missing`` without a row, ``malformed`` with a row that
    repeats, has the wrong number of fields or breaks a rule (the first broken rule is the
    reason), ``ok`` otherwise.
    """
    rows = parsed.frame
    classes = spec.output_columns[1:]
    numbers = rows[classes].apply(pd.to_numeric, errors="coerce").astype(float)
    reasons = pd.Series("", index=rows.index, dtype=object)

    def flag(mask: pd.Series, reason_of) -> None:
        fresh = mask & (reasons == "")
        for index in rows.index[fresh.to_numpy()]:
            reasons[index] = reason_of(index)

    for column in classes:
        spelled_nan = rows[column].str.strip().str.lower().isin(["nan", "+nan", "-nan"])
        flag(
            numbers[column].isna() & ~spelled_nan,
            lambda i, c=column: f"{c} is not a number ({rows.at[i, c]!r})",
        )
        flag(~np.isfinite(numbers[column]), lambda i, c=column: f"{c} is not finite ({rows.at[i, c]!r})")
        flag(
            (numbers[column] < 0) | (numbers[column] > 1),
            lambda i, c=column: f"{c} = {numbers.at[i, c]:.6g} is outside [0, 1]",
        )
    for head in spec.heads:
        total = numbers[list(head.classes)].sum(axis=1)
        flag(
            (total - 1).abs() > SUM_TOLERANCE,
            lambda i, h=head, t=total: (
                f"{h.name} probabilities sum to {t[i]:.6g}, not 1 (tolerance {SUM_TOLERANCE})"
            ),
        )
    by_case = dict(zip(rows["case_id"], reasons, strict=True))
    by_case.update(parsed.problems)
    by_case.update({c: f"case id appears {n} times in predictions.csv" for c, n in parsed.repeats.items()})
    statuses = []
    for case_id in case_ids:
        if case_id not in by_case:
            statuses.append(CaseStatus(case_id, "missing", "no row in predictions.csv"))
        elif by_case[case_id]:
            statuses.append(CaseStatus(case_id, "malformed", by_case[case_id]))
        else:
            statuses.append(CaseStatus(case_id, "ok", ""))
    good = rows["case_id"].map(lambda c: not by_case[c]).to_numpy(dtype=bool)
    valid = pd.concat([rows.loc[good, ["case_id"]], numbers.loc[good]], axis=1)
    valid = valid.sort_values("case_id", kind="stable").reset_index(drop=True)
    return valid, statuses


# --- everything else in /output ----------------------------------------------------------------


def stray_entries(output_dir: Path, expected: set[str],
                  limit: int) -> tuple[list[Rejected], int, list[Rejected]]:
    """List entries of ``output_dir`` that are not expected outputs, any depth, without following links.

    At most ``limit`` entries are looked at and at most ``limit`` names read, so memory and time
    are bounded by the output entry limit, whatever the count or depth; reaching it is recorded
    as an entry ``...`` with the reason (the third value). The first :data:`MAX_REJECTED_LISTED`
    rejected entries are listed (a deep path by its first and last folders) and the rest counted.
    """
    rejected: list[Rejected] = []
    notice: list[Rejected] = []
    more = 0
    depth = max((relative.count("/") + 1 for relative in expected), default=0)
    seen = 0
    for entry in walk_entries(output_dir, limit=limit + 1):
        seen += 1
        if seen > limit:
            notice.append(Rejected("...", f"more than {limit} entries in the output (limits.output_entries); "
                                          "the rest was not examined"))
            break
        mode = entry.info.st_mode
        if stat.S_ISDIR(mode) or (len(entry.parts) <= depth and entry.relative in expected):
            continue  # an expected name that is a link or a device: its case already says so
        if len(rejected) >= MAX_REJECTED_LISTED:
            more += 1
            continue
        if stat.S_ISLNK(mode):
            reason = "symlink; never followed, not kept"
        elif not stat.S_ISREG(mode):
            reason = f"{_kind(mode)}; not kept"
        else:
            reason = "not part of the output contract; not kept"
        rejected.append(Rejected(_shown_path(entry.parts), reason))
    if seen == limit:
        notice.append(Rejected("...", f"the output holds {limit} entries, its limit (limits.output_entries): "
                                      "as root, creating more failed inside the run"))
    return rejected, more, notice


def _shown_path(parts: tuple[str, ...]) -> str:
    """The relative path of an entry, its middle folders elided when deeper than :data:`_SHOWN_LEVELS`."""
    if len(parts) <= _SHOWN_LEVELS:
        return "/".join(parts)
    half = _SHOWN_LEVELS // 2
    return "/".join((*parts[:half], f"...{len(parts) - 2 * half} levels...", *parts[-half:]))
