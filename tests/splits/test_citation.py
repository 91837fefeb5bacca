"""`bench cite`: the hashes a paper cites, the metric definitions with the task's options, and BibTeX
that a real BibTeX parser reads, for a pinned split and for a stored result."""

import bibtexparser
from typer.testing import CliRunner

from bench.cli import app
from bench.provenance import harness
from bench.scoring.score import score_and_store
from bench.splits.citation import COLLECTION_DOIS, cite_result, cite_split
from bench.splits.pinned import load_split
from bench.tasks import load_task
from tests.scoring.test_score import seg_case_setup

SEG, COVID = "ricord-1a-lesion-seg", "ricord-ct-covid-cls"


def test_cite_split_names_the_hashes_the_metrics_and_the_task_collections():
    spec = load_task(COVID)
    citation = cite_split(spec, "synthetic", "test")
    text = citation.text()
    assert f"split sha256      {load_split(COVID, 'synthetic').sha256}" in text
    assert f"task spec sha256  {spec.sha256}" in text
    assert f"ricord-bench {harness()['version']}" in text
    assert "covid.sensitivity: True positive rate at the threshold (threshold 0.5 on P(positive))" in text
    entries = {e["ID"]: e for e in bibtexparser.loads(citation.bibtex()).entries}
    assert set(entries) == {"ricord_bench", "midrc_ricord_1a", "midrc_ricord_1b", "tsai2021ricord"}
    assert entries["midrc_ricord_1a"]["doi"] == "10.7937/VTW4-X588"
    assert entries["midrc_ricord_1b"]["doi"] == COLLECTION_DOIS["MIDRC-RICORD-1B"] == "10.7937/31V8-4A40"
    assert spec.sha256 in entries["ricord_bench"]["note"]


def test_cite_split_of_the_radiograph_task_cites_1c():
    citation = cite_split(load_task("ricord-1c-cxr-appearance"), "synthetic")
    entries = {e["ID"]: e for e in bibtexparser.loads(citation.bibtex()).entries}
    assert entries["midrc_ricord_1c"]["doi"] == "10.7937/91ah-v663"
    assert "midrc_ricord_1a" not in entries


def test_cite_a_stored_result_with_its_scoring_harness_and_primary_value(tmp_path, monkeypatch):
    spec, run, reference = seg_case_setup(tmp_path, monkeypatch)
    stored = score_and_store(spec, run, reference, results=tmp_path / "results", workers=1)
    citation = cite_result(stored.path)
    assert citation.split_sha256 == stored.split_sha256 and citation.task_sha256 == spec.sha256
    assert citation.run_id == stored.run_id
    assert citation.git_revision == stored.receipt["harness"]["git_revision"]
    value = stored.scores["metrics"]["dice"]["value"]
    assert citation.result.startswith(f"dice = {value:.4g} [")
    assert "nsd: Normalized surface distance: fraction of surface within tolerance_mm (tolerance_mm = 2)" in (
        citation.text())
    result = CliRunner().invoke(app, ["cite", str(stored.path)])
    assert result.exit_code == 0, result.output
    assert stored.split_sha256 in result.output and "@misc{ricord_bench" in result.output


def test_cite_refuses_a_folder_without_a_receipt(tmp_path):
    result = CliRunner().invoke(app, ["cite", str(tmp_path)])
    assert result.exit_code != 0
    assert "no readable receipt.json" in result.output and "--task and --name" in result.output
    both = CliRunner().invoke(app, ["cite", str(tmp_path), "--task", SEG, "--name", "synthetic"])
    assert both.exit_code != 0
