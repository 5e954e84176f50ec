"""A small HTTP endpoint for runtime tests: counts requests, applies each side effect once per
Idempotency-Key (as a well-behaved API would), can hold requests until the test releases them, and can
turn a health path unhealthy once enough side effects were applied (a system a change broke)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


@dataclass
class Seen:
    method: str
    path: str
    body: str
    idempotency_key: str | None


@dataclass
class _State:
    requests: list[Seen] = field(default_factory=list)
    effects: list[str] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    hold: threading.Event | None = None
    hold_only: tuple[str, str] | None = None
    unhealthy: tuple[str, int] | None = None
    changed: threading.Condition = field(default_factory=threading.Condition)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _handle(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        key = self.headers.get("Idempotency-Key")
        with state.changed:
            state.requests.append(Seen(self.command, self.path, body, key))
            hold = state.hold if state.hold_only in (None, (self.command, self.path)) else None
            state.changed.notify_all()
        if hold is not None:
            hold.wait(30)
        with state.changed:
            if self.command != "GET" and (key is None or key not in state.keys):
                state.effects.append(f"{self.command} {self.path} {body}")
                if key is not None:
                    state.keys.add(key)
            count = len(state.effects)
            broken = (
                state.unhealthy is not None
                and state.unhealthy[0] == self.path
                and (count >= state.unhealthy[1])
            )
        if broken:
            payload = json.dumps({"ok": False, "effects": count}).encode()
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        payload = json.dumps({"ok": True, "effects": count, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_PATCH = _handle
    do_DELETE = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.state = _State()
        super().__init__(("127.0.0.1", 0), _Handler)


class CountingEndpoint:
    """Runs in a thread; `url` is its root. `effects` are the side effects applied (once per key)."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def requests(self) -> list[Seen]:
        with self._server.state.changed:
            return list(self._server.state.requests)

    @property
    def effects(self) -> list[str]:
        with self._server.state.changed:
            return list(self._server.state.effects)

    def hold_requests(self, method: str | None = None, path: str | None = None) -> None:
        """Requests from now on (only `method path` when given) wait (up to 30 s) until `release()`."""
        with self._server.state.changed:
            self._server.state.hold = threading.Event()
            self._server.state.hold_only = (method, path) if method is not None and path is not None else None

    def unhealthy_after(self, path: str, effects: int) -> None:
        """GET `path` answers 503 once `effects` side effects were applied (200 before)."""
        with self._server.state.changed:
            self._server.state.unhealthy = (path, effects)

    def release(self) -> None:
        with self._server.state.changed:
            if self._server.state.hold is not None:
                self._server.state.hold.set()
            self._server.state.hold = None
            self._server.state.hold_only = None

    def wait_for_requests(self, count: int, timeout: float = 30.0) -> list[Seen]:
        deadline = time.monotonic() + timeout
        state = self._server.state
        with state.changed:
            while len(state.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(state.requests)} request(s) after {timeout}s, expected {count}")
                state.changed.wait(left)
            return list(state.requests)
