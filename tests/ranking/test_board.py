"""The board function: AUROC entries ranked by the scorer's values, compared with the leader by DeLong."""

import numpy as np
import pytest

from bench.metrics.uncertainty import delong_test
from bench.ranking.board import build_boards
from bench.scoring.score import score_and_store
from bench.store import Store
from bench.tasks import load_task
from tests.helpers.scoring_fixtures import make_tasks_dir, pin_fixture_split, write_reference, write_run

COVID = "ricord-ct-covid-cls"
LABELS = {"a": "positive", "b": "positive", "c": "negative", "d": "negative", "e": "positive"}
ENTRIES = {
    "A": {"a": 0.9, "b": 0.8, "c": 0.2, "d": 0.1, "e": 0.7},
    "B": {"a": 0.9, "b": 0.4, "c": 0.6, "d": 0.1, "e": 0.5},
}


@pytest.fixture
def board(tmp_path, monkeypatch):
    """A (AUROC 1) and B (AUROC 4/6: b and e lose to c) scored on one five-case reference."""
    make_tasks_dir(tmp_path, monkeypatch, COVID, edit=lambda raw: raw["bootstrap"].update(resamples=200))
    pin_fixture_split(COVID, [(c, f"p{c}") for c in LABELS])
    cases = [{"case_id": c, "patient_id": f"p{c}", "covid": label} for c, label in LABELS.items()]
    reference = write_reference(tmp_path / "prepared", COVID, cases)
    spec = load_task(COVID)
    for name, scores in ENTRIES.items():
        run = write_run(tmp_path / f"run-{name}", COVID, {c: ("ok", "") for c in scores}, name=name,
                        predictions={c: {"negative": 1 - s, "positive": s} for c, s in scores.items()})
        score_and_store(spec, run, reference, results=tmp_path / "results", workers=1)
    (only,) = build_boards(spec, Store(tmp_path / "results").latest_runs())
    return only


def test_auroc_entries_rank_by_the_scorers_value(board):
    assert [(e.run.name, e.rank) for e in board.entries] == [("A", 1), ("B", 2)]
    assert [e.ranking_score for e in board.entries] == [1.0, 0.6666666667]
    assert [e.value for e in board.entries] == [1.0, 0.6666666667]


def test_auroc_entries_are_compared_with_the_leader_by_delong(board):
    leader, second = board.entries
    assert leader.delong is None
    assert second.delong.method == "DeLong"
    assert second.delong.difference == pytest.approx(1 - 4 / 6, rel=1e-12)
    y = np.array([LABELS[c] == "positive" for c in sorted(LABELS)], dtype=int)
    a, b = ([ENTRIES[name][c] for c in sorted(LABELS)] for name in ("A", "B"))
    expected = delong_test(y, a, b)
    assert second.delong.p_value == pytest.approx(expected.p_value, rel=1e-12)
