"""`bench export`: the pinned train or validation split in nnU-Net, MONAI or CSV layout."""

from pathlib import Path
from typing import Annotated

import typer

from bench.cli import app
from bench.cli.options import TasksDir
from bench.cli.prepare import Annotations, Cache, Manifest, SaltFile
from bench.cli.progress import console, progress_bar


@app.command("export")
def export(
    task: Annotated[str, typer.Option("--task", help="Task id, e.g. ricord-1a-lesion-seg.")],
    name: Annotated[str, typer.Option("--name", help="Pinned split name (<id>/splits/<name>.json).")],
    split: Annotated[str, typer.Option("--split", help="train or validation (test is never exported).")],
    format: Annotated[
        str, typer.Option("--format", help="nnunet (segmentation), monai, or csv (classification).")],
    out: Annotated[Path, typer.Option("--out", help="Dataset folder, e.g. $nnUNet_raw/Dataset501_RICORD1a.")],
    root: Annotated[Path, typer.Option("--root", help="Root of the download the split was pinned from.")],
    folds: Annotated[int, typer.Option("--folds", help="Patient-grouped folds of the train split.")] = 5,
    manifest: Manifest = None,
    annotations: Annotations = None,
    cache: Cache = None,
    salt_file: SaltFile = None,
    tasks_dir: TasksDir = None,
) -> None:
    """Write a split for training frameworks: images, labels, dataset.json/datalist/CSV and folds."""
    from bench.prepare.export import export_split
    from bench.tasks import load_task

    spec = load_task(task, directory=tasks_dir)
    with progress_bar(f"exporting {split}") as progress:
        report = export_split(spec, name, split, root=root, out=out, format=format, folds=folds,
                              manifest=manifest, annotations=annotations or (), cache_dir=cache,
                              salt_file=salt_file, directory=tasks_dir, progress=progress)
    console.print(f"{report.cases} {split} cases as {report.format} in {report.out} "
                  f"({report.linked} images hard-linked from the cache, {report.moved} copied)",
                  soft_wrap=True)
    for path in report.files:
        typer.echo(f"wrote {path}")
    typer.echo(f"split sha256:{report.split_sha256}")
