"""The digest of a prepared input tree: what binds a run to the preparation it ran on.

``bench prepare`` records it in ``reference.json`` (``inputs_sha256``), the runner computes it
again from the snapshot the submission actually read and records it in ``run.json``, and scoring
refuses a run whose digest differs from its reference's: a run on another preparation (another
salt, so other case ids; another download; other images) cannot be scored against this one.
It covers ``cases.json`` (which names the task, the split and the split's sha256), ``task.json``
and the bytes of every image ``cases.json`` lists.
"""

import hashlib
import json
from pathlib import Path

from bench.io import sha256_json


def inputs_digest(*, cases_json_sha256: str, task_json_sha256: str | None,
                  images: list[tuple[str, str]]) -> str:
    """sha256 over the two JSON files' hashes and ``(case_id, image sha256)`` in ``cases.json`` order."""
    return sha256_json({
        "cases_json_sha256": cases_json_sha256,
        "task_json_sha256": task_json_sha256,
        "cases": [{"case_id": case_id, "image_sha256": digest} for case_id, digest in images],
    })


def input_tree_digest(directory: Path) -> str:
    """:func:`inputs_digest` of a prepared ``input/`` folder, reading every listed file once."""
    cases = json.loads((directory / "cases.json").read_text(encoding="utf-8"))["cases"]
    task_json = directory / "task.json"
    return inputs_digest(
        cases_json_sha256=file_sha256(directory / "cases.json"),
        task_json_sha256=file_sha256(task_json) if task_json.is_file() else None,
        images=[(str(case["case_id"]), file_sha256(directory / case["image"])) for case in cases],
    )


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
