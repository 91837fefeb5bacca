"""Folder trees: walking one a submission wrote, and removing only what the harness wrote.

Walking and removing: ``os.walk``, ``os.fwalk`` and ``shutil.rmtree`` recurse (RecursionError
at about 1,000 nested folders on Python 3.11) and build full paths (ENAMETOOLONG past 4,096
bytes). A submission nests folders as deep as it likes, so :func:`walk_entries` and
:func:`remove_tree` keep an explicit stack of names and hold one directory descriptor at a
time, going back up through ``..`` checked against the device and inode they came from.
Symbolic links are entries like any other, never followed; a folder on another filesystem (a
mount point) is never entered.

Ownership: every tree the harness creates and may later replace (a published site, a prepared
input or reference tree) gets a marker file, :data:`MARKER`, listing what the harness wrote in
it. Before replacing such a tree the caller asks :func:`foreign_content`; a folder without the
marker, with another kind's marker, or holding anything the marker does not list (a user's
``NOTES.md``, a results store) is refused, so the harness never deletes what it did not write.

Single files given as an output (``bench data index --out manifest.csv`` and its report, an
appendix, a pinned split, a kept tarball) follow one rule: a file that already exists is
replaced only when the harness wrote it and nobody changed it since. Each folder holding such
files gets a ledger, :data:`FILES_MARKER`, with the identity (inode, size, modification time)
of each file the harness wrote there (:func:`record_files`); :func:`foreign_files` names every
existing target the ledger does not vouch for, and the caller refuses before writing anything.
"""

import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.errors import OutputExistsError
from bench.io import SCHEMA_VERSION, write_json

MARKER = ".ricord-bench-tree.json"
"""Name of the marker file :func:`mark_tree` writes at the root of a tree the harness created."""
FILES_MARKER = ".ricord-bench-files.json"
"""Name of the ledger of single output files the harness wrote in a folder (:func:`record_files`)."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Entry:
    """One entry below a walked root: its path components (names as ``os.listdir`` gives them) and lstat."""

    parts: tuple[str, ...]
    info: os.stat_result

    @property
    def relative(self) -> str:
        """The path relative to the root, ``/``-separated (undecodable bytes held as surrogates)."""
        return "/".join(self.parts)


class _Cursor:
    """One open directory descriptor that moves down into a child folder and back up to its parent."""

    def __init__(self, root: str | os.PathLike):
        self.fd = os.open(root, _DIR_FLAGS)
        self.trail = [os.fstat(self.fd)]

    def down(self, name: str) -> bool:
        """Enter the child folder ``name``; False (staying put) when it is gone, on another
        filesystem, or may not be opened (a submission's folder of mode 000, seen by a harness
        that is not root)."""
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=self.fd)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return False
        info = os.fstat(child)
        if info.st_dev != self.trail[0].st_dev:
            os.close(child)
            return False
        os.close(self.fd)
        self.fd = child
        self.trail.append(info)
        return True

    def up(self) -> None:
        """Go back to the parent folder, refusing to go on when it is not the one we came from."""
        parent = os.open("..", _DIR_FLAGS, dir_fd=self.fd)
        info, expected = os.fstat(parent), self.trail[-2]
        os.close(self.fd)
        self.fd = parent
        self.trail.pop()
        if (info.st_dev, info.st_ino) != (expected.st_dev, expected.st_ino):
            raise OSError(f"a folder was moved while it was walked (expected inode {expected.st_ino})")

    def close(self) -> None:
        os.close(self.fd)


def walk_entries(root: str | os.PathLike, *, limit: int | None = None) -> Iterator[Entry]:
    """Every entry below ``root``, depth first, names sorted within a folder, a folder before its content.

    Never follows a link and never enters another filesystem; any depth, one descriptor open.
    An entry that disappears during the walk is skipped; a folder that may not be opened is
    listed but not entered. With ``limit``, at most that many
    entries are yielded and at most that many names are ever read (a folder of millions of
    names costs no more than ``limit`` of them): memory and time are bounded by ``limit``.
    Within a folder that holds more names than are left to read, the names come in the
    filesystem's order, not sorted.
    """
    cursor = _Cursor(root)
    left = limit
    try:
        pending: list[list[str]] = [_names(cursor.fd, left)]
        parts: list[str] = []
        while pending:
            if not pending[-1]:
                pending.pop()
                if parts:
                    parts.pop()
                    cursor.up()
                continue
            name = pending[-1].pop()
            try:
                info = os.stat(name, dir_fd=cursor.fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if left is not None:
                if left == 0:
                    return
                left -= 1
            yield Entry((*parts, name), info)
            if stat.S_ISDIR(info.st_mode) and cursor.down(name):
                parts.append(name)
                pending.append(_names(cursor.fd, left))
    finally:
        cursor.close()


def _names(fd: int, most: int | None = None) -> list[str]:
    """The names in a folder (at most ``most`` of them), in reverse order so that ``pop()`` yields them
    sorted."""
    if most is None:
        return sorted(os.listdir(fd), reverse=True)
    names = []
    with os.scandir(fd) as listing:
        for entry in listing:
            if len(names) >= most:
                break
            names.append(entry.name)
    return sorted(names, reverse=True)


def remove_tree(root: str | os.PathLike) -> None:
    """Delete ``root`` and everything below it, however deep; links are removed, never followed.

    Raises
    ------
    OSError
        When something cannot be removed (a mount point inside ``root``, a permission); what
        could be removed is gone.
    """
    cursor = _Cursor(root)
    try:
        entered: list[str] = []
        while True:
            child = None
            for name in os.listdir(cursor.fd):
                info = os.stat(name, dir_fd=cursor.fd, follow_symlinks=False)
                if not stat.S_ISDIR(info.st_mode):
                    os.unlink(name, dir_fd=cursor.fd)
                elif child is None:
                    child = name
            if child is not None:
                if not cursor.down(child) and not (_own_locked(cursor.fd, child) and cursor.down(child)):
                    raise OSError(f"{Path(root, *entered, child)} is a mount point, vanished or may not be "
                                  "opened; not removed")
                entered.append(child)
            elif entered:
                cursor.up()
                os.rmdir(entered.pop(), dir_fd=cursor.fd)
            else:
                break
    finally:
        cursor.close()
    os.rmdir(root)


def _own_locked(fd: int, name: str) -> bool:
    """Give a folder this process owns but may not open (mode 000, say) back its owner's rights;
    True when that was done. A submission run as the harness's own user can lock it so."""
    # O_PATH needs no right on the folder and pins its inode: the chmod cannot be sent through
    # a symlink swapped in after the check
    try:
        pinned = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
    except OSError:  # vanished, or not a folder
        return False
    try:
        info = os.fstat(pinned)
        if info.st_uid != os.geteuid():
            return False
        os.chmod(f"/proc/self/fd/{pinned}", stat.S_IMODE(info.st_mode) | stat.S_IRWXU)
    finally:
        os.close(pinned)
    return True


def mark_tree(root: str | os.PathLike, kind: str) -> Path:
    """Write the marker at ``root``: the tree is of ``kind`` and holds exactly what is there now.

    Call it last, when every file of the tree is written (the marker lists them).
    """
    root = Path(root)
    entries = sorted(entry.relative for entry in walk_entries(root) if entry.parts != (MARKER,))
    return write_json(root / MARKER, {"schema_version": SCHEMA_VERSION, "kind": kind, "entries": entries})


def foreign_content(root: str | os.PathLike, kind: str, *, kept: tuple[str, ...] = ()) -> str | None:
    """Why ``root`` is not a tree of ``kind`` the harness wrote, or None when it is (or does not exist).

    An empty folder is not foreign, nor one holding only files named in ``kept`` (top-level
    files the caller carries into the new tree, such as a repository's README). Otherwise the
    folder needs :data:`MARKER` of ``kind`` and nothing in it the marker does not list.
    """
    root = Path(root)
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        return f"{root} is not a folder"
    if not root.exists() or all(path.name in kept and path.is_file() for path in root.iterdir()):
        return None
    try:
        marker = json.loads((root / MARKER).read_text(encoding="utf-8"))
        listed, marked_kind = set(marker["entries"]), marker["kind"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{root} holds files but no readable {MARKER}, so ricord-bench did not create it"
    if marked_kind != kind:
        return f"{root} was created by ricord-bench as a {marked_kind}, not a {kind}"
    for entry in walk_entries(root):
        if entry.parts != (MARKER,) and entry.relative not in listed and entry.relative not in kept:
            return f"{root} holds {entry.relative!r}, which ricord-bench did not write there"
    return None


def publish_modes(root: str | os.PathLike, *, folders: int = 0o755, files: int = 0o644) -> None:
    """Give every folder of ``root`` (itself included) mode ``folders`` and every file ``files``.

    For trees served or read by another user (a web server, an unprivileged container): a
    temporary folder is created 0700 and an atomic write follows the umask, neither of which
    such a reader can use. Links are left alone.
    """
    os.chmod(root, folders)
    for entry in walk_entries(root):
        mode = entry.info.st_mode
        if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
            os.chmod(Path(root, *entry.parts), folders if stat.S_ISDIR(mode) else files)


def _identity(info: os.stat_result) -> list[int]:
    return [info.st_ino, info.st_size, info.st_mtime_ns]


def _ledger(folder: Path) -> dict:
    try:
        body = json.loads((folder / FILES_MARKER).read_text(encoding="utf-8"))
        files = body["files"]
        return files if isinstance(files, dict) else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def foreign_files(paths) -> list[str]:
    """Why each of ``paths`` may not be replaced: one line per existing path the harness did not write.

    A path that does not exist is free. An existing regular file is free when its folder's
    :data:`FILES_MARKER` lists it with the identity it has now (the harness wrote it and it was
    not changed since); anything else (a user's file, a file edited after the harness wrote it,
    a folder, a link) is named.
    """
    problems = []
    for path in map(Path, paths):
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(info.st_mode):
            problems.append(f"{path} exists and is not a regular file")
        elif _ledger(path.parent).get(path.name) != _identity(info):
            problems.append(f"{path} exists and ricord-bench did not write it (or it changed since)")
    return problems


def claim_files(paths, *, option: str = "--out") -> None:
    """Refuse, before anything is written, when any of ``paths`` may not be replaced (:func:`foreign_files`).

    Raises
    ------
    OutputExistsError
        Naming every such path and what to do.
    """
    problems = foreign_files(paths)
    if problems:
        raise OutputExistsError(
            f"{'; '.join(problems)}. ricord-bench replaces only files it wrote (listed in "
            f"{FILES_MARKER} beside them); choose another {option}, or move that file away first."
        )


def record_files(paths) -> None:
    """Add each written file of ``paths`` to its folder's :data:`FILES_MARKER` (call right after writing)."""
    by_folder: dict[Path, list[Path]] = {}
    for path in map(Path, paths):
        by_folder.setdefault(path.parent, []).append(path)
    for folder, written in by_folder.items():
        files = _ledger(folder)
        files.update({path.name: _identity(path.lstat()) for path in written})
        files = {name: identity for name, identity in files.items() if (folder / name).is_file()}
        write_json(folder / FILES_MARKER, {"schema_version": SCHEMA_VERSION, "files": files})
