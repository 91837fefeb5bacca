"""Age bands cut by prepare: hand literals, and the label of a missing age."""

import pytest

from bench.errors import PrepareError
from bench.metrics.subgroups import UNKNOWN
from bench.prepare.demographics import UNKNOWN as UNKNOWN_AGE
from bench.prepare.demographics import age_band


def test_age_band_labels():
    assert age_band(39.9) == "<40"
    assert age_band(40) == "40-59"
    assert age_band(79) == "60-79"
    assert age_band(80) == "80+"
    assert age_band(None) == "unknown" and age_band("") == "unknown" and age_band(float("nan")) == "unknown"
    assert list(age_band([17, "65", None], edges=(18, 65))) == ["<18", "65+", "unknown"]
    with pytest.raises(PrepareError, match="edges"):
        age_band(30, edges=(60, 40))


def test_a_missing_age_falls_in_the_subgroup_tables_missing_group():
    assert UNKNOWN_AGE == UNKNOWN
