#!/usr/bin/env bash
# Installs what Heimdall's run and test commands need and is missing:
#   cmake (Debian)  -> needed to build secantusd-rs
#   redis-server    -> the gateway's multi-process tests (and REDIS_URL deployments)
#   secantusd-rs    -> the local MongoDB-compatible server (crate secantus-mdb)
#   node + npm      -> build the dashboard app (the machine's Node.js, or Debian's)
#   dashboard/node_modules (`npm ci`) and dashboard/dist (`npm run build`, when missing or
#                      older than its sources, the plugins' pages and strings included): the
#                      app embedded in the binary
# With HEIMDALL_NEED_BROWSER=1 (the tests), also chromium (Debian) for the browser tests.
# Each is skipped when already present. Safe to run again.
set -euo pipefail

SECANTUS_VERSION="0.5.3-beta.196"
export PATH="$HOME/.cargo/bin:$PATH"

need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ "${HEIMDALL_NEED_BROWSER:-0}" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (apt-get)" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ -z "${SECANTUSD_BIN:-}" ] && ! secantusd-rs --version 2>/dev/null | grep -q "$SECANTUS_VERSION"; then
  echo "installing secantusd-rs $SECANTUS_VERSION (cargo install; about ten minutes, once per machine)" >&2
  cargo install secantus-mdb --version "$SECANTUS_VERSION" --ignore-rust-version --locked 2>&1 | tail -n 3 >&2 \
    || cargo install secantus-mdb --version "$SECANTUS_VERSION" --ignore-rust-version 2>&1 | tail -n 3 >&2
fi

dashboard="$(dirname "$0")/../dashboard"
if [ ! -x "$dashboard/node_modules/.bin/vite" ] || [ ! -d "$dashboard/node_modules/playwright-core" ] \
   || [ "$dashboard/package-lock.json" -nt "$dashboard/node_modules/.package-lock.json" ]; then
  echo "installing the dashboard's dependencies (npm ci)" >&2
  (cd "$dashboard" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
if [ ! -f "$dashboard/dist/index.html" ] \
   || [ -n "$(find "$dashboard/src" "$dashboard/public" "$dashboard/index.html" "$dashboard/package-lock.json" \
        "$dashboard/../plugins" \( -name page.tsx -o -name 'dashboard.*.json' -o -type f -path "$dashboard/*" \) \
        -newer "$dashboard/dist/index.html" -print -quit)" ]; then
  echo "building the dashboard (npm run build)" >&2
  (cd "$dashboard" && npm run build --silent >&2)
fi
