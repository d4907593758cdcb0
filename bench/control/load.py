#!/usr/bin/env python3
"""load.py — a load generator for tttd's control socket (newline-delimited JSON-RPC 2.0).

Each client has its own connection and sends requests back to back (the next one as soon as the
previous answer is in), for a fixed time; the clients are threads, spread over a few processes so
that Python's global interpreter lock does not make the load tool the bottleneck. Prints one JSON
object: requests, errors, requests/s, and latency percentiles in milliseconds.

    load.py --socket PATH [--method status] [--params JSON] [--clients 50] [--duration 10]
            [--processes N]

Standard library only.
"""
import argparse
import json
import multiprocessing
import os
import socket
import sys
import threading
import time


def client_loop(path, request, stop_at, start_at, latencies, counters, lock):
    """One connection: request, wait for the whole reply line, repeat until stop_at."""
    done = errors = 0
    mine = []
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
    except OSError as error:
        with lock:
            counters["connect_errors"] += 1
            counters["first_error"] = counters.get("first_error") or f"connect: {error}"
        return
    buffer = b""
    while time.perf_counter() < start_at:
        time.sleep(0.001)
    try:
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                break
            sock.sendall(request)
            while True:
                newline = buffer.find(b"\n")
                if newline >= 0:
                    line, buffer = buffer[:newline], buffer[newline + 1:]
                    break
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise ConnectionError("tttd closed the connection")
                buffer += chunk
            mine.append(time.perf_counter() - now)
            # An error reply has an "error" object; no result can hold that text unescaped.
            if b'"error":{' in line:
                errors += 1
            done += 1
    except OSError as error:
        with lock:
            counters["io_errors"] += 1
            counters["first_error"] = counters.get("first_error") or f"{type(error).__name__}: {error}"
    finally:
        sock.close()
    with lock:
        counters["requests"] += done
        counters["errors"] += errors
        latencies.extend(mine)


def process_main(path, request, clients, start_at, duration, queue):
    latencies, lock = [], threading.Lock()
    counters = {"requests": 0, "errors": 0, "connect_errors": 0, "io_errors": 0}
    stop_at = start_at + duration
    threads = [threading.Thread(target=client_loop, args=(path, request, stop_at, start_at, latencies, counters, lock))
               for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put((counters, latencies))


def percentile(sorted_values, fraction):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, int(round(fraction * (len(sorted_values) - 1)))))
    return sorted_values[index]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--method", default="status")
    parser.add_argument("--params", default=None, help="JSON params for the method")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=min(4, os.cpu_count() or 1))
    args = parser.parse_args()

    message = {"jsonrpc": "2.0", "id": 1, "method": args.method}
    if args.params:
        message["params"] = json.loads(args.params)
    request = (json.dumps(message, separators=(",", ":")) + "\n").encode()

    # Check once that the method answers without an error, so that a benchmark of errors is noticed.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.connect(args.socket)
        probe.sendall(request)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = probe.recv(1 << 20)
            if not chunk:
                break
            reply += chunk
        decoded = json.loads(reply)
        if "error" in decoded:
            print(f"load.py: {args.method} answers an error: {decoded['error']}", file=sys.stderr)
            sys.exit(1)
        reply_bytes = len(reply)

    processes = max(1, min(args.processes, args.clients))
    share = [args.clients // processes + (1 if i < args.clients % processes else 0) for i in range(processes)]
    queue = multiprocessing.Queue()
    start_at = time.perf_counter() + 1.0  # every connection open before the clock starts
    workers = [multiprocessing.Process(target=process_main, args=(args.socket, request, n, start_at, args.duration, queue))
               for n in share]
    for worker in workers:
        worker.start()
    totals = {"requests": 0, "errors": 0, "connect_errors": 0, "io_errors": 0}
    latencies = []
    first_error = None
    for _ in workers:
        counters, values = queue.get()
        for key in totals:
            totals[key] += counters[key]
        first_error = first_error or counters.get("first_error")
        latencies.extend(values)
    for worker in workers:
        worker.join()
    latencies.sort()
    result = {
        "method": args.method,
        "clients": args.clients,
        "processes": processes,
        "duration_s": args.duration,
        "reply_bytes": reply_bytes,
        "requests": totals["requests"],
        "errors": totals["errors"] + totals["connect_errors"] + totals["io_errors"],
        "requests_per_s": round(totals["requests"] / args.duration, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 3) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3) if latencies else None,
        "max_ms": round(latencies[-1] * 1000, 3) if latencies else None,
    }
    if first_error:
        result["first_error"] = first_error
    print(json.dumps(result))


if __name__ == "__main__":
    main()
