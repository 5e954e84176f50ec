"""The HTTP surface of signals: `POST /namespaces/{namespace}/signals` with one CloudEvent 1.0.

The namespace is in the path (not a CloudEvents extension) so that the access check happens before the
body is read, and so that RBAC reads naturally: a sender needs `create` on `signals` in API group
`agency.dev` in that namespace. `signals` is a virtual resource: no such object is stored, the name only
exists for RBAC. A Role for senders:

    apiVersion: rbac.authorization.k8s.io/v1
    kind: Role
    metadata: {name: signal-sender, namespace: <namespace>}
    rules:
      - apiGroups: ["agency.dev"]
        resources: ["signals"]
        verbs: ["create"]

(or a ClusterRole with the same rule, bound per namespace with RoleBindings).

Senders authenticate with a Kubernetes bearer token issued for the endpoint's audience (default
`agency.dev/signals`), e.g. `kubectl create token <serviceaccount> --audience agency.dev/signals`, or a
projected service account token with that audience. Tokens for other audiences are refused, so a token
the sender uses for the API server cannot be replayed here, nor one for here against the API server.

Answers (JSON bodies, `{"error": ..., "message": ...}` for refusals):

- 202 `{"event": {...}, "runs": [...], "results": [...]}`: accepted; `runs` names every run this event
  started or had started before (redeliveries answer the same names), `results` says per schedule trigger
  what happened (Created, Exists, Skipped, Suspended, Insignificant, BelowThreshold, Error);
- 400 malformed (not JSON, missing id/source/type/specversion, specversion not 1.0, a time that is not
  RFC 3339, JSON nested more than 64 levels deep, bad namespace);
- 401 no bearer token, or one the TokenReview does not accept (`WWW-Authenticate: Bearer`);
- 403 the caller may not create signals in the namespace;
- 413 the body is larger than the limit (default 256 KiB);
- 415 neither binary nor structured JSON mode, a batch, or binary data that is neither JSON nor text;
- 503 the API server could not be asked; 500 anything unexpected (logged).

The app runs in the operator's asyncio loop (aiohttp is already there through kopf). Serve it over TLS
in a cluster (`serve(..., ssl_context=...)`): the requests carry bearer tokens.
"""

from __future__ import annotations

import logging
import re
import ssl
from typing import Any

from aiohttp import web

from agency_operator.triggers.signals.dispatch import SignalDispatcher
from agency_operator.triggers.signals.metrics import SignalMetrics, default_metrics
from agency_operator.triggers.signals.parse import SignalRejected, malformed, parse_signal
from agency_operator.triggers.signals.ports import AccessReviewer, KubernetesUnavailable, TokenReviewer

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 256 * 1024
SIGNALS_PATH = "/namespaces/{namespace}/signals"

_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DISPATCHER: web.AppKey[SignalDispatcher] = web.AppKey("dispatcher", SignalDispatcher)


#: The outcome label of agency_signals_total for each status the endpoint answers with (one per status).
OUTCOME_BY_STATUS = {
    202: "accepted",
    400: "malformed",
    401: "unauthenticated",
    403: "forbidden",
    413: "oversized",
    415: "unsupported_media_type",
    500: "error",
    503: "unavailable",
}


def _refusal(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status, headers=headers)


def build_app(
    *,
    tokens: TokenReviewer,
    access: AccessReviewer,
    dispatcher: SignalDispatcher,
    max_bytes: int = DEFAULT_MAX_BYTES,
    metrics: SignalMetrics | None = None,
) -> web.Application:
    """The aiohttp application of the signal endpoint; see the module doc for its contract."""
    counters = metrics or default_metrics()

    async def receive(request: web.Request) -> web.Response:
        response = await _receive(request)
        counters.requests.labels(outcome=OUTCOME_BY_STATUS.get(response.status, "error")).inc()
        return response

    async def _receive(request: web.Request) -> web.Response:
        namespace = request.match_info["namespace"]
        if not _NAMESPACE.match(namespace) or len(namespace) > 63:
            return _rejected(malformed(f"{namespace!r} is not a namespace name"))
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _unauthenticated("send a Kubernetes token as 'Authorization: Bearer <token>'")
        if request.content_length is not None and request.content_length > max_bytes:
            return _oversized(request.content_length, max_bytes)
        try:
            caller = await tokens.authenticate(token.strip())
            if caller is None:
                return _unauthenticated(
                    "the token is invalid, expired or not issued for this endpoint's audience"
                )
            if not await access.may_send_signals(caller, namespace):
                return _refusal(
                    403,
                    "forbidden",
                    f"{caller.username} may not create signals.agency.dev in namespace {namespace}: "
                    "bind a Role granting verb 'create' on resource 'signals' in API group 'agency.dev'",
                )
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return _oversized(None, max_bytes)
            signal = parse_signal(dict(request.headers), body)
            results = await request.app[_DISPATCHER].dispatch(namespace, signal)
        except SignalRejected as rejected:
            return _rejected(rejected)
        except KubernetesUnavailable as error:
            log.warning("signal endpoint: the API server could not answer: %s", error)
            return _refusal(
                503,
                "unavailable",
                "the Kubernetes API could not be reached; retry later",
                {"Retry-After": "5"},
            )
        except Exception:  # a bug or an unexpected API answer: the sender gets a 500, the log the detail
            log.exception("signal endpoint: failed to handle an event for namespace %s", namespace)
            return _refusal(500, "error", "the event could not be handled")
        for result in results:
            counters.triggers.labels(outcome=result.outcome.value).inc()
        runs = sorted({r.run for r in results if r.run is not None})
        log.info(
            "signal %s from %s (%s) into %s by %s: runs %s",
            signal.id,
            signal.source,
            signal.type,
            namespace,
            caller.username,
            runs or "none",
        )
        answer: dict[str, Any] = {
            "event": {"id": signal.id, "source": signal.source, "type": signal.type},
            "runs": runs,
            "results": [r.to_json() for r in results],
        }
        return web.json_response(answer, status=202)

    app = web.Application(client_max_size=max_bytes)
    app[_DISPATCHER] = dispatcher
    app.router.add_post(SIGNALS_PATH, receive)
    return app


def _rejected(rejected: SignalRejected) -> web.Response:
    return _refusal(rejected.status, rejected.outcome, rejected.message)


def _unauthenticated(message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="agency.dev/signals"'}
    return _refusal(401, "unauthenticated", message, headers)


def _oversized(length: int | None, limit: int) -> web.Response:
    size = f"{length} bytes" if length is not None else "the body"
    return _refusal(413, "oversized", f"{size} exceeds the limit of {limit} bytes per event")


async def serve(
    app: web.Application, *, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> web.AppRunner:
    """Start serving `app` on host:port in the running loop; returns the runner: `await runner.cleanup()`
    stops it. Port 0 picks a free port (read it from `bound_port(runner)`)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port the runner's first site listens on (useful after `serve(..., port=0)`)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the runner listens on no TCP port")
