"""Options shared by several commands, declared once: who an entry belongs to, your tasks folder,
the challenges and the time they are judged at."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

TasksDir = Annotated[Path | None, typer.Option(
    "--tasks-dir",
    help="Your tasks folder: splits you pin are written there, and tasks and splits are looked up "
         "there before the built-in ones (default: $BENCH_TASKS_DIR, else the user data folder, "
         "~/.local/share/ricord-bench/tasks on Linux).")]
Team = Annotated[
    str | None,
    typer.Option(
        "--team",
        help="The entry's team: required for a tarball, an image or a plain predictions folder; "
        "overrides submission.yaml.",
    ),
]
Entry = Annotated[
    str | None,
    typer.Option(
        "--entry",
        help="The entry's name within its team: required for a tarball, an image or a plain "
        "predictions folder; overrides submission.yaml's name.",
    ),
]
Interface = Annotated[
    str | None,
    typer.Option(
        "--interface",
        help="Container contract: native (reads /input/cases.json, all cases in one run) or "
        "grand-challenge (an unchanged Grand Challenge algorithm container, one run per case); "
        "overrides submission.yaml, default native.",
    ),
]
Challenges = Annotated[list[Path] | None, typer.Option(
    "--challenge",
    help="A challenge file (challenges/<name>.yaml); repeatable. The boards become its phases: per "
         "phase the runs the ledger counts, scores sealed until close where the phase says so.")]
Now = Annotated[datetime | None, typer.Option(
    "--now", formats=[UTC_FORMAT],
    help="The UTC time (yyyy-mm-ddTHH:MM:SSZ) challenge phases are judged at instead of the clock: "
         "to replay or preview a challenge, and for tests.")]


def utc(moment: datetime | None) -> datetime | None:
    """A ``--now`` value as an aware UTC time (Typer parses it without a zone)."""
    return None if moment is None else moment.replace(tzinfo=UTC)
