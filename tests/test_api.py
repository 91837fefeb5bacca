"""The public API of ``import bench``: every name resolves lazily, is documented, and costs nothing
until used."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import bench

REPO = Path(__file__).resolve().parents[1]


def test_import_bench_loads_no_stage_and_no_heavy_dependency():
    heavy = ["numpy", "pandas", "scipy", "docker", "typer", "pydantic", "yaml", "matplotlib",
             "importlib.metadata"]
    script = ("import json, sys, bench; "
              "print(json.dumps(sorted(m for m in sys.modules if m.startswith('bench.') "
              f"or m in {heavy!r} or m.split('.')[0] in {heavy!r})))")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


@pytest.mark.parametrize("name", bench.__all__)
def test_every_public_name_is_the_object_its_module_defines(name):
    module = importlib.import_module(bench._EXPORTS[name])
    assert getattr(bench, name) is getattr(module, name)
    assert name in dir(bench)


def test_the_public_names_are_sorted_and_documented():
    assert bench.__all__ == sorted(set(bench.__all__))
    page = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    assert [name for name in bench.__all__ if f"`{name}" not in page] == []


def test_the_version_is_the_installed_distribution_s():
    from importlib.metadata import PackageNotFoundError, version

    try:
        expected = version("ricord-bench")
    except PackageNotFoundError:
        expected = "0.1.0+src"
    assert bench.__version__ == expected
    assert "__version__" in dir(bench)


def test_an_unknown_name_is_an_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="module 'bench' has no attribute 'score_everything'"):
        bench.score_everything  # noqa: B018
