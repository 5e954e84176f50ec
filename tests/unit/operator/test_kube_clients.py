"""The Kubernetes clients, on a real local server: a throttled request (429, Retry-After) is sent again; a
thread keeps its connection; a connection closed by the server is replaced, and its request sent once more."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from agency_operator.kube import Connection, Kube, _config_auth
from agency_operator.wire import HTTPWire, Wire
from agency_runtime import kube as runtime_kube
from agency_runtime.kube import (
    MAX_RETRY_AFTER_SECONDS,
    THROTTLE_RETRIES,
    KubeApiError,
    KubeClient,
    retry_after,
)
from agency_testbed.http_stub import DROP, serve
from agency_testbed.procs import wait_until

THROTTLED = {
    "kind": "Status",
    "status": "Failure",
    "reason": "TooManyRequests",
    "message": "storage is (re)initializing",
}


class Server:
    """Answers 429 `throttle` times, then 201 with the body it was sent; records every request's body."""

    def __init__(self, throttle: int, retry_after: str = "1") -> None:
        self.throttle = throttle
        self.retry_after = retry_after
        self.bodies: list[bytes] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(request.content)
        if len(self.bodies) <= self.throttle:
            return httpx.Response(429, json=THROTTLED, headers={"Retry-After": self.retry_after})
        return httpx.Response(201, content=request.content, headers={"Content-Type": "application/json"})


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(runtime_kube.time, "sleep", slept.append)
    return slept


Client = Callable[[Server], Any]


@pytest.fixture
def stubs() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def _kube(stubs: ExitStack, url: str) -> Kube:
    """The operator's client on the local server at `url`, closed when the test ends."""
    kube = Kube(lambda: HTTPWire(url, context=None, timeout=5), Connection(host=url, ca_file=None))
    stubs.callback(kube.close)
    return kube


@pytest.fixture(params=["runtime", "operator"])
def client(request: pytest.FixtureRequest, stubs: ExitStack) -> Client:
    """The runtime's client (httpx) or the operator's (`wire.py`), each on a real local server."""

    def make(server: Server) -> Any:
        url = stubs.enter_context(serve(server)).url
        if request.param == "runtime":
            http = httpx.Client(base_url=url)
            stubs.callback(http.close)
            return KubeClient(http)
        return _kube(stubs, url)

    return make


def test_a_throttled_create_is_sent_again_with_the_same_body_after_the_wait_asked_for(
    client: Client, waits: list[float]
) -> None:
    server = Server(throttle=2, retry_after="2")
    made = client(server).create("/api/v1/namespaces/a/configmaps", {"metadata": {"name": "x"}})
    assert made == {"metadata": {"name": "x"}}
    assert waits == [2.0, 2.0]
    assert len(server.bodies) == 3
    assert len(set(server.bodies)) == 1


def test_a_server_that_keeps_throttling_gets_a_clear_error_after_the_last_retry(
    client: Client, waits: list[float]
) -> None:
    server = Server(throttle=100)
    with pytest.raises(KubeApiError) as raised:
        client(server).get("/api/v1/namespaces/a/configmaps/x")
    assert (raised.value.status, raised.value.reason) == (429, "TooManyRequests")
    assert "storage is (re)initializing" in str(raised.value)
    assert len(server.bodies) == THROTTLE_RETRIES + 1
    assert waits == [1.0] * THROTTLE_RETRIES


def test_the_wait_is_the_servers_within_bounds_and_only_for_429() -> None:
    def answer(status: int, header: str | None) -> httpx.Response:
        return httpx.Response(status, headers={"Retry-After": header} if header is not None else {})

    assert retry_after(answer(429, "3")) == 3.0
    assert retry_after(answer(429, None)) == 1.0
    assert retry_after(answer(429, "Wed, 21 Oct 2026 07:28:00 GMT")) == 1.0
    assert retry_after(answer(429, "3600")) == MAX_RETRY_AFTER_SECONDS
    assert retry_after(answer(429, "-4")) == 0.0
    assert retry_after(answer(500, "3")) is None
    assert retry_after(answer(409, None)) is None


def test_the_operator_gives_each_thread_its_own_connection_and_keeps_it(stubs: ExitStack) -> None:
    """A thread's next request finds its connection open: one wire per thread, made on first use."""
    stub = stubs.enter_context(serve(Server(0)))
    made: list[Wire] = []

    def connect() -> Wire:
        made.append(HTTPWire(stub.url, context=None, timeout=5))
        return made[-1]

    kube = Kube(connect, Connection(host=stub.url, ca_file=None))
    kube.create("/api/v1/namespaces/a/configmaps", {"n": 1})
    kube.create("/api/v1/namespaces/a/configmaps", {"n": 2})
    assert (len(made), stub.connections) == (1, 1)  # this thread's, kept alive between its requests
    worker = threading.Thread(target=lambda: kube.create("/api/v1/namespaces/a/configmaps", {"n": 3}))
    worker.start()
    worker.join()
    assert (len(made), stub.connections) == (2, 2)
    second = threading.Thread(target=lambda: kube.get("/api/v1/namespaces/a/configmaps/x"))
    second.start()
    second.join()
    assert len(made) == 3
    assert made[1]._connection is None  # the ended thread's, closed when the next thread made its own
    kube.close()
    assert all(wire._connection is None for wire in made)


def test_a_connection_the_server_closed_while_idle_does_not_fail_the_next_request(
    stubs: ExitStack,
) -> None:
    server = Server(0)
    stub = stubs.enter_context(serve(server))
    kube = _kube(stubs, stub.url)
    kube.create("/api/v1/namespaces/a/configmaps", {"n": 1})
    wait_until(lambda: len(stub.idle) == 1, timeout=5, what="the connection to wait for its next request")
    stub.close_idle()  # as a server's idle timeout does, between two requests
    assert kube.create("/api/v1/namespaces/a/configmaps", {"n": 2}) == {"n": 2}
    assert stub.connections == 2
    assert len(server.bodies) == 2


def test_a_request_whose_kept_alive_connection_closes_under_it_is_sent_once_more(stubs: ExitStack) -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response | object:
        seen.append(request.content.decode())
        if len(seen) == 2:  # the second request, on the kept-alive connection: gone without an answer
            return DROP
        return httpx.Response(201, content=request.content, headers={"Content-Type": "application/json"})

    stub = stubs.enter_context(serve(answer))
    kube = _kube(stubs, stub.url)
    kube.create("/api/v1/namespaces/a/configmaps", {"n": 1})
    assert kube.create("/api/v1/namespaces/a/configmaps", {"n": 2}) == {"n": 2}
    assert seen == ['{"n":1}', '{"n":2}', '{"n":2}']
    assert stub.connections == 2


def test_a_new_connection_closed_without_an_answer_is_an_error_not_a_loop(stubs: ExitStack) -> None:
    seen: list[bytes] = []

    def answer(request: httpx.Request) -> object:
        seen.append(request.content)
        return DROP

    kube = _kube(stubs, stubs.enter_context(serve(answer)).url)
    with pytest.raises(ConnectionError):
        kube.get("/api/v1/namespaces/a/configmaps/x")
    assert len(seen) == 1


def test_an_error_answer_names_the_servers_reason_and_message(stubs: ExitStack) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        status = {"kind": "Status", "reason": "NotFound", "message": 'configmaps "x" not found'}
        return httpx.Response(404, json=status)

    kube = _kube(stubs, stubs.enter_context(serve(answer)).url)
    assert kube.get_or_none("/api/v1/namespaces/a/configmaps/x") is None
    with pytest.raises(KubeApiError, match='404 NotFound: configmaps "x" not found'):
        kube.get("/api/v1/namespaces/a/configmaps/x")


class RotatingConfiguration:
    """Stands in for kubernetes' Configuration: its bearer token as `auth_settings()` gives it, counted."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.asked = 0

    def auth_settings(self) -> dict[str, dict[str, str]]:
        self.asked += 1
        return {"BearerToken": {"in": "header", "key": "authorization", "value": f"Bearer {self.token}"}}


def test_the_token_is_read_once_per_reuse_window_and_a_rotated_one_is_sent_after_it() -> None:
    now = [100.0]
    configuration = RotatingConfiguration("first")
    headers = _config_auth(configuration, reuse=10.0, clock=lambda: now[0])

    sent = [headers() for _ in range(50)]
    configuration.token = "rotated"
    now[0] += 9.9
    before = headers()
    now[0] += 0.1
    after = headers()

    assert sent == [{"authorization": "Bearer first"}] * 50
    assert before == {"authorization": "Bearer first"}
    assert after == {"authorization": "Bearer rotated"}
    assert configuration.asked == 2
