#!/usr/bin/env bash
# JS benchmark: the same app on Marg (JavaScriptCore), Bun.serve, Node node:http and Express 5
# (bench/js/*.js); see bench/js/bench.py. Installs Bun and Express into bench/node_modules
# (gitignored) with npm when missing, builds Marg in release.
#
#   bench/js.sh                                   # all servers and scenarios, 5 s each
#   bench/js.sh --servers marg,bun --scenarios hello,param --duration 3
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
command -v wrk >/dev/null || { echo "bench/js.sh needs wrk (apt-get install wrk)" >&2; exit 1; }
command -v h2load >/dev/null || { echo "bench/js.sh needs h2load (apt-get install nghttp2-client)" >&2; exit 1; }
if [ ! -x "$here/node_modules/@oven/bun-linux-x64/bin/bun" ] || [ ! -d "$here/node_modules/express" ]; then
    echo "installing Bun and Express 5 into bench/node_modules" >&2
    (cd "$here" && npm install --no-audit --no-fund --silent)
fi
echo "building marg (release)" >&2
(cd "$root" && cargo build --release -p marg --bin marg)
exec python3 "$here/js/bench.py" "$@"
