"""Timings of the local ASR server's models: load time and the transcription time of a 15 s window
(English for tiny.en, French for base), with the server's settings (beam 5, no conditioning on
previous text, VAD filter, temperature 0).

    .run/asr-venv/bin/python scripts/asr/bench.py [--threads N] [--runs 3]

Speech is made with espeak-ng and ffmpeg. Results go to stdout, one line per model.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import asr_server  # noqa: E402

TEXT = {
    "en": "Good evening everybody and welcome to the live. Tonight we are talking about football, "
          "music and the news of the week. Thank you all for being here, and please stay polite "
          "in the comments so that everybody can enjoy the show.",
    "fr": "Bonjour tout le monde, merci d'être venus ce soir. Nous allons parler de la famille, "
          "du travail et de la musique. Restez polis dans les commentaires, s'il vous plaît, "
          "pour que tout le monde profite de l'émission.",
}


def window(d: Path, lang: str, seconds: float = 15.0) -> Path:
    raw, out = d / f"{lang}.raw.wav", d / f"{lang}.wav"
    subprocess.run(["espeak-ng", "-v", lang, "-w", str(raw), TEXT[lang]], check=True)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-stream_loop", "-1",
                    "-i", str(raw), "-t", str(seconds), "-ar", "16000", "-ac", "1",
                    "-c:a", "pcm_s16le", str(out)], check=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--models", default="tiny.en,base")
    args = ap.parse_args()
    from faster_whisper.audio import decode_audio

    print(f"# {os.cpu_count()} cores, {args.threads} threads, load average "
          f"{os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name in args.models.split(","):
            lang = "en" if name == "tiny.en" else "fr"
            audio = decode_audio(str(window(d, lang)))
            models = asr_server.Models(name, asr_server.DEFAULT_CACHE, "cpu", "int8", args.threads)
            t = time.monotonic()
            m = models.get(name)
            load = time.monotonic() - t
            times, text, info = [], "", None
            for _ in range(args.runs):
                t = time.monotonic()
                segs, info = m.model.transcribe(audio, beam_size=5, temperature=0.0,
                                                condition_on_previous_text=False, vad_filter=True)
                text = "".join(s.text for s in segs).strip()
                times.append(time.monotonic() - t)
            dur = len(audio) / 16000
            print(f"{name}: load {load:.2f}s; {dur:.1f}s window ({lang}): "
                  f"min {min(times):.2f}s median {sorted(times)[len(times) // 2]:.2f}s "
                  f"({min(times) / dur:.3f} of real time); language {info.language} "
                  f"(p={info.language_probability:.2f}); {text[:90]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
