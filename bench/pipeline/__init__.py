"""The whole pipeline as one call: evaluate (prepare, run, score, store), rescore, the demo.

Modules: :mod:`~bench.pipeline.evaluate` (one submission end to end, cached prepare),
:mod:`~bench.pipeline.rescore` (every stored run recomputed by the current harness, changes
reported) and :mod:`~bench.pipeline.demo` (synthesize, index, verify, evaluate every reference
submission, build the leaderboard). The only layer above it is the CLI.
"""
