"""Malformed CloudEvents for the signal endpoint, and what the endpoint must answer to each.

Each case is one HTTP request (headers, body, and optionally another namespace in the path or other
credentials) made from a valid event by one change, with the statuses the endpoint may answer and words of
which a refusal's message must contain one (so the sender learns what to fix). Some changes leave a valid
event (an invalid `traceparent` is ignored, not refused); for those 202 is among the allowed answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from integration.fuzz.mutations import json_values, pick

STRUCTURED = "application/cloudevents+json"
EVENT_TYPE = "com.example.coldchain.temperature"
#: The endpoint's body limit in the operator (its default, 256 KiB).
MAX_BYTES = 256 * 1024
REQUIRED = ("specversion", "id", "source", "type")
LIMITS = {"id": 256, "type": 256, "source": 1024, "subject": 1024}
#: Sentinel for "send no Authorization header" and "use the sender's token".
NO_AUTH = ""
TOKEN = "$TOKEN"

_ASCII = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40)
#: What HTTP allows in a header value: no leading or trailing blanks (h11 refuses to send those).
_HEADER_VALUE = _ASCII.map(str.strip).filter(bool)


@dataclass(frozen=True)
class EventCase:
    mutation: str
    headers: dict[str, str]
    body: bytes
    expect: frozenset[int]
    says: tuple[str, ...] = ()
    """Words (any one, case-insensitive) a refusal's message must contain."""
    namespace: str | None = None
    """Another namespace in the path (a malformed one); None: the test's."""
    authorization: str = f"Bearer {TOKEN}"
    chunked: bool = False
    """Send the body without Content-Length (chunked), so the limit is enforced while reading."""
    ignored_traceparent: bool = False
    """The event carries an invalid traceparent: accepted, but its run must not join that trace."""

    def describe(self) -> str:
        return f"signal {self.mutation}"


def event(event_id: str, **changes: Any) -> dict[str, Any]:
    """A valid, significant event (`data.celsius > 8.0`) with a unique id."""
    base: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": "/sensors/truck-4",
        "type": EVENT_TYPE,
        "datacontenttype": "application/json",
        "data": {"celsius": 9.5, "lot": "L-889"},
    }
    base.update(changes)
    return base


def _structured(mutation: str, body: Any, expect: set[int], *says: str, **extra: Any) -> EventCase:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return EventCase(mutation, {"Content-Type": STRUCTURED}, raw, frozenset(expect), says, **extra)


def _binary_headers(event_id: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": "/sensors/truck-7",
        "ce-type": EVENT_TYPE,
    }


_DATA = json.dumps({"celsius": 11.0, "lot": "L-42"}).encode()
Builder = Callable[[st.DrawFn, str], EventCase]


def _invalid_json(draw: st.DrawFn, eid: str) -> EventCase:
    text = json.dumps(event(eid))
    body = draw(
        st.one_of(
            st.binary(min_size=1, max_size=200),
            st.integers(1, len(text) - 1).map(lambda n: text[:n].encode()),
            st.just(text.replace('"', "'").encode()),
        )
    )
    return _structured("structured-invalid-json", body, {400}, "JSON")


def _not_an_object(draw: st.DrawFn, eid: str) -> EventCase:
    value = draw(json_values().filter(lambda v: not isinstance(v, dict)))
    return _structured("structured-not-an-object", value, {400}, "JSON object")


def _missing_attribute(draw: st.DrawFn, eid: str) -> EventCase:
    name = pick(draw, REQUIRED)
    body = event(eid)
    if draw(st.booleans()):
        del body[name]
        mutation = "missing"
    else:
        body[name] = ""
        mutation = "empty"
    return _structured(f"structured-{mutation}-{name}", body, {400}, name)


def _wrong_specversion(draw: st.DrawFn, eid: str) -> EventCase:
    version = draw(st.one_of(st.sampled_from(["0.3", "1", "1.0.0", "2.0", " 1.0"]), st.just(1.0), _ASCII))
    if version == "1.0":
        version = "1.1"
    return _structured("structured-wrong-specversion", event(eid, specversion=version), {400}, "specversion")


def _too_long(draw: st.DrawFn, eid: str) -> EventCase:
    name = pick(draw, list(LIMITS))
    value = "x" * (LIMITS[name] + draw(st.integers(1, 5000)))
    if name == "id":
        value = eid + value
    return _structured(f"structured-long-{name}", event(eid, **{name: value}), {400}, name)


def _wrong_attribute_type(draw: st.DrawFn, eid: str) -> EventCase:
    name = pick(draw, ("id", "source", "type", "subject", "time", "datacontenttype", "dataschema"))
    value = draw(json_values().filter(lambda v: v is not None and not isinstance(v, str)))
    return _structured(f"structured-{name}-not-a-string", event(eid, **{name: value}), {400}, name)


def _bad_time(draw: st.DrawFn, eid: str) -> EventCase:
    value = draw(st.one_of(st.sampled_from(["yesterday", "2026-13-01T00:00:00Z", "12:00"]), _ASCII))
    return _structured("structured-bad-time", event(eid, time=value), {400}, "time")


def _bad_extension(draw: st.DrawFn, eid: str) -> EventCase:
    name = pick(draw, ("Upper", "with-dash", "under_score", "averyveryverylongextensionname", "dotted.name"))
    body = {**event(eid), name: draw(_ASCII)}
    return _structured("structured-bad-extension-name", body, {202, 400}, name)


def _bad_traceparent(draw: st.DrawFn, eid: str) -> EventCase:
    value = draw(
        st.one_of(
            st.sampled_from(
                [
                    "00-" + "0" * 32 + "-" + "1" * 16 + "-01",  # all-zero trace id
                    "00-" + "a" * 32 + "-" + "0" * 16 + "-01",  # all-zero span id
                    "01-" + "a" * 32 + "-" + "b" * 16 + "-01",  # unknown version
                    "00-" + "A" * 32 + "-" + "b" * 16 + "-01",  # upper case
                    "00-abc-def-01",
                ]
            ),
            _ASCII,
        )
    )
    return _structured(
        "structured-bad-traceparent", event(eid, traceparent=value), {202}, ignored_traceparent=True
    )


def _deep_data(draw: st.DrawFn, eid: str) -> EventCase:
    depth = draw(st.sampled_from([200, 1000, 5000, 50_000]))
    data = "[" * depth + "]" * depth
    body = json.dumps(event(eid)).replace('{"celsius": 9.5, "lot": "L-889"}', data).encode()
    return _structured(f"structured-data-nested-{depth}-deep", body, {202, 400}, "JSON", "nested")


def _huge(draw: st.DrawFn, eid: str) -> EventCase:
    pad = "x" * (MAX_BYTES + draw(st.integers(1, 100_000)))
    chunked = draw(st.booleans())
    return _structured(
        f"structured-huge{'-chunked' if chunked else ''}",
        event(eid, data={"celsius": 9.5, "pad": pad}),
        {413},
        "limit",
        chunked=chunked,
    )


def _wrong_content_type(draw: st.DrawFn, eid: str) -> EventCase:
    media = pick(
        draw,
        (
            "application/cloudevents-batch+json",
            "application/cloudevents+xml",
            "application/cloudevents+avro",
            "application/json",
            "text/plain",
            "application/xml",
            "multipart/form-data",
            "",
        ),
    )
    says = ("batch",) if "batch" in media else ("format",) if "cloudevents" in media else ("content type",)
    headers = {"Content-Type": media} if media else {}
    body = json.dumps([event(eid)] if "batch" in media else event(eid)).encode()
    return EventCase(f"structured-as-{media or 'no-content-type'}", headers, body, frozenset({415}), says)


def _binary_missing(draw: st.DrawFn, eid: str) -> EventCase:
    name = pick(draw, REQUIRED)
    headers = _binary_headers(eid)
    del headers[f"ce-{name}"]
    return EventCase(f"binary-missing-{name}", headers, _DATA, frozenset({400}), (name,))


def _binary_specversion(draw: st.DrawFn, eid: str) -> EventCase:
    version = draw(
        st.one_of(st.sampled_from(["0.3", "1", "v1.0"]), _HEADER_VALUE).filter(lambda v: v != "1.0")
    )
    headers = {**_binary_headers(eid), "ce-specversion": version}
    return EventCase("binary-wrong-specversion", headers, _DATA, frozenset({400}), ("specversion",))


def _binary_media(draw: st.DrawFn, eid: str) -> EventCase:
    media = pick(draw, ("application/xml", "image/png", "application/octet-stream", "application/protobuf"))
    headers = {**_binary_headers(eid), "Content-Type": media}
    return EventCase(f"binary-data-as-{media}", headers, _DATA, frozenset({415}), ("binary-mode", "data"))


def _binary_invalid_json(draw: st.DrawFn, eid: str) -> EventCase:
    body = draw(st.binary(min_size=1, max_size=200).filter(lambda b: not _is_json(b)))
    return EventCase("binary-invalid-json", _binary_headers(eid), body, frozenset({400}), ("JSON",))


def _binary_random_text(draw: st.DrawFn, eid: str) -> EventCase:
    headers = {**_binary_headers(eid), "Content-Type": "text/plain"}
    body = draw(st.binary(min_size=0, max_size=300))
    return EventCase("binary-random-bytes-as-text", headers, body, frozenset({202, 400}), ("text", "UTF-8"))


def _binary_attribute(draw: st.DrawFn, eid: str) -> EventCase:
    name, value, expect, says = pick(
        draw,
        (
            ("time", "not-a-time", {400}, ("time",)),
            ("time", "2026-02-30T00:00:00Z", {400}, ("time",)),
            ("source", "/" + "s" * 1100, {400}, ("source",)),
            ("id", eid + "i" * 300, {400}, ("id",)),
            ("traceparent", "00-not-a-trace-01", {202}, ()),
            ("traceparent", "", {202}, ()),
        ),
    )
    headers = {**_binary_headers(eid), f"ce-{name}": value}
    return EventCase(
        f"binary-bad-{name}",
        headers,
        _DATA,
        frozenset(expect),
        says,
        ignored_traceparent=name == "traceparent",
    )


def _bad_authorization(draw: st.DrawFn, eid: str) -> EventCase:
    value = pick(draw, (NO_AUTH, "Basic dXNlcjpwYXNz", "Bearer", "bearer not-a-token", "Token x"))
    return _structured(
        f"authorization-{value.split(' ')[0] or 'missing'}",
        event(eid),
        {401},
        "token",
        authorization=value,
    )


def _bad_namespace(draw: st.DrawFn, eid: str) -> EventCase:
    namespace = pick(draw, ("UPPER", "under_score", "-leading", "trailing-", "n" * 64, "dots.in.name"))
    return _structured("path-bad-namespace", event(eid), {400}, "namespace", namespace=namespace)


def _is_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


BUILDERS: tuple[Builder, ...] = (
    _invalid_json,
    _not_an_object,
    _missing_attribute,
    _wrong_specversion,
    _too_long,
    _wrong_attribute_type,
    _bad_time,
    _bad_extension,
    _bad_traceparent,
    _deep_data,
    _huge,
    _wrong_content_type,
    _binary_missing,
    _binary_specversion,
    _binary_media,
    _binary_invalid_json,
    _binary_random_text,
    _binary_attribute,
    _bad_authorization,
    _bad_namespace,
)


def regressions() -> list[EventCase]:
    """Requests an earlier run of this fuzz saw answered wrongly, tried first on every run: JSON nested
    deeper than Python's parser recurses (a 500 from a RecursionError), and times that are not RFC 3339
    (a 400 whose message did not say which attribute was wrong)."""
    deep = json.dumps(event("regression-deep", data="$")).replace('"$"', "[" * 5000 + "]" * 5000)
    binary = {**_binary_headers("regression-binary-time"), "ce-time": "2026-02-30T00:00:00Z"}
    return [
        _structured("regression:data-nested-5000-deep", deep.encode(), {400}, "nested"),
        _structured("regression:time-yesterday", event("regression-time", time="yesterday"), {400}, "time"),
        EventCase("regression:binary-time-february-30", binary, _DATA, frozenset({400}), ("time",)),
    ]


@st.composite
def bad_events(draw: st.DrawFn, event_id: Callable[[], str]) -> EventCase:
    """One malformed request, its event (when it has one) with a fresh id from `event_id`."""
    builder: Builder = pick(draw, BUILDERS)
    return builder(draw, event_id())
