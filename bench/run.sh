#!/usr/bin/env bash
# Builds Marg in release, installs the peers it needs, and runs bench/run.py
# (Marg vs Bun.serve, Node 20 node:http, Express 5, nginx `return 200` on
# 127.0.0.1; server pinned to CPU 0, load generator to CPU 1).
#
#   bench/run.sh                      # all servers, all scenarios, 5 s each
#   bench/run.sh --servers marg,nginx --scenarios plaintext --duration 3
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"

need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v h2load >/dev/null || need_apt+=(nghttp2-client)
command -v nginx >/dev/null || need_apt+=(nginx-light)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "installing ${need_apt[*]} with apt-get" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y "${need_apt[@]}"; else sudo apt-get install -y "${need_apt[@]}"; fi
fi
if [ ! -x "$here/node_modules/@oven/bun-linux-x64/bin/bun" ] || [ ! -d "$here/node_modules/express" ]; then
    echo "installing Bun and Express 5 into bench/node_modules" >&2
    (cd "$here" && npm install --no-audit --no-fund --silent)
fi

echo "building marg (release)" >&2
(cd "$root" && cargo build --release -p marg --bin marg)
exec python3 "$here/run.py" "$@"
