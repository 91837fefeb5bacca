"""Loading a submission: a folder with ``submission.yaml``, a ``docker save`` tarball, or an image name.

An entry is identified by the pair (team, entry name), never by a file name: two teams that
both send ``model.tar`` are two entries. A submission folder names both in ``submission.yaml``
(``team`` and ``name``, validated field by field, so a participant sees every mistake at
once); a tarball or an image reference carries no trustworthy name, so the organizer gives
both (``--team`` and ``--entry``). Explicit values override the folder's. The same holds for
the ``interface``: ``native`` (the container reads ``/input/cases.json`` and writes every case
in one run) or ``grand-challenge`` (an unchanged Grand Challenge algorithm container, run once
per case; :mod:`bench.runners.grandchallenge`). Nothing here talks
to the engine: building, loading and resolving images is the Docker runner's job.
"""

import gzip
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bench.errors import SubmissionError
from bench.io import read_yaml_model

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""An entry name: what ``submission.yaml``'s ``name`` and ``--entry`` accept."""
TEAM_MAX_LENGTH = 200
# docker reference grammar, simplified: [registry[:port]/]path[:tag][@digest]
_IMAGE_REF = re.compile(
    r"^[a-z0-9][a-z0-9._/:-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
_TARBALL_SUFFIXES = (".tar", ".tar.gz", ".tgz")
_CONFIG_SUFFIXES = (".yaml", ".yml")
Interface = Literal["native", "grand-challenge"]
INTERFACES: tuple[str, ...] = ("native", "grand-challenge")


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DockerBuild(_Config):
    """How to build the submission's image: a context folder and a Dockerfile inside it."""

    context: str = "."
    dockerfile: str = "Dockerfile"
    build_args: dict[str, str] = {}


class SubmissionConfig(_Config):
    """The model of ``submission.yaml``.

    ``docker`` (build from a Dockerfile) or ``image`` (an image already in the engine) is what
    the Docker runner runs; ``command`` is what the process runner runs, from the submission
    folder, with ``{python}`` replaced by the harness's Python interpreter. ``interface`` says
    which container contract the code follows (``native`` or ``grand-challenge``).
    """

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    team: Annotated[str, Field(min_length=1, max_length=TEAM_MAX_LENGTH)]
    description: Annotated[str, Field(max_length=5000)] = ""
    docker: DockerBuild | None = None
    image: str | None = None
    command: Annotated[list[str], Field(min_length=1)] | None = None
    interface: Interface = "native"

    @model_validator(mode="after")
    def _something_to_run(self) -> "SubmissionConfig":
        if self.docker is None and self.image is None and self.command is None:
            raise ValueError("give at least one of 'docker' (a Dockerfile build), 'image' or 'command'")
        if self.docker is not None and self.image is not None:
            raise ValueError("give either 'docker' (build) or 'image' (already built), not both")
        if self.image is not None and not _IMAGE_REF.match(self.image):
            raise ValueError(f"'image' {self.image!r} is not a Docker image reference")
        return self


@dataclass(frozen=True)
class Submission:
    """A loaded submission, ready for a runner.

    ``team`` and ``name`` (the entry's name within its team) identify the entry. ``kind`` says
    where the code comes from: ``directory`` (``submission.yaml``), ``tarball`` (``docker
    save`` output) or ``image`` (a reference the engine already has). ``source`` is what the
    user named, recorded in ``run.json``. ``interface`` is the container contract it follows.
    """

    name: str
    team: str
    description: str
    source: str
    kind: Literal["directory", "tarball", "image"]
    directory: Path | None = None
    docker_context: Path | None = None
    dockerfile: str | None = None
    build_args: tuple[tuple[str, str], ...] = ()
    image: str | None = None
    tarball: Path | None = None
    command: tuple[str, ...] | None = None
    interface: Interface = "native"

    def metadata(self) -> dict:
        """The ``submission`` block of ``run.json``."""
        return {"name": self.name, "team": self.team, "description": self.description, "source": self.source}


def load_submission(
    source: str | os.PathLike,
    *,
    team: str | None = None,
    entry: str | None = None,
    interface: str | None = None,
) -> Submission:
    """Load a submission from a folder, a ``docker save`` tarball or an image reference.

    Parameters
    ----------
    source
        A folder holding ``submission.yaml``, or a ``.yaml`` file of that format (its folder is
        the submission folder: one folder may hold several entries sharing code); a
        ``.tar``/``.tar.gz``/``.tgz`` file written by ``docker save``; or an image reference
        (``team/model:1``) present in the engine.
    team, entry
        Who the entry belongs to and its name within the team. Required for a tarball or an
        image reference; for a folder they override ``submission.yaml``'s ``team`` and ``name``.
    interface
        ``native`` or ``grand-challenge``; overrides ``submission.yaml``'s ``interface``. A
        tarball or an image reference is ``native`` unless told otherwise.

    Raises
    ------
    SubmissionError
        When the folder has no or an invalid ``submission.yaml`` (every invalid field listed),
        when the build context or Dockerfile lies outside the folder, when a tarball or image
        comes without ``team`` and ``entry``, when ``interface`` is not one of
        :data:`INTERFACES`, or when ``source`` is none of the three.
    """
    text = os.fspath(source)
    path = Path(text)
    _check_identity(team, entry)
    if interface is not None and interface not in INTERFACES:
        raise SubmissionError(
            f"interface {interface!r} is not one of {', '.join(INTERFACES)}: 'native' reads "
            "/input/cases.json and writes every case in one run, 'grand-challenge' is a Grand "
            "Challenge algorithm container run once per case (docs/submissions.md)."
        )
    loaded = _load(path, text, team, entry)
    return replace(loaded, interface=interface or loaded.interface)


def _load(path: Path, text: str, team: str | None, entry: str | None) -> Submission:
    if path.is_dir() or (path.is_file() and path.suffix in _CONFIG_SUFFIXES):
        loaded = _from_directory(path) if path.is_dir() else _from_directory(path.parent, path.name)
        return replace(loaded, team=team or loaded.team, name=entry or loaded.name)
    if path.is_file():
        if not path.name.endswith(_TARBALL_SUFFIXES):
            raise SubmissionError(
                f"{path}: a submission file must be a `docker save` tarball "
                f"({', '.join(_TARBALL_SUFFIXES)}) or a submission.yaml-style file "
                f"({', '.join(_CONFIG_SUFFIXES)}); got {path.name!r}."
            )
        _check_tarball(path)
        team, entry = _required_identity(team, entry, f"{path}: a `docker save` tarball")
        return Submission(
            name=entry,
            team=team,
            description="",
            source=str(path.resolve()),
            kind="tarball",
            tarball=path.resolve(),
        )
    if _IMAGE_REF.match(text):
        team, entry = _required_identity(team, entry, f"image {text!r}")
        return Submission(name=entry, team=team, description="", source=text, kind="image", image=text)
    raise SubmissionError(
        f"submission {text!r}: not a folder with submission.yaml, not a `docker save` "
        "tarball, and not an image reference. Give one of the three."
    )


def _from_directory(path: Path, config_name: str = "submission.yaml") -> Submission:
    config_path = path / config_name
    if not config_path.is_file():
        raise SubmissionError(
            f"{path}: no submission.yaml. A submission folder needs one with name, team, "
            "description and docker/image/command; see docs/submissions.md."
        )
    config = read_yaml_model(config_path, SubmissionConfig, error=SubmissionError, what="fields",
                             docs="docs/submissions.md for the format")
    root = path.resolve()
    context = dockerfile = None
    if config.docker is not None:
        context = _inside(root, config.docker.context, config_path, "docker.context")
        dockerfile_path = _inside(context, config.docker.dockerfile, config_path, "docker.dockerfile")
        if not dockerfile_path.is_file():
            raise SubmissionError(
                f"{config_path}: docker.dockerfile {config.docker.dockerfile!r} does not "
                f"exist in the build context {context}."
            )
        dockerfile = dockerfile_path.relative_to(context).as_posix()
    return Submission(
        name=config.name,
        team=config.team,
        description=config.description,
        source=str(root),
        kind="directory",
        directory=root,
        docker_context=context,
        dockerfile=dockerfile,
        build_args=tuple(sorted(config.docker.build_args.items())) if config.docker else (),
        image=config.image,
        command=tuple(config.command) if config.command else None,
        interface=config.interface,
    )


def _inside(root: Path, relative: str, config_path: Path, field_name: str) -> Path:
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise SubmissionError(
            f"{config_path}: {field_name} {relative!r} points outside the submission "
            f"folder {root}; keep everything the build needs inside it."
        )
    return target


def _check_tarball(path: Path) -> None:
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as handle:
            try:
                head = handle.read(512)
            except (OSError, EOFError) as error:
                raise SubmissionError(f"{path}: not a readable gzip file ({error}).") from error
    if len(head) < 512 or head[257:262] != b"ustar":
        raise SubmissionError(
            f"{path}: not a tar archive; expected the output of `docker save IMAGE -o FILE`."
        )


def _check_identity(team: str | None, entry: str | None) -> None:
    problems = []
    if team is not None and not (team.strip() and len(team) <= TEAM_MAX_LENGTH):
        problems.append(f"team {team!r} must be 1 to {TEAM_MAX_LENGTH} characters, not blank")
    if entry is not None and not re.match(NAME_PATTERN, entry):
        problems.append(f"entry {entry!r} must match {NAME_PATTERN} (letters, digits, '.', '_', '-')")
    if problems:
        raise SubmissionError("; ".join(problems) + ".")


def _required_identity(team: str | None, entry: str | None, what: str) -> tuple[str, str]:
    missing = [flag for flag, value in (("--team", team), ("--entry", entry)) if not value]
    if missing:
        raise SubmissionError(
            f"{what} carries no trustworthy team or entry name; pass {' and '.join(missing)}. "
            "The file or image name is never used: two teams' model.tar would become one entry."
        )
    return team, entry  # type: ignore[return-value]
