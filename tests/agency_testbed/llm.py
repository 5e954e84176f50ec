"""A scripted, OpenAI-compatible LLM server, so litellm's real HTTP path runs in tests and in the demo.

Tests script each *conversation* with turns (see ``agency_testbed.llm_script``) and the server answers
``POST /v1/chat/completions`` with them, one turn per request, in OpenAI's wire format, streamed or not.

Which conversation a request belongs to: the ``X-Scripted-Conversation`` header if sent, else the request's
``model``. litellm sends the model name without its provider prefix, so ``model="openai/triage"`` with
``api_base=llm.base_url`` is conversation ``triage``. The model name is the key because it is what an Agent
already configures and litellm passes it through unchanged; the API key is not used (clients and logs treat it
as a secret) and litellm's ``user`` field is not always forwarded. Concurrent runs that share a model name
share its script, so give each concurrently running agent its own model name (or the header).

In-process (pytest)::

    with ScriptedLLM() as llm:
        llm.script("triage", [
            reply(tool_calls=[call("get_pod", {"name": "x"})], usage=(100, 20)), reply("ok")
        ])
        litellm.completion(model="openai/triage", api_base=llm.base_url, api_key="x", messages=[...])
        llm.requests("triage")  # the JSON bodies the model was sent

As its own process (for a runtime in another process, or ``make demo``)::

    PYTHONPATH=tests python -m agency_testbed.llm --port 0 --script demo.yaml --url-file /tmp/llm.url

prints its base URL (``http://127.0.0.1:PORT/v1``) and serves until SIGTERM/SIGINT. Tests in another process
script it and read what it was sent over HTTP (``agency_testbed.llm_client.ScriptedLLMClient``):

- ``POST /_script`` ``{"conversation": name, "turns": [...], "repeat_last": bool, "loop": bool}`` or
  ``{"conversations": {name: script}}``: (re)script conversations; each starts afresh (cursor and records);
- ``GET /_requests?conversation=name``: the recorded requests (body, headers minus credentials, turn, status);
- ``GET /_status``: per conversation, turns scripted, requests served, turns remaining;
- ``POST /_reset``: forget every script and record;
- ``GET /v1/models`` (the scripted conversations) and ``GET /healthz``.

Errors the server makes on its own are loud: an unknown conversation is a 404 ``model_not_found`` naming the
scripted ones; an exhausted script is a 500 ``script_exhausted`` naming the conversation.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import logging
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from agency_testbed.llm_script import (
    Error,
    JsonDict,
    Reply,
    Script,
    Turn,
    load_scripts,
    script,
    script_from_json,
    scripts_from_json,
)
from agency_testbed.llm_wire import (
    Envelope,
    completion_body,
    error_body,
    estimate_usage,
    retry_after_headers,
    sse_event,
    stream_chunks,
)

log = logging.getLogger("agency_testbed.llm")

CONVERSATION_HEADER = "X-Scripted-Conversation"
_HIDDEN_HEADERS = frozenset({"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie"})


def key_fingerprint(key: str) -> str:
    """What the server records of an API key: enough to tell which key came, never the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _credential(headers: Mapping[str, str]) -> str:
    for name in ("authorization", "api-key", "x-api-key"):
        value = headers.get(name, "")
        if value:
            return key_fingerprint(value.removeprefix("Bearer ").strip())
    return ""


@dataclass(frozen=True)
class RecordedRequest:
    """One chat-completion request as the server saw it, with how it was answered."""

    conversation: str
    path: str
    headers: dict[str, str]
    """Lower-cased names; credentials (Authorization, api keys, cookies) are never recorded."""
    body: JsonDict
    turn: int | None
    """Index of the scripted turn that answered, ``None`` when none could (unknown or exhausted)."""
    status: int
    received: float
    """When it arrived, on the server's monotonic clock: compare two requests of one server (retry gaps)."""
    credential: str = ""
    """`key_fingerprint` of the API key the request carried ("" for none): which key, never its value."""

    def to_json(self) -> JsonDict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecordedRequest:
        return cls(
            conversation=str(data["conversation"]),
            path=str(data["path"]),
            headers=dict(data["headers"]),
            body=dict(data["body"]),
            turn=data["turn"],
            status=int(data["status"]),
            received=float(data["received"]),
            credential=str(data.get("credential", "")),
        )


@dataclass(frozen=True)
class _Pick:
    """The turn chosen for a request; without one (``index`` None) the turn is the server's own error."""

    index: int | None
    turn: Turn


class ScriptBook:
    """The scripts, how far each conversation has got, and what was sent: shared by the handler threads."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._scripts: dict[str, Script] = {}
        self._served: dict[str, int] = {}
        self._records: dict[str, list[RecordedRequest]] = {}
        self._sequence = 0

    def set(self, conversation: str, value: Script) -> None:
        """Script a conversation; it starts afresh, forgetting its cursor and records."""
        with self._changed:
            self._scripts[conversation] = value
            self._served[conversation] = 0
            self._records[conversation] = []

    def reset(self) -> None:
        with self._changed:
            self._scripts.clear()
            self._served.clear()
            self._records.clear()

    def next_sequence(self) -> int:
        """A server-wide counter for response and tool-call ids, so ids never repeat within a server."""
        with self._changed:
            self._sequence += 1
            return self._sequence

    def pick(self, conversation: str) -> _Pick:
        """Take the conversation's next turn (one per request, errors included, so retries advance it)."""
        with self._changed:
            value = self._scripts.get(conversation)
            if value is None:
                known = ", ".join(sorted(self._scripts)) or "none"
                message = (
                    f"scripted LLM: no script for conversation {conversation!r} (scripted: {known}); "
                    f"the conversation is the request's model name or the {CONVERSATION_HEADER} header"
                )
                return _Pick(None, Error(status=404, message=message, code="model_not_found"))
            served = self._served[conversation]
            self._served[conversation] = served + 1
            count = len(value.turns)
            if served < count:
                return _Pick(served, value.turns[served])
            if value.loop:
                return _Pick(served % count, value.turns[served % count])
            if value.repeat_last:
                return _Pick(count - 1, value.turns[-1])
            message = (
                f"scripted LLM: the script for conversation {conversation!r} is exhausted: it has {count} "
                f"turn(s) and this is request {served + 1}; script more turns, or repeat_last/loop"
            )
            return _Pick(None, Error(status=500, message=message, code="script_exhausted"))

    def record(self, entry: RecordedRequest) -> None:
        with self._changed:
            self._records.setdefault(entry.conversation, []).append(entry)
            self._changed.notify_all()

    def records(self, conversation: str) -> list[RecordedRequest]:
        with self._changed:
            return list(self._records.get(conversation, ()))

    def all_records(self) -> dict[str, list[RecordedRequest]]:
        with self._changed:
            return {name: list(entries) for name, entries in self._records.items()}

    def wait_for(self, conversation: str, count: int, timeout: float) -> list[RecordedRequest]:
        """The conversation's records once there are at least ``count``; TimeoutError naming what came."""
        with self._changed:
            arrived = self._changed.wait_for(
                lambda: len(self._records.get(conversation, ())) >= count, timeout
            )
            entries = list(self._records.get(conversation, ()))
        if not arrived:
            raise TimeoutError(
                f"conversation {conversation!r}: {len(entries)} request(s) after {timeout}s, expected {count}"
            )
        return entries

    def status(self) -> dict[str, JsonDict]:
        with self._changed:
            return {
                name: {
                    "turns": len(value.turns),
                    "requests": self._served[name],
                    "remaining": max(0, len(value.turns) - self._served[name]),
                    "repeat_last": value.repeat_last,
                    "loop": value.loop,
                }
                for name, value in self._scripts.items()
            }

    def conversations(self) -> list[str]:
        with self._changed:
            return sorted(self._scripts)


class _Server(ThreadingHTTPServer):
    """Tracks its connections so ``stop()`` can end idle keep-alive connections and join every thread."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], book: ScriptBook) -> None:
        self.book = book
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (a timeout test, a stopped server) is not the server's error.
        if isinstance(sys.exc_info()[1], ConnectionError | OSError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: chat requests are logged by ``_chat`` without headers, everything else is noise."""

    # --- routing ------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/healthz":
            self._send_json(200, {"status": "ok"})
        elif url.path in ("/v1/models", "/models"):
            models = [
                {"id": name, "object": "model", "created": 0, "owned_by": "agency-testbed"}
                for name in self.server.book.conversations()
            ]
            self._send_json(200, {"object": "list", "data": models})
        elif url.path == "/_requests":
            if "conversation" in query:
                entries = self.server.book.records(query["conversation"][0])
                self._send_json(200, [entry.to_json() for entry in entries])
            else:
                everything = self.server.book.all_records()
                self._send_json(
                    200, {name: [e.to_json() for e in entries] for name, entries in everything.items()}
                )
        elif url.path == "/_status":
            self._send_json(200, self.server.book.status())
        else:
            self._send_json(404, error_body(404, f"scripted LLM: no route GET {url.path}"))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        try:
            body = self._read_json()
        except ValueError as exc:
            self._send_json(
                400, error_body(400, f"scripted LLM: the request body is not a JSON object: {exc}")
            )
            return
        if path in ("/v1/chat/completions", "/chat/completions"):
            self._chat(path, body)
        elif path == "/_script":
            self._set_script(body)
        elif path == "/_reset":
            self.server.book.reset()
            self._send_json(200, {"reset": True})
        else:
            self._send_json(404, error_body(404, f"scripted LLM: no route POST {path}"))

    # --- control ------------------------------------------------------------------------------------------

    def _set_script(self, body: JsonDict) -> None:
        try:
            if "conversations" in body:
                scripts = scripts_from_json(body)
            else:
                rest = {k: v for k, v in body.items() if k != "conversation"}
                scripts = {str(body["conversation"]): script_from_json(rest)}
        except (KeyError, ValueError, TypeError) as exc:
            self._send_json(400, error_body(400, f"scripted LLM: bad script: {exc!r}"))
            return
        for name, value in scripts.items():
            self.server.book.set(name, value)
        self._send_json(200, {"scripted": sorted(scripts)})

    # --- chat completions ---------------------------------------------------------------------------------

    def _chat(self, path: str, body: JsonDict) -> None:
        received = time.monotonic()
        book = self.server.book
        conversation = self.headers.get(CONVERSATION_HEADER) or body.get("model")
        if not isinstance(conversation, str) or not conversation:
            message = f"scripted LLM: the request names no model (nor a {CONVERSATION_HEADER} header)"
            self._send_json(400, error_body(400, message))
            return
        picked = book.pick(conversation)
        answer = self._resolve(picked.turn, body)
        status = answer.status if isinstance(answer, Error) else 200
        sent = {k.lower(): v for k, v in self.headers.items()}
        headers = {k: v for k, v in sent.items() if k not in _HIDDEN_HEADERS}
        credential = _credential(sent)
        book.record(
            RecordedRequest(conversation, path, headers, body, picked.index, status, received, credential)
        )
        stream = bool(body.get("stream"))
        log.info("conversation=%s turn=%s status=%s stream=%s", conversation, picked.index, status, stream)
        if answer.delay and self.server.stopping.wait(answer.delay):
            self.close_connection = True
            return
        if isinstance(answer, Error):
            self._send_error_turn(answer, conversation, picked.index)
            return
        sequence = book.next_sequence()
        model = str(body.get("model", conversation))
        call_ids = [c.id or f"call_{sequence:06d}_{i}" for i, c in enumerate(answer.tool_calls)]
        usage = answer.usage or estimate_usage(body, answer)
        envelope = Envelope(f"chatcmpl-{sequence:06d}", model, int(time.time()), call_ids, usage)
        if stream:
            options = body.get("stream_options") or {}
            include_usage = bool(options.get("include_usage")) if isinstance(options, dict) else False
            self._send_stream(stream_chunks(answer, envelope, include_usage=include_usage))
        else:
            self._send_json(200, completion_body(answer, envelope))

    @staticmethod
    def _resolve(turn: Turn, body: JsonDict) -> Reply | Error:
        if isinstance(turn, Reply | Error):
            return turn
        try:
            answer = turn(body)
        except Exception:
            return Error(
                status=500, message=f"scripted LLM: the scripted callable raised:\n{traceback.format_exc()}"
            )
        if not isinstance(answer, Reply | Error):
            message = (
                f"scripted LLM: the scripted callable returned {type(answer).__name__}, not a Reply or Error"
            )
            return Error(status=500, message=message)
        return answer

    def _send_error_turn(self, answer: Error, conversation: str, index: int | None) -> None:
        where = f"conversation {conversation!r}, turn {index}"
        message = answer.message or f"scripted LLM: scripted {answer.status} error ({where})"
        headers = retry_after_headers(answer.retry_after) if answer.retry_after is not None else {}
        self._send_json(
            answer.status, error_body(answer.status, message, type=answer.type, code=answer.code), headers
        )

    # --- writing ------------------------------------------------------------------------------------------

    def _read_json(self) -> JsonDict:
        length = int(self.headers.get("Content-Length") or 0)
        data = json.loads(self.rfile.read(length) or b"{}")
        if not isinstance(data, dict):
            raise ValueError(f"got {type(data).__name__}")
        return data

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_{self.server.book.next_sequence():06d}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, chunks: Sequence[JsonDict]) -> None:
        """Server-sent events in HTTP/1.1 chunked encoding, one HTTP chunk per event, then ``[DONE]``."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in [*(sse_event(c) for c in chunks), sse_event("[DONE]")]:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


ScriptLike = Script | Sequence[Turn]


def as_script(value: ScriptLike, *, repeat_last: bool = False, loop: bool = False) -> Script:
    """A Script from a Script or a list of turns (the flags apply to a list only)."""
    if isinstance(value, Script):
        if repeat_last or loop:
            raise ValueError("pass repeat_last/loop to script(...), or a list of turns here")
        return value
    return script(value, repeat_last=repeat_last, loop=loop)


class ScriptedLLM:
    """The scripted server in a background thread of this process; a context manager.

    ``base_url`` (``http://127.0.0.1:PORT/v1``) is what litellm takes as ``api_base``.
    """

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, scripts: Mapping[str, ScriptLike] | None = None
    ) -> None:
        self._book = ScriptBook()
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        for name, value in (scripts or {}).items():
            self.script(name, value)

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("the scripted LLM server is already running")
        self._server = _Server(self._address, self._book)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="scripted-llm",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end open connections (and pending delays), and join every server thread."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the scripted LLM server is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The server's root, where the control endpoints (``/_script``, ``/_requests``) live."""
        return f"http://{self._address[0]}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, for litellm's ``api_base`` or ``OPENAI_BASE_URL``."""
        return f"{self.url}/v1"

    # --- scripting and inspection -------------------------------------------------------------------------

    def script(
        self, conversation: str, turns: ScriptLike, *, repeat_last: bool = False, loop: bool = False
    ) -> None:
        """Script a conversation (the model name litellm sends); it starts afresh, records included."""
        self._book.set(conversation, as_script(turns, repeat_last=repeat_last, loop=loop))

    def reset(self) -> None:
        """Forget every script and record."""
        self._book.reset()

    def requests(self, conversation: str) -> list[JsonDict]:
        """The JSON bodies of the conversation's requests, in arrival order."""
        return [entry.body for entry in self._book.records(conversation)]

    def recorded(self, conversation: str) -> list[RecordedRequest]:
        """The conversation's requests with headers (no credentials), answering turn and status."""
        return self._book.records(conversation)

    def wait_for_requests(self, conversation: str, count: int, timeout: float = 10.0) -> list[JsonDict]:
        """Block until the conversation has ``count`` requests (for a client in another thread or process)."""
        return [entry.body for entry in self._book.wait_for(conversation, count, timeout)]

    def remaining(self, conversation: str) -> int:
        """Turns not yet served in the conversation's first pass: 0 means the script was used up."""
        status = self._book.status()
        if conversation not in status:
            raise KeyError(f"conversation {conversation!r} is not scripted (scripted: {sorted(status)})")
        return int(status[conversation]["remaining"])


# --- as a process -----------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m agency_testbed.llm", description="Serve a scripted OpenAI-compatible LLM."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--script", type=Path, help="a .json or .yaml file with 'conversations'")
    parser.add_argument("--url-file", type=Path, help="also write the base URL here, once serving")
    parser.add_argument("--quiet", action="store_true", help="do not log each chat request to stderr")
    return parser.parse_args(argv)


@contextlib.contextmanager
def _until_signalled() -> Iterator[threading.Event]:
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; print the base URL on stdout (and write it to ``--url-file``)."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    scripts = load_scripts(args.script) if args.script else {}
    with _until_signalled() as stop, ScriptedLLM(host=args.host, port=args.port, scripts=scripts) as llm:
        print(llm.base_url, flush=True)
        if args.url_file:
            partial = args.url_file.with_name(args.url_file.name + ".partial")
            partial.write_text(llm.base_url + "\n", encoding="utf-8")
            partial.replace(args.url_file)  # atomic: a reader never sees half a URL
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
