"""`bench report`: the reporting appendix (BIAS, CLAIM 2024, TRIPOD+AI) of a task, in Markdown and HTML."""

from pathlib import Path
from typing import Annotated

import typer

from bench.cli import app
from bench.cli.progress import console, shown


@app.command("report")
def report(
    task: Annotated[str, typer.Option("--task", help="Task id, e.g. ricord-1a-lesion-seg.")],
    name: Annotated[str, typer.Option("--name", help="Pinned split name, e.g. synthetic or tcia.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for appendix.md and appendix.html.")],
    results: Annotated[Path | None, typer.Option("--results", help="Results store whose receipts to cite "
                                                 "(submissions, image digests).")] = None,
    tasks_dir: Annotated[Path | None, typer.Option(
        "--tasks-dir", help="Folder of task definitions "
                            "(default: $BENCH_TASKS_DIR or the built-in tasks).")] = None,
) -> None:
    """Write the task's reporting appendix: every item the harness knows filled, the rest marked missing."""
    from bench.leaderboard.appendix import build_appendix, write_appendix
    from bench.tasks import load_task

    appendix = build_appendix(load_task(task, directory=tasks_dir), name=name, results=results,
                              directory=tasks_dir)
    markdown, html = write_appendix(appendix, out)
    console.print(shown(f"{len(appendix.items) - len(appendix.missing)} of {len(appendix.items)} "
                        "items filled; "
                        f"{len(appendix.missing)} missing, for the organizer to add"))
    for item in appendix.missing:
        console.print(shown(f"  missing: {item.checklist}: {item.topic}"))
    console.print(shown(str(markdown.resolve())), soft_wrap=True)
    console.print(shown(str(html.resolve())), soft_wrap=True)
