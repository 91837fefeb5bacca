"""`bench splits pin | verify | show`: pinned, citable splits (see docs/splits.md)."""

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bench.cli import app
from bench.cli.options import TasksDir
from bench.cli.progress import console, progress_bar, shown
from bench.text import printable

splits_app = typer.Typer(help="Pin, verify and show the train / validation / test splits of a task.",
                         no_args_is_help=True)
app.add_typer(splits_app, name="splits")

Task = Annotated[str, typer.Option("--task", help="Task id, e.g. ricord-1a-lesion-seg.")]
Name = Annotated[str, typer.Option("--name", help="Pinned split name, one per download: synthetic, tcia...")]
Root = Annotated[Path, typer.Option("--root", help="Root of the RICORD download (or of `bench data synth`).")]
Annotations = Annotated[list[Path] | None, typer.Option(
    "--annotations", help="MD.ai export JSON file or folder (repeatable; default ROOT/annotations/*.json).")]
Workers = Annotated[int | None, typer.Option(
    "--workers", "-j", min=1,
    help="Local processes for pixel hashing (default: this process below 1 GiB of DICOM, else all cores).")]
Scheduler = Annotated[str | None, typer.Option(
    "--scheduler", envvar="BENCH_SCHEDULER",
    help="dask.distributed scheduler address, e.g. tcp://host:8786 (workers must see ROOT).")]


@splits_app.command("pin")
def pin(task: Task, name: Name,
        root: Annotated[Path | None, typer.Option(
            "--root", help="Root of the RICORD download (or of `bench data synth`).")] = None,
        manifest: Annotated[Path | None, typer.Option(
            "--manifest", help="Manifest CSV from `bench data index`.")] = None,
        annotations: Annotations = None,
        clinical: Annotated[list[Path] | None, typer.Option(
            "--clinical",
            help="With --from-export: sheet(s) mapping study UID -> Anon MRN (repeatable).")] = None,
        from_export: Annotated[bool, typer.Option(
            "--from-export", help="Pin from the MD.ai export and the clinical sheet alone; pixel "
            "fingerprints pending until --complete.")] = False,
        complete: Annotated[bool, typer.Option(
            "--complete", help="Write <name>.lock.json (series and pixel fingerprints) for a split pinned "
            "with --from-export; its sha256 does not change.")] = False,
        workers: Workers = None, scheduler: Scheduler = None, tasks_dir: TasksDir = None) -> None:
    """Assign patients to splits, fingerprint every case and write <task>/splits/<name>.json in your
    tasks folder."""
    from bench.splits.pin import pin_split
    from bench.splits.publish import complete_split, pin_from_export
    from bench.tasks import load_task

    spec = load_task(task, directory=tasks_dir)
    if from_export:
        if complete or root or manifest:
            raise typer.BadParameter("--from-export reads --annotations and --clinical only (no --root, "
                                     "--manifest or --complete).")
        split = pin_from_export(spec, name=name, annotations=annotations or (), clinical=clinical or (),
                                directory=tasks_dir)
    else:
        if root is None or manifest is None:
            raise typer.BadParameter("give --manifest and --root (or --from-export with --annotations and "
                                     "--clinical).")
        with progress_bar("pinning") as progress:
            if complete:
                split = complete_split(spec, name=name, manifest=manifest, root=root,
                                       annotations=annotations or (), progress=progress, workers=workers,
                                       scheduler=scheduler, directory=tasks_dir)
            else:
                split = pin_split(spec, manifest, root=root, name=name, annotations=annotations or (),
                                  progress=progress, workers=workers, scheduler=scheduler,
                                  directory=tasks_dir)
    counts = {s: len(split.cases(s)) for s in ("train", "validation", "test")}
    console.print(f"[bold]{shown(split.path)}[/]: {len(split.records)} cases "
                  + ", ".join(f"{s} {n}" for s, n in counts.items()))
    if not split.complete:
        console.print("pixel fingerprints pending: complete with "
                      "`bench splits pin --complete --manifest M --root R`")
    elif split.lock_sha256:
        typer.echo(f"lock sha256:{split.lock_sha256}")
    typer.echo(f"split sha256:{split.sha256}")


@splits_app.command("verify")
def verify(task: Task, name: Name, root: Root, annotations: Annotations = None, workers: Workers = None,
           scheduler: Scheduler = None, tasks_dir: TasksDir = None) -> None:
    """Recompute every case's fingerprint from a download; exit 1 on any missing or changed case."""
    from bench.splits.pinned import load_split
    from bench.splits.verify import verify_split

    split = load_split(task, name, directory=tasks_dir)
    with progress_bar("verifying") as progress:
        report = verify_split(split, root=root, annotations=annotations or (), progress=progress,
                              workers=workers, scheduler=scheduler)
    if report.mismatches:
        table = Table("case_id", "split", "status", title=shown(f"{task}/{name}: cases that do not match"))
        for check in report.mismatches:
            table.add_row(shown(check.case_id), shown(check.split), shown(check.label))
        console.print(table)
    summary = ", ".join(f"{label} {n}" for label, n in report.counts().items())
    typer.echo(printable(f"{task}/{name} sha256:{split.sha256}: {len(report.checks)} cases: {summary}"))
    if not report.pixels_checked:
        typer.echo("annotations checked; pixels not: the split has no lock file yet (`bench splits pin "
                   "--complete`)")
    if not report.ok:
        raise typer.Exit(1)


@splits_app.command("show")
def show(task: Task, name: Name, tasks_dir: TasksDir = None) -> None:
    """Print cases and patients per split x strata, and confirm that no patient is in two splits."""
    from bench.splits.pinned import load_split
    from bench.splits.verify import summarize_split

    summary = summarize_split(load_split(task, name, directory=tasks_dir))
    console.print(_table(summary.counts, shown(f"{task}/{name}: cases and patients per split x strata")))
    console.print(_table(summary.totals, "per split"))
    typer.echo(f"split sha256:{summary.sha256}")
    if summary.leaked_patients:
        leaked = ", ".join(summary.leaked_patients)
        typer.echo(printable(f"LEAKAGE: patients in more than one split: {leaked}"))
        raise typer.Exit(1)
    patients = summary.totals["patients"].sum()
    typer.echo(f"no patient leakage: each of {patients} patients is in exactly one split")


def _table(frame, title: str) -> Table:
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(shown(column), justify="right" if column in ("cases", "patients") else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*(shown(value) for value in row))
    return table
