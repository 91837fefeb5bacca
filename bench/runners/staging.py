"""What a submission sees: a snapshot of the prepared inputs, and an empty, size-capped output folder.

The snapshot holds exactly ``cases.json``, ``task.json`` and the images ``cases.json`` lists,
world-readable (the submission runs as an unprivileged user), so nothing else that happens to
sit in the prepared folder, above all the reference, can reach the submission. The output
folder is a tmpfs of the task's output size when the harness runs as root, so a submission
that floods its output fills the tmpfs, not the host disk.
"""

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.errors import RunnerError
from bench.io import sha256_json

log = logging.getLogger(__name__)

SUBMISSION_UID = 65534
_CASE_ID = re.compile(r"^[A-Za-z0-9._-]+$")


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
    return PreparedInputs(directory=directory.resolve(), task=task, split=split, cases=cases)


def snapshot_inputs(inputs: PreparedInputs, destination: Path) -> str:
    """Copy cases.json, task.json and the listed images to ``destination``, world-readable.

    Returns the inputs hash: sha256 over the case ids with the sha256 of each image's bytes
    and of task.json, the value ``run.json`` records as ``inputs_sha256``.
    """
    destination.mkdir(mode=0o755)
    digests = {}
    for name in ("cases.json", "task.json"):
        if (inputs.directory / name).is_file():
            digests[name] = _copy(inputs.directory / name, destination / name)
    images = []
    for case in inputs.cases:
        target = destination / case.image
        for parent in reversed(target.relative_to(destination).parents[:-1]):
            (destination / parent).mkdir(mode=0o755, exist_ok=True)
        images.append({"case_id": case.case_id, "image_sha256": _copy(inputs.directory / case.image, target)})
    os.chmod(destination, 0o755)
    return sha256_json({"task_json_sha256": digests.get("task.json"), "cases": images})


def _copy(source: Path, target: Path) -> str:
    digest = hashlib.sha256()
    with open(source, "rb") as reader, open(target, "wb") as writer:
        while chunk := reader.read(1 << 20):
            digest.update(chunk)
            writer.write(chunk)
    os.chmod(target, 0o644)
    return digest.hexdigest()


@contextmanager
def output_area(path: Path, *, size_mb: int) -> Iterator[bool]:
    """Create the empty ``/output`` folder at ``path``, writable by the submission's user.

    Yields True when the folder is a tmpfs of ``size_mb`` (the harness runs as root and may
    mount), so the cap holds while the submission runs; False when the cap can only be
    checked afterwards. The tmpfs is unmounted on exit, after the caller collected.
    """
    path.mkdir(mode=0o777)
    os.chmod(path, 0o777)
    mounted = False
    if os.geteuid() == 0 and shutil.which("mount"):
        options = f"size={size_mb}m,mode=0777,nosuid,nodev,noexec"
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "bench-output", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        mounted = done.returncode == 0
        if not mounted:
            log.warning(
                "could not mount a %d MiB tmpfs on %s (%s); the output cap is checked after the run",
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
    """A private folder beside ``out_dir`` for the snapshot and the output area."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # absolute: the engine reads a relative bind source as a volume name
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.stage-", dir=out_dir.parent)).resolve()


def remove_staging(path: Path) -> None:
    """Delete a staging folder; files the submission left (owned by another uid) included."""
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        log.warning("could not remove the staging folder %s entirely; remove it by hand", path)


def check_run_dir(out_dir: Path) -> None:
    """Refuse an ``--out`` that exists and is not empty: a run directory is never overwritten."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise RunnerError(
            f"{out_dir} already exists and is not empty; a run directory is written once. "
            "Choose a new --out or remove the old run."
        )
    if out_dir.is_dir():
        out_dir.rmdir()
