"""Definition sensitivity on hand-built per-case tables: which variants exist, tau and the flips."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bench.ranking.sensitivity import compare_rankings, definition_sensitivity
from bench.tasks import load_task


def _board(spec, tables: dict[str, pd.DataFrame]):
    entries = [SimpleNamespace(run=SimpleNamespace(name=name, submission=f"team/{name}", per_case=table))
               for name, table in tables.items()]
    return SimpleNamespace(spec=spec, entries=entries)


def _seg_table(dice, hd95, hd95_pooled, *, status=None, empty=None, ref_ml=None):
    n = len(dice)
    return pd.DataFrame({"case_id": [f"c{i}" for i in range(n)], "status": status or ["ok"] * n,
                         "dice": dice, "hd95": hd95, "hd95_pooled": hd95_pooled,
                         "empty": empty or ["none"] * n, "volume_ref_ml": ref_ml or [5.0] * n})


def test_compare_rankings_lists_the_reversed_pairs_and_kendall_tau():
    variant = compare_rankings("q", "m", "ours", "theirs", ["a", "b", "c"], [3.0, 2.0, 1.0], [1.0, 2.0, 3.0],
                               direction="higher")
    assert variant.baseline_ranks == (1, 2, 3) and variant.alternative_ranks == (3, 2, 1)
    assert variant.kendall_tau == pytest.approx(-1.0)
    assert variant.flips == (("a", "b"), ("a", "c"), ("b", "c"))


def test_a_tie_in_one_ranking_is_not_a_flip():
    variant = compare_rankings("q", "m", "ours", "theirs", ["a", "b"], [2.0, 1.0], [1.0, 1.0],
                               direction="higher")
    assert variant.flips == ()


def test_hd95_pooled_reorders_two_entries():
    spec = load_task("ricord-1a-lesion-seg")
    board = _board(spec, {
        "steady": _seg_table([0.8, 0.8], [5.0, 5.0], [4.9, 4.9]),
        "spiky": _seg_table([0.7, 0.7], [6.0, 4.5], [3.0, 3.0]),
    })
    hd95 = next(v for v in definition_sensitivity(board) if v.question == "HD95 definition")
    assert hd95.baseline_values == (5.0, 5.25) and hd95.alternative_values == (4.9, 3.0)
    assert hd95.baseline_ranks == (1, 2) and hd95.alternative_ranks == (2, 1)
    assert hd95.flips == (("steady", "spiky"),) and hd95.kendall_tau == pytest.approx(-1.0)


def test_missing_prediction_policies_and_the_empty_reference_variant():
    spec = load_task("ricord-1a-lesion-seg")
    assert spec.policies.missing_prediction == "worst"
    # "lazy" skips case c2, whose reference is empty: worst gives it 0, empty_mask 1, exclude drops it.
    board = _board(spec, {
        "careful": _seg_table([0.6, 0.6, 1.0], [1, 1, 0], [1, 1, 0], empty=["none", "none", "both"],
                              ref_ml=[5.0, 5.0, 0.0]),
        "lazy": _seg_table([0.9, 0.9, 0.0], [1, 1, 0], [1, 1, 0], status=["ok", "ok", "missing"],
                           ref_ml=[5.0, 5.0, 0.0]),
    })
    variants = {(v.question, v.alternative): v for v in definition_sensitivity(board)}
    worst = variants[("Missing prediction", "empty_mask")]
    assert worst.baseline_values == pytest.approx((2.2 / 3, 0.6))
    assert worst.alternative_values == pytest.approx((2.2 / 3, 2.8 / 3))
    assert worst.flips == (("careful", "lazy"),)
    excluded = variants[("Missing prediction", "exclude")]
    assert excluded.alternative_values == pytest.approx((2.2 / 3, 0.9))
    empty = variants[("Empty reference and empty prediction", "left out (NaN)")]
    assert empty.alternative_values == pytest.approx((0.6, 0.6))
    assert empty.flips == () and np.isnan(empty.kendall_tau)


def test_classification_missing_prediction_chance_vs_exclude():
    spec = load_task("ricord-ct-covid-cls")
    assert spec.policies.missing_prediction == "chance"
    head = spec.heads[0]
    negative, positive = head.classes

    def table(p_positive, status):
        return pd.DataFrame({"case_id": [f"c{i}" for i in range(6)], "status": status,
                             head.name: [positive, positive, positive, negative, negative, negative],
                             positive: p_positive, negative: [1 - p for p in p_positive]})

    board = _board(spec, {
        "honest": table([0.9, 0.8, 0.3, 0.4, 0.2, 0.1], ["ok"] * 6),
        "dodger": table([0.9, 0.8, 0.5, 0.5, 0.2, 0.1], ["ok", "ok", "missing", "missing", "ok", "ok"]),
    })
    (variant,) = definition_sensitivity(board)
    assert variant.alternative == "exclude"
    assert variant.baseline_values[0] == pytest.approx(8 / 9)
    assert variant.baseline_values[1] == pytest.approx(8.5 / 9)
    assert variant.alternative_values[1] == pytest.approx(1.0)
    assert variant.flips == ()


def test_a_board_of_one_entry_has_nothing_to_compare():
    spec = load_task("ricord-1a-lesion-seg")
    assert definition_sensitivity(_board(spec, {"only": _seg_table([0.5], [1.0], [1.0])})) == ()


def test_readers_combined_compares_the_primary_against_the_other_combination():
    spec = load_task("ricord-1a-lesion-seg")
    assert spec.target.readers == "union" and spec.target.other_readers == "majority"
    union_first = _seg_table([0.9, 0.7], [1, 1], [1, 1]).assign(**{"dice@majority": [0.6, 0.6]})
    majority_first = _seg_table([0.8, 0.7], [1, 1], [1, 1]).assign(**{"dice@majority": [0.9, 0.9]})
    board = _board(spec, {"a": union_first, "b": majority_first})
    variant = next(v for v in definition_sensitivity(board) if v.question == "Readers combined")
    assert (variant.baseline, variant.alternative) == ("union (the task's)", "majority")
    assert variant.baseline_values == pytest.approx((0.8, 0.75)) and variant.alternative_values == (0.6, 0.9)
    assert variant.flips == (("a", "b"),)
