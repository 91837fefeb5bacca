"""Options shared by several commands, declared once: who an entry belongs to, your tasks folder."""

from pathlib import Path
from typing import Annotated

import typer

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
