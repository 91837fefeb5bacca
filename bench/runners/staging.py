"""What a submission sees: a snapshot of the prepared inputs, and an empty, size-capped output folder.

The snapshot holds exactly ``cases.json``, ``task.json`` and the images ``cases.json`` lists,
world-readable (the submission runs as an unprivileged user), so nothing else that happens to
sit in the prepared folder, above all the reference, can reach the submission. The output
folder is a tmpfs of the task's output size when the harness runs as root, so a submission
that floods its output fills the tmpfs, not the host disk.

Images are hard-linked into the snapshot when they can be, so a run does not write a second
copy of every image across a shared filesystem: a link needs the same filesystem (else
EXDEV), the right to link (``fs.protected_hardlinks`` may refuse with EPERM) and a source
that already has the mode a copy would get. A link shares the original's inode, so the
harness never changes a linked file's mode: an image that is not readable by everyone, or
writable by anyone but its owner, is copied instead. The submission cannot write through a
link (``/input`` is mounted read-only and it runs as another user); removing the snapshot
removes the links only. The hash is computed from the snapshot's file, the bytes the
submission reads, whichever way it got there. What a link gives up: a prepared image rewritten
in place during a run would change under the submission. ``bench prepare`` never does that
(``--overwrite`` removes the old tree and renames the new one in, so running snapshots keep
the old inodes); nothing else should write to a prepared folder.
"""

import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench.errors import RunnerError
from bench.prepare.digest import inputs_digest
from bench.trees import remove_tree

log = logging.getLogger(__name__)

SUBMISSION_UID = 65534
_CASE_ID = re.compile(r"^[A-Za-z0-9._-]+$")
# os.link failures that mean "copy instead": another filesystem, linking not permitted
# (protected_hardlinks, some network filesystems), too many links, no hard links at all
_COPY_INSTEAD = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP, errno.ENOTSUP})


@dataclass(frozen=True)
class InputCase:
    """One case of the prepared inputs: its id and the image path relative to the input folder."""

    case_id: str
    image: str


@dataclass(frozen=True)
class PreparedInputs:
    """The container-side half of a prepared split (``OUT/input``)."""

    directory: Path
    task: str
    split: str
    cases: tuple[InputCase, ...]
    split_name: str = ""
    split_sha256: str = ""


def read_inputs(directory: str | os.PathLike) -> PreparedInputs:
    """Read ``cases.json`` of a prepared input folder (``OUT/input``, or ``OUT`` holding it).

    Raises
    ------
    RunnerError
        When ``cases.json`` is missing or malformed, a case id is not filesystem-safe or
        repeats, or an image path is absolute, escapes the folder or does not exist.
    """
    directory = Path(directory)
    if not (directory / "cases.json").is_file() and (directory / "input" / "cases.json").is_file():
        directory = directory / "input"
    path = directory / "cases.json"
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        task, split, raw_cases = body["task"], body.get("split", ""), body["cases"]
        split_name, split_sha256 = str(body.get("split_name") or ""), str(body.get("split_sha256") or "")
        cases = tuple(InputCase(str(c["case_id"]), str(c["image"])) for c in raw_cases)
    except FileNotFoundError as error:
        raise RunnerError(
            f"{directory}: no cases.json. Pass the input folder written by `bench prepare` (OUT/input)."
        ) from error
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise RunnerError(
            f"{path}: malformed ({type(error).__name__}: {error}); expected "
            '{"task": ..., "cases": [{"case_id": ..., "image": ...}]}. Re-run `bench prepare`.'
        ) from error
    seen: set[str] = set()
    for case in cases:
        if not _CASE_ID.match(case.case_id) or case.case_id in seen:
            raise RunnerError(f"{path}: case id {case.case_id!r} is repeated or not of [A-Za-z0-9._-]+.")
        seen.add(case.case_id)
        image = Path(case.image)
        if image.is_absolute() or ".." in image.parts or not (directory / image).is_file():
            raise RunnerError(
                f"{path}: case {case.case_id}: image {case.image!r} must be a relative path to "
                f"an existing file inside {directory}."
            )
    return PreparedInputs(directory=directory.resolve(), task=task, split=split, cases=cases,
                          split_name=split_name, split_sha256=split_sha256)


@dataclass(frozen=True)
class Snapshot:
    """The per-run input snapshot: its hash, and how its images got there.

    ``staging`` is ``hardlink`` when every image is a hard link to the prepared file,
    ``copy`` when every image is a private copy, ``mixed`` otherwise (e.g. some images not
    world-readable). ``linked`` and ``copied`` count images.
    """

    inputs_sha256: str
    staging: Literal["hardlink", "copy", "mixed"]
    linked: int
    copied: int


def stage_inputs(inputs: PreparedInputs, destination: Path) -> Snapshot:
    """Put cases.json, task.json and the listed images in ``destination``, world-readable.

    Each image is hard-linked when ``destination`` is on its filesystem, linking is permitted
    and the image is already readable by everyone and writable by nobody but its owner;
    otherwise it is copied and the copy made 0644. The prepared files are never modified.

    Returns
    -------
    Snapshot
        ``inputs_sha256`` is :func:`bench.prepare.digest.inputs_digest` of the snapshot (cases.json,
        task.json and each image's bytes as the submission reads them): ``run.json`` records it
        and scoring compares it with the one ``bench prepare`` put in ``reference.json``.
    """
    destination.mkdir(mode=0o755)
    # by path inside the snapshot: cases may share an image, and a file is staged once
    staged: dict[Path, tuple[str, bool]] = {}
    for name in ("cases.json", "task.json"):
        if (inputs.directory / name).is_file():
            staged[Path(name)] = (_copy(inputs.directory / name, destination / name), False)
    images, linked = [], 0
    for case in inputs.cases:
        image = Path(case.image)
        if image not in staged:
            for parent in reversed(image.parents[:-1]):
                (destination / parent).mkdir(mode=0o755, exist_ok=True)
            staged[image] = _link_or_copy(inputs.directory / image, destination / image)
        digest, is_link = staged[image]
        linked += is_link
        images.append((case.case_id, digest))
    os.chmod(destination, 0o755)
    task_json_sha256 = staged[Path("task.json")][0] if Path("task.json") in staged else None
    copied = len(images) - linked
    staging = "hardlink" if copied == 0 and linked else "copy" if linked == 0 else "mixed"
    log.info("input snapshot %s: %d images hard-linked, %d copied", destination, linked, copied)
    return Snapshot(
        inputs_sha256=inputs_digest(cases_json_sha256=staged[Path("cases.json")][0],
                                    task_json_sha256=task_json_sha256, images=images),
        staging=staging,
        linked=linked,
        copied=copied,
    )


def detach_links(directory: Path) -> int:
    """Replace every hard-linked file under ``directory`` by a private 0644 copy; return how many.

    For a submission that runs as the calling user (the process runner without bubblewrap):
    it could write to a file it owns, and through a link that would change the prepared
    original. Each copy is written beside the link and renamed over it.
    """
    detached = 0
    for path in sorted(directory.rglob("*")):
        info = path.lstat()
        if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.close(fd)
            _copy(path, Path(tmp))
            os.replace(tmp, path)
            detached += 1
    return detached


def shareable_mode(mode: int) -> bool:
    """Whether a file of ``mode`` may be hard-linked into a snapshot as it is: a regular file
    readable by everyone, writable by nobody but its owner, without setuid/setgid/sticky bits."""
    return stat.S_ISREG(mode) and mode & 0o444 == 0o444 and mode & 0o7022 == 0


def _link_or_copy(source: Path, target: Path) -> tuple[str, bool]:
    """Hard-link ``source`` to ``target`` (or copy it); return (sha256 of target's bytes, linked)."""
    try:
        os.link(source, target)
    except OSError as error:
        if error.errno not in _COPY_INSTEAD:
            raise
        log.debug("cannot hard-link %s into the snapshot (%s); copying", source, error.strerror)
        return _copy(source, target), False
    with open(os.open(target, os.O_RDONLY | os.O_NOFOLLOW), "rb") as reader:
        # the mode of the inode the submission will read, checked after linking, not before
        if shareable_mode(os.fstat(reader.fileno()).st_mode):
            return hashlib.file_digest(reader, "sha256").hexdigest(), True
    os.unlink(target)
    log.debug("%s is not world-readable or is writable by others; copying it", source)
    return _copy(source, target), False


def _copy(source: Path, target: Path) -> str:
    digest = hashlib.sha256()
    with open(source, "rb") as reader, open(target, "wb") as writer:
        while chunk := reader.read(1 << 20):
            digest.update(chunk)
            writer.write(chunk)
    os.chmod(target, 0o644)
    return digest.hexdigest()


@contextmanager
def output_area(path: Path, *, size_mb: int, entries: int) -> Iterator[bool]:
    """Create the empty ``/output`` folder at ``path``, writable by the submission's user.

    Yields True when the folder is a tmpfs of ``size_mb`` holding at most ``entries`` files,
    folders and links (``nr_inodes``; the harness runs as root and may mount), so both caps
    hold while the submission runs: past them a write fails with ENOSPC, and a submission
    that creates millions of empty files or nests folders without end stops there. False
    when the caps can only be applied afterwards (output collection reads at most the size
    and examines at most ``entries`` entries). The tmpfs is unmounted on exit, after the
    caller collected.
    """
    path.mkdir(mode=0o777)
    os.chmod(path, 0o777)
    mounted = False
    if os.geteuid() == 0 and shutil.which("mount"):
        # the tmpfs's root folder is an inode too
        options = f"size={size_mb}m,nr_inodes={entries + 1},mode=0777,nosuid,nodev,noexec"
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "bench-output", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        mounted = done.returncode == 0
        if not mounted:
            log.warning(
                "could not mount a %d MiB tmpfs on %s (%s); the output caps are applied after the run",
                size_mb,
                path,
                done.stderr.strip(),
            )
    try:
        yield mounted
    finally:
        if mounted:
            done = subprocess.run(
                ["umount", "--lazy", str(path)], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                log.warning("could not unmount the output tmpfs %s: %s", path, done.stderr.strip())


def staging_root(out_dir: Path) -> Path:
    """The path of a new private folder beside ``out_dir`` for the snapshot and the output area.

    Only named here, not created: the caller takes a lease on it first (:mod:`bench.leases`).
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # absolute: the engine reads a relative bind source as a volume name
    return out_dir.parent.resolve() / f".{out_dir.name}.stage-{secrets.token_hex(6)}"


def remove_staging(path: Path) -> None:
    """Delete a staging folder, however deep the submission nested its output; files it left included."""
    try:
        remove_tree(path)
    except FileNotFoundError:
        return
    except OSError as error:
        log.warning("could not remove the staging folder %s entirely (%s); remove it by hand", path, error)


def check_run_dir(out_dir: Path) -> None:
    """Refuse an ``--out`` that exists and is not empty: a run directory is never overwritten."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise RunnerError(
            f"{out_dir} already exists and is not empty; a run directory is written once. "
            "Choose a new --out or remove the old run."
        )
    if out_dir.is_dir():
        out_dir.rmdir()
