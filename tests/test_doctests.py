"""The examples in the library's docstrings run, and print what they say.

Only the modules whose source holds an example (``>>>``) are imported: the suite stays fast, and
nothing outside ``bench`` (the built-in submissions' scripts, ``__main__``) is collected.
"""

import doctest
import importlib
import io
from pathlib import Path

import pytest

import bench

PACKAGE = Path(bench.__file__).resolve().parent


def _modules_with_examples() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "builtin" or relative.name == "__main__.py":
            continue
        if ">>> " in path.read_text(encoding="utf-8"):
            parts = ("bench", *relative.with_suffix("").parts)
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _modules_with_examples()


def test_the_public_api_has_examples():
    assert "bench" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = io.StringIO()
    examples = 0
    for test in doctest.DocTestFinder().find(module, name):
        examples += len(test.examples)
        runner.run(test, out=report.write)
    assert examples > 0
    assert runner.failures == 0, report.getvalue()


def test_the_api_page_examples():
    page = PACKAGE.parent / "docs" / "api.md"
    if not page.is_file():
        pytest.skip("docs/api.md is not in this installation (a wheel ships no docs)")
    result = doctest.testfile(str(page), module_relative=False, report=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0, result
