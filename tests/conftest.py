"""Shared test configuration: the hypothesis profiles, markers that need a Docker engine or a
browser, and a private tasks folder.

Hypothesis: under CI (``CI`` set to ``true``/``1``, as every CI service does) the ``ci`` profile
runs derandomized (the examples are a fixed function of each test, so a red build is red on
every re-run and on every machine) and without the local example database; elsewhere the
``dev`` profile keeps exploring new random examples and replays the failures it saved.
``HYPOTHESIS_PROFILE=ci`` selects the CI profile locally, to reproduce a CI run.

Tests marked ``docker`` or ``browser`` skip with a reason when the engine or chromium is
absent, unless ``BENCH_REQUIRE_DOCKER=1`` / ``BENCH_REQUIRE_BROWSER=1`` is set (as CI
does), in which case they fail: CI must never pass by skipping them.

Every test gets its own, initially absent, user tasks folder (``BENCH_TASKS_DIR``), so nothing
a test pins lands in the real user data folder or leaks into another test, and the docstring
examples see only the built-in tasks.
"""

import os
import shutil
from functools import cache

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev")
_ON_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if _ON_CI else "dev"))


@cache
def docker_engine_reason() -> str | None:
    """None when a Docker engine answers, else why not."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
        client.close()
    except Exception as error:  # any failure to reach the engine means "no engine"
        return f"no Docker engine reachable ({type(error).__name__}: {error})"
    return None


def browser_reason() -> str | None:
    """None when headless chromium is installed, else why not."""
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return None
    return "chromium is not installed (apt-get install chromium)"


def _require(marker: str, reason: str | None, env: str) -> None:
    if reason is None:
        return
    if os.environ.get(env) == "1":
        pytest.fail(f"{marker} test required by {env}=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _needs_engine_or_browser(request):
    if request.node.get_closest_marker("docker"):
        _require("docker", docker_engine_reason(), "BENCH_REQUIRE_DOCKER")
    if request.node.get_closest_marker("browser"):
        _require("browser", browser_reason(), "BENCH_REQUIRE_BROWSER")


@pytest.fixture(scope="session", autouse=True)
def _session_tasks_dir(tmp_path_factory):
    """For session- and module-scoped fixtures, which are set up before any test's own folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENCH_TASKS_DIR", str(tmp_path_factory.mktemp("user-tasks") / "tasks"))
        yield


@pytest.fixture(autouse=True)
def _private_tasks_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("BENCH_TASKS_DIR", str(tmp_path_factory.mktemp("user-tasks") / "tasks"))


@pytest.fixture(autouse=True, scope="session")
def _private_state_dir(tmp_path_factory):
    """Leases of the test session go to its own state folder, never the user's."""
    os.environ["BENCH_STATE_DIR"] = str(tmp_path_factory.mktemp("bench-state"))
