"""docs/api.md's pipeline script runs as written, from an empty directory, and scores every case."""

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_the_api_page_script_runs(tmp_path, monkeypatch):
    page = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], "docs/api.md", "exec"), namespace)  # noqa: S102 (the page's own example)
    counts = namespace["stored"].scores["counts"]
    assert counts["cases"] >= 1 and counts["ok"] == counts["cases"]
    assert namespace["site"].index.is_file()
    pinned = tmp_path / "api-example" / "tasks" / "ricord-1a-lesion-seg" / "splits" / "api-example.json"
    assert pinned.is_file()
    assert os.listdir(tmp_path) == ["api-example"]
