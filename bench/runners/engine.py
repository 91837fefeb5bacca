"""The one place that connects to the Docker engine, with a message that says what to do."""

import logging

from bench.errors import RunnerError

log = logging.getLogger(__name__)


def docker_client(*, timeout_s: int = 120):
    """A ``docker.DockerClient`` from the environment (``DOCKER_HOST`` or the local socket).

    Raises
    ------
    RunnerError
        When the SDK is missing or no engine answers.
    """
    try:
        import docker
    except ImportError as error:
        raise RunnerError("the `docker` Python package is not installed; `pip install docker`.") from error
    try:
        client = docker.from_env(timeout=timeout_s)
        client.ping()
    except Exception as error:  # the SDK raises several unrelated types for "no engine"
        raise RunnerError(
            f"no Docker engine reachable ({type(error).__name__}: {error}). Start one "
            "(`bash scripts/start-dockerd.sh`) or use `--runner process`."
        ) from error
    return client
