"""`bench demo`: the whole benchmark on the built-in synthetic collection, from nothing to a leaderboard.

Straight line, every stage through the real parts: synthesize the collection (DICOM, MD.ai JSON,
clinical sheets), index it into a manifest, verify the built-in pinned splits
``<id>/splits/synthetic.json`` against it case by case (pin only when a split is missing),
prepare each task's test split, run every reference submission that applies to the task
(Docker when an engine answers and the local base image is there or builds; otherwise the
process runner, and the report says which and why), score into the results store, and build the
static leaderboard.

The default collection (seed 0, size ``small``) is the one the built-in splits were pinned from.
Another seed or size is a different collection: its splits are pinned under their own name
(``synthetic-seed<N>-<size>``) on first use, into the user's tasks folder
(:func:`bench.tasks.user_tasks_dir`), and verified on later runs.
"""

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bench.data.ricord import index_download
from bench.data.synth import synthesize
from bench.errors import BenchError, DataError, RunnerError, SplitError
from bench.io import write_json
from bench.leaderboard import build_leaderboard
from bench.pipeline.confound import confound_floor
from bench.pipeline.evaluate import evaluate, stage_progress
from bench.pipeline.readers import reader_band
from bench.splits.pin import pin_split
from bench.splits.pinned import load_split, split_path
from bench.splits.verify import verify_split
from bench.tasks import list_tasks, load_task
from bench.trees import claim_files, record_files

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, str], None]

BUILTIN_SUBMISSIONS = Path(os.fspath(resources.files("bench").joinpath("builtin", "submissions")))
"""The reference submissions, shipped as package data (``bench/builtin/submissions``)."""

ENTRIES = {
    "ricord-1a-lesion-seg": ("threshold-seg", "constant-prior"),
    "ricord-ct-covid-cls": ("hu-stats-cls", "constant-prior"),
    "ricord-1c-cxr-appearance": ("cxr-intensity", "constant-prior"),
}
"""Which reference submissions apply to which task (see ``bench/builtin/submissions/README.md``)."""


@dataclass(frozen=True)
class Evaluation:
    """One reference submission evaluated on one task: where it was stored and how long it took."""

    task: str
    submission: str
    run_path: Path
    primary: float | None
    counts: dict
    prepare_s: float
    run_s: float
    score_s: float

    @property
    def total_s(self) -> float:
        return self.prepare_s + self.run_s + self.score_s


@dataclass(frozen=True)
class DemoReport:
    """What the demo did: paths, the runner used and why, stage times and each evaluation."""

    out_dir: Path
    index_html: Path
    runner: str
    runner_reason: str
    split_name: str
    splits: dict
    stages: tuple[tuple[str, float], ...]
    evaluations: tuple[Evaluation, ...]

    @property
    def total_s(self) -> float:
        return sum(seconds for _, seconds in self.stages)

    def timings(self) -> list[str]:
        """One line per stage and per evaluation, for the CLI and the docs."""
        lines = [f"{name}: {seconds:.1f} s" for name, seconds in self.stages]
        for e in self.evaluations:
            value = "n/a" if e.primary is None else f"{e.primary:.4g}"
            lines.append(
                f"  {e.task} / {e.submission}: primary {value}, {e.counts['ok']}/{e.counts['cases']} ok, "
                f"{e.total_s:.1f} s (prepare {e.prepare_s:.1f}, run {e.run_s:.1f}, score {e.score_s:.1f})"
            )
        lines.append(f"total: {self.total_s:.1f} s")
        return lines


def choose_runner(runner: str = "auto") -> tuple[str, str]:
    """``(runner, reason)``: Docker when asked or when ``auto`` finds an engine and the base image.

    ``auto`` falls back to the process runner when no engine answers or the base image cannot be
    built, and the reason says so; an explicit ``docker`` lets those errors through.
    """
    if runner == "process":
        return "process", "asked for the process runner"
    if runner not in ("auto", "docker"):
        raise RunnerError(f"--runner {runner!r}: choose auto, docker or process.")
    from bench.runners.base_image import BASE_IMAGE, build_base_image
    from bench.runners.engine import docker_client

    try:
        client = docker_client(timeout_s=30)
        report = build_base_image(client=client)
    except BenchError as error:
        if runner == "docker":
            raise
        return "process", f"no usable Docker: {str(error).splitlines()[0]}"
    how = "built" if report.built else "present"
    return "docker", f"Docker engine reachable, base image {BASE_IMAGE} {how}"


def run_demo(
    out_dir: str | Path,
    *,
    seed: int = 0,
    size: str = "small",
    runner: str = "auto",
    workers: int | None = None,
    submissions_dir: str | Path = BUILTIN_SUBMISSIONS,
    tasks_dir: str | Path | None = None,
    leaderboard: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> DemoReport:
    """Run the demo into ``out_dir``; return where the leaderboard is and what happened.

    Layout: ``data/`` (the synthetic collection and its manifest), ``work/`` (prepared splits,
    image cache, run directories), ``results/`` (the store), ``leaderboard/`` (the site, unless
    ``leaderboard`` names another folder). Rerunning into the same folder reuses the collection
    when seed and size match and adds new runs to the store. Splits the demo has to pin go to
    ``tasks_dir`` (default: :func:`bench.tasks.user_tasks_dir`).
    """
    out = Path(out_dir).absolute()
    stages: list[tuple[str, float]] = []
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        stages.append((name, now - clock))
        clock = now

    data, annotations, clinical = _collection(
        out, seed=seed, size=size, progress=stage_progress(progress, "synthesize")
    )
    lap("synthesize")
    report = index_download(
        data, annotations=annotations, clinical=clinical, progress=stage_progress(progress, "index")
    )
    report.write(data / "manifest.csv")
    lap("index")
    name = "synthetic" if (seed, size) == (0, "small") else f"synthetic-seed{seed}-{size}"
    tasks = [task for task in list_tasks(tasks_dir) if task in ENTRIES]
    splits = {task: _pinned(task, name, data, annotations, tasks_dir, progress) for task in tasks}
    lap("verify splits")
    chosen, reason = choose_runner(runner)
    lap(f"runner ({chosen})")
    evaluations = []
    for task in tasks:
        spec = load_task(task, directory=tasks_dir)
        for entry in ENTRIES[task]:
            evaluated = evaluate(
                Path(submissions_dir) / entry,
                spec,
                root=data,
                split="test",
                name=name,
                results=out / "results",
                runner=chosen,
                work=out / "work",
                workers=workers,
                progress=stage_progress(progress, f"{task} / {entry}"),
                tasks_dir=tasks_dir,
            )
            scores = evaluated.stored.scores
            evaluations.append(
                Evaluation(
                    task,
                    entry,
                    evaluated.stored.path,
                    scores["metrics"][scores["primary_metric"]]["value"],
                    dict(scores["counts"]),
                    evaluated.prepare_s,
                    evaluated.run_s,
                    evaluated.score_s,
                )
            )
    lap("evaluate")
    for task in tasks:
        spec = load_task(task, directory=tasks_dir)
        options = {"root": data, "name": name, "split": "test", "results": out / "results",
                   "work": out / "work",
                   "tasks_dir": tasks_dir}
        if spec.confound_floor is not None:
            confound_floor(spec, progress=stage_progress(progress, f"{task} / confound floor"), **options)
        if spec.reader_band is not None:
            reader_band(spec, progress=stage_progress(progress, f"{task} / reader band"), **options)
    lap("reference lines")
    site = Path(leaderboard).absolute() if leaderboard is not None else out / "leaderboard"
    index_html = _leaderboard(out / "results", site, tasks_dir, progress)
    lap("leaderboard")
    return DemoReport(out, index_html, chosen, reason, name, splits, tuple(stages), tuple(evaluations))


def _collection(out: Path, *, seed: int, size: str, progress) -> tuple[Path, list[Path], list[Path]]:
    """The synthetic collection in ``out/data``: reused when ``out/demo.json`` says it has this seed/size."""
    data, marker = out / "data", out / "demo.json"
    claim_files([marker])  # a demo.json the harness did not write is neither read nor replaced
    if marker.is_file() and data.is_dir():
        recorded = json.loads(marker.read_text(encoding="utf-8"))
        if recorded.get("seed") == seed and recorded.get("size") == size:
            clinical = _one_format(data / p for p in recorded["clinical"])
            return data, [data / p for p in recorded["annotations"]], clinical
        raise DataError(
            f"{out} holds a demo collection with seed {recorded.get('seed')} / size "
            f"{recorded.get('size')}, not {seed} / {size}; pass another --out."
        )
    synth = synthesize(data, seed=seed, size=size, progress=progress)
    write_json(
        marker,
        {
            "schema_version": 1,
            "seed": seed,
            "size": size,
            "annotations": [str(p.relative_to(data)) for p in synth.annotations],
            "clinical": [str(p.relative_to(data)) for p in synth.clinical],
        },
    )
    record_files([marker])
    return data, list(synth.annotations), _one_format(synth.clinical)


def _one_format(clinical) -> list[Path]:
    """The csv copies of the clinical sheets: synth writes each sheet as xlsx and csv, and
    reading both lists every study twice. csv is what the pinned synthetic splits were indexed from."""
    return [Path(p) for p in clinical if Path(p).suffix == ".csv"]


def _pinned(task: str, name: str, data: Path, annotations: list[Path], tasks_dir, progress) -> dict:
    """Verify the pinned split against the collection, or pin it when it is missing."""
    if not split_path(task, name, directory=tasks_dir).is_file():
        split = pin_split(
            load_task(task, directory=tasks_dir),
            data / "manifest.csv",
            root=data,
            name=name,
            annotations=annotations,
            directory=tasks_dir,
            progress=stage_progress(progress, f"pin {task}"),
        )
        return {"sha256": split.sha256, "action": "pinned", "path": split.path}
    split = load_split(task, name, directory=tasks_dir)
    report = verify_split(
        split, root=data, annotations=annotations, progress=stage_progress(progress, f"verify {task}")
    )
    if not report.ok:
        raise SplitError(
            f"{split.path} does not match the synthetic collection in {data}: "
            f"{report.counts()}. The collection generator changed since the split was pinned; "
            f"re-pin with `bench splits pin --task {task} --name {name} --root {data} --manifest "
            f"{data / 'manifest.csv'} --tasks-dir {split.path.parents[2]}` (and commit it if it is built in)."
        )
    return {"sha256": split.sha256, "action": "verified", "path": split.path}


def _leaderboard(results: Path, out: Path, tasks_dir, progress) -> Path:
    return build_leaderboard(results, out, tasks_dir=tasks_dir,
                             progress=stage_progress(progress, "leaderboard")).index.absolute()
