"""Session fixtures of the runner tests that need the real Docker engine: the client, the base image
and the adversarial submissions of ``tests/adversarial/`` (built once, shared by every test module)."""

import os

import pytest

from bench.runners.base_image import build_base_image
from tests.conftest import docker_engine_reason
from tests.helpers.runner_fixtures import make_adversaries


@pytest.fixture(scope="session")
def client():
    reason = docker_engine_reason()
    if reason is not None:
        if os.environ.get("BENCH_REQUIRE_DOCKER") == "1":
            pytest.fail(f"docker test required by BENCH_REQUIRE_DOCKER=1 but {reason}")
        pytest.skip(reason)
    import docker

    engine = docker.from_env(timeout=300)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def base_image(client):
    """The local base image: built with mmdebstrap if missing (minutes), else reused."""
    return build_base_image(client=client)


@pytest.fixture(scope="session")
def adversaries(base_image, tmp_path_factory):
    return make_adversaries(tmp_path_factory.mktemp("adversaries"))
