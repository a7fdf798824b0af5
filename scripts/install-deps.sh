#!/usr/bin/env bash
# Installs what Heimdall's run and test commands need and is missing:
#   cmake (Debian)  -> needed to build secantusd-rs
#   redis-server    -> the gateway's multi-process tests (and REDIS_URL deployments)
#   secantusd-rs    -> the local MongoDB-compatible server (crate secantus-mdb)
# With HEIMDALL_NEED_BROWSER=1 (the tests), also:
#   chromium (Debian), node + npm, and dashboard/node_modules (playwright-core, `npm ci`)
# Each is skipped when already present. Safe to run again.
set -euo pipefail

SECANTUS_VERSION="0.5.3-beta.196"
export PATH="$HOME/.cargo/bin:$PATH"

need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if [ "${HEIMDALL_NEED_BROWSER:-0}" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
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

if [ "${HEIMDALL_NEED_BROWSER:-0}" = 1 ] && [ ! -d "$(dirname "$0")/../dashboard/node_modules/playwright-core" ]; then
  echo "installing the dashboard's test dependencies (npm ci)" >&2
  (cd "$(dirname "$0")/../dashboard" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
