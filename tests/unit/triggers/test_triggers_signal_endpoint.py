"""The signal endpoint over real HTTP on loopback, with in-memory access checks, schedules and runs."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from triggers_fakes import FakeAccess, FakeRuns, FakeSchedules, FakeTokens, run_async

from agency_operator.triggers.signals.app import bound_port, build_app, serve
from agency_operator.triggers.signals.dispatch import SignalDispatcher
from agency_operator.triggers.signals.metrics import SignalMetrics
from agency_operator.triggers.signals.parse import SignalRejected, parse_signal
from agency_operator.triggers.signals.ports import Caller
from agency_runtime.api.schedule import AgentSchedule

SENDER = Caller(username="system:serviceaccount:ops:sensor-gateway", groups=("system:serviceaccounts",))
STRANGER = Caller(username="system:serviceaccount:ops:stranger")

SCHEDULE = AgentSchedule.model_validate(
    {
        "metadata": {"name": "coldchain", "namespace": "ops", "uid": "uid-coldchain"},
        "spec": {
            "agentRef": {"name": "quality"},
            "concurrencyPolicy": "Allow",
            "signals": [
                {"name": "hot", "type": "com.example.temperature", "significance": "data.celsius > 8.0"}
            ],
        },
    }
)


def structured(celsius: float, event_id: str = "e1", **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "/sensors/truck-4",
        "type": "com.example.temperature",
        "datacontenttype": "application/json",
        "data": {"celsius": celsius},
        **extra,
    }


STRUCTURED = {"Content-Type": "application/cloudevents+json"}


class Endpoint:
    """The app served on a free loopback port, and what it did."""

    def __init__(self, max_bytes: int = 256 * 1024) -> None:
        self.runs = FakeRuns()
        self.registry = CollectorRegistry()
        self.metrics = SignalMetrics(self.registry)
        self.app = build_app(
            tokens=FakeTokens({"good": SENDER, "stranger": STRANGER}),
            access=FakeAccess({(SENDER.username, "ops")}),
            dispatcher=SignalDispatcher(FakeSchedules({"ops": [SCHEDULE]}), self.runs),
            max_bytes=max_bytes,
            metrics=self.metrics,
        )

    def count(self, outcome: str) -> float:
        value = self.registry.get_sample_value("agency_signals_total", {"outcome": outcome})
        return value or 0.0

    def exercise(self, scenario: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
        async def main() -> None:
            runner = await serve(self.app, host="127.0.0.1", port=0)
            try:
                url = f"http://127.0.0.1:{bound_port(runner)}"
                async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                    await scenario(client)
            finally:
                await runner.cleanup()

        run_async(main())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


PATH = "/namespaces/ops/signals"


def test_a_structured_significant_event_is_accepted_with_the_run_it_started() -> None:
    endpoint = Endpoint()

    async def scenario(client: httpx.AsyncClient) -> None:
        response = await client.post(
            PATH, content=json.dumps(structured(9.5)), headers={**STRUCTURED, **bearer("good")}
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["runs"] == endpoint.runs.names()
        assert body["results"][0]["outcome"] == "Created"

    endpoint.exercise(scenario)
    assert len(endpoint.runs.runs) == 1
    assert endpoint.count("accepted") == 1


def test_a_binary_mode_event_is_accepted_and_redeliveries_name_the_same_run() -> None:
    endpoint = Endpoint()
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "b-7",
        "ce-source": "/sensors/truck-9",
        "ce-type": "com.example.temperature",
        "Content-Type": "application/json",
        **bearer("good"),
    }
    answers: list[dict[str, Any]] = []

    async def scenario(client: httpx.AsyncClient) -> None:
        for _ in range(3):
            response = await client.post(PATH, content=b'{"celsius": 12.5}', headers=headers)
            assert response.status_code == 202, response.text
            answers.append(response.json())

    endpoint.exercise(scenario)
    assert len(endpoint.runs.runs) == 1
    assert [a["runs"] for a in answers] == [endpoint.runs.names()] * 3
    assert [a["results"][0]["outcome"] for a in answers] == ["Created", "Exists", "Exists"]


def test_an_insignificant_event_is_accepted_but_starts_nothing() -> None:
    endpoint = Endpoint()

    async def scenario(client: httpx.AsyncClient) -> None:
        response = await client.post(
            PATH, content=json.dumps(structured(3.0)), headers={**STRUCTURED, **bearer("good")}
        )
        assert response.status_code == 202
        assert response.json()["runs"] == []
        assert response.json()["results"][0]["outcome"] == "Insignificant"

    endpoint.exercise(scenario)
    assert endpoint.runs.runs == {}


def test_a_request_without_a_token_or_with_an_unknown_one_is_401_and_counted() -> None:
    endpoint = Endpoint()

    async def scenario(client: httpx.AsyncClient) -> None:
        event = json.dumps(structured(9.5))
        missing = await client.post(PATH, content=event, headers=STRUCTURED)
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        unknown = await client.post(PATH, content=event, headers={**STRUCTURED, **bearer("forged")})
        assert unknown.status_code == 401
        assert "audience" in unknown.json()["message"]

    endpoint.exercise(scenario)
    assert endpoint.runs.runs == {}
    assert endpoint.count("unauthenticated") == 2


def test_a_caller_without_rbac_for_signals_is_403_and_told_what_to_grant() -> None:
    endpoint = Endpoint()

    async def scenario(client: httpx.AsyncClient) -> None:
        event = json.dumps(structured(9.5))
        response = await client.post(PATH, content=event, headers={**STRUCTURED, **bearer("stranger")})
        assert response.status_code == 403
        assert "signals" in response.json()["message"]
        assert STRANGER.username in response.json()["message"]
        other_namespace = await client.post(
            "/namespaces/prod/signals", content=event, headers={**STRUCTURED, **bearer("good")}
        )
        assert other_namespace.status_code == 403

    endpoint.exercise(scenario)
    assert endpoint.count("forbidden") == 2


def test_an_oversized_event_is_413_whether_it_declares_its_length_or_streams() -> None:
    endpoint = Endpoint(max_bytes=1024)
    big = json.dumps(structured(9.5, padding="x" * 4096)).encode()

    async def chunks() -> Any:
        for start in range(0, len(big), 512):
            yield big[start : start + 512]

    async def scenario(client: httpx.AsyncClient) -> None:
        declared = await client.post(PATH, content=big, headers={**STRUCTURED, **bearer("good")})
        assert declared.status_code == 413
        assert "1024" in declared.json()["message"]
        streamed = await client.post(PATH, content=chunks(), headers={**STRUCTURED, **bearer("good")})
        assert streamed.status_code == 413

    endpoint.exercise(scenario)
    assert endpoint.count("oversized") == 2
    assert endpoint.runs.runs == {}


def test_malformed_events_are_400_saying_what_is_wrong() -> None:
    endpoint = Endpoint()
    cases = {
        b"{not json": "not valid JSON",
        json.dumps({k: v for k, v in structured(9.5).items() if k != "id"}).encode(): "id",
        json.dumps(structured(9.5, specversion="0.3")).encode(): "specversion",
        json.dumps(structured(9.5, time="yesterday")).encode(): "attribute time must be an RFC 3339",
        json.dumps(structured(9.5, time="2026-02-30T00:00:00Z")).encode(): "attribute time",
        b"[1, 2]": "JSON object",
        # Deeper than the limit, and deeper than Python's JSON parser can recurse: both refused, not a 500.
        json.dumps(structured(9.5, data=json.loads("[" * 65 + "]" * 65))).encode(): "nested too deeply",
        json.dumps(structured(9.5, data="$")).replace('"$"', "[" * 5000 + "]" * 5000).encode(): "too deeply",
    }

    async def scenario(client: httpx.AsyncClient) -> None:
        for body, needle in cases.items():
            response = await client.post(PATH, content=body, headers={**STRUCTURED, **bearer("good")})
            assert response.status_code == 400, body
            assert needle in response.json()["message"], response.json()

    endpoint.exercise(scenario)
    assert endpoint.count("malformed") == len(cases)


def test_requests_that_are_neither_binary_nor_structured_json_are_415() -> None:
    endpoint = Endpoint()

    async def scenario(client: httpx.AsyncClient) -> None:
        plain = await client.post(
            PATH, content=b'{"celsius": 9}', headers={"Content-Type": "application/json", **bearer("good")}
        )
        assert plain.status_code == 415
        assert "ce-specversion" in plain.json()["message"]
        batch = await client.post(
            PATH,
            content=b"[]",
            headers={"Content-Type": "application/cloudevents-batch+json", **bearer("good")},
        )
        assert batch.status_code == 415

    endpoint.exercise(scenario)
    assert endpoint.count("unsupported_media_type") == 2


def test_binary_mode_data_declared_as_json_that_is_not_json_is_400() -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-source": "/s",
        "ce-type": "t",
        "content-type": "application/json",
    }
    with pytest.raises(SignalRejected, match="declared as JSON") as rejected:
        parse_signal(headers, b"{broken")
    assert rejected.value.status == 400


def test_a_structured_event_without_time_carries_none_rather_than_an_invented_time() -> None:
    signal = parse_signal(STRUCTURED, json.dumps(structured(9.5)).encode())
    assert signal.time is None
    assert signal.data == {"celsius": 9.5}
