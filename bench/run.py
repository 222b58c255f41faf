#!/usr/bin/env python3
"""Server benchmark: Marg vs Bun.serve, Node 20 node:http, Express 5, nginx.

Each server runs alone on 127.0.0.1, pinned to one core (taskset); the load
generator is pinned to another. Per server and scenario we print req/s, p99
latency, server CPU microseconds per request (utime+stime delta from
/proc/PID/stat divided by the requests completed) and the server's RSS, plus
ratios to Bun. Only processes this script started are ever signalled.

Servers: marg (built-in Rust handler), marg-js (bench/peers/marg.js through
the JS bridge), bun, node, express, nginx; on request also marg-epoll and
marg-js-epoll (the same with `--io epoll`, against the default io_uring).

Usage: bench/run.sh [--duration 5] [--servers marg,marg-js,bun,node,express,nginx]
                    [--scenarios plaintext,json,pipelined,conns1000]
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    """utime + stime of a process and all its threads, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[11], fields[12] are utime, stime (the 14th/15th of the line)
    return int(fields[11]) + int(fields[12])


def rss_kib(pid):
    rss = anon = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1])
    return rss, anon


def wait_port(port, timeout=15.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(name, port, server_cpu, tmp):
    env = dict(os.environ, PORT=str(port))
    pin = ["taskset", "-c", server_cpu]
    bun = os.path.join(HERE, "node_modules/@oven/bun-linux-x64/bin/bun")
    marg = os.environ.get("MARG_BIN") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release/marg")
    if name in ("marg", "marg-epoll"):
        cmd = pin + [marg, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    elif name in ("marg-js", "marg-js-epoll"):
        cmd = pin + [marg, "serve", os.path.join(HERE, "peers/marg.js"), "--host", "127.0.0.1",
                     "--port", str(port), "--workers", "1"]
    elif name == "bun":
        cmd = pin + [bun, os.path.join(HERE, "peers/bun.js")]
    elif name == "node":
        cmd = pin + ["node", os.path.join(HERE, "peers/node.js")]
    elif name == "express":
        cmd = pin + ["node", os.path.join(HERE, "peers/express.js")]
        env["NODE_PATH"] = os.path.join(HERE, "node_modules")
    elif name == "nginx":
        d = os.path.join(tmp, "nginx")
        os.makedirs(d, exist_ok=True)
        conf = open(os.path.join(HERE, "peers/nginx.conf")).read()
        conf = conf.replace("__PORT__", str(port)).replace("__DIR__", d)
        path = os.path.join(d, "nginx.conf")
        open(path, "w").write(conf)
        cmd = pin + ["nginx", "-p", d, "-c", path, "-e", os.path.join(d, "error.log")]
    else:
        raise SystemExit(f"unknown server {name}")
    if name.startswith("marg") and name.endswith("-epoll"):
        cmd += ["--io", "epoll"]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if not wait_port(port):
        err = p.stderr.read(2000).decode(errors="replace") if p.poll() is not None else ""
        stop(p)
        raise RuntimeError(f"{name} did not start: {err}")
    return p


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def parse_wrk(out):
    reqs = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = None
    if p99:
        v, unit = float(p99.group(1)), p99.group(2)
        lat = v / 1000 if unit == "us" else v if unit == "ms" else v * 1000
    return (int(reqs.group(1)) if reqs else 0, float(rps.group(1)) if rps else 0.0, lat,
            int(errors.group(1)) if errors else 0)


def parse_h2load(out):
    reqs = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out)
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    # h2load reports mean/max request time, not percentiles: report max as
    # an upper bound for p99 (marked with <=).
    mx = re.search(r"time for request:\s+[\d.]+\w+\s+([\d.]+)(us|ms|s)", out)
    lat = None
    if mx:
        v, unit = float(mx.group(1)), mx.group(2)
        lat = v / 1000 if unit == "us" else v if unit == "ms" else v * 1000
    return (int(reqs.group(1)) if reqs else 0, float(rps.group(1)) if rps else 0.0, lat, 0)


def run_load(scenario, port, client_cpu, duration):
    url = f"http://127.0.0.1:{port}/"
    pin = ["taskset", "-c", client_cpu]
    if scenario == "plaintext":
        cmd = pin + ["wrk", "-t1", "-c64", f"-d{duration}s", "--latency", url]
    elif scenario == "json":
        cmd = pin + ["wrk", "-t1", "-c64", f"-d{duration}s", "--latency", url + "json"]
    elif scenario == "conns1000":
        cmd = pin + ["wrk", "-t1", "-c1000", f"-d{duration}s", "--latency", "--timeout", "10s", url]
    elif scenario == "pipelined":
        cmd = pin + ["h2load", "--h1", "-m16", "-c16", "-t1", "-D", str(duration), url]
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    return (parse_h2load if scenario == "pipelined" else parse_wrk)(out), out


def measure(name, pid, port, scenarios, load, client_cpu, duration, warm_paths, verbose=False):
    """One server's run: 1 s of wrk per path in `warm_paths` (JITs, buffer pools), then each
    scenario through `load(scenario, port, client_cpu, duration)`. Returns, per scenario,
    req/s, p99, server CPU us per request (utime+stime delta / requests), RSS and its anonymous
    part after the run, non-2xx count, and whether p99 is only a bound (h2load's max)."""
    for path in warm_paths:
        subprocess.run(["taskset", "-c", client_cpu, "wrk", "-t1", "-c16", "-d1s",
                        f"http://127.0.0.1:{port}{path}"], capture_output=True)
    out = {}
    for sc in scenarios:
        c0 = cpu_ticks(pid)
        (reqs, rps, p99, errors), text = load(sc, port, client_cpu, duration)
        c1 = cpu_ticks(pid)
        rss, anon = rss_kib(pid)
        us = (c1 - c0) / TICK * 1e6 / reqs if reqs else float("nan")
        out[sc] = dict(rps=rps, p99=p99, us=us, rss=rss, anon=anon, errors=errors,
                       bound=(sc == "pipelined"))
        if verbose:
            print(text)
        print(f"  {name:8} {sc:10} {rps:>11.0f} req/s  {us:6.2f} us/req  rss {rss/1024:.1f} MiB",
              file=sys.stderr)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--servers", default="marg,marg-js,bun,node,express,nginx")
    ap.add_argument("--scenarios", default="plaintext,json,pipelined,conns1000")
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--client-cpu", default="1")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat every server this many times, interleaved (best req/s, median us/req)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    tmp = os.path.join(HERE, "results", "tmp")
    os.makedirs(tmp, exist_ok=True)
    servers = args.servers.split(",")
    scenarios = args.scenarios.split(",")
    results = {}
    runs = {}
    # Rounds interleave the servers, so that background load on a shared
    # machine spreads over all of them; per cell we keep the round with the
    # best req/s (its p99 and RSS) and the median CPU us/request.
    for rnd in range(args.rounds):
        if args.rounds > 1:
            print(f"round {rnd + 1}/{args.rounds}", file=sys.stderr)
        for name in servers:
            port = free_port()
            try:
                p = start_server(name, port, args.server_cpu, tmp)
            except (RuntimeError, FileNotFoundError) as e:
                print(f"skip {name}: {e}", file=sys.stderr)
                continue
            try:
                time.sleep(0.3)
                got = measure(name, p.pid, port, scenarios, run_load, args.client_cpu,
                              args.duration, ["/"], args.verbose)
                for sc, r in got.items():
                    runs.setdefault((name, sc), []).append(r)
            finally:
                stop(p)
            time.sleep(0.5)

    for key, rs in runs.items():
        best = dict(max(rs, key=lambda r: r["rps"]))
        us = sorted(r["us"] for r in rs)
        best["us"] = us[len(us) // 2]
        results[key] = best

    def fmt_lat(r):
        if r["p99"] is None:
            return "-"
        return ("<=" if r["bound"] else "") + f"{r['p99']:.2f}ms"

    print()
    print(f"Server benchmark: {args.duration}s per run, {args.rounds} round(s), server on CPU {args.server_cpu}, "
          f"load on CPU {args.client_cpu}, 127.0.0.1")
    print("(pipelined: h2load --h1 -m16 -c16 reports max latency, shown as <=; "
          "us/req = server utime+stime per request; RSS after the run, anon = RssAnon, i.e. without "
          "shared libraries and the binary)")
    for sc in scenarios:
        print()
        print(f"## {sc}")
        print("| server   |     req/s | vs bun |     p99   | us/req | vs bun | RSS MiB | anon MiB |")
        print("|----------|----------:|-------:|----------:|-------:|-------:|--------:|---------:|")
        base = results.get(("bun", sc))
        for name in servers:
            r = results.get((name, sc))
            if not r:
                continue
            vs = f"{r['rps'] / base['rps']:.2f}x" if base and base["rps"] else "-"
            vsu = f"{r['us'] / base['us']:.2f}x" if base and base["us"] == base["us"] and base["us"] else "-"
            err = f" ({r['errors']} non-2xx)" if r["errors"] else ""
            print(f"| {name:8} | {r['rps']:9.0f} | {vs:>6} | {fmt_lat(r):>9} | {r['us']:6.2f} | {vsu:>6} | "
                  f"{r['rss'] / 1024:7.1f} | {r['anon'] / 1024:8.1f} |{err}")


if __name__ == "__main__":
    main()
