"""Stage 5, scoring: a run's outputs + the reference -> per-case table, aggregates with CIs, receipt.

Modules: :mod:`~bench.scoring.score` (the entry point: read the run and the reference, score
every case under the task's policies, aggregate, store with a receipt),
:mod:`~bench.scoring.segmentation` (one case's masks -> metric row),
:mod:`~bench.scoring.classification` (``predictions.csv`` -> per-head probabilities) and
:mod:`~bench.scoring.aggregate` (per-case rows -> aggregates, subgroups and fairness tables with
the task's bootstrap).

Contract: reads a run only through :mod:`bench.runners.record` and a reference only through
:mod:`bench.prepare.reference`; writes results only through :mod:`bench.store`. The metric
formulas themselves live in :mod:`bench.metrics`.
"""
