#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, and the integration tests against a real
# MongoDB-compatible server (a local secantusd-rs, or MONGODB_TEST_URI when set).
set -euo pipefail
cd "$(dirname "$0")/.."
HEIMDALL_NEED_BROWSER=1 ./scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"

(cd dashboard && npx vitest run)
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Every doc link resolves (poise shows `///` as the slash descriptions; the rest is API docs).
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
cargo test --workspace --locked --no-fail-fast
