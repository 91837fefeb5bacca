"""`bench data synth|index` through Typer's CliRunner on bench.cli.app."""

import json
import re

import pandas as pd
from typer.testing import CliRunner

from bench.cli import app
from bench.data.manifest import read_manifest

runner = CliRunner()


def _squash(text: str) -> str:
    """Text without whitespace and rich's box drawing (messages wrap inside a panel)."""
    return re.sub(r"[\s│╭╮╰╯─]", "", text)


def test_synth_then_index(tmp_path):
    out = tmp_path / "ricord"
    result = runner.invoke(app, ["data", "synth", "--out", str(out), "--seed", "5", "--size", "tiny"])
    assert result.exit_code == 0, result.output
    assert "MIDRC-RICORD-1C" in result.output and "DICOM files:" in result.output
    annotations = sorted((out / "annotations").glob("*.json"))
    clinical = sorted((out / "clinical").glob("*.xlsx"))
    args = ["data", "index", str(out), "--out", str(tmp_path / "manifest.csv")]
    for path in annotations:
        args += ["--annotations", str(path)]
    for path in clinical:
        args += ["--clinical", str(path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "cases per collection / site" in result.output
    assert "annotation with null data" in result.output and "invalid study" in result.output
    assert "invalid studies left out: 3" in result.output
    files = re.search(r"indexed (\d+) files in [\d.]+ s \((\d+) files/s\)", " ".join(result.output.split()))
    assert files and int(files.group(1)) > 0 and int(files.group(2)) > 0
    manifest = read_manifest(tmp_path / "manifest.csv")
    assert len(manifest) == 19  # 22 studies, 3 of them invalid by the reading protocol
    report = json.loads((tmp_path / "manifest.report.json").read_text())
    assert report["schema_version"] == 1 and report["counts"]["cases"] == 19
    assert report["counts"]["reading"]["invalid_studies"] == 3
    assert len(report["skipped"]) == 6 and report["counts"]["series_ignored"] > 0
    readers = pd.read_csv(tmp_path / "manifest.readers.csv", dtype=str, keep_default_na=False)
    assert set(readers.role) == {"reader", "adjudicator", "non_reader"}


def test_index_bad_annotation_file_is_a_message_not_a_traceback(tmp_path):
    (tmp_path / "dl").mkdir()
    (tmp_path / "bad.json").write_text("{not json")
    result = runner.invoke(
        app,
        [
            "data",
            "index",
            str(tmp_path / "dl"),
            "--annotations",
            str(tmp_path / "bad.json"),
            "--out",
            str(tmp_path / "m.csv"),
        ],
    )
    assert result.exit_code == 2
    assert _squash("bad.json: not valid JSON (line 1, column 2") in _squash(result.output)
    assert "Traceback" not in result.output
    assert not (tmp_path / "m.csv").exists()


def test_synth_into_non_empty_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path), "--seed", "1", "--size", "tiny"])
    assert result.exit_code == 2
    assert _squash("exists and is not empty") in _squash(result.output)


def test_index_takes_folders_of_exports_and_sheets(tmp_path, caplog):
    """`--annotations DIR --clinical DIR` is the file form: every *.json, every sheet once (the
    xlsx of a sheet that is also there as csv, said in the output); repeated flags still work."""
    out = tmp_path / "ricord"
    synth = runner.invoke(app, ["data", "synth", "--out", str(out), "--seed", "5", "--size", "tiny"])
    assert synth.exit_code == 0, synth.output
    files = ["data", "index", str(out), "--out", str(tmp_path / "files.csv")]
    for path in sorted((out / "annotations").glob("*.json")):
        files += ["--annotations", str(path)]
    for path in sorted((out / "clinical").glob("*.xlsx")):
        files += ["--clinical", str(path)]
    assert runner.invoke(app, files).exit_code == 0
    folders = ["data", "index", str(out), "--out", str(tmp_path / "folders.csv"),
               "--annotations", str(out / "annotations"), "--clinical", str(out / "clinical")]
    result = runner.invoke(app, folders)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "folders.csv").read_bytes() == (tmp_path / "files.csv").read_bytes()
    warnings = json.loads((tmp_path / "folders.report.json").read_text())["warnings"]
    skipped_csv = sorted(w.split(": skipped;")[0] for w in warnings if "skipped; the folder holds" in w)
    assert skipped_csv == sorted(str(p) for p in (out / "clinical").glob("*.csv"))
    assert "samesheetas" in _squash(result.output)
    assert "twice" not in caplog.text
    mixed = ["data", "index", str(out), "--out", str(tmp_path / "mixed.csv"),
             "--annotations", str(out / "annotations"), "--clinical", str(out / "clinical"),
             "--clinical", str(next((out / "clinical").glob("*.csv")))]
    result = runner.invoke(app, mixed)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mixed.csv").read_bytes() == (tmp_path / "files.csv").read_bytes()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["data", "index", str(out), "--out", str(tmp_path / "e.csv"),
                                 "--clinical", str(empty)])
    assert result.exit_code == 2 and _squash("no .xlsx or .csv clinical sheet") in _squash(result.output)


def test_splits_pin_from_export_then_verify_without_pixels(tmp_path):
    # The real excerpt: the split is written to the given tasks folder with its pixels pending, and
    # verify checks the annotations only, saying so.
    from pathlib import Path

    excerpt = Path(__file__).parents[1] / "data" / "fixtures" / "ricord_1c_excerpt"
    export = excerpt / "1c_mdai_excerpt.json"
    args = ["splits", "pin", "--task", "ricord-1c-cxr-appearance", "--name", "excerpt", "--from-export",
            "--annotations", str(export), "--clinical", str(excerpt / "patients_v3_excerpt.csv"),
            "--tasks-dir", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "9 cases" in result.output and "pixel fingerprints pending" in result.output
    written = tmp_path / "ricord-1c-cxr-appearance" / "splits" / "excerpt.json"
    assert json.loads(written.read_text())["cases"][0]["series_uid"] is None
    result = runner.invoke(app, ["splits", "verify", "--task", "ricord-1c-cxr-appearance",
                                 "--name", "excerpt", "--root", str(tmp_path), "--annotations", str(export),
                                 "--tasks-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "9 cases: ok 9" in result.output and "pixels not" in result.output
    result = runner.invoke(app, args[:-2] + ["--root", str(tmp_path)])
    assert result.exit_code != 0 and "--from-export reads --annotations and --clinical only" in result.output
