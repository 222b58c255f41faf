#!/usr/bin/env python3
"""JS benchmark: the same small app on Marg (JavaScriptCore), Bun.serve, Node node:http and
Express 5. Scenarios: hello text (`/`), JSON (`/json`), a route with a param and a query
(`/users/42?q=marg`), and pipelined x16 hello; on request (--scenarios) also `list`, a
~8 KB JSON array serialised for each response, and `page`, a ~15 KB constant HTML page.
Each server runs alone on 127.0.0.1 with one
worker, pinned to one core; the load generator is pinned to another. Per run: req/s, p99,
server CPU microseconds per request (utime+stime / requests) and RSS, with ratios to Bun.

Usage: bench/js.sh [--duration 5] [--servers marg,bun,node,express[,marg-native]]
                   [--scenarios hello,json,param,pipelined[,list,page]] [--rounds 1]
With --rounds N the servers take turns N times (marg, bun, ..., marg, bun, ...) and each
figure is the run with the median us/req: on a shared, noisy machine the ratios then come
from runs spread over the same period.
Helpers (process control, wrk/h2load parsing) come from bench/run.py.
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
import run as base  # noqa: E402  (bench/run.py)

PATHS = {"hello": "/", "json": "/json", "param": "/users/42?q=marg", "pipelined": "/",
         "list": "/list", "page": "/page"}


def start(name, port, cpu):
    env = dict(os.environ, PORT=str(port))
    pin = ["taskset", "-c", cpu]
    bun = os.path.join(BENCH, "node_modules/@oven/bun-linux-x64/bin/bun")
    if name in ("marg", "marg-native"):
        marg = os.environ.get("MARG_BIN") or os.path.join(
            os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release/marg")
        # marg-native: the built-in Rust hello handler, no JS (the floor under the JS numbers;
        # it answers "Hello, World!" on every path, so only hello and pipelined compare).
        app = [] if name == "marg-native" else [os.path.join(HERE, "marg.js")]
        cmd = pin + [marg, "serve"] + app + ["--host", "127.0.0.1", "--port", str(port),
                                             "--workers", "1"]
    elif name == "bun":
        cmd = pin + [bun, os.path.join(HERE, "bun.js")]
    elif name == "node":
        cmd = pin + ["node", os.path.join(HERE, "node.js")]
    elif name == "express":
        cmd = pin + ["node", os.path.join(HERE, "express.js")]
        env["NODE_PATH"] = os.path.join(BENCH, "node_modules")
    else:
        raise SystemExit(f"unknown server {name}")
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if not base.wait_port(port):
        err = p.stderr.read(2000).decode(errors="replace") if p.poll() is not None else ""
        base.stop(p)
        raise RuntimeError(f"{name} did not start: {err}")
    return p


def load(scenario, port, cpu, duration):
    url = f"http://127.0.0.1:{port}{PATHS[scenario]}"
    pin = ["taskset", "-c", cpu]
    if scenario == "pipelined":
        cmd = pin + ["h2load", "--h1", "-m16", "-c16", "-t1", "-D", str(duration), url]
    else:
        cmd = pin + ["wrk", "-t1", "-c64", f"-d{duration}s", "--latency", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    return (base.parse_h2load if scenario == "pipelined" else base.parse_wrk)(out), out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--servers", default="marg,bun,node,express")
    ap.add_argument("--scenarios", default="hello,json,param,pipelined")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--client-cpu", default="1")
    args = ap.parse_args()
    servers = args.servers.split(",")
    scenarios = args.scenarios.split(",")
    runs = {}
    for name in [n for _ in range(max(1, args.rounds)) for n in servers]:
        port = base.free_port()
        try:
            p = start(name, port, args.server_cpu)
        except (RuntimeError, FileNotFoundError) as e:
            print(f"skip {name}: {e}", file=sys.stderr)
            continue
        try:
            time.sleep(0.3)
            got = base.measure(name, p.pid, port, scenarios, load, args.client_cpu, args.duration,
                               ["/", "/json", "/users/1?q=x"])
            for sc, r in got.items():
                runs.setdefault((name, sc), []).append(r)
        finally:
            base.stop(p)
        time.sleep(0.5)

    # The run with the median us/req, per server and scenario.
    results = {k: sorted(v, key=lambda r: r["us"] if r["us"] == r["us"] else float("inf"))[(len(v) - 1) // 2]
               for k, v in runs.items()}
    print()
    rounds = f", median of {args.rounds} alternating rounds" if args.rounds > 1 else ""
    print(f"JS benchmark: {args.duration}s per run{rounds}, one worker/process on CPU {args.server_cpu}, "
          f"load on CPU {args.client_cpu}, 127.0.0.1 (us/req = server CPU per request; lower is better)")
    for sc in scenarios:
        print()
        print(f"## {sc} ({PATHS[sc]}{', h2load -m16 -c16' if sc == 'pipelined' else ', wrk -c64'})")
        print("| server      |     req/s |     p99   | us/req | us/req vs bun | RSS MiB |")
        print("|-------------|----------:|----------:|-------:|--------------:|--------:|")
        b = results.get(("bun", sc))
        for name in servers:
            r = results.get((name, sc))
            if not r or (name == "marg-native" and sc not in ("hello", "pipelined")):
                continue
            vs = f"{r['us'] / b['us']:.2f}x" if b and b["us"] == b["us"] and b["us"] else "-"
            lat = "-" if r["p99"] is None else ("<=" if r["bound"] else "") + f"{r['p99']:.2f}ms"
            err = f" ({r['errors']} non-2xx)" if r["errors"] else ""
            print(f"| {name:11} | {r['rps']:9.0f} | {lat:>9} | {r['us']:6.2f} | {vs:>13} | {r['rss'] / 1024:7.1f} |{err}")


if __name__ == "__main__":
    main()
