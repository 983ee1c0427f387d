"""Cloud providers with the auth they really use, from the shipped config/gateway.yaml, against mocks that enforce
what the services enforce (mock_cloud.py): Azure OpenAI with an `api-key` and with Azure AD client credentials,
Azure AI Foundry, Gemini and Claude on Vertex AI with a service account (the token endpoint verifies the RS256
JWT with the account's public key; the API takes only tokens it issued). Clients are the official SDKs."""
from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import gwtest as g

SHIPPED = g.REPO / "config/gateway.yaml"
AAD = {"AZURE_TENANT_ID": "e2e-tenant", "AZURE_CLIENT_ID": "e2e-client",
       "AZURE_CLIENT_SECRET": g.CLOUD_SECRETS["AZURE_CLIENT_SECRET"]}


def cloud(mock, body: dict | None = None) -> dict:
    req = urllib.request.Request(mock.base + "/_mock/cloud", data=json.dumps(body or {}).encode(), method="POST")
    return json.loads(g._no_proxy_open(req))


def key_file(tmp: Path, mock_url: str, token_path: str = "/google/token") -> Path:
    sa = json.loads((g.SERVICE_ACCOUNT_DIR / "service_account.json").read_text())
    sa["token_uri"] = mock_url + token_path
    p = tmp / "sa.json"
    p.write_text(json.dumps(sa))
    return p


@pytest.fixture(scope="module")
def cgw(gateway_factory, mock_url, tmp_path_factory) -> g.Gateway:
    """The shipped config; Azure by api-key, Vertex by a key file path."""
    sa = key_file(tmp_path_factory.mktemp("sa"), mock_url)
    gw = gateway_factory.start("cloud", config=SHIPPED, extra_env={
        "AZURE_OPENAI_BASE_URL": f"{mock_url}/azure",
        "AZURE_OPENAI_API_KEY": g.CLOUD_SECRETS["AZURE_OPENAI_API_KEY"],
        "AZURE_AI_FOUNDRY_BASE_URL": f"{mock_url}/foundry/models",
        "AZURE_AI_FOUNDRY_API_KEY": g.CLOUD_SECRETS["AZURE_AI_FOUNDRY_API_KEY"],
        "VERTEX_BASE_URL": f"{mock_url}/vertex",
        "GOOGLE_APPLICATION_CREDENTIALS": str(sa),
    })
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def adgw(gateway_factory, mock_url, tmp_path_factory) -> g.Gateway:
    """Azure OpenAI and Foundry by Azure AD (no api-key); Vertex by the key file's JSON itself."""
    sa = key_file(tmp_path_factory.mktemp("sa-json"), mock_url).read_text()
    gw = gateway_factory.start("cloud-aad", config=SHIPPED, extra_env={
        "AZURE_OPENAI_BASE_URL": f"{mock_url}/azure", "AZURE_AI_FOUNDRY_BASE_URL": f"{mock_url}/foundry/models",
        "AZURE_AUTHORITY_HOST": f"{mock_url}/aad", **AAD,
        "VERTEX_BASE_URL": f"{mock_url}/vertex", "GOOGLE_APPLICATION_CREDENTIALS": sa,
    })
    yield gw
    gw.stop()


def upstream(mock, marker: str) -> dict:
    return mock.one(marker)


# ---- the mocks enforce what the services enforce -----------------------------------------------

def test_azure_mock_refuses_what_azure_refuses(mock_url):
    path = "/azure/openai/deployments/gpt-4o/chat/completions"
    body = {"messages": [{"role": "user", "content": "hi"}]}
    key = g.CLOUD_SECRETS["AZURE_OPENAI_API_KEY"]
    r = g.raw_request(mock_url, "POST", path, body, {"api-key": key})
    assert r.status == 404 and r.json()["error"]["message"] == "Resource not found"
    r = g.raw_request(mock_url, "POST", path + "?api-version=2024-10-21", body, {"Authorization": f"Bearer {key}"})
    assert r.status == 401, r.body
    r = g.raw_request(mock_url, "POST", path + "?api-version=2024-10-21", body, {"api-key": key})
    assert r.status == 200 and "prompt_filter_results" in r.json()


def test_google_mock_verifies_the_jwt_signature(mock_url):
    sa = json.loads((g.SERVICE_ACCOUNT_DIR / "service_account.json").read_text())
    vector = json.loads((g.SERVICE_ACCOUNT_DIR / "google-sa-jwt-vector.json").read_text())
    # google-auth's own assertion verifies with the public key (it fails later: its audience is Google's),
    # and one with a flipped signature byte does not.
    good = vector["assertion"]
    head, claims, sig = good.split(".")
    bad = f"{head}.{claims}.{sig[:10]}{'A' if sig[10] != 'A' else 'B'}{sig[11:]}"
    form = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion="
    hdrs = {"Content-Type": "application/x-www-form-urlencoded"}
    r = g.raw_request(mock_url, "POST", "/google/token", form + good, hdrs)
    assert r.status == 400 and r.json()["error_description"].startswith("Invalid JWT: aud must be"), r.body
    r = g.raw_request(mock_url, "POST", "/google/token", form + bad, hdrs)
    assert r.status == 400 and r.json()["error_description"] == "Invalid JWT Signature.", r.body
    assert sa["client_email"] == "service-account@example.com"


# ---- Azure OpenAI --------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True])
def test_azure_openai_with_an_api_key_keeps_azures_fields_for_openai_clients(cgw, recorder, mock, tag, stream):
    marker = f"az {tag} {stream}."
    client = g.openai_client(cgw, recorder)
    if stream:
        chunks = list(client.chat.completions.create(model="azure-openai/gpt-4o", stream=True,
                                                     messages=[{"role": "user", "content": marker}]))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        # Azure's prompt-filter chunk reaches an OpenAI client as Azure sent it.
        assert chunks[0].choices == [] and chunks[0].model_extra.get("prompt_filter_results"), chunks[0]
    else:
        r = client.chat.completions.create(model="azure-openai/gpt-4o", messages=[{"role": "user", "content": marker}])
        text = r.choices[0].message.content
        assert r.model_extra["prompt_filter_results"][0]["content_filter_results"]["hate"]["filtered"] is False
        assert r.choices[0].model_extra["content_filter_results"]["violence"]["severity"] == "safe"
    assert text == f"echo: {marker}"
    up = upstream(mock, marker)
    assert up["path"] == "/azure/openai/deployments/gpt-4o/chat/completions"
    assert up["query"] == "api-version=2024-10-21"
    assert up["headers"]["api-key"] == g.CLOUD_SECRETS["AZURE_OPENAI_API_KEY"]
    assert "authorization" not in up["headers"]


@pytest.mark.parametrize("stream", [False, True])
def test_azure_content_filter_stop_reaches_anthropic_clients_as_refusal(cgw, recorder, mock, tag, stream):
    marker = f"azf {tag} {stream}."
    client = g.anthropic_client(cgw, recorder)
    args = dict(model="azure-openai/mock-filtered", max_tokens=50, messages=[{"role": "user", "content": marker}])
    if stream:
        with client.messages.stream(**args) as s:
            msg = s.get_final_message()
        assert msg.id and msg.id != "", msg
    else:
        msg = client.messages.create(**args)
    assert msg.stop_reason == "refusal"
    assert msg.content[0].text == f"echo: {marker}"[:4]
    assert msg.model == "mock-filtered"


def test_azure_stream_translated_for_anthropic_clients_starts_with_the_real_message(cgw, recorder, mock, tag):
    marker = f"azs {tag}."
    r = g.anthropic_messages(g.anthropic_client(cgw, recorder), stream=True, model="azure-openai/gpt-4o", max_tokens=50,
                             messages=[{"role": "user", "content": marker}])
    assert r.text == f"echo: {marker}"
    issued = upstream(mock, marker)["issued"]
    # The id is the upstream's (from the first real chunk), not the gateway's stand-in for Azure's empty one.
    assert r.message_id == issued["id"], (r.message_id, issued)


# ---- Azure AD ------------------------------------------------------------------------------------

def test_azure_ad_one_exchange_serves_concurrent_requests_and_a_revoked_token_is_renewed(adgw, recorder, mock, tag):
    before = cloud(mock)["exchanges"]["aad"]
    client = g.openai_client(adgw, recorder)

    def ask(i: int) -> str:
        r = client.chat.completions.create(model="azure-openai/gpt-4o", messages=[{"role": "user", "content": f"ad {tag} {i}."}])
        return r.choices[0].message.content

    with ThreadPoolExecutor(16) as ex:
        got = list(ex.map(ask, range(32)))
    assert got == [f"echo: ad {tag} {i}." for i in range(32)]
    state = cloud(mock)
    assert state["exchanges"]["aad"] - before <= 1, state["exchanges"]  # 0 if an earlier test fetched it
    up = upstream(mock, f"ad {tag} 5.")
    token = up["headers"]["authorization"].removeprefix("Bearer ")
    assert token in state["aad"] and "api-key" not in up["headers"]
    exchange = [r for r in mock.requests() if r["path"].startswith("/aad/")][-1]
    assert exchange["path"] == "/aad/e2e-tenant/oauth2/v2.0/token"

    # Revoked (the service now answers 401): renewed once, and the client never notices.
    cloud(mock, {"revoke": token})
    r = client.chat.completions.create(model="azure-openai/gpt-4o", messages=[{"role": "user", "content": f"adr {tag}."}])
    assert r.choices[0].message.content == f"echo: adr {tag}."
    after = cloud(mock)
    assert after["exchanges"]["aad"] == state["exchanges"]["aad"] + 1
    tries = mock.with_nonce(f"adr {tag}.")
    assert [t["status"] for t in tries] == [401, 200]
    assert tries[1]["headers"]["authorization"] != f"Bearer {token}"


def test_azure_ad_bad_secret_is_a_502_naming_the_variables(gateway_factory, mock_url, recorder, tag):
    gw = gateway_factory.start("cloud-aad-bad", config=SHIPPED, extra_env={
        "AZURE_OPENAI_BASE_URL": f"{mock_url}/azure", "AZURE_AUTHORITY_HOST": f"{mock_url}/aad",
        **AAD, "AZURE_CLIENT_SECRET": g.CLOUD_SECRETS["AZURE_CLIENT_SECRET"] + "-wrong"})
    try:
        r = g.raw_request(gw.url, "POST", "/v1/chat/completions",
                          {"model": "azure-openai/gpt-4o", "messages": [{"role": "user", "content": f"bad {tag}"}]},
                          {"Authorization": f"Bearer {g.PROXY_KEY}"}, recorder)
        assert r.status == 502, r.body
        msg = r.json()["error"]["message"]
        assert "azure-openai" in msg and "AZURE_CLIENT_SECRET" in msg and "AADSTS7000215" in msg, msg
        assert g.CLOUD_SECRETS["AZURE_CLIENT_SECRET"] not in msg
    finally:
        gw.stop()


# ---- Azure AI Foundry ----------------------------------------------------------------------------

@pytest.mark.parametrize("gw_name", ["cgw", "adgw"])
def test_foundry_model_inference_by_key_and_by_azure_ad(gw_name, request, recorder, mock, tag):
    gw = request.getfixturevalue(gw_name)
    marker = f"fd {tag} {gw_name}."
    r = g.openai_client(gw, recorder).chat.completions.create(
        model="azure-ai-foundry/Phi-4", messages=[{"role": "user", "content": marker}])
    assert r.choices[0].message.content == f"echo: {marker}"
    up = upstream(mock, marker)
    assert up["path"] == "/foundry/models/chat/completions" and up["query"] == "api-version=2024-05-01-preview"
    assert up["body"]["model"] == "Phi-4"
    if gw_name == "cgw":
        assert up["headers"]["api-key"] == g.CLOUD_SECRETS["AZURE_AI_FOUNDRY_API_KEY"]
    else:
        assert up["headers"]["authorization"].startswith("Bearer aad-tok-")


# ---- Vertex AI -----------------------------------------------------------------------------------

@pytest.mark.parametrize("gw_name", ["cgw", "adgw"])
def test_vertex_gemini_from_a_key_file_path_or_its_json(gw_name, request, recorder, mock, tag):
    gw = request.getfixturevalue(gw_name)
    marker = f"vx {tag} {gw_name}."
    r = g.openai_client(gw, recorder).chat.completions.create(
        model="vertex/gemini-2.5-flash", messages=[{"role": "user", "content": marker}])
    assert r.choices[0].message.content == f"echo: {marker}"
    up = upstream(mock, marker)
    # The project is the account's own (VERTEX_PROJECT unset), the location the default.
    assert up["path"] == "/vertex/v1/projects/example-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
    assert up["headers"]["authorization"].startswith("Bearer ya29.mock-")


def test_vertex_one_token_exchange_serves_many_requests(cgw, recorder, mock, tag):
    g.openai_client(cgw, recorder).chat.completions.create(
        model="vertex/gemini-2.5-flash", messages=[{"role": "user", "content": f"vx warm {tag}."}])
    before = cloud(mock)["exchanges"]["google"]
    client = g.openai_client(cgw, recorder)

    def ask(i: int) -> str:
        model = "vertex/gemini-2.5-flash" if i % 2 else "vertex/claude-sonnet-4-5@20250929"
        r = client.chat.completions.create(model=model, max_tokens=50, messages=[{"role": "user", "content": f"vm {tag} {i}."}])
        return r.choices[0].message.content

    with ThreadPoolExecutor(16) as ex:
        got = list(ex.map(ask, range(40)))
    assert got == [f"echo: vm {tag} {i}." for i in range(40)]
    # Gemini and Claude entries share the account's one token.
    assert cloud(mock)["exchanges"]["google"] == before
    tokens = {upstream(mock, f"vm {tag} {i}.")["headers"]["authorization"] for i in range(40)}
    assert len(tokens) == 1, tokens


@pytest.mark.parametrize("stream", [False, True])
def test_vertex_gemini_for_the_genai_sdk(cgw, recorder, mock, tag, stream):
    marker = f"vg {tag} {stream}."
    client = g.genai_client(cgw.url, recorder)
    r = g.gemini_generate(client, stream=stream, model="vertex/gemini-2.5-flash", contents=marker)
    assert r.text == f"echo: {marker}"
    up = upstream(mock, marker)
    action = "streamGenerateContent" if stream else "generateContent"
    assert up["path"].endswith(f"/publishers/google/models/gemini-2.5-flash:{action}")
    assert up["query"] == ("alt=sse" if stream else "")


@pytest.mark.parametrize("stream", [False, True])
def test_vertex_claude_for_the_anthropic_sdk(cgw, recorder, mock, tag, stream):
    marker = f"vc {tag} {stream}."
    r = g.anthropic_messages(g.anthropic_client(cgw, recorder), stream=stream, model="vertex/claude-sonnet-4-5@20250929",
                             max_tokens=60, messages=[{"role": "user", "content": marker}])
    assert r.text == f"echo: {marker}"
    up = upstream(mock, marker)
    action = "streamRawPredict" if stream else "rawPredict"
    assert up["path"] == f"/vertex/v1/projects/example-project/locations/us-central1/publishers/anthropic/models/claude-sonnet-4-5%4020250929:{action}" \
        or up["path"].endswith(f"/claude-sonnet-4-5@20250929:{action}"), up["path"]
    assert up["body"]["anthropic_version"] == "vertex-2023-10-16" and "model" not in up["body"]


@pytest.mark.parametrize("token_path,why", [("/google/nowhere", "answered 404"),
                                            ("/_mock/health", "answered 200 without a token")])
def test_a_failing_token_endpoint_is_a_502_naming_the_provider_and_variable(gateway_factory, mock_url, recorder, tmp_path,
                                                                            tag, token_path, why):
    sa = key_file(tmp_path, mock_url, token_path)
    gw = gateway_factory.start("cloud-sa-bad", config=SHIPPED, extra_env={
        "VERTEX_BASE_URL": f"{mock_url}/vertex", "GOOGLE_APPLICATION_CREDENTIALS": str(sa)})
    try:
        r = g.raw_request(gw.url, "POST", "/v1/messages",
                          {"model": "vertex/gemini-2.5-flash", "max_tokens": 10, "messages": [{"role": "user", "content": tag}]},
                          {"x-api-key": g.PROXY_KEY, "anthropic-version": "2023-06-01"}, recorder)
        assert r.status == 502, r.body
        e = r.json()
        assert e["type"] == "error", e
        msg = e["error"]["message"]
        assert "vertex" in msg and "GOOGLE_APPLICATION_CREDENTIALS" in msg and why in msg, msg
    finally:
        gw.stop()


@pytest.mark.parametrize("value,why", [("{missing}", "cannot be read here"),
                                       ('{"type": "authorized_user", "client_id": "x"}', "authorized_user")])
def test_an_unusable_key_leaves_vertex_unconfigured_and_says_why(gateway_factory, recorder, tmp_path, tag, value, why):
    # Another tool's credential in the same variable (a gcloud user login) must not stop the gateway.
    gw = gateway_factory.start("cloud-sa-unusable", config=SHIPPED, extra_env={
        "GOOGLE_APPLICATION_CREDENTIALS": value.replace("{missing}", str(tmp_path / "missing.json"))})
    try:
        r = g.raw_request(gw.url, "POST", "/v1/chat/completions",
                          {"model": "vertex/gemini-2.5-flash", "messages": [{"role": "user", "content": tag}]},
                          {"Authorization": f"Bearer {g.PROXY_KEY}"}, recorder)
        assert r.status == 503, r.body
        msg = r.json()["error"]["message"]
        assert "provider `vertex` is not configured: set GOOGLE_APPLICATION_CREDENTIALS" in msg and why in msg, msg
    finally:
        gw.stop()


# ---- GitHub Copilot ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ghgw(gateway_factory, mock_url) -> g.Gateway:
    """The shipped config with a GitHub token; GitHub's API at the mock (its token names the mock's Copilot API)."""
    gw = gateway_factory.start("cloud-copilot", config=SHIPPED, extra_env={
        "GITHUB_TOKEN": g.CLOUD_SECRETS["GITHUB_TOKEN"], "GITHUB_API_URL": f"{mock_url}/github"})
    yield gw
    gw.stop()


@pytest.mark.parametrize("stream", [False, True])
def test_copilot_exchanges_the_github_token_and_calls_the_api_it_names(ghgw, recorder, mock, tag, stream):
    marker = f"gh {tag} {stream}."
    r = g.openai_chat(g.openai_client(ghgw, recorder), stream=stream, model="github-copilot/gpt-4.1",
                      messages=[{"role": "user", "content": marker}])
    assert r.text == f"echo: {marker}"
    up = upstream(mock, marker)
    # The chat went to the host the token named, with the token and the editor headers Copilot requires.
    assert up["path"] == "/copilot/chat/completions"
    assert up["headers"]["authorization"].startswith("Bearer tid=mock")
    assert up["headers"]["copilot-integration-id"] == "vscode-chat" and up["headers"]["editor-version"].startswith("vscode/")
    exchange = [x for x in mock.requests() if x["path"] == "/github/copilot_internal/v2/token"][-1]
    assert exchange["headers"]["authorization"] == f"token {g.CLOUD_SECRETS['GITHUB_TOKEN']}"


def test_copilot_renews_an_expired_or_revoked_token_invisibly(ghgw, recorder, mock, tag):
    client = g.openai_client(ghgw, recorder)
    client.chat.completions.create(model="github-copilot/gpt-4.1", messages=[{"role": "user", "content": f"ghw {tag}."}])
    token = upstream(mock, f"ghw {tag}.")["headers"]["authorization"].removeprefix("Bearer ")
    before = cloud(mock)["exchanges"]["copilot"]
    cloud(mock, {"revoke": token})

    def ask(i: int) -> str:
        r = client.chat.completions.create(model="github-copilot/gpt-4.1", messages=[{"role": "user", "content": f"ghr {tag} {i}."}])
        return r.choices[0].message.content

    with ThreadPoolExecutor(8) as ex:
        got = list(ex.map(ask, range(16)))
    assert got == [f"echo: ghr {tag} {i}." for i in range(16)]
    # Requests that met the revoked token each renewed it once at most; the renewals were shared.
    after = cloud(mock)["exchanges"]["copilot"]
    assert 1 <= after - before <= 2, (before, after)


def test_copilot_short_lived_tokens_are_renewed_before_they_expire(gateway_factory, mock_url, recorder, mock, tag):
    cloud(mock, {"copilot_ttl": 62})  # refresh_in 1 s after the renewal margin: renewed on the next request
    gw = gateway_factory.start("cloud-copilot-short", config=SHIPPED, extra_env={
        "GITHUB_TOKEN": g.CLOUD_SECRETS["GITHUB_TOKEN"], "GITHUB_API_URL": f"{mock_url}/github"})
    try:
        client = g.openai_client(gw, recorder)
        import time
        for i in range(2):
            client.chat.completions.create(model="github-copilot/gpt-4.1", messages=[{"role": "user", "content": f"ghs {tag} {i}."}])
            time.sleep(2.1)
        a, b = (upstream(mock, f"ghs {tag} {i}.")["headers"]["authorization"] for i in range(2))
        assert a != b
        assert [t["status"] for t in mock.with_nonce(f"ghs {tag} 1.")] == [200]  # no 401 on the way
    finally:
        cloud(mock, {"copilot_ttl": 1800})
        gw.stop()


def test_a_bad_github_token_is_a_clear_error_naming_the_variable(gateway_factory, mock_url, recorder, tag):
    gw = gateway_factory.start("cloud-copilot-bad", config=SHIPPED, extra_env={
        "GITHUB_TOKEN": "gho_not-a-real-token-123456", "GITHUB_API_URL": f"{mock_url}/github"})
    try:
        r = g.raw_request(gw.url, "POST", "/v1/messages",
                          {"model": "github-copilot/gpt-4.1", "max_tokens": 10, "messages": [{"role": "user", "content": tag}]},
                          {"x-api-key": g.PROXY_KEY, "anthropic-version": "2023-06-01"}, recorder)
        assert r.status == 502, r.body
        msg = r.json()["error"]["message"]
        assert "github-copilot" in msg and "GITHUB_TOKEN" in msg and "not valid" in msg, msg
        assert "gho_not-a-real" not in msg
    finally:
        gw.stop()


def test_gateway_auth_copilot_runs_the_device_flow(mock_url, mock):
    import os
    import subprocess
    env = {"PATH": os.environ.get("PATH", ""), "GITHUB_URL": f"{mock_url}/ghlogin"}
    p = subprocess.run([g.GatewayFactory.binary(), "auth", "copilot"], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == g.CLOUD_SECRETS["GITHUB_TOKEN"]
    assert "https://github.com/login/device" in p.stderr and "WDJB-MJHT" in p.stderr
    polls = [r for r in mock.requests() if r["path"] == "/ghlogin/login/oauth/access_token"]
    assert len(polls) >= 2  # one pending answer, then the token


def test_issued_tokens_never_reach_clients_or_logs(cgw, adgw, ghgw, recorder, mock):
    issued = [t for who in ("aad", "google", "copilot") for t in cloud(mock)[who]]
    assert issued
    with recorder.lock:
        entries = list(recorder.entries)
    for gw in (cgw, adgw, ghgw):
        log = gw.log_text()
        assert not [t for t in issued if t in log]
    for e in entries:
        body = e.body.decode("latin-1")
        assert not [t for t in issued if t in body], e.url
