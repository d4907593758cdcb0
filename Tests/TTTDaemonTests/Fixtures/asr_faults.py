#!/usr/bin/env python3
"""asr_faults.py — a fault-injecting stand-in for an OpenAI-compatible speech recognition server.

A reverse proxy in front of a real one (scripts/asr-server): the next POST .../audio/transcriptions
requests are answered with the failures queued through POST /_faults, exactly as OpenAI or Groq
would answer them; the others are forwarded to the upstream. Python standard library only.

    asr_faults.py --upstream http://127.0.0.1:8090 [--listen 127.0.0.1:0] [--api-key KEY] [--watch-stdin]

Prints its base URL (http://127.0.0.1:PORT) on stdout once it listens. With --watch-stdin it exits
when its standard input reaches end of file: a test process keeps the write end of a pipe, so the
proxy cannot outlive it, however it ends. With --api-key, a transcription request whose
`Authorization` is not `Bearer KEY` is answered 401 invalid_api_key, the message quoting the key it
was given in full (as a careless server might: the client must not repeat it), and counted in
/_stats as kind "unauthorized".

Control endpoints:
  POST   /_faults   a JSON list: the faults for the next transcription requests, in order
                    (replaces the queue). Each entry is an object:
                      {"status": 500}                    OpenAI's server_error JSON body
                      {"status": 429, "retry_after": 1}  rate limit JSON body, `retry-after` header
                      {"status": 400}                    invalid_request_error (any 4xx/5xx works)
                      {"html": true}                     an HTML page (Cloudflare-like), status 200
                                                         unless "status" says otherwise
                      {"malformed": true}                200, application/json, truncated JSON
                      {"timeout_s": 2}                   no answer: the connection is reset after 2 s
                      {"reset": true}                    the connection is reset at once
                      {"forward": true}                  forwarded as usual (spaces out faults)
                      {"hold": true}                     forwarded once POST /_release is called
                                                         (at once if it was, since the last /_faults)
                    Any entry may add "delay_s": seconds to wait before acting.
  POST   /_release  lets the held requests through, and the holds still queued
  GET    /_faults   the faults still queued
  GET    /_stats    {"requests", "faults", "forwarded", "queued", "held" (waiting now), "by_kind": {...},
                     "log": [{"t", "done_t", "kind", "status"}]}  (t: seconds since the proxy started,
                     when the request arrived; done_t: when it was answered)
  DELETE /_stats    resets the counters and the log
Anything else is forwarded to the upstream unchanged (GET /health, /v1/models, ...).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

START = time.monotonic()

OPENAI_ERRORS = {
    400: ("Invalid file format. Supported formats: ['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', "
          "'oga', 'ogg', 'wav', 'webm']", "invalid_request_error", None),
    401: ("Incorrect API key provided: sk-****. You can find your API key at "
          "https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key"),
    404: ("The model `whisper-9` does not exist or you do not have access to it.",
          "invalid_request_error", "model_not_found"),
    413: ("Maximum content size limit (26214400) exceeded (26222387 bytes read)",
          "invalid_request_error", None),
    429: ("Rate limit reached for model `whisper-large-v3-turbo` in organization `org_01` on seconds "
          "of audio per hour (ASPH): Limit 7200, Used 7195, Requested 15. Please try again in {after}s. "
          "Need more tokens? Upgrade to Dev Tier today at https://console.groq.com/settings/billing",
          "seconds", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later", "server_error", "service_unavailable"),
}

HTML_PAGE = """<!DOCTYPE html>
<html lang="en-US">
<head><title>502 Bad Gateway | api.groq.com | Cloudflare</title>
<meta charset="UTF-8" /></head>
<body><div id="cf-wrapper"><h1>Bad gateway</h1>
<p>The web server reported a bad gateway error.</p>
<p>Cloudflare Ray ID: 8c1f2a3b4c5d6e7f</p></div></body>
</html>
"""


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queue: list[dict] = []
        self.released = threading.Event()
        self.held = 0
        self.reset_stats()

    def reset_stats(self) -> None:
        self.requests = 0
        self.faults = 0
        self.forwarded = 0
        self.by_kind: dict[str, int] = {}
        self.log: list[dict] = []

    def take(self) -> tuple[dict | None, dict]:
        """The fault for the next transcription request (None: forward), and its log entry."""
        with self.lock:
            self.requests += 1
            fault = self.queue.pop(0) if self.queue else None
            kind = kind_of(fault)
            if kind == "forward":
                self.forwarded += 1
            else:
                self.faults += 1
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
            entry = {"t": round(time.monotonic() - START, 3), "kind": kind, "status": None, "done_t": None}
            self.log.append(entry)
            return fault, entry

    def unauthorized(self) -> None:
        with self.lock:
            self.requests += 1
            self.faults += 1
            self.by_kind["unauthorized"] = self.by_kind.get("unauthorized", 0) + 1
            now = round(time.monotonic() - START, 3)
            self.log.append({"t": now, "kind": "unauthorized", "status": 401, "done_t": now})

    def done(self, entry: dict, status: int | None) -> None:
        with self.lock:
            entry["status"] = status
            entry["done_t"] = round(time.monotonic() - START, 3)

    def stats(self) -> dict:
        with self.lock:
            return {"requests": self.requests, "faults": self.faults, "forwarded": self.forwarded,
                    "queued": len(self.queue), "held": self.held, "by_kind": dict(self.by_kind),
                    "log": [dict(e) for e in self.log]}


def kind_of(fault: dict | None) -> str:
    if fault is None or fault.get("forward"):
        return "forward"
    if fault.get("hold"):
        return "hold"
    if fault.get("timeout_s") is not None:
        return "timeout"
    if fault.get("reset"):
        return "reset"
    if fault.get("html"):
        return "html"
    if fault.get("malformed"):
        return "malformed"
    return str(int(fault.get("status", 500)))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "asr-faults/1"
    server: "Proxy"

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        sys.stderr.write("asr_faults: %s\n" % (format % args))

    # ---- plumbing

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def send_json(self, status: int, obj, headers: dict[str, str] | None = None) -> None:
        self.send(status, json.dumps(obj).encode(), "application/json", headers)

    def reset_connection(self) -> None:
        """Closes the connection with a TCP reset, as a dead load balancer or a timeout would."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass

    # ---- routes

    def do_GET(self) -> None:
        if self.path == "/_stats":
            return self.send_json(200, self.server.state.stats())
        if self.path == "/_faults":
            with self.server.state.lock:
                return self.send_json(200, list(self.server.state.queue))
        self.forward(self.read_body())

    def do_DELETE(self) -> None:
        if self.path == "/_stats":
            self.read_body()
            with self.server.state.lock:
                self.server.state.reset_stats()
            return self.send_json(200, {"ok": True})
        self.forward(self.read_body())

    def do_POST(self) -> None:
        body = self.read_body()
        if self.path == "/_faults":
            try:
                faults = json.loads(body or b"[]")
                if not isinstance(faults, list) or not all(isinstance(f, dict) for f in faults):
                    raise ValueError("a JSON list of objects is expected")
            except ValueError as e:
                return self.send_json(400, {"error": {"message": str(e), "type": "invalid_request_error"}})
            with self.server.state.lock:
                self.server.state.queue = faults
                self.server.state.released = threading.Event()
            return self.send_json(200, {"queued": len(faults)})
        if self.path == "/_release":
            with self.server.state.lock:
                self.server.state.released.set()
            return self.send_json(200, {"ok": True})
        if not urllib.parse.urlsplit(self.path).path.endswith("/audio/transcriptions"):
            return self.forward(body)
        expected = self.server.api_key
        given = self.headers.get("Authorization", "")
        if expected is not None and given != f"Bearer {expected}":
            self.server.state.unauthorized()
            return self.send_json(401, {"error": {
                "message": f"Incorrect API key provided: {given.removeprefix('Bearer ')}. You can find your API key "
                           "at https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}})
        fault, entry = self.server.state.take()
        status = None
        try:
            if fault and fault.get("delay_s"):
                time.sleep(float(fault["delay_s"]))
            status = self.answer(fault, body)
        finally:
            self.server.state.done(entry, status)

    def answer(self, fault: dict | None, body: bytes) -> int | None:
        kind = kind_of(fault)
        if kind == "forward":
            return self.forward(body)
        assert fault is not None
        if kind == "hold":
            state = self.server.state
            with state.lock:
                released = state.released
                state.held += 1
            try:
                released.wait()
            finally:
                with state.lock:
                    state.held -= 1
            return self.forward(body)
        if kind == "timeout":
            time.sleep(float(fault["timeout_s"]))
            self.reset_connection()
            return None
        if kind == "reset":
            self.reset_connection()
            return None
        if kind == "html":
            status = int(fault.get("status", 200))
            self.send(status, HTML_PAGE.encode(), "text/html; charset=UTF-8",
                      {"cf-ray": "8c1f2a3b4c5d6e7f-CDG", "server": "cloudflare"})
            return status
        if kind == "malformed":
            self.send(200, b'{"text": " The quick brown fox jum', "application/json")
            return 200
        status = int(fault.get("status", 500))
        message, type_, code = OPENAI_ERRORS.get(status, (f"HTTP {status}", "server_error" if status >= 500
                                                          else "invalid_request_error", None))
        headers = {}
        if status == 429:
            after = fault.get("retry_after", 1)
            headers["retry-after"] = str(after)
            headers["x-ratelimit-reset-requests"] = f"{after}s"
            message = message.replace("{after}", str(after))
        self.send_json(status, {"error": {"message": message, "type": type_, "param": None, "code": code}},
                       headers)
        return status

    def forward(self, body: bytes) -> int | None:
        upstream = self.server.upstream
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "content-length", "transfer-encoding", "connection",
                                        "keep-alive", "expect")}
        headers["Content-Length"] = str(len(body))
        try:
            connection = http.client.HTTPConnection(upstream.hostname, upstream.port or 80, timeout=300)
            connection.request(self.command, upstream.path.rstrip("/") + self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            connection.close()
        except OSError as e:
            self.send_json(502, {"error": {"message": f"asr_faults: upstream unreachable: {e}",
                                           "type": "server_error"}})
            return 502
        passed = {k: v for k, v in response.getheaders()
                  if k.lower() in ("content-type", "retry-after")}
        self.send(response.status, data, passed.pop("Content-Type", passed.pop("content-type", "application/json")),
                  passed)
        return response.status


class Proxy(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, listen: tuple[str, int], upstream: str, api_key: str | None) -> None:
        super().__init__(listen, Handler)
        self.upstream = urllib.parse.urlsplit(upstream)
        self.api_key = api_key
        self.state = State()


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main() -> int:
    ap = argparse.ArgumentParser(description="fault-injecting proxy for an OpenAI-compatible ASR")
    ap.add_argument("--upstream", required=True, help="base URL of the real server, e.g. http://127.0.0.1:8090")
    ap.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 0))
    ap.add_argument("--api-key", help="answer 401 to transcription requests without this bearer key")
    ap.add_argument("--watch-stdin", action="store_true", help="exit when stdin reaches end of file")
    cfg = ap.parse_args()
    proxy = Proxy(cfg.listen, cfg.upstream, cfg.api_key)
    host, port = proxy.server_address[:2]
    if cfg.watch_stdin:
        def watch() -> None:
            while sys.stdin.buffer.read(4096):
                pass
            os._exit(0)
        threading.Thread(target=watch, daemon=True).start()
    print(f"http://{host}:{port}", flush=True)
    try:
        proxy.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
