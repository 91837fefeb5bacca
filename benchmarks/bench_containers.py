"""Start-up overhead of one run: a no-op container under the harness's policy vs the docker CLI.

Each runner is timed on a command that does nothing (``true``), so the figures are pure
overhead: creating, starting, waiting for and removing the locked-down container through the
SDK (what ``bench run`` does per run), the peer ``docker run --rm --network none`` of the
docker CLI, a bubblewrap sandbox as the process runner builds it, and a bare ``subprocess``.
Then one whole ``run_submission`` of the null submission on four small cases (snapshot,
container, collection, run.json). ``--build`` also times a base image rebuild (minutes).

Usage: python -m benchmarks.bench_containers [--runs N] [--build]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.runners.base_image import BASE_IMAGE, build_base_image
from bench.runners.docker import container_options
from bench.runners.engine import docker_client
from bench.runners.process import bwrap_arguments, bwrap_path
from bench.tasks import Limits

LIMITS = Limits(timeout_s=60, memory="512m", cpus=1, pids=64, tmpfs_mb=64, output_mb=64)


def _time(function, runs: int) -> list[float]:
    function()  # warm-up: page cache, image layers
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def sdk_locked_down(client, image_id: str, scratch: Path) -> None:
    options = container_options(image_id, scratch / "in", scratch / "out", LIMITS)
    container = client.containers.create(**{**options, "command": ["true"], "entrypoint": []})
    try:
        container.start()
        container.wait(timeout=60)
        container.reload()
        container.logs(stdout=True, stderr=False)
        container.logs(stdout=False, stderr=True)
    finally:
        container.remove(force=True)


def docker_cli() -> None:
    subprocess.run(["docker", "run", "--rm", "--network", "none", BASE_IMAGE, "true"], check=True)


def bwrap_noop(scratch: Path) -> None:
    arguments = bwrap_arguments(bwrap_path(), scratch, scratch / "in", scratch / "out", LIMITS, ("true",))
    subprocess.run(arguments, check=True)


def whole_run(scratch: Path, index: int) -> float:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.pipeline.demo import BUILTIN_SUBMISSIONS
    from bench.runners import run_submission
    from bench.tasks import load_task
    from tests.helpers.runner_inputs import write_prepared

    root = scratch / f"prepared-{index}"
    inputs = write_prepared(root, "ricord-ct-covid-cls", n_cases=4)
    submission = BUILTIN_SUBMISSIONS / "constant-prior"
    started = time.perf_counter()
    run_submission(
        submission, load_task("ricord-ct-covid-cls"), inputs, root / "run", limits={"timeout_s": 60}
    )
    return time.perf_counter() - started


def _line(name: str, times: list[float]) -> str:
    return (
        f"{name:<44} median {statistics.median(times) * 1000:8.1f} ms   "
        f"min {min(times) * 1000:8.1f} ms   max {max(times) * 1000:8.1f} ms   n={len(times)}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--build", action="store_true", help="also time a base image rebuild (minutes)")
    args = parser.parse_args(argv)
    client = docker_client()
    report = build_base_image(client=client, rebuild=args.build)
    if report.built:
        print(
            f"base image {report.tag}: built in {report.duration_s:.1f} s ({report.size_bytes / 1e6:.0f} MB)"
        )
    image_id = client.images.get(BASE_IMAGE).id
    with tempfile.TemporaryDirectory(prefix="bench-containers-") as folder:
        scratch = Path(folder)
        (scratch / "in").mkdir()
        (scratch / "out").mkdir()
        ours = _time(lambda: sdk_locked_down(client, image_id, scratch), args.runs)
        peer = _time(docker_cli, args.runs)
        print(_line("SDK, bench policy (create/start/wait/rm)", ours))
        print(_line("peer: docker run --rm --network none", peer))
        print(f"ratio bench/docker-cli: {statistics.median(ours) / statistics.median(peer):.2f}")
        if bwrap_path():
            print(_line("bubblewrap sandbox (process runner)", _time(lambda: bwrap_noop(scratch), args.runs)))
        print(_line("bare subprocess", _time(lambda: subprocess.run(["true"], check=True), args.runs)))
        runs = [whole_run(scratch, index) for index in range(min(args.runs, 5))]
        print(_line("run_submission constant-prior, 4 CT cases", runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
