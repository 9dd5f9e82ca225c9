#!/usr/bin/env bash
# The dashboard's own browser check, no controller needed: starts the dev server
# (controller/dashboard/dev/server.mjs) on a free loopback port with its fixtures and runs
# dashboard.mjs against it, replay included. Writes the screenshot to $1 (default: a temporary
# file, named at the end).
#   tests/browser/dev.sh [screenshot.png]
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -d tests/browser/node_modules/playwright-core ] || npm ci --prefix tests/browser --silent
work="$(mktemp -d)"
shot="${1:-$work/dashboard.png}"
node controller/dashboard/dev/server.mjs --port 0 --ramp 3 >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; [ -n "${1:-}" ] || echo "screenshot kept in $shot"' EXIT
url=""
for _ in $(seq 50); do
  url="$(grep -o 'http://127\.0\.0\.1:[0-9]*/' "$work/server.log" || true)"
  [ -n "$url" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "dev.sh: the dev server did not start" >&2; cat "$work/server.log" >&2; exit 1; }
node tests/browser/dashboard.mjs --url "$url" --token dev-token \
  --expect controller/dashboard/dev/expect.json --screenshot "$shot" --replay
