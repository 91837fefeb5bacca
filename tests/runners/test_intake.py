"""Safe image intake: entry-scoped names, and hostile ``docker save`` tarballs.

The unit tests read hand-built tarballs (the format ``docker save`` writes) with a fake engine
that knows no image; the docker tests save real images from the engine, rewrite their
manifests the way an attacker would, and check that nothing in the engine moved.
"""

import hashlib
import io
import json
import os
import tarfile

import docker.errors
import pytest

from bench.errors import SubmissionError
from bench.runners.base_image import BASE_IMAGE, build_base_image
from bench.runners.docker import ensure_image
from bench.runners.intake import (
    check_claims,
    docker_component,
    entry_reference,
    entry_repository,
    inspect_tarball,
    load_tarball,
)
from bench.runners.submission import load_submission
from tests.conftest import docker_engine_reason
from tests.helpers.runner_fixtures import SUBMISSIONS


def _tarball(path, *, repo_tags=None, repositories=None, index_names=(), images=1, config=b'{"os":"linux"}',
             config_name=None):
    """A tarball laid out as `docker save` writes it (legacy layout, one empty layer)."""
    digest = hashlib.sha256(config).hexdigest()
    files = {f"{config_name or digest}.json": config, "layer0/layer.tar": b"\0" * 1024}
    manifest = [{"Config": f"{config_name or digest}.json", "RepoTags": repo_tags,
                 "Layers": ["layer0/layer.tar"]}] * images
    files["manifest.json"] = json.dumps(manifest).encode()
    if repositories is not None:
        files["repositories"] = json.dumps(repositories).encode()
    if index_names:
        files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [
            {"annotations": {"io.containerd.image.name": name}} for name in index_names]}).encode()
    with tarfile.open(path, "w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


class _NoImages:
    class images:  # noqa: N801 - mirrors docker.DockerClient.images
        @staticmethod
        def get(reference):
            raise docker.errors.ImageNotFound(reference)


def test_docker_components_are_valid_and_never_collide():
    assert docker_component("threshold-seg") == "threshold-seg"
    assert docker_component("Team A") != docker_component("team a")
    assert docker_component("Team A").startswith("team-a-")
    assert docker_component("<script>") .startswith("script-")
    # a team named like another team's hashed component gets a component of its own
    assert docker_component(docker_component("Team A")) != docker_component("Team A")
    assert entry_repository(docker_component("Team A"), "model") != entry_repository("Team A", "model")
    assert entry_repository("Team A", "model") != entry_repository("Team B", "model")
    assert entry_reference("t", "m", "sha256:" + "ab" * 32) == "ricord-bench-entry/t/m:abababababab"


def test_inspect_reads_digest_and_every_claim(tmp_path):
    path = _tarball(tmp_path / "model.tar", repo_tags=["team/model:1"],
                    repositories={"legacy/name": {"v2": "x"}}, index_names=["oci/name:3"])
    image = inspect_tarball(path)
    assert image.digest == "sha256:" + hashlib.sha256(b'{"os":"linux"}').hexdigest()
    assert image.claimed_tags == ("legacy/name:v2", "oci/name:3", "team/model:1")
    check_claims(image, "Team A", "model", _NoImages())  # harmless claims pass (none is created)


def test_inspect_refuses_malformed_tarballs(tmp_path):
    with pytest.raises(SubmissionError, match="holds exactly one"):
        inspect_tarball(_tarball(tmp_path / "two.tar", images=2))
    with pytest.raises(SubmissionError, match="which its name does not carry; the tarball was altered"):
        inspect_tarball(_tarball(tmp_path / "swapped.tar", config_name="0" * 64))
    (tmp_path / "junk.tar").write_bytes(b"junk" * 300)
    with pytest.raises(SubmissionError, match="not a readable `docker save` tarball"):
        inspect_tarball(tmp_path / "junk.tar")
    with tarfile.open(tmp_path / "empty.tar", "w"):
        pass
    with pytest.raises(SubmissionError, match=r"manifest.json \(manifest.json\) is not a file"):
        inspect_tarball(tmp_path / "empty.tar")


@pytest.mark.parametrize("claim, named", [
    (BASE_IMAGE, "is the harness's base image"),
    ("ricord-bench/python", None),  # :latest of the base repository: the harness's namespace
    ("ricord-bench-entry/team-b/model:0123456789ab", "not this entry's"),
])
def test_claims_on_harness_names_are_refused_naming_them(tmp_path, claim, named):
    image = inspect_tarball(_tarball(tmp_path / "model.tar", repo_tags=["mine:1", claim]))
    with pytest.raises(SubmissionError) as error:
        check_claims(image, "Team A", "model", _NoImages())
    message = str(error.value)
    assert f"{claim!r}" in message and "Nothing was loaded" in message
    assert named is None or named in message
    assert "'mine:1'" not in message


# --- against the real engine -------------------------------------------------------------------

@pytest.fixture(scope="module")
def client():
    reason = docker_engine_reason()
    if reason is not None:
        if os.environ.get("BENCH_REQUIRE_DOCKER") == "1":
            pytest.fail(f"docker test required by BENCH_REQUIRE_DOCKER=1 but {reason}")
        pytest.skip(reason)
    engine = docker.from_env(timeout=300)
    build_base_image(client=engine)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def built(client, tmp_path_factory):
    """Two reference submissions built as two entries of two teams, each saved as model.tar."""
    scratch = tmp_path_factory.mktemp("built")
    images, tarballs = {}, {}
    for team, folder in (("Team A", "constant-prior"), ("Team B", "threshold-seg")):
        submission = load_submission(SUBMISSIONS / folder, team=team, entry="model")
        image, _ = ensure_image(submission, client, scratch=scratch / "s")
        images[team] = image
        tarballs[team] = scratch / team.replace(" ", "") / "model.tar"
        tarballs[team].parent.mkdir()
        with open(tarballs[team], "wb") as handle:
            for chunk in image.save(named=False):
                handle.write(chunk)
    return images, tarballs


def _retagged(source, target, tags):
    """A copy of a real `docker save` tarball whose manifest claims ``tags`` (the config is kept)."""
    with tarfile.open(source) as reader, tarfile.open(target, "w") as writer:
        for member in reader:
            if member.name == "manifest.json":
                body = json.loads(reader.extractfile(member).read())
                body[0]["RepoTags"] = tags
                data = json.dumps(body).encode()
                member.size = len(data)
                writer.addfile(member, io.BytesIO(data))
            else:
                writer.addfile(member, reader.extractfile(member) if member.isfile() else None)
    return target


def _ids(client, references):
    found = {}
    for reference in references:
        try:
            found[reference] = client.images.get(reference).id
        except docker.errors.ImageNotFound:
            found[reference] = None
    return found


@pytest.mark.docker
def test_folder_builds_get_entry_scoped_names(built):
    images, _ = built
    a, b = images["Team A"], images["Team B"]
    assert entry_reference("Team A", "model", a.id) in a.tags
    assert entry_reference("Team B", "model", b.id) in b.tags
    assert not any(tag.startswith("ricord-bench/") for tag in a.tags + b.tags if "model" in tag)


@pytest.mark.docker
def test_two_teams_model_tar_load_as_two_entries(client, built, tmp_path):
    images, tarballs = built
    loaded = {}
    for team in ("Team A", "Team B"):
        submission = load_submission(tarballs[team], team=team, entry="model")
        image, record = ensure_image(submission, client, scratch=tmp_path / team)
        loaded[team] = (image, record)
        assert image.id == images[team].id
        assert record["digest"] == images[team].id and record["claimed_tags"] == []
        assert entry_reference(team, "model", image.id) in record["tags"]
    assert loaded["Team A"][0].id != loaded["Team B"][0].id


@pytest.mark.docker
def test_tarball_claiming_the_base_image_is_refused_and_the_base_untouched(client, built, tmp_path):
    _, tarballs = built
    hostile = _retagged(tarballs["Team B"], tmp_path / "model.tar", [BASE_IMAGE])
    before = _ids(client, [BASE_IMAGE])
    with pytest.raises(SubmissionError, match=r"'ricord-bench/python:bookworm' is the harness's base image"):
        load_tarball(hostile, "Mallory", "model", client, scratch=tmp_path / "scratch")
    assert _ids(client, [BASE_IMAGE]) == before
    assert not (tmp_path / "scratch").exists() or not any((tmp_path / "scratch").iterdir())


@pytest.mark.docker
def test_tarball_claiming_another_entrys_tag_is_refused_and_that_entry_untouched(client, built, tmp_path):
    images, tarballs = built
    victim = entry_reference("Team A", "model", images["Team A"].id)
    hostile = _retagged(tarballs["Team B"], tmp_path / "model.tar", [victim])
    before = _ids(client, [victim])
    with pytest.raises(SubmissionError) as error:
        load_tarball(hostile, "Team B", "model", client, scratch=tmp_path / "scratch")
    assert f"{victim!r} is in the harness's namespace and not this entry's" in str(error.value)
    assert _ids(client, [victim]) == before == {victim: images["Team A"].id}


@pytest.mark.docker
def test_tarball_claiming_an_existing_tag_is_refused_and_harmless_claims_are_never_created(
        client, built, tmp_path):
    images, tarballs = built
    victim = "organize-test/ux-victim:latest"
    images["Team A"].tag("organize-test/ux-victim", "latest")
    try:
        hostile = _retagged(tarballs["Team B"], tmp_path / "hostile.tar", [victim])
        with pytest.raises(SubmissionError, match=r"'organize-test/ux-victim:latest' already names image"):
            load_tarball(hostile, "Team B", "model", client, scratch=tmp_path / "s1")
        assert _ids(client, [victim]) == {victim: images["Team A"].id}
        claimed = "organize-test/never-created:1"
        harmless = _retagged(tarballs["Team B"], tmp_path / "harmless.tar", [claimed])
        image, inspected = load_tarball(harmless, "Team B", "model", client, scratch=tmp_path / "s2")
        assert inspected.claimed_tags == (claimed,) and image.id == images["Team B"].id
        assert _ids(client, [claimed]) == {claimed: None}
        assert entry_reference("Team B", "model", image.id) in image.tags
    finally:
        client.images.remove(victim)


def _with_hidden_manifests(source, target, tags):
    """A real tarball plus two manifests claiming ``tags`` that only the engine's untar finds:
    one named ``x/../manifest.json`` (the engine cleans the path), one under a folder symlink
    ``d -> .`` (the engine follows it). The ``manifest.json`` the harness reads claims nothing."""
    with tarfile.open(source) as reader, tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as writer:
        manifest = None
        for member in reader:
            data = reader.extractfile(member).read() if member.isfile() else None
            if member.name == "manifest.json":
                manifest = json.loads(data)
            writer.addfile(member, io.BytesIO(data) if data is not None else None)
        link = tarfile.TarInfo("d")
        link.type, link.linkname = tarfile.SYMTYPE, "."
        writer.addfile(link)
        hidden = json.dumps([{**manifest[0], "RepoTags": tags}]).encode()
        for name in ("x/../manifest.json", "d/manifest.json"):
            info = tarfile.TarInfo(name)
            info.size = len(hidden)
            writer.addfile(info, io.BytesIO(hidden))
    return target


@pytest.mark.docker
def test_tarball_hiding_a_second_manifest_moves_no_tag(client, built, tmp_path):
    images, tarballs = built
    victim = "attack-test/hidden-manifest-victim:latest"
    images["Team A"].tag("attack-test/hidden-manifest-victim", "latest")
    try:
        # only a tag of this test's own is claimed: were the hole open, the base image would move
        hostile = _with_hidden_manifests(tarballs["Team B"], tmp_path / "model.tar", [victim])
        image, inspected = load_tarball(hostile, "Mallory", "model", client, scratch=tmp_path / "scratch")
        assert _ids(client, [victim]) == {victim: images["Team A"].id}
        assert image.id == images["Team B"].id and inspected.claimed_tags == ()
        assert entry_reference("Mallory", "model", image.id) in image.tags and victim not in image.tags
        assert not any((tmp_path / "scratch").iterdir())
    finally:
        client.images.remove(victim)
        client.images.remove(entry_reference("Mallory", "model", images["Team B"].id))


@pytest.mark.docker
def test_tarball_with_a_layer_saved_twice_loads(client, tmp_path):
    context = tmp_path / "context"
    context.mkdir()
    (context / "f.txt").write_text("same bytes twice: one layer, saved once and linked\n")
    (context / "Dockerfile").write_text("FROM scratch\nCOPY f.txt /f.txt\nCOPY f.txt /f.txt\n")
    image, _ = client.images.build(path=str(context), rm=True, network_mode="none")
    tarball = tmp_path / "model.tar"
    try:
        with open(tarball, "wb") as handle:
            for chunk in image.save(named=False):
                handle.write(chunk)
        with tarfile.open(tarball) as archive:
            assert any(member.issym() and member.name.endswith("/layer.tar") for member in archive)
        loaded, inspected = load_tarball(tarball, "Team T", "twice", client, scratch=tmp_path / "scratch")
        assert loaded.id == image.id and inspected.layers == 2
    finally:
        client.images.remove(image.id, force=True)


def test_a_layer_listed_a_thousand_times_is_written_once(tmp_path):
    """The attack: a 1 MiB layer named 1,000 times in manifest.json. Written once per listing,
    the copy the engine loads would be 1 GiB on the organizer's disk; it holds the layer once."""
    from bench.runners.intake import _write_untagged_copy

    config = b'{"os":"linux"}'
    digest = hashlib.sha256(config).hexdigest()
    layer = os.urandom(1 << 20)
    manifest = [{"Config": f"{digest}.json", "RepoTags": None, "Layers": ["l/layer.tar"] * 1000}]
    with tarfile.open(tmp_path / "model.tar", "w") as archive:
        for name, data in ((f"{digest}.json", config), ("l/layer.tar", layer),
                           ("manifest.json", json.dumps(manifest).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    _write_untagged_copy(inspect_tarball(tmp_path / "model.tar"), tmp_path / "copy.tar")
    assert (tmp_path / "copy.tar").stat().st_size < 2 << 20
    with tarfile.open(tmp_path / "copy.tar") as copy:
        written = json.loads(copy.extractfile("manifest.json").read())[0]["Layers"]
        assert written == ["layers/0.tar"] * 1000 and copy.extractfile("layers/0.tar").read() == layer
