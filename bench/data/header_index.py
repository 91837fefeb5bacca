"""The header index of a download: what every file's header said, kept so it is read only once.

``bench data index`` reads every header of a download (the real RICORD one has ~54,000 files)
and writes what it found to :data:`INDEX_PATH` under the download root: per candidate file its
path relative to the root, size, mtime and ctime, and its index row or the reason it was
skipped. ``bench splits pin|verify`` (locating series) and ``bench prepare`` (each case's
series) read the download's headers again; with the index they read only the files that
changed since: a file whose size, mtime or ctime differs from the index, or that the index
does not list, is read again (and logged), a file gone from the download is gone from the
result. So a stale index is never trusted and never an error; it only costs the re-reads. The
ctime cannot be set back by any tool, so a file replaced by another of the same size and mtime
is still read again. An index from another schema version, or one that cannot be parsed, is
ignored with a warning, as if there were none.

The index lives in the download's hidden ``.ricord-bench/`` folder (beside the case-id salt),
which the walk of the download skips; it is compressed JSON, written atomically. A download on
a read-only disk simply has no index (a warning says so), and every command reads headers as
before.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from isal import igzip

from bench.data.headers import HEADER_COLUMNS
from bench.io import SCHEMA_VERSION, write_bytes

log = logging.getLogger(__name__)

#: Where ``bench data index`` keeps the header index, relative to the download root.
INDEX_PATH = Path(".ricord-bench") / "headers.json.gz"
KIND = "ricord-bench header index"
#: The stored columns: every index column but ``path``, which is rebuilt from the root it is read under.
STORED_COLUMNS = tuple(column for column in HEADER_COLUMNS if column != "path")
_TUPLE_COLUMNS = frozenset({"position", "orientation", "pixel_spacing", "imager_pixel_spacing"})

#: One entry per file: (size, (mtime ns, ctime ns), index row without ``path`` or skip reason).
Entry = tuple[int, tuple[int, int], "dict | str"]

_loaded: dict[str, tuple[tuple[int, int, int], dict[str, Entry]]] = {}
"""The last index read per file (keyed by its path and stat), so that prepare's many per-case
lookups in one process parse it once."""


def index_path(root: str | os.PathLike) -> Path:
    """The header index file of the download at ``root``."""
    return Path(root) / INDEX_PATH


def read_index(root: str | os.PathLike) -> dict[str, Entry]:
    """rel_path -> entry of the download's header index; empty when there is none or it is unusable."""
    path = index_path(root)
    try:
        info = path.stat()
    except OSError:
        return {}
    key = (info.st_size, info.st_mtime_ns, info.st_ino)
    cached = _loaded.get(str(path))
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        doc = json.loads(igzip.decompress(path.read_bytes()))
        entries = _entries(doc)
    except (OSError, EOFError, ValueError, TypeError, KeyError) as error:
        log.warning("%s: unusable header index ignored (%s: %s); headers are read from the files. "
                    "`bench data index` writes a new one.", path, type(error).__name__, error)
        return {}
    _loaded.clear()
    _loaded[str(path)] = (key, entries)
    return entries


def _entries(doc) -> dict[str, Entry]:
    if doc.get("kind") != KIND or doc.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"kind {doc.get('kind')!r}, schema version {doc.get('schema_version')!r}; expected "
                         f"{KIND!r} version {SCHEMA_VERSION}")
    if tuple(doc["columns"]) != STORED_COLUMNS:
        raise ValueError("its columns are not this version's")
    entries: dict[str, Entry] = {}
    for rel_path, size, mtime, ctime, result in doc["files"]:
        if not isinstance(result, str):
            result = dict(zip(STORED_COLUMNS, result, strict=True))
            for column in _TUPLE_COLUMNS:
                if result[column] is not None:
                    result[column] = tuple(result[column])
        entries[rel_path] = (int(size), (int(mtime), int(ctime)), result)
    return entries


def write_index(root: str | os.PathLike, entries: dict[str, Entry]) -> Path | None:
    """Write the header index of ``root`` atomically; None (and a warning) when it cannot be written.

    ``entries`` as :func:`read_index` returns them; rows may still hold ``path``, which is not
    stored. Files are listed in path order, so the same download gives the same index.
    """
    files = []
    for rel_path in sorted(entries, key=lambda rel: rel.split("/")):
        size, (mtime, ctime), result = entries[rel_path]
        stored = result if isinstance(result, str) else [result[column] for column in STORED_COLUMNS]
        files.append([rel_path, size, mtime, ctime, stored])
    doc = {"kind": KIND, "schema_version": SCHEMA_VERSION, "columns": list(STORED_COLUMNS), "files": files}
    path = index_path(root)
    try:
        text = json.dumps(doc, separators=(",", ":"), allow_nan=False)
        write_bytes(path, igzip.compress(text.encode("utf-8"), compresslevel=1, mtime=0))
    except (OSError, ValueError) as error:  # a read-only download; a NaN in some header
        log.warning("%s: header index not written (%s); later commands read the headers again.", path, error)
        return None
    return path
