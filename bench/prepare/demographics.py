"""Age bands: the one demographic column prepare derives rather than copies.

The reference carries each case's site, sex, age and age band, so that scoring can report
scores per subgroup (:mod:`bench.metrics.subgroups`) without ever reading the manifest. Bands
are cut here, once, from the task's ``subgroups.age_band_edges``.
"""

import math
from typing import Any

import numpy as np

from bench.errors import PrepareError

UNKNOWN = "unknown"
"""The band of a missing age: the label subgroup tables give every missing value
(:data:`bench.metrics.subgroups.UNKNOWN`), so such cases fall in one group."""
DEFAULT_AGE_EDGES = (40, 60, 80)


def age_band(age, edges=DEFAULT_AGE_EDGES):
    """Age band label(s): ``"<40"``, ``"40-59"``, ``"60-79"``, ``"80+"`` for edges (40, 60, 80).

    Band i holds ages in ``[edges[i-1], edges[i])`` (integer edges; the label shows the last
    whole year). Missing ages (None, NaN, empty string) give ``"unknown"``. A scalar gives a
    str, an array-like gives a numpy array of str.

    Raises
    ------
    PrepareError
        ``edges`` are not increasing non-negative integers (fix ``subgroups.age_band_edges``).
    """
    bounds = [int(e) for e in edges]
    if not bounds or any(b <= a for a, b in zip(bounds, bounds[1:], strict=False)) or bounds[0] < 0:
        raise PrepareError(f"age band edges must be increasing non-negative integers, got {edges!r}; "
                           "fix subgroups.age_band_edges in the task.yaml")
    labels = [f"<{bounds[0]}"] + [f"{a}-{b - 1}" for a, b in zip(bounds, bounds[1:], strict=False)] \
        + [f"{bounds[-1]}+"]

    def one(value: Any) -> str:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return UNKNOWN
        if not math.isfinite(number) or number < 0:
            return UNKNOWN
        return labels[int(np.searchsorted(bounds, number, side="right"))]

    if np.ndim(age) == 0:
        return one(age)
    return np.array([one(value) for value in np.asarray(age, dtype=object)], dtype=object)
