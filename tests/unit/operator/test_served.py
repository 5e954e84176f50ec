"""The operator waits at start-up until the API server serves its resources (no 429 left)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from agency_operator.kube import Connection, Kube
from agency_operator.served import PLURALS, wait_until_served
from agency_operator.wire import HTTPWire
from agency_runtime import kube as runtime_kube
from agency_testbed.http_stub import serve


def _kube(stubs: ExitStack, throttled: dict[str, int], seen: list[str]) -> Kube:
    """A server that throttles each resource's list the given number of times, then serves it."""

    def answer(request: httpx.Request) -> httpx.Response:
        plural = request.url.path.rsplit("/", 1)[-1]
        seen.append(request.url.path)
        if throttled.get(plural, 0) > 0:
            throttled[plural] -= 1
            return httpx.Response(
                429, json={"message": "storage is (re)initializing"}, headers={"Retry-After": "1"}
            )
        return httpx.Response(200, json={"items": []})

    url = stubs.enter_context(serve(answer)).url
    kube = Kube(lambda: HTTPWire(url, context=None, timeout=5), Connection(host=url, ca_file=None))
    stubs.callback(kube.close)
    return kube


@pytest.fixture
def stubs() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_kube.time, "sleep", lambda _seconds: None)


def test_returns_once_every_resource_is_served_in_the_first_watched_namespace(stubs: ExitStack) -> None:
    seen: list[str] = []
    kube = _kube(stubs, {"agents": 8, "agentruns": 2}, seen)  # agents outlasts one request's own retries
    assert wait_until_served(kube, ("team-a", "team-b")) == []
    assert {path.rsplit("/", 1)[-1] for path in seen} == set(PLURALS)
    assert all("/namespaces/team-a/" in path for path in seen)
    assert seen.count("/apis/agency.dev/v1alpha1/namespaces/team-a/agents") == 9


def test_cluster_wide_it_asks_cluster_wide(stubs: ExitStack) -> None:
    seen: list[str] = []
    assert wait_until_served(_kube(stubs, {}, seen), ()) == []
    assert seen == [f"/apis/agency.dev/v1alpha1/{plural}" for plural in PLURALS]


def test_gives_up_at_the_deadline_naming_what_is_still_not_served(stubs: ExitStack) -> None:
    ticks = itertools.count()
    pending = wait_until_served(
        _kube(stubs, {"agentschedules": 10_000}, []), ("team-a",), timeout=3, clock=lambda: float(next(ticks))
    )
    assert pending == ["/apis/agency.dev/v1alpha1/namespaces/team-a/agentschedules"]
