"""Bad input, unknown models, oversized bodies and proxy-key checks: a status plus an error body in the
client's own format (OpenAI: {"error": {message, type, param, code}}; Anthropic: {"type": "error",
"error": {type, message}}), and the matching SDK exception classes."""

from __future__ import annotations

import json
import re

import anthropic
import openai
import pytest

import gwtest as g

MODELS = pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-5"])

OA_AUTH = {"Authorization": f"Bearer {g.PROXY_KEY}"}
AN_AUTH = {"x-api-key": g.PROXY_KEY, "anthropic-version": "2023-06-01"}
USER = [{"role": "user", "content": "hi"}]

BAD_OPENAI = {
    "malformed-json": b'{"model": "MODEL", "messages": [{"role": "user", "content": "hi"}',
    "body-not-object": [1, 2, 3],
    "messages-string": {"model": "MODEL", "messages": "hello"},
    "messages-item-number": {"model": "MODEL", "messages": [42]},
    "missing-model": {"messages": USER},
    "model-number": {"model": 42, "messages": USER},
    "missing-messages": {"model": "MODEL"},
    "invalid-role": {"model": "MODEL", "messages": [{"role": "wizard", "content": "hi"}]},
}

BAD_ANTHROPIC = {
    "malformed-json": b'{"model": "MODEL", "max_tokens": 10, "messages": [',
    "body-not-object": [1],
    "messages-string": {"model": "MODEL", "max_tokens": 10, "messages": "hello"},
    "missing-model": {"max_tokens": 10, "messages": USER},
    "missing-messages": {"model": "MODEL", "max_tokens": 10},
    "max_tokens-string": {"model": "MODEL", "max_tokens": "ten", "messages": USER},
    "content-number": {"model": "MODEL", "max_tokens": 10, "messages": [{"role": "user", "content": 42}]},
}


def with_model(body, model: str):
    if isinstance(body, bytes):
        return body.replace(b"MODEL", model.encode())
    return json.loads(json.dumps(body).replace('"MODEL"', json.dumps(model)))


@MODELS
@pytest.mark.parametrize("case", list(BAD_OPENAI))
def test_openai_bad_input(gateway, recorder, case, model):
    r = g.raw_request(gateway.url, "POST", "/v1/chat/completions", with_model(BAD_OPENAI[case], model), OA_AUTH, recorder)
    g.assert_openai_error(r, 400)


@MODELS
@pytest.mark.parametrize("case", list(BAD_ANTHROPIC))
def test_anthropic_bad_input(gateway, recorder, case, model):
    r = g.raw_request(gateway.url, "POST", "/v1/messages", with_model(BAD_ANTHROPIC[case], model), AN_AUTH, recorder)
    g.assert_anthropic_error(r, 400)


def test_count_tokens_bad_input(gateway, recorder):
    r = g.raw_request(gateway.url, "POST", "/v1/messages/count_tokens", b'{"model": "claude-sonnet-4-5", "messages": [', AN_AUTH, recorder)
    g.assert_anthropic_error(r, 400)


@MODELS
def test_oversized_body(gateway, recorder, mock, tag, model):
    big = tag + " " + "x" * 250_000  # server.max_body_bytes is 200000
    r = g.raw_request(gateway.url, "POST", "/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": big}]},
                      OA_AUTH, recorder)
    g.assert_openai_error(r, 413)
    r = g.raw_request(gateway.url, "POST", "/v1/messages",
                      {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": big}]}, AN_AUTH, recorder)
    g.assert_anthropic_error(r, 413)
    assert mock.with_nonce(tag) == []


def test_oversized_body_sdk_exceptions(oai, anth):
    big = "x" * 250_000
    with pytest.raises(openai.APIStatusError) as ei:
        oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": big}])
    assert ei.value.status_code == 413
    with pytest.raises(anthropic.ContentTooLargeError):
        anth.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": big}])


def test_unknown_model(gateway, recorder, oai, anth, mock, tag):
    model = f"no-such-model-{tag}"
    r = g.raw_request(gateway.url, "POST", "/v1/chat/completions", {"model": model, "messages": USER}, OA_AUTH, recorder)
    assert model in g.assert_openai_error(r, 404)["message"]
    r = g.raw_request(gateway.url, "POST", "/v1/messages", {"model": model, "max_tokens": 10, "messages": USER}, AN_AUTH, recorder)
    assert model in g.assert_anthropic_error(r, 404)["message"]
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model=model, messages=USER)
    with pytest.raises(anthropic.NotFoundError):
        anth.messages.create(model=model, max_tokens=10, messages=USER)
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model=model, messages=USER, stream=True)
    with pytest.raises(anthropic.NotFoundError):
        anth.messages.create(model=model, max_tokens=10, messages=USER, stream=True)
    assert mock.with_nonce(tag) == []


KEY_HEADERS = {
    "x-proxy-key": lambda k: {"X-Proxy-Key": k},
    "authorization-bearer": lambda k: {"Authorization": f"Bearer {k}"},
    "x-api-key": lambda k: {"x-api-key": k},
    "x-goog-api-key": lambda k: {"x-goog-api-key": k},
}


def _call(gateway, recorder, fmt: str, headers: dict, text: str) -> g.Raw:
    if fmt == "openai":
        return g.raw_request(gateway.url, "POST", "/v1/chat/completions",
                             {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}, headers, recorder)
    return g.raw_request(gateway.url, "POST", "/v1/messages",
                         {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": text}]},
                         {"anthropic-version": "2023-06-01", **headers}, recorder)


@pytest.mark.parametrize("fmt", ["openai", "anthropic"])
@pytest.mark.parametrize("header", list(KEY_HEADERS))
def test_proxy_key_accepted_in_each_header(gateway, recorder, mock, tag, fmt, header):
    r = _call(gateway, recorder, fmt, KEY_HEADERS[header](g.PROXY_KEY), f"Hi {tag}")
    assert r.status == 200, r.body[:500]
    text = r.json()["choices"][0]["message"]["content"] if fmt == "openai" else r.json()["content"][0]["text"]
    assert text == f"echo: Hi {tag}"
    g.assert_no_secret_leak_upstream(mock.one(tag))


@pytest.mark.parametrize("fmt", ["openai", "anthropic"])
@pytest.mark.parametrize("header", list(KEY_HEADERS) + ["none"])
def test_bad_proxy_key_rejected(gateway, recorder, mock, tag, fmt, header):
    headers = {} if header == "none" else KEY_HEADERS[header]("wrong-" + tag)
    r = _call(gateway, recorder, fmt, headers, f"Hi {tag}")
    if fmt == "openai":
        g.assert_openai_error(r, 401)
    else:
        g.assert_anthropic_error(r, 401)
    assert mock.with_nonce(tag) == [], "an unauthenticated request must not reach an upstream"


def test_bad_proxy_key_sdk_exceptions(gateway, recorder):
    with pytest.raises(openai.AuthenticationError):
        g.openai_client(gateway, recorder, key="wrong-key").chat.completions.create(model="gpt-4o-mini", messages=USER)
    with pytest.raises(anthropic.AuthenticationError):
        g.anthropic_client(gateway, recorder, key="wrong-key").messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=USER)
    with pytest.raises(anthropic.AuthenticationError):
        g.anthropic_client(gateway, recorder, key="wrong-key").messages.count_tokens(model="claude-sonnet-4-5", messages=USER)


def test_upstream_key_is_not_a_proxy_key(gateway, recorder):
    r = _call(gateway, recorder, "openai", {"Authorization": f"Bearer {g.UPSTREAM_KEYS['openai']}"}, "hi")
    g.assert_openai_error(r, 401)


def test_unsupported_parameter_for_anthropic_upstream(gateway, recorder, oai, tag):
    """n=2 cannot be honoured by an Anthropic upstream: a 400 that names the parameter."""
    with pytest.raises(openai.BadRequestError) as ei:
        oai.chat.completions.create(model="claude-sonnet-4-5", n=2, messages=[{"role": "user", "content": f"Hi {tag}"}])
    assert re.search(r"\bn\b", ei.value.message), ei.value.message
    r = g.raw_request(gateway.url, "POST", "/v1/chat/completions",
                      {"model": "claude-sonnet-4-5", "n": 2, "messages": USER}, OA_AUTH, recorder)
    g.assert_openai_error(r, 400)
