"""Helpers for the gateway end-to-end tests: the gateway process, the recording HTTP transport,
raw HTTP, SSE parsing and protocol checks, and SDK result accumulation.

Everything the SDKs or raw requests receive from the gateway goes through a `Recorder`, so the last
test of the session can scan it (and the gateway's logs) for secrets.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import resource
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import anthropic
import httpx2
import openai

from mock_upstream import ANTHROPIC_USAGE as _AU, GEMINI_USAGE as _GU, OPENAI_USAGE as _OU, REASONING_TOKENS

HERE = Path(__file__).resolve().parent
CONFIG_PATH = HERE / "gateway.test.yaml"
REPO = HERE.parent.parent

# ------------------------------------------------------------------------------------------------
# secrets: fresh per session, so a match in the scan can only come from this session

_RUN = uuid.uuid4().hex[:16]
PROXY_KEY = f"gw-proxy-SECRET-{_RUN}a1"
SECOND_PROXY_KEY = f"gw-second-proxy-SECRET-{_RUN}b2"
# A provider's key pool at the mock's /pool: the "busy" key is always rate-limited (429, retry-after 30 s).
POOL_KEYS = {"busy": f"sk-pool-busy-SECRET-{_RUN}p1", "ok": f"sk-pool-ok-SECRET-{_RUN}p2"}
UPSTREAM_KEYS = {
    "openai": f"sk-upstream-openai-SECRET-{_RUN}c3",
    "anthropic": f"sk-ant-upstream-anthropic-SECRET-{_RUN}d4",
    "groq": f"gsk-upstream-groq-SECRET-{_RUN}e5",
    "broken": f"sk-upstream-broken-SECRET-{_RUN}f6",
    "gemini": f"AIza-upstream-gemini-SECRET-{_RUN}g7",
    "cohere": f"co-upstream-cohere-SECRET-{_RUN}h8",
}
# Bedrock: SigV4 with these credentials (the key id is not a secret; region from AWS_REGION), or a Bedrock
# API key (AWS_BEARER_TOKEN_BEDROCK) for gateways that opt in to it (it would win over SigV4 everywhere).
AWS_ACCESS_KEY_ID = "AKIAE2EGATEWAYTEST01"
AWS_REGION = "us-west-2"
AWS_SECRETS = {
    "AWS_SECRET_ACCESS_KEY": f"wJalrXUtnFEMI/K7MDENG+bPxRfiCY-SECRET-{_RUN}i9",
    "AWS_SESSION_TOKEN": f"IQoJb3JpZ2luX2VjEJr//////////session-SECRET-{_RUN}j0",
    "AWS_BEARER_TOKEN_BEDROCK": f"ABSKQmVkcm9ja0FQSUtleS-bedrock-SECRET-{_RUN}k1",
}
# Cloud providers (test_cloud.py, mock_cloud.py): given only to the gateways of those tests.
CLOUD_SECRETS = {
    "AZURE_OPENAI_API_KEY": f"az-oai-key-SECRET-{_RUN}m1",  # not a provider id's prefix: the scrubber masks 8-char prefixes
    "AZURE_AI_FOUNDRY_API_KEY": f"aif-key-SECRET-{_RUN}m2",
    "AZURE_CLIENT_SECRET": f"aad-client-SECRET-{_RUN}m3",
    "GITHUB_TOKEN": f"gho_github-SECRET-{_RUN}m4",
    "REPLICATE_API_TOKEN": f"r8_rep-SECRET-{_RUN}m5",
}
OPT_IN_SECRETS = ("AWS_BEARER_TOKEN_BEDROCK", *CLOUD_SECRETS)
# secrets an upstream (by its mock prefix) may receive, beyond `<PREFIX>_API_KEY`
UPSTREAM_SECRET_NAMES = {"bedrock": ("AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK"), "azure": ("AZURE_OPENAI_API_KEY",),
                         "foundry": ("AZURE_AI_FOUNDRY_API_KEY",), "aad": ("AZURE_CLIENT_SECRET",), "github": ("GITHUB_TOKEN",), "replicate": ("REPLICATE_API_TOKEN",),
                         "ghlogin": ("GITHUB_TOKEN",)}
SECRET_RUN = _RUN  # every secret contains it: a leak of any 16+ character tail of a secret contains it too
ALL_SECRETS = {"GATEWAY_PROXY_KEY": PROXY_KEY, "E2E_SECOND_PROXY_KEY": SECOND_PROXY_KEY,
               **{f"{p.upper()}_API_KEY": k for p, k in UPSTREAM_KEYS.items()}, **AWS_SECRETS, **CLOUD_SECRETS}
# The dummy service account (shared/auth/testdata: google-auth's test key) and its public key.
SERVICE_ACCOUNT_DIR = REPO / "shared/auth/testdata/google-service-account"
GATEWAY_ENV_SECRETS = {k: v for k, v in ALL_SECRETS.items() if k not in OPT_IN_SECRETS}  # every gateway's environment
MOCK_BEDROCK_KEYS = {"access_key_id": AWS_ACCESS_KEY_ID, "secret_access_key": AWS_SECRETS["AWS_SECRET_ACCESS_KEY"],
                     "session_token": AWS_SECRETS["AWS_SESSION_TOKEN"], "region": AWS_REGION,
                     "bearer": AWS_SECRETS["AWS_BEARER_TOKEN_BEDROCK"]}

# a real 1x1 PNG
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
IMAGE_URL = "https://example.com/cat.png"

SDK_TIMEOUT = httpx2.Timeout(30.0, connect=5.0)


def nonce() -> str:
    return "e2e" + uuid.uuid4().hex[:10]


def tamper(signature: str) -> str:
    """The same signature with one base64 character changed (keeps the length and the padding)."""
    i = len(signature.rstrip("=")) - 1
    return signature[:i] + ("B" if signature[i] != "B" else "C") + signature[i + 1:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------------
# recording everything the gateway sends back


@dataclass
class Seen:
    source: str
    method: str
    url: str
    request_id: str | None
    status: int
    headers: list[tuple[str, str]]
    body: bytearray = field(default_factory=bytearray)
    request_body: bytes = b""  # what the client sent (when it was not streamed)

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[Seen] = []

    def add(self, e: Seen) -> Seen:
        with self.lock:
            self.entries.append(e)
        return e

    def find(self, request_id: str) -> list[Seen]:
        with self.lock:
            return [e for e in self.entries if e.request_id == request_id]

    def last(self, request_id: str) -> Seen:
        found = self.find(request_id)
        assert found, f"no recorded response for request id {request_id}"
        return found[-1]


class _TeeStream(httpx2.SyncByteStream):
    def __init__(self, inner: Any, entry: Seen):
        self.inner = inner
        self.entry = entry

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            self.entry.body += chunk
            yield chunk

    def close(self) -> None:
        self.inner.close()


class RecordingTransport(httpx2.BaseTransport):
    def __init__(self, recorder: Recorder, source: str):
        self.inner = httpx2.HTTPTransport()
        self.recorder = recorder
        self.source = source

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            sent = bytes(request.content)
        except httpx2.RequestNotRead:
            sent = b""
        resp = self.inner.handle_request(request)
        entry = self.recorder.add(Seen(self.source, request.method, str(request.url), request.headers.get("x-request-id"),
                                       resp.status_code, list(resp.headers.multi_items()), request_body=sent))
        return httpx2.Response(resp.status_code, headers=resp.headers, stream=_TeeStream(resp.stream, entry),
                               extensions=resp.extensions, request=request)

    def close(self) -> None:
        self.inner.close()


def http_client(recorder: Recorder, source: str) -> httpx2.Client:
    return httpx2.Client(transport=RecordingTransport(recorder, source), trust_env=False, timeout=SDK_TIMEOUT)


def openai_client(gw: "Gateway", recorder: Recorder, key: str = PROXY_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=SDK_TIMEOUT,
                         http_client=http_client(recorder, "openai-sdk"))


def anthropic_client(gw: "Gateway", recorder: Recorder, key: str = PROXY_KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=SDK_TIMEOUT,
                               http_client=http_client(recorder, "anthropic-sdk"))


def genai_client(base_url: str, recorder: Recorder, key: str = PROXY_KEY, api_version: str | None = "v1beta",
                 source: str = "genai-sdk"):
    """The google-genai SDK against `base_url` (it calls `{base_url}/{api_version}/models/{model}:generateContent`
    with `x-goog-api-key`); no retries. `api_version=None`: the SDK's own default."""
    from google import genai  # imported here: only the Gemini tests need the SDK
    from google.genai import types
    opts: dict[str, Any] = dict(base_url=base_url, httpx_client=http_client(recorder, source), timeout=30_000)
    if api_version is not None:
        opts["api_version"] = api_version
    return genai.Client(api_key=key, http_options=types.HttpOptions(**opts))


# ------------------------------------------------------------------------------------------------
# raw HTTP


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise AssertionError(f"response is not JSON (status {self.status}): {self.body[:500]!r}") from e


def raw_request(base_url: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                recorder: Recorder | None = None, timeout: float = 30.0) -> Raw:
    """One HTTP/1.1 request; `body` may be bytes, str or a JSON-able object."""
    hostport, _, prefix = base_url.removeprefix("http://").partition("/")
    host, port = hostport.split(":")
    if prefix:  # a runtime mounted under a path (the Lambda emulator's /lambda-url/<function>)
        path = "/" + prefix.rstrip("/") + path
    if body is None:
        data = None
    elif isinstance(body, (bytes, bytearray)):
        data = bytes(body)
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json"} if data is not None else {}
    hdrs.update(headers or {})
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
        except (ConnectionResetError, BrokenPipeError) as e:
            raise AssertionError(f"{method} {path}: the gateway closed the connection without a complete response ({e!r})") from e
        hl = [(k, v) for k, v in resp.getheaders()]
    finally:
        conn.close()
    if recorder is not None:
        rid = next((v for k, v in hdrs.items() if k.lower() == "x-request-id"), None)
        recorder.add(Seen("raw", method, base_url + path, rid, resp.status, hl, bytearray(payload)))
    return Raw(resp.status, {k.lower(): v for k, v in hl}, payload)


def _no_proxy_open(req: urllib.request.Request, timeout: float = 10.0) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=timeout) as r:
        return r.read()


# ------------------------------------------------------------------------------------------------
# the mock upstream, seen from the tests


class MockClient:
    def __init__(self, base: str):
        self.base = base

    def requests(self) -> list[dict]:
        return json.loads(_no_proxy_open(urllib.request.Request(self.base + "/_mock/requests")))

    def reset(self) -> None:
        _no_proxy_open(urllib.request.Request(self.base + "/_mock/reset", data=b"{}", method="POST"))

    def with_nonce(self, marker: str) -> list[dict]:
        """Recorded upstream requests whose body mentions `marker` (ignores health probes and the like)."""
        return [r for r in self.requests() if marker in json.dumps(r.get("body"))]

    def one(self, marker: str) -> dict:
        found = self.with_nonce(marker)
        assert len(found) == 1, f"expected exactly one upstream request carrying {marker}, got {len(found)}: " + \
            json.dumps([(r['path'], (r.get('body') or {}).get('model')) for r in found])
        return found[0]


# ------------------------------------------------------------------------------------------------
# the gateway process


class Gateway:
    """A running gateway: the local binary, or another runtime (`url` may carry a path prefix;
    `group`: the process leads its own process group, stopped as a whole)."""

    def __init__(self, name: str, proc: subprocess.Popen, port: int, workdir: Path, url: str | None = None,
                 log_name: str = "gateway.stderr.log", group: bool = False):
        self.name = name
        self.proc = proc
        self.port = port
        self.workdir = workdir
        self.url = url or f"http://127.0.0.1:{port}"
        self.log_name = log_name
        self.group = group

    @property
    def log_path(self) -> Path:
        return self.workdir / self.log_name

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_entries(self) -> list[dict]:
        out = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def log_for(self, request_id: str, timeout: float = 5.0) -> dict:
        """The one per-request log line (a JSON object with this request_id and an `outcome`)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [e for e in self.log_entries() if e.get("request_id") == request_id and "outcome" in e]
            if lines or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        related = [l for l in self.log_text().splitlines() if request_id in l]
        assert len(lines) == 1, (
            f"expected exactly one JSON request log line with request_id={request_id!r} and an `outcome`, "
            f"found {len(lines)}; log lines mentioning it: {related}"
        )
        return lines[0]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(timeout=5)
        if self.group:  # children (the function, workerd) may outlive the leader
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def _signal(self, sig: int) -> None:
        try:
            if self.group:
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)
        except ProcessLookupError:
            pass


class GatewayFactory:
    """Starts gateway processes: each in its own working directory (and HOME / XDG dirs inside it),
    so no state (breakers, cooldowns, an embedded store) is shared between instances."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.root = root
        self.env = env
        self.started: list[Gateway] = []
        self.count = 0

    @staticmethod
    def binary() -> str:
        path = os.environ.get("GATEWAY_BIN")
        if not path:
            raise RuntimeError(
                "GATEWAY_BIN is not set: build the gateway and point GATEWAY_BIN at the binary "
                "(e.g. GATEWAY_BIN=$PWD/target/debug/gateway tests/e2e/run.sh)")
        p = Path(path)
        if not p.is_file():
            raise RuntimeError(f"GATEWAY_BIN={path!r} does not exist (or is not a file)")
        if not os.access(p, os.X_OK):
            raise RuntimeError(f"GATEWAY_BIN={path!r} is not executable")
        return str(p.resolve())

    def start(self, name: str, extra_args: tuple[str, ...] = (), extra_env: dict[str, str] | None = None,
              config: Path | None = None, reuse: "Gateway | None" = None, rlimit_nofile: int | None = None) -> Gateway:
        """`reuse`: run in that (stopped) instance's work dir, as a restart of it. `rlimit_nofile`: the
        process's RLIMIT_NOFILE (soft = hard), set right after it starts, before it accepts anything."""
        binary = self.binary()
        last_error = ""
        for _ in range(3):  # a port picked by free_port() can be taken by someone else in between
            self.count += 1
            workdir = reuse.workdir if reuse else self.root / f"{self.count:03d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)[:60]}"
            for sub in ("home", "tmp", "xdg/data", "xdg/state", "xdg/cache", "xdg/config"):
                (workdir / sub).mkdir(parents=True, exist_ok=True)
            env = dict(self.env)
            env.update(HOME=str(workdir / "home"), TMPDIR=str(workdir / "tmp"),
                       XDG_DATA_HOME=str(workdir / "xdg/data"), XDG_STATE_HOME=str(workdir / "xdg/state"),
                       XDG_CACHE_HOME=str(workdir / "xdg/cache"), XDG_CONFIG_HOME=str(workdir / "xdg/config"))
            env.update(extra_env or {})
            port = free_port()
            stderr = open(workdir / "gateway.stderr.log", "ab" if reuse else "wb")
            stdout = open(workdir / "gateway.stdout.log", "wb")
            proc = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}", "--config", str(config or CONFIG_PATH), *extra_args],
                                    cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
            stderr.close()
            stdout.close()
            gw = Gateway(name, proc, port, workdir)
            self.started.append(gw)
            if rlimit_nofile is not None:
                try:
                    resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (rlimit_nofile, rlimit_nofile))
                except OSError as e:
                    gw.stop()
                    raise RuntimeError(f"cannot set RLIMIT_NOFILE of the gateway: {e!r}") from e
            ok, last_error = self._wait_ready(gw)
            if ok:
                return gw
            gw.stop()
            if "in use" not in last_error.lower():
                break
        raise RuntimeError(f"gateway did not become ready: {last_error}")

    def _workdir(self, name: str) -> Path:
        self.count += 1
        workdir = self.root / f"{self.count:03d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)[:60]}"
        workdir.mkdir(parents=True, exist_ok=True)
        return workdir

    def runtime_env(self, config: Path | None, extra_env: dict[str, str] | None) -> dict[str, str]:
        """What a serverless runtime gets as its function environment (vars and secrets)."""
        env = {k: v for k, v in self.env.items() if k not in ("PATH", "LANG", "LC_ALL", "TZ", "RUST_LOG", "RUST_BACKTRACE")}
        env["GATEWAY_CONFIG"] = (config or CONFIG_PATH).read_text()
        env.update(extra_env or {})
        return env

    def start_lambda(self, name: str, table: str | None, extra_env: dict[str, str] | None = None,
                     config: Path | None = None) -> Gateway:
        """The Lambda function (functions/lambda) under `cargo lambda watch`, the Lambda emulator:
        requests go to /lambda-url/gateway-lambda/..., the function's stderr lands in the log."""
        workdir = self._workdir(name)
        fenv = self.runtime_env(config, extra_env)
        cfg_file = workdir / "gateway.yaml"  # the function reads GATEWAY_CONFIG as a path here
        cfg_file.write_text(fenv.pop("GATEWAY_CONFIG"))
        fenv["GATEWAY_CONFIG"] = str(cfg_file)
        if table:
            fenv["GATEWAY_TABLE"] = table
        env_file = workdir / "function.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in fenv.items()))
        port = free_port()
        # cargo lambda runs the function with `cargo run`: it needs the toolchain's environment.
        env = {k: os.environ[k] for k in ("PATH", "HOME", "CARGO_HOME", "RUSTUP_HOME", "CARGO_TARGET_DIR", "LANG")
               if k in os.environ}
        env.update(AWS_EC2_METADATA_DISABLED="true", RUSTUP_DIST_SERVER="http://127.0.0.1:9",
                   RUSTUP_UPDATE_ROOT="http://127.0.0.1:9/rustup", RUST_BACKTRACE="1")
        log = open(workdir / "lambda.log", "wb")
        proc = subprocess.Popen([cargo_lambda(), "lambda", "watch", "--ignore-changes", "--disable-cors",
                                 "-A", "127.0.0.1", "-P", str(port), "--env-file", str(env_file)],
                                cwd=REPO / "functions" / "lambda", env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        gw = Gateway(name, proc, port, workdir, url=f"http://127.0.0.1:{port}/lambda-url/gateway-lambda",
                     log_name="lambda.log", group=True)
        self.started.append(gw)
        # The first invocation may have to compile the function (`cargo run`): wait for it in one
        # request, since a client that gives up mid-invocation makes the emulator drop the function.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and gw.alive():
            try:
                if raw_request(gw.url, "GET", "/health", timeout=300).status == 200:
                    break
            except (OSError, AssertionError):
                time.sleep(0.1)  # the emulator is not listening yet
        ok, err = self._wait_ready(gw, timeout=30)
        if not ok:
            gw.stop()
            raise RuntimeError(f"the Lambda function did not become ready: {err}")
        return gw

    def start_worker(self, name: str, extra_env: dict[str, str] | None = None, config: Path | None = None,
                     persist: Path | None = None) -> Gateway:
        """The Worker (functions/worker) under `wrangler dev` (workerd), Durable Objects persisted
        in `persist` (reuse it to restart with the same state)."""
        workdir = self._workdir(name)
        fenv = self.runtime_env(config, extra_env)
        fenv["GW_TEST_ENDPOINTS"] = "1"
        var_file = workdir / "worker.vars"
        quote = lambda v: '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        var_file.write_text("".join(f"{k}={quote(v)}\n" for k, v in fenv.items()))
        persist = persist or workdir / "persist"
        port = free_port()
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "W") if k in os.environ}
        log = open(workdir / "worker.log", "wb")
        proc = subprocess.Popen(["bash", str(REPO / "infra" / "worker-dev.sh"), str(port), str(persist), str(var_file)],
                                cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        gw = Gateway(name, proc, port, workdir, log_name="worker.log", group=True)
        gw.persist = persist
        self.started.append(gw)
        ok, err = self._wait_ready(gw, timeout=180)
        if not ok:
            gw.stop()
            raise RuntimeError(f"the Worker did not become ready: {err}")
        return gw

    @staticmethod
    def _wait_ready(gw: Gateway, timeout: float = 30.0) -> tuple[bool, str]:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if not gw.alive():
                return False, f"exited with status {gw.proc.returncode}; stderr tail:\n{gw.log_text()[-3000:]}"
            try:
                r = raw_request(gw.url, "GET", "/health", timeout=2)
                if r.status == 200:
                    return True, ""
                last = f"/health answered {r.status}: {r.body[:300]!r}"
            except (OSError, AssertionError) as e:
                last = repr(e)
            time.sleep(0.05)
        return False, f"no 200 from /health within {timeout}s (last: {last}); stderr tail:\n{gw.log_text()[-3000:]}"

    def stop_all(self) -> None:
        for gw in self.started:
            gw.stop()


def cargo_lambda() -> str:
    path = os.environ.get("CARGO_LAMBDA") or os.path.expanduser("~/.cache/gw-lambda-venv/bin/cargo-lambda")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"cargo-lambda not found at {path}: tests/run.sh installs it (pip cargo-lambda)")
    return path


def ddb_call(endpoint: str, op: str, body: dict) -> dict:
    """One DynamoDB JSON-protocol call (DynamoDB Local checks that a signature is present, not its value)."""
    req = urllib.request.Request(endpoint + "/", data=json.dumps(body).encode(), method="POST", headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"DynamoDB_20120810.{op}",
        "X-Amz-Date": "20260101T000000Z",
        "Authorization": "AWS4-HMAC-SHA256 Credential=dummy/20260101/us-east-1/dynamodb/aws4_request, "
                         "SignedHeaders=host, Signature=00"})
    return json.loads(_no_proxy_open(req) or b"{}")


def create_ddb_table(endpoint: str, table: str) -> None:
    """The table as template.yaml creates it: hash key `pk`, TTL on `expires_at`."""
    ddb_call(endpoint, "CreateTable", {
        "TableName": table, "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]})
    ddb_call(endpoint, "UpdateTimeToLive", {
        "TableName": table, "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True}})


# ------------------------------------------------------------------------------------------------
# SSE


def parse_sse(raw: bytes) -> tuple[list[tuple[str | None, str]], bool]:
    """(events as (event name, data), whether the stream ended on an event boundary)."""
    text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    events: list[tuple[str | None, str]] = []
    name: str | None = None
    data: list[str] = []
    for line in text.split("\n"):
        if line == "":
            if data or name is not None:
                events.append((name, "\n".join(data)))
            name, data = None, []
            continue
        if line.startswith(":"):
            continue
        fld, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if fld == "event":
            name = value
        elif fld == "data":
            data.append(value)
    clean = not data and name is None
    if not clean:
        events.append((name, "\n".join(data)))
    return events, clean


def check_openai_stream(raw: bytes, include_usage: bool | None = None) -> list[dict]:
    """Assert `raw` is a well-formed OpenAI chat.completion.chunk stream; return the chunks."""
    events, clean = parse_sse(raw)
    assert events, "empty stream"
    assert clean, f"stream does not end on an event boundary: {raw[-200:]!r}"
    datas = [d for _, d in events]
    assert datas[-1] == "[DONE]", f"OpenAI stream must end with data: [DONE]; last events: {datas[-3:]}"
    chunks = []
    for d in datas[:-1]:
        try:
            chunks.append(json.loads(d))
        except ValueError as e:
            raise AssertionError(f"non-JSON data line in OpenAI stream: {d!r}") from e
    assert chunks, "no chunks before [DONE]"
    for c in chunks:
        assert "error" not in c, f"error in stream: {c}"
        assert c.get("object") == "chat.completion.chunk", c
        assert isinstance(c.get("id"), str) and c["id"], c
        assert isinstance(c.get("created"), int), c
        assert isinstance(c.get("model"), str), c
        assert isinstance(c.get("choices"), list), c
    assert len({c["id"] for c in chunks}) == 1, f"chunk ids differ: {sorted({c['id'] for c in chunks})}"
    with_choices = [c for c in chunks if c["choices"]]
    assert with_choices, "no chunk carries a choice"
    assert with_choices[0]["choices"][0]["delta"].get("role") == "assistant", f"first delta has no role: {with_choices[0]}"
    finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch.get("finish_reason")]
    assert len(finishes) == 1, f"expected exactly one finish_reason, got {finishes}"
    seen_tool_ids: dict[int, str] = {}
    for c in chunks:
        for ch in c["choices"]:
            assert ch.get("index") == 0, ch
            for tc in ch["delta"].get("tool_calls") or []:
                idx = tc.get("index")
                assert isinstance(idx, int), f"tool call delta without index: {tc}"
                if idx not in seen_tool_ids:
                    assert tc.get("id") and (tc.get("function") or {}).get("name"), f"first fragment of tool call {idx} lacks id/name: {tc}"
                    seen_tool_ids[idx] = tc["id"]
                elif tc.get("id") is not None:
                    assert tc["id"] == seen_tool_ids[idx], f"tool call {idx} changed id: {tc}"
    if include_usage is True:
        for c in chunks[:-1]:
            assert "usage" in c and c["usage"] is None, f"with include_usage every chunk but the last has usage: null: {c}"
        last = chunks[-1]
        assert last["choices"] == [], f"usage chunk must have empty choices: {last}"
        assert isinstance(last.get("usage"), dict), f"last chunk must carry usage: {last}"
    elif include_usage is False:
        with_usage = [c for c in chunks if c.get("usage")]
        assert not with_usage, f"usage sent without stream_options.include_usage: {with_usage}"
    return chunks


_DELTA_FOR_BLOCK = {"text": {"text_delta", "citations_delta"}, "tool_use": {"input_json_delta"},
                    "thinking": {"thinking_delta", "signature_delta"}, "redacted_thinking": set()}


def check_anthropic_stream(raw: bytes) -> list[dict]:
    """Assert `raw` is a well-formed Anthropic Messages stream; return the events (pings included)."""
    events, clean = parse_sse(raw)
    assert events, "empty stream"
    assert clean, f"stream does not end on an event boundary: {raw[-200:]!r}"
    objs = []
    for name, d in events:
        assert name is not None, f"Anthropic SSE event without an `event:` line: {d!r}"
        try:
            obj = json.loads(d)
        except ValueError as e:
            raise AssertionError(f"non-JSON data in Anthropic stream: {d!r}") from e
        assert obj.get("type") == name, f"event name {name!r} does not match data type {obj.get('type')!r}"
        assert name != "error", f"error event in stream: {obj}"
        objs.append(obj)
    seq = [o for o in objs if o["type"] != "ping"]
    assert seq[0]["type"] == "message_start", f"first event is {seq[0]['type']}"
    assert seq[-1]["type"] == "message_stop", f"last event is {seq[-1]['type']}"
    assert seq[-2]["type"] == "message_delta", f"message_delta must come right before message_stop, got {seq[-2]['type']}"
    assert sum(o["type"] == "message_delta" for o in seq) == 1, "more than one message_delta"
    msg = seq[0]["message"]
    assert msg.get("type") == "message" and msg.get("role") == "assistant" and isinstance(msg.get("id"), str), msg
    assert msg.get("content") == [], msg
    assert isinstance((msg.get("usage") or {}).get("input_tokens"), int), f"message_start without usage.input_tokens: {msg}"
    assert seq[-2]["delta"].get("stop_reason"), f"message_delta without stop_reason: {seq[-2]}"
    assert isinstance((seq[-2].get("usage") or {}).get("output_tokens"), int), f"message_delta without usage.output_tokens: {seq[-2]}"
    open_idx: int | None = None
    open_type = ""
    next_idx = 0
    for o in seq[1:-2]:
        t = o["type"]
        if t == "content_block_start":
            assert open_idx is None, f"block {o['index']} started while block {open_idx} is open"
            assert o["index"] == next_idx, f"block index {o['index']}, expected {next_idx}"
            open_idx, open_type = o["index"], o["content_block"]["type"]
        elif t == "content_block_delta":
            assert o["index"] == open_idx, f"delta for block {o['index']} while {open_idx} is open"
            assert o["delta"]["type"] in _DELTA_FOR_BLOCK.get(open_type, {o["delta"]["type"]}), \
                f"{o['delta']['type']} inside a {open_type} block"
        elif t == "content_block_stop":
            assert o["index"] == open_idx, f"stop for block {o['index']} while {open_idx} is open"
            open_idx = None
            next_idx += 1
        else:
            raise AssertionError(f"unexpected event {t} between message_start and message_delta")
    assert open_idx is None, f"block {open_idx} never stopped"
    return objs


GEMINI_PART_DATA = ("text", "inlineData", "functionCall", "functionResponse", "fileData", "executableCode", "codeExecutionResult")


def check_gemini_parts(obj: dict, where: str) -> None:
    """Each candidate's content is the model's, and each part carries exactly one kind of data."""
    for c in obj.get("candidates") or []:
        content = c.get("content")
        if content is None:
            continue
        assert content.get("role") == "model", f"{where}: candidate content role {content.get('role')!r}"
        for p in content.get("parts") or []:
            data = [k for k in GEMINI_PART_DATA if k in p]
            assert len(data) == 1, f"{where}: a part must carry exactly one of {GEMINI_PART_DATA}: {p}"
            assert set(p) <= set(GEMINI_PART_DATA) | {"thought", "thoughtSignature", "partMetadata", "videoMetadata"}, \
                f"{where}: unknown part field in {p}"


def check_gemini_stream(raw: bytes) -> list[dict]:
    """Assert `raw` is a well-formed Gemini `streamGenerateContent?alt=sse` body (`data: {GenerateContentResponse}`
    events, no event names, no [DONE]); return the responses."""
    events, clean = parse_sse(raw)
    assert events, "empty stream"
    assert clean, f"stream does not end on an event boundary: {raw[-200:]!r}"
    out = []
    for name, d in events:
        assert name is None, f"Gemini SSE events have no `event:` line, got {name!r}"
        assert d != "[DONE]", "a Gemini stream ends without data: [DONE]"
        try:
            obj = json.loads(d)
        except ValueError as e:
            raise AssertionError(f"non-JSON data in a Gemini stream: {d!r}") from e
        assert isinstance(obj, dict) and "error" not in obj, f"error in stream: {obj}"
        assert isinstance(obj.get("candidates"), list) or isinstance(obj.get("usageMetadata"), dict), \
            f"a chunk with neither candidates nor usageMetadata: {obj}"
        check_gemini_parts(obj, "stream chunk")
        out.append(obj)
    finishes = [(i, c["finishReason"]) for i, o in enumerate(out) for c in o.get("candidates") or []
                if c.get("finishReason") and c.get("index", 0) == 0]
    assert len(finishes) == 1, f"expected exactly one finishReason for candidate 0, got {finishes}"
    assert all(not (o.get("candidates") or [{}])[0].get("content", {}).get("parts") for o in out[finishes[0][0] + 1:]), \
        "content after the finishReason"
    assert isinstance(out[-1].get("usageMetadata"), dict), f"the last chunk must carry the final usageMetadata: {out[-1]}"
    return out


def assert_gemini_error(r: "Raw", status: int | tuple[int, ...]) -> dict:
    """Google's error shape: {"error": {"code": <the HTTP status>, "message", "status": <its canonical name>}}."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status in statuses, f"status {r.status}, expected {status}: {r.body[:500]!r}"
    body = r.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), f"not a Google error: {body}"
    err = body["error"]
    assert err.get("code") == r.status, f"error.code must be the HTTP status {r.status}: {err}"
    assert isinstance(err.get("message"), str) and err["message"], err
    canonical = GOOGLE_STATUS.get(r.status)
    if canonical:
        assert err.get("status") == canonical, f"{r.status} is {canonical}: {err}"
    else:
        assert isinstance(err.get("status"), str) and err["status"], err
    return err


GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
                 500: "INTERNAL", 501: "NOT_IMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


# ------------------------------------------------------------------------------------------------
# calling through the SDKs and collecting what the client sees


@dataclass
class OAResult:
    text: str
    reasoning: str | None
    tool_calls: list[dict]
    finish_reason: str | None
    usage: dict | None
    headers: Any
    chunks: list[Any]
    model: str | None


def openai_chat(client: openai.OpenAI, *, stream: bool, request_id: str | None = None,
                extra_headers: dict | None = None, **kw: Any) -> OAResult:
    hdrs = dict(extra_headers or {})
    if request_id:
        hdrs["X-Request-ID"] = request_id
    raw = client.chat.completions.with_raw_response.create(stream=stream, extra_headers=hdrs or None, **kw)
    parsed = raw.parse()
    if not stream:
        ch = parsed.choices[0]
        msg = ch.message
        calls = [{"id": tc.id, "name": tc.function.name, "arguments": tc.function.arguments} for tc in (msg.tool_calls or [])]
        return OAResult(msg.content or "", getattr(msg, "reasoning_content", None), calls, ch.finish_reason,
                        parsed.usage.model_dump() if parsed.usage else None, raw.headers, [], parsed.model)
    text, reasoning, finish, usage, model = "", None, None, None, None
    calls: dict[int, dict] = {}
    chunks = []
    for c in parsed:
        chunks.append(c)
        model = c.model
        if c.usage is not None:
            usage = c.usage.model_dump()
        for ch in c.choices:
            d = ch.delta
            if d.content:
                text += d.content
            rc = getattr(d, "reasoning_content", None)
            if rc:
                reasoning = (reasoning or "") + rc
            for tc in d.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
                if tc.id:
                    slot["id"] = tc.id
                if tc.function is not None:
                    if tc.function.name:
                        slot["name"] = tc.function.name
                    if tc.function.arguments:
                        slot["arguments"] += tc.function.arguments
            if ch.finish_reason:
                finish = ch.finish_reason
    return OAResult(text, reasoning, [calls[i] for i in sorted(calls)], finish, usage, raw.headers, chunks, model)


@dataclass
class AResult:
    blocks: list[dict]
    stop_reason: str | None
    stop_sequence: str | None
    usage: dict
    start_usage: dict | None
    headers: Any
    events: list[Any]
    message_id: str | None

    @property
    def text(self) -> str:
        return "".join(b["text"] for b in self.blocks if b["type"] == "text")

    def of(self, kind: str) -> list[dict]:
        return [b for b in self.blocks if b["type"] == kind]


def anthropic_messages(client: anthropic.Anthropic, *, stream: bool, request_id: str | None = None,
                       extra_headers: dict | None = None, **kw: Any) -> AResult:
    hdrs = dict(extra_headers or {})
    if request_id:
        hdrs["X-Request-ID"] = request_id
    raw = client.messages.with_raw_response.create(stream=stream, extra_headers=hdrs or None, **kw)
    parsed = raw.parse()
    if not stream:
        blocks = [b.model_dump(exclude_none=True) for b in parsed.content]
        return AResult(blocks, parsed.stop_reason, parsed.stop_sequence, parsed.usage.model_dump(), None, raw.headers, [], parsed.id)
    blocks_by_idx: dict[int, dict] = {}
    json_bufs: dict[int, str] = {}
    usage: dict = {}
    start_usage = None
    stop_reason = stop_sequence = msg_id = None
    events = []
    for ev in parsed:
        events.append(ev)
        if ev.type == "message_start":
            start_usage = ev.message.usage.model_dump()
            usage = dict(start_usage)
            msg_id = ev.message.id
        elif ev.type == "content_block_start":
            blocks_by_idx[ev.index] = ev.content_block.model_dump(exclude_none=True)
            if ev.content_block.type == "tool_use":
                json_bufs[ev.index] = ""
        elif ev.type == "content_block_delta":
            b = blocks_by_idx[ev.index]
            d = ev.delta
            if d.type == "text_delta":
                b["text"] = b.get("text", "") + d.text
            elif d.type == "input_json_delta":
                json_bufs[ev.index] += d.partial_json
            elif d.type == "thinking_delta":
                b["thinking"] = b.get("thinking", "") + d.thinking
            elif d.type == "signature_delta":
                b["signature"] = d.signature  # as the SDK's own accumulator does
        elif ev.type == "content_block_stop":
            b = blocks_by_idx[ev.index]
            if b["type"] == "tool_use":
                buf = json_bufs.get(ev.index, "")
                b["input"] = json.loads(buf) if buf else {}
        elif ev.type == "message_delta":
            stop_reason = ev.delta.stop_reason
            stop_sequence = ev.delta.stop_sequence
            for k, v in ev.usage.model_dump().items():
                if v is not None:
                    usage[k] = v
    return AResult([blocks_by_idx[i] for i in sorted(blocks_by_idx)], stop_reason, stop_sequence, usage, start_usage,
                   raw.headers, events, msg_id)


@dataclass
class GResult:
    text: str
    thoughts: str | None
    calls: list[dict]          # {"name", "args", "id", "thought_signature" (bytes, as the SDK decodes it)}
    finish_reason: str | None
    usage: dict | None         # usage_metadata, snake_case, without unset fields
    chunks: list[Any]
    content: Any               # the model's Content to put back into the history (a stream's parts, in order)
    headers: Any


def gemini_generate(client: Any, *, stream: bool, model: str, contents: Any, request_id: str | None = None,
                    **config: Any) -> GResult:
    """generate_content / generate_content_stream with `config` as GenerateContentConfig fields."""
    from google.genai import types
    if request_id:
        config["http_options"] = types.HttpOptions(headers={"X-Request-ID": request_id})
    cfg = types.GenerateContentConfig(**config) if config else None
    if stream:
        chunks = list(client.models.generate_content_stream(model=model, contents=contents, config=cfg))
    else:
        chunks = [client.models.generate_content(model=model, contents=contents, config=cfg)]
    text, thoughts, calls, finish, usage, parts = "", None, [], None, None, []
    for ch in chunks:
        if ch.usage_metadata is not None:
            usage = ch.usage_metadata.model_dump(mode="json", exclude_none=True)
        for cand in ch.candidates or []:
            if (cand.index or 0) != 0:
                continue
            if cand.finish_reason is not None:
                finish = getattr(cand.finish_reason, "value", cand.finish_reason)
            for p in (cand.content.parts if cand.content else None) or []:
                parts.append(p)
                if p.function_call is not None:
                    calls.append({"name": p.function_call.name, "args": p.function_call.args, "id": p.function_call.id,
                                  "thought_signature": p.thought_signature})
                elif p.text is not None and p.thought:
                    thoughts = (thoughts or "") + p.text
                elif p.text is not None:
                    text += p.text
    headers = chunks[-1].sdk_http_response.headers if chunks and chunks[-1].sdk_http_response else None
    return GResult(text, thoughts, calls, finish, usage, chunks, types.Content(role="model", parts=parts), headers)


# ------------------------------------------------------------------------------------------------
# reading what the upstream received


def oa_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def an_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if b.get("type") == "text")


def an_blocks(content: Any) -> list[dict]:
    """Anthropic content as a list of blocks (a plain string becomes one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content or [])


def assert_no_secret_leak_upstream(req: dict) -> None:
    """The proxy keys must never reach an upstream, and an upstream only ever gets its own key."""
    prefix = req["path"].split("/")[1]
    blob = json.dumps(req["headers"]) + json.dumps(req.get("body")) + (req.get("query") or "")
    for name, secret in ALL_SECRETS.items():
        if name == f"{prefix.upper()}_API_KEY" or name in UPSTREAM_SECRET_NAMES.get(prefix, ()):
            continue
        assert secret not in blob, f"{name} was sent to the {prefix} upstream ({req['path']})"


# ------------------------------------------------------------------------------------------------
# shared expectations

UPSTREAM_MODEL = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5", "groq": "llama-3.3-70b-versatile",
                  "gemini": "gemini-2.5-flash"}
REASONING_MODEL = {"openai": "o4-mini", "anthropic": "claude-sonnet-4-5"}
UPSTREAM_PATH = {"openai": "/openai/v1/chat/completions", "anthropic": "/anthropic/v1/messages",
                 "groq": "/groq/v1/chat/completions"}
SYSTEM = "You are a terse assistant."
WEATHER_PARAMS = {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}
WEATHER_DESC = "Get the current weather for a city"
WEATHER_TOOL_OA = {"type": "function", "function": {"name": "get_weather", "description": WEATHER_DESC, "parameters": WEATHER_PARAMS}}
WEATHER_TOOL_AN = {"name": "get_weather", "description": WEATHER_DESC, "input_schema": WEATHER_PARAMS}
TOOL_RESULT = "22C and sunny"
ANY = object()


def expected_openai_usage(upstream: str, reasoning: bool = False) -> dict:
    """What an OpenAI client must see, given the mock's numbers."""
    extra = REASONING_TOKENS if reasoning else 0
    if upstream == "gemini":  # promptTokenCount includes the cached tokens; thoughts are output
        out = _GU["candidatesTokenCount"] + extra
        return {"prompt_tokens": _GU["promptTokenCount"], "completion_tokens": out,
                "total_tokens": _GU["promptTokenCount"] + out, "cached_tokens": _GU["cachedContentTokenCount"]}
    if upstream == "anthropic":
        prompt = _AU["input_tokens"] + _AU["cache_read_input_tokens"] + _AU["cache_creation_input_tokens"]
        return {"prompt_tokens": prompt, "completion_tokens": _AU["output_tokens"] + extra,
                "total_tokens": prompt + _AU["output_tokens"] + extra, "cached_tokens": _AU["cache_read_input_tokens"]}
    cached = _OU["cached_tokens"] if upstream == "openai" else 0
    return {"prompt_tokens": _OU["prompt_tokens"], "completion_tokens": _OU["completion_tokens"] + extra,
            "total_tokens": _OU["prompt_tokens"] + _OU["completion_tokens"] + extra, "cached_tokens": cached}


def expected_anthropic_usage(upstream: str, reasoning: bool = False) -> dict:
    extra = REASONING_TOKENS if reasoning else 0
    if upstream == "gemini":  # Anthropic's input_tokens excludes what was read from the cache
        return {"input_tokens": _GU["promptTokenCount"] - _GU["cachedContentTokenCount"],
                "output_tokens": _GU["candidatesTokenCount"] + extra,
                "cache_read_input_tokens": _GU["cachedContentTokenCount"], "cache_creation_input_tokens": 0}
    if upstream == "anthropic":
        return {"input_tokens": _AU["input_tokens"], "output_tokens": _AU["output_tokens"] + extra,
                "cache_read_input_tokens": _AU["cache_read_input_tokens"],
                "cache_creation_input_tokens": _AU["cache_creation_input_tokens"]}
    cached = _OU["cached_tokens"] if upstream == "openai" else 0
    return {"input_tokens": _OU["prompt_tokens"] - cached, "output_tokens": _OU["completion_tokens"] + extra,
            "cache_read_input_tokens": cached, "cache_creation_input_tokens": 0}


def expected_log_usage(upstream: str, reasoning: bool = False) -> dict:
    """Canonical usage (Anthropic semantics: `input` excludes cached tokens)."""
    extra = REASONING_TOKENS if reasoning else 0
    if upstream == "gemini":
        return {"input": _GU["promptTokenCount"] - _GU["cachedContentTokenCount"], "output": _GU["candidatesTokenCount"] + extra,
                "cache_read": _GU["cachedContentTokenCount"], "cache_write": 0, "reasoning": extra}
    if upstream == "anthropic":
        return {"input": _AU["input_tokens"], "output": _AU["output_tokens"] + extra,
                "cache_read": _AU["cache_read_input_tokens"], "cache_write": _AU["cache_creation_input_tokens"]}
    cached = _OU["cached_tokens"] if upstream == "openai" else 0
    out = {"input": _OU["prompt_tokens"] - cached, "output": _OU["completion_tokens"] + extra, "cache_read": cached,
           "cache_write": 0}
    if upstream == "openai":
        out["reasoning"] = extra
    return out


def expected_gemini_usage(upstream: str) -> dict:
    """What a Gemini client must see (usage_metadata, snake_case): promptTokenCount is the whole prompt, cached
    tokens included; candidatesTokenCount the output."""
    if upstream == "gemini":
        return {"prompt_token_count": _GU["promptTokenCount"], "cached_content_token_count": _GU["cachedContentTokenCount"],
                "candidates_token_count": _GU["candidatesTokenCount"],
                "total_token_count": _GU["promptTokenCount"] + _GU["candidatesTokenCount"]}
    if upstream == "anthropic":
        prompt = _AU["input_tokens"] + _AU["cache_read_input_tokens"] + _AU["cache_creation_input_tokens"]
        return {"prompt_token_count": prompt, "cached_content_token_count": _AU["cache_read_input_tokens"],
                "candidates_token_count": _AU["output_tokens"], "total_token_count": prompt + _AU["output_tokens"]}
    return {"prompt_token_count": _OU["prompt_tokens"], "cached_content_token_count": _OU["cached_tokens"],
            "candidates_token_count": _OU["completion_tokens"], "total_token_count": _OU["prompt_tokens"] + _OU["completion_tokens"]}


def check_gemini_usage(usage: dict | None, upstream: str) -> None:
    exp = expected_gemini_usage(upstream)
    assert usage is not None, "no usage_metadata"
    got = {k: usage.get(k) or 0 for k in exp}
    assert got == exp, f"usage_metadata {usage}, expected {exp}"


def check_openai_usage(usage: dict | None, upstream: str, reasoning: bool = False) -> None:
    exp = expected_openai_usage(upstream, reasoning)
    assert usage is not None, "no usage"
    got = {"prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": usage.get("completion_tokens"),
           "total_tokens": usage.get("total_tokens"),
           "cached_tokens": ((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)}
    assert got == exp, f"usage {usage} -> {got}, expected {exp}"
    if reasoning and upstream in ("openai", "gemini"):
        assert (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") == REASONING_TOKENS, usage


def check_anthropic_usage(usage: dict, upstream: str, reasoning: bool = False) -> None:
    exp = expected_anthropic_usage(upstream, reasoning)
    got = {k: usage.get(k) or 0 for k in exp}
    assert got == exp, f"usage {usage}, expected {exp}"


def assert_upstream_auth(req: dict, upstream: str) -> None:
    h = req["headers"]
    if upstream == "gemini":
        assert h.get("x-goog-api-key") == UPSTREAM_KEYS["gemini"], "wrong/missing x-goog-api-key upstream"
        assert "authorization" not in h, f"Authorization sent to Gemini: {h.get('authorization')!r}"
    elif upstream == "anthropic":
        assert h.get("x-api-key") == UPSTREAM_KEYS["anthropic"], "wrong/missing x-api-key upstream"
        # The configured version, or the one an Anthropic client pinned (forwarded on the same-format path).
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", h.get("anthropic-version") or ""), f"anthropic-version upstream: {h.get('anthropic-version')!r}"
    else:
        assert h.get("authorization") == f"Bearer {UPSTREAM_KEYS[upstream]}", f"wrong/missing Authorization for {upstream}"
    assert_no_secret_leak_upstream(req)


def assert_log(log: dict, *, request_id: str, client_format: str, model: str, provider: str | None,
               upstream_model: str | None, status: int = 200, outcome: str = "ok",
               attempts: list[tuple] | None = None, usage: dict | None = None) -> None:
    """Check the per-request log line. `attempts`: [(provider, model, status or ANY, error expected?)]."""
    assert log.get("request_id") == request_id, log
    assert log.get("client_format") == client_format, log
    assert log.get("model") == model, log
    if provider is not ANY:
        assert log.get("provider") == provider, log
    if upstream_model is not ANY:
        assert log.get("upstream_model") == upstream_model, log
    assert log.get("status") == status, log
    assert log.get("outcome") == outcome, log
    atts = log.get("attempts")
    assert isinstance(atts, list), log
    for a in atts:
        assert {"provider", "model", "status", "latency_ms", "error_class"} <= set(a), f"attempt fields: {a}"
        assert isinstance(a["latency_ms"], (int, float)) and a["latency_ms"] >= 0, a
    if attempts is not None:
        assert len(atts) == len(attempts), f"attempts {atts}, expected {attempts}"
        for a, (prov, mdl, st, err) in zip(atts, attempts):
            assert a["provider"] == prov and a["model"] == mdl, f"attempt {a}, expected {prov}/{mdl}"
            if st is not ANY:
                assert a["status"] == st, f"attempt {a}: status, expected {st}"
            if err:
                assert isinstance(a["error_class"], str) and a["error_class"], f"attempt {a}: expected an error_class"
            else:
                assert a["error_class"] is None, f"attempt {a}: expected no error_class"
    if outcome == "ok":
        assert isinstance(log.get("ttfb_ms"), (int, float)) and log["ttfb_ms"] >= 0, log
    if usage is not None:
        u = log.get("usage")
        assert isinstance(u, dict), log
        assert {"input", "output", "cache_read", "cache_write", "reasoning"} <= set(u), f"usage fields: {u}"
        got = {k: u.get(k) or 0 for k in usage}
        assert got == usage, f"log usage {u}, expected {usage}"


def assert_openai_error(r: Raw, status: int | tuple[int, ...]) -> dict:
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status in statuses, f"status {r.status}, expected {status}: {r.body[:500]!r}"
    body = r.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), f"not an OpenAI error: {body}"
    err = body["error"]
    assert {"message", "type", "param", "code"} <= set(err), f"OpenAI error lacks fields: {err}"
    assert isinstance(err["message"], str) and err["message"], err
    assert isinstance(err["type"], str) and err["type"], err
    return err


ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                         404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                         500: "api_error", 529: "overloaded_error"}


def assert_anthropic_error(r: Raw, status: int | tuple[int, ...]) -> dict:
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status in statuses, f"status {r.status}, expected {status}: {r.body[:500]!r}"
    body = r.json()
    assert isinstance(body, dict) and body.get("type") == "error" and isinstance(body.get("error"), dict), \
        f"not an Anthropic error: {body}"
    err = body["error"]
    assert isinstance(err.get("message"), str) and err["message"], err
    assert isinstance(err.get("type"), str) and err["type"], err
    if r.status in ANTHROPIC_ERROR_TYPES:
        assert err["type"] == ANTHROPIC_ERROR_TYPES[r.status], f"{r.status} should be {ANTHROPIC_ERROR_TYPES[r.status]}: {err}"
    return err
