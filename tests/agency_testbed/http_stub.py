"""A real local HTTP/1.1 server for clients' unit tests, answering through an httpx-style handler.

    with serve(lambda request: httpx.Response(200, json={"items": []})) as stub:
        kube = Kube(lambda: HTTPWire(stub.url, context=None, timeout=5), Connection(stub.url, None))

The handler gets each request as an `httpx.Request` (method, path and query, headers, body) and returns
an `httpx.Response`, or `DROP` to close the connection without answering. Connections are kept alive
(HTTP/1.1) unless the answer says `Connection: close`; `stub.connections` counts the ones accepted, and
`stub.close_idle()` closes every kept-alive one from the server's side, as a server's idle timeout does.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

#: A handler's answer that closes the connection without a response (a server going away mid-request).
DROP = object()

Handler = Callable[[httpx.Request], "httpx.Response | object"]


@dataclass
class Stub:
    url: str
    connections: int = 0
    idle: list[socket.socket] = field(default_factory=list)
    guard: threading.Lock = field(default_factory=threading.Lock)

    def close_idle(self) -> None:
        """Close, from the server's side, every connection waiting for its next request."""
        with self.guard:
            idle, self.idle = self.idle, []
        for sock in idle:
            with contextlib.suppress(OSError):  # the client closed it first
                sock.shutdown(socket.SHUT_RDWR)


@contextmanager
def serve(handler: Handler) -> Iterator[Stub]:
    stub = Stub(url="")

    class _Requests(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with stub.guard:
                stub.connections += 1

        def handle_one_request(self) -> None:
            with stub.guard:
                stub.idle.append(self.connection)
            try:
                self.raw_requestline = self.rfile.readline(65537)
            except OSError:
                self.close_connection = True
                return
            with stub.guard:
                if self.connection in stub.idle:
                    stub.idle.remove(self.connection)
            if not self.raw_requestline or not self.parse_request():
                self.close_connection = True
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = httpx.Request(
                self.command, f"http://stub{self.path}", headers=list(self.headers.items()), content=body
            )
            answer = handler(request)
            if answer is DROP or not isinstance(answer, httpx.Response):
                self.close_connection = True
                return
            content = answer.read()
            self.send_response(answer.status_code)
            for name, value in answer.headers.items():
                if name.lower() not in ("content-length", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
            self.wfile.flush()
            if answer.headers.get("Connection", "").lower() == "close":
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Requests)
    server.daemon_threads = True
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="http-stub", daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        stub.close_idle()
        server.shutdown()
        server.server_close()
