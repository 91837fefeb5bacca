"""A container-contract run and the same masks as a plain folder score to the same bytes (real parts).

The synthetic collection is prepared, the reference submission ``threshold-seg`` runs under the
process runner (bubblewrap where installed), and its validated masks are copied into a flat
nnU-Net-style folder; ``bench score`` on the run and on the folder must store byte-identical
per-case tables and the same scores.json apart from the run id and the entry name.
"""

import json
import shutil

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.data.manifest import write_manifest
from bench.data.ricord import index_download
from bench.data.synth import synthesize
from bench.pipeline.demo import BUILTIN_SUBMISSIONS
from bench.prepare.materialize import prepare_split
from bench.runners.run import run_submission
from bench.splits.pin import pin_split
from bench.tasks import BUILTIN_TASKS, load_task

SEG = "ricord-1a-lesion-seg"

pytestmark = pytest.mark.slow


def test_folder_scoring_equals_run_scoring_byte_for_byte(tmp_path, monkeypatch):
    shutil.copytree(BUILTIN_TASKS, tmp_path / "tasks")
    monkeypatch.setenv("BENCH_TASKS_DIR", str(tmp_path / "tasks"))
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "data"
    synth = synthesize(root, seed=0, size="small")
    report = index_download(root, annotations=synth.annotations, clinical=synth.clinical)
    write_manifest(report.manifest, root / "manifest.csv")
    spec = load_task(SEG)
    pin_split(spec, root / "manifest.csv", root=root, name="self-test", annotations=list(synth.annotations))
    prepared = prepare_split(spec, "self-test", "test", root=root, out=tmp_path / "prepared")
    run = run_submission(BUILTIN_SUBMISSIONS / "threshold-seg", spec, prepared.input_dir, tmp_path / "run",
                         runner="process")
    assert run.counts["ok"] == len(prepared.case_ids)
    folder = tmp_path / "threshold-seg"
    folder.mkdir()
    for mask in sorted((tmp_path / "run" / "outputs" / "masks").iterdir()):
        shutil.copyfile(mask, folder / mask.name)
    stored = {}
    # the folder is stored under the run's own team and entry, so every stored byte can match
    named = ["--team", run.submission["team"], "--entry", run.submission["name"]]
    for label, predictions, extra in (("run", tmp_path / "run", []), ("folder", folder, named)):
        result = CliRunner().invoke(app, ["score", "--task", SEG, "--predictions", str(predictions),
                                          "--reference", str(prepared.reference_dir), *extra,
                                          "--out", str(tmp_path / f"results-{label}"), "--workers", "1"])
        assert result.exit_code == 0, result.output
        assert f"sha256 {prepared.split_sha256}" in result.output
        (entry,) = (tmp_path / f"results-{label}" / SEG).glob("*/*/*/receipt.json")
        stored[label] = entry.parent
    assert (stored["run"] / "per_case.csv").read_bytes() == (stored["folder"] / "per_case.csv").read_bytes()
    scores = {label: json.loads((path / "scores.json").read_text()) for label, path in stored.items()}
    for body in scores.values():
        body.pop("run_id")
    assert scores["run"] == scores["folder"]
    receipts = {label: json.loads((path / "receipt.json").read_text()) for label, path in stored.items()}
    assert receipts["folder"]["self_reported"] and not receipts["run"]["self_reported"]
    assert receipts["folder"]["inputs_sha256"] == receipts["run"]["inputs_sha256"]
