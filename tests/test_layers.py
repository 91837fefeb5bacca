"""The import contract: no module imports from a later pipeline stage (pyproject's [tool.importlinter])."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_no_stage_imports_a_later_stage():
    command = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(command), "--config", str(REPO / "pyproject.toml")], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout
