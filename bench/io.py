"""Serialization: atomic, canonical file output, the number format, and config files in.

Every file the harness writes goes through here so that a crash or Ctrl-C never leaves a
half-written file or directory, and so that hashes are taken over one canonical byte form.
The rules every writer shares live here once:

- numbers are written with 10 significant digits (:data:`FLOAT_FORMAT`: ``per_case.csv``,
  ``labels.csv``, :func:`rounded` for ``scores.json``), so a value read back compares equal to
  the one a rescoring writes;
- an undefined number (NaN, infinity) is ``null`` in JSON (:func:`json_number`) and an empty
  cell in CSV; JSON is strict (``allow_nan=False``), so a stray NaN fails loudly;
- a YAML config (``task.yaml``, ``submission.yaml``) is read into its pydantic model by
  :func:`read_yaml_model`, and every invalid field is listed with its location
  (:func:`validation_problems`).

numpy, pandas, yaml and pydantic are imported where they are used, not with this module: every
command's ``--help`` imports ``bench.io`` and must stay fast.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bench.errors import BenchError

if TYPE_CHECKING:
    import pandas as pd
    from pydantic import BaseModel, ValidationError

SCHEMA_VERSION = 1
FLOAT_FORMAT = "%.10g"
"""How every float is written: 10 significant digits (CSV cells, rounded JSON values, diffs)."""

Model = TypeVar("Model", bound="BaseModel")


def is_missing(value: Any) -> bool:
    """True for None and float NaN: the values written as ``null`` / an empty cell."""
    import numpy as np

    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def json_number(value: float | None) -> float | None:
    """NaN or infinity -> None, anything else -> float: a number strict JSON can hold."""
    return None if value is None or not math.isfinite(value) else float(value)


def float_text(value: float) -> str:
    """A float as :data:`FLOAT_FORMAT` writes it (``2/3`` -> ``0.6666666667``)."""
    return FLOAT_FORMAT % value


def rounded(value: Any) -> Any:
    """Floats to :data:`FLOAT_FORMAT` precision, NaN/inf to None, numpy scalars to Python, recursively."""
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(item) for item in value]
    import numpy as np

    if isinstance(value, float | np.floating):
        return float(float_text(value)) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def csv_text(frame: pd.DataFrame) -> str:
    """``frame`` as the harness writes CSV: no index, LF line ends, :data:`FLOAT_FORMAT`."""
    return frame.to_csv(index=False, lineterminator="\n", float_format=FLOAT_FORMAT)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""Leading characters that make a spreadsheet read a cell as a formula (OWASP's CSV injection list)."""


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells cannot run as spreadsheet formulas.

    For CSV exports that people open in a spreadsheet (the leaderboard's tables): a text cell
    starting with one of :data:`FORMULA_STARTS` (a team named ``=HYPERLINK(...)``) gets a leading
    single quote, which spreadsheets show as text. Numbers, including negative ones, are
    left as they are.
    """
    from pandas.api.types import is_numeric_dtype

    safe = frame.copy()
    for column in safe.columns:
        if not is_numeric_dtype(safe[column]):
            safe[column] = safe[column].map(_neutral)
    return safe


def _neutral(value: Any) -> Any:
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def validation_problems(error: ValidationError) -> list[str]:
    """Every invalid field of a pydantic error as ``"<dotted location>: <message>"``."""
    return [f"{'.'.join(str(part) for part in item['loc']) or '(top level)'}: {item['msg']}"
            for item in error.errors()]


def read_yaml_model(path: Path, model: type[Model], *, error: type[BenchError], what: str,
                    docs: str) -> Model:
    """Read the YAML file ``path`` into ``model``; every problem becomes one ``error``.

    ``what`` names the expected mapping in the message (``task fields``), ``docs`` where the
    format is described. Invalid fields are all listed, one per line, with their location.
    """
    import yaml
    from pydantic import ValidationError

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as problem:
        raise error(f"{path}: not valid YAML: {problem}") from problem
    if not isinstance(raw, dict):
        raise error(f"{path}: expected a mapping of {what}, got {type(raw).__name__}.")
    try:
        return model.model_validate(raw)
    except ValidationError as problem:
        lines = [f"{path}: {problem.error_count()} invalid field(s):"]
        lines.extend(f"  - {line}" for line in validation_problems(problem))
        lines.append(f"Fix the fields above; see {docs}.")
        raise error("\n".join(lines)) from problem


def canonical_json(obj: Any) -> bytes:
    """Compact JSON with sorted keys, UTF-8: the byte form every sha256 is taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def sha256_json(obj: Any) -> str:
    """Hex sha256 of :func:`canonical_json` of ``obj``."""
    import hashlib

    return hashlib.sha256(canonical_json(obj)).hexdigest()


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary file beside it, then a rename.

    The file gets the permissions an ordinary ``open()`` would give (0666 less the umask),
    not mkstemp's 0600, so prepared inputs and published sites are readable by others. An
    I/O error (a full disk) leaves no temporary file and names ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        if error.filename is None:  # write(), flush() and fsync() name no file
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON with sorted keys and a trailing newline, atomically."""
    text = json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    return write_text(path, text + "\n")


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> Path:
    """Write ``frame`` as CSV (no index, LF line ends, 10 significant digits), atomically."""
    return write_text(path, csv_text(frame))


def _umask() -> int:
    """The process umask (read by setting and restoring it: the only portable way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_directory(final_path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that is renamed to ``final_path`` only if the block succeeds.

    The temporary directory sits beside ``final_path`` (same filesystem, so the rename is
    atomic) and is removed on any exception, including KeyboardInterrupt. ``final_path``
    must not exist yet.
    """
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final_path.parent, prefix=f".{final_path.name}.", suffix=".tmp"))
    try:
        tmp.chmod(0o777 & ~_umask())
        yield tmp
        os.replace(tmp, final_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def link_or_copy(source: str | os.PathLike, target: str | os.PathLike) -> bool:
    """Hard-link ``source`` to ``target`` when both are on one filesystem and ``source`` is ours,
    else copy it; True when linked.

    For files that are written once and never rewritten in place (cached conversions): a link
    costs no bytes and no time. Only a file this user owns is linked, so that a later chmod of
    the target (which changes the shared inode) never fails or touches someone else's file.
    """
    source, target = Path(source), Path(target)
    if source.stat().st_uid == os.getuid():
        try:
            os.link(source, target)
            return True
        except OSError:  # another filesystem, links not permitted or not supported: copy
            pass
    shutil.copyfile(source, target)
    return False


@contextmanager
def exclusive(lock_path: str | os.PathLike, *, timeout_s: float, what: str,
              error: type[BenchError] = BenchError) -> Iterator[None]:
    """Hold the inter-process lock ``lock_path`` (a :mod:`filelock` lock file) for the block.

    Concurrent ``bench`` processes (several ``evaluate`` of one entry, a cluster's workers)
    take turns on the store's writes and on one prepared split instead of racing. ``what``
    names the guarded thing in the message raised when another process holds the lock for
    longer than ``timeout_s`` seconds.
    """
    from filelock import FileLock, Timeout

    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(lock_path, timeout=timeout_s):
            yield
    except Timeout as timeout:
        raise error(f"{what} is locked by another bench process ({lock_path}) for more than "
                    f"{timeout_s:.0f} s; wait for it to finish and try again, or remove the lock file "
                    "if no bench process is running.") from timeout
