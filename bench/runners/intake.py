"""Safe image intake: names the harness chooses for every entry image, and ``docker save`` tarballs
loaded without letting them touch a tag.

A plain ``docker load`` obeys the tarball: every ``RepoTags`` entry of its ``manifest.json`` is
created, or silently moved off the image that held it. A participant's tarball claiming
``ricord-bench/python:bookworm`` would replace the base image every other entry builds on; one
claiming another entry's tag would replace that entry. So a tarball is read (never extracted)
before the engine sees it: exactly one image, a configuration whose sha256 matches its name
(that sha256 is the image id the engine will give it), and every tag it claims collected from
``manifest.json``, the legacy ``repositories`` file and an OCI ``index.json``. A claim of the base
image, of a name in the harness's namespaces that is not this entry's, or of a tag the engine
already gives to another image is refused with what was claimed. Otherwise the engine loads a
tarball the harness writes itself from what it inspected: a fresh ``manifest.json`` without
tags, the configuration and the layers, under names the harness picks, and nothing else of the
participant's file. The engine's untar cleans member paths (``x/../manifest.json`` is
``manifest.json`` to it) and follows symlinked folders, so copying the participant's members,
even with the claims edited out, would let a second, hidden manifest through; the load creates
no tag, and the harness tags the image :func:`entry_reference` (team, entry, content digest).
Folder builds get the same entry-scoped names (:func:`tag_entry_image`).
"""

import hashlib
import io
import json
import logging
import posixpath
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from bench.errors import SubmissionError
from bench.runners.base_image import BASE_IMAGE
from bench.text import injective_name

log = logging.getLogger(__name__)

ENTRY_NAMESPACE = "ricord-bench-entry"
"""Repository prefix of entry images: ``ricord-bench-entry/<team>/<entry>:<digest 12>``."""
HARNESS_NAMESPACES = ("ricord-bench/", f"{ENTRY_NAMESPACE}/")
"""Repository prefixes only the harness names (the base image and every entry's image)."""
_MANIFEST_MAX_BYTES = 1 << 20
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_NOT_COMPONENT = re.compile(r"[^a-z0-9]+")
_CLAIM_KEYS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")


@dataclass(frozen=True)
class TarballImage:
    """What a ``docker save`` tarball holds, read before loading.

    ``digest`` is ``sha256:<hex>`` of the image configuration: the image id the engine gives
    it. ``claimed_tags`` are every tag the tarball asks for (none is ever created).
    """

    path: Path
    digest: str
    claimed_tags: tuple[str, ...]
    layers: int
    config_member: str = ""
    layer_members: tuple[str, ...] = ()


def docker_component(text: str) -> str:
    """A lowercase Docker repository path component for free text (a team or entry name).

    Text that already is a valid component is kept; any other text becomes its letters and
    digits joined by ``-`` plus 16 hex digits of its sha256 (:func:`bench.text.injective_name`),
    so two names never share a component (``Team A`` and ``team a`` differ, and a team named
    like another's component is hashed in turn).
    """
    return injective_name(text, keep=_COMPONENT, unsafe=_NOT_COMPONENT, lower=True, stem_chars=40)


def entry_repository(team: str, entry: str) -> str:
    """``ricord-bench-entry/<team>/<entry>``: the repository of every image of one entry."""
    return f"{ENTRY_NAMESPACE}/{docker_component(team)}/{docker_component(entry)}"


def entry_reference(team: str, entry: str, digest: str) -> str:
    """``<entry repository>:<first 12 hex of the content digest>``."""
    return f"{entry_repository(team, entry)}:{digest.removeprefix('sha256:')[:12]}"


def inspect_tarball(path: Path) -> TarballImage:
    """Read a ``docker save`` tarball's manifest and configuration without loading or extracting it.

    Raises
    ------
    SubmissionError
        When it is not a readable tar, has no ``manifest.json``, holds other than exactly one
        image, or its configuration is missing or does not hash to its name.
    """
    try:
        with tarfile.open(path, "r:*") as archive:
            members = {member.name.removeprefix("./"): member for member in archive.getmembers()}
            manifest = _json_member(archive, members, "manifest.json", path)
            if not isinstance(manifest, list) or len(manifest) != 1 or not isinstance(manifest[0], dict):
                count = len(manifest) if isinstance(manifest, list) else "no list of"
                raise SubmissionError(
                    f"{path}: manifest.json describes {count} images; a submission tarball holds exactly "
                    "one (`docker save ONE-IMAGE -o FILE`)."
                )
            config_name = str(manifest[0].get("Config") or "")
            config = _member_bytes(archive, members, config_name, path, "the image configuration")
            claims = list(manifest[0].get("RepoTags") or [])
            if "repositories" in members:
                claims += _legacy_claims(_json_member(archive, members, "repositories", path))
            if "index.json" in members:
                claims += _index_claims(_json_member(archive, members, "index.json", path))
    except (tarfile.TarError, EOFError, OSError) as error:
        raise SubmissionError(f"{path}: not a readable `docker save` tarball ({error}).") from error
    digest = hashlib.sha256(config).hexdigest()
    if digest not in config_name:
        raise SubmissionError(
            f"{path}: the image configuration {config_name!r} hashes to sha256:{digest}, which its "
            "name does not carry; the tarball was altered after `docker save`."
        )
    layers = manifest[0].get("Layers") or []
    if not isinstance(layers, list) or not all(isinstance(layer, str) for layer in layers):
        raise SubmissionError(f"{path}: manifest.json's Layers is not a list of file names.")
    return TarballImage(path, f"sha256:{digest}", tuple(sorted(set(map(str, claims)))), len(layers),
                        config_member=config_name.removeprefix("./"),
                        layer_members=tuple(layer.removeprefix("./") for layer in layers))


def check_claims(image: TarballImage, team: str, entry: str, client) -> None:
    """Refuse a tarball whose claimed tags would hit the base image, another entry, or an existing tag.

    Nothing it claims is ever created (the loaded copy carries no tag), but a claim on a name
    the harness or another image owns is an attack or a mistake the organizer must see.

    Raises
    ------
    SubmissionError
        Naming every offending claim and whose name it is.
    """
    import docker.errors

    own = entry_repository(team, entry)
    problems = []
    for claim in image.claimed_tags:
        reference = claim if ":" in claim.rsplit("/", 1)[-1] else f"{claim}:latest"
        if reference == BASE_IMAGE:
            problems.append(f"{claim!r} is the harness's base image")
            continue
        if reference.startswith(HARNESS_NAMESPACES) and not reference.startswith(f"{own}:"):
            problems.append(f"{claim!r} is in the harness's namespace and not this entry's ({own})")
            continue
        try:
            holder = client.images.get(reference)
        except docker.errors.ImageNotFound:
            continue
        except docker.errors.APIError as error:
            problems.append(f"{claim!r} cannot be checked against the engine ({error})")
            continue
        if holder.id != image.digest:
            problems.append(f"{claim!r} already names image {holder.id[:19]} in the engine")
    if problems:
        raise SubmissionError(
            f"{image.path}: refused; the tarball claims tags it may not have: {'; '.join(problems)}. "
            "Nothing was loaded. Save the image under a name of your own (`docker tag` then `docker save`); "
            f"the harness names it {entry_reference(team, entry, image.digest)} itself."
        )


def load_tarball(path: Path, team: str, entry: str, client, *, scratch: Path):
    """Load a ``docker save`` tarball as entry (team, entry); return (tagged image, :class:`TarballImage`).

    The tarball is inspected (:func:`inspect_tarball`), its claims checked (:func:`check_claims`),
    and what the engine loads is a tarball written under ``scratch`` from the inspected image
    alone (:func:`_write_untagged_copy`); it is deleted after. The loaded image must have the
    inspected digest; it is tagged :func:`entry_reference`.

    Raises
    ------
    SubmissionError
        Anything the checks refuse, or an engine that will not load the copy.
    """
    import docker.errors

    image = inspect_tarball(path)
    check_claims(image, team, entry, client)
    scratch.mkdir(parents=True, exist_ok=True)
    untagged = scratch / "image-without-tags.tar"
    try:
        _write_untagged_copy(image, untagged)
        with open(untagged, "rb") as handle:
            loaded = client.images.load(handle)
    except docker.errors.APIError as error:
        raise SubmissionError(
            f"{path}: `docker load` failed: {error}. Give a file written by `docker save IMAGE -o FILE`."
        ) from error
    finally:
        untagged.unlink(missing_ok=True)
    if [item.id for item in loaded] != [image.digest]:
        raise SubmissionError(
            f"{path}: the engine loaded {[item.id for item in loaded]}, not the inspected image "
            f"{image.digest}; refusing to run it."
        )
    tagged = tag_entry_image(loaded[0], team, entry)
    log.info("loaded %s as %s (claimed tags, none created: %s)", path, tagged.tags, image.claimed_tags)
    return tagged, image


def tag_entry_image(image, team: str, entry: str):
    """Tag ``image`` with its entry-scoped reference (:func:`entry_reference`); return it reloaded."""
    repository, _, tag = entry_reference(team, entry, image.id).rpartition(":")
    image.tag(repository, tag)
    image.reload()
    return image


def _json_member(archive: tarfile.TarFile, members: dict, name: str, path: Path):
    data = _member_bytes(archive, members, name, path, name)
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SubmissionError(f"{path}: {name} is not valid JSON ({error}).") from error


def _member_bytes(archive: tarfile.TarFile, members: dict, name: str, path: Path, what: str) -> bytes:
    member = members.get(name.removeprefix("./"))
    if member is None or not member.isfile():
        raise SubmissionError(
            f"{path}: {what} ({name or 'unnamed'}) is not a file in the tarball; expected the output "
            "of `docker save IMAGE -o FILE`."
        )
    if member.size > _MANIFEST_MAX_BYTES:
        raise SubmissionError(f"{path}: {name} is {member.size} bytes; more than a manifest ever needs.")
    return archive.extractfile(member).read()


def _legacy_claims(repositories) -> list[str]:
    if not isinstance(repositories, dict):
        return []
    return [f"{repo}:{tag}" for repo, tags in repositories.items() if isinstance(tags, dict) for tag in tags]


def _index_claims(index) -> list[str]:
    manifests = index.get("manifests") if isinstance(index, dict) else None
    claims = []
    for item in manifests if isinstance(manifests, list) else []:
        annotations = item.get("annotations") if isinstance(item, dict) else None
        if isinstance(annotations, dict):
            claims += [str(annotations[key]) for key in _CLAIM_KEYS if key in annotations]
    return [claim for claim in claims if "/" in claim or ":" in claim]


def _write_untagged_copy(image: TarballImage, target: Path) -> None:
    """Write the tarball the engine loads: a manifest without tags, the configuration, the layers.

    Nothing else of the participant's file is copied (no ``repositories``, ``index.json``,
    second manifest, symlinked folder or path the engine would clean into another name), and
    every member gets a plain name chosen here: the configuration ``<digest>.json`` and each
    distinct layer file ``layers/<n>.tar``, written once however often the manifest lists it
    (a manifest naming one layer thousands of times would otherwise write it thousands of
    times). The engine checks each layer against the configuration's ``rootfs.diff_ids``, so
    renaming them changes nothing it verifies.
    """
    config_name = f"{image.digest.removeprefix('sha256:')}.json"
    with (
        tarfile.open(image.path, "r:*") as reader,
        tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as writer,
    ):
        members = {member.name.removeprefix("./"): member for member in reader.getmembers()}
        layers = [_layer_member(members, layer, image.path) for layer in image.layer_members]
        written: dict[str, str] = {}
        for member in layers:
            written.setdefault(member.name, f"layers/{len(written)}.tar")
        manifest = [{"Config": config_name, "RepoTags": None, "Layers": [written[m.name] for m in layers]}]
        _add_bytes(writer, "manifest.json", json.dumps(manifest).encode())
        _add_bytes(writer, config_name, _member_bytes(reader, members, image.config_member, image.path,
                                                      "the image configuration"))
        for member in {member.name: member for member in layers}.values():
            info = tarfile.TarInfo(written[member.name])
            info.size, info.mode = member.size, 0o644
            with reader.extractfile(member) as handle:
                writer.addfile(info, handle)


def _layer_member(members: dict, name: str, path: Path) -> tarfile.TarInfo:
    """The regular file a manifest's layer names: itself, or the target of one link to it
    (``docker save`` writes a layer an image holds twice once, and links the second)."""
    member = members.get(name)
    if member is not None and (member.issym() or member.islnk()):
        base = posixpath.dirname(name) if member.issym() else ""
        member = members.get(posixpath.normpath(posixpath.join(base, member.linkname)).removeprefix("./"))
    if member is None or not member.isfile():
        raise SubmissionError(
            f"{path}: layer {name!r} of manifest.json is not a file in the tarball; expected the output "
            "of `docker save IMAGE -o FILE`."
        )
    return member


def _add_bytes(writer: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    writer.addfile(info, io.BytesIO(data))
