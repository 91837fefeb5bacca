"""``ricord-bench/python-simpleitk:bookworm``: the base image plus SimpleITK, built without network.

Grand Challenge algorithm containers read and write ``.mha`` with SimpleITK, which Debian does
not package, so the base image (:mod:`bench.runners.base_image`, Debian packages only) lacks it,
and ``bench run`` builds submissions with no network, so a Dockerfile cannot ``pip install``
it. The harness itself depends on SimpleITK, so the machine that runs ``bench`` always has an
installed copy: this module copies that installation (the files its wheel installed, as
``importlib.metadata`` lists them) into a layer on top of the base image. SimpleITK's wheels use
Python's stable ABI (``cp311-abi3``: any CPython from 3.11 on) and bundle ITK statically, so the
copy runs on the base image's Python when the wheel's tags allow it; :func:`check_wheel_tags`
refuses otherwise, naming both.
"""

import importlib.metadata
import logging
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.errors import ImageBuildError
from bench.io import link_or_copy
from bench.runners.base_image import BASE_IMAGE

log = logging.getLogger(__name__)

SIMPLEITK_IMAGE = "ricord-bench/python-simpleitk:bookworm"
SITE = "/opt/simpleitk"
"""Where the image holds SimpleITK; on ``PYTHONPATH``."""
VERSION_LABEL = "ricord-bench.simpleitk-version"


@dataclass(frozen=True)
class SimpleItkImageReport:
    """What :func:`build_simpleitk_image` did; ``built`` is False when the image existed and was kept."""

    tag: str
    image_id: str
    built: bool
    version: str
    duration_s: float


def check_wheel_tags(tags: list[str], python: tuple[int, int], machine: str) -> None:
    """Refuse an installed SimpleITK whose wheel tags do not run on CPython ``python`` on ``machine``.

    A tag is ``<python>-<abi>-<platform>``: ``cp311-abi3-manylinux_2_17_x86_64`` runs on any
    CPython >= 3.11; ``cp312-cp312-...`` only on 3.12. The platform must be a Linux one for
    ``machine`` (the base image is glibc Debian, so manylinux fits).

    Raises
    ------
    ImageBuildError
        When no tag fits, with the tags and the target named.
    """
    for tag in tags:
        parts = tag.split("-")
        if len(parts) != 3:
            continue
        interpreter, abi, platform = parts
        found = re.fullmatch(r"cp3(\d+)", interpreter)
        if not found or not platform.endswith(machine) or "linux" not in platform:
            continue
        minor = int(found.group(1))
        if (abi == "abi3" and python >= (3, minor)) or (abi == interpreter and python == (3, minor)):
            return
    raise ImageBuildError(
        f"the installed SimpleITK (wheel tags {', '.join(tags) or 'none'}) does not run on the base "
        f"image's CPython {python[0]}.{python[1]} on {machine}. Install a SimpleITK wheel built for "
        "the stable ABI (SimpleITK >= 2.3 publishes cp311-abi3 wheels) into the harness's environment."
    )


def build_simpleitk_image(
    client=None, *, base: str = BASE_IMAGE, tag: str = SIMPLEITK_IMAGE, rebuild: bool = False
) -> SimpleItkImageReport:
    """Build ``tag`` from ``base`` plus the harness's installed SimpleITK, unless it exists.

    The build runs with no network and does not pull: ``base`` must be in the engine
    (``bench images base``).

    Raises
    ------
    ImageBuildError
        When SimpleITK is not installed as a wheel, its tags do not fit the base image's Python,
        the base image is missing, or the build fails.
    """
    import docker.errors

    from bench.runners.engine import docker_client

    client = client or docker_client()
    started = time.monotonic()
    distribution = importlib.metadata.distribution("SimpleITK")
    version = distribution.version
    if not rebuild:
        try:
            existing = client.images.get(tag)
        except docker.errors.ImageNotFound:
            existing = None
        if existing is not None:
            return SimpleItkImageReport(tag, existing.id, False, existing.labels.get(VERSION_LABEL, "?"),
                                        time.monotonic() - started)
    python, machine = _base_python(client, base)
    wheel = distribution.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")]
    check_wheel_tags(tags, python, machine)
    with tempfile.TemporaryDirectory(prefix="bench-simpleitk-") as context:
        copied = _copy_installation(distribution, Path(context) / "site")
        (Path(context) / "Dockerfile").write_text(
            f"FROM {base}\nCOPY site/ {SITE}/\nENV PYTHONPATH={SITE}\nLABEL {VERSION_LABEL}={version}\n"
        )
        log.info("building %s from %s with SimpleITK %s (%d files)", tag, base, version, copied)
        try:
            image, _ = client.images.build(path=context, tag=tag, pull=False, network_mode="none", rm=True,
                                           forcerm=True)
        except (docker.errors.BuildError, docker.errors.APIError) as error:
            raise ImageBuildError(f"building {tag} from {base} failed: {error}") from error
    return SimpleItkImageReport(tag, image.id, True, version, time.monotonic() - started)


def _base_python(client, base: str) -> tuple[tuple[int, int], str]:
    """The base image's CPython version and machine, asked of the image itself (no network)."""
    import docker.errors

    script = "import platform, sys; print(sys.version_info[0], sys.version_info[1], platform.machine())"
    try:
        output = client.containers.run(base, ["-c", script], entrypoint=["python3"], network_mode="none",
                                       remove=True, user="65534:65534")
    except docker.errors.ImageNotFound as error:
        raise ImageBuildError(
            f"the base image {base} is not in the engine; build it with `bench images base`."
        ) from error
    except docker.errors.APIError as error:
        raise ImageBuildError(f"could not ask {base} for its Python version: {error}") from error
    major, minor, machine = output.decode().split()
    return (int(major), int(minor)), machine


def _copy_installation(distribution, destination: Path) -> int:
    """Copy the files the wheel installed (not byte-code caches) under ``destination``; return how many."""
    count = 0
    for item in distribution.files or ():
        if "__pycache__" in item.parts or item.parts[0] in ("..", "/"):
            continue
        source = Path(item.locate())
        if not source.is_file():
            continue
        target = destination / Path(*item.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not link_or_copy(source, target):
            shutil.copymode(source, target)  # the .so stays executable, every file readable by 65534
        count += 1
    if count == 0:
        raise ImageBuildError("SimpleITK's installation lists no files (not installed from a wheel?)")
    return count
