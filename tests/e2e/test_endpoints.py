"""/v1/models (both shapes), /v1/models/{id}, /v1/messages/count_tokens, /health, X-Request-ID."""

from __future__ import annotations

import anthropic
import openai
import pytest

import gwtest as g
import mock_upstream

OA_AUTH = {"Authorization": f"Bearer {g.PROXY_KEY}"}
AN_AUTH = {"x-api-key": g.PROXY_KEY, "anthropic-version": "2023-06-01"}
USER = [{"role": "user", "content": "hi"}]


# ---- models --------------------------------------------------------------------------------------


def test_models_openai_shape(gateway, recorder, oai):
    ids = [m.id for m in oai.models.list().data]
    assert {"gpt-4o-mini", "claude-sonnet-4-5", "llama-3.3-70b-versatile"} <= set(ids), ids
    body = g.raw_request(gateway.url, "GET", "/v1/models", headers=OA_AUTH, recorder=recorder).json()
    assert body.get("object") == "list" and isinstance(body.get("data"), list), body
    for m in body["data"]:
        assert m.get("object") == "model" and isinstance(m.get("id"), str) and m["id"], m
        assert isinstance(m.get("owned_by"), str), m
    assert len({m["id"] for m in body["data"]}) == len(body["data"]), "duplicate model ids"


def test_models_anthropic_shape(gateway, recorder, anth):
    page = anth.models.list()  # the SDK sends anthropic-version
    assert "claude-sonnet-4-5" in [m.id for m in page.data]
    r = g.raw_request(gateway.url, "GET", "/v1/models", headers=AN_AUTH, recorder=recorder)
    assert r.status == 200, r.body[:300]
    body = r.json()
    assert isinstance(body.get("data"), list) and isinstance(body.get("has_more"), bool), body
    for m in body["data"]:
        assert m.get("type") == "model" and isinstance(m.get("id"), str), m
        assert isinstance(m.get("display_name"), str) and isinstance(m.get("created_at"), str), m
    if body["data"]:
        assert body.get("first_id") == body["data"][0]["id"] and body.get("last_id") == body["data"][-1]["id"], body


def test_model_retrieve(oai, anth):
    m = oai.models.retrieve("gpt-4o-mini")
    assert (m.id, m.object) == ("gpt-4o-mini", "model")
    a = anth.models.retrieve("claude-sonnet-4-5")
    assert (a.id, a.type) == ("claude-sonnet-4-5", "model")
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("no-such-model-xyz")
    with pytest.raises(anthropic.NotFoundError):
        anth.models.retrieve("no-such-model-xyz")


# ---- count_tokens ----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "smart"])
def test_count_tokens_exact_from_anthropic_upstream(anth, mock, tag, model):
    kw = dict(system="You count tokens.", messages=[{"role": "user", "content": f"Count these words please {tag}"}])
    res = anth.messages.count_tokens(model=model, **kw)
    req = mock.one(tag)
    assert req["path"] == "/anthropic/v1/messages/count_tokens"
    g.assert_upstream_auth(req, "anthropic")
    assert req["body"]["model"] == "claude-sonnet-4-5"
    assert res.input_tokens == req["issued"]["input_tokens"] == mock_upstream.count_tokens_for(kw)


def test_count_tokens_estimate_for_openai_model(anth, mock, tag):
    small = anth.messages.count_tokens(model="gpt-4o-mini", messages=[{"role": "user", "content": f"Hi {tag}"}])
    big = anth.messages.count_tokens(model="gpt-4o-mini", messages=[{"role": "user", "content": f"Hi {tag} " + "word " * 800}])
    assert isinstance(small.input_tokens, int) and small.input_tokens > 0
    assert big.input_tokens > small.input_tokens, (small.input_tokens, big.input_tokens)
    assert [r for r in mock.with_nonce(tag) if "/chat/completions" in r["path"]] == [], "counting must not run a completion"


def test_count_tokens_unknown_model(anth):
    with pytest.raises(anthropic.NotFoundError):
        anth.messages.count_tokens(model="no-such-model-xyz", messages=USER)


# ---- health ------------------------------------------------------------------------------------------


def test_health(gateway, recorder):
    r = g.raw_request(gateway.url, "GET", "/health", headers=OA_AUTH, recorder=recorder)  # providers need the key
    assert r.status == 200
    body = r.json()
    assert body.get("status") == "ok", body
    providers = body.get("providers")
    assert isinstance(providers, dict), body
    for p in ("openai", "anthropic", "groq", "broken"):
        assert providers.get(p, {}).get("configured") is True, f"{p}: {providers.get(p)}"
    assert providers.get("nokey", {}).get("configured") is False, f"nokey: {providers.get('nokey')}"


# ---- request ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["openai", "anthropic"])
def test_request_id_echoed(gateway, recorder, tag, fmt):
    path, auth = ("/v1/chat/completions", OA_AUTH) if fmt == "openai" else ("/v1/messages", AN_AUTH)
    extra = {} if fmt == "openai" else {"max_tokens": 10}
    for case, body, status in [
        ("ok", {"model": "gpt-4o-mini", "messages": USER, **extra}, 200),
        ("stream", {"model": "claude-sonnet-4-5", "messages": USER, "stream": True, **extra}, 200),
        ("notfound", {"model": f"no-such-{tag}", "messages": USER, **extra}, 404),
    ]:
        rid = f"client-chosen-{case}-{tag}"
        r = g.raw_request(gateway.url, "POST", path, body, {**auth, "X-Request-ID": rid}, recorder)
        assert r.status == status, (case, r.body[:300])
        assert r.headers.get("x-request-id") == rid, (case, r.headers)
        log = gateway.log_for(rid)
        assert (log["client_format"], log["status"]) == (fmt, status), log
        assert (log["outcome"] == "ok") is (status == 200), log
    rid = f"client-chosen-unauth-{tag}"
    r = g.raw_request(gateway.url, "POST", path, {"model": "gpt-4o-mini", "messages": USER, **extra},
                      {"X-Request-ID": rid, **({"anthropic-version": "2023-06-01"} if fmt == "anthropic" else {})}, recorder)
    assert r.status == 401 and r.headers.get("x-request-id") == rid, r.headers


def test_request_id_generated(gateway, recorder):
    ids = []
    for _ in range(2):
        r = g.raw_request(gateway.url, "POST", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": USER}, OA_AUTH, recorder)
        assert r.status == 200
        rid = r.headers.get("x-request-id")
        assert rid, r.headers
        ids.append(rid)
        assert gateway.log_for(rid)["status"] == 200
    assert ids[0] != ids[1]
