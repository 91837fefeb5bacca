"""The task's bootstrap design draws its count matrix once per process for equal designs."""

import numpy as np
import pandas as pd
import pytest

from bench.metrics.uncertainty import bootstrap_counts
from bench.scoring.bootstrap import design
from bench.tasks import load_task


def _cases(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"case_id": [f"c{i:03d}" for i in range(n)],
                         "patient_id": [f"p{i // 2:03d}" for i in range(n)]}), rng.integers(0, 2, n)


def test_counts_are_the_seeded_draw_read_only_and_drawn_once_per_design():
    spec = load_task("ricord-ct-covid-cls")
    cases, strata = _cases()
    counts = design(spec, cases, strata=strata).counts()
    expected = bootstrap_counts(len(cases), n_resamples=spec.bootstrap.resamples, seed=spec.bootstrap.seed,
                                strata=strata, clusters=cases["patient_id"].to_numpy())
    assert np.array_equal(counts, expected) and counts.dtype == np.float64 and counts.flags.f_contiguous
    assert design(spec, cases.copy(), strata=strata.copy()).counts() is counts  # an equal design: no redraw
    with pytest.raises(ValueError):
        counts[0, 0] = 5.0


def test_a_different_design_draws_again():
    spec = load_task("ricord-ct-covid-cls")
    cases, strata = _cases()
    first = design(spec, cases, strata=strata).counts()
    other = design(spec, cases, strata=1 - strata).counts()
    assert other is not first and not np.array_equal(other, first)
    # the draw orders strata by value, so the numbers 9, 10 and the texts "9", "10" are other designs
    as_text = design(spec, cases, strata=np.where(strata == 1, "10", "9")).counts()
    as_numbers = design(spec, cases, strata=np.where(strata == 1, 10, 9)).counts()
    assert not np.array_equal(as_text, as_numbers)
