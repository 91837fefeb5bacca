"""Opaque case ids and the per-download secret salt they are keyed with.

Manifest ids name the collection (for the CT COVID task the collection *is* the label) and the
public split file lists every case's manifest id and strata, so a prepared case id is
``case-`` + 12 hex of ``HMAC-SHA256(salt, "<task>/<manifest case_id>")``: without the salt,
kept by whoever prepares (never in the input tree or the split file), an id cannot be matched
to a split-file row.
"""

import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
from pathlib import Path

from bench.errors import PrepareError

log = logging.getLogger(__name__)

#: Where the case-id salt of a download is kept by default, relative to the download root (a
#: hidden folder: `bench data index` and `bench splits verify` skip it).
SALT_PATH = Path(".ricord-bench") / "salt"


_SALT_PATTERN = re.compile(r"[0-9a-f]{32,}")


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
