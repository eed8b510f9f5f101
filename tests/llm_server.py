"""A scripted OpenAI-compatible chat server for tests (standard library only).

Why this exists: the assistant talks to LLMs through the official ``openai``
client over HTTP, but no real model can run in the test environment (no
internet, 2 CPUs).  This server is the *only* stand-in in the test suite: it
replaces the paid/remote LLM behind the very same HTTP interface
(``/v1/chat/completions``, ``/v1/models``), so the real client, its SSE
parser, error mapping, retries and timeouts are all exercised for real.

    with ScriptedLLMServer(responder=lambda req: "Paris [1]") as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k")
        ...
        assert "[1]" in server.last_request.body["messages"][-1]["content"]

A *responder* ``(request_json: dict) -> str | Reply`` decides each answer;
``server.script(Reply(status=500), "ok")`` queues replies that are used first,
in order (one per chat request), before falling back to the responder.

Golden transcripts of a real model (``tests/fixtures/llm/*.json``, recorded
from llama.cpp by ``python -m bench llm-prompts``) replay byte for byte:
``server.script(fixture_reply("refusal-plain-id"))`` streams the recorded SSE
events one by one, exactly as llama.cpp sent them, and answers a
non-streaming request with the completion they add up to.
"""
from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

# status -> (error type, error code), as in OpenAI's {"error": {...}} bodies.
_ERRORS = {400: ("invalid_request_error", "invalid_request"), 401: ("authentication_error", "invalid_api_key"),
           403: ("permission_error", "permission_denied"), 404: ("invalid_request_error", "not_found"),
           429: ("rate_limit_error", "rate_limit_exceeded"), 500: ("server_error", "internal_error"),
           503: ("server_error", "service_unavailable")}


@dataclass
class Reply:
    """One scripted answer. A plain ``str`` from a responder means ``Reply(text=...)``."""
    text: str = ""
    status: int = 200  # non-200 -> OpenAI-style error body
    delay: float = 0.0  # seconds before answering (slow/hung endpoint)
    chunk_delay: float = 0.0  # seconds between streamed events
    error_message: str = ""  # default: a generic message for the status
    headers: dict = field(default_factory=dict)  # extra response headers, e.g. {"retry-after-ms": "10"}
    finish_reason: str = "stop"
    sse: list[str] | None = None  # recorded "data: ..." lines, replayed verbatim instead of ``text``
    body: bytes | None = None  # a raw HTTP 200 body (e.g. a web page) instead of an API response
    content_type: str = "text/html; charset=utf-8"  # of ``body``
    cut_after: int | None = None  # stream this many events, then drop the connection (no end, no [DONE])

    def recorded_completion(self) -> tuple[str, str | None]:
        """The content and finish reason the recorded ``sse`` events add up to."""
        content, finish = [], None
        for line in self.sse or []:
            if not line.startswith("data: "):  # ":" keep-alive comments, sent while the prompt is read
                continue
            data = line.removeprefix("data: ")
            if data == "[DONE]":
                break
            for choice in json.loads(data).get("choices", []):
                content.append((choice.get("delta") or {}).get("content") or "")
                finish = choice.get("finish_reason") or finish
        return "".join(content), finish


FIXTURES = Path(__file__).parent / "fixtures" / "llm"


def load_fixture(name: str) -> dict:
    """A golden transcript: the question, the messages sent, the sources behind ``[n]`` and the raw SSE lines."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def fixture_reply(name: str, chunk_delay: float = 0.0) -> Reply:
    """The reply of a golden transcript, to script the server with."""
    return Reply(sse=load_fixture(name)["sse"], chunk_delay=chunk_delay)


@dataclass
class RecordedRequest:
    """What the client sent; header names are lower-cased, body is parsed JSON (or None)."""
    method: str
    path: str
    headers: dict
    body: Any


def echo_last_user(request: dict) -> str:
    """Default responder: echo the last user message."""
    users = [m for m in request.get("messages", []) if m.get("role") == "user"]
    content = users[-1].get("content", "") if users else ""
    return content if isinstance(content, str) else json.dumps(content)


class ScriptedLLMServer:
    """OpenAI-compatible chat server on 127.0.0.1:<free port>, served by a daemon thread."""

    def __init__(self, responder: Callable[[dict], str | Reply] | None = None, model: str = "test-model"):
        self.responder = responder or echo_last_user  # (request_json) -> str | Reply; reassign freely
        self.model = model
        self.requests: list[RecordedRequest] = []  # appended under self._lock
        self._queue: deque = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.llm = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> "ScriptedLLMServer":
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop promptly: wakes handlers sleeping in a delay (they drop their connection)."""
        self._closing.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    __enter__ = start

    def __exit__(self, *exc) -> None:
        self.close()

    def script(self, *replies: str | Reply) -> None:
        """Queue replies used in order, one per chat request, before the responder."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            return self.requests[-1]

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def _next_reply(self, body: dict) -> Reply:
        with self._lock:
            reply = self._queue.popleft() if self._queue else None
        reply = self.responder(body) if reply is None else reply
        return Reply(text=reply) if isinstance(reply, str) else reply

    def _sleep(self, seconds: float) -> bool:
        """Sleep, but wake up when the server closes; False means 'closing, give up'."""
        return not self._closing.wait(max(seconds, 0))


class _Handler(BaseHTTPRequestHandler):
    """Speaks just enough of the OpenAI HTTP API; ``self.server.llm`` is the ScriptedLLMServer."""

    protocol_version = "HTTP/1.1"  # keep-alive + chunked streaming, like real servers
    timeout = 30  # idle keep-alive connections do not linger forever
    disable_nagle_algorithm = True  # avoid 40 ms delayed-ACK stalls on small writes

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except ConnectionError:  # client hung up (timeout, closed stream): not our problem
            pass

    def _start(self, status: int, headers: dict) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, str(v))
        self.end_headers()

    def _send_json(self, status: int, obj: Any, headers: dict) -> None:
        data = json.dumps(obj).encode()
        self._start(status, {"Content-Type": "application/json", "Content-Length": len(data), **headers})
        self.wfile.write(data)

    def _send_error(self, status: int, message: str = "", headers: dict | None = None) -> None:
        etype, code = _ERRORS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
        error = {"message": message or f"Scripted error {status} ({etype})", "type": etype,
                 "param": None, "code": code}
        self._send_json(status, {"error": error}, headers or {})

    def _read_and_record(self) -> Any:
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        with self.server.llm._lock:
            self.server.llm.requests.append(RecordedRequest(self.command, self.path, headers, body))
        return body

    def do_GET(self) -> None:
        self._read_and_record()
        if self.path.rstrip("/") != "/v1/models":
            return self._send_error(404, f"Unknown path {self.path}")
        model = {"id": self.server.llm.model, "object": "model", "created": 0, "owned_by": "scripted"}
        self._send_json(200, {"object": "list", "data": [model]}, {})

    def do_POST(self) -> None:
        body = self._read_and_record()
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._send_error(404, f"Unknown path {self.path}")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._send_error(400, "Request body must be JSON with a 'messages' list")
        reply = self.server.llm._next_reply(body)
        if not self.server.llm._sleep(reply.delay):
            self.close_connection = True  # server closing: drop it like a dead endpoint
        elif reply.status != 200:
            self._send_error(reply.status, reply.error_message, reply.headers)
        elif reply.body is not None:
            self._start(200, {"Content-Type": reply.content_type, "Content-Length": len(reply.body), **reply.headers})
            self.wfile.write(reply.body)
        elif reply.sse is not None and body.get("stream"):
            self._replay(reply)
        elif reply.sse is not None:
            text, finish = reply.recorded_completion()
            self._complete(body, Reply(text=text, finish_reason=finish or "stop", headers=reply.headers))
        elif body.get("stream"):
            self._stream(body, reply)
        else:
            self._complete(body, reply)

    def _complete(self, body: dict, reply: Reply) -> None:
        message = {"role": "assistant", "content": reply.text}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
        self._send_json(200, {**self._base(body, "chat.completion"), "choices": [choice],
                              "usage": self._usage(body, reply)}, reply.headers)

    def _replay(self, reply: Reply) -> None:
        """The recorded SSE lines, one event per chunk, as the recorded server wrote them (``[DONE]`` included)."""
        self._start(200, {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked", **reply.headers})
        for i, line in enumerate(reply.sse):
            if i and not self.server.llm._sleep(reply.chunk_delay):
                self.close_connection = True
                return
            self._write_chunk(f"{line}\n\n".encode())
        self.wfile.write(b"0\r\n\r\n")

    def _usage(self, body: dict, reply: Reply) -> dict:
        prompt = sum(len(str(m.get("content") or "").split()) for m in body["messages"])
        completion = len(reply.text.split())  # crude "tokens": words
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _base(self, body: dict, obj: str) -> dict:
        return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": obj,
                "created": int(time.time()), "model": body.get("model") or self.server.llm.model}

    def _stream(self, body: dict, reply: Reply) -> None:
        """SSE over chunked encoding: role delta, word-sized content deltas, finish, [DONE]."""
        self._start(200, {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked", **reply.headers})
        base = self._base(body, "chat.completion.chunk")

        def chunk(delta: dict, finish: str | None = None) -> dict:
            return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": piece}) for piece in re.findall(r"\s*\S+|\s+", reply.text)]
        events.append(chunk({}, reply.finish_reason))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**base, "choices": [], "usage": self._usage(body, reply)})
        for i, event in enumerate(events):
            if i == reply.cut_after:
                self.close_connection = True  # the connection drops mid-answer
                return
            if i and not self.server.llm._sleep(reply.chunk_delay):
                self.close_connection = True  # server closing mid-stream: cut it off
                return
            self._write_chunk(f"data: {json.dumps(event)}\n\n".encode())
        self._write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

