"""The input snapshot: hard links on one filesystem, copies otherwise, originals never touched."""

import errno
import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from bench.runners import run_submission
from bench.runners.staging import (
    detach_links,
    read_inputs,
    remove_staging,
    shareable_mode,
    stage_inputs,
)
from bench.tasks import Limits, load_task
from tests.conftest import docker_engine_reason
from tests.helpers.runner_fixtures import tree_state
from tests.helpers.runner_inputs import write_prepared

CLS = "ricord-ct-covid-cls"
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")

# What a submission can tell about its inputs: inode, link count and mode of every image, and
# whether it can write into the first one in place or change its mode.
PROBE = r"""
import csv, json, os
from pathlib import Path

inputs, outputs = Path(os.environ["BENCH_INPUT"]), Path(os.environ["BENCH_OUTPUT"])
cases = json.loads((inputs / "cases.json").read_text())["cases"]
for case in cases:
    info = os.stat(inputs / case["image"])
    print("stat", case["case_id"], info.st_ino, info.st_nlink, oct(info.st_mode & 0o7777), flush=True)

def write_in_place(path):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, b"tampered")
    finally:
        os.close(fd)

first = inputs / cases[0]["image"]
for what, attempt in (("write", lambda: write_in_place(first)), ("chmod", lambda: os.chmod(first, 0o666))):
    try:
        attempt()
        print(what, "SUCCEEDED", flush=True)
    except OSError as error:
        print(what, "refused", error.strerror, flush=True)
with open(outputs / "predictions.csv", "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["case_id", "negative", "positive"])
    writer.writerows([case["case_id"], "0.5", "0.5"] for case in cases)
"""


@pytest.fixture
def prepared(tmp_path):
    """A prepared CT input folder with the modes `bench prepare` gives (files 0644, folders 0755)."""
    inputs = write_prepared(tmp_path / "prepared", CLS)
    for path in [inputs, *inputs.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return inputs


@pytest.fixture
def probe(tmp_path):
    folder = tmp_path / "probe"
    folder.mkdir()
    (folder / "main.py").write_text(PROBE)
    (folder / "submission.yaml").write_text(
        "name: staging-probe\nteam: tests\ndescription: reports what it sees of its inputs\n"
        "command: ['{python}', 'main.py']\n"
    )
    return folder


def _originals(inputs: Path) -> dict[str, tuple]:
    """Per image: (bytes, mode, mtime_ns, inode, link count)."""
    state = {}
    for path in sorted((inputs / "images").iterdir()):
        info = path.stat()
        state[path.name] = (path.read_bytes(), info.st_mode, info.st_mtime_ns, info.st_ino, info.st_nlink)
    return state


def _expected_hash(inputs: Path) -> str:
    """inputs_sha256 written out by hand from the contract in run.json's documentation."""
    body = json.loads((inputs / "cases.json").read_text())
    document = {
        "cases_json_sha256": _sha256(inputs / "cases.json"),
        "task_json_sha256": _sha256(inputs / "task.json"),
        "cases": [
            {"case_id": c["case_id"], "image_sha256": _sha256(inputs / c["image"])} for c in body["cases"]
        ],
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _failing_link(code: int):
    def link(source, target, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(source), None, str(target))

    return link


def test_same_filesystem_snapshot_hard_links_and_cleanup_keeps_the_originals(prepared, tmp_path):
    before = _originals(prepared)
    (tmp_path / "stage").mkdir()
    snapshot = stage_inputs(read_inputs(prepared), tmp_path / "stage" / "input")
    assert (snapshot.staging, snapshot.linked, snapshot.copied) == ("hardlink", 4, 0)
    for name, (_, _, _, inode, links) in before.items():
        linked = (tmp_path / "stage/input/images" / name).stat()
        original = (prepared / "images" / name).stat()
        assert linked.st_ino == original.st_ino == inode
        assert original.st_nlink == links + 1 == 2
    assert stat.S_IMODE((tmp_path / "stage/input").stat().st_mode) == 0o755
    assert snapshot.inputs_sha256 == _expected_hash(prepared)
    remove_staging(tmp_path / "stage")
    assert not (tmp_path / "stage").exists()
    assert _originals(prepared) == before


@pytest.mark.parametrize("code", [errno.EXDEV, errno.EPERM])
def test_link_refused_falls_back_to_a_copy(prepared, tmp_path, monkeypatch, code):
    before = _originals(prepared)
    monkeypatch.setattr(os, "link", _failing_link(code))
    snapshot = stage_inputs(read_inputs(prepared), tmp_path / "input")
    assert (snapshot.staging, snapshot.linked, snapshot.copied) == ("copy", 0, 4)
    for name, (data, _, _, inode, _) in before.items():
        copy = (tmp_path / "input/images" / name).stat()
        assert copy.st_ino != inode and copy.st_nlink == 1 and stat.S_IMODE(copy.st_mode) == 0o644
        assert (tmp_path / "input/images" / name).read_bytes() == data
    assert snapshot.inputs_sha256 == _expected_hash(prepared)
    assert _originals(prepared) == before


def test_other_link_errors_are_not_hidden(prepared, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "link", _failing_link(errno.EIO))
    with pytest.raises(OSError, match="Input/output error"):
        stage_inputs(read_inputs(prepared), tmp_path / "input")


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o664, 0o666, 0o4755])
def test_an_image_without_the_snapshot_mode_is_copied_and_its_mode_kept(prepared, tmp_path, mode):
    odd = prepared / "images" / "CASE-001.nii.gz"
    odd.chmod(mode)
    before = _originals(prepared)
    snapshot = stage_inputs(read_inputs(prepared), tmp_path / "input")
    assert (snapshot.staging, snapshot.linked, snapshot.copied) == ("mixed", 3, 1)
    copy = (tmp_path / "input/images/CASE-001.nii.gz").stat()
    assert copy.st_ino != odd.stat().st_ino and stat.S_IMODE(copy.st_mode) == 0o644
    assert stat.S_IMODE(odd.stat().st_mode) == mode and odd.stat().st_nlink == 1
    assert (tmp_path / "input/images/CASE-000.nii.gz").stat().st_ino == before["CASE-000.nii.gz"][3]
    assert snapshot.inputs_sha256 == _expected_hash(prepared)


def test_cases_sharing_an_image_stage_it_once(prepared, tmp_path):
    body = json.loads((prepared / "cases.json").read_text())
    body["cases"].append({"case_id": "CASE-SAME", "image": "images/./CASE-000.nii.gz"})
    (prepared / "cases.json").write_text(json.dumps(body))
    snapshot = stage_inputs(read_inputs(prepared), tmp_path / "input")
    assert (snapshot.staging, snapshot.linked, snapshot.copied) == ("hardlink", 5, 0)
    assert (prepared / "images/CASE-000.nii.gz").stat().st_nlink == 2
    assert snapshot.inputs_sha256 == _expected_hash(prepared)


def test_shareable_modes():
    regular = stat.S_IFREG
    for mode in (0o644, 0o444, 0o755):
        assert shareable_mode(regular | mode), oct(mode)
    for mode in (0o600, 0o604, 0o640, 0o646, 0o664, 0o2644, 0o1644):
        assert not shareable_mode(regular | mode), oct(mode)
    assert not shareable_mode(stat.S_IFDIR | 0o755)


def test_detach_links_replaces_links_by_private_copies(prepared, tmp_path):
    before = _originals(prepared)
    stage_inputs(read_inputs(prepared), tmp_path / "input")
    assert detach_links(tmp_path / "input") == 4
    for name, (data, _, _, inode, _) in before.items():
        copy = (tmp_path / "input/images" / name).stat()
        assert copy.st_ino != inode and copy.st_nlink == 1 and stat.S_IMODE(copy.st_mode) == 0o644
        assert (tmp_path / "input/images" / name).read_bytes() == data
    assert _originals(prepared) == before
    assert detach_links(tmp_path / "input") == 0
    assert sorted(p.name for p in (tmp_path / "input").iterdir()) == ["cases.json", "images", "task.json"]


def _probe_lines(run_dir: Path) -> tuple[dict[str, tuple[int, int, str]], dict[str, str]]:
    stats, attempts = {}, {}
    for line in (run_dir / "logs/stdout.txt").read_text().splitlines():
        words = line.split()
        if words[0] == "stat":
            stats[words[1]] = (int(words[2]), int(words[3]), words[4])
        else:
            attempts[words[0]] = words[1]
    return stats, attempts


@needs_bwrap
def test_sandboxed_run_reads_the_linked_originals_and_cannot_write_them(prepared, probe, tmp_path):
    before, tree = _originals(prepared), tree_state(prepared.parent)
    result = run_submission(
        probe, load_task(CLS), prepared, tmp_path / "runs/one", runner="process", limits={"timeout_s": 60}
    )
    stats, attempts = _probe_lines(tmp_path / "runs/one")
    assert result.isolated and result.counts["ok"] == 4 and result.inputs_staging == "hardlink"
    assert json.loads((tmp_path / "runs/one/run.json").read_text())["inputs_staging"] == "hardlink"
    for case_id, (inode, links, mode) in stats.items():
        assert (inode, links, mode) == (before[f"{case_id}.nii.gz"][3], 2, "0o644")
    assert attempts == {"write": "refused", "chmod": "refused"}
    assert result.inputs_sha256 == _expected_hash(prepared)
    assert _originals(prepared) == before and tree_state(prepared.parent) == tree
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["one"]  # no staging left behind


def test_unsandboxed_run_gets_private_copies(prepared, probe, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_NO_BWRAP", "1")
    before = _originals(prepared)
    result = run_submission(
        probe, load_task(CLS), prepared, tmp_path / "run", runner="process", limits={"timeout_s": 60},
        unsafe_no_sandbox=True,
    )
    stats, attempts = _probe_lines(tmp_path / "run")
    assert not result.isolated and result.counts["ok"] == 4 and result.inputs_staging == "copy"
    for case_id, (inode, links, _) in stats.items():
        assert inode != before[f"{case_id}.nii.gz"][3] and links == 1
    # it runs as the owner, so it may change its own copy, never the prepared file
    assert attempts == {"write": "SUCCEEDED", "chmod": "SUCCEEDED"}
    assert result.inputs_sha256 == _expected_hash(prepared)
    assert _originals(prepared) == before


@pytest.mark.docker
def test_container_cannot_write_or_chmod_a_linked_input(prepared, tmp_path):
    reason = docker_engine_reason()
    if reason is not None:
        pytest.skip(reason)
    import docker

    from bench.runners.base_image import BASE_IMAGE
    from bench.runners.docker import container_options

    client = docker.from_env(timeout=120)
    try:
        image = client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"{BASE_IMAGE} is not built (`bench images base`)")
    before = _originals(prepared)
    stage = tmp_path / "stage"
    stage.mkdir()
    snapshot = stage_inputs(read_inputs(prepared), stage / "input")
    (stage / "output").mkdir(mode=0o777)
    (stage / "output").chmod(0o777)
    limits = Limits(timeout_s=60, memory="256m", cpus=1, pids=64, tmpfs_mb=16, output_mb=16)
    options = container_options(image.id, stage / "input", stage / "output", limits, {})
    # the runner streams its logs (log driver none); this probe reads them back from the engine
    options["log_config"] = {"Type": "json-file", "Config": {}}
    container = client.containers.create(**{**options, "command": ["python3", "-c", PROBE]})
    try:
        container.start()
        assert container.wait(timeout=60)["StatusCode"] == 0
        (stage / "logs").mkdir()
        (stage / "logs/stdout.txt").write_bytes(container.logs(stdout=True, stderr=False))
    finally:
        container.remove(force=True)
        client.close()
    stats, attempts = _probe_lines(stage)
    assert snapshot.staging == "hardlink" and len(stats) == 4
    for case_id, (inode, links, mode) in stats.items():
        assert (inode, links, mode) == (before[f"{case_id}.nii.gz"][3], 2, "0o644")
    assert attempts == {"write": "refused", "chmod": "refused"}
    remove_staging(stage)
    assert _originals(prepared) == before
