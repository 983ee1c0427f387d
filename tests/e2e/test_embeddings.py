"""Embeddings from every client API to every provider family, with the official SDKs against mocks that answer in each
service's own shape (mock_embed.py): OpenAI (fast path: the bytes both ways), Azure OpenAI, Azure AI Foundry, Gemini
(batchEmbedContents), Vertex AI (:predict), Cohere (v2), Bedrock Titan (one InvokeModel per text) and Cohere on
Bedrock. Vectors come back exactly, in input order, as floats or as OpenAI's base64 float32, with usage."""
from __future__ import annotations

import json
import struct

import pytest

import gwtest as g
import mock_embed

SHIPPED = g.REPO / "config/gateway.yaml"

# (model asked for, where it lands, whether `dimensions` reaches the model)
TARGETS = [
    ("openai/text-embedding-3-small", "/openai/v1/embeddings", True),
    ("azure-openai/text-embedding-3-large", "/azure/openai/deployments/text-embedding-3-large/embeddings", True),
    ("azure-ai-foundry/Cohere-embed-v3-english", "/foundry/models/embeddings", True),
    ("gemini/gemini-embedding-001", "/gemini/v1beta/models/gemini-embedding-001:batchEmbedContents", True),
    ("vertex/text-embedding-005", "/vertex/v1/projects/example-project/locations/us-central1/publishers/google/models/text-embedding-005:predict", True),
    ("cohere/embed-v4.0", "/cohere/v2/embed", True),
    ("bedrock/amazon.titan-embed-text-v2:0", "/bedrock/model/amazon.titan-embed-text-v2%3A0/invoke", True),
    ("bedrock/cohere.embed-english-v3", "/bedrock/model/cohere.embed-english-v3/invoke", False),
]
IDS = [t[0].split("/")[0] + ("-titan" if "titan" in t[0] else "-cohere" if t[0].startswith("bedrock/cohere") else "")
       for t in TARGETS]


@pytest.fixture(scope="module")
def egw(gateway_factory, mock_url, tmp_path_factory) -> g.Gateway:
    sa = json.loads((g.SERVICE_ACCOUNT_DIR / "service_account.json").read_text())
    sa["token_uri"] = f"{mock_url}/google/token"
    gw = gateway_factory.start("embeddings", config=SHIPPED, extra_env={
        "AZURE_OPENAI_BASE_URL": f"{mock_url}/azure", "AZURE_OPENAI_API_KEY": g.CLOUD_SECRETS["AZURE_OPENAI_API_KEY"],
        "AZURE_AI_FOUNDRY_BASE_URL": f"{mock_url}/foundry/models",
        "AZURE_AI_FOUNDRY_API_KEY": g.CLOUD_SECRETS["AZURE_AI_FOUNDRY_API_KEY"],
        "VERTEX_BASE_URL": f"{mock_url}/vertex", "GOOGLE_APPLICATION_CREDENTIALS": json.dumps(sa),
    })
    yield gw
    gw.stop()


def f32(v: list[float]) -> list[float]:
    return [struct.unpack("<f", struct.pack("<f", x))[0] for x in v]


@pytest.mark.parametrize("model,path,dims_reach", TARGETS, ids=IDS)
@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_openai_sdk_embeddings_to_every_provider(egw, recorder, mock, tag, model, path, dims_reach, encoding):
    texts = [f"alpha {tag} {encoding}", f"beta {tag} {encoding}", f"gamma {tag} {encoding}"]
    client = g.openai_client(egw, recorder)
    args = {"encoding_format": "float"} if encoding == "float" else {}  # the SDK asks for base64 by default
    rid = f"emb-{tag}-{encoding}"
    r = client.embeddings.create(model=model, input=texts, dimensions=4, extra_headers={"x-request-id": rid}, **args)
    dims = 4 if dims_reach else None
    want = [mock_embed.vector(t, dims) for t in texts]
    got = [d.embedding for d in r.data]
    assert [d.index for d in r.data] == [0, 1, 2]
    assert got == (want if encoding == "float" else [f32(v) for v in want]), model
    assert r.usage.prompt_tokens > 0
    calls = [x for x in mock.requests() if tag in json.dumps(x.get("body")) and encoding in json.dumps(x.get("body"))]
    assert calls and {c["path"] for c in calls} == {path}, [c["path"] for c in calls]
    if "titan" in model:
        assert len(calls) == 3  # Titan embeds one text per call
    log = egw.log_for(rid)
    assert log["provider"] == model.split("/")[0] and log["usage"]["input"] == r.usage.prompt_tokens, log
    assert log["fast_path"] is (model.startswith(("openai/", "azure")))


def test_openai_fast_path_forwards_the_exact_bytes(egw, recorder, mock, tag):
    raw = g.raw_request(egw.url, "POST", "/v1/embeddings",
                        {"model": "openai/text-embedding-3-small", "input": [f"x {tag}", [1, 2, 3]], "encoding_format": "base64"},
                        {"Authorization": f"Bearer {g.PROXY_KEY}"}, recorder)
    assert raw.status == 200, raw.body
    body = raw.json()
    assert body["data"][0]["embedding"] == mock_embed.f32_base64(mock_embed.vector(f"x {tag}"))
    assert body["data"][1]["embedding"] == mock_embed.f32_base64(mock_embed.vector([1, 2, 3]))
    up = mock.one(f"x {tag}")
    assert up["body"]["model"] == "text-embedding-3-small" and up["body"]["input"][1] == [1, 2, 3]


@pytest.mark.parametrize("model", ["vertex/text-embedding-005", "gemini/gemini-embedding-001", "openai/text-embedding-3-small"])
def test_gemini_sdk_embed_content(egw, recorder, tag, model):
    from google.genai import types
    client = g.genai_client(egw.url, recorder)
    texts = [f"one {tag}", f"two {tag}"]
    r = client.models.embed_content(model=model, contents=texts, config=types.EmbedContentConfig(output_dimensionality=5))
    assert [e.values for e in r.embeddings] == [mock_embed.vector(t, 5) for t in texts]


def test_gemini_single_embed_content_raw(egw, recorder, tag):
    r = g.raw_request(egw.url, "POST", "/v1beta/models/cohere/embed-v4.0:embedContent",
                      {"content": {"parts": [{"text": f"solo {tag}"}]}, "taskType": "RETRIEVAL_QUERY"},
                      {"x-goog-api-key": g.PROXY_KEY}, recorder)
    assert r.status == 200, r.body
    assert r.json() == {"embedding": {"values": mock_embed.vector(f"solo {tag}")}}


def test_what_cannot_be_embedded_is_a_clear_400(egw, recorder, tag):
    h = {"Authorization": f"Bearer {g.PROXY_KEY}"}
    r = g.raw_request(egw.url, "POST", "/v1/embeddings", {"model": "cohere/embed-v4.0", "input": [[1, 2]]}, h, recorder)
    assert r.status == 400 and "token-id inputs" in r.json()["error"]["message"], r.body
    r = g.raw_request(egw.url, "POST", "/v1/embeddings", {"model": "anthropic/claude-sonnet-4-5", "input": "x"}, h, recorder)
    assert r.status == 400 and "does not serve embeddings" in r.json()["error"]["message"], r.body
    r = g.raw_request(egw.url, "POST", "/v1/embeddings", {"model": "openai/text-embedding-3-small", "input": {"a": 1}}, h, recorder)
    assert r.status == 400 and r.json()["error"]["param"] == "input", r.body
    r = g.raw_request(egw.url, "POST", "/v1/embeddings", {"model": "openai/text-embedding-3-small", "input": "x"}, {}, recorder)
    assert r.status == 401
    r = g.raw_request(egw.url, "GET", "/v1/embeddings", None, h, recorder)
    assert r.status == 405


def test_routes_and_aliases_apply_to_embeddings(gateway_factory, mock_url, recorder, tag, tmp_path):
    text = SHIPPED.read_text().replace("\nroutes:\n", "\nroutes:\n  embedder: [openai/mock-fail-500-emb, cohere/embed-v4.0]\n", 1)
    cfg = tmp_path / "gateway.embed-routes.yaml"
    cfg.write_text(text)
    gw = gateway_factory.start("embeddings-routes", config=cfg, extra_env={"OPENAI_BASE_URL": f"{mock_url}/openai/v1"})
    try:
        rid = f"emb-route-{tag}"
        r = g.openai_client(gw, recorder).embeddings.create(model="embedder", input=f"fall {tag}", encoding_format="float",
                                                             extra_headers={"x-request-id": rid})
        assert r.data[0].embedding == mock_embed.vector(f"fall {tag}")
        log = gw.log_for(rid)
        assert [a["provider"] for a in log["attempts"]] == ["openai", "cohere"], log
    finally:
        gw.stop()


def test_embeddings_use_credential_pools_and_limits(gateway_factory, mock_url, mock, recorder, tag, tmp_path):
    """Embeddings are admitted like chat: a pool's first key answering 429 moves the request to its second key (and
    cools the first down for later requests), and a provider whose RPM is spent gives the client the gateway's own
    429 naming the limit, with Retry-After, not a generic failure."""
    extra = f"""
  pooled:
    format: openai
    base_url: {mock_url}/pool/v1
    auth: {{type: bearer, env: [POOL_KEY_A]}}
    pool: {{env: [POOL_KEY_B], strategy: fill_first}}
    models: []
  limited:
    format: openai
    base_url: {mock_url}/openai/v1
    auth: {{type: bearer, env: [OPENAI_API_KEY]}}
    limits: {{rpm: 1}}
    models: []
"""
    cfg = tmp_path / "gateway.embed-pool.yaml"
    cfg.write_text(g.CONFIG_PATH.read_text().replace("\nroutes:\n", extra + "\nroutes:\n", 1))
    gw = gateway_factory.start(f"embed-pool-{tag}", config=cfg,
                               extra_env={"POOL_KEY_A": g.POOL_KEYS["busy"], "POOL_KEY_B": g.POOL_KEYS["ok"]})
    try:
        client = g.openai_client(gw, recorder)
        for i in range(2):
            r = client.embeddings.create(model="pooled/text-embedding-3-small", input=f"pool {tag} {i}",
                                         encoding_format="float")
            assert r.data[0].embedding == mock_embed.vector(f"pool {tag} {i}")
        keys = [x["headers"]["authorization"].removeprefix("Bearer ") for x in mock.with_nonce(f"pool {tag} ")]
        assert keys == [g.POOL_KEYS["busy"], g.POOL_KEYS["ok"], g.POOL_KEYS["ok"]], keys

        body = {"model": "limited/text-embedding-3-small", "input": f"lim {tag}"}
        auth = {"Authorization": f"Bearer {g.PROXY_KEY}"}
        first = g.raw_request(gw.url, "POST", "/v1/embeddings", body, headers=auth)
        second = g.raw_request(gw.url, "POST", "/v1/embeddings", body, headers=auth)
        assert first.status == 200 or second.status == 200, (first.status, second.status)  # a minute may turn over
        refused = next((r for r in (first, second) if r.status != 200), None)
        if refused is not None:
            err = g.assert_openai_error(refused, 429)
            assert "providers.limited.limits.rpm" in err["message"], err
            assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert len(mock.with_nonce(f"lim {tag}")) == 2 - (refused is not None)
    finally:
        gw.stop()
