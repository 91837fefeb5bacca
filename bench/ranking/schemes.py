"""Ranking schemes for challenge entries, and how stable the ranks are under resampling.

The input is a per-case matrix (cases x entries) of one metric, as the scorer left it: the
task's missing-prediction policy has already been applied, so a NaN means "this case does
not count for this entry" (policy ``exclude``, or an undefined value).

Schemes (challengeR's names; Wiesenfarth et al., Sci Rep 11:2369, 2021):

``aggregate-then-rank``
    Each entry's mean (or median) over its non-NaN cases, then rank those.
``rank-then-aggregate``
    Rank the entries within every case (only entries with a value on that case take part),
    then rank the entries by their mean per-case rank over the cases they were ranked on.
``test-then-rank``
    For every ordered pair (i, j), a one-sided Wilcoxon signed-rank test that i is better
    than j on the cases where both have a value (``scipy.stats.wilcoxon``, zero differences
    dropped); the p-values of all pairs are Holm-adjusted together; an entry's score is the
    number of entries it beats at level ``alpha``; more wins rank higher. The exact null
    distribution is used for up to 50 non-zero differences without tied magnitudes, the
    normal approximation with tie correction otherwise (and on bootstrap resamples, which
    always hold ties).

Ties: every final ranking (and every per-case ranking) gives tied entries the same, minimum
rank (competition ranking "1, 2, 2, 4", as grand-challenge does). An entry whose statistic
is NaN (no case counted) ranks last.

Stability (:func:`bootstrap_ranks`): the cases (or the clusters, e.g. patients) are resampled
with replacement, stratified like the scorer's intervals, by the scorer's own engine
(:func:`bench.metrics.uncertainty.bootstrap_counts`: one seeded count matrix for all entries,
so the comparison is paired), the same scheme is applied to every resample (vectorized over
resamples), and we report each entry's rank distribution, its
rank interval (the ``(1-confidence)/2`` and ``(1+confidence)/2`` percentiles, taken as observed
ranks), and Kendall's tau-b between the full-data ranking and each resample's ranking.

Tied groups (:func:`tied_groups`): walk the entries from best to worst; an entry joins the
current group when it is not significantly worse than the group's leader (its first entry),
otherwise it starts a new group. "Not significantly worse" is, for the two aggregate schemes,
a paired bootstrap confidence interval of (leader - entry) in the ranking statistic that
contains 0, and for test-then-rank a Holm-adjusted p-value of "leader beats entry" >= alpha.
"""

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import ndtr

from bench.errors import RankingError
from bench.metrics.uncertainty import bootstrap_counts

METHODS = ("aggregate-then-rank", "rank-then-aggregate", "test-then-rank")
AGGREGATES = ("mean", "median")


@dataclass(frozen=True, eq=False)
class RankResult:
    """A ranking of entries on full data.

    Attributes
    ----------
    entries : tuple of str
        Entry names, in the matrix's column order.
    method, aggregate, direction : str
        The scheme, the aggregate (``mean``/``median``) and which way the metric is better.
    scores : ndarray, shape (E,)
        The statistic ranked: the aggregate (aggregate-then-rank), the mean per-case rank
        (rank-then-aggregate; lower is better) or the number of wins (test-then-rank).
    ranks : ndarray of int, shape (E,)
        1 = best; ties share the minimum rank.
    pvalues : ndarray, shape (E, E), or None
        test-then-rank: Holm-adjusted p-value that row beats column (NaN on the diagonal).
    alpha : float
        Significance level of test-then-rank and of the tied groups.
    """

    entries: tuple[str, ...]
    method: str
    aggregate: str
    direction: str
    scores: np.ndarray
    ranks: np.ndarray
    pvalues: np.ndarray | None
    alpha: float

    @property
    def order(self) -> np.ndarray:
        """Entry indices from best to worst (ties keep column order)."""
        return np.argsort(self.ranks, kind="stable")

    @property
    def scores_direction(self) -> str:
        """Which way :attr:`scores` is better: mean ranks are better when lower."""
        if self.method == "aggregate-then-rank":
            return self.direction
        return "lower" if self.method == "rank-then-aggregate" else "higher"


@dataclass(frozen=True, eq=False)
class BootstrapRanks:
    """Rank distributions over resampled cases (see :func:`bootstrap_ranks`).

    Attributes
    ----------
    entries : tuple of str
    ranks : ndarray of int, shape (B, E)
        The ranking of each kept resample.
    statistic : ndarray, shape (B, E)
        The ranking statistic of each kept resample (paired across entries).
    rank_low, rank_high : ndarray of int, shape (E,)
        Rank interval: observed ranks at the lower and upper percentile.
    median_rank : ndarray, shape (E,)
    frequencies : ndarray, shape (E, E)
        ``frequencies[e, r - 1]``: fraction of resamples in which entry e has rank r.
    kendall_tau : ndarray, shape (B,)
        Kendall's tau-b between the full-data ranking and each resample's.
    resamples, seed : int
    confidence : float
    dropped : int
        Resamples dropped because no entry had a statistic (e.g. a class absent for AUROC).
    """

    entries: tuple[str, ...]
    ranks: np.ndarray
    statistic: np.ndarray
    rank_low: np.ndarray
    rank_high: np.ndarray
    median_rank: np.ndarray
    frequencies: np.ndarray
    kendall_tau: np.ndarray
    resamples: int
    seed: int
    confidence: float
    dropped: int

    @property
    def tau_summary(self) -> dict[str, float]:
        """Median and quartiles of Kendall's tau (NaN when fewer than two entries)."""
        if self.kendall_tau.size == 0 or np.all(np.isnan(self.kendall_tau)):
            return {"median": float("nan"), "q1": float("nan"), "q3": float("nan")}
        q1, median, q3 = np.nanpercentile(self.kendall_tau, [25, 50, 75])
        return {"median": float(median), "q1": float(q1), "q3": float(q3)}


def rank_values(values: np.ndarray, *, better: str) -> np.ndarray:
    """Min-ranks along the last axis (1 = best); NaN values rank after every number.

    Parameters
    ----------
    values : ndarray, shape (..., E)
    better : {"higher", "lower"}
    """
    _check_direction(better)
    key = -values if better == "higher" else values
    key = np.where(np.isnan(key), np.inf, key)
    return stats.rankdata(key, axis=-1, method="min").astype(int)


def per_case_ranks(matrix: np.ndarray, *, direction: str) -> np.ndarray:
    """Rank entries within each case (row); NaN stays NaN and does not take part; min ties."""
    _check_direction(direction)
    key = -matrix if direction == "higher" else matrix
    return stats.rankdata(key, axis=1, method="min", nan_policy="omit")


def rank_entries(matrix: pd.DataFrame, *, method: str = "aggregate-then-rank", aggregate: str = "mean",
                 direction: str = "higher", alpha: float = 0.05) -> RankResult:
    """Rank the entries (columns) of a per-case matrix (rows = cases) with one scheme.

    Parameters
    ----------
    matrix : pandas.DataFrame, shape (cases, entries)
        One metric per case and entry, NaN where a case does not count for an entry.
    method : {"aggregate-then-rank", "rank-then-aggregate", "test-then-rank"}
    aggregate : {"mean", "median"}
        Used by aggregate-then-rank (rank-then-aggregate always averages the ranks).
    direction : {"higher", "lower"}
        Which way the metric is better.
    alpha : float
        Significance level for test-then-rank.

    Examples
    --------
    >>> m = pd.DataFrame({"A": [0.9, 0.8], "B": [0.7, 0.8]})
    >>> rank_entries(m).ranks.tolist()
    [1, 2]
    """
    _check_options(method, aggregate, direction, alpha)
    values = matrix.to_numpy(dtype=float)
    entries = tuple(str(c) for c in matrix.columns)
    pvalues = None
    if method == "aggregate-then-rank":
        scores = _aggregate(values, aggregate, axis=0)
        ranks = rank_values(scores, better=direction)
    elif method == "rank-then-aggregate":
        scores = _nanmean(per_case_ranks(values, direction=direction), axis=0)
        ranks = rank_values(scores, better="lower")
    else:
        pvalues = _holm(_pairwise_wilcoxon(values, direction=direction))
        scores = np.nansum(pvalues < alpha, axis=1).astype(float)
        ranks = rank_values(scores, better="higher")
    return RankResult(entries, method, aggregate, direction, scores, ranks, pvalues, alpha)


def rank_aggregates(scores: pd.Series, *, direction: str = "higher") -> RankResult:
    """Aggregate-then-rank for a metric computed once per entry over all cases (e.g. AUROC).

    ``scores`` maps entry name -> metric value; the result's ``aggregate`` is ``"dataset"``.
    """
    _check_direction(direction)
    values = scores.to_numpy(dtype=float)
    return RankResult(tuple(str(name) for name in scores.index), "aggregate-then-rank", "dataset",
                      direction, values, rank_values(values, better=direction), None, 0.05)


def bootstrap_ranks(matrix: pd.DataFrame, full: RankResult, *, resamples: int, seed: int,
                    confidence: float = 0.95, clusters: np.ndarray | None = None,
                    strata: np.ndarray | None = None) -> BootstrapRanks:
    """Apply ``full``'s scheme to resampled cases of ``matrix`` and summarize the ranks.

    The resamples are :func:`bench.metrics.uncertainty.bootstrap_counts` with the task's
    seed, strata and clusters: the same engine, and so the same resamples, as the scorer's
    confidence intervals.

    Parameters
    ----------
    matrix : pandas.DataFrame, shape (cases, entries)
        The matrix ``full`` was computed from.
    full : RankResult
        The full-data ranking (its method, aggregate, direction and alpha are reused).
    resamples, seed : int
    confidence : float
        Level of the rank intervals.
    clusters : array of str, shape (cases,), optional
        Resample these groups (e.g. patient ids) instead of single cases.
    strata : array, shape (cases,), optional
        Resample within each stratum (e.g. the reference class), keeping its size.
    """
    values = matrix.to_numpy(dtype=float)
    counts = bootstrap_counts(matrix.shape[0], n_resamples=resamples, seed=seed, strata=strata,
                              clusters=clusters)
    if full.method == "aggregate-then-rank" and full.aggregate == "mean":
        statistic = _weighted_nanmean(values, counts)
    elif full.method == "aggregate-then-rank":
        statistic = _weighted_nanmedian(values, counts)
    elif full.method == "rank-then-aggregate":
        statistic = _weighted_nanmean(per_case_ranks(values, direction=full.direction), counts)
    else:
        statistic = _resampled_wins(values, counts, full)
    return summarize_bootstrap(statistic, full, resamples=resamples, seed=seed, confidence=confidence)


def bootstrap_ranks_from(statistic: Callable[[np.ndarray], np.ndarray], n_cases: int, full: RankResult,
                         *, resamples: int, seed: int, confidence: float = 0.95,
                         clusters: np.ndarray | None = None,
                         strata: np.ndarray | None = None) -> BootstrapRanks:
    """Bootstrap ranks for a dataset-level metric (e.g. AUROC), aggregate-then-rank only.

    ``statistic(counts)`` gets the (B, n_cases) resample count matrix of
    :func:`bench.metrics.uncertainty.bootstrap_counts` (``counts[b, i]`` = how often case i is
    in resample b) and returns the metric of every entry on every resample, shape (B, E).
    """
    if full.method != "aggregate-then-rank":
        raise RankingError(f"a dataset-level metric can only be ranked aggregate-then-rank, "
                         f"not {full.method!r}")
    counts = bootstrap_counts(n_cases, n_resamples=resamples, seed=seed, strata=strata, clusters=clusters)
    return summarize_bootstrap(np.asarray(statistic(counts), dtype=float), full,
                               resamples=resamples, seed=seed, confidence=confidence)


def counts_to_indices(counts: np.ndarray) -> np.ndarray:
    """The case indices of every resample, padded with ``n`` to equal length.

    Row b lists case i ``counts[b, i]`` times (in case order); rows of clustered resamples
    differ in length and are padded with ``n``, which indexes the NaN row that
    :func:`_with_pad` appends to the data. For statistics that need the drawn cases themselves
    (median, Wilcoxon tests) rather than case weights.

    Returns
    -------
    ndarray of int, shape (B, L), L = the largest resample
    """
    counts = np.asarray(counts)
    n_resamples, n_cases = counts.shape
    sizes = counts.sum(axis=1)
    indices = np.full((n_resamples, int(sizes.max()) if n_resamples else 0), n_cases)
    rows = np.repeat(np.arange(n_resamples), sizes)
    cases = np.repeat(np.tile(np.arange(n_cases), n_resamples), counts.ravel())
    slots = np.arange(rows.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    indices[rows, slots] = cases
    return indices


def summarize_bootstrap(statistic: np.ndarray, full: RankResult, *, resamples: int, seed: int,
                        confidence: float) -> BootstrapRanks:
    """Rank each resample's statistic (B, E) and derive intervals, frequencies and tau."""
    kept = ~np.all(np.isnan(statistic), axis=1)
    statistic = statistic[kept]
    ranks = rank_values(statistic, better=full.scores_direction)
    n_entries = len(full.entries)
    tail = (1 - confidence) / 2 * 100
    if ranks.shape[0]:
        low = np.percentile(ranks, tail, axis=0, method="lower").astype(int)
        high = np.percentile(ranks, 100 - tail, axis=0, method="higher").astype(int)
        median = np.median(ranks, axis=0)
    else:
        low = high = np.full(n_entries, -1)
        median = np.full(n_entries, np.nan)
    frequencies = rank_frequencies(ranks, n_entries)
    return BootstrapRanks(full.entries, ranks, statistic, low, high, median, frequencies,
                          kendall_tau_b(full.ranks, ranks), resamples, seed, confidence,
                          int((~kept).sum()))


def rank_frequencies(ranks: np.ndarray, n_entries: int) -> np.ndarray:
    """``frequencies[e, r - 1]``: the fraction of rows of ``ranks`` (B, E) in which entry e has rank r.

    One bincount over (entry, rank) pairs, O(B E); all zeros without rows.
    """
    ranks = np.asarray(ranks, dtype=np.int64).reshape(-1, n_entries)
    if ranks.shape[0] == 0:
        return np.zeros((n_entries, n_entries))
    pairs = np.arange(n_entries) * n_entries + (ranks - 1)
    return np.bincount(pairs.ravel(), minlength=n_entries * n_entries).reshape(n_entries, n_entries) \
        / ranks.shape[0]


def kendall_tau_b(reference: np.ndarray, rankings: np.ndarray) -> np.ndarray:
    """Kendall's tau-b between one ranking (E,) and each row of ``rankings`` (B, E).

    tau_b = (n0 - n1 - n2 + n3 - 2 S) / sqrt((n0 - n1) (n0 - n2)) (Knight 1966): n0 = E(E-1)/2
    pairs, n1 and n2 the pairs tied in the reference and in the row, n3 the pairs tied in both,
    and S the discordant pairs, counted as the inversions of the row once sorted by (reference,
    row) (a Fenwick tree over ranks, vectorized over rows). O(B E log E) time and O(B E) memory,
    instead of the (B, E, E) sign tensor of the definition; NaN when a ranking is all ties.
    Integer ranks 1..E are expected (as :func:`rank_values` gives).
    """
    reference = np.asarray(reference, dtype=np.int64)
    rankings = np.atleast_2d(np.asarray(rankings, dtype=np.int64))
    n_entries = reference.size
    n0 = n_entries * (n_entries - 1) // 2
    n1 = int(_tied_pairs(np.sort(reference)[None, :])[0])
    n2 = _tied_pairs(np.sort(rankings, axis=1))
    key = reference[None, :] * (n_entries + 1) + rankings
    order = np.argsort(key, axis=1, kind="stable")
    n3 = _tied_pairs(np.take_along_axis(key, order, axis=1))
    swaps = _inversions(np.take_along_axis(rankings, order, axis=1), n_entries)
    numerator = n0 - n1 - n2 + n3 - 2 * swaps
    denominator = np.sqrt(float(n0 - n1) * (n0 - n2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def _tied_pairs(sorted_rows: np.ndarray) -> np.ndarray:
    """Pairs of equal values in each row of a row-sorted (B, E) array: the sum of t(t-1)/2 over runs."""
    b, e = sorted_rows.shape
    position = np.broadcast_to(np.arange(e), (b, e))
    new = np.ones((b, e), dtype=bool)
    new[:, 1:] = sorted_rows[:, 1:] != sorted_rows[:, :-1]
    run_start = np.maximum.accumulate(np.where(new, position, 0), axis=1)
    return (position - run_start).sum(axis=1)


def _inversions(rows: np.ndarray, max_value: int) -> np.ndarray:
    """Strict inversions #{i < j: v_i > v_j} per row of (B, E) integers in 1..max_value.

    A Fenwick tree per row, all rows at once: E insertions and queries of log(max_value) steps
    each; index 0 (queries) and max_value + 1 (updates) are sinks, so every row takes the same
    number of steps.
    """
    b, e = rows.shape
    sink = max_value + 1
    tree = np.zeros((b, max_value + 2), dtype=np.int64)
    every = np.arange(b)
    total = np.zeros(b, dtype=np.int64)
    steps = int(max_value).bit_length() + 1
    for j in range(e):
        index = np.minimum(rows[:, j], max_value)
        for _ in range(steps):  # subtract the earlier values <= v_j, add j: the earlier values > v_j
            total -= tree[every, index]
            index = index - (index & -index)
        total += j
        index = np.minimum(rows[:, j], max_value)
        for _ in range(steps):
            tree[every, index] += 1
            index = np.minimum(index + (index & -index), sink)
    return total


def tied_groups(full: RankResult, boot: BootstrapRanks | None = None) -> np.ndarray:
    """Group number (1 = best group) per entry, by the leader rule of the module docstring.

    aggregate schemes need ``boot`` (its paired statistic); test-then-rank uses ``full.pvalues``.
    Without ``boot`` for an aggregate scheme, only exactly tied ranks share a group.
    """
    groups = np.zeros(len(full.entries), dtype=int)
    leader, group = None, 0
    for entry in full.order:
        if leader is None or not _tied_with(full, boot, leader, entry):
            leader, group = entry, group + 1
        groups[entry] = group
    return groups


def _tied_with(full: RankResult, boot: BootstrapRanks | None, leader: int, entry: int) -> bool:
    if full.ranks[leader] == full.ranks[entry]:
        return True
    if full.method == "test-then-rank":
        return not full.pvalues[leader, entry] < full.alpha
    if boot is None or boot.statistic.shape[0] == 0:
        return False
    difference = boot.statistic[:, leader] - boot.statistic[:, entry]
    difference = difference[~np.isnan(difference)]
    if difference.size == 0:
        return True
    tail = (1 - boot.confidence) / 2 * 100
    low, high = np.percentile(difference, [tail, 100 - tail])
    return bool(low <= 0 <= high)


def _pairwise_wilcoxon(values: np.ndarray, *, direction: str) -> np.ndarray:
    """One-sided p-value that row entry beats column entry, on cases where both have a value.

    One pass per unordered pair: both directions come from the same signed ranks (the exact
    null distribution through scipy, the normal approximation from :func:`_signed_rank_z`).
    """
    n_entries = values.shape[1]
    sign = 1.0 if direction == "higher" else -1.0
    pvalues = np.full((n_entries, n_entries), np.nan)
    for i, j in zip(*np.triu_indices(n_entries, k=1), strict=True):
        difference = sign * (values[:, i] - values[:, j])
        difference = difference[~np.isnan(difference)]
        if _exact_or_normal(difference) == "exact":
            pvalues[i, j], pvalues[j, i] = _exact_pvalue(difference), _exact_pvalue(-difference)
        else:
            z = _signed_rank_z(difference, np.ones((difference.size, 1)))
            pvalues[i, j], pvalues[j, i] = (float(p[0]) for p in _normal_pvalues(z))
    return pvalues


def _signed_rank_z(difference: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """z of the Wilcoxon signed-rank statistic of ``difference`` on every resample.

    ``weights`` is the transposed count matrix, (n, B), case-major so that gathering cases
    copies contiguous rows: resample b holds case i ``weights[i, b]`` times. Its statistic comes
    from the weights, without drawing the resample: zero (and NaN) differences are dropped
    (``wilcox``), the cases are sorted once by |difference|, a group of t tied magnitudes in the
    resample (t = the group's total weight) shares the midrank (cases before it) + (t + 1) / 2, and

    .. math:: z = \\frac{R^+ - n(n+1)/4}{\\sqrt{(n(n+1)(2n+1) - \\tfrac12\\sum t^3 - t) / 24}}

    with n the resample's non-zero count: scipy's normal approximation (no continuity
    correction) on the drawn resample, in O(n log n + B n) instead of a sort per resample.
    NaN where a resample has no non-zero difference.
    """
    d_all = np.nan_to_num(np.asarray(difference, dtype=np.float64))
    keep = np.flatnonzero(d_all != 0)
    if keep.size == 0:
        return np.full(weights.shape[1], np.nan)
    d = d_all[keep]
    order = np.argsort(np.abs(d), kind="stable")
    magnitude = np.abs(d)[order]
    starts = np.flatnonzero(np.r_[True, magnitude[1:] != magnitude[:-1]])
    w = weights[keep[order]]
    positive = w * (d[order] > 0)[:, None]
    if starts.size < keep.size:  # tied magnitudes: one row per group of equal |difference|
        tied, positive = np.add.reduceat(w, starts, axis=0), np.add.reduceat(positive, starts, axis=0)
    else:
        tied = w
    midrank = np.cumsum(tied, axis=0) - tied + (tied + 1) / 2
    r_plus = np.einsum("gb,gb->b", positive, midrank)
    n = tied.sum(axis=0)
    se = np.sqrt((n * (n + 1) * (2 * n + 1) - np.sum(tied ** 3 - tied, axis=0) / 2) / 24)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (r_plus - n * (n + 1) / 4) / np.where(n > 0, se, 1), np.nan)


def _normal_pvalues(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-sided p-values (first beats second, second beats first) of signed-rank z; 1 where z is NaN."""
    return np.where(np.isnan(z), 1.0, ndtr(-z)), np.where(np.isnan(z), 1.0, ndtr(z))


def _exact_or_normal(difference: np.ndarray) -> str:
    """``exact`` for up to 50 non-zero differences without tied magnitudes, else ``asymptotic``.

    Spelled out because scipy's ``auto`` falls back to a (slow, randomized) permutation test
    when there are ties or zeros; the normal approximation with tie correction is deterministic.
    """
    magnitudes = np.abs(difference[difference != 0])
    exact = magnitudes.size <= 50 and np.unique(magnitudes).size == magnitudes.size
    return "exact" if exact else "asymptotic"


def _exact_pvalue(difference: np.ndarray) -> float:
    """One-sided exact signed-rank p-value (positive differences = better); 1 without any non-zero."""
    if np.count_nonzero(difference) == 0:
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = stats.wilcoxon(difference, alternative="greater", zero_method="wilcox",
                                method="exact").pvalue
    return float(np.nan_to_num(result, nan=1.0))


def _resampled_wins(values: np.ndarray, counts: np.ndarray, full: RankResult) -> np.ndarray:
    """Wins per entry on every resample: weighted signed-rank tests per pair, Holm per resample.

    Cases missing for either entry of a pair are dropped, as on full data. One pass per
    unordered pair over the (B, n) count matrix (:func:`_signed_rank_z`) gives both
    directions; no resample is drawn as indices.
    """
    n_entries = values.shape[1]
    sign = 1.0 if full.direction == "higher" else -1.0
    pvalues = np.full((counts.shape[0], n_entries, n_entries), np.nan)
    weights = np.ascontiguousarray(np.asarray(counts, dtype=np.float64).T)
    for i, j in zip(*np.triu_indices(n_entries, k=1), strict=True):
        z = _signed_rank_z(sign * (values[:, i] - values[:, j]), weights)
        pvalues[:, i, j], pvalues[:, j, i] = _normal_pvalues(z)
    return np.nansum(_holm(pvalues) < full.alpha, axis=2).astype(float)


def _holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm step-down adjustment over all off-diagonal pairs of the last two axes."""
    shape = pvalues.shape
    flat = pvalues.reshape(*shape[:-2], -1)
    valid = ~np.isnan(flat)
    m = int(valid[(0,) * (flat.ndim - 1)].sum()) if flat.ndim > 1 else int(valid.sum())
    order = np.argsort(np.where(valid, flat, np.inf), axis=-1, kind="stable")
    ordered = np.take_along_axis(flat, order, axis=-1)
    factors = np.concatenate([m - np.arange(m), np.ones(flat.shape[-1] - m)])
    adjusted = np.minimum(1.0, np.fmax.accumulate(ordered * factors, axis=-1))
    result = np.empty_like(flat)
    np.put_along_axis(result, order, adjusted, axis=-1)
    return np.where(valid, result, np.nan).reshape(shape)


def _aggregate(values: np.ndarray, aggregate: str, *, axis: int) -> np.ndarray:
    if aggregate == "median":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(values, axis=axis)
    return _nanmean(values, axis=axis)


def _nanmean(values: np.ndarray, *, axis: int) -> np.ndarray:
    counts = np.sum(~np.isnan(values), axis=axis)
    sums = np.nansum(values, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _weighted_nanmean(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per resample and entry, the mean over drawn cases that have a value: (B, n) x (n, E)."""
    present = ~np.isnan(values)
    weights = np.asarray(counts, dtype=np.float64)  # float x float: numpy's product runs in BLAS
    sums = weights @ np.where(present, values, 0.0)
    numbers = weights @ present.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(numbers > 0, sums / np.maximum(numbers, 1), np.nan)


def _weighted_nanmedian(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per resample and entry, the median over drawn cases that have a value: numpy's nanmedian
    of the drawn resample (the mean of the two middle values for an even count), from the
    counts alone.

    Each entry's values are sorted once; in resample b the k-th smallest drawn value is the
    first sorted case whose cumulative count reaches k. O(E B n) time and O(B n) memory,
    instead of the (B, n, E) array of drawn values.
    """
    weights = np.asarray(counts, dtype=np.float64)
    out = np.full((weights.shape[0], values.shape[1]), np.nan)
    for entry in range(values.shape[1]):
        present = np.flatnonzero(~np.isnan(values[:, entry]))
        if present.size == 0:
            continue
        order = present[np.argsort(values[present, entry], kind="stable")]
        sorted_values = values[order, entry]
        cumulative = np.cumsum(weights[:, order], axis=1)
        drawn = cumulative[:, -1]
        lower = np.floor((drawn + 1) / 2)  # ranks of the two middle values (equal when drawn is odd)
        upper = np.floor(drawn / 2) + 1
        low_at = np.minimum((cumulative < lower[:, None]).sum(axis=1), order.size - 1)
        high_at = np.minimum((cumulative < upper[:, None]).sum(axis=1), order.size - 1)
        median = (sorted_values[low_at] + sorted_values[high_at]) / 2
        out[:, entry] = np.where(drawn > 0, median, np.nan)
    return out


def _check_direction(direction: str) -> None:
    if direction not in ("higher", "lower"):
        raise RankingError(f"direction must be 'higher' or 'lower', got {direction!r}")


def _check_options(method: str, aggregate: str, direction: str, alpha: float) -> None:
    if method not in METHODS:
        raise RankingError(f"method must be one of {METHODS}, got {method!r}")
    if aggregate not in AGGREGATES:
        raise RankingError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    _check_direction(direction)
    if not 0 < alpha < 1:
        raise RankingError(f"alpha must be in (0, 1), got {alpha!r}")
