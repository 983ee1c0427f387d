"""The same API behaviour from all three runtimes: the local `gateway`, the Lambda function under
`cargo lambda watch` (state in DynamoDB Local) and the Worker under `wrangler dev` (state in a
Durable Object). Official SDKs (openai, anthropic, google-genai), streamed and not, a fast-path and
a translated route, a Gemini upstream and the Gemini client API, bad keys, unknown models, and
breaker state that is shared between instances or survives a restart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anthropic
import openai
import pytest

import gwtest as g

RUNTIMES = ["local", "lambda", "worker"]
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
# (requested model, upstream): same-format traffic takes the fast path, the other is translated.
OPENAI_ROUTES = pytest.mark.parametrize("model,upstream", [("gpt-4o-mini", "openai"), ("claude-sonnet-4-5", "anthropic")],
                                        ids=["fast-path", "translated"])
ANTHROPIC_ROUTES = pytest.mark.parametrize("model,upstream", [("claude-sonnet-4-5", "anthropic"), ("gpt-4o-mini", "openai")],
                                           ids=["fast-path", "translated"])
USER = [{"role": "user", "content": "hi"}]


BEDROCK_PROVIDER = """
  bedrock:
    format: bedrock
    base_url: http://127.0.0.1:1/bedrock-base-url-must-come-from-BEDROCK_BASE_URL
    auth:
      - { type: bearer, env: [AWS_BEARER_TOKEN_BEDROCK] }
      - { type: aws_sigv4, service: bedrock, region: "${AWS_REGION:-us-east-1}" }
    models: [us.anthropic.claude-3-7-sonnet-20250219-v1:0]

"""
BEDROCK_MODEL = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"


ADMIN_KEY = "admin-e2e-key"
KEY_RPM = 3  # on the second proxy key: test_a_key_limit_holds_on_every_runtime


# A provider on the mock's OpenAI API with a $1 daily budget, at a price where one answer spends it:
# test_a_provider_budget_holds_on_every_runtime.
BUDGETED_PROVIDER = """
  budgeted:
    format: openai
    base_url: {mock_url}/openai/v1
    auth: {{ type: bearer, env: [OPENAI_API_KEY] }}
    budget: {{ daily_usd: 1 }}
    models: []

"""
# Input is cheap (the estimate reserved before the call passes), output dear (one answer spends the $1).
BUDGET_PRICES = "\nprices: {budget-model: {input: 10000, output: 500000}}\n"

# The shipped config's cloud entries, on the mock (mock_cloud.py): Azure OpenAI by api-key, Gemini and
# Claude on Vertex AI by a service account whose key file's JSON is the variable (a Worker secret).
CLOUD_PROVIDERS = """
  azure-openai:
    format: openai
    base_url: {mock_url}/azure
    auth: [{{ type: header, name: api-key, env: [AZURE_OPENAI_API_KEY] }}, {{ type: azure_ad }}]
    params: {{ api_version: "2024-10-21" }}
    paths:
      chat: "/openai/deployments/{{model}}/chat/completions?api-version={{api_version}}"
      embeddings: "/openai/deployments/{{model}}/embeddings?api-version={{api_version}}"
    models: []

  vertex:
    format: gemini
    base_url: {mock_url}/vertex
    auth: {{ type: google_service_account, env: [GOOGLE_APPLICATION_CREDENTIALS] }}
    params: {{ project: "", location: us-central1 }}
    paths:
      chat: "/v1/projects/{{project}}/locations/{{location}}/publishers/google/models/{{model}}:generateContent"
      chat_stream: "/v1/projects/{{project}}/locations/{{location}}/publishers/google/models/{{model}}:streamGenerateContent?alt=sse"
      embeddings: "/v1/projects/{{project}}/locations/{{location}}/publishers/google/models/{{model}}:predict"
    embed_wire: vertex_predict
    delegate: {{ "claude-*": vertex-claude }}
    models: []

  vertex-claude:
    format: anthropic
    base_url: {mock_url}/vertex
    auth: {{ type: google_service_account, env: [GOOGLE_APPLICATION_CREDENTIALS] }}
    params: {{ project: "", location: us-central1 }}
    paths:
      chat: "/v1/projects/{{project}}/locations/{{location}}/publishers/anthropic/models/{{model}}:rawPredict"
      chat_stream: "/v1/projects/{{project}}/locations/{{location}}/publishers/anthropic/models/{{model}}:streamRawPredict"
      count_tokens: ""
    body: {{ anthropic_version: vertex-2023-10-16, model: null }}
    models: []

"""


def _cloud_env(mock_url: str, workdir: Path | None = None) -> dict[str, str]:
    """The key file's JSON itself (a Worker secret), or with `workdir` a path to it (Lambda reads files; the
    emulator's env file cannot carry the key's escaped newlines)."""
    sa = json.loads((g.SERVICE_ACCOUNT_DIR / "service_account.json").read_text())
    sa["token_uri"] = f"{mock_url}/google/token"
    key = json.dumps(sa)
    if workdir is not None:
        (workdir / "sa.json").write_text(key)
        key = str(workdir / "sa.json")
    return {"AZURE_OPENAI_API_KEY": g.CLOUD_SECRETS["AZURE_OPENAI_API_KEY"], "GOOGLE_APPLICATION_CREDENTIALS": key}


@pytest.fixture(scope="session")
def breaker_config(tmp_path_factory, mock_url) -> Path:
    """The test config with the Gemini and Bedrock providers, a breaker that opens after 2 failures and
    stays open for a minute, an RPM of KEY_RPM on the second proxy key, and a budgeted provider."""
    text = (g.HERE / "gateway.gemini.yaml").read_text()
    assert text.count("\nroutes:\n") == 1
    text = text.replace("\nroutes:\n", "\n" + BEDROCK_PROVIDER + BUDGETED_PROVIDER.format(mock_url=mock_url)
                        + CLOUD_PROVIDERS.format(mock_url=mock_url) + "routes:\n")
    text += BUDGET_PRICES
    key = "    key: ${E2E_SECOND_PROXY_KEY:-}\n"
    assert text.count(key) == 1
    text = text.replace(key, key + f"    limits: {{rpm: {KEY_RPM}}}\n")
    p = tmp_path_factory.mktemp("cfg-rt") / "gateway.breaker.yaml"
    p.write_text(text + "\nbreaker: {consecutive_failures: 2, cooldown_ms: 60000}\n")
    return p


def _ddb_env(endpoint: str) -> dict[str, str]:
    # One set of credentials for DynamoDB and Bedrock, as a function's role gives (DynamoDB Local
    # takes any; the Bedrock mock checks the SigV4 made with them).
    return {"AWS_ENDPOINT_URL_DYNAMODB": endpoint, "AWS_REGION": g.AWS_REGION,
            "AWS_ACCESS_KEY_ID": g.AWS_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": g.AWS_SECRETS["AWS_SECRET_ACCESS_KEY"],
            "AWS_SESSION_TOKEN": g.AWS_SECRETS["AWS_SESSION_TOKEN"]}


@pytest.fixture(scope="module", params=RUNTIMES)
def runtime(request, gateway_factory, dynamodb, breaker_config, mock_url, tmp_path_factory) -> g.Gateway:
    name = request.param
    cloud = _cloud_env(mock_url, tmp_path_factory.mktemp("sa") if name == "lambda" else None)
    cloud["GATEWAY_ADMIN_KEY"] = ADMIN_KEY
    if name == "local":
        gw = gateway_factory.start("rt-local", config=breaker_config, extra_env=cloud)
    elif name == "lambda":
        table = f"gw-rt-{g.nonce()}"
        g.create_ddb_table(dynamodb, table)
        gw = gateway_factory.start_lambda("rt-lambda", table, {**_ddb_env(dynamodb), **cloud}, config=breaker_config)
        gw.table = table
    else:
        gw = gateway_factory.start_worker("rt-worker", config=breaker_config, extra_env=cloud)
    gw.runtime = name
    gw.cloud_env = cloud
    yield gw
    gw.stop()


@STREAM
@OPENAI_ROUTES
def test_openai_sdk(runtime, recorder, mock, tag, model, upstream, stream):
    rid, user = f"rid-{tag}", f"Hello {tag}"
    client = g.openai_client(runtime, recorder)
    r = g.openai_chat(client, stream=stream, request_id=rid, model=model, max_tokens=50,
                      messages=[{"role": "user", "content": user}],
                      **({"stream_options": {"include_usage": True}} if stream else {}))
    assert r.text == f"echo: {user}"
    assert r.finish_reason == "stop"
    g.check_openai_usage(r.usage, upstream)
    assert r.headers.get("x-request-id") == rid
    if stream:
        g.check_openai_stream(recorder.last(rid).body, include_usage=True)
    req = mock.one(tag)
    assert req["path"] == g.UPSTREAM_PATH[upstream]
    g.assert_upstream_auth(req, upstream)
    assert bool(req["body"].get("stream")) is stream
    log = runtime.log_for(rid)
    assert log["provider"] == upstream and log["fast_path"] is (upstream == "openai"), log


@STREAM
@ANTHROPIC_ROUTES
def test_anthropic_sdk(runtime, recorder, mock, tag, model, upstream, stream):
    rid, user = f"rid-{tag}", f"Hello {tag}"
    client = g.anthropic_client(runtime, recorder)
    r = g.anthropic_messages(client, stream=stream, request_id=rid, model=model, max_tokens=50,
                             messages=[{"role": "user", "content": user}])
    assert r.text == f"echo: {user}"
    assert r.stop_reason == "end_turn"
    g.check_anthropic_usage(r.usage, upstream)
    assert r.headers.get("x-request-id") == rid
    if stream:
        g.check_anthropic_stream(recorder.last(rid).body)
    req = mock.one(tag)
    assert req["path"] == g.UPSTREAM_PATH[upstream]
    g.assert_upstream_auth(req, upstream)
    log = runtime.log_for(rid)
    assert log["provider"] == upstream and log["fast_path"] is (upstream == "anthropic"), log


@STREAM
def test_openai_sdk_to_a_gemini_upstream(runtime, recorder, mock, tag, stream):
    rid, user = f"rid-{tag}", f"Hello {tag}"
    client = g.openai_client(runtime, recorder)
    r = g.openai_chat(client, stream=stream, request_id=rid, model="gemini-2.5-flash", max_tokens=50,
                      messages=[{"role": "user", "content": user}],
                      **({"stream_options": {"include_usage": True}} if stream else {}))
    assert (r.text, r.finish_reason) == (f"echo: {user}", "stop")
    g.check_openai_usage(r.usage, "gemini")
    req = mock.one(tag)
    verb = "streamGenerateContent" if stream else "generateContent"
    assert req["path"].split("?")[0].endswith(f"/models/gemini-2.5-flash:{verb}"), req["path"]
    assert runtime.log_for(rid)["provider"] == "gemini"


@STREAM
@pytest.mark.parametrize("model,upstream", [("gemini-2.5-flash", "gemini"), ("gpt-4o-mini", "openai")],
                         ids=["fast-path", "translated"])
def test_gemini_sdk(runtime, recorder, mock, tag, model, upstream, stream):
    """The Gemini client API (google-genai SDK, `x-goog-api-key`) on every runtime."""
    rid, user = f"rid-{tag}", f"Hello {tag}"
    client = g.genai_client(runtime.url, recorder)
    r = g.gemini_generate(client, stream=stream, request_id=rid, model=model, contents=user, max_output_tokens=50)
    assert (r.text, r.finish_reason) == (f"echo: {user}", "STOP")
    g.check_gemini_usage(r.usage, upstream)
    req = mock.one(tag)
    if upstream == "gemini":
        verb = "streamGenerateContent" if stream else "generateContent"
        assert req["path"].split("?")[0].endswith(f"/models/{model}:{verb}"), req["path"]
    else:
        assert req["path"] == g.UPSTREAM_PATH[upstream], req["path"]
    log = runtime.log_for(rid)
    assert log["provider"] == upstream and log["fast_path"] is (upstream == "gemini"), log


@STREAM
def test_openai_sdk_to_bedrock_signed_with_sigv4(runtime, recorder, mock, tag, stream):
    """Bedrock ConverseStream / Converse with SigV4 (the mock verifies it with botocore) on every
    runtime: on Lambda with the function's (session) credentials."""
    rid, user = f"rid-{tag}", f"Hello {tag}"
    client = g.openai_client(runtime, recorder)
    r = g.openai_chat(client, stream=stream, request_id=rid, model=BEDROCK_MODEL, max_tokens=50,
                      messages=[{"role": "user", "content": user}],
                      **({"stream_options": {"include_usage": True}} if stream else {}))
    assert (r.text, r.finish_reason) == (f"echo: {user}", "stop")
    req = mock.one(tag)
    verb = "converse-stream" if stream else "converse"
    assert req["path"].endswith(f"/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/{verb}"), req["path"]
    assert req["headers"]["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={g.AWS_ACCESS_KEY_ID}/")
    assert req["headers"]["x-amz-security-token"] == g.AWS_SECRETS["AWS_SESSION_TOKEN"]
    assert runtime.log_for(rid)["provider"] == "bedrock"


@STREAM
def test_openai_responses_api_translated(runtime, recorder, mock, tag, stream):
    """`client.responses` (the Responses API) to an Anthropic upstream, on every runtime."""
    rid, user = f"rid-{tag}", f"Hello {tag}"
    client = g.openai_client(runtime, recorder)
    kw = dict(model="claude-sonnet-4-5", input=user, instructions="Be brief.", max_output_tokens=50,
              extra_headers={"X-Request-ID": rid})
    if stream:
        events = list(client.responses.create(stream=True, **kw))
        types = [e.type for e in events]
        assert types[0] == "response.created" and types[-1] == "response.completed", types
        seqs = [e.sequence_number for e in events]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
        resp = events[-1].response
    else:
        resp = client.responses.create(**kw)
    assert resp.status == "completed"
    assert resp.output_text == f"echo: {user}"
    assert resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0
    req = mock.one(tag)
    assert req["path"] == g.UPSTREAM_PATH["anthropic"]
    assert g.an_text(req["body"].get("system")) == "Be brief."
    assert runtime.log_for(rid)["provider"] == "anthropic"


def test_bad_proxy_key(runtime, recorder, mock, tag):
    with pytest.raises(openai.AuthenticationError):
        g.openai_client(runtime, recorder, key="wrong-key").chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"x {tag}"}])
    with pytest.raises(anthropic.AuthenticationError) as e:
        g.anthropic_client(runtime, recorder, key="wrong-key").messages.create(
            model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": f"y {tag}"}])
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "authentication_error"
    r = g.raw_request(runtime.url, "POST", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": USER})
    g.assert_openai_error(r, 401)
    assert mock.with_nonce(tag) == [], "an unauthenticated request must not reach an upstream"


def test_unknown_model(runtime, recorder, mock, tag):
    model = f"no-such-model-{tag}"
    with pytest.raises(openai.NotFoundError):
        g.openai_client(runtime, recorder).chat.completions.create(model=model, messages=USER, stream=True)
    with pytest.raises(anthropic.NotFoundError):
        g.anthropic_client(runtime, recorder).messages.create(model=model, max_tokens=10, messages=USER)
    r = g.raw_request(runtime.url, "POST", "/v1/messages", {"model": model, "max_tokens": 10, "messages": USER},
                      {"x-api-key": g.PROXY_KEY})
    assert model in g.assert_anthropic_error(r, 404)["message"]
    assert mock.with_nonce(tag) == []


def test_health_and_models(runtime):
    r = g.raw_request(runtime.url, "GET", "/health", headers={"Authorization": f"Bearer {g.PROXY_KEY}"})
    assert r.status == 200
    providers = r.json()["providers"]
    assert providers["openai"]["configured"] is True and providers["anthropic"]["configured"] is True
    assert providers["nokey"] == {"configured": False, "format": "openai", "missing": "NOKEY_API_KEY"}
    r = g.raw_request(runtime.url, "GET", "/v1/models", headers={"Authorization": f"Bearer {g.PROXY_KEY}"})
    assert r.status == 200
    ids = {m["id"] for m in r.json()["data"]}
    assert {"gpt-4o-mini", "claude-sonnet-4-5"} <= ids


def _chat(gw: g.Gateway, model: str, text: str) -> g.Raw:
    return g.raw_request(gw.url, "POST", "/v1/chat/completions",
                         {"model": model, "messages": [{"role": "user", "content": text}]},
                         headers={"Authorization": f"Bearer {g.PROXY_KEY}"})


def _trip(gw: g.Gateway, model: str, tag: str) -> None:
    for i in range(2):
        r = _chat(gw, model, f"trip {tag} {i}")
        assert r.status >= 500 and r.status != 503, (r.status, r.body)


def _assert_open(gw: g.Gateway, model: str, mock, text: str, settle: float = 0.5) -> None:
    """One probe, `settle` seconds after the failures (deferred writes run beside the responses):
    rejected without reaching the upstream. No retries: a probe that got through would be a
    failure of the prober's own, opening its breaker whether or not the state is shared."""
    time.sleep(settle)
    r = _chat(gw, model, text)
    assert r.status == 503, f"{gw.name}: the open breaker must reject: {r.status} {r.body!r}"
    assert json.loads(r.body)["error"]["code"] == "circuit_open"
    assert int(r.headers.get("retry-after", "0")) > 0
    assert not mock.with_nonce(text), "an open breaker must not call the upstream"


def test_breaker_state_is_shared_or_durable(runtime, gateway_factory, dynamodb, breaker_config, mock, tag):
    """Lambda: failures seen by the function open the breaker for a local gateway on the same
    table, and the other way round. Worker: the open breaker lives in the Durable Object and
    survives a `wrangler dev` restart. Local: two processes on one DynamoDB table."""
    model = f"openai/mock-fail-500-{tag}"
    if runtime.runtime == "lambda":
        other = gateway_factory.start(f"rt-ddb-peer-{tag}", ("--state", f"dynamodb:{runtime.table}"),
                                      _ddb_env(dynamodb), breaker_config)
        try:
            _trip(runtime, model, tag)
            # The function's writes finish before its response body ends: no settling needed.
            _assert_open(other, model, mock, f"peer sees {tag}", settle=0)
            _assert_open(runtime, model, mock, f"lambda sees {tag}", settle=0)
            model2 = f"groq/mock-fail-500-back-{tag}"  # breakers are per provider: use another one
            _trip(other, model2, tag)
            _assert_open(runtime, model2, mock, f"lambda sees peer {tag}")
        finally:
            other.stop()
    elif runtime.runtime == "worker":
        _trip(runtime, model, tag)
        _assert_open(runtime, model, mock, f"before restart {tag}")
        persist = runtime.persist
        runtime.stop()
        again = gateway_factory.start_worker(f"rt-worker-again-{tag}", config=breaker_config, persist=persist,
                                             extra_env=runtime.cloud_env)
        try:
            _assert_open(again, model, mock, f"after restart {tag}", settle=0)
        finally:
            again.stop()
        # Later tests in this module still use `runtime`: bring it back on the same state.
        restarted = gateway_factory.start_worker(f"rt-worker-back-{tag}", config=breaker_config, persist=persist,
                                                 extra_env=runtime.cloud_env)
        runtime.proc, runtime.port, runtime.url, runtime.workdir = restarted.proc, restarted.port, restarted.url, restarted.workdir
    else:
        table = f"gw-rt-local-{tag}"
        args = ("--state", f"dynamodb:{table}")
        a = gateway_factory.start(f"rt-ddb-a-{tag}", args, _ddb_env(dynamodb), breaker_config)
        b = gateway_factory.start(f"rt-ddb-b-{tag}", args, _ddb_env(dynamodb), breaker_config)
        try:
            _trip(a, model, tag)
            _assert_open(b, model, mock, f"b sees {tag}")
        finally:
            a.stop()
            b.stop()


def test_a_key_limit_holds_on_every_runtime(runtime, mock, tag):
    """The key's RPM is counted in the runtime's store (embedded file, DynamoDB, Durable Object): the request
    after the limit gets a 429 naming it, and never reaches the upstream."""
    left = 60 - time.time() % 60
    if left < 10:  # the limit counts per clock minute: do not straddle two
        time.sleep(left + 0.2)
    statuses = []
    for i in range(KEY_RPM + 2):
        r = g.raw_request(runtime.url, "POST", "/v1/chat/completions",
                          # Anthropic: the breaker test of this module leaves OpenAI's breaker open.
                          {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": f"limit {tag} {i}"}]},
                          headers={"Authorization": f"Bearer {g.SECOND_PROXY_KEY}"}, timeout=60)
        statuses.append(r.status)
    assert statuses == [200] * KEY_RPM + [429] * 2, statuses
    err = g.assert_openai_error(r, 429)
    assert "keys.e2e-second.limits.rpm" in err["message"], err
    assert len(mock.with_nonce(f"limit {tag} ")) == KEY_RPM


def test_a_provider_budget_holds_on_every_runtime(runtime, mock, tag):
    """The budget's spend is kept in the runtime's store: one answer spends the $1, the next request is a 429
    `budget_exceeded` naming the budget, and it never reaches the upstream; the spend ledger shows what was served."""
    r = g.raw_request(runtime.url, "GET", "/v1/spend", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    before = r.json()["periods"][0]["models"].get("budgeted/budget-model", {}).get("requests", 0)
    statuses, bodies = [], []
    for i in range(3):
        r = g.raw_request(runtime.url, "POST", "/v1/chat/completions",
                          {"model": "budgeted/budget-model", "messages": [{"role": "user", "content": f"spend {tag} {i}"}]},
                          headers={"Authorization": f"Bearer {g.PROXY_KEY}"}, timeout=60)
        statuses.append(r.status)
        bodies.append(r)
        if r.status == 429:
            break
    assert statuses == [200, 429], statuses
    err = g.assert_openai_error(bodies[-1], 429)
    assert err.get("code") == "budget_exceeded" and "providers.budgeted.budget.daily_usd" in err["message"], err
    assert len(mock.with_nonce(f"spend {tag} ")) == len(statuses) - 1
    # The spend ledger in the runtime's store counts what was served (Lambda books it before the invocation
    # ends, the Worker in `waitUntil`, the local server within a second).
    served = len(statuses) - 1
    deadline = time.time() + 5
    while True:
        r = g.raw_request(runtime.url, "GET", "/v1/spend", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert r.status == 200, r.body
        day = r.json()["periods"][0]
        got = day["models"].get("budgeted/budget-model", {}).get("requests", 0)
        if got - before >= served or time.time() > deadline:
            break
        time.sleep(0.2)
    assert got - before == served, (got, before, served)
    assert day["providers"]["budgeted"]["spent_usd"] >= 1, day


@pytest.mark.parametrize("runtime", ["worker"], indirect=True)
def test_durable_object_store_conformance(runtime):
    """The state-store conformance suite, run inside workerd against the real Durable Object
    (memory, embedded and DynamoDB Local run it in `cargo test`)."""
    r = g.raw_request(runtime.url, "POST", f"/__gw/conformance?prefix={g.nonce()}", b"", timeout=120)
    assert r.status == 200 and r.body.strip() == b"ok", r.body


@STREAM
def test_azure_openai_and_vertex_with_their_own_auth(runtime, recorder, mock, tag, stream):
    """Azure's deployment URL and api-key; Vertex's service account (an RS256 JWT signed by the runtime,
    wasm included, exchanged at the mock's token endpoint) for Gemini and for Claude."""
    client = g.openai_client(runtime, recorder)
    for model, path_end in [("azure-openai/gpt-4o", "/azure/openai/deployments/gpt-4o/chat/completions"),
                            ("vertex/gemini-2.5-flash", "/publishers/google/models/gemini-2.5-flash:"
                             + ("streamGenerateContent" if stream else "generateContent")),
                            ("vertex/claude-sonnet-4-5", "/publishers/anthropic/models/claude-sonnet-4-5:"
                             + ("streamRawPredict" if stream else "rawPredict"))]:
        user = f"cloud {tag} {model}."
        r = g.openai_chat(client, stream=stream, model=model, max_tokens=50, messages=[{"role": "user", "content": user}])
        assert r.text == f"echo: {user}", (model, r.text)
        req = mock.one(user)
        assert req["path"].endswith(path_end), (model, req["path"])
        if model.startswith("azure"):
            assert req["query"] == "api-version=2024-10-21"
            assert req["headers"]["api-key"] == g.CLOUD_SECRETS["AZURE_OPENAI_API_KEY"]
        else:
            assert req["path"].startswith("/vertex/v1/projects/example-project/locations/us-central1/")
            assert req["headers"]["authorization"].startswith("Bearer ya29.mock-")


@pytest.mark.parametrize("model", ["azure-openai/text-embedding-3-small", "vertex/text-embedding-005"])
def test_embeddings(runtime, recorder, mock, tag, model):
    """Embeddings on every runtime: Azure's (the bytes forwarded) and Vertex's :predict (translated; the SDK's
    default base64 encoded by the gateway), vectors exact and in order."""
    import struct

    import mock_embed
    texts = [f"rt-emb {tag} one", f"rt-emb {tag} two"]
    r = g.openai_client(runtime, recorder).embeddings.create(model=model, input=texts)
    f32 = lambda v: [struct.unpack("<f", struct.pack("<f", x))[0] for x in v]  # noqa: E731
    assert [d.embedding for d in r.data] == [f32(mock_embed.vector(t)) for t in texts]
    assert r.usage.prompt_tokens > 0


def test_zz_scheduled_health_checks_reach_every_instance_through_the_store(runtime, mock, tag):
    """Active health checks as each runtime schedules them: on Lambda the POST an EventBridge API destination
    sends (the admin key as `Authorization`, template.yaml), on the Worker its Cron Trigger (`/__scheduled` of
    `wrangler dev --test-scheduled`), locally the same POST (its own timer: test_limits.py). The dead `broken`
    provider's failed probe cools its credential in the runtime's store, so `/health` shows it open wherever it
    is read, and a healthy provider stays closed. Named to run last: it takes `broken` out of traffic."""
    if runtime.runtime == "worker":
        r = g.raw_request(runtime.url, "GET", "/__scheduled?cron=*/5+*+*+*+*", timeout=60)
    else:
        r = g.raw_request(runtime.url, "POST", "/admin/health-check", b"",
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60)
    assert r.status == 200, r.body
    h = g.raw_request(runtime.url, "GET", "/health", headers={"Authorization": f"Bearer {g.PROXY_KEY}"}).json()
    broken = h["providers"]["broken"]["credentials"]["BROKEN_API_KEY"]["breaker"]
    assert broken["state"] == "open" and broken["retry_after_ms"] > 30_000, h["providers"]["broken"]
    # (`openai` may be open from the breaker tests before: `budgeted` is the same mock API, untouched.)
    ok = h["providers"]["budgeted"]["credentials"]["OPENAI_API_KEY"]["breaker"]
    assert ok["state"] == "closed", h["providers"]["budgeted"]
