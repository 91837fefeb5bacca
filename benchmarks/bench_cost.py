"""Scoring and ranking cost as cases and entries grow, against the explicit loops they replace.

Run from the repository root::

    python -m benchmarks.bench_cost            # the whole table, ~2-4 min on 2 shared cores
    python -m benchmarks.bench_cost --quick    # 250 and 1,000 cases, 5 and 20 entries

What is timed (CPU seconds of this process, median of ``--repeats``; 2,000 resamples, the
tasks' own bootstrap settings):

scoring, per entry
    :func:`bench.scoring.aggregate.aggregate` of one scored run: the ``ricord-ct-covid-cls``
    head (AUROC, AP, balanced accuracy, sensitivity, specificity, Brier, ECE, each with its
    bootstrap interval, subgroups by site / sex / age band and the fairness gaps) and the
    ``ricord-1a-lesion-seg`` case table (its metrics, subgroups), each time drawing the count
    matrix too, as ``bench score`` of a single run does. Peer: the same aggregate with the
    explicit resample loop this replaced (:class:`bench.metrics.subgroups.CallableMetric`: the
    registry metric called on each drawn resample) for every metric but AUROC and kappa.
ranking, per board
    :func:`bench.ranking.schemes.bootstrap_ranks` (aggregate-then-rank, rank intervals,
    frequencies, Kendall's tau) and the AUROC board's
    :func:`bench.ranking.statistics.resampled_auroc`, with peak traced memory. Peer: Kendall's
    tau-b from the (B, E, E) sign tensor of its definition (what the ranking used to build).
1,000 x 20
    Scoring 20 entries on the same 1,000 cases (one case table, 20 sets of predictions, as on a
    leaderboard, so the task's count matrix is drawn once and shared) and ranking them by AUROC
    with rank intervals, the issue's end-to-end target (<= 8 s); peer: the same board scored with
    the explicit resample loop. And 320 entries ranked (<= 1 s, <= 300 MB).
"""

import argparse
import statistics
import time
import tracemalloc
from collections.abc import Callable
from unittest import mock

import numpy as np
import pandas as pd

from bench.metrics.registry import METRICS
from bench.metrics.subgroups import CallableMetric
from bench.metrics.uncertainty import bootstrap_counts
from bench.ranking.schemes import bootstrap_ranks, kendall_tau_b, rank_aggregates, rank_entries, rank_values
from bench.ranking.statistics import resampled_auroc
from bench.scoring import aggregate as scoring_aggregate
from bench.scoring import bootstrap as scoring_bootstrap
from bench.scoring.aggregate import aggregate
from bench.scoring.classification import head_data
from bench.tasks import load_task

RESAMPLES = 2000


def _cpu(call: Callable[[], object], repeats: int = 1) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        call()
        times.append(time.process_time() - start)
    return statistics.median(times)


def _peak_mib(call: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _demographics(n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame({"case_id": [f"case-{i:05d}" for i in range(n)],
                         "patient_id": [f"p{i // 2:05d}" for i in range(n)],
                         "site": rng.choice(["A", "B", "C", "D"], n), "sex": rng.choice(["F", "M"], n),
                         "age_band": rng.choice(["18-39", "40-59", "60-79", "80+"], n)})


def classification_run(n: int, seed: int = 0, entry: int = 0):
    """(spec, per-case table, heads) of one entry of the CT COVID task on n cases.

    The cases (reference labels, patients, sites, sexes, age bands) depend on ``seed`` alone and
    the entry's predicted probabilities on ``entry`` too: the entries of one board are scored on
    the same cases, as on a leaderboard.
    """
    spec = load_task("ricord-ct-covid-cls")
    rng = np.random.default_rng(seed)
    head = spec.heads[0]
    labels = pd.Series(rng.choice(head.classes, n))
    table = _demographics(n, rng)
    positive = (labels == head.positive).to_numpy()
    predictions = np.random.default_rng([seed, entry])
    p = np.clip(predictions.normal(0.35 + (0.2 + 0.01 * entry) * positive, 0.2), 0, 1)
    proba = np.zeros((n, 2))
    proba[:, head.classes.index(head.positive)] = p
    proba[:, 1 - head.classes.index(head.positive)] = 1 - p
    return spec, table, {head.name: head_data(head, labels, proba)}


def segmentation_run(n: int, seed: int = 0):
    spec = load_task("ricord-1a-lesion-seg")
    rng = np.random.default_rng(seed)
    table = _demographics(n, rng)
    for name in spec.metrics:
        table[name] = rng.random(n)
    table["volume_ref_ml"] = np.where(rng.random(n) < 0.1, 0.0, rng.gamma(2.0, 50.0, n))
    return spec, table


def explicit_aggregate(spec, table, heads) -> None:
    """The code this replaced: the same aggregate, with every metric but AUROC and kappa bootstrapped
    by calling the registry metric on each drawn resample (:class:`CallableMetric`)."""
    def looping(name, data):
        if name in ("auroc", "quadratic_weighted_kappa", "cohen_kappa"):
            return closed_form(name, data)
        info, k = METRICS[name], len(data.head.classes)
        if info.inputs == "labels":
            return CallableMetric(info.func, data.y_true, data.y_pred, (("n_classes", k),))
        if info.inputs == "scores_threshold":
            return CallableMetric(info.func, data.y_true, data.y_score, (("threshold", data.head.threshold),))
        return CallableMetric(info.func, data.y_true, data.y_score)

    closed_form = scoring_aggregate._statistic
    with mock.patch.object(scoring_aggregate, "_statistic", looping):
        aggregate(spec, table, heads)


def tau_by_sign_tensor(reference: np.ndarray, rankings: np.ndarray) -> np.ndarray:
    """Kendall's tau-b from its definition: the (B, E, E) tensor of pair signs."""
    upper = np.triu_indices(len(reference), k=1)
    ref_sign = np.sign(reference[:, None] - reference[None, :])[upper]
    row_sign = np.sign(rankings[:, :, None] - rankings[:, None, :])[:, upper[0], upper[1]]
    return (row_sign * ref_sign).sum(axis=1) / np.sqrt(np.abs(ref_sign).sum() * np.abs(row_sign).sum(axis=1))


def scoring_table(cases: list[int], repeats: int, peer_up_to: int) -> None:
    print(f"\nscoring one entry (CPU s, median of {repeats}; {RESAMPLES} resamples)")
    print(f"{'cases':>6} {'classification':>14} {'explicit loop':>13} {'ratio':>7} {'segmentation':>12}")
    def alone(spec, table, heads) -> None:
        scoring_bootstrap._LAST_DRAWN.clear()  # as `bench score` of one run: the counts drawn too
        aggregate(spec, table, heads)

    for n in cases:
        spec, table, heads = classification_run(n)
        ours = _cpu(lambda spec=spec, table=table, heads=heads: alone(spec, table, heads), repeats)
        peer_text = f"{'-':>13} {'-':>7}"
        if n <= peer_up_to:
            peer = _cpu(lambda spec=spec, table=table, heads=heads: explicit_aggregate(spec, table, heads))
            peer_text = f"{peer:>13.2f} {peer / ours:>6.0f}x"
        seg_spec, seg_table = segmentation_run(n)
        seg = _cpu(lambda seg_spec=seg_spec, seg_table=seg_table: alone(seg_spec, seg_table, {}), repeats)
        print(f"{n:>6} {ours:>14.3f} {peer_text} {seg:>12.3f}")


def _ranking_matrix(n: int, entries: int, rng: np.random.Generator) -> pd.DataFrame:
    skill = np.linspace(0.55, 0.75, entries)
    values = np.clip(rng.normal(skill, 0.15, size=(n, entries)), 0, 1)
    return pd.DataFrame(values, columns=[f"entry-{e:03d}" for e in range(entries)])


def ranking_table(cases: list[int], entries: list[int], repeats: int, peer_up_to: int) -> None:
    print(f"\nranking a board (CPU s, median of {repeats}; peak traced MiB; {RESAMPLES} resamples)")
    print(f"{'cases':>6} {'entries':>7} {'bootstrap_ranks':>15} {'MiB':>6} {'tau':>7} {'tau (B,E,E)':>11} "
          f"{'ratio':>6}")
    rng = np.random.default_rng(1)
    for n in cases:
        for e in entries:
            matrix = _ranking_matrix(n, e, rng)
            full = rank_entries(matrix)
            def run(matrix=matrix, full=full):
                return bootstrap_ranks(matrix, full, resamples=RESAMPLES, seed=1)

            ours, peak = _cpu(run, repeats), _peak_mib(run)
            ranks = rank_values(rng.random((RESAMPLES, e)), better="higher")
            tau = _cpu(lambda ranks=ranks, full=full: kendall_tau_b(full.ranks, ranks), repeats)
            peer_text = f"{'-':>11} {'-':>6}"
            if e <= peer_up_to:
                peer = _cpu(lambda ranks=ranks, full=full: tau_by_sign_tensor(full.ranks, ranks))
                peer_text = f"{peer:>11.3f} {peer / max(tau, 1e-6):>5.0f}x"
            print(f"{n:>6} {e:>7} {ours:>15.3f} {peak:>6.0f} {tau:>7.3f} {peer_text}")


def auroc_board(n: int, entries: int, score=aggregate, repeats: int = 1) -> tuple[float, float | None]:
    """Score ``entries`` entries on the same n cases with ``score`` and rank them by AUROC with rank
    intervals: (CPU s, median of ``repeats``; peak traced MiB of one more run, for ``aggregate``)."""
    runs = [classification_run(n, entry=entry) for entry in range(entries)]
    spec, _, heads0 = runs[0]
    head = spec.heads[0]
    labels = np.array(pd.Series(heads0[head.name].y_true).map({1: head.positive, 0: "other"}))
    probabilities = np.stack([np.column_stack([1 - h[head.name].y_score, h[head.name].y_score])
                              for _, _, h in runs], axis=1)

    def board() -> None:
        scoring_bootstrap._LAST_DRAWN.clear()  # the board's first entry draws the counts
        for spec_, table, heads in runs:
            score(spec_, table, heads)
        values = resampled_auroc(labels, probabilities, ["other", head.positive], np.ones((1, n)),
                                 positive=head.positive)[0]
        counts = bootstrap_counts(n, n_resamples=RESAMPLES, seed=1, strata=labels)
        resampled_auroc(labels, probabilities, ["other", head.positive], counts, positive=head.positive)
        rank_aggregates(pd.Series(values))

    return _cpu(board, repeats), _peak_mib(board) if score is aggregate else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="250 and 1,000 cases, 5 and 20 entries")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    cases = [250, 1000] if args.quick else [250, 1000, 4000]
    entries = [5, 20] if args.quick else [5, 20, 80, 320]
    scoring_table(cases, args.repeats, peer_up_to=1000)
    ranking_table(cases, entries, args.repeats, peer_up_to=80)
    seconds, mib = auroc_board(1000, 20, repeats=args.repeats)
    peer, _ = auroc_board(1000, 20, score=explicit_aggregate)
    print(f"\n1,000 classification cases x 20 entries scored and ranked by AUROC: {seconds:.2f} s CPU "
          f"(target <= 8 s), peak traced {mib:.0f} MiB; with the explicit resample loop {peer:.2f} s, "
          f"{peer / seconds:.1f}x")
    matrix = _ranking_matrix(1000, 320, np.random.default_rng(3))
    full = rank_entries(matrix)
    seconds = _cpu(lambda: bootstrap_ranks(matrix, full, resamples=RESAMPLES, seed=1), args.repeats)
    mib = _peak_mib(lambda: bootstrap_ranks(matrix, full, resamples=RESAMPLES, seed=1))
    print(f"320 entries x 1,000 cases ranked with rank intervals and tau: {seconds:.2f} s CPU "
          f"(target <= 1 s), peak traced {mib:.0f} MiB (target <= 300 MB)")


if __name__ == "__main__":
    main()
