"""The Kubernetes clients: a throttled request (429, Retry-After) is sent again; a thread keeps its client."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from agency_operator.kube import Connection, Kube
from agency_runtime import kube as runtime_kube
from agency_runtime.kube import (
    MAX_RETRY_AFTER_SECONDS,
    THROTTLE_RETRIES,
    KubeApiError,
    KubeClient,
    retry_after,
)

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


def _runtime(server: Server) -> KubeClient:
    return KubeClient(httpx.Client(base_url="https://api.test", transport=httpx.MockTransport(server)))


def _operator(server: Server) -> Kube:
    http = httpx.Client(base_url="https://api.test", transport=httpx.MockTransport(server))
    return Kube(http, Connection(host="https://api.test", ca_file=None))


@pytest.mark.parametrize("client", [_runtime, _operator], ids=["runtime", "operator"])
def test_a_throttled_create_is_sent_again_with_the_same_body_after_the_wait_asked_for(
    client: Callable[[Server], Any], waits: list[float]
) -> None:
    server = Server(throttle=2, retry_after="2")
    made = client(server).create("/api/v1/namespaces/a/configmaps", {"metadata": {"name": "x"}})
    assert made == {"metadata": {"name": "x"}}
    assert waits == [2.0, 2.0]
    assert len(server.bodies) == 3
    assert len(set(server.bodies)) == 1


@pytest.mark.parametrize("client", [_runtime, _operator], ids=["runtime", "operator"])
def test_a_server_that_keeps_throttling_gets_a_clear_error_after_the_last_retry(
    client: Callable[[Server], Any], waits: list[float]
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


def test_the_operator_gives_each_thread_its_own_client_and_keeps_it() -> None:
    """A thread's next request finds its connection open: one client per thread, made on first use."""
    made: list[httpx.Client] = []

    def make() -> httpx.Client:
        made.append(httpx.Client(base_url="https://api.test", transport=httpx.MockTransport(Server(0))))
        return made[-1]

    kube = Kube(make(), Connection(host="https://api.test", ca_file=None), per_thread=make)
    kube.create("/api/v1/namespaces/a/configmaps", {"n": 1})
    kube.create("/api/v1/namespaces/a/configmaps", {"n": 2})
    assert len(made) == 2  # the shared one and this thread's
    worker = threading.Thread(target=lambda: kube.create("/api/v1/namespaces/a/configmaps", {"n": 3}))
    worker.start()
    worker.join()
    assert len(made) == 3
    assert not made[2].is_closed
    second = threading.Thread(target=lambda: kube.get("/api/v1/namespaces/a/configmaps/x"))
    second.start()
    second.join()
    assert made[2].is_closed  # the ended thread's client, closed when the next thread made its own
    kube.close()
    assert all(client.is_closed for client in made)
