"""`bench cite`: the citation block and BibTeX of a scored result, or of a task and pinned split."""

from pathlib import Path
from typing import Annotated

import typer

from bench.cli import app
from bench.cli.options import TasksDir


@app.command("cite")
def cite(
    result: Annotated[
        Path | None,
        typer.Argument(
            help="A stored result folder (holding receipt.json), e.g. results/<task>/<entry>/<run>."),
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="Task id, to cite a pinned split instead.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Pinned split name (with --task).")] = None,
    split: Annotated[
        str | None, typer.Option("--split", help="train, validation or test (with --task).")] = None,
    bibtex: Annotated[
        bool, typer.Option("--bibtex/--no-bibtex", help="Print the BibTeX entries too.")] = True,
    tasks_dir: TasksDir = None,
) -> None:
    """Print split sha256, task spec sha256, harness version and git revision, metrics, and BibTeX."""
    from bench.splits.citation import cite_result, cite_split
    from bench.tasks import load_task

    if (result is None) == (task is None):
        raise typer.BadParameter("pass either a result folder or --task with --name, not both.")
    if result is not None:
        citation = cite_result(result, directory=tasks_dir)
    else:
        if name is None:
            raise typer.BadParameter("--task needs --name (the pinned split, e.g. tcia or synthetic).")
        citation = cite_split(load_task(task, directory=tasks_dir), name, split, directory=tasks_dir)
    typer.echo(citation.text())
    if bibtex:
        typer.echo("")
        typer.echo(citation.bibtex())
