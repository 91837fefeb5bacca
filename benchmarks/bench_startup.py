"""CLI start-up: wall time of ``bench --help`` and ``bench score --help`` beside ``python -c pass``.

Every command imports its heavy libraries (numpy, pandas, nibabel, pydicom, scipy, the Docker
SDK) only when it runs, so asking for help costs the interpreter, typer and rich, and nothing
else. This runs each command ``--runs`` times in a fresh interpreter (alternating, so a load
spike hits all of them alike), prints the median, min and max wall time and the median CPU time
(user + system, which a busy machine inflates much less than the wall) of each, the floor
(``python -c pass``, the interpreter alone) and the ratio to it, and which heavy modules a
``--help`` imported (must be none). Target: a median within 0.4 s on the project's 2-core VM.

Usage: python -m benchmarks.bench_startup [--runs 15] [--bench PATH]
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

# pydantic is not listed: typer itself imports it to coerce parameter values
HEAVY = ("numpy", "pandas", "nibabel", "pydicom", "scipy", "docker", "matplotlib", "jinja2", "SimpleITK",
         "dask", "yaml")
_PROBE = (
    "import sys, json; sys.argv = {argv!r}\n"
    "from bench.cli import main\n"
    "try:\n    main()\nexcept SystemExit:\n    pass\n"
    "print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)\n"
)


def _time(argv: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of the child): CPU time shows the cost when other work shares the cores."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heavy_modules(arguments: list[str]) -> list[str]:
    """The heavy modules loaded by ``bench <arguments>`` (run in a fresh interpreter)."""
    code = _PROBE.format(argv=["bench", *arguments], heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stderr.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--bench",
                        default=shutil.which("bench")
                        or os.path.join(os.path.dirname(sys.executable), "bench"))
    args = parser.parse_args()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "bench --help": [args.bench, "--help"],
        "bench score --help": [args.bench, "score", "--help"],
    }
    for argv in commands.values():  # warm the page cache and the bytecode caches
        _time(argv)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, argv in commands.items():
            times[name].append(_time(argv))
    floor = statistics.median(wall for wall, _ in times["python -c pass"])
    print(f"{'command':<22}{'median s':>10}{'min s':>8}{'max s':>8}{'x floor':>9}{'CPU s':>8}   ({args.runs} "
          f"runs, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    for name, values in times.items():
        walls = [wall for wall, _ in values]
        median = statistics.median(walls)
        cpu = statistics.median(c for _, c in values)
        print(f"{name:<22}{median:>10.3f}{min(walls):>8.3f}{max(walls):>8.3f}"
              f"{median / floor:>9.1f}{cpu:>8.3f}")
    for arguments in (["--help"], ["score", "--help"]):
        loaded = heavy_modules(arguments)
        print(f"heavy modules imported by bench {' '.join(arguments)}: {', '.join(loaded) or 'none'}")


if __name__ == "__main__":
    main()
