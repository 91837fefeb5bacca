"""One run of a submission on a prepared split, end to end, into a run directory written atomically.

Straight line: read the inputs, snapshot them, make an empty capped output folder, run the
submission (Docker or process), collect and validate its outputs case by case, save the logs
(capped) and ``run.json``. A ``grand-challenge`` submission runs once per case instead, each
case laid out and converted back by :mod:`bench.runners.grandchallenge`, and the converted
outputs go through the same collection rule. The run directory appears only when all of that succeeded; a
failure of the harness itself leaves nothing behind, while a failure of the submission is a
run like any other, with its statuses and reasons.
"""

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from bench.errors import RunnerError
from bench.io import atomic_directory, validation_problems, write_bytes, write_json
from bench.leases import take
from bench.runners.collect import collect_outputs
from bench.runners.grandchallenge import INTERFACE, run_cases
from bench.runners.record import RunRecord
from bench.runners.result import ExecOutcome
from bench.runners.signals import stop_on_signals
from bench.runners.staging import (
    check_run_dir,
    output_area,
    read_inputs,
    remove_staging,
    stage_inputs,
    staging_root,
)
from bench.runners.submission import Submission, load_submission
from bench.tasks import Limits, TaskSpec

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


def resolve_limits(spec: TaskSpec, limits: Limits | Mapping[str, Any] | None) -> Limits:
    """The task's limits, with ``limits`` (a Limits, or a mapping of overrides; None values ignored) applied.

    Raises
    ------
    RunnerError
        When an override is invalid (e.g. ``memory="lots"``).
    """
    if isinstance(limits, Limits):
        return limits
    overrides = {key: value for key, value in (limits or {}).items() if value is not None}
    try:
        return Limits.model_validate({**spec.limits.model_dump(), **overrides})
    except ValidationError as error:
        problems = "; ".join(validation_problems(error))
        raise RunnerError(f"invalid run limits {overrides}: {problems}") from error


def run_submission(
    submission: Submission | str | os.PathLike,
    spec: TaskSpec,
    inputs_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    runner: Literal["docker", "process"] = "docker",
    limits: Limits | Mapping[str, Any] | None = None,
    client=None,
    progress: Progress | None = None,
    unsafe_no_sandbox: bool = False,
    python: str | os.PathLike | None = None,
) -> RunRecord:
    """Run ``submission`` on the prepared inputs of ``spec`` and write the run directory ``out_dir``.

    Parameters
    ----------
    submission
        A :class:`Submission` or anything :func:`bench.runners.submission.load_submission` accepts.
    spec
        The task; its ``id`` must match ``cases.json``.
    inputs_dir
        The prepared input folder (``OUT/input``; ``OUT`` is accepted and only its ``input``
        part is used).
    out_dir
        The run directory to create (must not exist, or be empty): ``run.json``,
        ``outputs/`` (validated outputs only) and ``logs/stdout.txt``, ``logs/stderr.txt``.
    runner
        ``docker`` (a container per run) or ``process`` (the submission's command, in
        bubblewrap when installed). A ``grand-challenge`` submission gets one container (or
        sandbox) per case, each under the same lockdown; the process runner needs bubblewrap.
    limits
        Overrides of the task's limits (timeout_s, memory, cpus, gpus, pids, tmpfs_mb,
        output_mb, output_entries), or a complete :class:`bench.tasks.Limits`.
    client
        A ``docker.DockerClient`` for the Docker runner; one from the environment by default.
    progress
        Called with (done, total, description) at each step.
    unsafe_no_sandbox
        Let the process runner run the command without bubblewrap when it is not installed:
        as the calling user, with the host's network and files, and a process that leaves
        its process group may outlive the run; or, with bubblewrap, without a pids and memory
        cgroup when none can be made (not root): memory limited per process only, processes by
        ``RLIMIT_NPROC``. Without it such a run is refused.
    python
        Process runner: the interpreter ``{python}`` in the submission's command stands for (a
        venv's or conda environment's ``bin/python``); its installation is bound read-only into
        the sandbox. Default: the interpreter running the harness.

    Raises
    ------
    SubmissionError
        The submission cannot be loaded or built (nothing ran).
    RunnerError
        The inputs are unusable, ``out_dir`` exists, the engine is unreachable or refuses the
        container. A submission that crashes, hangs, runs out of memory or writes garbage
        does not raise: the run records it.
    """
    if not isinstance(submission, Submission):
        submission = load_submission(submission)
    out_dir = Path(out_dir)
    check_run_dir(out_dir)
    inputs = read_inputs(inputs_dir)
    if inputs.task != spec.id:
        raise RunnerError(
            f"{inputs.directory}/cases.json is for task {inputs.task!r}, not {spec.id!r}; "
            "prepare the inputs for this task (`bench prepare`)."
        )
    if runner not in ("docker", "process"):
        raise RunnerError(f"unknown runner {runner!r}; use 'docker' or 'process'.")
    if python is not None and runner != "process":
        raise RunnerError("--python applies to the process runner (--runner process); a Docker "
                          "submission brings its interpreter in its image.")
    limits = resolve_limits(spec, limits)
    steps = 3 + len(inputs.cases)
    _step(progress, 0, steps, "preparing")
    staging = staging_root(out_dir)
    # the lease is written before the folder and its mount exist: after a SIGKILL at any point
    # the next invocation finds them (bench.runners.gc)
    lease = take(paths=[staging], mounts=[staging / "output"], note=f"staging of the run {out_dir}")
    try:
        with stop_on_signals():
            staging.mkdir(mode=0o700)
            input_dir, output_dir = staging / "input", staging / "output"
            snapshot = stage_inputs(inputs, input_dir)
            with output_area(output_dir, size_mb=limits.output_mb, entries=limits.output_entries):
                started_at = _now()
                if runner == "docker":
                    execute, ran = _docker_executor(submission, input_dir, limits, client, progress, steps,
                                                    lease)
                else:
                    execute, ran = _process_executor(submission, limits, unsafe_no_sandbox, python)
                collect_from, problems, gc_rejected, gc_record = output_dir, {}, (), None
                if submission.interface == INTERFACE:
                    _step(progress, 1, steps, f"running each case (budget {limits.timeout_s} s)")
                    collect_from = staging / "converted"
                    gc_run = run_cases(
                        spec, inputs.cases, input_dir, staging / "grand-challenge", output_dir, collect_from,
                        limits, execute, on_case=lambda i, case_id: _step(progress, 2 + i, steps, case_id),
                    )
                    outcome, problems, gc_rejected, gc_record = (gc_run.outcome, gc_run.problems,
                                                                 gc_run.rejected, gc_run.record)
                else:
                    _step(progress, 1, steps, f"running (timeout {limits.timeout_s} s)")
                    outcome = execute(input_dir, output_dir, limits)
                ended_at = _now()
                _step(progress, 2, steps, "collecting outputs")
                with atomic_directory(out_dir) as tmp:
                    collection = collect_outputs(
                        spec,
                        inputs.cases,
                        collect_from,
                        input_dir,
                        tmp / "outputs",
                        cap_bytes=limits.output_mb * 1024 * 1024,
                        max_entries=limits.output_entries,
                    )
                    (tmp / "outputs").mkdir(exist_ok=True)
                    write_bytes(tmp / "logs" / "stdout.txt", outcome.stdout)
                    write_bytes(tmp / "logs" / "stderr.txt", outcome.stderr)
                    result = RunRecord(
                        run_dir=out_dir,
                        task=spec.id,
                        task_sha256=spec.sha256,
                        submission=submission.metadata(),
                        runner=runner,
                        isolated=ran.isolated,
                        isolation=ran.isolation,
                        image=ran.image,
                        command=ran.command,
                        limits=limits.model_dump(mode="json"),
                        started_at=started_at,
                        ended_at=ended_at,
                        duration_s=round(outcome.duration_s, 3),
                        exit_code=outcome.exit_code,
                        timed_out=outcome.timed_out,
                        oom_killed=outcome.oom_killed,
                        error=outcome.error,
                        inputs_sha256=snapshot.inputs_sha256,
                        split={"name": inputs.split_name, "split": inputs.split,
                               "sha256": inputs.split_sha256},
                        # the process runner without bubblewrap replaced the links by copies
                        inputs_staging=snapshot.staging if ran.isolated else "copy",
                        # a case the Grand Challenge layer decided (failed job, no or unreadable
                        # output) keeps that reason; every other case is the collection rule's
                        cases=tuple(problems.get(case.case_id, case) for case in collection.cases),
                        rejected=(*gc_rejected, *collection.rejected),
                        rejected_more=collection.rejected_more,
                        survivors=outcome.survivors.to_json() if outcome.survivors else None,
                        interface=submission.interface,
                        grand_challenge=gc_record,
                    )
                    write_json(tmp / "run.json", result.to_json())
    finally:
        remove_staging(staging)
        lease.release()
    _step(progress, steps, steps, f"{result.counts['ok']}/{len(result.cases)} cases ok")
    log.info("run of %s on %s: %s, %s", submission.name, spec.id, result.counts, result.error or "exit 0")
    return result


@dataclass
class _Ran:
    """What confined the run, for ``run.json``: filled by the executor (the process runner's sandbox
    is described when it runs)."""

    isolated: bool = True
    isolation: str = ""
    image: dict | None = None
    command: tuple[str, ...] | None = None


def _docker_executor(submission, input_dir, limits, client, progress, steps, lease):
    """The image (built, loaded or looked up once) and a function running one container of it."""
    from bench.runners.docker import ensure_image, run_container, run_labels
    from bench.runners.engine import docker_client
    from bench.runners.gc import reap_containers

    client = client or docker_client()
    reap_containers(client)
    _step(progress, 0, steps, "image")
    image, record = ensure_image(submission, client, scratch=input_dir.parent / "image", limits=limits)
    labels = run_labels(lease.id, time.time() + limits.timeout_s, Path(lease.paths[0]))
    isolation = (
        "docker: network none, read-only root, uid 65534, all capabilities dropped, no-new-privileges, "
        "seccomp (Docker's default, ptrace refused), init as PID 1, "
        f"pids {limits.pids}, memory {limits.memory} (no swap), {limits.cpus} CPUs, {limits.gpus} GPUs"
    )
    if submission.interface == INTERFACE:
        isolation += "; one such container per case"

    def execute(case_input: Path, case_output: Path, case_limits: Limits) -> ExecOutcome:
        return run_container(
            image, case_input, case_output, case_limits, client, labels=labels,
            on_created=lambda container_id: lease.update(container=container_id),
        )

    return execute, _Ran(True, isolation, record, None)


def _process_executor(submission, limits, unsafe, python):
    """A function running the submission's command once in the sandbox (see :mod:`bench.runners.process`)."""
    from bench.runners.process import bwrap_path, run_process

    if submission.interface == INTERFACE and bwrap_path() is None:
        raise RunnerError(
            f"{submission.source}: a grand-challenge submission reads /input and writes /output at "
            "those fixed paths, which the process runner can only give inside bubblewrap, and bwrap "
            "is not installed (or BENCH_NO_BWRAP=1). Install bubblewrap (apt-get install bubblewrap) "
            "or use the Docker runner; --unsafe-no-sandbox cannot run this interface."
        )
    ran = _Ran()

    def execute(case_input: Path, case_output: Path, case_limits: Limits) -> ExecOutcome:
        outcome, ran.isolated, ran.isolation, ran.command = run_process(
            submission, case_input, case_output, case_limits, unsafe=unsafe, python=python
        )
        return outcome

    return execute, ran


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _step(progress: Progress | None, done: int, total: int, description: str) -> None:
    if progress is not None:
        progress(done, total, description)
