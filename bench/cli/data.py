"""`bench data synth|index`: write the synthetic collection; index a download into a manifest."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bench.cli import app
from bench.cli.progress import progress_bar, shown

data_app = typer.Typer(help="RICORD data: synthesize a collection, index a download.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()


@data_app.command("synth")
def synth_command(
    out: Annotated[Path, typer.Option("--out", help="Output folder (must not exist or be empty).")],
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same seed writes byte-identical files.")] = 0,
    size: Annotated[
        str, typer.Option("--size", help="tiny (unit tests), small (demo, splits) or full (512x512x220 CT).")
    ] = "small",
    confounding: Annotated[
        str, typer.Option("--confounding", help="real (as RICORD: 1a-only sites), none (1b at every 1a "
                          "site) or scanner (one scanner per collection): for checking the confound floor.")
    ] = "real",
) -> None:
    """Write a synthetic RICORD 1a/1b/1c collection in the real TCIA/MD.ai formats."""
    with progress_bar("synthesizing") as progress:
        from bench.data.synth import synthesize  # imported here: keeps `bench --help` fast

        report = synthesize(out, seed=seed, size=size, confounding=confounding, progress=progress)
    table = Table(title=shown(f"synthetic collection (seed {seed}, size {size})"))
    table.add_column("collection")
    table.add_column("studies", justify="right")
    for collection, count in report.studies.items():
        table.add_row(shown(collection), str(count))
    console.print(table)
    console.print(shown(f"DICOM files: {report.n_dicom_files} under {report.out_dir}"))
    for path in report.annotations:
        console.print(shown(f"annotations: {path}"))
    for path in report.clinical:
        console.print(shown(f"clinical:    {path}"))
    console.print(shown(f"truth masks (tests only): {report.truth_dir}"))


def _counts_table(title: str, counter: Counter) -> Table:
    table = Table(title=shown(title))
    table.add_column("value")
    table.add_column("cases", justify="right")
    for key, count in sorted(counter.items()):
        table.add_row(shown(" / ".join(str(k) if k != "" else "-" for k in key)), str(count))
    return table


@data_app.command("index")
def index_command(
    root: Annotated[Path, typer.Argument(help="Download folder (collection folders, metadata.csv).")],
    out: Annotated[Path, typer.Option("--out", help="Manifest CSV to write.")],
    annotations: Annotated[
        list[Path] | None,
        typer.Option("--annotations", help="MD.ai export JSON, or a folder of them (*.json); repeatable."),
    ] = None,
    clinical: Annotated[
        list[Path] | None,
        typer.Option(
            "--clinical",
            help="Clinical sheet xlsx or csv, or a folder of them (a sheet in both formats is read from "
            "the xlsx); repeatable.",
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option("--task", help="Label by this task's reading protocol (default: RICORD's, which every "
                     "built-in task declares)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-j", min=1, help="Processes reading DICOM headers (default: 1 below "
                     "6,000 files, else all cores; the manifest is the same either way)."),
    ] = None,
) -> None:
    """Index a RICORD download (real or synthetic) into a case manifest plus a report.

    The headers read are kept in ROOT/.ricord-bench/headers.json.gz, so `bench splits pin|verify`
    and `bench prepare` read again only the files that changed since.
    """
    from bench.data.ricord import index_download
    from bench.tasks import ReadingProtocol, load_task

    protocol = load_task(task).reading if task else ReadingProtocol()
    started = time.perf_counter()
    with progress_bar("indexing") as progress:
        report = index_download(
            root, annotations=annotations or [], clinical=clinical or [], progress=progress,
            protocol=protocol, workers=workers,
        )
    seconds = time.perf_counter() - started
    report_path = report.write(out)
    manifest = report.manifest
    console.print(
        _counts_table(
            "cases per collection / site", Counter(zip(manifest.collection, manifest.site, strict=True))
        )
    )
    console.print(
        _counts_table(
            "cases per collection / covid / appearance / grade",
            Counter(
                zip(manifest.collection, manifest.covid, manifest.appearance, manifest.grade, strict=True)
            ),
        )
    )
    reading = report.counts["reading"]
    console.print(
        _counts_table(
            "reading protocol: appearance / grade outcome",
            Counter(zip(manifest.appearance_outcome, manifest.grade_outcome, strict=True)),
        )
    )
    console.print(
        f"invalid studies left out: {reading['invalid_studies']}; cases with a minority 'Invalid Study' "
        f"flag: {reading['cases_with_minority_invalid_flags']}"
    )
    if report.skipped:
        table = Table(title=shown(f"skipped ({len(report.skipped)}; reasons in {report_path.name})"))
        table.add_column("reason")
        table.add_column("count", justify="right")
        table.add_column("first item")
        for kind, items in report.skipped_by_kind().items():
            table.add_row(shown(kind), str(len(items)), shown(items[0]))
        console.print(table)
    else:
        console.print("skipped: nothing")
    console.print(
        f"series present but not used (scouts, reformats, other views): {report.counts['series_ignored']}"
    )
    if report.counts["annotations_clipped"]:
        console.print(f"[yellow]warning[/yellow]: {report.counts['annotations_clipped']} polygon(s) with "
                      "vertices outside their slice; they are clipped to the image when masks are drawn "
                      "(per study in the warnings)")
    for warning in report.warnings[:10]:
        console.print(f"[yellow]warning[/yellow]: {shown(warning)}")
    if len(report.warnings) > 10:
        console.print(shown(f"... and {len(report.warnings) - 10} more warnings in {report_path}"))
    files = int(report.counts.get("files_indexed", 0))
    console.print(f"indexed {files} files in {seconds:.1f} s ({files / max(seconds, 1e-9):.0f} files/s)")
    console.print(shown(f"manifest: {out} ({len(manifest)} cases); report: {report_path}"))
