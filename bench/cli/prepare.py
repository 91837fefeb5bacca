"""`bench prepare`: materialize one split into a container input tree and a reference tree."""

from pathlib import Path
from typing import Annotated

import typer

from bench.cli import app
from bench.cli.options import TasksDir
from bench.cli.progress import console, progress_bar, shown
from bench.text import printable

Out = Annotated[Path, typer.Option("--out", help="Output folder: OUT/input (container) and OUT/reference.")]
Manifest = Annotated[Path | None, typer.Option("--manifest", help="Manifest CSV (default ROOT/manifest.csv)")]
Annotations = Annotated[list[Path] | None, typer.Option(
    "--annotations", help="MD.ai export file or folder (repeatable; default ROOT/annotations/*.json).")]
Cache = Annotated[Path | None, typer.Option(
    "--cache", help="Cache of converted images (default $BENCH_CACHE_DIR, else ~/.cache/ricord-bench).")]
SaltFile = Annotated[Path | None, typer.Option(
    "--salt-file", help="Secret salt of the opaque case ids (default ROOT/.ricord-bench/salt, created on "
                        "first use). Keep it private; reuse it to get the same ids.")]


@app.command("prepare")
def prepare(
    task: Annotated[str, typer.Option("--task", help="Task id, e.g. ricord-1a-lesion-seg.")],
    name: Annotated[str, typer.Option("--name", help="Pinned split name (<id>/splits/<name>.json).")],
    root: Annotated[Path, typer.Option("--root", help="Root of the download the split was pinned from.")],
    out: Out,
    split: Annotated[str, typer.Option("--split", help="train, validation or test.")] = "test",
    manifest: Manifest = None,
    annotations: Annotations = None,
    cache: Cache = None,
    salt_file: SaltFile = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Convert every image; cache nothing.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT/input, OUT/reference.")] = False,
    tasks_dir: TasksDir = None,
) -> None:
    """Write OUT/input (cases.json, task.json, images/) and OUT/reference (labels or masks)."""
    from bench.prepare.materialize import prepare_split
    from bench.tasks import load_task

    spec = load_task(task, directory=tasks_dir)
    with progress_bar(f"preparing {split}") as progress:
        prepared = prepare_split(spec, name, split, root=root, out=out, manifest=manifest,
                                 annotations=annotations or (), overwrite=overwrite, progress=progress,
                                 salt_file=salt_file, cache_dir=cache, cache=not no_cache,
                                 directory=tasks_dir)
    console.print(f"{len(prepared.case_ids)} {split} cases ({prepared.cache_hits} images from the cache)")
    for case_id, annotations in prepared.clipped.items():
        console.print(f"[yellow]warning[/yellow]: case {shown(case_id)}: {len(annotations)} annotation(s) "
                      "with "
                      f"vertices outside their slice, clipped to it: {shown(', '.join(annotations[:5]))} "
                      "(clipped_annotations in reference.json)")
    typer.echo(printable(f"input: {prepared.input_dir}"))
    typer.echo(printable(f"reference: {prepared.reference_dir}"))
    typer.echo(f"split sha256:{prepared.split_sha256}")
    typer.echo(f"reference sha256:{prepared.reference_sha256}")
