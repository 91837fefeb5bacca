"""Compare the outputs of two `bench demo` runs: leaderboard.json and every stored per_case.csv.

    python scripts/compare_demo.py OLD_DEMO_DIR NEW_DEMO_DIR

Two runs never share bytes exactly, for three stated reasons, which the comparison removes and
nothing else: version fields (harness version, git revision), run ids (UTC time + inputs hash)
and the prepared case ids (keyed with a fresh secret salt per download, so per-case rows are
matched by their other columns). Prints what differs; exit 1 if anything does. It checks that a
refactoring kept the demo's results: run the demo before and after, then compare the two.
"""

import difflib
import io
import json
import sys
from pathlib import Path

import pandas as pd

DROPPED = {"harness_version", "version", "git_revision", "harness", "run_id"}


def _strip(value):
    if isinstance(value, dict):
        return {key: _strip(item) for key, item in value.items() if key not in DROPPED}
    if isinstance(value, list):
        return [_strip(item) for item in value]
    return value


def _board(demo: Path) -> list[str]:
    board = json.loads((demo / "leaderboard" / "leaderboard.json").read_text(encoding="utf-8"))
    return json.dumps(_strip(board), indent=1, sort_keys=True).splitlines()


def _per_case(demo: Path) -> dict[str, str]:
    tables = {}
    for path in sorted((demo / "results").rglob("per_case.csv")):
        entry = "/".join(path.relative_to(demo / "results").parts[:-2])  # without the run id
        frame = pd.read_csv(io.StringIO(path.read_text(encoding="utf-8")), dtype=str, keep_default_na=False)
        frame = frame.drop(columns="case_id")
        tables[entry] = frame.sort_values(list(frame.columns)).to_csv(index=False)
    return tables


def main(old: Path, new: Path) -> int:
    differs = False
    board_old, board_new = _board(old), _board(new)
    if board_old != board_new:
        differs = True
        print("leaderboard.json differs:")
        print("\n".join(difflib.unified_diff(board_old, board_new, "old", "new", lineterm="")))
    cases_old, cases_new = _per_case(old), _per_case(new)
    for entry in sorted(set(cases_old) | set(cases_new)):
        if cases_old.get(entry) != cases_new.get(entry):
            differs = True
            print(f"per_case.csv of {entry} differs (or is missing on one side)")
    print(f"leaderboard.json and {len(cases_new)} per_case.csv: " + ("DIFFERENT" if differs else "the same"))
    return 1 if differs else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
