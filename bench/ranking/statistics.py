"""Dataset-level ranking statistics recomputed on resampled cases, vectorized over resamples.

A classification task's primary metric (AUROC) is computed once over a set of cases, so its
bootstrap rank distribution needs the metric on every resample of every entry. The resamples
come as the (B, n) count matrix of :func:`bench.metrics.uncertainty.bootstrap_counts` (the
scorer's engine), shared by all entries so that the comparison is paired.
"""

import numpy as np

from bench.metrics.uncertainty import bootstrap_auroc


def resampled_auroc(labels: np.ndarray, probabilities: np.ndarray, classes: list[str],
                    counts: np.ndarray, *, positive: str | None = None) -> np.ndarray:
    """AUROC of every entry on every resample.

    Each resample's AUROC is :func:`bench.metrics.uncertainty.bootstrap_auroc` under the
    resample's case counts (ties count one half, as in ``sklearn.metrics.roc_auc_score``).
    A multiclass head takes the unweighted mean of the one-vs-rest AUROCs of its classes
    (sklearn's ``multi_class="ovr", average="macro"``); a binary head (``positive`` given) the
    AUROC of the positive class. Cases whose probability is NaN are left out; a resample
    lacking positives or negatives gives NaN.

    Parameters
    ----------
    labels : ndarray of str, shape (n,)
        Reference class per case.
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
    """
    n_entries = probabilities.shape[1]
    counts = np.asarray(counts)
    labels = np.asarray(labels, dtype=object)
    scored = [classes.index(positive)] if positive is not None else range(len(classes))
    result = np.empty((counts.shape[0], n_entries, len(scored)))
    for column, k in enumerate(scored):
        truth = (labels == classes[k]).astype(np.int64)
        for e in range(n_entries):
            score = probabilities[:, e, k]
            keep = ~np.isnan(score)
            result[:, e, column] = bootstrap_auroc(truth[keep], score[keep], counts=counts[:, keep])
    return result.mean(axis=2)
