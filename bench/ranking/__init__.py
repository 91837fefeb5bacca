"""Stage 6, ranking: stored results -> ranked boards with rank intervals and tied groups.

Modules: :mod:`~bench.ranking.schemes` (aggregate-then-rank, rank-then-aggregate,
test-then-rank; bootstrap rank distributions, Kendall's tau, tied groups),
:mod:`~bench.ranking.board` (the one function that turns stored runs into ranked boards, used
by the leaderboard and by ``bench rescore``) and :mod:`~bench.ranking.statistics` (statistics
recomputed from per-case values, e.g. resampled AUROC).

Contract with the next stage (leaderboard): :class:`~bench.ranking.board.Board` records, built
only from the results store, so a board can be rebuilt at any time.
"""
