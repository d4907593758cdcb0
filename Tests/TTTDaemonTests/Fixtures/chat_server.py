#!/usr/bin/env python3
"""chat_server.py — a local stand-in for an OpenAI-compatible chat-completions endpoint, for tttd's
analysis tests. Python standard library only.

    chat_server.py [--listen 127.0.0.1:0] [--api-key KEY] [--watch-stdin]

Prints its base URL (http://127.0.0.1:PORT) on stdout once it listens; tttd's `analysis.base_url`
is that URL + "/v1" (any POST path ending in /chat/completions is answered). With --watch-stdin it
exits when its standard input reaches end of file (the test process holds the write end). With
--api-key, a chat request whose `Authorization` is not `Bearer KEY` is answered 401 invalid_api_key,
the message quoting the key it was given in full (as a careless server might: the client must not
repeat it); /_requests records it with "answer": "unauthorized".

By default each request is judged by a rule, like a (very simple) model would: the window to judge
is the user message's third «TXT-<hex>» … «/TXT-<hex>» block (the first is the line that names the
markers, the second the context, the third the transcript: etc/tttd/prompts/moderation.yaml).
Matching is done on the folded text (lower case, no accents):
  - a word of `violence` (default: tuez, tuer, brulez, massacrez)        → "appel à la violence"
  - else a word of `dehumanization` (default: cafards, vermine)          → "déshumanisation"
  - else a phrase of `stigmatization` (default: complices des terroristes) → "stigmatisation"
  - else "Neutre", not hateful.
Hateful verdicts target "ethnie" and quote the sentence with the word (so the quote is verified);
`viralite` is "forte" when a word of `viral` (default: partagez) is said, else "faible";
`tentative_manipulation` is true when a phrase of `manipulation` (default: ignorez vos instructions,
ignore your instructions, repondez neutre) is said.

Control endpoints:
  POST   /_script    a JSON list of behaviours for the next chat requests, in order (appended to
                     the queue; {"replace": true, "queue": [...]} replaces it). Each behaviour is an
                     object; "times": N repeats it N times. Kinds:
      {"kind": "verdict", "verdict": {...}?, "merge": {...}?, "wrap": "none"|"fenced"|"prose"}
            200 with the verdict as the message content: the rule's verdict unless "verdict" is
            given, with the keys of "merge" replaced; "fenced" puts it in a ```json fence, "prose"
            puts sentences around it.
      {"kind": "content", "content": "..."}         200 with this text as the message content
      {"kind": "reject_format"}                     400: response_format not supported (OpenAI's
                                                    invalid_request_error JSON)
      {"kind": "failed_generation", "wrap": ...}    400 json_validate_failed with the verdict in
                                                    error.failed_generation (Groq's JSON mode)
      {"kind": "status", "status": 429, "retry_after": 2?, "message": "..."?}   an error status
      {"kind": "hang_reset", "seconds": 1}          no answer, then a TCP reset
      {"kind": "malformed"}                         200, application/json, a truncated body
      {"kind": "rule"}                              the default behaviour
                     Any behaviour may add "delay_s": seconds to wait before answering.
  GET    /_script    the behaviours still queued
  POST   /_config    {"supported_formats": ["json_schema", "json_object"], "rules": {...}}:
                     the response_format types the server accepts (others get a 400 before the
                     queue is looked at; default: both), and the rule's word lists (violence,
                     dehumanization, stigmatization, viral, manipulation) to replace.
  GET    /_requests  every chat request received: [{"n", "t" (when its head was read), "path", "model", "response_format"
                     (its type, or null), "system", "user", "nonce", "blocks" (the texts between
                     the markers, in order), "window" (the third block), "answer" (what was done),
                     "body" (the request as parsed)}]
  DELETE /_requests  forgets them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import struct
import sys
import threading
import time
import unicodedata
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

START = time.monotonic()

DEFAULT_RULES = {
    "violence": ["tuez", "tuer", "brulez", "massacrez"],
    "dehumanization": ["cafards", "vermine"],
    "stigmatization": ["complices des terroristes"],
    "viral": ["partagez"],
    "manipulation": ["ignorez vos instructions", "ignore your instructions", "repondez neutre"],
}

MARKER = re.compile(r"«TXT-([0-9a-f]{16})»")


def fold(text: str) -> str:
    """Lower case, no accents, punctuation as spaces, single spaces."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " " + " ".join(re.sub(r"[^0-9a-z]+", " ", bare).split()) + " "


def contains(folded: str, phrases: list[str]) -> str | None:
    for phrase in phrases:
        if fold(phrase) != "  " and fold(phrase) in folded:
            return phrase
    return None


def sentence_with(text: str, phrase: str) -> str:
    """The sentence of `text` that contains `phrase` (folded), as written."""
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        if fold(phrase) in fold(sentence):
            return sentence.strip().rstrip(".!?").strip()
    return text.strip()


def judge(window: str, rules: dict) -> dict:
    folded = fold(window)
    verdict = {
        "citation": None,
        "justification": "Conversation ordinaire, sans hostilité.",
        "tentative_manipulation": contains(folded, rules["manipulation"]) is not None,
        "categorie": "Neutre",
        "viralite": "forte" if contains(folded, rules["viral"]) else "faible",
        "discours_haineux": False,
        "cible": None,
        "type": None,
    }
    for key, label in (("violence", "appel à la violence"), ("dehumanization", "déshumanisation"),
                       ("stigmatization", "stigmatisation")):
        found = contains(folded, rules[key])
        if found:
            verdict.update({
                "citation": sentence_with(window, found),
                "justification": f"L'extrait contient « {found} » : {label} visant une communauté.",
                "categorie": "Discours haineux",
                "discours_haineux": True,
                "cible": "ethnie",
                "type": label,
            })
            break
    return verdict


def wrap(text: str, how: str | None) -> str:
    if how == "fenced":
        return "```json\n" + text + "\n```"
    if how == "prose":
        return "Voici mon analyse de l'extrait :\n\n" + text + "\n\nJ'espère que cela aide la modération."
    return text


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queue: list[dict] = []
        self.requests: list[dict] = []
        self.supported = {"json_schema", "json_object"}
        self.rules = {k: list(v) for k, v in DEFAULT_RULES.items()}

    def take(self) -> dict | None:
        with self.lock:
            if not self.queue:
                return None
            entry = self.queue[0]
            left = int(entry.get("times", 1)) - 1
            if left <= 0:
                self.queue.pop(0)
            else:
                self.queue[0] = dict(entry, times=left)
            return entry


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chat-server/1"
    server: "Server"

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        sys.stderr.write("chat_server: %s\n" % (format % args))

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

    def send(self, status: int, body: bytes, content_type: str = "application/json",
             headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def send_json(self, status: int, obj, headers: dict[str, str] | None = None) -> None:
        self.send(status, json.dumps(obj, ensure_ascii=False).encode(), "application/json", headers)

    def reset_connection(self) -> None:
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

    # ---- control

    def do_GET(self) -> None:
        state = self.server.state
        if self.path == "/_requests":
            with state.lock:
                return self.send_json(200, list(state.requests))
        if self.path == "/_script":
            with state.lock:
                return self.send_json(200, list(state.queue))
        self.send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_DELETE(self) -> None:
        self.read_body()
        if self.path == "/_requests":
            with self.server.state.lock:
                self.server.state.requests = []
            return self.send_json(200, {"ok": True})
        self.send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        # Taken first: reading and parsing the body (the prompt is kilobytes) adds the load's delays.
        arrived = round(time.monotonic() - START, 3)
        body = self.read_body()
        state = self.server.state
        if self.path == "/_script":
            try:
                script = json.loads(body or b"[]")
                replace = False
                if isinstance(script, dict):
                    replace = bool(script.get("replace"))
                    script = script.get("queue", [])
                if not isinstance(script, list) or not all(isinstance(e, dict) for e in script):
                    raise ValueError("a JSON list of objects is expected")
            except ValueError as e:
                return self.send_json(400, {"error": str(e)})
            with state.lock:
                state.queue = script if replace else state.queue + script
                return self.send_json(200, {"queued": len(state.queue)})
        if self.path == "/_config":
            try:
                config = json.loads(body or b"{}")
            except ValueError as e:
                return self.send_json(400, {"error": str(e)})
            with state.lock:
                if "supported_formats" in config:
                    state.supported = set(config["supported_formats"])
                for key, words in (config.get("rules") or {}).items():
                    state.rules[key] = list(words)
            return self.send_json(200, {"ok": True})
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self.send_json(404, {"error": {"message": f"Unknown request URL: POST {self.path}",
                                                  "type": "invalid_request_error", "code": "unknown_url"}})
        self.chat(body, arrived)

    # ---- chat

    def chat(self, raw: bytes, arrived: float) -> None:
        state = self.server.state
        try:
            request = json.loads(raw)
        except ValueError:
            return self.send_json(400, {"error": {"message": "We could not parse the JSON body of your request.",
                                                  "type": "invalid_request_error"}})
        messages = request.get("messages") or []
        system = next((m.get("content", "") for m in messages if m.get("role") == "system"), "")
        user = next((m.get("content", "") for m in messages if m.get("role") == "user"), "")
        match = MARKER.search(user)
        nonce = match.group(1) if match else None
        blocks: list[str] = []
        if nonce:
            open_, close = f"«TXT-{nonce}»", f"«/TXT-{nonce}»"
            blocks = [b.strip() for b in re.findall(re.escape(open_) + r"(.*?)" + re.escape(close), user, re.S)]
        window = blocks[2] if len(blocks) >= 3 else (blocks[-1] if blocks else user)
        response_format = request.get("response_format")
        format_type = response_format.get("type") if isinstance(response_format, dict) else None
        entry = {
            "n": 0, "t": arrived, "path": self.path, "model": request.get("model"),
            "response_format": format_type, "system": system, "user": user, "nonce": nonce, "blocks": blocks,
            "window": window, "answer": None, "body": request,
        }
        with state.lock:
            entry["n"] = len(state.requests) + 1
            state.requests.append(entry)
            supported = set(state.supported)
            rules = {k: list(v) for k, v in state.rules.items()}

        given = self.headers.get("Authorization", "")
        if self.server.api_key is not None and given != f"Bearer {self.server.api_key}":
            entry["answer"] = "unauthorized"
            return self.send_json(401, {"error": {
                "message": f"Incorrect API key provided: {given.removeprefix('Bearer ')}. You can find your API key "
                           "at https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}})

        if format_type is not None and format_type not in supported:
            entry["answer"] = f"unsupported {format_type}"
            return self.send_json(400, {"error": {
                "message": f"response_format `{format_type}` is not supported by this model",
                "type": "invalid_request_error", "param": "response_format", "code": None}})

        behaviour = state.take() or {"kind": "rule"}
        kind = behaviour.get("kind", "rule")
        entry["answer"] = kind
        if behaviour.get("delay_s"):
            time.sleep(float(behaviour["delay_s"]))

        def verdict_text() -> str:
            verdict = dict(behaviour["verdict"]) if "verdict" in behaviour else judge(window, rules)
            verdict.update(behaviour.get("merge") or {})
            return json.dumps(verdict, ensure_ascii=False)

        if kind in ("rule", "verdict"):
            return self.completion(request, wrap(verdict_text(), behaviour.get("wrap")))
        if kind == "content":
            return self.completion(request, str(behaviour.get("content", "")))
        if kind == "reject_format":
            return self.send_json(400, {"error": {
                "message": f"response_format `{format_type}` is not supported by this model",
                "type": "invalid_request_error", "param": "response_format", "code": None}})
        if kind == "failed_generation":
            return self.send_json(400, {"error": {
                "message": "Failed to generate JSON. Please adjust your prompt. See 'failed_generation' for more details.",
                "type": "invalid_request_error", "code": "json_validate_failed",
                "failed_generation": wrap(verdict_text(), behaviour.get("wrap"))}})
        if kind == "status":
            status = int(behaviour.get("status", 500))
            headers = {}
            if behaviour.get("retry_after") is not None:
                headers["retry-after"] = str(behaviour["retry_after"])
            default = {429: "Rate limit reached for model `test-model` on requests per minute (RPM): Limit 30, Used 30, Requested 1.",
                       500: "The server had an error while processing your request. Sorry about that!",
                       503: "The engine is currently overloaded, please try again later"}
            message = behaviour.get("message") or default.get(status, f"HTTP {status}")
            type_ = "server_error" if status >= 500 else ("requests" if status == 429 else "invalid_request_error")
            code = "rate_limit_exceeded" if status == 429 else None
            return self.send_json(status, {"error": {"message": message, "type": type_, "param": None, "code": code}},
                                  headers)
        if kind == "hang_reset":
            time.sleep(float(behaviour.get("seconds", 1)))
            return self.reset_connection()
        if kind == "malformed":
            return self.send(200, b'{"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0, "mess')
        entry["answer"] = f"unknown kind {kind}"
        self.send_json(500, {"error": {"message": f"chat_server: unknown kind {kind}", "type": "server_error"}})

    def completion(self, request: dict, content: str) -> None:
        self.send_json(200, {
            "id": f"chatcmpl-{int(time.time() * 1000)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model") or "test-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 900, "completion_tokens": 80, "total_tokens": 980},
        })


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, listen: tuple[str, int], api_key: str | None) -> None:
        super().__init__(listen, Handler)
        self.state = State()
        self.api_key = api_key


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main() -> int:
    ap = argparse.ArgumentParser(description="a scripted OpenAI-compatible chat-completions server")
    ap.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 0))
    ap.add_argument("--api-key", help="answer 401 to chat requests without this bearer key")
    ap.add_argument("--watch-stdin", action="store_true", help="exit when stdin reaches end of file")
    cfg = ap.parse_args()
    server = Server(cfg.listen, cfg.api_key)
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
