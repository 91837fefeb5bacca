"""`bench gc`: remove what killed runs, builds and prepares left behind."""

from typing import Annotated

import typer

from bench.cli import app
from bench.cli.progress import console, shown


@app.command("gc")
def gc(
    engine: Annotated[
        bool,
        typer.Option("--engine/--no-engine", help="Also remove expired labelled containers from Docker."),
    ] = True,
) -> None:
    """Remove containers, mounts and temporary folders of runs, builds and prepares that were killed."""
    from bench.runners.gc import collect_garbage

    done = collect_garbage(engine=engine)
    for line in done:
        console.print(shown(line), soft_wrap=True)
    console.print(f"{len(done)} things removed" if done else "nothing to remove")
