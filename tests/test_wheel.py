"""A built wheel, installed (not editable) in a fresh venv, works from any directory.

The wheel is built offline from a copy of the source (``pip wheel --no-build-isolation``, so the
test env's setuptools, a dev dependency, builds it and the source tree gets no ``build/``). The
fresh venv gets the third-party dependencies of the test env (hard links of its site-packages,
bench itself left out), so ``pip install --no-index`` resolves the wheel's requirements offline;
bench is then imported only from the wheel. From an empty directory it shows a built-in split,
runs the whole demo with the process runner, and pins a split into the user's tasks folder
without writing anything into the installed package.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from bench.pipeline.demo import ENTRIES

REPO = Path(__file__).resolve().parents[1]
SEG = "ricord-1a-lesion-seg"
NOT_DEPENDENCIES = re.compile(r"^(bench|ricord_bench.*|__editable__.*ricord_bench.*)$")

pytestmark = pytest.mark.slow


def _build_wheel(work: Path) -> Path:
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "bench", source / "bench", ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "--no-index", "--wheel-dir", str(work / "dist"), str(source)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (work / "dist").glob("ricord_bench-*.whl")
    return wheel


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem
        shutil.copy2(source, target)


def _fresh_venv(venv: Path, wheel: Path) -> Path:
    in_a_venv = sys.prefix != sys.base_prefix
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)]
                   + ([] if in_a_venv else ["--system-site-packages"]), check=True, timeout=120)
    python = venv / "bin" / "python"
    if in_a_venv:
        ours = Path(sysconfig.get_paths()["purelib"])
        where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        theirs = Path(subprocess.run([str(python), "-c", where], capture_output=True, text=True,
                                     check=True).stdout.strip())
        shutil.copytree(ours, theirs, symlinks=True, copy_function=_link_or_copy, dirs_exist_ok=True,
                        ignore=lambda folder, names: [n for n in names if Path(folder) == ours
                                                      and NOT_DEPENDENCIES.match(n)])
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index",
                                str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts)


def test_the_wheel_runs_the_demo_from_any_directory(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheel)], capture_output=True,
                           text=True, check=True).stdout
    assert f"bench/builtin/tasks/{SEG}/splits/synthetic.json" in names
    assert "bench/builtin/submissions/threshold-seg/submission.yaml" in names
    assert "bench/leaderboard/templates/index.html" in names
    assert "benchmarks/" not in names and "tests/" not in names
    python = _fresh_venv(tmp_path / "venv", wheel)
    try:
        elsewhere, user_tasks = tmp_path / "elsewhere", tmp_path / "user-tasks"
        elsewhere.mkdir()
        env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["BENCH_TASKS_DIR"] = str(user_tasks)

        def run(*argv: str) -> subprocess.CompletedProcess:
            return subprocess.run(list(argv), cwd=elsewhere, env=env, capture_output=True, text=True,
                                  timeout=1800)

        def bench(*argv: str) -> subprocess.CompletedProcess:
            return run(str(python.parent / "bench"), *argv)

        package = Path(run(str(python), "-c", "import bench; print(bench.__file__)").stdout.strip()).parent
        assert package.is_relative_to(tmp_path / "venv"), package
        before = _listing(package)

        shown = bench("splits", "show", "--task", SEG, "--name", "synthetic")
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert "no patient leakage" in shown.stdout

        started = time.monotonic()
        demo = bench("demo", "--runner", "process", "--out", "demo")
        print(f"wheel demo with the process runner: {time.monotonic() - started:.1f} s wall")
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "runner: process" in demo.stdout
        assert (elsewhere / "demo" / "leaderboard" / "index.html").is_file()
        stored = sorted((elsewhere / "demo" / "results").rglob("scores.json"))
        ran = {(path.relative_to(elsewhere / "demo" / "results").parts[0], path.parent.parent.name)
               for path in stored}  # <task>/<team>/<entry>/<run>/scores.json
        assert ran >= {(task, entry) for task, entries in ENTRIES.items() for entry in entries}
        for path in stored:
            counts = json.loads(path.read_text())["counts"]
            assert counts["ok"] == counts["cases"] > 0, (path, counts)

        pinned = bench("splits", "pin", "--task", SEG, "--name", "wheel-test", "--root", "demo/data",
                       "--manifest", "demo/data/manifest.csv")
        assert pinned.returncode == 0, pinned.stdout + pinned.stderr
        assert (user_tasks / SEG / "splits" / "wheel-test.json").is_file()
        assert bench("splits", "show", "--task", SEG, "--name", "wheel-test").returncode == 0

        assert _listing(package) == before
        assert sorted(p.name for p in elsewhere.iterdir()) == ["demo"]
    finally:
        shutil.rmtree(tmp_path / "venv")
