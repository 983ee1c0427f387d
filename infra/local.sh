#!/usr/bin/env bash
# Starts the gateway on 127.0.0.1:8317 (builds it first if needed). Works with no provider keys:
# /health answers and requests get a clear "set OPENAI_API_KEY" style error.
# Extra arguments go to the gateway, e.g. `bash infra/local.sh --config my.yaml`.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh
ensure_rust
own_target_dir "$CARGO_TARGET_DIR"
cargo build --release -q -p gw-local --bin gateway
exec "$CARGO_TARGET_DIR/release/gateway" "$@"
