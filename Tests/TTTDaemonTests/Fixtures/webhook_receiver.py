#!/usr/bin/env python3
"""webhook_receiver.py — a Standard Webhooks receiver (standardwebhooks.com) for tttd's delivery
tests: it verifies each request's signature and keeps what it received. Python standard library only.

    webhook_receiver.py --secret whsec_BASE64 [--listen 127.0.0.1:0] [--fail-first N]
                        [--fail-status 500] [--watch-stdin]

Prints its base URL (http://127.0.0.1:PORT) on stdout once it listens. With --watch-stdin it exits
when its standard input reaches end of file (the test process holds the write end). `--listen`
with a fixed port lets a test start it again where a previous one listened.

Every POST (any path but the control ones) is a delivery. It is checked as the specification says:
the headers webhook-id, webhook-timestamp and webhook-signature are present; the signature list
(space-separated "v1,<base64>") holds the base64 HMAC-SHA256 of "{id}.{timestamp}.{body}" keyed
with the base64-decoded part of the whsec_ secret; the timestamp is within 5 minutes of now. The
first N deliveries (--fail-first) are answered --fail-status; then a verified delivery gets 204 and
one that fails verification 401. A delivery told to hang (POST /_config {"hang_first": N}) is
recorded, then never answered: the receiver waits until the sender closes the connection.

Control endpoints:
  GET    /_deliveries  [{"n", "t", "path", "id", "timestamp", "signature", "signature_ok",
                         "timestamp_ok", "content_type", "status" (what was answered), "body" (the
                         text), "event" (the body parsed as JSON, or null)}]
  POST   /_config      {"fail_first": N, "fail_status": 500, "hang_first": N}: fail (or leave without
                       an answer) the next N deliveries
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

START = time.monotonic()
TOLERANCE_S = 300


class State:
    def __init__(self, key: bytes, fail_first: int, fail_status: int) -> None:
        self.lock = threading.Lock()
        self.key = key
        self.fail_left = fail_first
        self.fail_status = fail_status
        self.hang_left = 0
        self.deliveries: list[dict] = []


def signature_ok(key: bytes, msg_id: str, timestamp: str, body: bytes, header: str) -> bool:
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in header.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "webhook-receiver/1"
    server: "Server"

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        sys.stderr.write("webhook_receiver: %s\n" % (format % args))

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(self, status: int, obj) -> None:
        body = json.dumps(obj, ensure_ascii=False).encode() if obj is not None else b""
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass

    def do_GET(self) -> None:
        if self.path == "/_deliveries":
            with self.server.state.lock:
                return self.send_json(200, list(self.server.state.deliveries))
        self.send_json(404, {"error": "not found"})

    def do_POST(self) -> None:
        body = self.read_body()
        state = self.server.state
        if self.path == "/_config":
            config = json.loads(body or b"{}")
            with state.lock:
                if "fail_first" in config:
                    state.fail_left = int(config["fail_first"])
                if "fail_status" in config:
                    state.fail_status = int(config["fail_status"])
                if "hang_first" in config:
                    state.hang_left = int(config["hang_first"])
            return self.send_json(200, {"ok": True})

        msg_id = self.headers.get("webhook-id", "")
        timestamp = self.headers.get("webhook-timestamp", "")
        signature = self.headers.get("webhook-signature", "")
        ok = bool(msg_id and timestamp and signature) and signature_ok(state.key, msg_id, timestamp, body, signature)
        try:
            timestamp_ok = abs(time.time() - int(timestamp)) <= TOLERANCE_S
        except ValueError:
            timestamp_ok = False
        try:
            event = json.loads(body)
        except ValueError:
            event = None
        with state.lock:
            if state.hang_left > 0:
                state.hang_left -= 1
                status = None
            elif state.fail_left > 0:
                state.fail_left -= 1
                status = state.fail_status
            else:
                status = 204 if ok and timestamp_ok else 401
            state.deliveries.append({
                "n": len(state.deliveries) + 1, "t": round(time.monotonic() - START, 3), "path": self.path,
                "id": msg_id, "timestamp": timestamp, "signature": signature, "signature_ok": ok,
                "timestamp_ok": timestamp_ok, "content_type": self.headers.get("content-type"),
                "status": status, "body": body.decode("utf-8", "replace"), "event": event,
            })
        if status is None:
            # No answer: wait for the sender to give up or die (its end of the connection closes).
            self.close_connection = True
            try:
                while self.connection.recv(4096):
                    pass
            except OSError:
                pass
            return
        if status == 204:
            return self.send_json(204, None)
        if status == 401:
            return self.send_json(401, {"error": "invalid signature"})
        self.send_json(status, {"error": "the receiver is failing on purpose"})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, listen: tuple[str, int], state: State) -> None:
        super().__init__(listen, Handler)
        self.state = state


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main() -> int:
    ap = argparse.ArgumentParser(description="a signature-verifying Standard Webhooks receiver")
    ap.add_argument("--secret", required=True, help="whsec_ followed by base64")
    ap.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 0))
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--fail-status", type=int, default=500)
    ap.add_argument("--watch-stdin", action="store_true", help="exit when stdin reaches end of file")
    cfg = ap.parse_args()
    secret = cfg.secret[len("whsec_"):] if cfg.secret.startswith("whsec_") else cfg.secret
    server = Server(cfg.listen, State(base64.b64decode(secret), cfg.fail_first, cfg.fail_status))
    host, port = server.server_address[:2]
    if cfg.watch_stdin:
        def watch() -> None:
            while sys.stdin.buffer.read(4096):
                pass
            os._exit(0)
        threading.Thread(target=watch, daemon=True).start()
    print(f"http://{host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
