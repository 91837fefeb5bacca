"""`bench run` (run a submission on prepared inputs) and `bench images base|simpleitk` (local images)."""

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bench.cli import app
from bench.cli.options import Entry, Interface, TasksDir, Team
from bench.cli.progress import console, progress_bar, shown

images_app = typer.Typer(help="Container images the harness builds locally.", no_args_is_help=True)
app.add_typer(images_app, name="images")


@app.command("run")
def run(
    submission: Annotated[
        str,
        typer.Argument(
            help="Folder with submission.yaml, a `docker save` tarball, or an image in the engine."
        ),
    ],
    task: Annotated[str, typer.Option("--task", help="Task id or path of a task.yaml.")],
    inputs: Annotated[
        Path, typer.Option("--inputs", help="Prepared input folder (`bench prepare` OUT/input).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Run directory to create.")],
    team: Team = None,
    entry: Entry = None,
    runner: Annotated[str, typer.Option("--runner", help="docker or process.")] = "docker",
    interface: Interface = None,
    timeout: Annotated[int | None, typer.Option("--timeout", help="Wall-clock limit, seconds.")] = None,
    memory: Annotated[str | None, typer.Option("--memory", help="Memory limit, e.g. 8g.")] = None,
    cpus: Annotated[float | None, typer.Option("--cpus", help="CPU quota.")] = None,
    gpus: Annotated[
        int | None,
        typer.Option("--gpus", help="GPUs: Docker device requests, or the process runner binds /dev/nvidia* "
                     "and sets CUDA_VISIBLE_DEVICES (memory is then capped with RLIMIT_DATA)."),
    ] = None,
    python: Annotated[
        str | None,
        typer.Option("--python", help="Process runner: your interpreter for {python} (a venv's or conda "
                     "env's bin/python), its installation bound read-only into the sandbox."),
    ] = None,
    unsafe_no_sandbox: Annotated[
        bool,
        typer.Option(
            "--unsafe-no-sandbox",
            help="Process runner, only for your own code: without bubblewrap, run the command as you, "
            "with your network and files, no isolation at all; with bubblewrap but no pids and memory "
            "cgroup (not root), run it sandboxed with per-process memory limits and RLIMIT_NPROC only.",
        ),
    ] = False,
    tasks_dir: TasksDir = None,
) -> None:
    """Run SUBMISSION on the prepared inputs under the task's limits; validate and keep its outputs."""
    from bench.runners import run_submission
    from bench.runners.process import UNCONFINED
    from bench.runners.submission import load_submission
    from bench.tasks import load_task

    spec = load_task(task, directory=tasks_dir)
    loaded = load_submission(submission, team=team, entry=entry, interface=interface)
    overrides = {"timeout_s": timeout, "memory": memory, "cpus": cpus, "gpus": gpus}
    with progress_bar(f"bench run ({runner})") as progress:
        result = run_submission(
            loaded, spec, inputs, out, runner=runner, limits=overrides, progress=progress,
            unsafe_no_sandbox=unsafe_no_sandbox, python=python,
        )
    if not result.isolated:
        console.print(f"[bold red]{shown(result.isolation)}[/]")
    elif UNCONFINED in result.isolation:
        console.print(f"[bold yellow]{shown(result.isolation)}[/]")
    elif result.runner == "process":
        console.print(f"sandbox: {shown(result.isolation)}", soft_wrap=True)
    table = Table("case", "status", "reason", title=shown(f"{loaded.team} / {loaded.name} on {result.task}"))
    for case in result.cases:
        colour = {"ok": "green", "missing": "yellow", "malformed": "red"}[case.status]
        table.add_row(shown(case.case_id), f"[{colour}]{case.status}[/]", shown(case.reason))
    console.print(table)
    for item in result.rejected:
        console.print(f"[yellow]rejected[/] {shown(item.path)}: {shown(item.reason)}")
    counts = ", ".join(f"{n} {status}" for status, n in result.counts.items())
    ending = result.error or f"exit {result.exit_code}"
    console.print(shown(f"{counts}; {ending}; {result.duration_s:.1f} s; run directory {result.run_dir}"))


@images_app.command("base")
def base(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Build even if the image exists.")] = False,
    tag: Annotated[
        str, typer.Option("--tag", help="Image reference to create.")
    ] = "ricord-bench/python:bookworm",
    keep_tarball: Annotated[
        Path | None, typer.Option("--keep-tarball", help="Keep the rootfs tarball here.")
    ] = None,
) -> None:
    """Build the local base image (mmdebstrap from the host's Debian sources, then docker import)."""
    from bench.runners.base_image import build_base_image

    with progress_bar("base image") as progress:
        report = build_base_image(tag=tag, rebuild=rebuild, keep_tarball=keep_tarball, progress=progress)
    verb = "built" if report.built else "exists, kept (use --rebuild to rebuild)"
    console.print(shown(
        f"{report.tag} {verb}: {report.image_id} ({report.size_bytes / 1e6:.0f} MB) "
        f"in {report.duration_s:.1f} s"
    ))


@images_app.command("simpleitk")
def simpleitk(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Build even if the image exists.")] = False,
) -> None:
    """Build ricord-bench/python-simpleitk:bookworm: the base image plus the harness's SimpleITK."""
    from bench.runners.simpleitk_image import build_simpleitk_image

    report = build_simpleitk_image(rebuild=rebuild)
    verb = "built" if report.built else "exists, kept (use --rebuild to rebuild)"
    console.print(shown(f"{report.tag} {verb}: {report.image_id} (SimpleITK {report.version}) "
                        f"in {report.duration_s:.1f} s"))
