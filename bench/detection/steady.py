#!/usr/bin/env python3
"""steady.py — tttd's CPU per check in detection's steady state (bench/detection/steady drives it).

    steady.py --bin DIR --pg-url URL --pg-bindir DIR --work DIR [--accounts 1 1000 10000] [--settle 30] [--seconds 60] [--json FILE]
    steady.py --compare BASELINE.json CANDIDATE.json

For each account count N: a fresh database; tttsim with N accounts (none live); tttd with the budget
N ÷ 60 req/s (bench/detection's, so the round-robin bound is 30 s) and 8 workers, transcription
and analysis off, nobody following. The accounts are imported, tttd runs `--settle` seconds, then
tttd's utime + stime over `--seconds` is divided by the TikTok requests tttsim counted in that
time. Context switches are summed over tttd's threads. With N = 1 (a request a minute) the row is
tttd's fixed cost: CPU milliseconds a second. No lives, no follower: this isolates the cost of a
check that changes nothing, which bench/detection's figure also carries (with lives and events).
"""
import argparse
import json
import os
import subprocess
import sys
import time

from bench import ROUND_S, free_port, http, proc_cpu_s, proc_status_kb, wait_for_tttsim, with_database, write_config


def log(*parts):
    print("steady:", *parts, file=sys.stderr, flush=True)


def context_switches(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            for line in open(f"/proc/{pid}/task/{tid}/status"):
                if "ctxt_switches" in line:
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def run(a, n):
    psql = os.path.join(a.pg_bindir, "psql")
    db = f"steady_{n}"
    admin = with_database(a.pg_url, "postgres")
    quiet = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")
    subprocess.run([psql, admin, "-qc", f"DROP DATABASE IF EXISTS {db}"], check=True, env=quiet)
    subprocess.run([psql, admin, "-qc", f"CREATE DATABASE {db}"], check=True, env=quiet)
    work = os.path.join(a.work, f"steady-{n}")
    os.makedirs(work, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    procs = []
    try:
        sim = subprocess.Popen([os.path.join(a.bin, "tttsim"), "--listen", f"127.0.0.1:{port}", "--accounts", str(n)],
                               stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "tttsim.log"), "w"))
        procs.append(sim)
        wait_for_tttsim(base, sim, work)
        sock = os.path.join(work, "control.sock")
        config = os.path.join(work, "tttd.yaml")
        # bench/detection's settings: the same tttd, without lives.
        write_config(config, db_url=with_database(a.pg_url, db), socket_path=sock, sim_base=base,
                     budget=n / ROUND_S, concurrency=8, work=work)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TTTD_") and k not in ("TTTCTL_SOCKET", "NOTIFY_SOCKET")}
        tttd = subprocess.Popen([os.path.join(a.bin, "tttd"), "--config", config], env=env,
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "tttd.log"), "w"))
        procs.append(tttd)
        names = os.path.join(work, "accounts.txt")
        with open(names, "w") as f:
            f.write("".join(f"sim{i}\n" for i in range(n)))
        deadline = time.monotonic() + 120
        while True:
            out = subprocess.run([os.path.join(a.bin, "tttctl"), "accounts", "import", names, "--socket", sock],
                                 capture_output=True, text=True)
            if out.returncode == 0:
                break
            if tttd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tttd is not answering ({out.stderr.strip()}); see {work}/tttd.log")
            time.sleep(0.5)
        time.sleep(a.settle)
        http("DELETE", base + "/_sim/stats")
        cpu0, ctx0, t0 = proc_cpu_s(tttd.pid), context_switches(tttd.pid), time.monotonic()
        time.sleep(a.seconds)
        cpu1, ctx1, t1 = proc_cpu_s(tttd.pid), context_switches(tttd.pid), time.monotonic()
        _, stats = http("GET", base + "/_sim/stats")
        requests = sum(stats["requests"].values())
        return {"accounts": n, "seconds": t1 - t0, "requests": requests, "cpu_s": cpu1 - cpu0,
                "switches": ctx1 - ctx0, "rss_mb": proc_status_kb(tttd.pid, "VmRSS") / 1024}
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def per_check_ms(r):
    """CPU milliseconds per check, or None when the row is tttd's fixed cost (fewer checks than seconds)."""
    return r["cpu_s"] / r["requests"] * 1000 if r["requests"] >= r["seconds"] else None


def compare(baseline_path, candidate_path):
    """The candidate's CPU against the baseline's, row by row (both measured at the same time)."""
    with open(baseline_path) as f:
        baseline = {r["accounts"]: r for r in json.load(f)}
    with open(candidate_path) as f:
        candidate = json.load(f)
    print("| accounts | baseline | candidate | change |")
    print("|---:|---:|---:|---:|")
    for r in candidate:
        b = baseline.get(r["accounts"])
        if b is None:
            continue
        new, old = per_check_ms(r), per_check_ms(b)
        if new is None or old is None:
            new, old, unit = r["cpu_s"] / r["seconds"] * 1000, b["cpu_s"] / b["seconds"] * 1000, "ms a second"
        else:
            unit = "ms per check"
        print(f"| {r['accounts']:,} | {old:.3f} {unit} | {new:.3f} {unit} | {100 * (new - old) / old:+.1f} % |")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--compare", nargs=2, metavar=("BASELINE.json", "CANDIDATE.json"),
                   help="print the comparison of two runs' --json files and exit")
    p.add_argument("--bin")
    p.add_argument("--pg-url")
    p.add_argument("--pg-bindir")
    p.add_argument("--work")
    p.add_argument("--accounts", type=int, nargs="+", default=[1, 1000, 10000])
    p.add_argument("--settle", type=float, default=30)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--json", help="also write the rows there")
    a = p.parse_args()
    if a.compare:
        compare(*a.compare)
        return
    for required in ("bin", "pg_url", "pg_bindir", "work"):
        if getattr(a, required) is None:
            p.error(f"--{required.replace('_', '-')} is required")
    rows = []
    for n in a.accounts:
        log(f"{n} accounts: settling {a.settle:.0f} s, measuring {a.seconds:.0f} s")
        rows.append(run(a, n))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f)
    print("| accounts | checks / s | tttd CPU | CPU per check | context switches per check | RSS |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        rate = r["requests"] / r["seconds"]
        per_second = r["cpu_s"] / r["seconds"] * 1000
        if per_check_ms(r) is not None:
            per_check = f"{per_check_ms(r):.3f} ms"
            switches = f"{r['switches'] / r['requests']:.1f}"
        else:
            per_check, switches = "— (idle)", f"{r['switches'] / r['seconds']:.0f} a second"
        print(f"| {r['accounts']:,} | {rate:.1f} | {per_second:.2f} ms a second | {per_check} | {switches} | {r['rss_mb']:.0f} MB |")


if __name__ == "__main__":
    main()
