"""Every output option of the CLI refuses to replace what the harness did not write.

One rule for single files (:func:`bench.trees.claim_files`): an existing file is replaced only
when its folder's ledger says the harness wrote it and it has not changed since. Folders follow
the tree-marker rule (``bench prepare --out``, ``bench leaderboard build --out``, tested with
them) or must be new or empty (``bench data synth --out``, ``bench run --out``). Each case here
goes through the real command and checks the user's file is untouched.
"""

import os
import re

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.trees import FILES_MARKER
from tests.helpers.runner_fixtures import SUBMISSIONS
from tests.helpers.runner_inputs import write_prepared

runner = CliRunner()
CXR = "ricord-1c-cxr-appearance"
CLS = "ricord-ct-covid-cls"


def _squash(text: str) -> str:
    return re.sub(r"[\s│╭╮╰╯─]", "", text)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "ricord"
    result = runner.invoke(app, ["data", "synth", "--out", str(out), "--seed", "5", "--size", "tiny"])
    assert result.exit_code == 0, result.output
    return out


def _index(tiny, manifest):
    return runner.invoke(app, ["data", "index", str(tiny), "--out", str(manifest), "--annotations",
                               str(tiny / "annotations"), "--clinical", str(tiny / "clinical")])


def test_index_replaces_its_own_manifest_but_never_a_users_file(tiny, tmp_path):
    manifest = tmp_path / "manifest.csv"
    first = _index(tiny, manifest)
    assert first.exit_code == 0, first.output
    assert (tmp_path / FILES_MARKER).is_file()
    again = _index(tiny, manifest)  # the harness wrote it and nobody changed it: replaced
    assert again.exit_code == 0, again.output
    manifest.write_text(manifest.read_text() + "my note\n")  # edited by the user since
    edited = _index(tiny, manifest)
    assert edited.exit_code == 2
    assert _squash(f"{manifest}existsandricord-benchdidnotwriteit") in _squash(edited.output)
    assert manifest.read_text().endswith("my note\n")
    theirs = tmp_path / "theirs.csv"
    theirs.write_text("a user's spreadsheet\n")
    refused = _index(tiny, theirs)
    assert refused.exit_code == 2 and theirs.read_text() == "a user's spreadsheet\n"
    assert not (tmp_path / "theirs.report.json").exists() and not (tmp_path / "theirs.readers.csv").exists()


def test_index_refuses_when_only_the_report_beside_the_manifest_is_foreign(tiny, tmp_path):
    report = tmp_path / "manifest.report.json"
    report.write_text('{"mine": true}\n')
    result = _index(tiny, tmp_path / "manifest.csv")
    assert result.exit_code == 2 and "manifest.report.json" in _squash(result.output)
    assert report.read_text() == '{"mine": true}\n' and not (tmp_path / "manifest.csv").exists()


def test_index_refuses_a_folder_as_its_manifest(tiny, tmp_path):
    (tmp_path / "manifest.csv").mkdir()
    result = _index(tiny, tmp_path / "manifest.csv")
    assert result.exit_code == 2 and "isnotaregularfile" in _squash(result.output)


def test_report_replaces_its_own_appendix_only(tmp_path):
    args = ["report", "--task", CXR, "--name", "synthetic", "--out", str(tmp_path)]
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, args).exit_code == 0
    (tmp_path / "appendix.md").write_text("my own appendix\n")
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "appendix.md" in _squash(result.output)
    assert (tmp_path / "appendix.md").read_text() == "my own appendix\n"


def test_splits_pin_refuses_a_split_file_it_did_not_write(tmp_path):
    tasks = tmp_path / "tasks"
    target = tasks / CXR / "splits" / "mine.json"
    target.parent.mkdir(parents=True)
    target.write_text('{"hand": "made"}\n')
    result = runner.invoke(app, ["splits", "pin", "--task", CXR, "--name", "mine", "--manifest",
                                 str(tmp_path / "absent.csv"), "--root", str(tmp_path)],
                           env={"BENCH_TASKS_DIR": str(tasks)})
    assert result.exit_code == 2 and "mine.json" in _squash(result.output)
    assert "choose another --name" in " ".join(result.output.split())
    assert target.read_text() == '{"hand": "made"}\n'


def test_images_base_refuses_to_keep_the_tarball_over_a_users_file(tmp_path):
    theirs = tmp_path / "rootfs.tar"
    theirs.write_bytes(b"not ours")
    result = runner.invoke(app, ["images", "base", "--rebuild", "--tag", "ricord-bench-test/never:built",
                                 "--keep-tarball", str(theirs)])
    assert result.exit_code == 2 and "--keep-tarball" in " ".join(result.output.split())
    assert theirs.read_bytes() == b"not ours"


def test_synth_and_run_refuse_a_folder_that_is_not_empty(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "NOTES.md").write_text("keep me\n")
    synth = runner.invoke(app, ["data", "synth", "--out", str(folder), "--size", "tiny"])
    assert synth.exit_code == 2 and (folder / "NOTES.md").read_text() == "keep me\n"
    inputs = write_prepared(tmp_path / "prepared", CLS)
    run = runner.invoke(app, ["run", str(SUBMISSIONS / "constant-prior"), "--task", CLS, "--inputs",
                              str(inputs), "--out", str(folder), "--runner", "process"])
    assert run.exit_code == 2 and "alreadyexistsandisnotempty" in _squash(run.output)
    assert sorted(os.listdir(folder)) == ["NOTES.md"]


def test_demo_refuses_a_demo_json_it_did_not_write(tmp_path):
    (tmp_path / "demo.json").write_text("my own notes, not JSON\n")
    result = runner.invoke(app, ["demo", "--out", str(tmp_path), "--runner", "process"])
    assert result.exit_code == 2 and "demo.json" in _squash(result.output)
    assert (tmp_path / "demo.json").read_text() == "my own notes, not JSON\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.json"]
