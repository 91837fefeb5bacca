"""Hostile outputs through `bench run` and the real Docker engine: every run is recorded, nothing is markup.

Each test runs one submission of ``tests/adversarial/`` through the CLI (so a name or reason
that rich would read as markup, or a terminal escape, shows up as a failed command or raw bytes
in the output), then checks the recorded statuses and that no staging folder is left beside
the run directory.
"""

import json

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.runners import read_run
from bench.text import REASON_MAX_CHARS
from bench.trees import remove_tree
from tests.helpers.runner_inputs import write_prepared

pytestmark = pytest.mark.docker

SEG, CLS = "ricord-1a-lesion-seg", "ricord-ct-covid-cls"


def _bench_run(submission, task, tmp_path):
    inputs = write_prepared(tmp_path / "prepared", task)
    out = tmp_path / "runs" / "run"
    answer = CliRunner().invoke(
        app, ["run", str(submission), "--task", task, "--inputs", str(inputs), "--out", str(out),
              "--timeout", "300"],
    )
    left = sorted(p.name for p in out.parent.iterdir())
    for name in left:
        if name != "run":  # a staging folder the harness failed to remove: pytest's clean-up would recurse
            remove_tree(out.parent / name)
    assert answer.exit_code == 0, answer.output + repr(answer.exception)
    assert left == ["run"]
    assert "\x1b" not in answer.output
    return answer.output, read_run(out), json.loads((out / "run.json").read_text(encoding="utf-8"))


def test_hostile_file_names_and_markup_are_recorded_as_data(adversaries, tmp_path):
    output, result, body = _bench_run(adversaries["hostile-names"], CLS, tmp_path)
    assert result.status("CASE-000").status == "malformed"
    assert result.status("CASE-000").reason == "positive is not a number ('[/x]')"
    assert [c.status for c in result.cases[1:]] == ["ok"] * 3
    paths = {r.path for r in result.rejected}
    planted = {"\\xff\\xfe-not-utf8", "\\x1b[2J\\x1b[31mred", "[link=https:example.invalid]click[", "[/z]"}
    assert planted <= paths
    ghost = "predictions.csv:[/x]\\x1b]8;;https://example.invalid\\x1b\\[link=https://example.invalid]"
    assert ghost in paths
    assert body["rejected_more"] == 0
    assert "('[/x]')" in output and "[/z]" in output and "\\x1b[2J" in output


def test_deep_nesting_in_the_output_is_walked_and_removed(adversaries, tmp_path):
    _, result, _ = _bench_run(adversaries["deep-nesting"], CLS, tmp_path)
    assert result.counts == {"ok": 4, "missing": 0, "malformed": 0}
    (deep,) = [r for r in result.rejected if r.path.startswith("nest/")]
    assert "levels..." in deep.path and "not part of the output contract" in deep.reason


def test_a_huge_field_gives_a_capped_reason(adversaries, tmp_path):
    _, result, _ = _bench_run(adversaries["huge-field"], CLS, tmp_path)
    case = result.status("CASE-000")
    assert case.status == "malformed" and case.reason.startswith("positive")
    assert len(case.reason) <= REASON_MAX_CHARS and "characters cut" in case.reason
    assert [c.status for c in result.cases[1:]] == ["ok"] * 3
    assert (tmp_path / "runs/run/run.json").stat().st_size < 20_000


def test_millions_of_unknown_case_ids_are_counted_not_listed(adversaries, tmp_path):
    _, result, _ = _bench_run(adversaries["unknown-ids"], CLS, tmp_path)
    assert result.counts == {"ok": 4, "missing": 0, "malformed": 0}
    assert len(result.rejected) == 100 and result.rejected[0].path == "predictions.csv:ghost-0"
    assert result.rejected_more == 2_000_000 - 100


def test_plain_nifti_named_nii_gz_is_ok_and_kept_as_written(adversaries, tmp_path):
    _, result, _ = _bench_run(adversaries["plain-nifti"], SEG, tmp_path)
    assert result.counts == {"ok": 4, "missing": 0, "malformed": 0}
    kept = (tmp_path / "runs/run/outputs/masks/CASE-000.nii.gz").read_bytes()
    assert kept[:2] != b"\x1f\x8b" and kept[344:348] == b"n+1\x00"
