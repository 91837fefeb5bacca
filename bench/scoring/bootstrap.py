"""The bootstrap design of a task: how a resample draws the cases, for the scorer and the board.

A task's ``bootstrap`` block fixes the seed, the number of resamples and the confidence, and
says whether whole clusters are drawn (``cluster``: a per-case column such as ``patient_id``, so
two studies of one patient travel together) and whether each resample keeps every stratum's
size (``stratify``). The strata follow the task's kind: a classification head's reference class
(:func:`class_strata`), a segmentation case's empty or non-empty reference
(:func:`empty_reference_strata`).

The scorer's confidence intervals (:mod:`bench.scoring.aggregate`) and the board's rank
intervals (:mod:`bench.ranking.board`) both take their resamples from :func:`design` over a
table of cases sorted by case id, so the two resample alike: one seeded count matrix from
:func:`bench.metrics.uncertainty.bootstrap_counts`.
"""

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.metrics.uncertainty import bootstrap_counts
from bench.tasks import Head, TaskSpec

_LAST_DRAWN: dict[tuple, np.ndarray] = {}
"""The last count matrix :meth:`BootstrapDesign.counts` drew, by its design's key."""


@dataclass(frozen=True, eq=False)
class BootstrapDesign:
    """Resampling of ``n_cases`` cases: seed, resamples, confidence, clusters and strata (or None)."""

    n_cases: int
    resamples: int
    seed: int
    confidence: float
    clusters: np.ndarray | None
    strata: np.ndarray | None

    def counts(self) -> np.ndarray:
        """The (B, n_cases) matrix: ``counts[b, i]`` = how often case i is in resample b.

        As float64: every statistic multiplies it with float matrices, and numpy's matrix
        product runs in BLAS only when both sides are floating point. Fortran-ordered: a case's
        counts over all resamples are contiguous, the layout the ranking statistics walk case
        after case (:func:`bench.metrics.classification.running_sums`).

        Read-only, and kept for the next call with an equal design: the entries of a board, and
        every run that ``bench evaluate`` or ``bench rescore`` scores on one case set, draw the
        same matrix (2,000 x 1,000 cases is 16 MB), so it is drawn once per process, not once
        per run.
        """
        key = self._key()
        matrix = _LAST_DRAWN.get(key)
        if matrix is None:
            drawn = bootstrap_counts(self.n_cases, n_resamples=self.resamples, seed=self.seed,
                                     strata=self.strata, clusters=self.clusters)
            matrix = drawn.astype(np.float64, order="F")
            matrix.flags.writeable = False
            _LAST_DRAWN.clear()
            _LAST_DRAWN[key] = matrix
        return matrix

    def _key(self) -> tuple:
        """Everything the drawn matrix depends on; clusters and strata by the repr of each value
        (the draw orders them by value, so 10 and "10" are different designs)."""
        def digest(values: np.ndarray | None) -> str | None:
            if values is None:
                return None
            return hashlib.sha256("\x1f".join(map(repr, np.asarray(values).tolist())).encode()).hexdigest()

        return self.n_cases, self.resamples, self.seed, digest(self.clusters), digest(self.strata)

    def options(self) -> dict[str, Any]:
        """Keywords of :func:`bench.ranking.schemes.bootstrap_ranks` (and ``bootstrap_ranks_from``)."""
        return {"resamples": self.resamples, "seed": self.seed, "confidence": self.confidence,
                "clusters": self.clusters, "strata": self.strata}


def design(spec: TaskSpec, cases: pd.DataFrame, *, strata: np.ndarray | None) -> BootstrapDesign:
    """The task's design over the rows of ``cases`` (one per case, sorted by case id).

    Clusters are the ``bootstrap.cluster`` column as text when the table has it (else every case
    is its own cluster); ``strata`` (one per row, from :func:`class_strata` or
    :func:`empty_reference_strata`) count only when ``bootstrap.stratify`` is set.
    """
    boot = spec.bootstrap
    column = boot.cluster
    clusters = cases[column].astype(str).to_numpy() if column and column in cases.columns else None
    return BootstrapDesign(len(cases), boot.resamples, boot.seed, boot.confidence, clusters,
                           strata if boot.stratify else None)


def class_strata(head: Head, codes: np.ndarray) -> np.ndarray:
    """The reference class as metrics take it: class index, for a binary head 1 = positive."""
    codes = np.asarray(codes, dtype=int)
    if len(head.classes) == 2:
        return (codes == head.classes.index(head.positive)).astype(int)
    return codes


def empty_reference_strata(cases: pd.DataFrame) -> np.ndarray:
    """Whether each segmentation case's reference mask is empty (``volume_ref_ml == 0``)."""
    return pd.to_numeric(cases["volume_ref_ml"], errors="coerce").eq(0).to_numpy()
