"""One kept-alive HTTP/1.1 connection to the API server, through the standard library's `http.client`.

The operator's reconciles send most of its requests (11-12 per run in a burst), one at a time per
thread. Through `httpx` each cost ~1.1 ms of the operator's CPU on the 2-core test machine, of which
TLS and JSON were ~0.35 ms: the rest was httpx's request and response models, its cookie jar, h11's
state machine and httpcore's pool (41% of the operator's samples in a burst). `http.client` on one
connection per thread costs ~0.4 ms for the same request. What httpx's pool did that matters here
is done below: a connection the server closed while it sat idle is noticed before it is used (its
socket reads as ready), and a request that finds its kept-alive connection closed under it is sent
once more on a new one, before any answer was read (the server did not take it; client-go and urllib3
do the same).
"""

from __future__ import annotations

import http.client
import json
import select
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any, Protocol
from urllib.parse import urlsplit

USER_AGENT = "agency-operator"


@dataclass(frozen=True)
class Answer:
    """The API server's answer: status, headers (looked up without regard to case), body."""

    status_code: int
    headers: Message
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class Wire(Protocol):
    """What `Kube` sends a request through: one thread's connection, never shared between threads."""

    def send(self, method: str, target: str, body: bytes | None, headers: Mapping[str, str]) -> Answer: ...

    def close(self) -> None: ...


#: A connection closed by the server under a request: the request was not answered and may go again.
_CLOSED_UNDER_US = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class HTTPWire:
    """`Wire` over one `http.client` connection to `base` (https://host:port, or http:// in tests)."""

    def __init__(self, base: str, *, context: ssl.SSLContext | None, timeout: float) -> None:
        url = urlsplit(base)
        self._tls = url.scheme == "https"
        self._host = url.hostname or "localhost"
        self._port = url.port or (443 if self._tls else 80)
        self._prefix = url.path.rstrip("/")
        self._context = context
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._tls:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=self._context
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def _idle_and_closed(self, connection: http.client.HTTPConnection) -> bool:
        """True when the kept-alive connection has something to read before a request was sent: the
        server closed it (or it is out of step), so it must not carry the next request."""
        sock = connection.sock
        if sock is None:
            return False  # not connected yet: `request` connects it
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)

    def send(self, method: str, target: str, body: bytes | None, headers: Mapping[str, str]) -> Answer:
        all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **headers}
        for attempt in range(2):
            connection = self._connection
            if connection is not None and self._idle_and_closed(connection):
                self.close()
                connection = None
            reused = connection is not None and connection.sock is not None
            if connection is None:
                connection = self._connection = self._connect()
            try:
                connection.request(method, self._prefix + target, body=body, headers=all_headers)
                response = connection.getresponse()
                content = response.read()
            except _CLOSED_UNDER_US:
                self.close()
                if reused and attempt == 0:
                    continue  # kept alive, then closed by the server as the request went: send it again
                raise
            except BaseException:
                self.close()  # a half-read answer would poison the next request on this connection
                raise
            if response.will_close:
                self.close()
            return Answer(response.status, response.headers, content)
        raise AssertionError("unreachable: the second attempt returns or raises")

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
