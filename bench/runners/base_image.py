"""The local base image ``ricord-bench/python:bookworm``, built without any container registry.

Reference submissions (and participants who have no registry) start ``FROM`` this image. It is
a Debian root filesystem made by ``mmdebstrap`` from the host's own Debian package sources
(the mirror and suites in ``/etc/apt/sources.list*``), with python3, numpy, scipy and nibabel
from Debian, packed as a tarball and imported into the engine with ``docker import``. Nothing
is pulled from a registry, so the image builds wherever ``apt-get`` works.
"""

import logging
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.errors import ImageBuildError
from bench.trees import claim_files, record_files

log = logging.getLogger(__name__)

BASE_IMAGE = "ricord-bench/python:bookworm"
BASE_PACKAGES = ("python3", "python3-numpy", "python3-scipy", "python3-nibabel")
# Documentation, manual pages, translations and C/C++ headers are dropped: no submission reads
# them at run time, and the headers (boost, pulled in by scipy's dependency on pythran) alone
# are ~190 MB.
_PATH_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/locale/*",
    "/usr/share/info/*",
    "/usr/include/*",
)
_IMAGE_CHANGES = (
    "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LANG=C.UTF-8 HOME=/tmp",
    "USER 65534:65534",
    "WORKDIR /",
    'CMD ["python3"]',
)

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class BaseImageReport:
    """What :func:`build_base_image` did.

    ``built`` is False when the image already existed and was kept; ``duration_s`` then
    covers only the check. ``tarball`` is the kept root filesystem tarball, if asked for.
    """

    tag: str
    image_id: str
    built: bool
    duration_s: float
    sources: tuple[str, ...]
    packages: tuple[str, ...]
    size_bytes: int
    tarball: Path | None = None


def host_debian_sources(*, root: Path = Path("/")) -> tuple[str, tuple[str, ...]]:
    """The host's Debian codename and its Debian ``deb`` lines, one-line format.

    Reads ``etc/os-release`` and every ``etc/apt/sources.list`` / ``sources.list.d/*.list``
    (one-line format) and ``*.sources`` (deb822) under ``root``, keeping only the entries
    for the host's own suites (``<codename>``, ``-updates``, ``-security``): third-party
    repositories on the host are left out of the image.

    Raises
    ------
    ImageBuildError
        When the host is not Debian-based or lists no Debian source for its codename.
    """
    codename = _codename(root)
    suites = {codename, f"{codename}-updates", f"{codename}-security"}
    entries: list[tuple[str, str, str]] = []
    apt = root / "etc" / "apt"
    files = [apt / "sources.list"] + sorted((apt / "sources.list.d").glob("*"))
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".sources":
            entries += _parse_deb822(text)
        elif path.suffix == ".list" or path.name == "sources.list":
            entries += _parse_one_line(text)
    lines = []
    for uri, suite, components in entries:
        line = f"deb {uri} {suite} {components}"
        if suite in suites and line not in lines:
            lines.append(line)
    if not any(line.split()[2] == codename for line in lines):
        raise ImageBuildError(
            f"no Debian package source for {codename!r} in {apt}/sources.list*; found {entries or 'none'}. "
            "Add the Debian mirror for the host's release, or pass a mirror line explicitly."
        )
    return codename, tuple(lines)


def _codename(root: Path) -> str:
    path = root / "etc" / "os-release"
    fields = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            fields[key] = value.strip().strip('"')
    codename = fields.get("VERSION_CODENAME")
    if fields.get("ID") != "debian" and "debian" not in fields.get("ID_LIKE", ""):
        raise ImageBuildError(
            f"{path}: the host is not Debian-based (ID={fields.get('ID')!r}); "
            "the base image is built from the host's Debian package sources."
        )
    if not codename:
        raise ImageBuildError(f"{path}: no VERSION_CODENAME; cannot tell which Debian release to build.")
    return codename


def _parse_one_line(text: str) -> list[tuple[str, str, str]]:
    entries = []
    for raw in text.splitlines():
        line = re.sub(r"\[[^\]]*\]", " ", raw.split("#", 1)[0]).split()
        if len(line) >= 4 and line[0] == "deb":
            entries.append((line[1], line[2], " ".join(line[3:])))
    return entries


def _parse_deb822(text: str) -> list[tuple[str, str, str]]:
    entries = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                entries.append((uri, suite, fields.get("components", "main")))
    return entries


def mmdebstrap_command(
    codename: str, sources: tuple[str, ...], tarball: Path, *, packages: tuple[str, ...] = BASE_PACKAGES
) -> list[str]:
    """The ``mmdebstrap`` call that writes the base root filesystem to ``tarball``."""
    command = [
        "mmdebstrap",
        "--variant=minbase",
        "--format=tar",
        "--mode=auto",
        f"--include={','.join(packages)}",
        '--aptopt=APT::Install-Recommends "false"',
    ]
    command += [f"--dpkgopt=path-exclude={pattern}" for pattern in _PATH_EXCLUDES]
    command += [codename, str(tarball), *sources]
    return command


def build_base_image(
    *,
    tag: str = BASE_IMAGE,
    rebuild: bool = False,
    sources: tuple[str, ...] | None = None,
    keep_tarball: Path | None = None,
    client=None,
    progress: Progress | None = None,
) -> BaseImageReport:
    """Build the local base image with ``mmdebstrap`` + ``docker import``, unless it exists.

    Parameters
    ----------
    tag
        Image reference to create, ``ricord-bench/python:bookworm`` by default.
    rebuild
        Build even when ``tag`` already exists (the old image is replaced under the tag).
    sources
        ``deb URI SUITE COMPONENTS`` lines; by default the host's Debian sources
        (:func:`host_debian_sources`).
    keep_tarball
        Where to keep the root filesystem tarball; by default it is deleted after the import. An
        existing file there is replaced only when the harness wrote it (:func:`bench.trees.claim_files`).
    client
        A ``docker.DockerClient``; by default one from the environment.

    Raises
    ------
    ImageBuildError
        When mmdebstrap is missing or fails, or the engine refuses the import.
    """
    from bench.runners.engine import docker_client

    if keep_tarball is not None:
        claim_files([keep_tarball], option="--keep-tarball")
    client = client or docker_client()
    started = time.monotonic()
    existing = _find_image(client, tag)
    codename, host_sources = host_debian_sources() if sources is None else ("", ())
    sources = tuple(sources) if sources is not None else host_sources
    if existing is not None and not rebuild:
        log.info("base image %s exists (%s); not rebuilding", tag, existing.id)
        return BaseImageReport(
            tag=tag,
            image_id=existing.id,
            built=False,
            duration_s=time.monotonic() - started,
            sources=sources,
            packages=BASE_PACKAGES,
            size_bytes=existing.attrs.get("Size", 0),
        )
    if shutil.which("mmdebstrap") is None:
        raise ImageBuildError(
            "mmdebstrap is not installed; it builds the base image from Debian packages. "
            "Install it with `apt-get install mmdebstrap` (scripts/start-dockerd.sh does)."
        )
    codename = codename or sources[0].split()[2]
    workdir = Path(tempfile.mkdtemp(prefix="bench-base-image-"))
    tarball = workdir / "rootfs.tar"
    try:
        _progress(progress, 0, "mmdebstrap: Debian root filesystem")
        command = mmdebstrap_command(codename, sources, tarball)
        log.info("running %s", " ".join(command))
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-15:])
            raise ImageBuildError(
                f"mmdebstrap failed (exit {done.returncode}) building {tag} from {list(sources)}:\n"
                f"{tail}\nCheck that the Debian mirror is reachable (`apt-get update`)."
            )
        _progress(progress, 1, "docker import")
        image_id = _import(client, tarball, tag)
        if keep_tarball is not None:
            keep_tarball = Path(keep_tarball)
            keep_tarball.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(tarball), keep_tarball)
            record_files([keep_tarball])
        _progress(progress, 2, "done")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    image = client.images.get(image_id)
    if existing is not None and existing.id != image.id:
        _remove_quietly(client, existing.id)
    report = BaseImageReport(
        tag=tag,
        image_id=image.id,
        built=True,
        duration_s=time.monotonic() - started,
        sources=sources,
        packages=BASE_PACKAGES,
        size_bytes=image.attrs.get("Size", 0),
        tarball=keep_tarball,
    )
    log.info("built %s (%s) in %.1f s", tag, image.id, report.duration_s)
    return report


def _import(client, tarball: Path, tag: str) -> str:
    import docker.errors

    repository, _, version = tag.rpartition(":")
    if not repository or "/" in version:
        repository, version = tag, "latest"
    try:
        answer = client.api.import_image_from_file(
            str(tarball), repository=repository, tag=version, changes=list(_IMAGE_CHANGES)
        )
    except docker.errors.APIError as error:
        raise ImageBuildError(f"docker import of {tarball} as {tag} failed: {error}") from error
    match = re.search(r"sha256:[0-9a-f]{64}", str(answer))
    if match is None:
        raise ImageBuildError(f"docker import of {tarball} as {tag} gave no image id: {answer!r}")
    return match.group(0)


def _remove_quietly(client, image_id: str) -> None:
    """Drop the image a rebuild replaced, unless something (a submission image) still uses it."""
    import docker.errors

    try:
        client.images.remove(image_id)
    except docker.errors.APIError as error:
        log.info("kept the replaced base image %s: %s", image_id, error)


def _find_image(client, tag: str):
    import docker.errors

    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None


def _progress(progress: Progress | None, done: int, description: str) -> None:
    if progress is not None:
        progress(done, 2, description)
