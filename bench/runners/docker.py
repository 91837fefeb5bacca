"""The Docker runner: one locked-down container per run, through the ``docker`` SDK.

The container gets the prepared inputs read-only at ``/input``, an empty ``/output``, a
size-limited tmpfs at ``/tmp`` (and at every ``VOLUME`` its image declares) and nothing else
of the host: no network (``network_mode
none``), a read-only root filesystem, an unprivileged user (65534:65534, *nobody*), every
capability dropped, ``no-new-privileges``, Docker's default seccomp profile with tracing
refused (:mod:`bench.runners.seccomp`), an init process as PID 1 (it reaps orphans and
forwards the kill), limits on processes, memory (swap equal to memory, so none extra) and CPU,
GPUs only when asked. A wall-clock timeout kills it; an OOM kill is read from the engine's
state. Its stdout and stderr are read from the engine's attach stream while it runs and
capped as they come (:mod:`bench.runners.streams`): the engine keeps no log of its own.

Every container carries labels naming its run, its deadline and its staging folder, so a
harness killed mid-run leaves something :mod:`bench.runners.gc` can find and remove. After
the container is removed the harness checks that no task of it is left in any cgroup
(:mod:`bench.runners.cgroups`) and records what it found.
"""

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from bench.errors import RunnerError, SubmissionError
from bench.runners.base_image import BASE_IMAGE
from bench.runners.cgroups import Sweep, sweep
from bench.runners.dockerfile import check_dockerfile, check_not_another_entry
from bench.runners.intake import load_tarball, tag_entry_image
from bench.runners.result import ExecOutcome, describe_end
from bench.runners.seccomp import docker_security_opt
from bench.runners.staging import SUBMISSION_UID
from bench.runners.streams import CappedLog, drain_frames
from bench.runners.submission import Submission
from bench.tasks import Limits, parse_memory_bytes

log = logging.getLogger(__name__)

_BUILD_LOG_TAIL = 25
_HAND_BACK_TIMEOUT_S = 120
ROLE_LABEL = "ricord-bench.role"
RUN_LABEL = "ricord-bench.run-id"
DEADLINE_LABEL = "ricord-bench.deadline"
STAGING_LABEL = "ricord-bench.staging"


def ensure_image(submission: Submission, client, *, scratch: Path, limits: Limits | None = None):
    """The image to run and its record for ``run.json``: built, loaded from a tarball, or looked up.

    Builds from ``docker.context`` with no network during the build, once the Dockerfile is
    checked to fetch nothing and to start from no other entry's image
    (:func:`bench.runners.dockerfile.check_dockerfile`; no registry is assumed: the base image must
    already be in the engine), the build containers held to the run's
    memory limit when ``limits`` is given; the build creates no tag, the result is tagged with
    the entry's own name (:func:`bench.runners.intake.entry_reference`). A tarball goes through
    :func:`bench.runners.intake.load_tarball` (inspected, claims refused or dropped, loaded
    untagged from a copy under ``scratch``, then tagged the same way).

    Returns
    -------
    (image, record)
        The ``docker.models.images.Image`` and :func:`image_record` of it, with the tags a
        tarball claimed (none of them created) under ``claimed_tags``.

    Raises
    ------
    SubmissionError
        When the image is not in the engine, the build fails (with the end of the build log),
        or the tarball is refused or cannot be loaded.
    """
    import docker.errors

    if submission.docker_context is not None:
        check_dockerfile(submission.docker_context / submission.dockerfile, dict(submission.build_args),
                         client, team=submission.team, entry=submission.name)
        log.info("building %s / %s from %s", submission.team, submission.name, submission.docker_context)
        try:
            image, _ = client.images.build(
                path=str(submission.docker_context),
                dockerfile=submission.dockerfile,
                rm=True,
                forcerm=True,
                pull=False,
                network_mode="none",
                buildargs=dict(submission.build_args),
                container_limits=_build_limits(limits),
            )
        except docker.errors.BuildError as error:
            lines = [
                str(chunk.get("stream") or chunk.get("error") or "").rstrip() for chunk in error.build_log
            ]
            tail = "\n".join(line for line in lines if line)[-4000:].splitlines()[-_BUILD_LOG_TAIL:]
            raise SubmissionError(
                f"{submission.source}: docker build failed: {error.msg}\n"
                + "\n".join(tail)
                + "\nIf FROM names an image that is not in the engine, build the base image "
                "(`bench images base`) or pass --build-arg BASE_IMAGE=..."
            ) from error
        except docker.errors.APIError as error:
            raise SubmissionError(f"{submission.source}: the engine refused the build: {error}") from error
        image = tag_entry_image(image, submission.team, submission.name)
        return image, image_record(image)
    if submission.tarball is not None:
        image, inspected = load_tarball(submission.tarball, submission.team, submission.name, client,
                                        scratch=scratch)
        return image, {**image_record(image), "claimed_tags": list(inspected.claimed_tags)}
    if submission.image is not None:
        try:
            image = client.images.get(submission.image)
        except docker.errors.ImageNotFound as error:
            raise SubmissionError(
                f"image {submission.image!r} is not in the engine; no registry is contacted. "
                "Build or `docker load` it first."
            ) from error
        if submission.kind == "directory":  # the participant's submission.yaml named it, not the organizer
            check_not_another_entry(submission.image, image, team=submission.team, entry=submission.name)
        return image, image_record(image)
    raise SubmissionError(
        f"{submission.source}: submission.yaml has no 'docker' or 'image'; it can only run "
        "with --runner process."
    )


def _build_limits(limits: Limits | None) -> dict:
    if limits is None:
        return {}
    memory = parse_memory_bytes(limits.memory)
    return {"memory": memory, "memswap": memory}


def image_record(image) -> dict:
    """``{id, digest, tags}`` for run.json.

    ``digest`` is the registry digest when the image came from a registry; for an image built
    or loaded locally it is the content-addressed image id (the sha256 of its configuration,
    which names every layer by content), since no registry digest exists.
    """
    repo_digests = sorted(image.attrs.get("RepoDigests") or [])
    digest = repo_digests[0].split("@", 1)[1] if repo_digests else image.id
    return {"id": image.id, "digest": digest, "tags": sorted(image.tags)}


def run_labels(run_id: str, deadline: float, staging: Path) -> dict[str, str]:
    """The labels that let a later ``bench gc`` find a container a killed harness left behind."""
    return {RUN_LABEL: run_id, DEADLINE_LABEL: str(int(deadline)), STAGING_LABEL: str(staging)}


def container_options(
    image_id: str, input_dir: Path, output_dir: Path, limits: Limits, labels: Mapping[str, str],
    declared_volumes: Iterable[str] = (),
) -> dict:
    """Keyword arguments for ``client.containers.create``: the whole isolation policy in one place.

    ``declared_volumes`` are the image's ``VOLUME`` paths. The engine would make each an anonymous
    volume: a writable folder on the host's disk, outside every cap, left behind after the
    container is removed. Each gets a tmpfs of ``tmpfs_mb`` instead, as ``/tmp`` does (its pages
    count against the container's memory), so nothing the container writes reaches the host disk.
    """
    from docker.types import DeviceRequest, LogConfig, Ulimit

    memory = parse_memory_bytes(limits.memory)
    scratch = f"rw,nosuid,nodev,size={limits.tmpfs_mb}m,mode=1777"
    bound = {"/tmp", "/input", "/output"}
    options = {
        "image": image_id,
        "user": f"{SUBMISSION_UID}:{SUBMISSION_UID}",
        "network_mode": "none",
        "read_only": True,
        "tmpfs": {"/tmp": scratch, **{path: scratch for path in sorted(declared_volumes)
                                      if path.rstrip("/") not in bound}},
        "shm_size": limits.tmpfs_mb * 1024 * 1024,
        "volumes": {
            str(input_dir): {"bind": "/input", "mode": "ro"},
            str(output_dir): {"bind": "/output", "mode": "rw"},
        },
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges", docker_security_opt()],
        "init": True,
        "pids_limit": limits.pids,
        "mem_limit": memory,
        "memswap_limit": memory,
        "nano_cpus": int(limits.cpus * 1e9),
        "environment": {
            "BENCH_INPUT": "/input",
            "BENCH_OUTPUT": "/output",
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "OMP_NUM_THREADS": str(max(1, int(limits.cpus))),
            "OPENBLAS_NUM_THREADS": str(max(1, int(limits.cpus))),
        },
        "hostname": "submission",
        "ulimits": [Ulimit(name="core", soft=0, hard=0)],
        # the harness reads the attach stream, capped as it comes; the engine stores nothing
        "log_config": LogConfig(type="none"),
        "labels": {ROLE_LABEL: "submission", **labels},
        "detach": True,
    }
    if limits.gpus:
        options["device_requests"] = [DeviceRequest(count=limits.gpus, capabilities=[["gpu"]])]
    return options


def run_container(
    image,
    input_dir: Path,
    output_dir: Path,
    limits: Limits,
    client,
    *,
    labels: Mapping[str, str],
    on_created: Callable[[str], None] | None = None,
) -> ExecOutcome:
    """Run the image once under :func:`container_options`; kill it at ``limits.timeout_s``.

    ``on_created`` is called with the container id as soon as it exists (the run's lease
    records it). The container is removed in every case, then its cgroups are swept.

    Raises
    ------
    RunnerError
        When the engine cannot create or start the container (e.g. GPUs asked for and none).
    """
    import docker.errors
    import requests

    declared = ((image.attrs.get("Config") or {}).get("Volumes") or {}).keys()
    options = container_options(image.id, input_dir, output_dir, limits, labels, declared)
    try:
        container = client.containers.create(**options)
    except docker.errors.APIError as error:
        raise RunnerError(f"the engine could not create the container for {image.id}: {error}") from error
    if on_created is not None:
        on_created(container.id)
    stdout, stderr = CappedLog(), CappedLog()
    timed_out = False
    try:
        frames = container.attach(stdout=True, stderr=True, stream=True, demux=True, logs=False)
        reader = drain_frames(frames, stdout, stderr)
        started = time.monotonic()
        try:
            container.start()
        except docker.errors.APIError as error:
            raise RunnerError(f"the engine could not start the container for {image.id}: {error}") from error
        try:
            status = container.wait(timeout=limits.timeout_s)
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            timed_out = True
            log.warning(
                "container %s passed its %d s timeout; killing it", container.short_id, limits.timeout_s
            )
            _kill(container)
            status = container.wait(timeout=60)
        duration = time.monotonic() - started
        container.reload()
        state = container.attrs["State"]
        reader.join(timeout=10)
    finally:
        try:
            container.remove(force=True, v=True)
        except docker.errors.APIError as error:
            log.warning("could not remove container %s: %s", container.short_id, error)
        if os.geteuid() != 0:
            hand_back_output(client, input_dir, output_dir, limits, labels)
    exit_code = status.get("StatusCode", state.get("ExitCode"))
    oom = bool(state.get("OOMKilled"))
    return ExecOutcome(
        exit_code=exit_code,
        timed_out=timed_out,
        oom_killed=oom,
        duration_s=duration,
        stdout=stdout.value(),
        stderr=stderr.value(),
        error=describe_end(exit_code, timed_out, oom, limits),
        survivors=sweep_container(client, container),
    )


def hand_back_output(client, input_dir: Path, output_dir: Path, limits: Limits,
                     labels: Mapping[str, str]) -> None:
    """Let a harness that is not root read and remove what the container left in ``output_dir``.

    The container wrote as uid 65534, so a folder it left of mode 000 (or any file of mode 0600)
    is one the harness's user may neither read nor delete: collection could not look into it
    and the staging folder would stay on the host. A short container of the base image, as
    65534 and under the same lockdown, runs ``chmod -R a+rwX /output`` (links are not followed)
    before collection. As root, nothing is needed.
    """
    import docker.errors
    import requests

    options = {**container_options(BASE_IMAGE, input_dir, output_dir, limits, labels),
               "entrypoint": ["chmod"], "command": ["-R", "a+rwX", "/output"]}
    try:
        helper = client.containers.create(**options)
    except docker.errors.APIError as error:
        log.warning("could not hand %s back to the harness's user (%s): what the submission locked "
                    "there stays unread and is left on disk", output_dir, error)
        return
    try:
        helper.start()
        helper.wait(timeout=_HAND_BACK_TIMEOUT_S)
    except (docker.errors.APIError, requests.exceptions.RequestException) as error:
        log.warning("handing %s back to the harness's user failed: %s", output_dir, error)
    finally:
        try:
            helper.remove(force=True, v=True)
        except docker.errors.APIError as error:
            log.warning("could not remove container %s: %s", helper.short_id, error)


def sweep_container(client, container) -> Sweep:
    """Check that no task of a removed container is left in its cgroup; kill any that is.

    The cgroup is named by the engine's cgroup driver: ``<parent or /docker>/<id>`` for
    ``cgroupfs``, ``<parent or system.slice>/docker-<id>.scope`` for ``systemd``. When the
    engine's hierarchy is not visible from here (a remote engine), nothing can be checked
    and the sweep says so.
    """
    parent = (container.attrs.get("HostConfig") or {}).get("CgroupParent") or ""
    if client.info().get("CgroupDriver") == "systemd":
        relative = f"{parent or 'system.slice'}/docker-{container.id}.scope"
    else:
        relative = f"{parent or '/docker'}/{container.id}"
    return sweep(relative)


def _kill(container) -> None:
    import docker.errors

    try:
        container.kill()
    except docker.errors.APIError as error:  # it may have exited between the timeout and the kill
        log.info("kill of %s: %s", container.short_id, error)
