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
