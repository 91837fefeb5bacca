"""Ranking schemes on hand-worked examples; bootstrap pieces against brute force and scipy."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.metrics.uncertainty import bootstrap_counts
from bench.ranking.schemes import (
    _holm,
    bootstrap_ranks,
    bootstrap_ranks_from,
    counts_to_indices,
    kendall_tau_b,
    rank_entries,
    rank_frequencies,
    rank_values,
    tied_groups,
)

# 3 entries x 5 cases, higher is better. Worked by hand:
#   means    A 0.70   B 0.68   C 0.622          -> A 1, B 2, C 3
#   medians  A 0.7    B 0.7    C 0.9            -> C 1, A 2, B 2 (min rank for the tie)
#   per-case ranks  c1: A1 B2 C3 | c2: B1 A2 C3 | c3: C1 A2 B3 | c4: C1 B2 A3 | c5: C1 A2 B3
#   mean ranks A 10/5 = 2.0, B 11/5 = 2.2, C 9/5 = 1.8 -> C 1, A 2, B 3
THREE_BY_FIVE = pd.DataFrame(
    {"A": [0.9, 0.8, 0.7, 0.6, 0.5], "B": [0.8, 0.9, 0.6, 0.7, 0.4], "C": [0.1, 0.2, 0.9, 0.95, 0.96]},
    index=[f"c{i}" for i in range(1, 6)],
)


def test_aggregate_then_rank_mean():
    result = rank_entries(THREE_BY_FIVE, method="aggregate-then-rank", aggregate="mean")
    assert result.entries == ("A", "B", "C")
    assert result.scores == pytest.approx([0.70, 0.68, 0.622])
    assert result.ranks.tolist() == [1, 2, 3]


def test_aggregate_then_rank_median_ties_share_the_min_rank():
    result = rank_entries(THREE_BY_FIVE, aggregate="median")
    assert result.scores == pytest.approx([0.7, 0.7, 0.9])
    assert result.ranks.tolist() == [2, 2, 1]


def test_rank_then_aggregate():
    result = rank_entries(THREE_BY_FIVE, method="rank-then-aggregate")
    assert result.scores == pytest.approx([2.0, 2.2, 1.8])
    assert result.ranks.tolist() == [2, 3, 1]
    assert result.scores_direction == "lower"


def test_test_then_rank_five_cases_cannot_be_significant():
    # The smallest exact one-sided p with 5 cases is 1/32; Holm over 6 pairs makes it 6/32 > 0.05.
    result = rank_entries(THREE_BY_FIVE, method="test-then-rank")
    assert result.scores.tolist() == [0, 0, 0]
    assert result.ranks.tolist() == [1, 1, 1]
    assert np.nanmin(result.pvalues) == pytest.approx(1.0)  # no pair is better on all 5 cases


# Lower is better (e.g. HD95 in mm), with a NaN case for Z (excluded by the policy). By hand:
#   means    X 2.5   Y 2.0   Z 11/3           -> Y 1, X 2, Z 3
#   medians  X 2.5   Y 2.0   Z 1.0            -> Z 1, Y 2, X 3
#   per-case ranks c1: X1 Y2 Z3 | c2: Z1 X2 Y2 | c3: Y1 X2 (Z absent) | c4: Z1 Y2 X3
#   mean ranks X 8/4 = 2.0, Y 7/4 = 1.75, Z 5/3 -> Z 1, Y 2, X 3
LOWER = pd.DataFrame({"X": [1, 2, 3, 4], "Y": [2, 2, 2, 2], "Z": [10, 0, np.nan, 1]}, dtype=float)


def test_lower_is_better_with_a_missing_case():
    assert rank_entries(LOWER, direction="lower").ranks.tolist() == [2, 1, 3]
    assert rank_entries(LOWER, direction="lower").scores == pytest.approx([2.5, 2.0, 11 / 3])
    assert rank_entries(LOWER, direction="lower", aggregate="median").ranks.tolist() == [3, 2, 1]
    by_rank = rank_entries(LOWER, direction="lower", method="rank-then-aggregate")
    assert by_rank.scores == pytest.approx([2.0, 1.75, 5 / 3])
    assert by_rank.ranks.tolist() == [3, 2, 1]


def test_entry_without_any_case_ranks_last():
    matrix = pd.DataFrame({"A": [0.5, 0.6], "B": [np.nan, np.nan], "C": [0.7, 0.7]})
    assert rank_entries(matrix).ranks.tolist() == [2, 3, 1]


# test-then-rank on 8 cases: A beats B and C on every case (exact p = 1/256 each);
# B - C alternates in sign with growing size, W+ = 1+3+5+7 = 16 of 36: far from significant.
# Holm over the 6 ordered pairs: 6/256 and max(6/256, 5/256) = 6/256 for A>B and A>C.
# Wins: A 2, B 0, C 0 -> ranks A 1, B 2, C 2; groups: A alone; C is tied with B (B does not beat C).
EIGHT = pd.DataFrame({
    "A": [1.0] * 8,
    "B": [0.5, 0.3, 0.6, 0.2, 0.7, 0.1, 0.8, 0.05],
    "C": [0.4, 0.5, 0.3, 0.6, 0.2, 0.7, 0.1, 0.85],
})


def test_test_then_rank_wilcoxon_holm():
    result = rank_entries(EIGHT, method="test-then-rank", alpha=0.05)
    assert result.pvalues[0, 1] == pytest.approx(6 / 256)
    assert result.pvalues[0, 2] == pytest.approx(6 / 256)
    assert result.pvalues[1, 0] == pytest.approx(1.0)
    assert result.scores.tolist() == [2, 0, 0]
    assert result.ranks.tolist() == [1, 2, 2]
    assert tied_groups(result).tolist() == [1, 2, 2]


def test_test_then_rank_lower_is_better_mirrors():
    result = rank_entries(-EIGHT, method="test-then-rank", direction="lower")
    assert result.ranks.tolist() == [1, 2, 2]  # negated values, lower is better: same order


def test_holm_adjustment_by_hand():
    # off-diagonal p-values; sorted 0.005, 0.01, 0.03, 0.04, 0.2, 0.5 times 6, 5, 4, 3, 2, 1
    # = 0.03, 0.05, 0.12, 0.12, 0.4, 0.5 (running maximum keeps the order).
    p = np.array([[np.nan, 0.01, 0.04], [0.03, np.nan, 0.005], [0.5, 0.2, np.nan]])
    expected = np.array([[np.nan, 0.05, 0.12], [0.12, np.nan, 0.03], [0.5, 0.4, np.nan]])
    np.testing.assert_allclose(_holm(p), expected)
    np.testing.assert_allclose(_holm(np.stack([p, p]))[1], expected)


def test_invalid_options_name_the_argument():
    with pytest.raises(ValueError, match="method must be one of"):
        rank_entries(THREE_BY_FIVE, method="vote")
    with pytest.raises(ValueError, match="direction"):
        rank_entries(THREE_BY_FIVE, direction="up")


def test_counts_to_indices_lists_each_drawn_case():
    patients = np.array(["p1", "p1", "p2", "p3", "p3", "p3"])
    counts = bootstrap_counts(6, n_resamples=200, seed=1, clusters=patients)
    indices = counts_to_indices(counts)
    assert indices.shape == (200, counts.sum(axis=1).max())
    for row, expected in zip(indices, counts, strict=True):
        np.testing.assert_array_equal(np.bincount(row[row < 6], minlength=6), expected)
        assert np.all(row[expected.sum():] == 6)  # padding after the drawn cases


def test_bootstrap_uses_the_scorers_stratified_clustered_resamples():
    # the rank bootstrap draws exactly the scorer's resamples (same engine, seed, strata, clusters)
    rng = np.random.default_rng(8)
    matrix = pd.DataFrame(rng.uniform(size=(10, 2)), columns=["A", "B"])
    strata = np.array([0, 0, 0, 1, 1, 1, 1, 0, 1, 0])
    patients = np.array(["p0", "p0", "p1", "p2", "p2", "p3", "p4", "p5", "p6", "p7"])
    full = rank_entries(matrix)
    boot = bootstrap_ranks(matrix, full, resamples=50, seed=3, clusters=patients, strata=strata)
    counts = bootstrap_counts(10, n_resamples=50, seed=3, strata=strata, clusters=patients)
    for b in (0, 17, 49):
        drawn = matrix.iloc[np.repeat(np.arange(10), counts[b])]
        np.testing.assert_allclose(boot.statistic[b], drawn.mean().to_numpy())
    assert boot.dropped == 0 and boot.ranks.shape == (50, 2)


def test_bootstrap_statistic_matches_a_loop_over_resamples():
    rng = np.random.default_rng(0)
    matrix = pd.DataFrame(rng.uniform(size=(12, 4)), columns=list("ABCD"))
    matrix.iloc[3, 1] = np.nan
    for method, aggregate in [("aggregate-then-rank", "mean"), ("aggregate-then-rank", "median"),
                              ("rank-then-aggregate", "mean"), ("test-then-rank", "mean")]:
        full = rank_entries(matrix, method=method, aggregate=aggregate)
        boot = bootstrap_ranks(matrix, full, resamples=30, seed=7)
        counts = bootstrap_counts(12, n_resamples=30, seed=7)
        indices = [np.repeat(np.arange(12), row) for row in counts]
        for b in (0, 13, 29):
            resampled = matrix.iloc[indices[b]].reset_index(drop=True)
            if method == "rank-then-aggregate":
                # per-case ranks do not change under resampling; their mean over the drawn cases
                ranks = rank_entries(matrix, method=method).scores  # sanity: same scheme
                case_ranks = stats.rankdata(-matrix.to_numpy(), axis=1, method="min", nan_policy="omit")
                expected = np.nanmean(case_ranks[indices[b]], axis=0)
                assert ranks.shape == (4,)
            elif method == "test-then-rank":
                # the bootstrap uses the normal approximation (resamples always hold ties)
                p = np.full((4, 4), np.nan)
                for i in range(4):
                    for j in range(4):
                        d = (resampled.iloc[:, i] - resampled.iloc[:, j]).dropna().to_numpy()
                        if i != j and np.any(d != 0):
                            p[i, j] = stats.wilcoxon(d, alternative="greater", method="asymptotic").pvalue
                        elif i != j:
                            p[i, j] = 1.0
                expected = np.nansum(_holm(p) < 0.05, axis=1)
            else:
                expected = rank_entries(resampled, method=method, aggregate=aggregate).scores
            np.testing.assert_allclose(boot.statistic[b], expected, err_msg=method)


def test_kendall_tau_b_matches_scipy():
    rng = np.random.default_rng(1)
    reference = np.array([1, 2, 2, 4, 5, 6])
    rankings = rng.integers(1, 7, size=(40, 6))
    ours = kendall_tau_b(reference, rankings)
    for row, tau in zip(rankings, ours, strict=True):
        assert tau == pytest.approx(stats.kendalltau(reference, row).statistic)


def test_clear_winner_has_a_tight_rank_interval_and_stable_tau():
    rng = np.random.default_rng(2)
    base = rng.uniform(0.3, 0.5, size=20)
    matrix = pd.DataFrame({"best": base + 0.4, "twin1": base, "twin2": base + rng.normal(0, 0.01, 20),
                           "worst": base - 0.3})
    full = rank_entries(matrix)
    boot = bootstrap_ranks(matrix, full, resamples=400, seed=5)
    assert boot.rank_low.tolist()[0] == 1 and boot.rank_high.tolist()[0] == 1
    assert boot.rank_low[3] == boot.rank_high[3] == 4
    assert boot.rank_low[1] <= 2 and boot.rank_high[1] >= 3  # the twins swap places
    np.testing.assert_allclose(boot.frequencies.sum(axis=1), 1.0)
    assert boot.tau_summary["median"] >= 2 / 3
    assert tied_groups(full, boot).tolist() == [1, 2, 2, 3]


def test_dataset_level_statistic_bootstrap():
    # A statistic function gets the resample count matrix; here the fraction of positive labels
    # that each entry scores above 0.5, which a loop over the drawn cases recomputes.
    labels = np.array([1, 0, 1, 1, 0, 1])
    scores = np.array([[0.9, 0.6], [0.2, 0.7], [0.8, 0.4], [0.7, 0.9], [0.1, 0.1], [0.6, 0.3]])

    def statistic(counts):
        hits = counts @ ((scores > 0.5) & (labels == 1)[:, None])
        return hits / np.maximum(counts @ (labels == 1), 1)[:, None]

    full = rank_entries(pd.DataFrame(scores, columns=["p", "q"]))
    boot = bootstrap_ranks_from(statistic, 6, full, resamples=50, seed=4, strata=labels)
    counts = bootstrap_counts(6, n_resamples=50, seed=4, strata=labels)
    row = np.repeat(np.arange(6), counts[10])
    positive = labels[row] == 1
    expected = [(scores[row, e][positive] > 0.5).mean() for e in range(2)]
    np.testing.assert_allclose(boot.statistic[10], expected)
    with pytest.raises(ValueError, match="aggregate-then-rank"):
        bootstrap_ranks_from(statistic, 6, rank_entries(pd.DataFrame(scores), method="test-then-rank"),
                             resamples=10, seed=1)


@pytest.mark.parametrize("n_entries", [1, 2, 3, 17, 40])
def test_kendall_tau_b_with_heavy_ties_matches_scipy(n_entries):
    rng = np.random.default_rng(n_entries)
    reference = rank_values(rng.integers(0, n_entries // 3 + 2, n_entries).astype(float), better="lower")
    rankings = rank_values(rng.integers(0, 4, size=(25, n_entries)).astype(float), better="lower")
    rankings[0] = 1  # all tied: undefined
    ours = kendall_tau_b(reference, rankings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = np.array([stats.kendalltau(reference, row).statistic for row in rankings])
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-15, equal_nan=True)


def test_rank_frequencies_count_each_rank_of_each_entry():
    ranks = np.array([[1, 2, 2], [3, 1, 2], [1, 1, 3], [1, 3, 2]])
    expected = np.array([[(ranks[:, e] == r).mean() for r in (1, 2, 3)] for e in range(3)])
    np.testing.assert_array_equal(rank_frequencies(ranks, 3), expected)
    np.testing.assert_array_equal(rank_frequencies(np.zeros((0, 3), dtype=int), 3), np.zeros((3, 3)))


def test_test_then_rank_normal_approximation_equals_scipy_on_full_data():
    """More than 50 cases with tied magnitudes and zeros: the normal approximation, both directions."""
    rng = np.random.default_rng(9)
    matrix = pd.DataFrame(np.round(rng.uniform(size=(80, 4)), 1) + np.array([0.0, 0.05, 0.1, 0.1]),
                          columns=list("ABCD"))
    matrix.iloc[4, 2] = np.nan
    result = rank_entries(matrix, method="test-then-rank")
    raw = np.full((4, 4), np.nan)
    for i in range(4):
        for j in range(4):
            if i != j:
                d = (matrix.iloc[:, i] - matrix.iloc[:, j]).dropna().to_numpy()
                raw[i, j] = stats.wilcoxon(d, alternative="greater", zero_method="wilcox",
                                           method="asymptotic").pvalue
    np.testing.assert_allclose(result.pvalues, _holm(raw), rtol=1e-10, equal_nan=True)


def test_bootstrap_test_then_rank_with_tied_magnitudes_equals_scipy_on_drawn_resamples():
    rng = np.random.default_rng(12)
    matrix = pd.DataFrame(np.round(rng.uniform(size=(30, 3)), 1), columns=list("ABC"))
    matrix.iloc[2, 0] = np.nan
    full = rank_entries(matrix, method="test-then-rank")
    boot = bootstrap_ranks(matrix, full, resamples=20, seed=3)
    counts = bootstrap_counts(30, n_resamples=20, seed=3)
    for b in (0, 9, 19):
        drawn = matrix.iloc[np.repeat(np.arange(30), counts[b])]
        p = np.full((3, 3), np.nan)
        for i in range(3):
            for j in range(3):
                d = (drawn.iloc[:, i] - drawn.iloc[:, j]).dropna().to_numpy()
                if i != j:
                    p[i, j] = stats.wilcoxon(d, alternative="greater", method="asymptotic").pvalue \
                        if np.any(d != 0) else 1.0
        np.testing.assert_array_equal(boot.statistic[b], np.nansum(_holm(p) < 0.05, axis=1))


def test_bootstrap_median_from_counts_equals_nanmedian_of_the_drawn_cases():
    """Clustered resamples vary in size (odd and even counts); values tie; one entry is all NaN."""
    rng = np.random.default_rng(21)
    matrix = pd.DataFrame(np.round(rng.uniform(size=(15, 3)), 1), columns=list("ABC"))
    matrix.iloc[[1, 4], 0] = np.nan
    matrix["D"] = np.nan
    patients = np.array([f"p{i // 2}" for i in range(15)])
    full = rank_entries(matrix, aggregate="median")
    boot = bootstrap_ranks(matrix, full, resamples=60, seed=8, clusters=patients)
    counts = bootstrap_counts(15, n_resamples=60, seed=8, clusters=patients)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.array([np.nanmedian(matrix.to_numpy()[np.repeat(np.arange(15), row)], axis=0)
                             for row in counts])
    np.testing.assert_array_equal(boot.statistic, expected)
