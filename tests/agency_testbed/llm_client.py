"""Drive a scripted LLM server that runs in another process: over HTTP, or by starting that process.

A test whose agent runtime is a separate process can still use an in-process ``ScriptedLLM`` (the runtime
reaches it over 127.0.0.1). This module is for when the *server* is elsewhere: ``make demo``, or a test of
the ``python -m agency_testbed.llm`` entry point. ``ScriptedLLMClient`` mirrors ``ScriptedLLM``'s scripting
and inspection methods, through ``POST /_script`` and ``GET /_requests``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from agency_testbed.llm import RecordedRequest, ScriptLike, as_script
from agency_testbed.llm_script import JsonDict, Script, script_to_json

_TESTS_DIR = Path(__file__).resolve().parents[1]


class ScriptedLLMClient:
    """Scripts and inspects a scripted LLM server by URL (its root or its ``/v1`` base URL)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        root = url.rstrip("/")
        self.url = root.removesuffix("/v1")
        self.timeout = timeout

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=self.timeout)
        response.raise_for_status()
        return response.json()

    def _post(self, path: str, payload: JsonDict) -> Any:
        response = httpx.post(f"{self.url}{path}", json=payload, timeout=self.timeout)
        if response.status_code >= 400:
            raise ValueError(f"scripted LLM refused {path}: {response.status_code} {response.text}")
        return response.json()

    def healthy(self) -> bool:
        try:
            return bool(self._get("/healthz")["status"] == "ok")
        except httpx.HTTPError:
            return False

    def script(
        self, conversation: str, turns: ScriptLike, *, repeat_last: bool = False, loop: bool = False
    ) -> None:
        """Script a conversation; callables cannot travel, so turns must be replies and errors."""
        value = as_script(turns, repeat_last=repeat_last, loop=loop)
        self._post("/_script", {"conversation": conversation, **script_to_json(value)})

    def script_all(self, scripts: Mapping[str, Script]) -> None:
        self._post("/_script", {"conversations": {name: script_to_json(v) for name, v in scripts.items()}})

    def reset(self) -> None:
        self._post("/_reset", {})

    def recorded(self, conversation: str) -> list[RecordedRequest]:
        entries = self._get("/_requests", {"conversation": conversation})
        return [RecordedRequest.from_json(entry) for entry in entries]

    def requests(self, conversation: str) -> list[JsonDict]:
        return [entry.body for entry in self.recorded(conversation)]

    def status(self) -> dict[str, JsonDict]:
        result: dict[str, JsonDict] = self._get("/_status")
        return result

    def remaining(self, conversation: str) -> int:
        return int(self.status()[conversation]["remaining"])

    def wait_for_requests(self, conversation: str, count: int, timeout: float = 10.0) -> list[JsonDict]:
        """Poll until the conversation has ``count`` requests; TimeoutError naming how many came."""
        deadline = time.monotonic() + timeout
        while True:
            bodies = self.requests(conversation)
            if len(bodies) >= count:
                return bodies
            if time.monotonic() >= deadline:
                got = f"{len(bodies)} request(s) after {timeout}s, expected {count}"
                raise TimeoutError(f"conversation {conversation!r}: {got}")
            time.sleep(0.05)


class ScriptedLLMProcess:
    """``python -m agency_testbed.llm`` as a child process; a context manager yielding itself.

    Waits for the server to write its URL, and reports the server's stderr if it dies before.
    """

    def __init__(
        self,
        *,
        script_file: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 20.0,
    ) -> None:
        self._args = ["--host", host, "--port", str(port)]
        if script_file is not None:
            self._args += ["--script", str(script_file)]
        self._startup_timeout = startup_timeout
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._client: ScriptedLLMClient | None = None

    @property
    def client(self) -> ScriptedLLMClient:
        if self._client is None:
            raise RuntimeError("the scripted LLM process is not running")
        return self._client

    @property
    def base_url(self) -> str:
        return self.client.base_url

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the scripted LLM process is not running")
        return self._process.pid

    def start(self) -> Self:
        self._tmp = tempfile.TemporaryDirectory(prefix="scripted-llm-")
        workdir = Path(self._tmp.name)
        url_file = workdir / "url"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_TESTS_DIR), env.get("PYTHONPATH")]))
        with (workdir / "stderr").open("wb") as stderr:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "agency_testbed.llm", *self._args, "--url-file", str(url_file)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
            )
        deadline = time.monotonic() + self._startup_timeout
        while not url_file.exists():
            if self._process.poll() is not None or time.monotonic() >= deadline:
                output = (workdir / "stderr").read_text(errors="replace")[-4000:]
                self.stop()
                raise RuntimeError(f"the scripted LLM process did not start; its stderr:\n{output}")
            time.sleep(0.05)
        self._client = ScriptedLLMClient(url_file.read_text(encoding="utf-8").strip())
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; removes the process's scratch folder."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self._client = None

    def stderr(self) -> str:
        """What the server logged so far (one line per chat request, no headers)."""
        if self._tmp is None:
            return ""
        return (Path(self._tmp.name) / "stderr").read_text(errors="replace")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
