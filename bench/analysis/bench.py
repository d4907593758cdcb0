#!/usr/bin/env python3
"""bench.py — tttd's analysis queue against an instant chat-completions server (bench/analysis/run drives it).

    bench.py chat-server --port P                 the instant server (a process of its own, so that its
                                                  CPU time is measured apart from the bench's)
    bench.py run --bin DIR --pg-url URL --pg-bindir DIR --work DIR --prompt FILE --out FILE.json
                 [--windows N] [--steady S] [--burst S] [--steady-period S] [--burst-period S]
                 [--lives N] [--budget RPM] [--seed N]
    bench.py report --doc docs/performance.md [--note TEXT] RESULT.json

The chat server answers `POST /v1/chat/completions` at once with a valid verdict (OpenAI's
chat.completion object; `response_format` json_schema accepted). It reads the window from the user
message — the third block between the request's random delimiters «TXT-<hex>» … «/TXT-<hex>»
(etc/tttd/prompts/moderation.yaml's user template: the header line, the context, the window) — and
answers "Discours haineux" (stigmatisation, virality moyenne → risk 0.9, an alert) when the window
holds the bench's hateful phrase, "Neutre" otherwise. It counts requests, keeps their arrival
times, and counts windows it was asked about more than once. `GET /_stats` reads, `DELETE /_stats`
resets.

`run`, in a fresh database per phase (tttd migrates it; lives and windows are then inserted with
psql, as the transcription pipelines would; the lives are inserted already ended so that detection
never checks them against TikTok — analysis does not look at a live's status):

* Phase A (throughput): `analysis.requests_per_minute` 1,000,000 (the budget is not the limit),
  `transcription.enabled` false. tttd starts (READY=1 on our NOTIFY_SOCKET) and idles IDLE s (its idle
  CPU is measured); then one live and N pending windows (distinct texts of ~40 words, one in 50
  hateful) are committed in one transaction and the count of `analyses` is polled until it reaches
  N. Windows judged per second = (N − 1) ÷ (last − first `analyses.created_at`) (the steady rate),
  and N ÷ (last `created_at` − the commit) (end to end, with tttd's 1 s idle poll). CPU per window =
  tttd's utime + stime (/proc/PID/stat) from the commit to the last verdict ÷ N; the chat server's
  and PostgreSQL's (postmaster and backends, /proc) likewise.
* Phase B (budget and backlog): `requests_per_minute` = BUDGET (30). LIVES (5) producers insert one
  window each every STEADY_PERIOD s (15 s: 5 lives → 20 windows/min, under the budget) for STEADY s,
  then every BURST_PERIOD s (5 s → 60/min, twice the budget) for BURST s, then stop. Every 2 s the
  backlog (`transcripts` pending) and the verdicts are sampled; every 10 s `tttctl status --json`
  (what an operator sees). Measured: the backlog over time and its peak, the drain time (producers'
  stop → the last verdict's `created_at`) against backlog × 60 ÷ BUDGET, each window's wait in the
  queue (`analyses.created_at` − `transcripts.created_at`) per phase, the highest number of
  requests the chat server saw in any 60 s window (goal ≤ BUDGET + 1), and that nothing was lost
  (every window inserted has exactly one verdict, status ok, the server was asked about each once).

`report` prints the markdown and puts it in docs/performance.md under
"## bench/analysis — <date>, <machine>" (that section replaced, every other kept as it is).

Standard library only.
"""
import argparse
import datetime
import hashlib
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HATEFUL_PHRASE = "ils sont tous complices des terroristes"
HATEFUL_EVERY = 50
WINDOW_WORDS = 40
BLOCK = re.compile(r"«TXT-([0-9a-fA-F]+)»(.*?)«/TXT-\1»", re.S)


def log(*parts):
    print("bench/analysis:", *parts, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the instant chat server ---------------------------------------------------------------------

class ChatState:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.times = []
        self.seen = {}
        self.duplicates = 0
        self.errors = 0
        self.hateful = 0
        self.modes = {}


def verdict_for(window):
    if HATEFUL_PHRASE in window:
        return {"citation": HATEFUL_PHRASE,
                "justification": "L'extrait attribue à toute une communauté la complicité avec les terroristes.",
                "tentative_manipulation": False, "categorie": "Discours haineux", "viralite": "moyenne",
                "discours_haineux": True, "cible": "ethnie", "type": "stigmatisation"}
    return {"citation": None, "justification": "Conversation ordinaire, sans hostilité.",
            "tentative_manipulation": False, "categorie": "Neutre", "viralite": "faible",
            "discours_haineux": False, "cible": None, "type": None}


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"   # keep-alive, as a real endpoint
        # One write per response, without Nagle: headers and body written apart would wait for the
        # client's delayed ACK (40 ms on Linux) and measure that instead of tttd.
        disable_nagle_algorithm = True
        wbufsize = 1 << 16

        def log_message(self, *args):
            pass

        def _send(self, code, obj):
            body = json.dumps(obj, ensure_ascii=False).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/_stats":
                with state.lock:
                    self._send(200, {"requests": len(state.times), "times": list(state.times),
                                     "duplicates": state.duplicates, "errors": state.errors,
                                     "hateful": state.hateful, "distinct": len(state.seen), "modes": state.modes})
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_DELETE(self):
            if self.path == "/_stats":
                with state.lock:
                    state.reset()
                self._send(200, {})
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self):
            now = time.time()
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if not self.path.endswith("/chat/completions"):
                self._send(404, {"error": {"message": "not found"}})
                return
            try:
                request = json.loads(raw)
                user = [m for m in request["messages"] if m.get("role") == "user"][-1]["content"]
                blocks = BLOCK.findall(user)
                window = blocks[2][1].strip()
            except (ValueError, KeyError, IndexError, TypeError) as error:
                with state.lock:
                    state.errors += 1
                self._send(400, {"error": {"message": f"bench chat server: unreadable request ({error})"}})
                return
            verdict = verdict_for(window)
            key = hashlib.sha256(window.encode()).hexdigest()
            mode = (request.get("response_format") or {}).get("type", "plain")
            with state.lock:
                state.times.append(now)
                state.modes[mode] = state.modes.get(mode, 0) + 1
                if key in state.seen:
                    state.duplicates += 1
                state.seen[key] = state.seen.get(key, 0) + 1
                if verdict["discours_haineux"]:
                    state.hateful += 1
                n = len(state.times)
            self._send(200, {
                "id": f"chatcmpl-bench-{n}", "object": "chat.completion", "created": int(now),
                "model": request.get("model", "bench"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": json.dumps(verdict, ensure_ascii=False)}}],
                "usage": {"prompt_tokens": len(user) // 4, "completion_tokens": 60, "total_tokens": len(user) // 4 + 60},
            })
    return Handler


def chat_server(a):
    state = ChatState()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(state))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    server.serve_forever(poll_interval=0.5)


# --- helpers: processes, HTTP, SQL, /proc --------------------------------------------------------

class Procs:
    """Children we started, stopped by pid (never by name)."""

    def __init__(self):
        self.children = []

    def start(self, args, **kwargs):
        p = subprocess.Popen(args, **kwargs)
        self.children.append(p)
        return p

    def stop(self, p, timeout=30):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode

    def stop_all(self):
        for p in reversed(self.children):
            try:
                self.stop(p, timeout=15)
            except Exception:  # noqa: BLE001 — cleanup goes on
                pass


def http(method, url, timeout=10):
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


class SQL:
    def __init__(self, psql, url):
        self.psql, self.url = psql, url

    def run(self, sql, stdin_sql=False):
        args = [self.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-F", "\t", "-d", self.url]
        if stdin_sql:
            out = subprocess.run(args, input=sql, capture_output=True, text=True)
        else:
            out = subprocess.run(args + ["-c", sql], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr.strip()}\n{sql[:500]}")
        return [line.split("\t") for line in out.stdout.splitlines() if line]


def with_database(url, name):
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def q(text):
    return "'" + text.replace("'", "''") + "'"


class Notify:
    """systemd's side of Type=notify: a datagram socket, drained for as long as tttd runs."""

    def __init__(self, path):
        self.path = path
        if os.path.exists(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.5)
        self.ready = threading.Event()
        self.closed = False
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        while not self.closed:
            try:
                message = self.sock.recv(65536).decode(errors="replace")
            except socket.timeout:
                continue
            except OSError:
                return
            if "READY=1" in message.split("\n"):
                self.ready.set()

    def close(self):
        self.closed = True
        self.sock.close()


TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid, children=False):
    """utime + stime (and the reaped children's, when asked) of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the ")": state is fields[0]; utime, stime, cutime, cstime are stat fields 14–17.
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def proc_status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def postgres_cpu_s(postmaster):
    """The private cluster's CPU: the postmaster with its reaped children, plus its live children."""
    total = proc_cpu_s(postmaster, children=True)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster:
                total += (int(fields[11]) + int(fields[12])) / TICK
        except (OSError, ValueError, IndexError):
            continue
    return total


def percentile(values, p):
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * p / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def max_in_window(times, width):
    """The most arrivals in any half-open interval of `width` seconds, and where it starts."""
    xs = sorted(times)
    best, at, j = 0, None, 0
    for i, t in enumerate(xs):
        while xs[j] <= t - width:
            j += 1
        if i - j + 1 > best:
            best, at = i - j + 1, xs[j]
    return best, at


# --- windows -------------------------------------------------------------------------------------

VOCAB = """bonjour à tous merci de venir sur le live aujourd'hui on parle du marché de Ouagadougou la
saison des pluies les prix du riz et du maïs ont encore monté mes frères et sœurs abonnez-vous
partagez la vidéo le match de ce soir les Étalons vont gagner la famille va bien grâce à Dieu
on salue Bobo-Dioulasso Koudougou Ouahigouya Fada Kaya Dori Banfora la musique est bonne ce soir
le taxi moto l'école les enfants la fête du village les cousins le maquis le poulet bicyclette
le to et la sauce gombo le dolo le zoom-koom la route nationale les travaux la lumière est coupée
encore le courant revient demain peut-être on attend les résultats du bac les étudiants la
bourse le transport la radio la télévision le marché de bétail les commerçants le coton l'or
les champs le sorgho le mil l'arachide le karité le beurre la pharmacie l'hôpital le dispensaire
la pompe à eau le forage le puits la mairie le chef du quartier les jeunes du secteur""".split()


def window_text(rng, index, hateful):
    words = [rng.choice(VOCAB) for _ in range(WINDOW_WORDS)]
    words.insert(rng.randrange(5, WINDOW_WORDS - 5), f"numéro {index}")   # distinct normalised texts
    if hateful:
        words.insert(rng.randrange(5, WINDOW_WORDS - 5), HATEFUL_PHRASE)
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


# --- the bench -----------------------------------------------------------------------------------

class Bench:
    def __init__(self, a):
        self.a = a
        self.procs = Procs()
        self.psql = os.path.join(a.pg_bindir, "psql")
        self.admin = SQL(self.psql, with_database(a.pg_url, "postgres"))
        self.rng = random.Random(a.seed)
        self.bin = {name: os.path.join(a.bin, name) for name in ("tttd", "tttctl")}
        self.socket_path = os.path.join(a.work, "control.sock")
        with open(os.path.join(a.work, "pg", "data", "postmaster.pid")) as f:
            self.postmaster = int(f.readline())
        self.window_index = 0

    def start_chat(self):
        self.chat_port = free_port()
        self.chat_base = f"http://127.0.0.1:{self.chat_port}"
        self.chat = self.procs.start([sys.executable, os.path.abspath(__file__), "chat-server", "--port", str(self.chat_port)],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.a.work, "chat.log"), "w"))
        for _ in range(200):
            try:
                if http("GET", self.chat_base + "/_stats", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            if self.chat.poll() is not None:
                raise RuntimeError(f"the chat server exited ({self.chat.returncode}); see {self.a.work}/chat.log")
            time.sleep(0.05)
        raise RuntimeError("the chat server did not answer")

    def chat_stats(self):
        status, stats = http("GET", self.chat_base + "/_stats", timeout=30)
        if status != 200:
            raise RuntimeError(f"GET /_stats: {status}")
        return stats

    def fresh_database(self, name):
        self.admin.run(f"DROP DATABASE IF EXISTS {name}")
        self.admin.run(f"CREATE DATABASE {name}")
        return SQL(self.psql, with_database(self.a.pg_url, name)), with_database(self.a.pg_url, name)

    def start_tttd(self, phase, db_url, requests_per_minute):
        work = self.a.work
        config = os.path.join(work, f"tttd-{phase}.yaml")
        with open(config, "w") as f:
            f.write(f"""database:
  url: "{db_url}"
control:
  socket: "{self.socket_path}"
tiktok:
  web_url: http://127.0.0.1:9
  webcast_url: http://127.0.0.1:9
transcription:
  enabled: false
analysis:
  enabled: true
  base_url: {self.chat_base}/v1
  model: bench
  prompt: "{self.a.prompt}"
  requests_per_minute: {requests_per_minute}
evidence:
  directory: "{work}/evidence"
log:
  level: warning
""")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TTTD_") and k != "TTTCTL_SOCKET"}
        env["STATE_DIRECTORY"] = os.path.join(work, "state")
        os.makedirs(env["STATE_DIRECTORY"], exist_ok=True)
        notify = Notify(os.path.join(work, "notify.sock"))
        env["NOTIFY_SOCKET"] = notify.path
        log_path = os.path.join(work, f"tttd-{phase}.log")
        proc = self.procs.start([self.bin["tttd"], "--config", config], env=env, stdout=subprocess.DEVNULL,
                                stderr=open(log_path, "w"))
        deadline = time.monotonic() + 120
        while not notify.ready.wait(0.2):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tttd did not become ready (exit {proc.poll()}); see {log_path}")
        return proc, notify, log_path

    def stop_tttd(self, proc, notify, log_path):
        code = self.procs.stop(proc)
        notify.close()
        if code != 0:
            raise RuntimeError(f"tttd exited {code} after SIGTERM; see {log_path}")
        return code

    def ctl_status(self):
        out = subprocess.run([self.bin["tttctl"], "status", "--json", "--socket", self.socket_path],
                             capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            return {"error": out.stderr.strip()}
        return json.loads(out.stdout)

    @staticmethod
    def log_lines(path):
        counts = {}
        with open(path, errors="replace") as f:
            for line in f:
                for level in ("critical", "error", "warning"):
                    if level in line.lower():
                        counts[level] = counts.get(level, 0) + 1
                        break
        return counts

    @staticmethod
    def insert_live_sql(username):
        room = str(7_000_000_000_000_000_000 + abs(hash(username)) % 999_999_999_999_999_999)
        return (f"INSERT INTO lives (username, room_id, title, started_at, ended_at, status, end_reason) VALUES "
                f"({q(username)}, {q(room)}, 'bench/analysis', now(), now(), 'ended', 'bench') RETURNING id")

    def window_row(self, live_id, seq, period):
        self.window_index += 1
        hateful = self.window_index % HATEFUL_EVERY == 0
        text = window_text(self.rng, self.window_index, hateful)
        return (f"({live_id}, {seq}, {seq * period:.1f}, {(seq + 1) * period:.1f}, {q(text)}, 'fr', 'bench-asr', "
                f"'pending')"), hateful

    COLUMNS = "(live_id, seq, start_s, end_s, text, language, model, analysis_state)"

    # --- phase A ---------------------------------------------------------------------------------

    def phase_a(self):
        a = self.a
        n = a.windows
        db, db_url = self.fresh_database("analysis_a")
        http("DELETE", self.chat_base + "/_stats")
        log(f"phase A: {n:,} windows, requests_per_minute 1,000,000")
        tttd, notify, log_path = self.start_tttd("a", db_url, 1_000_000)
        time.sleep(2)
        idle0, t_idle0 = proc_cpu_s(tttd.pid), time.monotonic()
        time.sleep(a.idle)
        idle_cpu_per_s = (proc_cpu_s(tttd.pid) - idle0) / (time.monotonic() - t_idle0)
        live_id = int(db.run(self.insert_live_sql("bench_a"))[0][0])
        rows, hateful = [], 0
        for seq in range(n):
            row, h = self.window_row(live_id, seq, 15)
            rows.append(row)
            hateful += h
        sql = "BEGIN;\n"
        for i in range(0, n, 500):
            sql += f"INSERT INTO transcripts {self.COLUMNS} VALUES\n" + ",\n".join(rows[i:i + 500]) + ";\n"
        sql += "COMMIT;\nSELECT extract(epoch FROM clock_timestamp());\n"
        cpu0, chat0, pg0 = proc_cpu_s(tttd.pid), proc_cpu_s(self.chat.pid), postgres_cpu_s(self.postmaster)
        t_commit = float(db.run(sql, stdin_sql=True)[-1][0])
        rss_max = 0
        deadline = time.time() + max(600, n * 0.2)
        while True:
            cpu1, chat1, pg1, t1 = (proc_cpu_s(tttd.pid), proc_cpu_s(self.chat.pid), postgres_cpu_s(self.postmaster),
                                    time.time())
            rss_max = max(rss_max, proc_status_kb(tttd.pid, "VmRSS"))
            done = int(db.run("SELECT count(*) FROM analyses")[0][0])
            if done >= n:
                break
            if tttd.poll() is not None:
                raise RuntimeError(f"tttd exited ({tttd.returncode}) during phase A; see {log_path}")
            if time.time() > deadline:
                raise RuntimeError(f"phase A: only {done}/{n} windows judged by the deadline")
            time.sleep(0.5)
        hwm = proc_status_kb(tttd.pid, "VmHWM")
        first, last, p50_ms, p99_ms, ok, cached, failed, alerts, states = db.run("""
            SELECT extract(epoch FROM min(created_at)), extract(epoch FROM max(created_at)),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms),
                   count(*) FILTER (WHERE status = 'ok'), count(*) FILTER (WHERE status = 'cached'),
                   count(*) FILTER (WHERE status = 'failed'), (SELECT count(*) FROM alerts),
                   (SELECT string_agg(analysis_state || '=' || c, ',') FROM
                       (SELECT analysis_state, count(*) c FROM transcripts GROUP BY 1) s)
            FROM analyses""")[0]
        hateful_judged = int(db.run("SELECT count(*) FROM analyses WHERE hateful")[0][0])
        stats = self.chat_stats()
        self.stop_tttd(tttd, notify, log_path)
        first, last = float(first), float(last)
        # CPU up to the poll that saw the last verdict: the poll is at most 0.5 s late; the idle
        # rate over that slack is negligible next to the work (reported apart anyway).
        cpu, chat_cpu, pg_cpu = cpu1 - cpu0, chat1 - chat0, pg1 - pg0
        result = {
            "windows": n, "hateful_inserted": hateful, "hateful_judged": hateful_judged,
            "idle_s": a.idle, "idle_cpu_ms_per_s": 1000 * idle_cpu_per_s,
            "first_s_after_commit": first - t_commit, "span_s": last - first, "end_to_end_s": last - t_commit,
            "rate_steady": (n - 1) / max(1e-9, last - first), "rate_end_to_end": n / max(1e-9, last - t_commit),
            "measured_s": t1 - t_commit,
            "cpu_s": cpu, "cpu_ms_per_window": 1000 * cpu / n,
            "cpu_ms_per_window_minus_idle": 1000 * (cpu - idle_cpu_per_s * (t1 - t_commit)) / n,
            "cpu_share": cpu / max(1e-9, t1 - t_commit),
            "chat_cpu_s": chat_cpu, "chat_cpu_ms_per_request": 1000 * chat_cpu / max(1, stats["requests"]),
            "pg_cpu_s": pg_cpu, "pg_cpu_ms_per_window": 1000 * pg_cpu / n,
            "latency_ms_p50": float(p50_ms), "latency_ms_p99": float(p99_ms),
            "status_ok": int(ok), "status_cached": int(cached), "status_failed": int(failed), "alerts": int(alerts),
            "transcript_states": states, "requests": stats["requests"], "duplicates": stats["duplicates"],
            "chat_errors": stats["errors"], "modes": stats["modes"], "rss_max_kb": rss_max, "vm_hwm_kb": hwm,
            "log": self.log_lines(log_path),
        }
        log(f"phase A: {result['rate_steady']:.1f} windows/s, {result['cpu_ms_per_window']:.2f} ms tttd CPU per window")
        return result

    # --- phase B ---------------------------------------------------------------------------------

    def phase_b(self):
        a = self.a
        db, db_url = self.fresh_database("analysis_b")
        http("DELETE", self.chat_base + "/_stats")
        log(f"phase B: {a.lives} lives, a window each every {a.steady_period:g} s for {a.steady:g} s, then every "
            f"{a.burst_period:g} s for {a.burst:g} s; budget {a.budget:g} requests/min")
        tttd, notify, log_path = self.start_tttd("b", db_url, a.budget)
        lives = [int(db.run(self.insert_live_sql(f"bench_b{i}"))[0][0]) for i in range(a.lives)]
        time.sleep(1)
        cpu0, chat0 = proc_cpu_s(tttd.pid), proc_cpu_s(self.chat.pid)
        t0 = time.time()
        t_steady_end = t0 + a.steady
        t_burst_end = t_steady_end + a.burst
        # Producers: live i inserts its first window at i × period / lives (staggered, as real lives).
        events = []
        for i in range(a.lives):
            t = t0 + i * a.steady_period / a.lives
            while t < t_steady_end:
                events.append((t, i, "steady"))
                t += a.steady_period
            t = t_steady_end + i * a.burst_period / a.lives
            while t < t_burst_end:
                events.append((t, i, "burst"))
                t += a.burst_period
        events.sort()
        seqs = [0] * a.lives
        inserted = []          # (transcript id, phase)
        samples = []           # (t, produced, judged, pending)
        status_samples = []    # (t, backlog shown by tttctl status, analysis state)
        next_sample, next_status = t0, t0 + 5
        t_stop = None

        def sample(now):
            judged, pending = db.run("SELECT (SELECT count(*) FROM analyses), "
                                     "(SELECT count(*) FROM transcripts WHERE analysis_state = 'pending')")[0]
            samples.append((now - t0, len(inserted), int(judged), int(pending)))
            return int(judged), int(pending)

        expected_drain = a.lives * a.burst / a.burst_period * 60 / a.budget
        drain_deadline = None
        while True:
            now = time.time()
            if tttd.poll() is not None:
                raise RuntimeError(f"tttd exited ({tttd.returncode}) during phase B; see {log_path}")
            while events and events[0][0] <= now:
                _, i, phase = events.pop(0)
                row, _ = self.window_row(lives[i], seqs[i], a.steady_period if phase == "steady" else a.burst_period)
                seqs[i] += 1
                tid = int(db.run(f"INSERT INTO transcripts {self.COLUMNS} VALUES {row} RETURNING id")[0][0])
                inserted.append((tid, phase))
                if not events:
                    t_stop = time.time()
                    drain_deadline = t_stop + 2 * expected_drain + 120
                    log(f"phase B: producers stopped after {len(inserted)} windows ({t_stop - t0:.0f} s)")
            if now >= next_sample:
                judged, pending = sample(now)
                next_sample += 2
                if t_stop is not None and judged >= len(inserted) and pending == 0:
                    break
                if drain_deadline is not None and now > drain_deadline:
                    log(f"phase B: the backlog did not drain: {judged}/{len(inserted)} judged, {pending} pending")
                    break
                if len(samples) % 15 == 0:
                    log(f"phase B: t={now - t0:.0f} s produced {len(inserted)} judged {judged} pending {pending}")
            if now >= next_status:
                status = self.ctl_status()
                backlog = status.get("analysis_backlog", status.get("analysisBacklog"))
                status_samples.append((now - t0, backlog, status.get("analysis")))
                next_status += 10
            wake = min([next_sample, next_status] + ([events[0][0]] if events else []))
            time.sleep(max(0.0, min(0.5, wake - time.time())))
        cpu1, chat1, t1 = proc_cpu_s(tttd.pid), proc_cpu_s(self.chat.pid), time.time()
        hwm = proc_status_kb(tttd.pid, "VmHWM")
        stats = self.chat_stats()
        rows = db.run("""
            SELECT t.id, extract(epoch FROM t.created_at), extract(epoch FROM n.created_at), n.status, t.analysis_state
            FROM transcripts t LEFT JOIN analyses n ON n.transcript_id = t.id ORDER BY t.id""")
        counts = db.run("SELECT count(*), count(DISTINCT transcript_id), (SELECT count(*) FROM alerts), "
                        "(SELECT count(*) FROM events WHERE type = 'analysis') FROM analyses")[0]
        self.stop_tttd(tttd, notify, log_path)

        phase_of = dict(inserted)
        waits = {"steady": [], "burst": []}
        missing, not_ok, last_verdict = [], [], None
        for tid, created, judged_at, status, state in rows:
            tid = int(tid)
            if tid not in phase_of:
                continue
            if judged_at == "":
                missing.append(tid)
                continue
            if status != "ok" or state != "done":
                not_ok.append((tid, status, state))
            waits[phase_of[tid]].append(float(judged_at) - float(created))
            last_verdict = max(last_verdict or 0, float(judged_at))
        times = stats["times"]
        max60, max60_at = max_in_window(times, 60.0)
        gaps = [b - a_ for a_, b in zip(times, times[1:])]
        peak = max(samples, key=lambda s: s[3])
        at_stop = [s for s in samples if s[0] <= t_stop - t0]
        backlog_at_stop = at_stop[-1][3] if at_stop else 0
        steady_samples = [s for s in samples if s[0] <= a.steady]
        burst_requests = [t for t in times if t_steady_end + 60 <= t <= t_burst_end]
        result = {
            "lives": a.lives, "budget_rpm": a.budget, "steady_s": a.steady, "burst_s": a.burst,
            "steady_period_s": a.steady_period, "burst_period_s": a.burst_period,
            "steady_rate_per_min": a.lives * 60 / a.steady_period, "burst_rate_per_min": a.lives * 60 / a.burst_period,
            "inserted": len(inserted), "inserted_steady": sum(1 for _, p in inserted if p == "steady"),
            "inserted_burst": sum(1 for _, p in inserted if p == "burst"),
            "analyses": int(counts[0]), "analysed_windows": int(counts[1]), "alerts": int(counts[2]),
            "analysis_events": int(counts[3]), "missing": missing, "not_ok": not_ok,
            "requests": stats["requests"], "duplicates": stats["duplicates"], "chat_errors": stats["errors"],
            "distinct_windows_asked": stats["distinct"],
            "max_requests_60s": max60, "max_requests_60s_at": None if max60_at is None else max60_at - t0,
            "min_gap_s": min(gaps) if gaps else None, "median_gap_s": percentile(gaps, 50) if gaps else None,
            "burst_rate_per_min_served": (len(burst_requests) - 1) * 60 / max(1e-9, burst_requests[-1] - burst_requests[0])
            if len(burst_requests) > 1 else None,
            "peak_backlog": peak[3], "peak_backlog_t": peak[0], "backlog_at_stop": backlog_at_stop,
            "steady_max_backlog": max((s[3] for s in steady_samples), default=0),
            "t_stop": t_stop - t0, "drain_s": (last_verdict - t_stop) if last_verdict else None,
            "drain_expected_s": backlog_at_stop * 60 / a.budget,
            "wait_steady_p50": percentile(waits["steady"], 50), "wait_steady_max": max(waits["steady"], default=float("nan")),
            "wait_burst_p50": percentile(waits["burst"], 50), "wait_burst_max": max(waits["burst"], default=float("nan")),
            "seconds": t1 - t0, "cpu_s": cpu1 - cpu0, "cpu_ms_per_window": 1000 * (cpu1 - cpu0) / max(1, len(inserted)),
            "chat_cpu_s": chat1 - chat0, "vm_hwm_kb": hwm, "samples": samples, "status_samples": status_samples,
            "request_times": [round(t - t0, 4) for t in times],
            "log": self.log_lines(log_path),
        }
        log(f"phase B: peak backlog {peak[3]} at {peak[0]:.0f} s, drain {result['drain_s']:.0f} s "
            f"(expected {result['drain_expected_s']:.0f} s), max {max60} requests in 60 s")
        return result

    def run(self):
        result = {"started": time.time(), "quick": self.a.quick}
        try:
            self.start_chat()
            if "A" in self.a.phases:
                result["A"] = self.phase_a()
            if "B" in self.a.phases:
                result["B"] = self.phase_b()
            result["ok"] = True
        finally:
            self.procs.stop_all()
            with open(self.a.out, "w") as f:
                json.dump(result, f, indent=1)


# --- report --------------------------------------------------------------------------------------

def ok(good):
    return "✅" if good else "❌"


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}"


def table_a(r):
    rows = [
        ("windows judged per second (steady: (N − 1) ÷ first → last verdict)",
         f"{r['rate_steady']:.1f} /s ({r['windows']:,} windows in {r['span_s']:.1f} s)", "", ""),
        ("… end to end (commit of the N windows → last verdict)",
         f"{r['rate_end_to_end']:.1f} /s (first verdict {r['first_s_after_commit']:.2f} s after the commit)", "", ""),
        ("tttd CPU per window", f"{r['cpu_ms_per_window']:.2f} ms ({r['cpu_s']:.2f} s CPU over {r['measured_s']:.1f} s, "
         f"{r['cpu_share']:.0%} of a core; {r['cpu_ms_per_window_minus_idle']:.2f} ms without the idle rate)",
         "≤ 5 ms", ok(r["cpu_ms_per_window"] <= 5)),
        ("tttd idle CPU (before the windows)", f"{r['idle_cpu_ms_per_s']:.1f} ms/s", "", ""),
        ("PostgreSQL CPU per window", f"{r['pg_cpu_ms_per_window']:.2f} ms ({r['pg_cpu_s']:.2f} s)", "", ""),
        ("chat server CPU per request (Python, for scale)",
         f"{r['chat_cpu_ms_per_request']:.2f} ms ({r['chat_cpu_s']:.2f} s)", "", ""),
        ("analyzer round trip (`analyses.latency_ms`) p50 / p99", f"{r['latency_ms_p50']:.0f} / {r['latency_ms_p99']:.0f} ms", "", ""),
        ("verdicts ok / cached / failed", f"{r['status_ok']:,} / {r['status_cached']} / {r['status_failed']} "
         f"(windows {r['transcript_states']})", "all ok, none cached", ok(r["status_ok"] == r["windows"])),
        ("requests the chat server saw / windows asked twice",
         f"{r['requests']:,} / {r['duplicates']} (response_format: "
         + ", ".join(f"{k} {v:,}" for k, v in sorted(r["modes"].items())) + ")",
         "N / 0", ok(r["requests"] == r["windows"] and r["duplicates"] == 0)),
        ("hateful windows judged hateful / alerts", f"{r['hateful_judged']} of {r['hateful_inserted']} / {r['alerts']} "
         "(one live: `alerts.cooldown` keeps one alert per live unless the risk rises)", "", ""),
        ("tttd RSS (peak sampled; VmHWM)", f"{r['rss_max_kb'] / 1024:.1f} MB; {r['vm_hwm_kb'] / 1024:.1f} MB", "", ""),
    ]
    out = ["| metric | result | goal | met? |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c or '—'} | {d} |" for a, b, c, d in rows]
    return "\n".join(out)


def table_b(r):
    budget = r["budget_rpm"]
    lost = len(r["missing"]) + len(r["not_ok"])
    drain = r["drain_s"]
    rows = [
        ("windows produced (steady + burst)",
         f"{r['inserted']} ({r['inserted_steady']} + {r['inserted_burst']})", "", ""),
        ("backlog during the steady phase (max sampled)", f"{r['steady_max_backlog']}", "≤ a few", ok(r["steady_max_backlog"] <= 3)),
        ("queue wait, steady phase: p50 / max", f"{r['wait_steady_p50']:.1f} / {r['wait_steady_max']:.1f} s", "", ""),
        ("peak backlog", f"{r['peak_backlog']} windows at t = {r['peak_backlog_t']:.0f} s "
         f"(at the producers' stop, t = {r['t_stop']:.0f} s: {r['backlog_at_stop']})",
         f"≈ ({r['burst_rate_per_min']:.0f} − {budget:g}) × {r['burst_s'] / 60:g} min = "
         f"{(r['burst_rate_per_min'] - budget) * r['burst_s'] / 60:.0f}", ""),
        ("queue wait, burst windows: p50 / max", f"{r['wait_burst_p50']:.0f} / {r['wait_burst_max']:.0f} s", "", ""),
        ("drain time (producers' stop → last verdict)",
         "not drained" if drain is None else f"{drain:.0f} s", f"≈ backlog × 60 ÷ {budget:g} = {r['drain_expected_s']:.0f} s",
         ok(drain is not None and drain <= r["drain_expected_s"] * 1.15 + 5)),
        ("most requests in any 60 s (chat server's clock)", f"{r['max_requests_60s']}",
         f"≤ {budget:g} + 1", ok(r["max_requests_60s"] <= budget + 1)),
        ("request spacing: min / median", f"{r['min_gap_s']:.2f} / {r['median_gap_s']:.2f} s", f"{60 / budget:.2f} s", ""),
        ("rate served while the backlog stood (burst after its first minute)",
         "—" if r["burst_rate_per_min_served"] is None else f"{r['burst_rate_per_min_served']:.1f} /min", f"{budget:g} /min", ""),
        ("windows lost (no verdict, or not ok) / judged twice / requests for one window twice",
         f"{lost} / {r['analyses'] - r['analysed_windows']} / {r['duplicates']} "
         f"({r['analyses']} verdicts, {r['requests']} requests)", "0 / 0 / 0",
         ok(lost == 0 and r["analyses"] == r["inserted"] and r["duplicates"] == 0)),
        ("tttd CPU over the phase", f"{r['cpu_s']:.2f} s in {r['seconds']:.0f} s ({r['cpu_ms_per_window']:.1f} ms per window, "
         "idle loops included)", "", ""),
    ]
    out = ["| metric | result | goal | met? |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c or '—'} | {d} |" for a, b, c, d in rows]
    return "\n".join(out)


def timeline_b(r):
    """The backlog every 30 s (and at the phase changes), from the 2 s samples."""
    samples = r["samples"]
    marks = sorted(set([0.0, r["steady_s"], r["steady_s"] + r["burst_s"], r["peak_backlog_t"]]
                       + [float(t) for t in range(30, int(samples[-1][0]) + 1, 30)]))
    picked, seen = [], set()
    for m in marks:
        s = min(samples, key=lambda x: abs(x[0] - m))
        if s[0] not in seen:
            seen.add(s[0])
            picked.append(s)
    if samples[-1][0] not in seen:
        picked.append(samples[-1])
    picked.sort()

    def phase(t):
        if t < r["steady_s"]:
            return f"steady ({r['steady_rate_per_min']:.0f}/min)"
        if t < r["steady_s"] + r["burst_s"]:
            return f"burst ({r['burst_rate_per_min']:.0f}/min)"
        return "drain"
    out = ["| t (s) | producing | windows produced | verdicts | backlog (pending) |", "|---|---|---|---|---|"]
    out += [f"| {t:.0f} | {phase(t)} | {p} | {j} | {b} |" for t, p, j, b in picked]
    return "\n".join(out)


def slopes_b(r):
    """How fast the backlog grew during the burst and fell after it (least squares over the samples)."""
    def slope(points):
        if len(points) < 2:
            return float("nan")
        n = len(points)
        mx, my = sum(p[0] for p in points) / n, sum(p[1] for p in points) / n
        sxx = sum((p[0] - mx) ** 2 for p in points)
        return 60 * sum((p[0] - mx) * (p[1] - my) for p in points) / sxx if sxx else float("nan")
    b0, b1 = r["steady_s"] + 10, r["t_stop"]
    grow = slope([(t, pending) for t, _, _, pending in r["samples"] if b0 <= t <= b1])
    fall = slope([(t, pending) for t, _, _, pending in r["samples"] if r["t_stop"] + 2 <= t and pending > 0])
    budget = r["budget_rpm"]
    return (f"The backlog grew by {grow:.1f} windows/min during the burst (after its first 10 s; "
            f"{r['burst_rate_per_min']:.0f} − {budget:g} = {r['burst_rate_per_min'] - budget:.0f} expected) and fell by "
            f"{-fall:.1f}/min once the producers stopped ({budget:g} expected): the budget was used in full while windows "
            "waited" + (", and never exceeded." if r["max_requests_60s"] <= budget + 1 else
                        f", but exceeded: {r['max_requests_60s']} requests in one 60 s."))


def report(a):
    with open(a.result) as f:
        r = json.load(f)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    parts = [f"## bench/analysis — {date}, {machine()}", ""]
    parts.append(
        "A release `tttd` judging windows against a local instant chat-completions server (`bench.py chat-server`: "
        "Python `ThreadingHTTPServer`, keep-alive, answers a valid verdict at once — `Neutre`, or `Discours haineux` for "
        "the one window in 50 that holds the bench's hateful phrase). Windows are inserted with psql into `transcripts` "
        "(`analysis_state = 'pending'`, distinct texts of ~40 words, so the verdict cache never serves them), as the "
        "transcription pipelines would; `transcription.enabled` false. PostgreSQL from `scripts/pg-private` "
        "(fsync off), a fresh database per phase; tttd, PostgreSQL and the chat server share the machine. "
        "Run: `bench/analysis/run` (`--quick`: shorter phases); bench/analysis/bench.py says exactly how each figure is "
        "measured.")
    parts.append("")
    if "A" in r:
        A = r["A"]
        parts.append(f"### A — throughput: {A['windows']:,} windows queued at once, `requests_per_minute` 1,000,000")
        parts.append("")
        parts.append(table_a(A))
        parts.append("")
    if "B" in r:
        B = r["B"]
        parts.append(f"### B — budget and backlog: `requests_per_minute` {B['budget_rpm']:g}, {B['lives']} lives producing windows")
        parts.append("")
        parts.append(f"Each live inserts a window every {B['steady_period_s']:g} s for {B['steady_s']:g} s "
                     f"({B['steady_rate_per_min']:.0f} windows/min in all, under the budget), then every "
                     f"{B['burst_period_s']:g} s for {B['burst_s']:g} s ({B['burst_rate_per_min']:.0f}/min, over it), "
                     "then stops; the lives' first windows are staggered over the period. Backlog = windows pending, "
                     "sampled every 2 s; queue wait = `analyses.created_at` − `transcripts.created_at`.")
        parts.append("")
        parts.append(table_b(B))
        parts.append("")
        parts.append(timeline_b(B))
        parts.append("")
        parts.append(slopes_b(B))
        parts.append("")
        shown = [s for s in B["status_samples"] if s[1] is not None]
        if shown:
            peak = max(shown, key=lambda s: s[1])
            parts.append(f"`tttctl status` (sampled every 10 s) showed the backlog too — at most {peak[1]} windows "
                         f"waiting (t = {peak[0]:.0f} s; it refreshes its counts every few seconds), "
                         f"analysis state `{peak[2]}`.")
            parts.append("")
    if a.note:
        parts.append(a.note)
        parts.append("")
    section = "\n".join(parts).rstrip("\n") + "\n"
    print(section)
    if a.doc:
        replace_section(a.doc, section)
        log(f"written to {a.doc}")


def replace_section(doc, section):
    """Replaces the "## bench/analysis" section of doc (or appends it); every other line is kept."""
    text = (open(doc, encoding="utf-8").read() if os.path.exists(doc)
            else "# Performance\n\nFigures measured by the benchmarks in `bench/` (`make bench`).\n")
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith("## bench/analysis")), None)
    if start is None:
        body = text.rstrip("\n")
        new = body + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        before = "\n".join(lines[:start]).rstrip("\n")
        after = "\n".join(lines[end:])
        new = (before + "\n\n" if before else "") + section + ("\n" + after if after.strip() else "")
        new = new.rstrip("\n") + "\n"
    with open(doc, "w", encoding="utf-8") as f:
        f.write(new)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("chat-server")
    s.add_argument("--port", type=int, required=True)
    r = sub.add_parser("run")
    r.add_argument("--bin", required=True)
    r.add_argument("--pg-url", required=True)
    r.add_argument("--pg-bindir", required=True)
    r.add_argument("--work", required=True)
    r.add_argument("--prompt", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--phases", default="AB")
    r.add_argument("--windows", type=int, default=2000)
    r.add_argument("--idle", type=float, default=5)
    r.add_argument("--lives", type=int, default=5)
    r.add_argument("--budget", type=float, default=30)
    r.add_argument("--steady", type=float, default=180)
    r.add_argument("--burst", type=float, default=180)
    r.add_argument("--steady-period", type=float, default=15)
    r.add_argument("--burst-period", type=float, default=5)
    r.add_argument("--quick", action="store_true")
    r.add_argument("--seed", type=int, default=1)
    p = sub.add_parser("report")
    p.add_argument("--doc")
    p.add_argument("--note")
    p.add_argument("result")
    a = parser.parse_args()
    if a.command == "chat-server":
        chat_server(a)
    elif a.command == "run":
        Bench(a).run()
    else:
        report(a)


if __name__ == "__main__":
    main()
