#!/usr/bin/env bash
# Runs the bot: installs what is missing, builds, starts `heimdall run`.
# Without MONGODB_URI a local secantusd-rs keeps its data under ./data/.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
exec cargo run --release --bin heimdall -- run "$@"
