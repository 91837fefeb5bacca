"""Options shared by several commands, declared once."""

from pathlib import Path
from typing import Annotated

import typer

TasksDir = Annotated[Path | None, typer.Option(
    "--tasks-dir",
    help="Your tasks folder: splits you pin are written there, and tasks and splits are looked up "
         "there before the built-in ones (default: $BENCH_TASKS_DIR, else the user data folder, "
         "~/.local/share/ricord-bench/tasks on Linux).")]
