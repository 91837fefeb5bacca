"""What a submission's Dockerfile may make the engine fetch or read, checked before it builds.

``network_mode none`` cuts the build's ``RUN`` steps off the network, but the builder itself is
the engine, on the host: ``ADD <url>`` is downloaded by the engine from the host's network (a
request from the organizer's machine to its loopback services, a cloud metadata endpoint, or
anywhere), and a ``FROM`` or ``COPY --from`` image the engine does not have is pulled from a
registry. A build can also start ``FROM`` any image the engine holds, another entry's included
(its image id is on that entry's receipt), and so copy a competitor's model. So the Dockerfile
is read first with Docker's own parser (the ``dockerfile`` package wraps it, so continuation
lines, the ``escape`` directive and JSON forms mean here what they mean to the engine):

- every ``ADD`` source is a path of the build context: no URL, no git reference, and no ``$``
  (a build argument could make it one); ``COPY`` does the same job for local files;
- every ``FROM`` and ``COPY --from`` names ``scratch``, an earlier stage, or an image the engine
  already has (build arguments and global ``ARG`` defaults substituted as the engine does),
  never with ``--platform`` (another platform is pulled), and not an image that only another
  entry's name carries (:func:`check_not_another_entry`, applied to ``image:`` too);
- ``ONBUILD`` triggers obey the same rules, those of the images and those the file sets (a later
  stage ``FROM`` the stage that set one runs it in this build).
"""

import re
from collections.abc import Mapping
from pathlib import Path

from bench.errors import SubmissionError
from bench.runners.intake import ENTRY_NAMESPACE, entry_repository

_VARIABLE = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<op>[-+])(?P<word>[^}]*))?\}"
                       r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_REMOTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|git@)")


def check_dockerfile(dockerfile: Path, build_args: Mapping[str, str], client, *, team: str,
                     entry: str) -> None:
    """Refuse a Dockerfile whose build would fetch from a network or start from another entry's image.

    Raises
    ------
    SubmissionError
        Naming the line and what it asked for, and what to write instead.
    """
    import dockerfile as parser

    try:
        commands = parser.parse_file(str(dockerfile))
    except parser.GoParseError as error:
        raise SubmissionError(f"{dockerfile}: not a Dockerfile the engine can read ({error}).") from error
    arguments = _global_arguments(commands, build_args)
    stages: list[str] = []
    problems = []
    for command in commands:
        where = f"line {command.start_line} ({command.original[:120]!r})"
        # the engine reads `add` as ADD (the parser keeps the case), and runs an ONBUILD trigger
        # when a later stage of this very file starts FROM the stage that set it
        instruction = (command.sub_cmd if command.cmd.upper() == "ONBUILD" else command.cmd or "").upper()
        if instruction == "FROM":
            image, name = _from_parts(command)
            if any(flag.lower().startswith("--platform") for flag in command.flags):
                problems.append(f"{where}: --platform may pull an image for another platform")
            problems += _image_problems(_substitute(image, arguments), stages, client, team, entry, where)
            stages.append(name.lower())
        elif instruction == "COPY":
            for flag in command.flags:
                if flag.lower().startswith("--from="):
                    source = flag[len("--from="):]
                    problems += _image_problems(_substitute(source, arguments), stages, client, team, entry,
                                                where)
        elif instruction == "ADD":
            problems += add_problems(command, where)
    if problems:
        raise SubmissionError(
            f"{dockerfile}: refused before building; the build would reach beyond its context: "
            + "; ".join(problems)
            + ". The engine builds with no registry and no network: COPY files from the build context, "
            "and start FROM the base image (`bench images base`) or an image already in the engine."
        )


def check_not_another_entry(reference: str, image, *, team: str, entry: str) -> None:
    """Refuse an image named by, or carrying only the names of, another entry's images.

    Raises
    ------
    SubmissionError
        Naming the reference and whose entry image it is.
    """
    problem = _entry_problem(reference, image, team, entry)
    if problem is not None:
        raise SubmissionError(f"image {reference!r}: {problem}; an entry runs its own image only.")


def add_problems(command, where: str) -> list[str]:
    """Why one parsed ``ADD`` instruction would fetch something outside the build context."""
    sources = command.value[:-1]
    found = []
    for source in sources:
        if _REMOTE.match(source):
            found.append(f"{where}: ADD {source!r} is downloaded by the engine from the host's network")
        elif "$" in source:
            found.append(f"{where}: ADD {source!r} holds a variable, which a build argument could make a URL")
    return found


def _global_arguments(commands, build_args: Mapping[str, str]) -> dict[str, str]:
    """The ``ARG``s before the first ``FROM`` (the ones ``FROM`` may use), build arguments first."""
    found: dict[str, str] = {}
    for command in commands:
        if command.cmd.upper() == "FROM":
            break
        if command.cmd.upper() == "ARG":
            for item in command.value:
                name, has_default, default = item.partition("=")
                found[name] = build_args.get(name, default if has_default else "")
    return found


def _substitute(text: str, arguments: Mapping[str, str]) -> str:
    def value(match: re.Match) -> str:
        name = match.group("braced") or match.group("bare")
        current = arguments.get(name, "")
        if match.group("op") == "-":
            return current or match.group("word")
        if match.group("op") == "+":
            return match.group("word") if current else ""
        return current

    return _VARIABLE.sub(value, text)


def _from_parts(command) -> tuple[str, str]:
    """(image, stage name) of ``FROM image [AS name]``."""
    values = list(command.value)
    image = values[0] if values else ""
    name = values[2] if len(values) >= 3 and values[1].lower() == "as" else ""
    return image, name


def _image_problems(reference: str, stages: list[str], client, team: str, entry: str,
                    where: str) -> list[str]:
    import docker.errors

    if reference.lower() in stages or reference == "scratch":
        return []
    if reference.isdigit() and int(reference) < len(stages):
        return []
    if not reference or "$" in reference:
        return [f"{where}: image {reference!r} is not a name once build arguments are substituted"]
    try:
        image = client.images.get(reference)
    except docker.errors.ImageNotFound:
        return [f"{where}: image {reference!r} is not in the engine, so the build would pull it"]
    except docker.errors.APIError as error:
        return [f"{where}: image {reference!r} cannot be looked up ({error})"]
    problem = _entry_problem(reference, image, team, entry)
    if problem is not None:
        return [f"{where}: {problem}"]
    return _trigger_problems(reference, image, where)


def _trigger_problems(reference: str, image, where: str) -> list[str]:
    """The ``ADD`` rule applied to an image's ``ONBUILD`` triggers, which run in this build."""
    import dockerfile as parser

    triggers = (image.attrs.get("Config") or {}).get("OnBuild") or []
    try:
        commands = parser.parse_string("\n".join(triggers)) if triggers else ()
    except parser.GoParseError:
        return [f"{where}: image {reference!r} has ONBUILD triggers the parser cannot read"]
    return [problem for command in commands if command.cmd.upper() == "ADD"
            for problem in add_problems(command, f"{where}, an ONBUILD trigger of {reference!r}")]


def _entry_problem(reference: str, image, team: str, entry: str) -> str | None:
    own = f"{entry_repository(team, entry)}:"
    named = reference.removeprefix("docker.io/").removeprefix("library/")
    if named.startswith(f"{ENTRY_NAMESPACE}/") and not named.startswith(own):
        return f"{reference!r} is another entry's image"
    tags = list(image.tags)
    others = [tag for tag in tags if tag.startswith(f"{ENTRY_NAMESPACE}/") and not tag.startswith(own)]
    if others and len(others) == len(tags):
        return (f"{reference!r} is image {image.id[:19]}, which only another entry's name carries "
                f"({others[0]})")
    return None
