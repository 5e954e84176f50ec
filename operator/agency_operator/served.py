"""Before the operator watches: wait until the API server serves Agency's resources.

Right after the CRDs are applied (a fresh `helm install`, a test's testbed) the API server answers 429
"storage is (re)initializing" for a second or two. kopf would retry its first LIST and log each failure
as an error; waiting here first (kopf starts watching only after the startup handler returns) keeps the
first minutes of a new installation free of errors that are not errors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from agency_operator.kube import Kube, KubeError, path_for
from agency_runtime.api.meta import API_VERSION

log = logging.getLogger("agency_operator.served")

PLURALS = ("agentpolicies", "agents", "agentschedules", "agentruns")
WAIT_SECONDS = 60.0


def wait_until_served(
    kube: Kube,
    namespaces: tuple[str, ...],
    *,
    timeout: float = WAIT_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """LIST one object of each resource (in the first watched namespace, or cluster-wide) until none is
    throttled; the collections still throttled at the deadline are returned (and logged), not raised:
    kopf's own retries take over from there. Storage initialises per resource, not per namespace, so one
    namespace says it for all."""
    namespace = namespaces[0] if namespaces else None
    pending = [path_for(API_VERSION, plural, namespace) for plural in PLURALS]
    deadline = clock() + timeout
    while pending:
        still = []
        for path in pending:
            try:
                kube.get(path, params={"limit": "1"})  # a 429 is sent again inside, after its Retry-After
            except KubeError as err:
                if err.status == 429:
                    still.append(path)
        pending = still
        if pending and clock() >= deadline:
            log.warning("the API server does not serve these yet: %s", ", ".join(pending))
            break
    return pending
