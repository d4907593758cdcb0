#!/usr/bin/env python3
"""bench.py — detection latency of tttd against tttsim (bench/detection/run drives it).

    bench.py case --bin DIR --pg-url URL --pg-bindir DIR --work DIR --accounts N
                  --schedule uniform|habitual --out FILE.json [--window S] [--dur-min S]
                  [--dur-max S] [--warmup S] [--concurrency C] [--seed N]
    bench.py report --png FILE --doc docs/performance.md RESULT.json [RESULT.json …]
    bench.py compare --baseline RESULT.json … --candidate RESULT.json …   (two builds run side by side)

`case` runs one case end to end and writes a JSON result:

1. a fresh database; tttsim with N accounts (sim0 … sim{N-1}); tttd with the budget
   N / 60 requests/s (so the round-robin bound N / (2 × budget) is 30 s), detection.interval 1 s
   (the budget is the limit), offline_confirmations 2, live_recheck 5 s;
2. phase 1: tttd starts (READY=1 on our NOTIFY_SOCKET), `tttctl accounts import` watches the N
   accounts, tttd stops (SIGTERM);
3. seeding, straight into the database while tttd is stopped: for the habitual schedule, a tenth
   of the accounts gets a history of 4–20 ended lives in the last 30 days (at least one in the last
   7 days) and every account gets the weight tttd's formula gives that history
   (√(lives in 30 days + 0.2 + 1 if live in the last 7 days)); for both schedules every account's
   next check is spread uniformly over its own interval (Σweights / (budget × weight)), which is
   where a daemon that has run for a while stands — no cold-start round in the measurement;
4. phase 2 (measured): tttd starts again; `tttctl follow --all --json` listens; after a warm-up,
   the lives are played through tttsim's control API (POST /_sim/lives at the start,
   DELETE /_sim/lives/{user} at the end, wall-clock times taken around each call). A live whose
   start is still undetected at its planned end is extended (10 s at a time) so that every end
   can be measured; the extension is counted. Detection latency = `events.created_at` of
   `live_started` − the live's start; end-detection latency = `live_ended` − the live's end.
   tttd's CPU time (utime + stime) and the TikTok requests tttsim counted are taken over phase 2;
   RSS is sampled every 2 s; tttsim's `max_rps` is read after each phase.

`report` prints a markdown table per case (metric | result | goal | met?), draws the latency
CDFs per account class into a PNG (matplotlib, when importable) and puts everything in
docs/performance.md under "## bench/detection — <date>, <machine>" (that section replaced, the
others kept).

Standard library only (matplotlib optional, for the plot).
"""
import argparse
import datetime
import heapq
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from performance_doc import replace_section  # noqa: E402

BOUND_S = 30.0          # accounts / (2 × budget) by construction
ROUND_S = 2 * BOUND_S   # budget = accounts / ROUND_S
LIVE_SHARE = 0.05       # 5 % of the accounts go live
HABITUAL_SHARE = 0.10   # a tenth of the accounts are habitual
HABITUAL_LIVES = 0.80   # … and produce this share of the lives (habitual schedule)


def log(*parts):
    print("bench/detection:", *parts, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- helpers: processes, HTTP, SQL ---------------------------------------------------------------

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


def http(method, url, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")

def wait_for_tttsim(sim_base, sim, work):
    """Returns when tttsim answers on `sim_base`; raises if it exits or stays silent 20 s."""
    for _ in range(200):
        try:
            if http("GET", sim_base + "/_sim/stats", timeout=1)[0] == 200:
                return
        except OSError:
            pass
        if sim.poll() is not None:
            raise RuntimeError(f"tttsim exited ({sim.returncode}); see {work}/tttsim.log")
        time.sleep(0.1)
    raise RuntimeError(f"tttsim did not answer; see {work}/tttsim.log")


def write_config(path, *, db_url, socket_path, sim_base, budget, concurrency, work):
    """tttd's configuration for the bench: detection only, against tttsim, at `budget` req/s."""
    with open(path, "w") as f:
        f.write(f"""database:
  url: "{db_url}"
control:
  socket: "{socket_path}"
tiktok:
  web_url: {sim_base}
  webcast_url: {sim_base}
  requests_per_second: {budget:.6f}
  concurrency: {concurrency}
detection:
  interval: 1s
  offline_confirmations: 2
  live_recheck: 5s
  lease: 60s
transcription:
  enabled: false
analysis:
  enabled: false
evidence:
  directory: "{work}/evidence"
log:
  level: notice
""")


def committed_transactions(db, dbname):
    """PostgreSQL's count of committed transactions in the bench's database (each tttd statement
    outside a transaction is one; a few are the bench's own psql calls)."""
    return int(db.run(f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{dbname}'")[0][0])


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
        self.messages = 0
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
            self.messages += 1
            if "READY=1" in message.split("\n"):
                self.ready.set()

    def close(self):
        self.closed = True
        self.sock.close()


class Follower:
    """`tttctl follow --all --json`: which lives tttd announced (for extending undetected lives)."""

    def __init__(self, procs, tttctl, socket_path, log_path):
        self.started, self.ended, self.lines = set(), set(), 0
        self.proc = procs.start([tttctl, "follow", "--all", "--json", "--socket", socket_path],
                                stdout=subprocess.PIPE, stderr=open(log_path, "w"), text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines += 1
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("type") == "live_started":
                self.started.add(event.get("username"))
            elif event.get("type") == "live_ended":
                self.ended.add(event.get("username"))


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the ")": state is fields[0]; utime and stime are stat fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


# --- the schedule --------------------------------------------------------------------------------

def plan(accounts, schedule, rng, window, dur_min, dur_max):
    """Returns (habitual set, [live dict]) — lives start uniformly over the window."""
    names = [f"sim{i}" for i in range(accounts)]
    n_lives = max(1, round(accounts * LIVE_SHARE))
    habitual = set()
    if schedule == "habitual":
        habitual = set(rng.sample(names, max(1, round(accounts * HABITUAL_SHARE))))
        dormant = [n for n in names if n not in habitual]
        n_h = round(n_lives * HABITUAL_LIVES)
        chosen = [(n, "habitual") for n in rng.sample(sorted(habitual), n_h)]
        chosen += [(n, "dormant") for n in rng.sample(dormant, n_lives - n_h)]
    else:
        chosen = [(n, "no history") for n in rng.sample(names, n_lives)]
    lives = []
    for name, klass in chosen:
        lives.append({"username": name, "class": klass,
                      "offset_s": rng.uniform(0, window), "duration_s": rng.uniform(dur_min, dur_max)})
    lives.sort(key=lambda live: live["offset_s"])
    return habitual, lives


def seed_sql(habitual, rng, budget):
    """History of the habitual accounts (ended lives, 4–20 in 30 days, one in the last 7 days),
    tttd's weights for it, and every account's next check spread over its own interval."""
    now = time.time()
    rows = []
    for name in sorted(habitual):
        k = rng.randint(4, 20)
        starts = [now - rng.uniform(3600 * 2, 7 * 86400)]                   # the one this week
        starts += [now - rng.uniform(3600 * 2, 29 * 86400) for _ in range(k - 1)]
        for started in starts:
            room = str(rng.randrange(7_000_000_000_000_000_000, 7_999_999_999_999_999_999))
            rows.append(f"('{name}', '{room}', to_timestamp({started:.3f}))")
    statements = ["BEGIN;"]
    for i in range(0, len(rows), 2000):
        statements.append(
            "INSERT INTO lives (account_id, username, room_id, title, started_at, ended_at, status, end_reason)\n"
            "SELECT a.id, v.u, v.r, 'seeded history', v.s, v.s + interval '1 hour', 'ended', 'offline'\n"
            f"FROM (VALUES {', '.join(rows[i:i + 2000])}) AS v(u, r, s) JOIN accounts a ON a.username = v.u;")
    statements.append("""
UPDATE accounts a SET weight = sqrt(coalesce(h.n, 0) + 0.2 + CASE WHEN h.recent THEN 1 ELSE 0 END)
FROM (SELECT x.id,
             (SELECT count(*) FROM lives l WHERE l.account_id = x.id AND l.started_at > now() - interval '30 days') AS n,
             coalesce((SELECT max(l.started_at) > now() - interval '7 days' FROM lives l WHERE l.account_id = x.id), false) AS recent
      FROM accounts x) h
WHERE h.id = a.id;""")
    statements.append(f"""
UPDATE accounts SET lease_owner = NULL, lease_expires_at = NULL, offline_streak = 0,
       next_check_at = now() + interval '2 seconds'
                       + make_interval(secs => random() * (SELECT sum(weight) FROM accounts) / ({budget} * weight));""")
    statements.append("COMMIT;")
    return "\n".join(statements), len(rows)


# --- one case ------------------------------------------------------------------------------------

def run_case(a):
    rng = random.Random(a.seed)
    n, schedule = a.accounts, a.schedule
    budget = n / ROUND_S
    name = f"{n}-{schedule}"
    work = os.path.join(a.work, name)
    os.makedirs(work, exist_ok=True)
    procs = Procs()
    tttd_bin, tttctl_bin, tttsim_bin = (os.path.join(a.bin, b) for b in ("tttd", "tttctl", "tttsim"))
    psql = os.path.join(a.pg_bindir, "psql")
    dbname = f"det_{n}_{schedule}"
    SQL(psql, with_database(a.pg_url, "postgres")).run(f"DROP DATABASE IF EXISTS {dbname}")
    SQL(psql, with_database(a.pg_url, "postgres")).run(f"CREATE DATABASE {dbname}")
    db_url = with_database(a.pg_url, dbname)
    db = SQL(psql, db_url)
    result = {"case": name, "accounts": n, "schedule": schedule, "budget_rps": budget, "bound_s": BOUND_S,
              "concurrency": a.concurrency, "window_s": a.window, "duration_s": [a.dur_min, a.dur_max],
              "warmup_s": a.warmup, "seed": a.seed}
    try:
        # tttsim
        port = free_port()
        sim_base = f"http://127.0.0.1:{port}"
        sim = procs.start([tttsim_bin, "--listen", f"127.0.0.1:{port}", "--accounts", str(n), "--seed", str(a.seed)],
                          stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "tttsim.log"), "w"))
        wait_for_tttsim(sim_base, sim, work)

        socket_path = os.path.join(work, "control.sock")
        config = os.path.join(work, "tttd.yaml")
        write_config(config, db_url=db_url, socket_path=socket_path, sim_base=sim_base, budget=budget,
                     concurrency=a.concurrency, work=work)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TTTD_") and k != "TTTCTL_SOCKET"}

        def start_tttd(phase):
            notify = Notify(os.path.join(work, "notify.sock"))
            env["NOTIFY_SOCKET"] = notify.path
            proc = procs.start([tttd_bin, "--config", config], env=env, stdout=subprocess.DEVNULL,
                               stderr=open(os.path.join(work, f"tttd-{phase}.log"), "w"))
            deadline = time.monotonic() + 120
            while not notify.ready.wait(0.2):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"tttd did not become ready (exit {proc.poll()}); see {work}/tttd-{phase}.log")
            return proc, notify

        def ctl(*args):
            out = subprocess.run([tttctl_bin, *args, "--socket", socket_path], capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"tttctl {' '.join(args)}: exit {out.returncode}: {out.stderr.strip()}")
            return out.stdout

        # Phase 1: watch the accounts.
        log(f"{name}: phase 1 — tttd watches {n:,} accounts (budget {budget:.2f} req/s)")
        tttd, notify = start_tttd("import")
        names_file = os.path.join(work, "accounts.txt")
        with open(names_file, "w") as f:
            f.write("".join(f"sim{i}\n" for i in range(n)))
        t0 = time.monotonic()
        ctl("accounts", "import", names_file)
        result["import_s"] = time.monotonic() - t0
        time.sleep(2)
        code = procs.stop(tttd)
        notify.close()
        if code != 0:
            raise RuntimeError(f"tttd exited {code} after SIGTERM (phase 1)")
        status, stats = http("GET", sim_base + "/_sim/stats")
        result["phase1"] = {"requests": sum(stats["requests"].values()), "max_rps": stats["max_rps"],
                            "seconds": time.monotonic() - t0}

        # Seeding and the plan.
        habitual, lives = plan(n, schedule, rng, a.window, a.dur_min, a.dur_max)
        sql, history_rows = seed_sql(habitual, rng, budget)
        db.run(sql, stdin_sql=True)
        weights = db.run("SELECT count(*), sum(weight), min(weight), max(weight) FROM accounts")[0]
        result["seed"] = {"history_lives": history_rows, "habitual_accounts": len(habitual),
                          "accounts": int(weights[0]), "sum_weight": float(weights[1]),
                          "min_weight": float(weights[2]), "max_weight": float(weights[3])}
        if schedule == "habitual":
            w_h = [float(r[0]) for r in db.run("SELECT weight FROM accounts WHERE username = ANY('{%s}')"
                                                 % ",".join(sorted(habitual)))]
            sw = float(weights[1])
            result["seed"]["interval_habitual_s"] = sw / (budget * (sum(w_h) / len(w_h)))
            result["seed"]["interval_dormant_s"] = sw / (budget * math.sqrt(0.2))
        log(f"{name}: seeded {history_rows} history lives for {len(habitual)} habitual accounts; "
            f"Σweight {float(weights[1]):.1f}")
        # Phase 2: measured.
        http("DELETE", sim_base + "/_sim/stats")
        tttd, notify = start_tttd("measure")
        cpu0, t_ready = proc_cpu_s(tttd.pid), time.time()
        xacts0 = committed_transactions(db, dbname)
        follower = Follower(procs, tttctl_bin, socket_path, os.path.join(work, "follow.log"))
        rss = {"max_kb": 0, "samples": 0}
        stop_sampling = threading.Event()

        def sample():
            while not stop_sampling.wait(2):
                try:
                    rss["max_kb"] = max(rss["max_kb"], proc_status_kb(tttd.pid, "VmRSS"))
                    rss["samples"] += 1
                except OSError:
                    return
        threading.Thread(target=sample, daemon=True).start()
        log(f"{name}: phase 2 — warm-up {a.warmup:.0f} s, then {len(lives)} lives over {a.window:.0f} s")
        time.sleep(a.warmup)

        t_base = time.time()
        queue = [(t_base + live["offset_s"], "start", i) for i, live in enumerate(lives)]
        heapq.heapify(queue)
        extension_cap = a.dur_max + 300
        while queue:
            when, action, i = heapq.heappop(queue)
            delay = when - time.time()
            if delay > 0:
                time.sleep(delay)
            live = lives[i]
            if action == "start":
                before = time.time()
                status, body = http("POST", sim_base + "/_sim/lives", {"username": live["username"], "title": "bench"})
                after = time.time()
                if status != 201:
                    raise RuntimeError(f"POST /_sim/lives {live['username']}: {status} {body}")
                live["start"] = (before + after) / 2
                live["start_call_ms"] = (after - before) * 1000
                heapq.heappush(queue, (live["start"] + live["duration_s"], "end", i))
            else:
                if live["username"] not in follower.started and time.time() - live["start"] < extension_cap:
                    live["extended_s"] = live.get("extended_s", 0) + 10
                    heapq.heappush(queue, (time.time() + 10, "end", i))
                    continue
                before = time.time()
                status, body = http("DELETE", sim_base + "/_sim/lives/" + live["username"])
                after = time.time()
                if status != 200:
                    raise RuntimeError(f"DELETE /_sim/lives/{live['username']}: {status} {body}")
                live["end"] = (before + after) / 2
        t_last_end = time.time()
        # Wait for the last ends to be detected (end detection is a few seconds).
        while time.time() - t_last_end < 90:
            if all(l["username"] in follower.ended for l in lives if l["username"] in follower.started):
                break
            time.sleep(1)
        time.sleep(2)
        t_end = time.time()
        cpu1 = proc_cpu_s(tttd.pid)
        xacts1 = committed_transactions(db, dbname)
        rss_end = proc_status_kb(tttd.pid, "VmRSS")
        hwm = proc_status_kb(tttd.pid, "VmHWM")
        stop_sampling.set()
        status, stats = http("GET", sim_base + "/_sim/stats")
        try:
            tttd_status = json.loads(ctl("status", "--json"))
        except (RuntimeError, ValueError) as error:
            tttd_status = {"error": str(error)}
        requests = sum(stats["requests"].values())
        result["phase2"] = {
            "seconds": t_end - t_ready, "requests": requests, "requests_by_path": stats["requests"],
            "max_rps": stats["max_rps"], "blocked": stats.get("blocked", 0),
            "mean_rps": requests / (t_end - t_ready), "cpu_s": cpu1 - cpu0,
            "cpu_ms_per_request": 1000 * (cpu1 - cpu0) / max(1, requests),
            "db_transactions": xacts1 - xacts0,
            "rss_end_kb": rss_end, "rss_max_sampled_kb": max(rss["max_kb"], rss_end), "vm_hwm_kb": hwm,
            "notify_messages": notify.messages, "follow_lines": follower.lines, "tttd_status": tttd_status,
        }
        code = procs.stop(tttd)
        notify.close()
        result["tttd_exit"] = code

        # Exact event times from the database (created_at = the recording transaction's now()).
        events = db.run("SELECT type, username, extract(epoch FROM created_at), live_id FROM events "
                        "WHERE type IN ('live_started', 'live_ended') ORDER BY id")
        by_user = {}
        for kind, user, at, live_id in events:
            by_user.setdefault(user, []).append((kind, float(at), live_id))
        planned = {l["username"] for l in lives}
        false_starts = sorted({u for u, evs in by_user.items()
                               if u not in planned and any(k == "live_started" for k, _, _ in evs)})
        for live in lives:
            evs = by_user.get(live["username"], [])
            started = [at for k, at, _ in evs if k == "live_started" and at >= live["start"] - 1]
            live["detected"] = started[0] if started else None
            live["latency_s"] = started[0] - live["start"] if started else None
            live["live_started_events"] = len(started)
            ended = [at for k, at, _ in evs if k == "live_ended" and "end" in live and at >= live["end"] - 1]
            live["end_detected"] = ended[0] if ended else None
            live["end_latency_s"] = ended[0] - live["end"] if ended else None
            # An end announced before the live really ended would be a false end.
            live["early_ends"] = len([at for k, at, _ in evs if k == "live_ended" and at < live.get("end", 0) - 1
                                      and at > live["start"]])
        result["lives"] = lives
        result["false_starts"] = false_starts
        result["ok"] = True
        log(f"{name}: done — {sum(1 for l in lives if l['latency_s'] is not None)}/{len(lives)} starts detected")
    finally:
        procs.stop_all()
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)


# --- report --------------------------------------------------------------------------------------

def percentile(values, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def ok(good):
    return "✅" if good else "❌"


def case_table(r):
    lives, n, budget, bound = r["lives"], r["accounts"], r["budget_rps"], r["bound_s"]
    lat = [l["latency_s"] for l in lives if l["latency_s"] is not None]
    ends = [l["end_latency_s"] for l in lives if l["end_latency_s"] is not None]
    p2 = r["phase2"]
    rows = []

    def row(metric, result, goal="—", met=""):
        rows.append((metric, result, goal, met))

    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    if r["schedule"] == "uniform":
        row("detection latency p50", f"{p50:.1f} s = {p50 / bound:.2f} × bound", f"≤ 1.1 × bound = {1.1 * bound:.0f} s",
            ok(p50 <= 1.1 * bound))
        row("detection latency p99", f"{p99:.1f} s = {p99 / bound:.2f} × bound", f"≤ 3 × bound = {3 * bound:.0f} s",
            ok(p99 <= 3 * bound))
    else:
        row("detection latency p50", f"{p50:.1f} s = {p50 / bound:.2f} × bound", f"≤ 0.5 × bound = {0.5 * bound:.0f} s",
            ok(p50 <= 0.5 * bound))
        row("detection latency p99", f"{p99:.1f} s = {p99 / bound:.2f} × bound")
        for klass in ("habitual", "dormant"):
            xs = [l["latency_s"] for l in lives if l["class"] == klass and l["latency_s"] is not None]
            row(f"… {klass} accounts ({len(xs)} lives) p50 / p99",
                f"{percentile(xs, 50):.1f} s / {percentile(xs, 99):.1f} s")
        seed = r["seed"]
        row("planned check interval habitual / dormant (Σw / (budget × w))",
            f"{seed['interval_habitual_s']:.1f} s / {seed['interval_dormant_s']:.1f} s")
    row("detection latency mean", f"{sum(lat) / max(1, len(lat)):.1f} s (round-robin bound: {bound:.0f} s)")
    missed = len(lives) - len(lat)
    extended = sum(1 for l in lives if l.get("extended_s"))
    detail = f"{len(lat)}/{len(lives)}"
    if extended:
        detail += f" ({extended} extended past their planned end until detected)"
    row("lives detected", detail, "all", ok(missed == 0))
    row("false starts / early ends", f"{len(r['false_starts'])} / {sum(l['early_ends'] for l in lives)}", "0 / 0",
        ok(not r["false_starts"] and not sum(l["early_ends"] for l in lives)))
    row("end-detection latency p50 / p99",
        f"{percentile(ends, 50):.1f} s / {percentile(ends, 99):.1f} s ({len(ends)} ends)")
    max_rps = max(p2["max_rps"], r["phase1"]["max_rps"])
    row("highest request rate tttsim saw (1 s window)",
        f"{max_rps} req/s = {max_rps / budget:.0%} of the budget {budget:.2f} req/s "
        f"(measured phase: {p2['max_rps']}, import phase: {r['phase1']['max_rps']})",
        "≤ budget + 10 %", ok(max_rps <= 1.1 * budget))
    lookups = sum(v for k, v in p2["requests_by_path"].items() if "user/room" in k)
    lookup_rate = lookups / max(1e-9, p2["seconds"])
    row("mean request rate", f"{p2['mean_rps']:.2f} req/s = {p2['mean_rps'] / budget:.0%} of the budget "
        f"(lookups alone: {lookup_rate:.2f} req/s, i.e. one check of every account each {n / max(1e-9, lookup_rate):.0f} s "
        f"against the {ROUND_S:.0f} s the budget allows; a round robin at that pace averages "
        f"{n / max(1e-9, lookup_rate) / 2:.0f} s)")
    by_path = ", ".join(f"{k.strip('/').split('/')[-1] or k}: {v:,}" for k, v in sorted(p2["requests_by_path"].items()))
    row("TikTok requests (checks) in the measured phase", f"{p2['requests']:,} in {p2['seconds']:.0f} s ({by_path})")
    row("tttd CPU time per check", f"{p2['cpu_ms_per_request']:.3f} ms ({p2['cpu_s']:.2f} s CPU)", "≤ 0.3 ms",
        ok(p2["cpu_ms_per_request"] <= 0.3))
    if "db_transactions" in p2:
        row("database transactions per check", f"{p2['db_transactions'] / max(1, p2['requests']):.2f} "
            f"({p2['db_transactions']:,} committed, {p2['db_transactions'] / max(1e-9, p2['seconds']):.1f} a second)")
    rss_mb = p2["rss_max_sampled_kb"] / 1024
    rss_text = f"{rss_mb:.1f} MB (peak sampled every 2 s; VmHWM {p2['vm_hwm_kb'] / 1024:.1f} MB)"
    if n >= 10000:
        row("tttd RSS", rss_text, "≤ 60 MB at 10,000 accounts", ok(rss_mb <= 60))
    else:
        row("tttd RSS", rss_text)
    out = ["| metric | result | goal | met? |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(out)


def plot(results, png):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not importable: no plot")
        return False
    sizes = sorted({r["accounts"] for r in results})
    schedules = ["uniform", "habitual"]
    fig, axes = plt.subplots(len(sizes), 2, figsize=(11, 4.2 * len(sizes)), squeeze=False)
    colours = {"no history": "tab:blue", "habitual": "tab:green", "dormant": "tab:red"}
    for i, size in enumerate(sizes):
        for j, schedule in enumerate(schedules):
            ax = axes[i][j]
            match = [r for r in results if r["accounts"] == size and r["schedule"] == schedule]
            ax.set_title(f"{size:,} accounts, {schedule} (budget {size / ROUND_S:.1f} req/s)")
            ax.set_xlabel("detection latency (s): live start → live_started")
            ax.set_ylabel("fraction of lives")
            if not match:
                ax.text(0.5, 0.5, "not run", ha="center", transform=ax.transAxes)
                continue
            r = match[0]
            bound = r["bound_s"]
            classes = ["no history"] if schedule == "uniform" else ["habitual", "dormant"]
            series = [("all lives", [l["latency_s"] for l in r["lives"] if l["latency_s"] is not None], "black")]
            if schedule == "habitual":
                series += [(f"{k} accounts", [l["latency_s"] for l in r["lives"] if l["class"] == k and l["latency_s"] is not None],
                            colours[k]) for k in classes]
            for label, xs, colour in series:
                xs = sorted(xs)
                if not xs:
                    continue
                ys = [(k + 1) / len(xs) for k in range(len(xs))]
                ax.step(xs, ys, where="post", color=colour, label=f"{label} (n={len(xs)}, p50 {percentile(xs, 50):.0f} s)",
                        linewidth=1.8 if label == "all lives" else 1.3)
            ax.axvline(bound, color="grey", linestyle="--", linewidth=1, label=f"round-robin bound {bound:.0f} s")
            if schedule == "uniform":
                ax.axvline(1.1 * bound, color="tab:orange", linestyle=":", linewidth=1, label="goal p50 ≤ 1.1 × bound")
            else:
                ax.axvline(0.5 * bound, color="tab:orange", linestyle=":", linewidth=1, label="goal p50 ≤ 0.5 × bound")
            ax.set_xlim(left=0)
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7.5, loc="lower right")
    fig.suptitle("tttd detection latency against tttsim (CDF per account class)", fontsize=11)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    return True


def report(a):
    results = []
    for path in a.results:
        with open(path) as f:
            results.append(json.load(f))
    results.sort(key=lambda r: (r["accounts"], r["schedule"] != "uniform"))
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    heading = f"## bench/detection — {date}, {os.cpu_count()} cores, {cpu}"
    parts = [heading, ""]
    parts.append(
        "Detection latency of a release `tttd` against `tttsim`, budget = accounts ÷ 60 req/s so that the round-robin "
        "bound accounts ÷ (2 × budget) is 30 s; one egress, `tiktok.concurrency` "
        f"{results[0]['concurrency'] if results else '?'}, `detection.interval` 1 s, `offline_confirmations` 2, "
        "`live_recheck` 5 s. 5 % of the accounts go live once, starts uniform over "
        f"{results[0]['window_s'] if results else '?':.0f} s after a {results[0]['warmup_s'] if results else '?':.0f} s warm-up, "
        f"lives lasting {results[0]['duration_s'][0]:.0f}–{results[0]['duration_s'][1]:.0f} s. "
        "*Uniform*: the lives are spread over all accounts, none has history. *Habitual*: a tenth of the accounts "
        "has **seeded history** (4–20 ended lives in the last 30 days, one in the last 7, inserted into `lives` while "
        "tttd was stopped, with `accounts.weight` set by tttd's formula) and produces 80 % of the lives; the other 20 % "
        "come from dormant accounts. In both, every account's next check was spread uniformly over its own interval "
        "before the measured run (a daemon in its steady state, no cold-start round). Latency: live start "
        "(`POST /_sim/lives`) → `live_started` (`events.created_at`); end: `DELETE /_sim/lives/…` → `live_ended`. "
        "CPU per check: tttd's utime + stime over the measured phase ÷ the TikTok requests tttsim counted "
        "(lookups + check_alive). PostgreSQL from `scripts/pg-private` (fsync off) and tttsim share the machine with "
        "tttd. Run: `bench/detection/run` (`--quick`: the 1,000-account cases only).")
    parts.append("")
    for r in results:
        parts.append(f"### {r['accounts']:,} accounts, {r['schedule']} — budget {r['budget_rps']:.2f} req/s, "
                     f"{len(r['lives'])} lives")
        parts.append("")
        parts.append(case_table(r))
        parts.append("")
    if a.png and plot(results, a.png):
        rel = os.path.relpath(a.png, os.path.dirname(os.path.abspath(a.doc)) if a.doc else ".")
        parts.append(f"![detection latency per account class]({rel})")
        parts.append("")
    if a.note:
        parts.append(a.note)
        parts.append("")
    section = "\n".join(parts).rstrip("\n") + "\n"
    print(section)
    if a.doc:
        replace_section(a.doc, "## bench/detection", section)
        log(f"written to {a.doc}")


def compare(a):
    """Two builds run side by side on the same cases: the figures that tell them apart."""
    def load(paths):
        out = {}
        for path in paths:
            with open(path) as f:
                r = json.load(f)
            out[(r["accounts"], r["schedule"])] = r
        return out
    baseline, candidate = load(a.baseline), load(a.candidate)
    print("| case | CPU per check, baseline → candidate | p50 (× bound) | p99 (× bound) | highest 1 s rate | lives detected |")
    print("|---|---|---|---|---|---|")
    for key in sorted(candidate, key=lambda k: (k[0], k[1] != "uniform")):
        if key not in baseline:
            continue
        pair = []
        for r in (baseline[key], candidate[key]):
            lat = [l["latency_s"] for l in r["lives"] if l["latency_s"] is not None]
            pair.append((r["phase2"]["cpu_ms_per_request"], percentile(lat, 50) / r["bound_s"],
                         percentile(lat, 99) / r["bound_s"], r["phase2"]["max_rps"] / r["budget_rps"],
                         f"{len(lat)}/{len(r['lives'])}"))
        (cb, p50b, p99b, rateb, livesb), (cc, p50c, p99c, ratec, livesc) = pair
        print(f"| {key[0]:,} {key[1]} | {cb:.3f} → {cc:.3f} ms ({100 * (cc / cb - 1):+.1f} %) | {p50b:.2f} → {p50c:.2f} "
              f"| {p99b:.2f} → {p99c:.2f} | {100 * rateb:.0f} % → {100 * ratec:.0f} % | {livesb} → {livesc} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("case")
    c.add_argument("--bin", required=True)
    c.add_argument("--pg-url", required=True)
    c.add_argument("--pg-bindir", required=True)
    c.add_argument("--work", required=True)
    c.add_argument("--accounts", type=int, required=True)
    c.add_argument("--schedule", choices=["uniform", "habitual"], required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--window", type=float, default=240)
    c.add_argument("--dur-min", type=float, default=150)
    c.add_argument("--dur-max", type=float, default=180)
    c.add_argument("--warmup", type=float, default=20)
    c.add_argument("--concurrency", type=int, default=8)
    c.add_argument("--seed", type=int, default=1)
    r = sub.add_parser("report")
    r.add_argument("--png")
    r.add_argument("--doc")
    r.add_argument("--note")
    r.add_argument("results", nargs="+")
    m = sub.add_parser("compare")
    m.add_argument("--baseline", nargs="+", required=True)
    m.add_argument("--candidate", nargs="+", required=True)
    a = parser.parse_args()
    if a.command == "case":
        run_case(a)
    elif a.command == "compare":
        compare(a)
    else:
        report(a)


if __name__ == "__main__":
    main()
