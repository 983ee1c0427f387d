"""Calls the gateway forwards: a provider's native API through `/providers/{id}/...` (only where the config says
`passthrough: true`), with the gateway's own credential attached and re-signed as each provider needs (a key header,
SigV4 over the forwarded body, a Vertex token) and the proxy key never passed on; and OpenAI's legacy
`/v1/completions` to providers that declare it, a clear 400 elsewhere."""
from __future__ import annotations

import json
import re

import pytest

import gwtest as g

SHIPPED = g.REPO / "config/gateway.yaml"


@pytest.fixture(scope="module")
def fgw(gateway_factory, mock_url, tmp_path_factory) -> g.Gateway:
    text = SHIPPED.read_text()
    for pid in ("openai", "anthropic", "bedrock", "vertex"):
        text, n = re.subn(rf"(\n  {pid}:[^\n]*\n)", r"\1    passthrough: true\n", text, count=1)
        assert n == 1, pid
    cfg = tmp_path_factory.mktemp("cfg-forward") / "gateway.forward.yaml"
    cfg.write_text(text)
    sa = json.loads((g.SERVICE_ACCOUNT_DIR / "service_account.json").read_text())
    sa["token_uri"] = f"{mock_url}/google/token"
    gw = gateway_factory.start("forward", config=cfg, extra_env={
        "VERTEX_BASE_URL": f"{mock_url}/vertex", "GOOGLE_APPLICATION_CREDENTIALS": json.dumps(sa)})
    yield gw
    gw.stop()


H = {"Authorization": f"Bearer {g.PROXY_KEY}"}


def test_passthrough_attaches_the_providers_key_never_the_proxy_key(fgw, recorder, mock, tag):
    r = g.raw_request(fgw.url, "GET", f"/providers/openai/models?tag={tag}", None, H, recorder)
    assert r.status == 200 and r.json()["object"] == "list", r.body
    up = [x for x in mock.requests() if x["query"] == f"tag={tag}"][-1]
    assert up["path"] == "/openai/v1/models"
    assert up["headers"]["authorization"] == f"Bearer {g.UPSTREAM_KEYS['openai']}"

    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": f"count {tag}"}]}
    r = g.raw_request(fgw.url, "POST", "/providers/anthropic/v1/messages/count_tokens", body,
                      {"x-api-key": g.PROXY_KEY, "anthropic-beta": "token-counting-2024-11-01"}, recorder)
    assert r.status == 200 and r.json()["input_tokens"] > 0, r.body
    up = mock.one(f"count {tag}")
    assert up["headers"]["x-api-key"] == g.UPSTREAM_KEYS["anthropic"]
    assert up["headers"]["anthropic-version"] == "2023-06-01"  # the provider's header, as configured
    assert up["headers"]["anthropic-beta"] == "token-counting-2024-11-01"  # the client's own, passed on


@pytest.mark.parametrize("stream", [False, True])
def test_passthrough_streams_the_answer_as_the_provider_sent_it(fgw, recorder, mock, tag, stream):
    body = {"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": f"pt {tag} {stream}"}]}
    r = g.raw_request(fgw.url, "POST", "/providers/openai/chat/completions", body, H, recorder)
    assert r.status == 200, r.body
    if stream:
        assert b"data: [DONE]" in r.body and {k.lower(): v for k, v in r.headers.items()}.get("content-type", "").startswith("text/event-stream")
    else:
        assert r.json()["choices"][0]["message"]["content"] == f"echo: pt {tag} {stream}"
    # The provider's own error comes back as it sent it.
    r = g.raw_request(fgw.url, "POST", "/providers/openai/chat/completions", {"model": "gpt-4o-mini"}, H, recorder)
    assert r.status == 400 and "error" in r.json()


def test_passthrough_streams_a_request_body_on_as_it_arrives(fgw, mock, tag):
    """A chunked body whose second half comes a second later: the provider already has the request (head and
    first bytes) before the client has finished sending it."""
    import http.client
    import time
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"slow body {tag}"}]}).encode()
    sent: dict[str, float] = {}

    def chunks():
        yield body[:20]
        time.sleep(1.0)
        sent["second"] = time.time()
        yield body[20:]

    conn = http.client.HTTPConnection("127.0.0.1", fgw.port, timeout=30)
    conn.request("POST", "/providers/openai/chat/completions", body=chunks(), encode_chunked=True,
                 headers={"Authorization": f"Bearer {g.PROXY_KEY}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    assert resp.status == 200, data
    assert json.loads(data)["choices"][0]["message"]["content"] == f"echo: slow body {tag}"
    up = mock.one(f"slow body {tag}")
    assert up["t_head"] < sent["second"] - 0.5, (up["t_head"], sent["second"])
    assert up["headers"]["authorization"] == f"Bearer {g.UPSTREAM_KEYS['openai']}"


def test_passthrough_resigns_sigv4_and_fetches_vertex_tokens(fgw, recorder, mock, tag):
    body = {"messages": [{"role": "user", "content": [{"text": f"sig {tag}"}]}]}
    r = g.raw_request(fgw.url, "POST", "/providers/bedrock/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse",
                      body, H, recorder)
    assert r.status == 200, r.body  # the mock verified the signature over the forwarded bytes
    up = mock.one(f"sig {tag}")
    assert up["headers"]["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={g.AWS_ACCESS_KEY_ID}/")

    body = {"contents": [{"role": "user", "parts": [{"text": f"vx {tag}"}]}]}
    r = g.raw_request(fgw.url, "POST", "/providers/vertex/v1/projects/example-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent",
                      body, {"x-goog-api-key": g.PROXY_KEY}, recorder)
    assert r.status == 200, r.body
    up = mock.one(f"vx {tag}")
    assert up["headers"]["authorization"].startswith("Bearer ya29.mock-") and "x-goog-api-key" not in up["headers"]


def test_passthrough_is_off_unless_configured_and_needs_the_proxy_key(fgw, recorder):
    r = g.raw_request(fgw.url, "GET", "/providers/groq/models", None, H, recorder)
    assert r.status == 403 and "passthrough: true" in r.json()["error"]["message"], r.body
    r = g.raw_request(fgw.url, "GET", "/providers/nope/models", None, H, recorder)
    assert r.status == 404
    r = g.raw_request(fgw.url, "GET", "/providers/openai/models", None, {}, recorder)
    assert r.status == 401


@pytest.mark.parametrize("stream", [False, True])
def test_legacy_completions_go_where_they_are_served(fgw, recorder, mock, tag, stream):
    client = g.openai_client(fgw, recorder)
    prompt = f"Say {tag} {stream}"
    if stream:
        text = "".join(c.choices[0].text for c in client.completions.create(model="gpt-3.5-turbo-instruct", prompt=prompt, stream=True))
    else:
        r = client.completions.create(model="openai/gpt-3.5-turbo-instruct", prompt=prompt, max_tokens=20)
        text = r.choices[0].text
        assert r.usage.total_tokens == 8
    assert text == f"completion: {prompt}"
    assert mock.one(prompt)["path"] == "/openai/v1/completions"


def test_legacy_completions_elsewhere_are_a_clear_400(fgw, recorder):
    r = g.raw_request(fgw.url, "POST", "/v1/completions", {"model": "claude-sonnet-4-5", "prompt": "x"}, H, recorder)
    assert r.status == 400, r.body
    e = r.json()["error"]
    assert e["code"] == "completions_unsupported" and "/v1/chat/completions" in e["message"], e
