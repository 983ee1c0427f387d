#!/usr/bin/env bash
# Runs every check and test: format, lints, unit tests, the wasm32 build of shared/, and the
# end-to-end suite (official OpenAI and Anthropic SDKs -> gateway binary -> mock upstreams).
# Installs what it needs (apt, pip) idempotently; build outputs are cached under ~/.cache.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh
ensure_rust

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy --all-targets -D warnings"
cargo clippy -q --workspace --all-targets -- -D warnings

log "unit tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

log "shared/ builds for wasm32-unknown-unknown (Debian rustc-web + -Zbuild-std)"
ensure_wasm_toolchain
if cargo tree -p gw-engine -e normal --prefix none | grep -qwE '^(tokio|reqwest|hyper) '; then
  echo "gw-engine depends on a native runtime crate" >&2; exit 1
fi
( export PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$HOME/.cache/gw-target-wasm"
  /usr/bin/cargo check -q -p gw-engine --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort )

log "end-to-end: official SDKs against the gateway binary"
cargo build -q -p gw-local --bin gateway
ensure_venv tests/e2e/requirements.txt
GATEWAY_BIN="$CARGO_TARGET_DIR/debug/gateway" "$VENV_PY" -m pytest -q -p no:cacheprovider tests/e2e
