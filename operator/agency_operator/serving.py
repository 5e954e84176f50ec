"""The operator's own HTTP server: the CloudEvents signal endpoint and the agents' A2A-style cards.

Served in kopf's asyncio loop (aiohttp is kopf's own dependency) from a startup handler and stopped by a
cleanup handler, only when `AGENCY_SIGNALS_PORT` is set. With a certificate and key it speaks TLS: the
requests carry bearer tokens.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import httpx
from aiohttp import web

from agency_operator import agentcards
from agency_operator.settings import Settings
from agency_operator.triggers.signals import app as signal_app
from agency_operator.triggers.signals import kube as signal_kube


@dataclass
class Server:
    """A running server and the API-server client its requests use; `stop()` closes both."""

    runner: web.AppRunner
    client: httpx.AsyncClient

    @property
    def port(self) -> int:
        return signal_app.bound_port(self.runner)

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.client.aclose()


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server side TLS context from the configured certificate and key, or None for plain HTTP."""
    if settings.signals_tls_cert_file is None or settings.signals_tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(settings.signals_tls_cert_file), str(settings.signals_tls_key_file))
    return context


def build_app(client: httpx.AsyncClient, settings: Settings) -> web.Application:
    """Every route the operator serves, talking to the API server through `client`: signals and agent
    cards (both for tokens of the same audience)."""
    app = signal_kube.build_kube_app(client, audience=settings.signals_audience)
    agentcards.add_routes(app, client, settings.signals_audience)
    return app


async def start(settings: Settings) -> Server | None:
    """Serve on the configured port, or nothing when the port is 0."""
    if not settings.signals_port:
        return None
    client = signal_kube.async_client()
    try:
        runner = await signal_app.serve(
            build_app(client, settings),
            host=settings.signals_host,
            port=settings.signals_port,
            ssl_context=tls_context(settings),
        )
    except BaseException:
        await client.aclose()
        raise
    return Server(runner, client)
