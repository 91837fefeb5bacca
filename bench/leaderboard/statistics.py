"""Dataset-level ranking statistics recomputed on resampled cases, vectorized over resamples.

A classification task's primary metric (AUROC) is computed once over a set of cases, so its
bootstrap rank distribution needs the metric on every resample of every entry. The resamples
come as the padded index matrix of :func:`bench.ranking.resample_indices` (index ``n`` is
padding), shared by all entries so that the comparison is paired.
"""

import numpy as np
from scipy import stats


def resampled_auroc(labels: np.ndarray, probabilities: np.ndarray, classes: list[str],
                    indices: np.ndarray, *, positive: str | None = None) -> np.ndarray:
    """AUROC of every entry on every resample.

    AUROC = (sum of the midranks of the positives - m (m + 1) / 2) / (m n) over the valid
    cases of the resample (m positives, n negatives; ties count one half, as in
    ``sklearn.metrics.roc_auc_score``). A multiclass head takes the unweighted mean of the
    one-vs-rest AUROCs of its classes (sklearn's ``multi_class="ovr", average="macro"``);
    a binary head (``positive`` given) the AUROC of the positive class. Cases whose
    probability is NaN are left out; a resample lacking positives or negatives gives NaN.

    Parameters
    ----------
    labels : ndarray of str, shape (n,)
        Reference class per case.
    probabilities : ndarray, shape (n, E, K)
        Probability of each of the K ``classes`` per case and entry.
    classes : list of str
    indices : ndarray of int, shape (B, L)
        Resampled case indices, ``n`` marking padding.
    positive : str, optional
        The positive class of a binary head.

    Returns
    -------
    ndarray, shape (B, E)
    """
    n_cases, n_entries, _ = probabilities.shape
    padded = np.concatenate([probabilities, np.full((1, n_entries, len(classes)), np.nan)])
    label_rows = np.append(np.asarray(labels, dtype=object), None)[indices]
    in_range = indices < n_cases
    scored = [classes.index(positive)] if positive is not None else range(len(classes))
    per_class = []
    for k in scored:
        is_positive = (label_rows == classes[k]) & in_range
        per_entry = []
        for e in range(n_entries):
            score = padded[indices, e, k]
            valid = in_range & ~np.isnan(score)
            ranks = stats.rankdata(np.where(valid, score, np.nan), axis=1, method="average",
                                   nan_policy="omit")
            positives = (is_positive & valid).sum(axis=1)
            negatives = (~is_positive & valid).sum(axis=1)
            rank_sum = np.nansum(np.where(is_positive & valid, ranks, 0.0), axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                auc = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
            per_entry.append(np.where((positives > 0) & (negatives > 0), auc, np.nan))
        per_class.append(np.stack(per_entry, axis=1))
    return np.mean(np.stack(per_class), axis=0)
