"""Remove what killed runs, builds and prepares left behind: containers, mounts, folders.

Two sources, both written by the harness itself, so nothing it did not make is touched:

- **Leases** (:mod:`bench.leases`) whose owner process is gone: the container each names is
  removed (and its cgroup swept), then its mounts are unmounted and its folders deleted
  (staging folders of runs, temporary folders of site builds and prepares). Every ``bench``
  invocation does this first (:func:`reap_stale`), so a SIGKILLed run is cleaned up by the
  next command; it costs one directory listing when nothing is stale.
- **Labels** on containers (:func:`reap_containers`): a submission container past its
  deadline label by more than :data:`GRACE_S` is removed, whoever started it (its harness
  would have killed it at the deadline; only a dead or hung harness leaves it). Each
  Docker run does this before starting its own container, and so does ``bench gc``.
"""

import logging
import time
from collections.abc import Callable

from bench.errors import BenchError
from bench.leases import Lease, clean, stale_leases
from bench.runners.docker import DEADLINE_LABEL, ROLE_LABEL, RUN_LABEL, sweep_container

log = logging.getLogger(__name__)

GRACE_S = 120


def reap_containers(client, *, now: float | None = None) -> list[str]:
    """Remove every labelled submission container more than GRACE_S past its deadline."""
    import docker.errors

    now = time.time() if now is None else now
    done = []
    # ignore_removed: another run's container may be removed between the listing and its
    # inspection (concurrent evaluates); that must not fail this run
    listed = client.containers.list(all=True, filters={"label": f"{ROLE_LABEL}=submission"},
                                    ignore_removed=True)
    for container in listed:
        try:
            deadline = float(container.labels.get(DEADLINE_LABEL, "nan"))
        except ValueError:
            continue
        if not now > deadline + GRACE_S:  # also False for a container without a deadline label
            continue
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as error:
            log.warning("could not remove the expired container %s: %s", container.short_id, error)
            continue
        swept = sweep_container(client, container)
        done.append(
            f"removed container {container.short_id} of run {container.labels.get(RUN_LABEL, '?')} "
            f"({now - deadline:.0f} s past its deadline; {swept.detail})"
        )
    return done


def reap_leases(leases: list[Lease], client_factory: Callable[[], object]) -> list[str]:
    """Clean up stale ``leases``: their container first (it holds the mount), then mounts and folders.

    A lease whose container cannot be removed (no engine reachable) is kept for the next try.
    """
    import docker.errors

    done, client = [], None
    for lease in leases:
        if lease.container:
            try:
                client = client or client_factory()
                container = client.containers.get(lease.container)
                container.remove(force=True, v=True)
                done.append(f"removed container {container.short_id} of a killed run "
                            f"({sweep_container(client, container).detail})")
            except docker.errors.NotFound:
                pass
            except (BenchError, docker.errors.APIError) as error:
                log.warning("lease %s: could not remove container %s (%s); kept for the next try",
                            lease.id, lease.container[:12], error)
                continue
        done += clean(lease)
    return done


def reap_stale(client_factory: Callable[[], object] | None = None) -> list[str]:
    """What every invocation runs first: clean up the leases of processes that are gone."""
    leases = stale_leases()
    if not leases:
        return []
    if client_factory is None:
        from bench.runners.engine import docker_client

        client_factory = docker_client
    return reap_leases(leases, client_factory)


def collect_garbage(client_factory: Callable[[], object] | None = None, *, engine: bool = True) -> list[str]:
    """``bench gc``: stale leases, then (with ``engine``) expired labelled containers."""
    if client_factory is None:
        from bench.runners.engine import docker_client

        client_factory = docker_client
    done = reap_stale(client_factory)
    if engine:
        done += reap_containers(client_factory())
    return done
