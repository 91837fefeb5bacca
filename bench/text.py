"""Text that came from outside (a submission, a file name, a library's error) made safe to record.

A submission controls its file names, its CSV values and, through them, the messages of the
libraries that read them. Whatever it writes is recorded as data: control characters (C0, C1,
DEL, bidirectional overrides) and lone surrogates become visible escapes such as ``\\x1b``, so
no terminal, log viewer or browser acts on them; bytes of a file name that are not UTF-8 become
``\\xNN`` escapes, so a name of any bytes can be written to JSON; absolute host paths are cut to
their last component, so no published page names the organizer's folders; and a reason is
capped, so a 60 MB CSV field stays a few hundred characters everywhere it is copied
(``run.json``, ``per_case.csv``, receipts, pages). The CLI escapes rich markup on top of this
(:func:`bench.cli.progress.shown`); HTML pages rely on Jinja2's autoescaping.
"""

import hashlib
import os
import re

REASON_MAX_CHARS = 300
"""Longest reason recorded, in characters; a longer one is cut, with a marker saying how much."""

NAME_MAX_CHARS = 200
"""Longest file name or case id recorded, in characters."""

NAME_HASH_HEX = 16
"""Hex digits of sha256 that :func:`injective_name` appends: 64 bits, so no one can search out a
second name that shares another's folder or image repository."""
_HASHED_TAIL = re.compile(rf"-[0-9a-f]{{{NAME_HASH_HEX}}}$")

_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f" + "".join(map(chr, _BIDI)) + "\ud800-\udfff]")
# an absolute path of two or more components, not part of a word or a relative path
_HOST_PATH = re.compile(r"(?<![\w.~-])(?:/[^\s/'\"():,;\[\]]+){2,}/?")


def printable(text: str) -> str:
    """``text`` with every control character and lone surrogate written as a visible escape."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def display_name(name: str | bytes) -> str:
    """A file name of any bytes as printable text: UTF-8 kept, other bytes as ``\\xNN``, capped.

    ``name`` is a ``bytes`` name or a ``str`` as ``os.listdir`` returns it (undecodable bytes
    held as surrogates, see :func:`os.fsencode`).

    >>> display_name(b"\\xff\\x1b[2J.nii.gz")
    '\\\\xff\\\\x1b[2J.nii.gz'
    """
    raw = name if isinstance(name, bytes) else os.fsencode(name)
    return cap(printable(raw.decode("utf-8", "backslashreplace")), NAME_MAX_CHARS)


def without_host_paths(text: str) -> str:
    """Absolute paths of two or more components cut to their last one.

    >>> without_host_paths("cannot read '/srv/runs/x/outputs/masks/a.nii.gz' (values 0/1)")
    "cannot read 'a.nii.gz' (values 0/1)"
    """
    return _HOST_PATH.sub(lambda match: match.group().rstrip("/").rsplit("/", 1)[-1], text)


def cap(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, the cut said at its end."""
    if len(text) <= limit:
        return text
    keep = max(0, limit - 40)  # room for the marker
    return f"{text[:keep]}... [{len(text) - keep} characters cut]"


def clean_reason(text: str, *, limit: int = REASON_MAX_CHARS) -> str:
    """A reason as recorded: host paths cut, control characters escaped, at most ``limit`` characters."""
    return cap(printable(without_host_paths(str(text))), limit)


def injective_name(text: str, *, keep: re.Pattern, unsafe: re.Pattern, strip: str = "-",
                   lower: bool = False, stem_chars: int = 44, empty: str = "x") -> str:
    """A name safe for one path component that no other ``text`` gets (a folder, a Docker repository).

    ``text`` is kept when ``keep`` matches it and it does not end like a hashed name
    (``-<16 hex>``); any other text becomes its characters with each run of ``unsafe`` ones
    replaced by ``-`` (lowercased first with ``lower``), cut to ``stem_chars`` and stripped of
    ``strip``, then ``-`` and :data:`NAME_HASH_HEX` hex digits of its sha256. Injective: a kept
    name never ends in ``-<16 hex>`` and every other one does, so a team that names itself with
    another's hashed name (``Team-A-<hash>`` beside ``Team A``) is hashed in turn; two hashed names
    meet only if their sha256 share 64 bits.
    """
    if keep.match(text) and not _HASHED_TAIL.search(text):
        return text
    stem = unsafe.sub("-", text.lower() if lower else text)[:stem_chars].strip(strip) or empty
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:NAME_HASH_HEX]
    return f"{stem}-{digest}"
