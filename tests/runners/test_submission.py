"""Loading submissions (folder, tarball, image name), the inputs reader and the run record."""

import gzip
import io
import json
import tarfile

import pytest

from bench.errors import RunnerError, ScoringError, SubmissionError
from bench.runners import CaseStatus, Rejected, RunRecord, read_run, resolve_limits
from bench.runners.staging import read_inputs, stage_inputs
from bench.runners.streams import CappedLog
from bench.runners.submission import load_submission
from bench.tasks import Limits, load_task
from tests.helpers.runner_fixtures import SUBMISSIONS
from tests.helpers.runner_inputs import write_prepared


def test_every_reference_submission_loads():
    for folder in sorted(p for p in SUBMISSIONS.iterdir() if p.is_dir()):
        submission = load_submission(folder)
        assert submission.kind == "directory" and submission.name == folder.name
        assert submission.docker_context == folder.resolve() and submission.dockerfile == "Dockerfile"
        assert submission.command == ("{python}", "predict.py")


def test_invalid_yaml_lists_every_field(tmp_path):
    (tmp_path / "submission.yaml").write_text("name: 'bad name!'\ncolour: blue\ndocker: {context: .}\n")
    with pytest.raises(SubmissionError) as error:
        load_submission(tmp_path)
    message = str(error.value)
    assert "3 invalid field(s)" in message
    assert "  - name: String should match pattern" in message
    assert "  - team: Field required" in message and "  - colour: Extra inputs are not permitted" in message


def test_nothing_to_run_and_escaping_context(tmp_path):
    (tmp_path / "submission.yaml").write_text("name: a\nteam: b\n")
    with pytest.raises(SubmissionError, match="give at least one of 'docker'"):
        load_submission(tmp_path)
    (tmp_path / "submission.yaml").write_text("name: a\nteam: b\ndocker: {context: ..}\n")
    with pytest.raises(SubmissionError, match="docker.context '..' points outside the submission folder"):
        load_submission(tmp_path)
    (tmp_path / "submission.yaml").write_text("name: a\nteam: b\ndocker: {dockerfile: Missing}\n")
    with pytest.raises(SubmissionError, match="does not exist"):
        load_submission(tmp_path)
    with pytest.raises(SubmissionError, match="no submission.yaml"):
        load_submission(tmp_path / ".." / tmp_path.name / "..")


def _tar_bytes():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("manifest.json")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"[]"))
    return buffer.getvalue()


def test_tarballs_and_image_references(tmp_path):
    (tmp_path / "model.tar").write_bytes(_tar_bytes())
    (tmp_path / "other.tar.gz").write_bytes(gzip.compress(_tar_bytes()))
    tarball = load_submission(tmp_path / "model.tar", team="Team A", entry="unet-v2")
    assert (tarball.kind, tarball.team, tarball.name) == ("tarball", "Team A", "unet-v2")
    assert load_submission(tmp_path / "other.tar.gz", team="B", entry="x").kind == "tarball"
    (tmp_path / "fake.tar").write_bytes(b"not a tar" * 100)
    with pytest.raises(SubmissionError, match="not a tar archive"):
        load_submission(tmp_path / "fake.tar", team="A", entry="x")
    (tmp_path / "model.zip").write_bytes(b"PK")
    with pytest.raises(SubmissionError, match="must be a `docker save` tarball"):
        load_submission(tmp_path / "model.zip")
    image = load_submission("registry.local:5000/team/model:1.2", team="Team A", entry="m")
    assert (image.kind, image.team, image.name) == ("image", "Team A", "m")
    assert image.image == "registry.local:5000/team/model:1.2"
    with pytest.raises(SubmissionError, match="not a folder with submission.yaml"):
        load_submission("Not An Image")


def test_an_entry_is_never_named_after_its_file(tmp_path):
    (tmp_path / "model.tar").write_bytes(_tar_bytes())
    with pytest.raises(SubmissionError, match="pass --team and --entry. The file or image name is never"):
        load_submission(tmp_path / "model.tar")
    with pytest.raises(SubmissionError, match="pass --entry"):
        load_submission(tmp_path / "model.tar", team="Team A")
    with pytest.raises(SubmissionError, match="pass --team"):
        load_submission("team/model:1", entry="model")
    with pytest.raises(SubmissionError, match="entry 'bad name!' must match"):
        load_submission(tmp_path / "model.tar", team="Team A", entry="bad name!")
    with pytest.raises(SubmissionError, match="team ' ' must be 1 to 200 characters"):
        load_submission(tmp_path / "model.tar", team=" ", entry="model")


def test_explicit_team_and_entry_override_submission_yaml():
    folder = SUBMISSIONS / "threshold-seg"
    assert (load_submission(folder).team, load_submission(folder).name) == ("ricord-bench reference",
                                                                            "threshold-seg")
    renamed = load_submission(folder, team="Organizers", entry="baseline")
    assert (renamed.team, renamed.name) == ("Organizers", "baseline")
    assert renamed.metadata()["team"] == "Organizers"


def test_read_inputs_checks_the_prepared_tree(tmp_path):
    inputs = write_prepared(tmp_path / "p", "ricord-ct-covid-cls", n_cases=2)
    assert [c.case_id for c in read_inputs(tmp_path / "p").cases] == ["CASE-000", "CASE-001"]
    body = json.loads((inputs / "cases.json").read_text())
    body["cases"][1]["image"] = "../reference/labels.csv"
    (inputs / "cases.json").write_text(json.dumps(body))
    with pytest.raises(RunnerError, match="must be a relative path to an existing file inside"):
        read_inputs(inputs)
    body["cases"][1] = dict(body["cases"][0])
    (inputs / "cases.json").write_text(json.dumps(body))
    with pytest.raises(RunnerError, match="repeated"):
        read_inputs(inputs)
    with pytest.raises(RunnerError, match="no cases.json"):
        read_inputs(tmp_path)


def test_snapshot_holds_only_the_listed_files_world_readable(tmp_path):
    inputs = write_prepared(tmp_path / "p", "ricord-ct-covid-cls", n_cases=2)
    (inputs / "images" / "stray.nii.gz").write_bytes(b"x")
    (inputs / "images" / "CASE-000.nii.gz").chmod(0o600)
    digest = stage_inputs(read_inputs(inputs), tmp_path / "snap").inputs_sha256
    files = sorted(
        str(p.relative_to(tmp_path / "snap")) for p in (tmp_path / "snap").rglob("*") if p.is_file()
    )
    assert files == ["cases.json", "images/CASE-000.nii.gz", "images/CASE-001.nii.gz", "task.json"]
    assert all(oct(p.stat().st_mode)[-3:] == "644" for p in (tmp_path / "snap").rglob("*") if p.is_file())
    assert digest == stage_inputs(read_inputs(inputs), tmp_path / "snap2").inputs_sha256
    (inputs / "images" / "CASE-001.nii.gz").write_bytes(b"changed")
    assert digest != stage_inputs(read_inputs(inputs), tmp_path / "snap3").inputs_sha256


def test_limits_overrides_and_log_cap():
    spec = load_task("ricord-ct-covid-cls")
    limits = resolve_limits(spec, {"memory": "1g", "timeout_s": None, "gpus": 2})
    assert (limits.memory, limits.timeout_s, limits.gpus) == ("1g", spec.limits.timeout_s, 2)
    assert resolve_limits(spec, None) == spec.limits
    assert resolve_limits(spec, Limits(timeout_s=5)).timeout_s == 5
    with pytest.raises(RunnerError, match="cpus"):
        resolve_limits(spec, {"cpus": -1})


def _capped(chunks, cap):
    log = CappedLog(cap)
    for chunk in chunks:
        log.feed(chunk)
    return log.value()


def test_logs_keep_their_first_and_last_halves_as_they_stream():
    assert _capped([b"short"], 100) == b"short"
    assert _capped([b"x" * 50, b"y" * 50], 100) == b"x" * 50 + b"y" * 50  # exactly the cap: whole
    capped = _capped([b"a" * 60 + b"b" * 60], 100)
    assert capped.startswith(b"a" * 50) and capped.endswith(b"b" * 50) and b"[... 20 bytes cut" in capped
    # many small writes: the start and the very end survive, the middle is counted
    lines = [f"line {i:05d}\n".encode() for i in range(20000)]
    capped = _capped(lines, 1000)
    head, _, tail = capped.partition(b"\n[... ")
    assert head == b"".join(lines)[:500] and tail.endswith(b"line 19999\n")
    cut = int(tail.split(b" ")[0])
    assert cut == sum(map(len, lines)) - 1000 and capped.endswith(b"".join(lines)[-500:])


def test_run_record_round_trips(tmp_path):
    result = RunRecord(
        run_dir=tmp_path,
        task="t",
        task_sha256="0" * 64,
        submission={"name": "n"},
        runner="process",
        isolated=False,
        isolation="none",
        image=None,
        command=("python", "x.py"),
        limits={"cpus": 1},
        started_at="s",
        ended_at="e",
        duration_s=1.5,
        exit_code=0,
        timed_out=False,
        oom_killed=False,
        error=None,
        inputs_sha256="1" * 64,
        cases=(CaseStatus("b", "missing", "no row"), CaseStatus("a", "ok")),
        rejected=(Rejected("x", "stray"),),
    )
    body = result.to_json()
    assert [c["case_id"] for c in body["cases"]] == ["a", "b"]
    assert body["counts"] == {"ok": 1, "missing": 1, "malformed": 0} and body["schema_version"] == 1
    (tmp_path / "run.json").write_text(json.dumps(body))
    again = read_run(tmp_path)
    assert again.to_json() == body
    with pytest.raises(ScoringError, match="no run.json"):
        read_run(tmp_path / "nowhere")
