#!/usr/bin/env bash
# Run the gateway end-to-end tests.
#
#   GATEWAY_BIN=/path/to/gateway tests/e2e/run.sh [extra pytest args, e.g. -k failover -x]
#
# GW_VENV   the virtualenv to use/create (default ~/.cache/gw-venv); requirements.txt is installed
#           into it only when the file changed since the last install (sha256 stamp inside the venv).
# GW_PYTHON the interpreter used to create a missing venv (default python3.11, else python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${GW_VENV:-$HOME/.cache/gw-venv}"
req="$here/requirements.txt"
stamp="$venv/.gw-e2e-requirements.sha256"

if [[ ! -x "$venv/bin/python" ]]; then
    py="${GW_PYTHON:-}"
    if [[ -z "$py" ]]; then
        py="$(command -v python3.11 || command -v python3)"
    fi
    echo "run.sh: creating venv $venv with $py" >&2
    "$py" -m venv "$venv"
fi

want="$(sha256sum "$req" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
    echo "run.sh: installing $req into $venv" >&2
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
    echo "$want" > "$stamp"
fi

if [[ -z "${GATEWAY_BIN:-}" ]]; then
    echo "run.sh: GATEWAY_BIN is not set: every test that needs the gateway will fail (the mock's own tests still run)" >&2
else
    export GATEWAY_BIN
fi

export PYTHONDONTWRITEBYTECODE=1
cd "$here"
exec "$venv/bin/python" -m pytest "$here" -q -p no:cacheprovider "$@"
