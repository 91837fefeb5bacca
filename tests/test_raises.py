"""The metrics and ranking layers raise the project's exceptions, never a bare ValueError/KeyError.

A ``BenchError`` reaches the user as its message (the CLI's one handler); any other exception
would reach them as a traceback. Checked on the source: every ``raise`` in ``bench/metrics`` and
``bench/ranking`` names a class of :mod:`bench.errors`.
"""

import ast
import inspect
from pathlib import Path

import pytest

import bench.errors
from bench.errors import BenchError, MetricInputError, RankingError, UnknownMetricError
from bench.metrics.registry import get_metric
from bench.metrics.surface import surface_distances
from bench.ranking.schemes import rank_entries

ROOT = Path(bench.errors.__file__).parent
PROJECT = {name for name, value in vars(bench.errors).items()
           if inspect.isclass(value) and issubclass(value, BenchError)}


def _raised(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "?")
            found.append((node.lineno, name))
    return found


@pytest.mark.parametrize("package", ["metrics", "ranking"])
def test_every_raise_is_a_project_exception(package):
    foreign = [f"{path.relative_to(ROOT)}:{line} raises {name}"
               for path in sorted((ROOT / package).rglob("*.py"))
               for line, name in _raised(path) if name not in PROJECT]
    assert foreign == []


def test_bad_metric_and_ranking_input_is_a_bench_error():
    import numpy as np
    import pandas as pd

    with pytest.raises(UnknownMetricError, match="unknown metric 'dsc'"):
        get_metric("dsc")
    with pytest.raises(MetricInputError, match="two non-empty masks"):
        surface_distances(np.zeros((2, 2), bool), np.ones((2, 2), bool), spacing_mm=(1, 1))
    with pytest.raises(RankingError, match="method must be one of"):
        rank_entries(pd.DataFrame({"A": [1.0]}), method="best-guess")
