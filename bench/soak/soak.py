#!/usr/bin/env python3
"""soak.py — tttd for hours against tttsim, with lives starting and ending and faults injected
(bench/soak/run drives it).

    soak.py audio --out DIR [--block-silence S]  the speech files + DIR/audio.json
    soak.py run … --out FILE.json                the soak itself
    soak.py report [--png FILE] [--doc docs/performance.md] [--note TEXT] RESULT.json

Audio. Three English files made with espeak-ng (en-us, 150 words/min, 16 kHz mono; the sentences of
bench/pipelines, each synthesised alone and trimmed): blocks of five sentences (0.6–1.0 s pauses,
about 20 s of speech) separated by BLOCK_SILENCE s (45) of digital silence, so that a live is mostly
pauses and the local ASR (tiny.en, two shared cores) keeps up with many lives: the ASR's work grows
with the lives' speech, tttd's with the lives themselves (120 s of silence gives 20 lives the
speech of 10 at 45 s). A and B: four benign blocks; H: three
blocks, the middle one holding two hateful test sentences (dehumanisation, a call to violence) that
the chat server's rule judges hateful.

Run. One private database; tttsim with 3 × LIVES accounts (tttd watches them all); scripts/asr-server
(tiny.en) behind Tests/TTTDaemonTests/Fixtures/asr_faults.py (a proxy that injects ASR failures on
request); Tests/TTTDaemonTests/Fixtures/chat_server.py (OpenAI chat completions, judging by word
lists set to the hateful sentences' English words); webhook_receiver.py (Standard Webhooks, checks
signatures) for alert, live_started, live_ended and pipeline_failed; scripts/smtp-sink for alert
e-mails (unless --no-smtp); a release tttd (READY=1 awaited on our NOTIFY_SOCKET) on all of them.

Lives: about LIVES at once for MINUTES minutes (ramped up over the first minute), each lasting
LIVE_MIN–LIVE_MAX s (uniform) on an account that has rested 2 min since its last live; an ended
live is replaced at once; every third live plays H, the others A or B, looped. Every 0.5 s the
driver reads tttsim's GET /_sim/lives: when each live's first stream client (tttd's ffmpeg)
connected. Faults, every FAULT_EVERY s from FAULT_EVERY on until 2 min before the end, two at a
time: one on tttsim (a 429 storm, challenge pages, dropped streams, delays, a rate-limiting WAF,
empty answers and connection resets, in turn) and one elsewhere (ASR errors and hangs through the
proxy, chat errors, the webhook receiver failing, or SIGKILL to one of tttd's ffmpegs, in turn).

Samples, every SAMPLE_EVERY s: tttd's VmRSS and Threads (/proc/PID/status), open fds
(/proc/PID/fd), its children (ffmpeg, zombies), orphan ffmpegs (an ffmpeg whose command line holds
our tttsim's address and whose parent is not tttd; checked every 5 s), tttsim's and the ASR
server's RSS, the load average, and the database: lives and pipelines open, windows by kind,
skipped windows by reason, analyses by status and pending, alerts, deliveries by state.

End: the lives are ended; the driver waits (up to 10 min) for tttd to end them, stop every
pipeline, judge every pending window and deliver every delivery; one last sample; SIGTERM to tttd
(SIGKILL after 60 s, systemd's TimeoutStopSec; a tttd still there after 40 s has its stacks written
by gdb first; a stopping pipeline records the windows it could not transcribe as skipped); orphans are counted when it has exited and 2 s later. Then, per live (matched by room id): detected
or not; its windows tile the timeline (seq 0, 1, …; each starts where the previous ended; the first
at 0); skipped windows have a reason; the timeline's end against the audio streamed to it
((DELETE − first connection) + 0.9 s, tttsim sending 0.8–1 s ahead), allowed 3 s + 2 s per
capture (each reconnection starts again 1 s ahead). Alerts: each has its event, a delivery per
channel that receives alerts, delivered, and the receiver got it (webhook-id / Message-ID
tttd_evt_<event id>). Growth, per series: median of the last 30 minutes ÷ median of minutes 10–20
− 1 (a run shorter than 50 minutes: the last quarter against the second fifth), goal ≤ 5 %
(threads, a count near ten: ≤ 5 % or at most one more).

Standard library only (matplotlib for the plot, when importable); psql for the queries; helpers
from bench/pipelines/bench.py.
"""
import argparse
import base64
import datetime
import importlib.util
import json
import os
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from performance_doc import replace_section  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(ROOT, "Tests", "TTTDaemonTests", "Fixtures")

_spec = importlib.util.spec_from_file_location("pipelines_bench", os.path.join(ROOT, "bench", "pipelines", "bench.py"))
pb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pb)

RATE = pb.RATE
HATEFUL = [
    "The people from the other village are cockroaches and vermin.",
    "Go out tonight and kill them all, and share this video everywhere.",
]
# The chat server's rule (its defaults are French): these words make a window hateful.
RULES = {"violence": ["kill them"], "dehumanization": ["cockroaches", "vermin"],
         "stigmatization": ["accomplices of the terrorists"], "viral": ["share this"],
         "manipulation": ["ignore your instructions"]}
SENTENCE_PAUSES = [0.7, 1.0, 0.6, 0.9, 0.8]
REST_S = 120.0
RAMP_S = 60.0
DRAIN_S = 600.0


def log(*parts):
    print("bench/soak:", *parts, file=sys.stderr, flush=True)


# --- audio ---------------------------------------------------------------------------------------

def synthesise(sentence, tmp):
    """One sentence from espeak-ng at 16 kHz mono, trimmed to its first and last sample above −50 dBFS."""
    raw, pcm = os.path.join(tmp, "raw.wav"), os.path.join(tmp, "pcm.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", raw, sentence], check=True)
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", raw, "-ac", "1",
                    "-ar", str(RATE), "-c:a", "pcm_s16le", pcm], check=True)
    samples = pb.read_pcm(pcm)
    limit = int(32768 * 10 ** (pb.SPEECH_DBFS / 20))
    loud = [k for k, x in enumerate(samples) if abs(x) > limit]
    return samples[loud[0]:loud[-1] + 1]


def make_audio(out, block_silence_s=45.0):
    a, b = pb.SENTENCES["A"], pb.SENTENCES["B"]
    files = {
        "A": [a[0:5], a[5:10], a[10:15], a[15:20]],
        "B": [b[0:5], b[5:10], b[10:15], b[15:20]],
        "H": [a[20:25], [a[25], HATEFUL[0], a[26], HATEFUL[1]], b[20:25]],
    }
    os.makedirs(out, exist_ok=True)
    meta = {"files": {}}
    for name, blocks in files.items():
        samples, speech = [], 0.0
        for block in blocks:
            for i, sentence in enumerate(block):
                s = synthesise(sentence, out)
                samples.extend(s)
                speech += len(s) / RATE
                if i < len(block) - 1:
                    samples.extend([0] * int(SENTENCE_PAUSES[i % len(SENTENCE_PAUSES)] * RATE))
            samples.extend([0] * int(block_silence_s * RATE))
        path = os.path.join(out, f"{name}.wav")
        pb.write_pcm(path, samples)
        duration = len(samples) / RATE
        meta["files"][name] = {"path": os.path.abspath(path), "duration_s": duration, "speech_s": speech,
                               "speech_share": speech / duration, "hateful": name == "H"}
        log(f"audio {name}: {duration:.0f} s, speech {speech:.0f} s ({speech / duration:.0%})")
    for leftover in ("raw.wav", "pcm.wav"):
        if os.path.exists(os.path.join(out, leftover)):
            os.unlink(os.path.join(out, leftover))
    with open(os.path.join(out, "audio.json"), "w") as f:
        json.dump(meta, f, indent=1)


# --- /proc ---------------------------------------------------------------------------------------

def status_fields(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "Threads"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def fd_kinds(pid):
    """Open fds by kind: socket, pipe, anon_inode:[eventfd] …, file."""
    kinds = {}
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return kinds
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        kind = "file" if target.startswith("/") else re.sub(r":\[?[0-9]+\]?$", "", target)
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def scan_processes(tttd_pid, marker):
    """tttd's children (ffmpeg, zombies, others) and the ffmpegs of this soak (their command line
    holds `marker`, tttsim's address) whose parent is not tttd: the orphans."""
    out = {"ffmpeg": 0, "zombies": 0, "zombie_pids": [], "other_children": 0, "orphans": []}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
        except OSError:
            continue
        comm = text[text.find("(") + 1:text.rfind(")")]
        fields = text.rsplit(")", 1)[1].split()
        state, ppid = fields[0], int(fields[1])
        if ppid == tttd_pid and tttd_pid:
            if state == "Z":
                out["zombies"] += 1
                out["zombie_pids"].append(int(entry))
            elif comm == "ffmpeg":
                out["ffmpeg"] += 1
            else:
                out["other_children"] += 1
        elif comm == "ffmpeg" and state != "Z" and marker in cmdline(entry):
            out["orphans"].append({"pid": int(entry), "ppid": ppid, "cmd": cmdline(entry)[:200]})
    return out


# --- the soak ------------------------------------------------------------------------------------

class Service:
    """A helper process whose log (stdout and stderr) names its URL; its stdin is a lifeline."""

    def __init__(self, procs, name, args, pattern, work, timeout=120, lifeline=True):
        self.log_path = os.path.join(work, f"{name}.log")
        self.proc = procs.start(args, stdin=subprocess.PIPE if lifeline else subprocess.DEVNULL,
                                stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log_path, errors="replace") as f:
                m = re.search(pattern, f.read())
            if m:
                self.url = m.group(1)
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start (exit {self.proc.poll()}); see {self.log_path}")
            time.sleep(0.2)


class Lives:
    """Keeps about `target` lives going in tttsim, each for a random time, and watches when tttd's
    ffmpeg first connects to each."""

    def __init__(self, soak, accounts, target, live_min, live_max, seed):
        self.soak, self.target = soak, target
        self.live_min, self.live_max = live_min, live_max
        self.random = random.Random(seed)
        self.rested = {f"sim{i}": 0.0 for i in range(accounts)}    # username → usable from (epoch)
        self.active, self.done = {}, []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.started_at = None
        self.count = 0
        self.errors = []
        self.audio = soak.meta["files"]

    def start_one(self, now):
        idle = [u for u, t in self.rested.items() if t <= now and u not in self.active]
        if not idle:
            return False
        user = self.random.choice(idle)
        name = "H" if self.count % 3 == 2 else "AB"[self.count % 3]
        self.count += 1
        before = time.time()
        status, body = pb.http("POST", self.soak.sim + "/_sim/lives",
                               {"username": user, "title": f"soak {self.count}", "audio": self.audio[name]["path"],
                                "loop": True}, timeout=60)
        if status != 201:
            self.errors.append(f"POST /_sim/lives {user}: {status} {str(body)[:200]}")
            return False
        live = {"username": user, "file": name, "room_id": body["room_id"], "stream_id": body["stream_id"],
                "posted": (before + time.time()) / 2,
                "end_at": time.time() + self.random.uniform(self.live_min, self.live_max),
                "first_connect": None, "client_drops": 0, "clients": 0}
        with self.lock:
            self.active[user] = live
        return True

    def end_one(self, live):
        before = time.time()
        status, body = pb.http("DELETE", self.soak.sim + "/_sim/lives/" + live["username"], timeout=30)
        if status != 200:
            self.errors.append(f"DELETE /_sim/lives/{live['username']}: {status} {str(body)[:200]}")
        live["deleted"] = (before + time.time()) / 2
        with self.lock:
            del self.active[live["username"]]
            self.done.append(live)
        self.rested[live["username"]] = time.time() + REST_S

    def poll(self):
        sent = time.time()
        try:
            status, lives = pb.http("GET", self.soak.sim + "/_sim/lives", timeout=5)
        except OSError:
            return
        now = (sent + time.time()) / 2
        if status != 200:
            return
        clients = {str(l["room_id"]): l["stream_clients"] for l in lives}
        with self.lock:
            for live in self.active.values():
                n = clients.get(str(live["room_id"]), 0)
                if n > 0 and live["first_connect"] is None:
                    live["first_connect"] = now - 0.25
                if n == 0 and live["clients"] > 0:
                    live["client_drops"] += 1
                live["clients"] = n

    def run(self, until):
        self.started_at = time.time()
        while not self.stopping.is_set() and time.time() < until:
            now = time.time()
            self.poll()
            with self.lock:
                due = [l for l in self.active.values() if l["end_at"] <= now]
            for live in due:
                self.end_one(live)
            want = self.target if now - self.started_at >= RAMP_S else \
                max(1, int(self.target * (now - self.started_at) / RAMP_S))
            while len(self.active) < want and now < until:
                if not self.start_one(now):
                    break
            self.stopping.wait(0.5)
        for live in list(self.active.values()):
            self.end_one(live)

    def sim_count(self):
        with self.lock:
            return len(self.active)


TIKTOK_FAULTS = [
    ("429 storm", [{"kind": "http_status", "status": 429, "retry_after": 5, "probability": 0.9, "duration_s": 60}]),
    ("challenge pages", [{"kind": "html_waf", "probability": 0.5, "duration_s": 45}]),
    ("drop_stream", [{"kind": "drop_stream", "probability": 0.3, "duration_s": 5}]),
    ("delays", [{"kind": "delay", "ms": 2500, "probability": 0.5, "duration_s": 90}]),
    ("rate WAF", [{"kind": "rate_waf", "max": 30, "window_s": 10, "penalty_s": 30, "duration_s": 90}]),
    ("empty answers + resets", [{"kind": "empty_200", "probability": 0.2, "duration_s": 60},
                                {"kind": "reset", "probability": 0.2, "duration_s": 60}]),
]
OTHER_FAULTS = ["ASR hiccups", "chat hiccups", "webhook receiver failing", "ffmpeg kill -9"]


class Soak:
    def __init__(self, a):
        self.a = a
        self.work = a.work
        self.meta = json.load(open(a.audio))
        self.procs = pb.Procs()
        self.bin = {b: os.path.join(a.bin, b) for b in ("tttd", "tttctl", "tttsim")}
        psql = os.path.join(a.pg_bindir, "psql")
        pb.SQL(psql, pb.with_database(a.pg_url, "postgres")).run("DROP DATABASE IF EXISTS soak")
        pb.SQL(psql, pb.with_database(a.pg_url, "postgres")).run("CREATE DATABASE soak")
        self.db_url = pb.with_database(a.pg_url, "soak")
        self.db = pb.SQL(psql, self.db_url)
        self.accounts = max(3 * a.lives, a.lives + 5)
        self.samples, self.faults, self.orphans_seen = [], [], {}
        # tttd reaps its children by polling: a zombie is a leak only when it stays one.
        self.zombie_since, self.zombies_stuck = {}, {}
        self.t0 = None
        self.tttd = None
        self.random = random.Random(a.seed)

    # -- set-up

    def start_services(self):
        w = self.work
        self.sim_proc = Service(self.procs, "tttsim", [self.bin["tttsim"], "--listen", "127.0.0.1:0", "--accounts",
                                                        str(self.accounts + 3), "--seed", str(self.a.seed)],
                                r"listening on (http://[0-9.]+:[0-9]+)", w, lifeline=False)
        self.sim = self.sim_proc.url
        self.marker = self.sim.split("//", 1)[1]
        asr_args = [os.path.join(ROOT, "scripts", "asr-server"), "--listen", "127.0.0.1:0", "--model",
                    self.a.asr_model] + self.a.asr_args.split()
        self.asr = Service(self.procs, "asr-server", asr_args, r"listening on (http://[0-9.]+:[0-9]+)", w,
                           timeout=600, lifeline=False)
        self.asr_proxy = Service(self.procs, "asr-faults", [sys.executable, os.path.join(FIXTURES, "asr_faults.py"),
                                                            "--upstream", self.asr.url, "--watch-stdin"],
                                 r"(http://[0-9.]+:[0-9]+)", w)
        self.chat = Service(self.procs, "chat-server", [sys.executable, os.path.join(FIXTURES, "chat_server.py"),
                                                        "--watch-stdin"], r"(http://[0-9.]+:[0-9]+)", w)
        status, body = pb.http("POST", self.chat.url + "/_config", {"rules": RULES})
        if status != 200:
            raise RuntimeError(f"chat server /_config: {status} {body}")
        self.webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.hook = Service(self.procs, "webhook-receiver", [sys.executable, os.path.join(FIXTURES, "webhook_receiver.py"),
                                                             "--secret", self.webhook_secret, "--watch-stdin"],
                            r"(http://[0-9.]+:[0-9]+)", w)
        self.smtp = None
        if self.a.smtp:
            self.maildir = os.path.join(w, "mail")
            os.makedirs(self.maildir, exist_ok=True)
            self.smtp = Service(self.procs, "smtp-sink", [os.path.join(ROOT, "scripts", "smtp-sink"), "--listen",
                                                          "127.0.0.1:0", "--maildir", self.maildir, "--tls", "none",
                                                          "--exit-on-stdin-eof"],
                                r"listening on ([0-9.]+:[0-9]+)", w)

    def warm_sim(self):
        """tttsim encodes each file on its first live: done on accounts tttd does not watch."""
        for i, name in enumerate(sorted(self.meta["files"])):
            user = f"sim{self.accounts + i}"
            status, body = pb.http("POST", self.sim + "/_sim/lives",
                                   {"username": user, "audio": self.meta["files"][name]["path"], "loop": True}, timeout=120)
            if status != 201:
                raise RuntimeError(f"POST /_sim/lives {user}: {status} {body}")
            pb.http("DELETE", self.sim + "/_sim/lives/" + user)

    def start_tttd(self):
        w = self.work
        self.socket_path = os.path.join(w, "control.sock")
        creds = os.path.join(w, "credentials")
        os.makedirs(creds, mode=0o700, exist_ok=True)
        with open(os.path.join(creds, "webhook_secret_soak"), "w") as f:
            f.write(self.webhook_secret)
        email = ""
        if self.smtp:
            email = f"""  email:
    smtp_url: "smtp://{self.smtp.url}?tls=none"
    from: tttd@soak.test
    to: [moderation@soak.test]
    events: [alert]
"""
        config = os.path.join(w, "tttd.yaml")
        with open(config, "w") as f:
            f.write(f"""database:
  url: "{self.db_url}"
control:
  socket: "{self.socket_path}"
tiktok:
  web_url: {self.sim}
  webcast_url: {self.sim}
  requests_per_second: 20
  concurrency: 8
detection:
  interval: 5s
  offline_confirmations: 2
  live_recheck: 5s
  lease: 60s
transcription:
  enabled: true
  base_url: {self.asr_proxy.url}/v1
  model: {self.a.asr_model}
  language: en
  window: {self.a.window}
  max_pipelines: {self.a.lives + 10}
analysis:
  enabled: true
  base_url: {self.chat.url}/v1
  model: test-model
  prompt: "{os.path.join(ROOT, 'etc', 'tttd', 'prompts', 'moderation.yaml')}"
  requests_per_minute: 300
alerts:
  cooldown: 1m
{email}  webhooks:
    - name: soak
      url: {self.hook.url}/hook
      events: [alert, live_started, live_ended, pipeline_failed]
evidence:
  directory: "{w}/evidence"
log:
  level: info
""")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TTTD_") and k != "TTTCTL_SOCKET"}
        env["STATE_DIRECTORY"] = os.path.join(w, "state")
        env["CREDENTIALS_DIRECTORY"] = creds
        os.makedirs(env["STATE_DIRECTORY"], exist_ok=True)
        self.notify = pb.Notify(os.path.join(w, "notify.sock"))
        env["NOTIFY_SOCKET"] = self.notify.path
        self.tttd_log = os.path.join(w, "tttd.log")
        self.tttd = self.procs.start([self.bin["tttd"], "--config", config], env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=open(self.tttd_log, "w"))
        deadline = time.monotonic() + 120
        while not self.notify.ready.wait(0.2):
            if self.tttd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tttd did not become ready (exit {self.tttd.poll()}); see {self.tttd_log}")
        names = os.path.join(w, "accounts.txt")
        with open(names, "w") as f:
            f.write("".join(f"sim{i}\n" for i in range(self.accounts)))
        out = subprocess.run([self.bin["tttctl"], "accounts", "import", names, "--socket", self.socket_path],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"tttctl accounts import: {out.stderr.strip()}")

    # -- sampling

    def db_figures(self):
        rows = self.db.json("""
            SELECT (SELECT count(*) FROM lives WHERE status = 'live') AS lives_open,
                   (SELECT count(*) FROM lives) AS lives,
                   (SELECT count(*) FROM pipelines WHERE ended_at IS NULL) AS pipelines_open,
                   (SELECT count(*) FROM transcripts) AS windows,
                   (SELECT count(*) FROM transcripts WHERE NOT silent AND NOT skipped) AS voiced,
                   (SELECT count(*) FROM transcripts WHERE skipped) AS skipped,
                   (SELECT coalesce(json_object_agg(reason, n), '{}') FROM
                        (SELECT coalesce(left(reason, 100), '(none)') AS reason, count(*) AS n FROM transcripts
                         WHERE skipped GROUP BY 1) r) AS skipped_by_reason,
                   (SELECT count(*) FROM transcripts WHERE analysis_state = 'pending') AS analysis_pending,
                   (SELECT coalesce(json_object_agg(status, n), '{}') FROM
                        (SELECT status, count(*) AS n FROM analyses GROUP BY 1) s) AS analyses,
                   (SELECT count(*) FROM alerts) AS alerts,
                   (SELECT coalesce(json_object_agg(state, n), '{}') FROM
                        (SELECT state, count(*) AS n FROM deliveries GROUP BY 1) d) AS deliveries""")
        return rows[0]

    def stop_tttd(self):
        """SIGTERM; a tttd still there after 40 s has its threads' stacks written (gdb) before it
        exits on its own stop deadline (50 s) or is killed (60 s, systemd's TimeoutStopSec).
        Returns (exit status, the stacks' file or None)."""
        p, stacks = self.tttd, None
        if p.poll() is not None:
            return p.returncode, None
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(40)
        except subprocess.TimeoutExpired:
            stacks = os.path.join(self.work, "tttd-stuck-stacks.txt")
            with open(stacks, "w") as f:
                subprocess.run(["gdb", "-p", str(p.pid), "-batch", "-ex", "thread apply all bt"],
                               stdout=f, stderr=subprocess.STDOUT, timeout=15)
            log(f"tttd had not exited 40 s after SIGTERM; its stacks: {stacks}")
            try:
                p.wait(max(1, 60 - 40 - 15))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode, stacks

    def sample(self, lives, final=False):
        pid = self.tttd.pid if self.tttd and self.tttd.poll() is None else 0
        st = status_fields(pid) if pid else {}
        procs = scan_processes(pid, self.marker)
        self.watch(procs)
        s = {"t_min": (time.time() - self.t0) / 60, "final": final,
             "rss_mb": st.get("VmRSS", 0) / 1024, "threads": st.get("Threads"), "fds": fd_count(pid) if pid else None,
             "fd_kinds": fd_kinds(pid) if pid else {},
             "ffmpeg": procs["ffmpeg"], "zombies": procs["zombies"], "other_children": procs["other_children"],
             "orphans": len(procs["orphans"]), "sim_lives": lives.sim_count() if lives else 0,
             "tttsim_rss_mb": status_fields(self.sim_proc.proc.pid).get("VmRSS", 0) / 1024,
             "asr_rss_mb": status_fields(self.asr.proc.pid).get("VmRSS", 0) / 1024,
             "load1": float(open("/proc/loadavg").read().split()[0])}
        try:
            s["db"] = self.db_figures()
        except RuntimeError as e:
            s["db"] = {"error": str(e)[:200]}
        self.samples.append(s)
        return s

    def watch(self, procs):
        """Orphans seen, and zombies that stayed unreaped for 10 s or more."""
        now = time.time()
        for o in procs["orphans"]:
            self.orphans_seen.setdefault(o["pid"], o)
        self.zombie_since = {pid: self.zombie_since.get(pid, now) for pid in procs["zombie_pids"]}
        for pid, since in self.zombie_since.items():
            if now - since >= 10:
                self.zombies_stuck[pid] = now - since

    def sampler(self, lives, stop):
        next_sample = time.time()
        while not stop.is_set():
            if time.time() >= next_sample:
                s = self.sample(lives)
                log(f"t={s['t_min']:5.1f} min: RSS {s['rss_mb']:.1f} MB, fds {s['fds']}, threads {s['threads']}, "
                    f"ffmpeg {s['ffmpeg']}, orphans {s['orphans']}, lives {s['sim_lives']} (tttd "
                    f"{s['db'].get('lives_open')}), windows {s['db'].get('windows')}, alerts {s['db'].get('alerts')}, "
                    f"load {s['load1']}")
                next_sample += self.a.sample_every
            else:
                self.watch(scan_processes(self.tttd.pid, self.marker))
            stop.wait(min(5.0, max(0.1, next_sample - time.time())))

    # -- faults

    def inject(self, round_no):
        t = (time.time() - self.t0) / 60
        name, specs = TIKTOK_FAULTS[(round_no - 1) % len(TIKTOK_FAULTS)]
        for spec in specs:
            status, body = pb.http("POST", self.sim + "/_sim/faults", spec)
            if status not in (200, 201):
                log(f"POST /_sim/faults {spec}: {status} {body}")
        self.faults.append({"t_min": t, "where": "tttsim", "kind": name, "spec": specs})
        other = OTHER_FAULTS[(round_no - 1) % len(OTHER_FAULTS)]
        detail = None
        if other == "ASR hiccups":
            queue = [{"status": 500}, {"forward": True}, {"status": 429, "retry_after": 2}, {"forward": True},
                     {"timeout_s": 3}, {"forward": True}, {"reset": True}, {"forward": True}, {"html": True},
                     {"forward": True}, {"status": 503}, {"delay_s": 5, "forward": True}]
            detail = pb.http("POST", self.asr_proxy.url + "/_faults", queue)
        elif other == "chat hiccups":
            script = [{"kind": "status", "status": 429, "retry_after": 2}, {"kind": "status", "status": 500},
                      {"kind": "hang_reset", "seconds": 2}, {"kind": "status", "status": 503},
                      {"kind": "malformed"}]
            detail = pb.http("POST", self.chat.url + "/_script", script)
        elif other == "webhook receiver failing":
            detail = pb.http("POST", self.hook.url + "/_config", {"fail_first": 4, "fail_status": 503})
        else:
            children = [int(e) for e in os.listdir("/proc") if e.isdigit() and self._ffmpeg_child(int(e))]
            if children:
                victim = self.random.choice(children)
                try:
                    os.kill(victim, signal.SIGKILL)
                    detail = f"SIGKILL to ffmpeg {victim} (one of {len(children)})"
                except ProcessLookupError:
                    detail = f"ffmpeg {victim} had already ended"
            else:
                detail = "no ffmpeg running"
        self.faults.append({"t_min": t, "where": "other", "kind": other, "detail": str(detail)[:200]})
        log(f"t={t:5.1f} min: faults {name} + {other}")

    def _ffmpeg_child(self, pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                text = f.read()
        except OSError:
            return False
        fields = text.rsplit(")", 1)[1].split()
        return text[text.find("(") + 1:text.rfind(")")] == "ffmpeg" and int(fields[1]) == self.tttd.pid \
            and fields[0] != "Z"

    def faulter(self, until, stop):
        round_no = 0
        while True:
            round_no += 1
            at = self.t0 + round_no * self.a.fault_every
            if at > until - 120 or stop.wait(max(0.0, at - time.time())):
                return
            try:
                self.inject(round_no)
            except (OSError, RuntimeError) as e:
                log(f"fault round {round_no}: {e}")

    # -- the end

    def drained(self):
        rows = self.db.json("""
            SELECT (SELECT count(*) FROM lives WHERE status = 'live') AS lives_open,
                   (SELECT count(*) FROM pipelines WHERE ended_at IS NULL) AS pipelines_open,
                   (SELECT count(*) FROM transcripts WHERE analysis_state = 'pending') AS analysis_pending,
                   (SELECT count(*) FROM deliveries WHERE state = 'pending') AS deliveries_pending""")[0]
        return rows, all(v == 0 for v in rows.values())

    def collect(self, lives):
        db = self.db
        by_room = {str(r["room_id"]): r for r in db.json(
            "SELECT id, username, room_id, status, extract(epoch FROM started_at) AS started, "
            "extract(epoch FROM ended_at) AS ended FROM lives")}
        windows = {}
        for w in db.json("SELECT live_id, seq, start_s, end_s, silent, skipped, filtered, reason, analysis_state "
                         "FROM transcripts ORDER BY live_id, seq"):
            windows.setdefault(w["live_id"], []).append(w)
        states = {}
        for e in db.json("SELECT live_id, payload->>'state' AS state, count(*) AS n FROM events "
                         "WHERE type = 'pipeline_state' GROUP BY 1, 2"):
            states.setdefault(e["live_id"], {})[e["state"]] = e["n"]
        verdicts = {r["id"]: r for r in db.json(
            "SELECT l.id, (SELECT count(*) FROM analyses a WHERE a.live_id = l.id AND a.hateful) AS hateful, "
            "(SELECT count(*) FROM alerts a WHERE a.live_id = l.id) AS alerts FROM lives l")}
        per_live = []
        for live in lives.done:
            row = by_room.get(str(live["room_id"]))
            out = {k: live.get(k) for k in ("username", "file", "room_id", "posted", "deleted", "first_connect",
                                            "client_drops")}
            out["on_s"] = live["deleted"] - live["posted"]
            out["detected"] = row is not None
            if row:
                ws = windows.get(row["id"], [])
                out["live_id"] = row["id"]
                out["ended_in_tttd"] = row["status"] == "ended"
                out["windows"] = len(ws)
                out["voiced"] = sum(1 for w in ws if not w["silent"] and not w["skipped"])
                out["skipped"] = sum(1 for w in ws if w["skipped"])
                out["skipped_no_reason"] = sum(1 for w in ws if w["skipped"] and not (w["reason"] or "").strip())
                breaks = 0 if not ws or (ws[0]["seq"] == 0 and abs(ws[0]["start_s"]) < 1e-6) else 1
                for p, n in zip(ws, ws[1:]):
                    if n["seq"] != p["seq"] + 1 or abs(n["start_s"] - p["end_s"]) > 1e-6:
                        breaks += 1
                out["tiling_breaks"] = breaks
                out["timeline_s"] = max((w["end_s"] for w in ws), default=0.0)
                out["captures"] = states.get(row["id"], {}).get("capturing", 0)
                out["pipeline_states"] = states.get(row["id"], {})
                out["analysis_pending"] = sum(1 for w in ws if w["analysis_state"] == "pending")
                out["hateful_verdicts"] = verdicts[row["id"]]["hateful"]
                out["alerts"] = verdicts[row["id"]]["alerts"]
                if live.get("first_connect"):
                    streamed = live["deleted"] - live["first_connect"] + pb.LEAD_S
                    out["streamed_s"] = streamed
                    out["short_s"] = streamed - out["timeline_s"]
                    out["tolerance_s"] = 3.0 + 2.0 * max(1, out["captures"])
            per_live.append(out)
        alerts = db.json("""
            SELECT a.id, a.event_id, a.live_id, a.risk_score,
                   (SELECT coalesce(json_object_agg(d.channel, d.state), '{}') FROM deliveries d
                    WHERE d.event_id = a.event_id) AS deliveries
            FROM alerts a ORDER BY a.id""")
        channels = {c["name"]: c["event_types"] for c in db.json("SELECT name, event_types FROM channels")}
        delivered = db.json("SELECT event_id, channel FROM deliveries WHERE state = 'delivered'")
        deliveries_by = db.json("SELECT channel, state, count(*) AS n, max(attempts) AS max_attempts, "
                                "sum(attempts) AS attempts FROM deliveries GROUP BY 1, 2 ORDER BY 1, 2")
        analyses = db.json("SELECT status, count(*) AS n, count(*) FILTER (WHERE hateful) AS hateful "
                           "FROM analyses GROUP BY 1")
        _, hook = pb.http("GET", self.hook.url + "/_deliveries", timeout=60)
        hook = hook if isinstance(hook, list) else []
        hook_ok = {d["id"] for d in hook if d["status"] == 204}
        mail_ids = set()
        if self.smtp:
            for name in os.listdir(self.maildir):
                if name.endswith(".json"):
                    m = re.match(r"<?(tttd_evt_[0-9]+)@", json.load(open(os.path.join(self.maildir, name)))
                                 .get("message_id") or "")
                    if m:
                        mail_ids.add(m.group(1))
        not_received = []
        for d in delivered:
            key = f"tttd_evt_{d['event_id']}"
            got = key in hook_ok if d["channel"].startswith("webhook:") else key in mail_ids if d["channel"] == "email" \
                else True
            if not got:
                not_received.append(d)
        alert_channels = [c for c, types in channels.items() if "alert" in types]
        undelivered = [a for a in alerts if a["event_id"] is None
                       or any((a["deliveries"] or {}).get(c) != "delivered" for c in alert_channels)]
        after = self.db_figures()
        _, asr_stats = pb.http("GET", self.asr_proxy.url + "/_stats", timeout=30)
        if isinstance(asr_stats, dict):
            asr_stats.pop("log", None)
        return {"per_live": per_live, "alerts": len(alerts), "alert_channels": alert_channels,
                "alerts_undelivered": undelivered[:20], "alerts_undelivered_n": len(undelivered),
                "delivered_not_received": not_received[:20], "delivered_not_received_n": len(not_received),
                "deliveries": deliveries_by, "analyses": analyses, "webhook_requests": len(hook),
                "webhook_bad_signature": sum(1 for d in hook if not d["signature_ok"]),
                "emails": len(mail_ids), "asr_proxy": asr_stats, "after_stop": after,
                "unmatched_tttd_lives": len(set(by_room) - {str(l["room_id"]) for l in lives.done})}

    def log_summary(self):
        counts, examples = {"warning": 0, "error": 0}, {}
        with open(self.tttd_log, errors="replace") as f:
            for line in f:
                m = re.match(r"<([0-7])>", line)
                if not m or int(m.group(1)) > 4:
                    continue
                level = "warning" if m.group(1) == "4" else "error"
                counts[level] += 1
                # Group by the message: drop the metadata (key=value pairs) and numbers.
                key = re.sub(r"[0-9]+", "N", re.split(r" [a-z_]+=", line.strip()[3:], 1)[0])[:120]
                examples[(level, key)] = examples.get((level, key), 0) + 1
        top = sorted(examples.items(), key=lambda kv: -kv[1])[:12]
        return {"counts": counts, "top": [{"level": l, "message": k, "n": n} for (l, k), n in top]}

    def run(self):
        a = self.a
        result = {"minutes": a.minutes, "lives_target": a.lives, "live_min_s": a.live_min, "live_max_s": a.live_max,
                  "fault_every_s": a.fault_every, "sample_every_s": a.sample_every, "window": a.window,
                  "asr": f"scripts/asr-server --model {a.asr_model} {a.asr_args}".strip(), "accounts": self.accounts,
                  "smtp": bool(a.smtp),
                  "audio": {n: {k: f[k] for k in ("duration_s", "speech_s", "speech_share", "hateful")}
                            for n, f in self.meta["files"].items()}}
        try:
            log("starting tttsim, scripts/asr-server, the fault proxy, the chat server, the webhook receiver"
                + (", smtp-sink" if a.smtp else ""))
            self.start_services()
            self.warm_sim()
            self.start_tttd()
            log(f"tttd ready (pid {self.tttd.pid}), {self.accounts} accounts watched; "
                f"{a.lives} lives for {a.minutes:g} min ({datetime.datetime.now(datetime.timezone.utc):%H:%M} UTC)")
            time.sleep(3)   # a first round of checks: every account seen offline
            self.t0 = time.time()
            until = self.t0 + a.minutes * 60
            lives = Lives(self, self.accounts, a.lives, a.live_min, a.live_max, a.seed)
            stop = threading.Event()
            threads = [threading.Thread(target=self.sampler, args=(lives, stop), daemon=True),
                       threading.Thread(target=self.faulter, args=(until, stop), daemon=True)]
            for t in threads:
                t.start()
            lives.run(until)
            if self.tttd.poll() is not None:
                raise RuntimeError(f"tttd exited ({self.tttd.returncode}) during the soak; see {self.tttd_log}")
            result["run_s"] = time.time() - self.t0
            stop.set()
            for t in threads:
                t.join(120)
            pb.http("DELETE", self.sim + "/_sim/faults")
            log(f"{len(lives.done)} lives played; waiting for tttd to end them and drain (up to {DRAIN_S:.0f} s)")
            began, state = time.time(), None
            while time.time() - began < DRAIN_S:
                state, done = self.drained()
                if done:
                    break
                time.sleep(2)
            result["drain_s"] = time.time() - began
            result["drain_left"] = state
            self.sample(lives, final=True)
            result["lives_errors"] = lives.errors[:20]
            # Stop tttd (given systemd's TimeoutStopSec, 60 s, then SIGKILL): its exit, then the
            # orphans when it has gone and 2 s later.
            began = time.time()
            result["tttd_exit"], result["tttd_stuck_stacks"] = self.stop_tttd()
            result["tttd_stop_s"] = time.time() - began
            self.notify.close()
            at_exit = scan_processes(0, self.marker)["orphans"]
            time.sleep(2)
            later = scan_processes(0, self.marker)["orphans"]
            result["orphans_at_exit"] = at_exit
            result["orphans_after_stop"] = later
            # After the stop: a stopping pipeline records what it could not transcribe as skipped.
            result["collected"] = self.collect(lives)
            result["orphans_during_run"] = list(self.orphans_seen.values())
            result["zombies_stuck"] = self.zombies_stuck
            result["log"] = self.log_summary()
            result["samples"] = self.samples
            result["faults"] = self.faults
            result["ok"] = True
        finally:
            self.procs.stop_all()
            if self.samples and "samples" not in result:
                result["samples"] = self.samples
                result["faults"] = self.faults
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
        log(f"result: {a.out}")


# --- report --------------------------------------------------------------------------------------

SERIES = [("rss_mb", "tttd RSS (MB)"), ("fds", "tttd open fds"), ("threads", "tttd threads")]


def windows_of(r):
    """(baseline from, to), (final from, to) in minutes: 10–20 and the last 30 when the run is
    long enough, else the second fifth and the last quarter."""
    m = r["minutes"]
    if m >= 50:
        return (10.0, 20.0), (m - 30.0, m)
    return (m / 5, 2 * m / 5), (m * 3 / 4, m)


def growth(r, key):
    (b0, b1), (f0, f1) = windows_of(r)
    run = [s for s in r["samples"] if not s["final"] and s.get(key) is not None]
    base = [s[key] for s in run if b0 <= s["t_min"] < b1]
    final = [s[key] for s in run if f0 <= s["t_min"] <= f1 + 0.01]
    if not base or not final:
        return None
    b, f = statistics.median(base), statistics.median(final)
    ffmpeg = [statistics.median([s["ffmpeg"] for s in run if lo <= s["t_min"] <= hi]) for lo, hi in ((b0, b1 - 0.01), (f0, f1 + 0.01))]
    return {"base": b, "final": f, "growth": f / b - 1 if b else float("nan"), "max": max(s[key] for s in run),
            "n": (len(base), len(final)), "ffmpeg": ffmpeg}


def growth_goal(key, g):
    """(goal, met). Threads are a count near ten, where one more worker is +10 %: they are judged
    in absolute terms, at most one more than in the baseline."""
    if key == "threads":
        return "≤ 5 % or ≤ +1 thread", ok(g["growth"] <= 0.05 or g["final"] - g["base"] <= 1)
    return "≤ 5 %", ok(g["growth"] <= 0.05)


def ok(good):
    return "✅" if good else "❌"


def table(r):
    c = r["collected"]
    rows = []

    def row(metric, value, goal="—", met=""):
        rows.append(f"| {metric} | {value} | {goal} | {met} |")
    (b0, b1), (f0, f1) = windows_of(r)
    window_text = f"median of min {f0:g}–{f1:g} ÷ median of min {b0:g}–{b1:g} − 1"
    for key, label in SERIES:
        g = growth(r, key)
        if g is None:
            row(f"{label}: growth", "not enough samples", "≤ 5 %", "")
            continue
        fmt = (lambda v: f"{v:.1f}") if key == "rss_mb" else (lambda v: f"{v:.0f}")
        row(f"{label}: growth ({window_text})", f"{g['growth']:+.1%} ({fmt(g['base'])} → {fmt(g['final'])}; max "
            f"{fmt(g['max'])}; ffmpeg children {g['ffmpeg'][0]:g} → {g['ffmpeg'][1]:g})",
            *growth_goal(key, g))
    run = [s for s in r["samples"] if not s["final"]]
    final = [s for s in r["samples"] if s["final"]]
    kinds = sorted({k for s in run for k in s.get("fd_kinds", {})})
    if kinds:
        def kind_medians(lo, hi):
            picked = [s["fd_kinds"] for s in run if lo <= s["t_min"] <= hi]
            return {k: statistics.median([p.get(k, 0) for p in picked]) for k in kinds} if picked else {}
        b, f = kind_medians(b0, b1 - 0.01), kind_medians(f0, f1 + 0.01)
        row("open fds by kind, median (baseline → final window)",
            "; ".join(f"{k} {b.get(k, 0):g} → {f.get(k, 0):g}" for k in kinds))
    row("ffmpeg children of tttd: median / max (lives in tttsim: median)",
        f"{statistics.median([s['ffmpeg'] for s in run]):.0f} / {max(s['ffmpeg'] for s in run)} "
        f"({statistics.median([s['sim_lives'] for s in run]):.0f})")
    after_drain = final[0] if final else {}
    row("tttd's children after the drain (ffmpeg / other / zombies)",
        f"{after_drain.get('ffmpeg')} / {after_drain.get('other_children')} / {after_drain.get('zombies')}", "0", ok(
            after_drain.get("ffmpeg") == 0 and after_drain.get("zombies") == 0))
    stuck = r.get("zombies_stuck", {})
    row("zombie children unreaped for ≥ 10 s (checked every 5 s); most zombies at one sample",
        f"{len(stuck)}; {max(s['zombies'] for s in r['samples'])}", "0", ok(not stuck))
    orphans = len(r["orphans_during_run"])
    row("orphan ffmpegs during the run (checked every 5 s)", f"{orphans}", "0", ok(orphans == 0))
    row("orphan ffmpegs when tttd had exited / 2 s later", f"{len(r['orphans_at_exit'])} / {len(r['orphans_after_stop'])}",
        "0", ok(not r["orphans_after_stop"]))
    per = c["per_live"]
    detected = [l for l in per if l["detected"]]
    # A live started in the run's last minute may end before a check sees it: not counted.
    counted = [l for l in per if l["on_s"] >= 60]
    found = [l for l in counted if l["detected"]]
    short_lives = len(per) - len(counted)
    row("lives on ≥ 60 s in tttsim / detected by tttd / ended in tttd / with windows",
        f"{len(counted)} / {len(found)} / {sum(1 for l in found if l.get('ended_in_tttd'))} / "
        f"{sum(1 for l in found if l.get('windows'))}"
        + (f" (and {short_lives} started in the last minute: {sum(1 for l in per if l['on_s'] < 60 and l['detected'])}"
           " detected)" if short_lives else ""), "all", ok(
            len(found) == len(counted) and all(l.get("ended_in_tttd") and l.get("windows") for l in found)))
    total = sum(l.get("windows", 0) for l in detected)
    skipped = sum(l.get("skipped", 0) for l in detected)
    row("windows (voiced / skipped)", f"{total} ({sum(l.get('voiced', 0) for l in detected)} / {skipped})")
    db_final = (final[0] if final else run[-1]).get("db", {})
    reasons = c["after_stop"].get("skipped_by_reason") or {}
    if reasons:
        row("skipped windows by reason", "; ".join(f"{k}: {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])))
    breaks = sum(l.get("tiling_breaks", 0) for l in detected)
    no_reason = sum(l.get("skipped_no_reason", 0) for l in detected)
    row("tiling breaks (seq or start ≠ previous end) / skipped windows without a reason", f"{breaks} / {no_reason}",
        "0 / 0", ok(breaks == 0 and no_reason == 0))
    measured = [l for l in detected if l.get("streamed_s") is not None]
    short = [l for l in measured if l["short_s"] > l["tolerance_s"]]
    diffs = sorted(l["short_s"] for l in measured)
    row("lives whose timeline falls short of the audio streamed (beyond 3 s + 2 s per capture)",
        f"{len(short)} of {len(measured)} (streamed − timeline: min {diffs[0]:+.1f} s, median "
        f"{statistics.median(diffs):+.1f} s, max {diffs[-1]:+.1f} s)" if diffs else "no live measured",
        "0", ok(not short and bool(diffs)))
    failed = sum(l.get("pipeline_states", {}).get("failed", 0) for l in detected)
    row("`pipeline_state` failed (capacity refusals, give-ups)", f"{failed}")
    pending = db_final.get("analysis_pending")
    analyses = {a["status"]: a for a in c["analyses"]}
    row("analyses ok / cached / failed; hateful; windows still waiting for analysis after the drain / after the stop",
        f"{analyses.get('ok', {}).get('n', 0)} / {analyses.get('cached', {}).get('n', 0)} / "
        f"{analyses.get('failed', {}).get('n', 0)}; {sum(a['hateful'] for a in c['analyses'])}; {pending} / "
        f"{c['after_stop'].get('analysis_pending')}", "0 after the drain", ok(pending == 0))
    hate = [l for l in found if l["file"] == "H"]
    judged = [l for l in found if l.get("hateful_verdicts")]
    silent = [l for l in judged if not l.get("alerts")]
    row("lives playing the hateful file / with a hateful verdict / with an alert; lives with a hateful verdict "
        "but no alert", f"{len(hate)} / {len(judged)} / {sum(1 for l in found if l.get('alerts'))}; {len(silent)}",
        "0 without", ok(not silent))
    row(f"alerts; without a delivered delivery on every alert channel ({', '.join(c['alert_channels'])})",
        f"{c['alerts']}; {c['alerts_undelivered_n']}", "> 0; 0", ok(c["alerts"] > 0 and c["alerts_undelivered_n"] == 0))
    row("deliveries marked delivered that the receiver never accepted (webhook-id / Message-ID)",
        f"{c['delivered_not_received_n']}", "0", ok(c["delivered_not_received_n"] == 0))
    row("deliveries by channel and state (attempts)", "; ".join(
        f"{d['channel']} {d['state']}: {d['n']} ({d['attempts']} attempts, max {d['max_attempts']})"
        for d in c["deliveries"]))
    row("webhook requests received (bad signatures); e-mails received", f"{c['webhook_requests']} "
        f"({c['webhook_bad_signature']}); {c['emails'] if r['smtp'] else 'no e-mail channel'}")
    kinds = {}
    for f in r["faults"]:
        kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
    row("faults injected", "; ".join(f"{k} × {n}" for k, n in kinds.items()) or "none")
    asr = c.get("asr_proxy") or {}
    row("ASR requests through the proxy (faults injected)", f"{asr.get('requests', '?')} ({asr.get('faults', '?')})")
    row("drain after the last live ended (lives, pipelines, analyses, deliveries)",
        f"{r['drain_s']:.0f} s" + ("" if not r.get("drain_left") or not any(r["drain_left"].values())
                                    else f", left: {r['drain_left']}"), "complete",
        ok(not r.get("drain_left") or not any(r["drain_left"].values())))
    stuck = f"; stacks at 40 s: {r['tttd_stuck_stacks']}" if r.get("tttd_stuck_stacks") else ""
    row("tttd exit after SIGTERM (time to stop)", f"{r['tttd_exit']} ({r['tttd_stop_s']:.1f} s{stuck})", "0",
        ok(r["tttd_exit"] == 0))
    log_ = r["log"]
    row("tttd warnings / errors logged", f"{log_['counts']['warning']} / {log_['counts']['error']}")
    out = ["| metric | result | goal | met? |", "|---|---|---|---|"] + rows
    return "\n".join(out)


def plot(r, png):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not importable: no plot")
        return False
    run = [s for s in r["samples"] if not s["final"]]
    t = [s["t_min"] for s in run]
    fig, axes = plt.subplots(3, 2, figsize=(12, 10), sharex=True)
    (b0, b1), (f0, f1) = windows_of(r)
    panels = [
        (axes[0][0], [("rss_mb", "tttd RSS (MB)")], "MB"),
        (axes[0][1], [("fds", "open fds"), ("threads", "threads")], "count"),
        (axes[1][0], [("ffmpeg", "ffmpeg children"), ("sim_lives", "lives in tttsim"), ("lives_open", "lives open in tttd"),
                      ("orphans", "orphan ffmpegs"), ("zombies", "zombie children")], "count"),
        (axes[1][1], [("tttsim_rss_mb", "tttsim RSS (MB)"), ("asr_rss_mb", "ASR server RSS (MB)")], "MB"),
    ]
    for ax, series, unit in panels:
        for key, label in series:
            ax.plot(t, [s.get(key, s.get("db", {}).get(key)) for s in run], label=label, lw=1.2)
        ax.set_ylabel(unit)
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(alpha=0.3)
    ax = axes[0][0]
    ax.axvspan(b0, b1, color="green", alpha=0.08, label="baseline")
    ax.axvspan(f0, f1, color="orange", alpha=0.08, label="final")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper left")
    db = [s.get("db", {}) for s in run]
    ax = axes[2][0]
    ax.plot(t, [d.get("windows") for d in db], label="windows")
    ax.plot(t, [d.get("voiced") for d in db], label="voiced windows")
    ax.plot(t, [sum((d.get("analyses") or {}).values()) for d in db], label="analyses")
    ax.set_ylabel("cumulative")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(t, [d.get("skipped") for d in db], color="red", lw=1, label="skipped windows")
    ax2.plot(t, [d.get("alerts") for d in db], color="purple", lw=1, label="alerts")
    ax2.set_ylabel("skipped windows, alerts")
    ax2.legend(fontsize=8, loc="lower right")
    ax = axes[2][1]
    ax.plot(t, [(d.get("deliveries") or {}).get("delivered") for d in db], label="deliveries delivered")
    ax.plot(t, [(d.get("deliveries") or {}).get("pending", 0) for d in db], label="deliveries pending")
    ax.plot(t, [d.get("analysis_pending") for d in db], label="windows awaiting analysis")
    ax.set_ylabel("count")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    for row in axes:
        for ax in row:
            for f in r["faults"]:
                ax.axvline(f["t_min"], color="grey", lw=0.6, alpha=0.4, ls=":" if f["where"] == "other" else "-")
    for ax in axes[2]:
        ax.set_xlabel("minutes (grey lines: faults injected)")
    fig.suptitle(f"bench/soak: tttd, {r['lives_target']} lives at once for {r['minutes']:g} min, faults every "
                 f"{r['fault_every_s']:g} s")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return True


def report(a):
    r = json.load(open(a.result))
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    parts = [f"## bench/soak — {date}, {pb.machine()}", ""]
    audio = "; ".join(f"{n}: {f['duration_s']:.0f} s, speech {f['speech_share']:.0%}" + (" (two hateful sentences)" if f["hateful"] else "")
                      for n, f in r["audio"].items())
    runs = len(r["collected"]["per_live"])
    parts.append(
        f"A release `tttd` against `tttsim` for {r['minutes']:g} minutes: about {r['lives_target']} lives at once, "
        f"each lasting {r['live_min_s'] / 60:g}–{r['live_max_s'] / 60:g} min and replaced as it ends ({runs} lives "
        f"in all, on {r['accounts']} watched accounts), English espeak-ng speech looped ({audio}; every third live "
        f"plays the hateful file). Transcription on `{r['asr']}` behind a fault-injecting proxy "
        "(Tests/TTTDaemonTests/Fixtures/asr_faults.py), `transcription.window` "
        f"{r['window']}; analysis on Tests/TTTDaemonTests/Fixtures/chat_server.py (its rule judges the hateful "
        "sentences), `alerts.cooldown` 1m; deliveries to webhook_receiver.py (alert, live_started, live_ended, "
        "pipeline_failed)" + (" and alert e-mails to `scripts/smtp-sink`" if r["smtp"] else "") + ". "
        f"Every {r['fault_every_s']:g} s two faults: one on tttsim (429 storm, challenge pages, dropped streams, "
        "delays, a rate-limiting WAF, empty answers and resets, in turn) and one elsewhere (ASR errors and hangs, "
        "chat errors, the webhook receiver failing, SIGKILL to one of tttd's ffmpegs, in turn). Sampled every "
        f"{r['sample_every_s']:g} s: VmRSS and Threads (/proc/PID/status), open fds (/proc/PID/fd), tttd's "
        "children; orphan ffmpegs (ours — their URL names our tttsim — whose parent is not tttd) every 5 s. "
        "Lost windows: per live, the windows tile the timeline, skipped ones have a reason, and the timeline "
        "reaches the audio streamed to it. bench/soak/soak.py says exactly how each figure is measured.")
    parts.append("")
    parts.append(table(r))
    parts.append("")
    if r["log"]["top"]:
        parts.append("Most frequent warnings and errors in tttd's log: " + "; ".join(
            f"{t['message']} ({t['level']}, × {t['n']})" for t in r["log"]["top"][:6]) + ".")
        parts.append("")
    if a.png and plot(r, a.png):
        log(f"plot: {a.png}")
        if a.doc:
            rel = os.path.relpath(a.png, os.path.dirname(os.path.abspath(a.doc)))
            parts.append(f"![tttd's RSS, fds, threads and children over the soak]({rel})")
            parts.append("")
    if a.note:
        parts.append(a.note)
        parts.append("")
    section = "\n".join(parts).rstrip("\n") + "\n"
    print(section)
    if a.doc:
        replace_section(a.doc, "## bench/soak", section)
        log(f"written to {a.doc}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("audio")
    p.add_argument("--out", required=True)
    p.add_argument("--block-silence", type=float, default=45.0)
    p = sub.add_parser("run")
    for name in ("bin", "pg-url", "pg-bindir", "work", "audio", "out"):
        p.add_argument("--" + name, required=True)
    p.add_argument("--minutes", type=float, default=120)
    p.add_argument("--lives", type=int, default=20)
    p.add_argument("--live-min", type=float, default=240)
    p.add_argument("--live-max", type=float, default=720)
    p.add_argument("--fault-every", type=float, default=180)
    p.add_argument("--sample-every", type=float, default=60)
    p.add_argument("--window", default="15s")
    p.add_argument("--asr-model", default="tiny.en")
    p.add_argument("--asr-args", default="")
    p.add_argument("--no-smtp", dest="smtp", action="store_false")
    p.add_argument("--seed", type=int, default=1)
    p = sub.add_parser("report")
    p.add_argument("--png")
    p.add_argument("--doc")
    p.add_argument("--note")
    p.add_argument("result")
    a = parser.parse_args()
    if a.command == "audio":
        make_audio(a.out, a.block_silence)
    elif a.command == "run":
        Soak(a).run()
    else:
        report(a)


if __name__ == "__main__":
    main()
