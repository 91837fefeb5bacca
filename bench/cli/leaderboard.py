"""`bench leaderboard build`: the static leaderboard site from the results store."""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bench.cli import app
from bench.cli.options import Challenges, Now, TasksDir, utc
from bench.cli.progress import progress_bar, shown

leaderboard_app = typer.Typer(help="Build the static leaderboard from the results store.",
                              no_args_is_help=True)
app.add_typer(leaderboard_app, name="leaderboard")


@leaderboard_app.command("build")
def build(
    results: Annotated[Path, typer.Option("--results", help="Root of the results store.")] = Path("results"),
    out: Annotated[Path, typer.Option("--out", help="Folder for the site (replaced when it is a previous "
                                      "leaderboard).")] = Path("leaderboard"),
    tasks_dir: TasksDir = None,
    challenge: Challenges = None,
    now: Now = None,
    prepared: Annotated[list[Path] | None, typer.Option(
        "--prepared", help="Where else to find the prepared splits the case galleries of shown splits "
                           "are drawn from: a prepared split (OUT of bench prepare) or a folder holding "
                           "several (e.g. <work>/prepared); repeatable. Each receipt's recorded place is "
                           "tried first; a tree is used only when its hash matches.")] = None,
    runs: Annotated[list[Path] | None, typer.Option(
        "--runs", help="Where else to find the run folders (run.json + outputs/) holding the predictions "
                       "drawn in the galleries (e.g. <work>/runs); repeatable.")] = None,
) -> None:
    """Rank every task's entries and write the site (HTML, SVG plots, leaderboard.json, CSVs).

    With --challenge, the site holds the challenge's phases (see docs/challenges.md).
    """
    with progress_bar("leaderboard") as progress:
        from bench.leaderboard import build_leaderboard  # imported here: matplotlib is slow to load

        report = build_leaderboard(results, out, tasks_dir=tasks_dir, progress=progress,
                                   challenges=challenge or (), now=utc(now), prepared_dirs=prepared or (),
                                   run_dirs=runs or ())
    console = Console()
    console.print(f"{len(report.tasks)} task(s), {report.boards} board(s), {report.entries} ranked entr"
                  f"{'y' if report.entries == 1 else 'ies'}")
    for _path, message in report.skipped:
        console.print(f"[yellow]warning:[/yellow] skipped an unreadable run: {shown(message)}",
                      soft_wrap=True, highlight=False)
    console.print(shown(report.index.resolve()), soft_wrap=True)
