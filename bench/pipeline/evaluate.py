"""One entry, end to end: prepare (cached), run, score, store.

What an organizer runs per entry on the test split, and what a developer runs on the
validation split with exactly the organizer's scorer and limits. Everything that a later
``bench rescore`` needs stays on disk under the work folder (default ``<results>/.work``, a
hidden folder the store's listing skips): the prepared split in ``prepared/<task>/<name>/<split>``
(reused while its reference still matches the task spec and the pinned split) and each run
directory in ``runs/<task>/<team>/<entry>/<split>-<UTC time>``, whose path the receipt records.
"""

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.errors import BenchError, PrepareError
from bench.io import exclusive
from bench.parallel import map_ordered
from bench.prepare.materialize import prepare_split
from bench.prepare.reference import read_reference
from bench.runners import run_submission
from bench.runners.submission import load_submission
from bench.scoring.score import score_and_store
from bench.splits.pinned import load_split
from bench.store import EntryId, StoredRun
from bench.tasks import TaskSpec

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, str], None]
PREPARE_LOCK_TIMEOUT_S = 3600
"""How long an evaluate waits for another one preparing the same split before it gives up."""


@dataclass(frozen=True)
class EvaluateReport:
    """What :func:`evaluate` did: the stored result, where its inputs are, and stage times in s."""

    stored: StoredRun
    prepared_dir: Path
    run_dir: Path
    prepare_cached: bool
    prepare_s: float
    run_s: float
    score_s: float


def prepared_split(
    spec: TaskSpec,
    *,
    root: str | Path,
    name: str,
    split: str,
    work: str | Path,
    progress: ProgressCallback | None = None,
    tasks_dir: str | Path | None = None,
) -> tuple[Path, bool]:
    """The prepared split ``work/prepared/<task>/<name>/<split>``, prepared only when needed.

    Returns the folder (holding ``input/`` and ``reference/``) and whether it was reused. A
    prepared split is reused when its reference verifies and was made from the current task
    spec and pinned split; otherwise it is prepared again (images come from the fingerprint
    cache in ``work/cache``, so that is cheap too). Concurrent evaluates take turns on one
    prepared split (a lock file beside it): the second finds the first one's tree and reuses it.
    """
    out = Path(work).absolute() / "prepared" / spec.id / name / split
    with exclusive(out.parent / f".{split}.lock", timeout_s=PREPARE_LOCK_TIMEOUT_S,
                   what=f"the prepared split {out}", error=PrepareError):
        if (out / "reference" / "reference.json").is_file() and (out / "input" / "cases.json").is_file():
            try:
                reference = read_reference(out / "reference", check_masks=False)
            except BenchError as error:
                log.info("prepared split %s is unusable (%s); preparing again", out, error)
            else:
                pinned = load_split(spec.id, name, directory=tasks_dir).sha256
                current = reference.task_sha256 == spec.sha256 and reference.split_sha256 == pinned
                if current and reference.inputs_sha256 is not None:  # older preparations bind no run
                    return out, True
                log.info("prepared split %s is stale (task or split changed); preparing again", out)
        prepare_split(
            spec,
            name,
            split,
            root=root,
            out=out,
            cache_dir=Path(work).absolute() / "cache",
            overwrite=True,
            directory=tasks_dir,
            progress=stage_progress(progress, "prepare"),
        )
    return out, False


def evaluate(
    submission: str | Path,
    spec: TaskSpec,
    *,
    root: str | Path,
    team: str | None = None,
    entry: str | None = None,
    split: str = "test",
    name: str = "synthetic",
    results: str | Path = "results",
    runner: str = "docker",
    work: str | Path | None = None,
    limits: dict | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: ProgressCallback | None = None,
    tasks_dir: str | Path | None = None,
    interface: str | None = None,
) -> EvaluateReport:
    """Prepare (cached), run, score and store one submission on one split of a task.

    Parameters
    ----------
    submission : path or str
        A submission folder, a ``docker save`` tarball or an image reference
        (:func:`bench.runners.submission.load_submission`).
    team, entry : str, optional
        The entry's team and name: required for a tarball or an image reference, override
        ``submission.yaml`` for a folder.
    spec : TaskSpec
        The task.
    root : path
        The download the pinned split was made from (with its ``manifest.csv``).
    split : {"validation", "test", "train"}
        Which part of the pinned split to evaluate on.
    name : str
        The pinned split (``<task>/splits/<name>.json`` in a tasks folder, see :mod:`bench.tasks`).
    results : path
        The results store root.
    runner : {"docker", "process"}
        How the submission runs (:func:`bench.runners.run_submission`).
    work : path, optional
        Prepared splits, image cache and run directories; default ``<results>/.work``.
    limits : dict, optional
        Overrides of the task's run limits.
    workers, scheduler
        Per-case scoring parallelism (:func:`bench.scoring.score.score_run`). With a ``scheduler``
        the container run, too, is a task on that cluster, on a worker that declares the
        resource ``docker=1`` (for the Docker runner); ``work`` must then be a path every
        worker shares.
    progress : callable, optional
        ``progress(done, total, description)``; descriptions name the stage.
    tasks_dir : path, optional
        The user's tasks folder holding the pinned split (:func:`bench.tasks.user_tasks_dir`).
    interface : {"native", "grand-challenge"}, optional
        The container contract; default ``submission.yaml``'s, else ``native`` (a Grand Challenge
        algorithm container sent as a tarball needs ``grand-challenge``).
    """
    work = Path(work) if work is not None else Path(results) / ".work"
    loaded = load_submission(submission, team=team, entry=entry, interface=interface)
    started = time.monotonic()
    prepared, cached = prepared_split(spec, root=root, name=name, split=split, work=work, progress=progress,
                                      tasks_dir=tasks_dir)
    prepared_at = time.monotonic()
    run_dir = _new_run_dir(work, spec.id, EntryId(loaded.team, loaded.name), split)
    if scheduler:
        # The container runs as one task on a cluster worker that declares a Docker engine; the
        # work folder must be on a filesystem shared by that worker (docs/scaling.md).
        item = {"submission": str(submission), "team": loaded.team, "entry": loaded.name,
                "interface": loaded.interface,
                "spec": spec, "inputs": str(prepared / "input"),
                "run_dir": str(run_dir), "runner": runner, "limits": limits}
        resources = {"docker": 1} if runner == "docker" else None
        map_ordered(run_on_worker, [item], scheduler=scheduler, resources=resources)
    else:
        run_submission(
            loaded,
            spec,
            prepared / "input",
            run_dir,
            runner=runner,
            limits=limits,
            progress=stage_progress(progress, f"run {loaded.name}"),
        )
    ran_at = time.monotonic()
    stored = score_and_store(
        spec,
        run_dir,
        prepared / "reference",
        results=results,
        workers=workers,
        scheduler=scheduler,
        progress=stage_progress(progress, "score"),
        tasks_dir=tasks_dir,
    )
    return EvaluateReport(
        stored,
        prepared,
        run_dir,
        cached,
        prepared_at - started,
        ran_at - prepared_at,
        time.monotonic() - ran_at,
    )


def run_on_worker(item: dict) -> dict:
    """Run one submission where this function is called: a cluster task of :func:`evaluate`.

    ``item`` holds only paths and small values (``submission``, ``team``, ``entry``, ``spec``,
    ``inputs``, ``run_dir``, ``runner``, ``limits``); the worker reads the inputs and writes the run
    directory on the shared filesystem. Returns a small summary naming the worker.
    """
    from distributed import get_worker

    submission = load_submission(item["submission"], team=item["team"], entry=item["entry"],
                                 interface=item.get("interface"))
    result = run_submission(submission, item["spec"], item["inputs"], item["run_dir"],
                            runner=item["runner"], limits=item["limits"])
    try:
        worker = str(get_worker().name)
    except ValueError:  # called outside a dask worker (tests, in-process runs)
        worker = "local"
    return {"worker": worker, "exit_code": result.exit_code, "counts": result.counts,
            "run_dir": str(result.run_dir)}


def _new_run_dir(work: Path, task: str, entry: EntryId, split: str) -> Path:
    parent = work.absolute() / "runs" / task / entry.key
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    parent.mkdir(parents=True, exist_ok=True)
    return parent / f"{split}-{stamp}-{secrets.token_hex(2)}"  # unique under concurrent evaluates


def stage_progress(progress: ProgressCallback | None, stage: str) -> ProgressCallback | None:
    """A progress callback that prefixes every description with the stage name (None stays None)."""
    if progress is None:
        return None

    def report(done: int, total: int, description: str = "") -> None:
        progress(done, total, f"{stage}: {description}" if description else stage)

    return report
