"""Start-up: asking any command for help imports none of the heavy libraries its work needs.

Timing belongs in benchmarks/bench_startup.py; this checks the cause of a slow start-up, which
is deterministic: which modules a fresh interpreter has loaded after ``bench <command> --help``.
"""

import json
import subprocess
import sys

import pytest

from benchmarks.bench_startup import HEAVY

COMMANDS = [[], ["score"], ["export"], ["cite"], ["prepare"], ["run"], ["evaluate"], ["rescore"], ["demo"],
            ["data", "synth"], ["data", "index"], ["splits", "pin"], ["splits", "verify"],
            ["leaderboard", "build"],
            ["images", "base"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "bench")
def test_help_imports_no_heavy_library(command):
    code = (
        "import sys, json\n"
        f"sys.argv = ['bench', *{command!r}, '--help']\n"
        "from bench.cli import main\n"
        "try:\n    main()\nexcept SystemExit as end:\n    assert end.code in (0, None), end.code\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
