"""Dataset-level ranking statistics recomputed on resampled cases, for every entry of a board.

A classification task's primary metric (AUROC) is computed once over a set of cases, so its
bootstrap rank distribution needs the metric on every resample of every entry. The resamples
come as the (B, n) count matrix of the task's bootstrap design (:mod:`bench.scoring.bootstrap`),
shared by all entries so that the comparison is paired, and each entry's AUROC on them is the
one resampled AUROC, :func:`bench.metrics.uncertainty.bootstrap_auroc`.
"""

import numpy as np

from bench.metrics.uncertainty import bootstrap_auroc


def resampled_auroc(labels: np.ndarray, probabilities: np.ndarray, classes: list[str],
                    counts: np.ndarray, *, positive: str | None = None) -> np.ndarray:
    """AUROC of every entry on every resample.

    A multiclass head takes the unweighted mean of the one-vs-rest AUROCs of its classes
    (sklearn's ``multi_class="ovr", average="macro"``); a binary head (``positive`` given) the
    AUROC of the positive class; ties count one half. An entry's cases whose probabilities are
    NaN are left out of its AUROC; a resample lacking positives or negatives gives NaN.

    Parameters
    ----------
    labels : ndarray of str, shape (n,)
        Reference class per case, each one of ``classes``.
    probabilities : ndarray, shape (n, E, K)
        Probability of each of the K ``classes`` per case and entry.
    classes : list of str
    counts : ndarray of int, shape (B, n)
        How often each case is in each resample (``np.ones((1, n))``: the full set).
    positive : str, optional
        The positive class of a binary head.

    Returns
    -------
    ndarray, shape (B, E)

    Raises
    ------
    bench.errors.MetricInputError
        A label that is not one of ``classes``, or shapes that do not match.
    """
    index = {name: k for k, name in enumerate(classes)}
    codes = np.array([index.get(label, -1) for label in np.asarray(labels, dtype=object)], dtype=np.int64)
    counts = np.asarray(counts)
    if positive is not None:
        codes = np.where(codes >= 0, (codes == classes.index(positive)).astype(np.int64), codes)
    result = np.empty((counts.shape[0], probabilities.shape[1]))
    for e in range(probabilities.shape[1]):
        scores = probabilities[:, e, :]
        keep = ~np.isnan(scores).any(axis=1)
        scores = scores[keep, classes.index(positive)] if positive is not None else scores[keep]
        result[:, e] = bootstrap_auroc(codes[keep], scores, counts=counts[:, keep])
    return result
