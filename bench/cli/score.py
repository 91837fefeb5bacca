"""`bench score`, `bench evaluate`, `bench rescore` and `bench demo`: parse, call one function, print."""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bench.cli import app
from bench.cli.options import Challenges, Entry, Interface, Now, TasksDir, Team, utc
from bench.cli.progress import progress_bar, shown

console = Console()

Workers = Annotated[
    int | None,
    typer.Option("--workers", "-j", min=1, help="Local processes for per-case scoring (default: all cores)."),
]
Scheduler = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        envvar="BENCH_SCHEDULER",
        help="dask.distributed scheduler address, e.g. tcp://host:8786.",
    ),
]


@app.command("score")
def score(
    task: Annotated[str, typer.Option("--task", help="Task id or a task.yaml path.")],
    predictions: Annotated[
        Path,
        typer.Option(
            "--predictions",
            help="A run directory from `bench run`, or predictions made elsewhere (self-reported): a "
            "folder of <case_id>.nii.gz masks, or a predictions.csv.",
        ),
    ],
    reference: Annotated[
        Path, typer.Option("--reference", help="<prepared>/reference from `bench prepare`.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Results store root.")] = Path("results"),
    team: Team = None,
    entry: Entry = None,
    workers: Workers = None,
    scheduler: Scheduler = None,
    tasks_dir: TasksDir = None,
) -> None:
    """Score predictions against a reference and store per-case scores, aggregates and a receipt."""
    from bench.scoring.predictions import score_predictions_and_store
    from bench.tasks import load_task

    spec = load_task(task, directory=tasks_dir)
    with progress_bar(f"scoring {spec.id}") as progress:
        stored = score_predictions_and_store(
            spec,
            predictions,
            reference,
            results=out,
            team=team,
            entry=entry,
            workers=workers,
            scheduler=scheduler,
            progress=progress,
            tasks_dir=tasks_dir,
        )
    _print_stored(stored)


@app.command("evaluate")
def evaluate(
    submission: Annotated[
        Path, typer.Argument(help="Submission directory (submission.yaml), image tarball or image name.")
    ],
    root: Annotated[Path, typer.Option("--root", help="The RICORD download (or synthetic collection).")],
    task: Annotated[str | None, typer.Option("--task", help="Task id (not with --challenge).")] = None,
    team: Team = None,
    entry: Entry = None,
    interface: Interface = None,
    challenge: Annotated[
        Path | None,
        typer.Option("--challenge", help="A challenge file: enforce its phase rules, log the attempt."),
    ] = None,
    phase: Annotated[str | None, typer.Option("--phase", help="Phase id of --challenge.")] = None,
    name: Annotated[
        str, typer.Option("--name", help="Pinned split name (<id>/splits/<name>.json).")
    ] = "synthetic",
    split: Annotated[str, typer.Option("--split", help="validation or test.")] = "test",
    runner: Annotated[str, typer.Option("--runner", help="docker or process.")] = "docker",
    results: Annotated[Path, typer.Option("--results", help="Results store root.")] = Path("results"),
    work: Annotated[
        Path | None,
        typer.Option("--work", help="Prepared splits and run outputs (default: <results>/.work)."),
    ] = None,
    workers: Workers = None,
    scheduler: Scheduler = None,
    tasks_dir: TasksDir = None,
    now: Now = None,
) -> None:
    """Prepare (cached), run, score and store one submission: what an organizer runs per entry.

    With --challenge and --phase, the phase decides the task and split and its window and limits
    are enforced; every attempt, refused or not, goes into <results>/ledger.jsonl.
    """
    from bench.pipeline.evaluate import evaluate as evaluate_submission
    from bench.tasks import load_task

    if (challenge is None) != (phase is None) or (challenge is None) == (task is None):
        raise typer.BadParameter("give --task, or --challenge with --phase (the phase names the task)")
    if now is not None and challenge is None:
        raise typer.BadParameter("--now judges a challenge phase: give it with --challenge and --phase")
    if challenge is not None:
        from bench.pipeline.phases import evaluate_in_phase

        with progress_bar(f"evaluating in phase {phase}") as progress:
            report = evaluate_in_phase(challenge, phase, submission, root=root, results=results, team=team,
                                       entry=entry, runner=runner, work=work, workers=workers,
                                       scheduler=scheduler, progress=progress, now=utc(now),
                                       interface=interface)
        from bench.challenges import load_challenge, utc_now

        rules = load_challenge(challenge).phase(phase)
        _print_stored(report.stored, sealed=None if rules.scores_visible(utc(now) or utc_now()) else rules)
        return
    spec = load_task(task, directory=tasks_dir)
    with progress_bar(f"evaluating on {spec.id}") as progress:
        report = evaluate_submission(
            submission,
            spec,
            root=root,
            team=team,
            entry=entry,
            name=name,
            split=split,
            runner=runner,
            results=results,
            work=work,
            workers=workers,
            scheduler=scheduler,
            progress=progress,
            tasks_dir=tasks_dir,
            interface=interface,
        )
    _print_stored(report.stored)
    console.print(f"prepare {report.prepare_s:.1f} s, run {report.run_s:.1f} s, score {report.score_s:.1f} s")


@app.command("rescore")
def rescore(
    results: Annotated[Path, typer.Option("--results", help="Results store root.")] = Path("results"),
    workers: Workers = None,
    scheduler: Scheduler = None,
    tasks_dir: TasksDir = None,
    challenge: Challenges = None,
) -> None:
    """Recompute every stored run with this harness; print any score or rank that changed.

    With --challenge, ranks are those of the challenge's phase boards (the runs the ledger counts).
    """
    from bench.pipeline.rescore import rescore_store

    with progress_bar("rescoring") as progress:
        report = rescore_store(results, workers=workers, scheduler=scheduler, progress=progress,
                               tasks_dir=tasks_dir, challenges=challenge or ())
    for entry, reason in report.skipped:
        console.print(f"[yellow]skipped[/] {shown(entry)}: {shown(reason)}")
    if not report.changes:
        console.print(f"[green]no changes[/] in {report.checked} stored run(s).")
        return
    table = Table(title=shown(f"{len(report.changes)} change(s) in {report.checked} stored run(s)"))
    for column in ("task", "submission", "run", "what", "stored", "now"):
        table.add_column(column, overflow="fold")
    for change in report.changes:
        table.add_row(*(shown(value) for value in (change.task, change.submission, change.run_id,
                                                    change.what, change.stored, change.now)))
    console.print(table)
    raise typer.Exit(1)


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option("--out", help="Where the collection, store and site go.")] = Path(
        "demo"
    ),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic collection.")] = 0,
    runner: Annotated[str, typer.Option("--runner", help="auto, docker or process.")] = "auto",
    workers: Workers = None,
    leaderboard: Annotated[Path | None, typer.Option(
        "--leaderboard", help="Folder for the site (default: OUT/leaderboard).")] = None,
    tasks_dir: TasksDir = None,
) -> None:
    """Synthesize, index, verify splits, prepare, run every reference submission, score, publish."""
    from bench.pipeline.demo import run_demo

    with progress_bar("demo") as progress:
        report = run_demo(out, seed=seed, runner=runner, workers=workers, leaderboard=leaderboard,
                          tasks_dir=tasks_dir, progress=progress)
    for task, pinned in report.splits.items():
        if pinned["action"] == "pinned":
            console.print(shown(f"pinned {task} split {report.split_name}: {pinned['path']}"), soft_wrap=True)
    console.print(f"runner: [bold]{shown(report.runner)}[/] ({shown(report.runner_reason)})")
    for line in report.timings():
        console.print(shown(line), soft_wrap=True)
    console.print(shown(f"leaderboard: {report.index_html}"), soft_wrap=True)


def _print_stored(stored, sealed=None) -> None:
    """The stored run's scores, counts and provenance; with ``sealed`` (a challenge phase whose
    scores are published at its close) no score, only that the run is stored."""
    scores = stored.scores
    if sealed is not None:
        console.print(shown(f"scored: {stored.task} / {stored.entry} / {stored.run_id}. The scores of phase "
                            f"{sealed.id} are sealed until it closes on {sealed.closes.isoformat()}."),
                      soft_wrap=True)
    else:
        _print_scores(stored)
    counts = scores["counts"]
    console.print(
        ", ".join(f"{key} {counts[key]}" for key in ("cases", "ok", "missing", "malformed", "error"))
    )
    if stored.self_reported:
        console.print("[yellow]self-reported[/]: predictions made outside the harness (no image, no limits)")
    split = f"split {stored.split_name}/{stored.split} sha256 {stored.split_sha256}"
    console.print(shown(split), soft_wrap=True)
    console.print(shown(f"task {stored.task} sha256 {stored.task_sha256}"), soft_wrap=True)
    console.print(shown(f"stored: {stored.path}"), soft_wrap=True)


def _print_scores(stored) -> None:
    scores = stored.scores
    table = Table(title=shown(f"{stored.task} / {stored.entry} / {stored.run_id}"))
    for column in ("metric", "value", "95% CI"):
        table.add_column(column)
    for key, entry in scores["metrics"].items():
        value = entry.get("value")
        if not isinstance(value, int | float):
            continue
        low, high = entry.get("ci_low"), entry.get("ci_high")
        interval = (
            f"[{low:.4g}, {high:.4g}]"
            if isinstance(low, int | float) and isinstance(high, int | float)
            else ""
        )
        marker = " (primary)" if key == scores["primary_metric"] else ""
        table.add_row(shown(key + marker), f"{value:.4g}", shown(interval))
    console.print(table)
