"""scores.json's calibration section: the positive class of a binary head, with reliability bins."""

import numpy as np
import pytest

from bench.metrics.calibration import calibration
from bench.scoring.score import score_run
from bench.tasks import load_task
from tests.helpers.scoring_fixtures import make_tasks_dir, pin_fixture_split, write_reference, write_run

COVID = "ricord-ct-covid-cls"


def _fast(raw):
    raw["bootstrap"]["resamples"] = 200
    raw["subgroups"]["min_size"] = 2
    return raw


def test_binary_head_calibration_matches_the_metric_on_the_scored_arrays(tmp_path, monkeypatch):
    make_tasks_dir(tmp_path, monkeypatch, COVID, edit=_fast)
    rng = np.random.default_rng(4)
    n = 24
    labels = ["positive" if i % 2 else "negative" for i in range(n)]
    p = np.clip(np.where(np.array([i % 2 for i in range(n)]) == 1, 0.65, 0.35) + rng.normal(0, 0.2, n),
                0.01, 0.99)
    cases = [(f"c{i:02d}", f"p{i:02d}") for i in range(n)]
    pin_fixture_split(COVID, cases)
    reference = write_reference(tmp_path / "prepared", COVID,
                                [{"case_id": c, "patient_id": q, "covid": label,
                                  "site": "A" if i < 12 else "B"}
                                 for i, ((c, q), label) in enumerate(zip(cases, labels, strict=True))])
    run = write_run(tmp_path / "run", COVID, {c: ("ok", "") for c, _ in cases},
                    predictions={c: {"negative": 1 - s, "positive": s}
                                 for (c, _), s in zip(cases, p, strict=True)})
    scores = score_run(load_task(COVID), run, reference, workers=1).scores
    entry = scores["calibration"]["covid"]["positive"]
    expected = calibration(np.array([label == "positive" for label in labels], int), p)
    assert entry["slope"] == pytest.approx(expected.slope, abs=1e-4)
    assert entry["intercept"] == pytest.approx(expected.intercept, abs=1e-4)
    assert sum(b["n"] for b in entry["bins"]) == n
    for b in entry["bins"]:
        assert b["observed_low"] <= b["observed"] <= b["observed_high"]
    assert set(entry["subgroups"]["site"]) == {"A", "B"}
