"""Atomic, canonical file output.

Every file the harness writes goes through here so that a crash or Ctrl-C never leaves a
half-written file or directory, and so that hashes are taken over one canonical byte form.
"""

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

SCHEMA_VERSION = 1


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
    not mkstemp's 0600, so prepared inputs and published sites are readable by others.
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
    text = frame.to_csv(index=False, lineterminator="\n", float_format="%.10g")
    return write_text(path, text)


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
