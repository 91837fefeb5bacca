"""Board analysis: the reader band's non-inferiority test and reference lines, on hand-made boards."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd

from bench.ranking.analysis import analyse_board, reference_lines
from bench.tasks import load_task

CXR = "ricord-1c-cxr-appearance"
CLASSES = ["typical", "indeterminate", "atypical", "negative"]


def _entry(name, truth, probabilities):
    table = pd.DataFrame({"case_id": [f"case-{i:03d}" for i in range(len(truth))],
                          "patient_id": [f"p{i}" for i in range(len(truth))], "status": "ok",
                          "appearance": truth, **{c: probabilities[:, k] for k, c in enumerate(CLASSES)}})
    return SimpleNamespace(run=SimpleNamespace(name=name, submission=f"team/{name}", per_case=table))


def _band(folder, truth, sha):
    folder.mkdir(parents=True)
    rows = []
    for group, flip in (("Bear", 0), ("Tiger", 3), ("Dragon", 5)):
        for i, label in enumerate(truth):
            said = CLASSES[(CLASSES.index(label) + 1) % 4] if i % 7 == flip else label
            rows.append({"case_id": f"case-{i:03d}", "patient_id": f"p{i}", "group_name": group,
                         "label": said,
                         "consensus": label})
    pd.DataFrame(rows).to_csv(folder / "per_case.csv", index=False)
    readers = [{"group": g, "n": len(truth), "value": 0.9, "ci_low": 0.8, "ci_high": 0.95}
               for g in ("Bear", "Dragon", "Tiger")]
    (folder / "band.json").write_text(json.dumps({"split": {"sha256": sha}, "readers": readers}))


def test_a_perfect_entry_is_non_inferior_to_the_readers_and_a_constant_one_is_not(tmp_path):
    spec = load_task(CXR)
    truth = [CLASSES[i % 4] for i in range(40)]
    perfect = np.eye(4)[[CLASSES.index(t) for t in truth]] * 0.9 + 0.025
    constant = np.full((40, 4), 0.25)
    board = SimpleNamespace(spec=spec, split_sha256="ab" * 32, matrix=None,
                            entries=[_entry("perfect", truth, perfect), _entry("constant", truth, constant)])
    _band(tmp_path / "band", truth, "ab" * 32)
    analysis = analyse_board(board, band_dir=tmp_path / "band")
    tests = {t.entry: t for t in analysis.readers.tests}
    assert tests["perfect"].non_inferior and tests["perfect"].difference > 0
    assert not tests["constant"].non_inferior and tests["constant"].difference < -0.3
    assert analysis.readers.margin == spec.reader_band.margin == 0.05
    assert analysis.power is not None and analysis.power.gaps[0].resolvable


def test_a_band_of_another_split_is_not_used(tmp_path):
    spec = load_task(CXR)
    truth = [CLASSES[i % 4] for i in range(8)]
    board = SimpleNamespace(spec=spec, split_sha256="cd" * 32, matrix=None,
                            entries=[_entry("a", truth, np.full((8, 4), 0.25))])
    _band(tmp_path / "band", truth, "ab" * 32)
    assert analyse_board(board, band_dir=tmp_path / "band").readers is None


def test_reference_lines_take_the_stored_primary_and_the_receipts_explanation():
    spec = load_task("ricord-ct-covid-cls")
    run = SimpleNamespace(name="confound-floor", submission="ref/confound-floor",
                          reference_entry={"kind": "confound-floor", "explanation": "header only"},
                          scores={"metrics": {"covid.auroc": {"value": 0.61, "ci_low": 0.4, "ci_high": 0.8}}})
    (line,) = reference_lines(spec, [run])
    assert (line.name, line.kind, line.explanation, line.value, line.ci_low) == (
        "confound-floor", "confound-floor", "header only", 0.61, 0.4)
