"""`bench withdraw` and `bench choose`: a team's decisions in a challenge phase, into the ledger."""

from pathlib import Path
from typing import Annotated

import typer

from bench.cli import app
from bench.cli.options import Now, utc
from bench.cli.progress import console, shown

ChallengeFile = Annotated[
    Path, typer.Option("--challenge", help="The challenge file (challenges/<name>.yaml).")
]
PhaseId = Annotated[str, typer.Option("--phase", help="Phase id in the challenge.")]
TeamName = Annotated[str, typer.Option("--team", help="The entry's team.")]
EntryName = Annotated[str, typer.Option("--entry", help="The entry's name within its team.")]
Results = Annotated[Path, typer.Option("--results", help="Results store root.")]


@app.command("withdraw")
def withdraw(
    challenge: ChallengeFile,
    phase: PhaseId,
    team: TeamName,
    entry: EntryName,
    results: Results = Path("results"),
    reason: Annotated[str, typer.Option("--reason", help="Why, for the ledger.")] = "",
    now: Now = None,
) -> None:
    """Withdraw an entry from a phase (recorded in the ledger; its runs stay stored)."""
    from bench.pipeline.phases import withdraw as record

    event = record(challenge, phase, team=team, entry=entry, results=results, reason=reason, now=utc(now))
    console.print(shown(f"withdrawn: {event.team} / {event.entry} from phase {event.phase} at {event.at}"))


@app.command("choose")
def choose(
    challenge: ChallengeFile,
    phase: PhaseId,
    team: TeamName,
    entry: EntryName,
    run_id: Annotated[str, typer.Option("--run", help="The run id the team wants counted.")],
    results: Results = Path("results"),
    now: Now = None,
) -> None:
    """Choose the run that counts for an entry (phases with counts: chosen)."""
    from bench.pipeline.phases import choose as record

    event = record(challenge, phase, team=team, entry=entry, run_id=run_id, results=results, now=utc(now))
    console.print(
        shown(f"chosen: run {event.run_id} for {event.team} / {event.entry} in phase {event.phase}")
    )
