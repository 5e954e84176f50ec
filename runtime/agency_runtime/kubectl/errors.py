"""The plugin's errors: each carries the sentence shown to the user and the exit code, nothing else.

Every failure a user can cause (no cluster, no CRDs, a wrong name, missing rights) ends as one of these,
so `main` prints one readable line instead of a traceback.
"""

from __future__ import annotations

#: Exit codes: 0 done (run Succeeded), 1 the run ended but did not succeed, 2 the plugin could not do what
#: was asked, 3 the run waits for an approval, 4 following the run timed out.
EXIT_RUN_FAILED = 1
EXIT_ERROR = 2
EXIT_WAITING = 3
EXIT_TIMEOUT = 4


class PluginError(Exception):
    """Something the user has to fix; `str()` is the message shown."""

    exit_code = EXIT_ERROR


class KubeconfigError(PluginError):
    """The kubeconfig is missing, malformed, or uses an authentication the plugin does not speak."""


class CannotReachCluster(PluginError):
    """No answer from the API server (refused, DNS, TLS, timeout)."""


class CrdsMissing(PluginError):
    """The agency.dev API group (or one of its kinds) is not served: the CRDs are not installed."""


class NotFound(PluginError):
    """The named object does not exist where we looked."""


class Forbidden(PluginError):
    """The API server (RBAC or an admission policy) refused the request."""


class ApiError(PluginError):
    """Any other refusal of the API server, with its message."""
