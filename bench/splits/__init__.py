"""Stage 2, splits: a manifest -> a pinned, citable split file, and checking a download against it.

Modules: :mod:`~bench.splits.assign` (patients to train / validation / test by the documented
``sha256-greedy/v1`` procedure), :mod:`~bench.splits.fingerprints` (content fingerprints of a
case's pixels and annotations), :mod:`~bench.splits.pin` (assign + fingerprint + write),
:mod:`~bench.splits.pinned` (the split file's records, reading it back with every check) and
:mod:`~bench.splits.verify` (a download checked case by case against a pinned split).

Contract with the next stage (prepare): a :class:`~bench.splits.pinned.PinnedSplit` whose every
case carries its patient, study and series UIDs, strata and fingerprint; prepare refuses any
image or annotation that no longer matches it. Reads the manifest of :mod:`bench.data`; never
imports a later stage.
"""
