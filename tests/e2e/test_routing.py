"""Routing (aliases, globs, provider/model prefixes, X-Provider), fallback chains, no failover on client
errors, mid-stream failures, client disconnects, providers without credentials.

Tests that make an upstream fail use `fresh_gateway` (a gateway process of their own), so breaker or
cooldown state never leaks into other tests.
"""

from __future__ import annotations

import json
import time

import anthropic
import openai
import pytest

import gwtest as g
from gwtest import ANY

CLIENTS = pytest.mark.parametrize("client", ["openai", "anthropic"])
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])


def ask(gw: g.Gateway, recorder: g.Recorder, client: str, model: str, text: str, *, stream: bool = False,
        rid: str | None = None, headers: dict | None = None) -> str:
    """One chat turn through the given SDK; returns the answer text."""
    if client == "openai":
        r = g.openai_chat(g.openai_client(gw, recorder), stream=stream, request_id=rid, extra_headers=headers,
                          model=model, messages=[{"role": "user", "content": text}],
                          **({"stream_options": {"include_usage": True}} if stream else {}))
        return r.text
    a = g.anthropic_messages(g.anthropic_client(gw, recorder), stream=stream, request_id=rid, extra_headers=headers,
                             model=model, max_tokens=100, messages=[{"role": "user", "content": text}])
    return a.text


def chat_body(client: str, model: str, text: str) -> dict:
    body: dict = {"model": model, "messages": [{"role": "user", "content": text}]}
    if client == "anthropic":
        body["max_tokens"] = 100
    return body


def chat_path(client: str) -> str:
    return "/v1/chat/completions" if client == "openai" else "/v1/messages"


def auth(client: str) -> dict:
    return {"Authorization": f"Bearer {g.PROXY_KEY}"} if client == "openai" else \
        {"x-api-key": g.PROXY_KEY, "anthropic-version": "2023-06-01"}


def assert_error(client: str, r: g.Raw, status) -> dict:
    return g.assert_openai_error(r, status) if client == "openai" else g.assert_anthropic_error(r, status)


# ================================================================================================
# model resolution


RESOLUTION = [
    # requested model          provider     upstream model
    ("smart", "anthropic", "claude-sonnet-4-5"),             # alias route
    ("fast", "groq", "llama-3.3-70b-versatile"),              # alias to the second OpenAI-compatible provider
    ("claude-e2e-glob-model", "anthropic", "claude-e2e-glob-model"),  # glob "claude-*": keeps the name
    ("gpt-e2e-glob-model", "openai", "gpt-e2e-glob-model"),   # glob "gpt-*"
    ("groq/mixtral-unlisted", "groq", "mixtral-unlisted"),     # provider/model prefix, model not listed
    ("anthropic/claude-haiku-4-5", "anthropic", "claude-haiku-4-5"),
    ("gpt-4o", "openai", "gpt-4o"),                            # a provider's `models`
]


@CLIENTS
@pytest.mark.parametrize("requested,provider,upstream_model", RESOLUTION, ids=[r[0] for r in RESOLUTION])
def test_model_resolution(gateway, recorder, mock, tag, client, requested, provider, upstream_model):
    rid = f"rid-{tag}"
    assert ask(gateway, recorder, client, requested, f"Hi {tag}", rid=rid) == f"echo: Hi {tag}"
    req = mock.one(tag)
    assert req["path"] == g.UPSTREAM_PATH[provider]
    assert req["body"]["model"] == upstream_model
    g.assert_upstream_auth(req, provider)
    g.assert_log(gateway.log_for(rid), request_id=rid, client_format=client, model=requested, provider=provider,
                 upstream_model=upstream_model, attempts=[(provider, upstream_model, 200, False)])


@CLIENTS
def test_x_provider_header_picks_the_provider(gateway, recorder, mock, tag, client):
    rid = f"rid-{tag}"
    assert ask(gateway, recorder, client, "gpt-4o-mini", f"Hi {tag}", rid=rid, headers={"X-Provider": "groq"}) == f"echo: Hi {tag}"
    req = mock.one(tag)
    assert req["path"] == g.UPSTREAM_PATH["groq"]
    assert req["body"]["model"] == "gpt-4o-mini"
    g.assert_upstream_auth(req, "groq")
    g.assert_log(gateway.log_for(rid), request_id=rid, client_format=client, model="gpt-4o-mini", provider="groq",
                 upstream_model="gpt-4o-mini", attempts=[("groq", "gpt-4o-mini", 200, False)])


@CLIENTS
def test_x_provider_header_narrows_a_route(gateway, recorder, mock, tag, client):
    """fallback-chain is [broken, openai]: with X-Provider: openai the broken target is never tried."""
    rid = f"rid-{tag}"
    assert ask(gateway, recorder, client, "fallback-chain", f"Hi {tag}", rid=rid, headers={"X-Provider": "openai"}) == f"echo: Hi {tag}"
    g.assert_log(gateway.log_for(rid), request_id=rid, client_format=client, model="fallback-chain", provider="openai",
                 upstream_model="gpt-4o-mini", attempts=[("openai", "gpt-4o-mini", 200, False)])


@CLIENTS
def test_unknown_x_provider_is_a_client_error(gateway, recorder, mock, tag, client):
    r = g.raw_request(gateway.url, "POST", chat_path(client), chat_body(client, "gpt-4o-mini", f"Hi {tag}"),
                      {**auth(client), "X-Provider": "no-such-provider"}, recorder)
    err = assert_error(client, r, (400, 404))
    assert "no-such-provider" in err["message"]
    assert mock.with_nonce(tag) == []


@CLIENTS
@pytest.mark.parametrize("model", ["only-nokey", "nokey/some-model", "nokey-model"])
def test_provider_without_credentials(gateway, recorder, mock, tag, client, model):
    r = g.raw_request(gateway.url, "POST", chat_path(client), chat_body(client, model, f"Hi {tag}"), auth(client), recorder)
    err = assert_error(client, r, tuple(range(400, 600)))
    assert "NOKEY_API_KEY" in err["message"], f"the error must name the missing variable: {err}"
    assert mock.with_nonce(tag) == [], "nothing may be sent to a provider without credentials"


def test_second_named_proxy_key(gateway, recorder, tag):
    c = g.openai_client(gateway, recorder, key=g.SECOND_PROXY_KEY)
    assert g.openai_chat(c, stream=False, model="gpt-4o-mini", messages=[{"role": "user", "content": f"Hi {tag}"}]).text == f"echo: Hi {tag}"


# ================================================================================================
# fallback: a target that fails before its first byte is skipped


FAILOVER = [
    # route, attempts: (provider, upstream model, attempt status, error expected)
    ("fallback-chain", [("broken", "gpt-4o-mini", None, True), ("openai", "gpt-4o-mini", 200, False)]),
    ("fallback-500", [("openai", "mock-fail-500", 500, True), ("anthropic", "claude-sonnet-4-5", 200, False)]),
    ("fallback-429", [("openai", "mock-fail-429", 429, True), ("anthropic", "claude-sonnet-4-5", 200, False)]),
    ("fallback-529", [("anthropic", "mock-overloaded", 529, True), ("openai", "gpt-4o-mini", 200, False)]),
    ("fallback-slow", [("openai", "mock-slow", None, True), ("anthropic", "claude-sonnet-4-5", 200, False)]),
    ("fallback-slow-body", [("anthropic", "mock-slow-body", ANY, True), ("openai", "gpt-4o-mini", 200, False)]),
]


@STREAM
@CLIENTS
@pytest.mark.parametrize("route,attempts", FAILOVER, ids=[f[0] for f in FAILOVER])
def test_failover(fresh_gateway, recorder, mock, tag, client, stream, route, attempts):
    rid = f"rid-{tag}"
    t0 = time.monotonic()
    assert ask(fresh_gateway, recorder, client, route, f"Hi {tag}", stream=stream, rid=rid) == f"echo: Hi {tag}"
    elapsed = time.monotonic() - t0
    if "slow" in route:  # per_attempt_ms is 1.5 s; the mock would answer after 5 s
        assert elapsed < 4.5, f"the slow target was not abandoned after timeouts.per_attempt_ms ({elapsed:.1f}s)"
    reqs = mock.with_nonce(tag)
    assert [(r["path"], r["body"]["model"]) for r in reqs] == \
        [(g.UPSTREAM_PATH[p], m) for p, m, _, _ in attempts if p != "broken"], "upstream requests, in order"
    for r, (p, _, st, _) in zip(reqs, [a for a in attempts if a[0] != "broken"]):
        g.assert_upstream_auth(r, p)
        if isinstance(st, int) and st != 200:
            assert r["status"] == st, "the failing target must have been sent a valid request"
    final_provider, final_model = attempts[-1][0], attempts[-1][1]
    g.assert_log(fresh_gateway.log_for(rid), request_id=rid, client_format=client, model=route, provider=final_provider,
                 upstream_model=final_model, attempts=attempts,
                 usage=g.expected_log_usage(final_provider))


@STREAM
@CLIENTS
def test_no_failover_on_400(fresh_gateway, recorder, mock, tag, client, stream):
    rid = f"rid-{tag}"
    exc = openai.BadRequestError if client == "openai" else anthropic.BadRequestError
    with pytest.raises(exc):
        ask(fresh_gateway, recorder, client, "no-failover-400", f"Hi {tag}", stream=stream, rid=rid)
    reqs = mock.with_nonce(tag)
    assert [(r["path"], r["body"]["model"]) for r in reqs] == [(g.UPSTREAM_PATH["openai"], "mock-fail-400")], \
        "a 400 from the upstream is the client's fault: no other target may be tried"
    g.assert_log(fresh_gateway.log_for(rid), request_id=rid, client_format=client, model="no-failover-400", provider=ANY,
                 upstream_model=ANY, status=400, outcome="error", attempts=[("openai", "mock-fail-400", 400, True)])


@CLIENTS
def test_all_targets_fail(fresh_gateway, recorder, mock, tag, client):
    rid = f"rid-{tag}"
    exc = openai.InternalServerError if client == "openai" else anthropic.InternalServerError
    with pytest.raises(exc):
        ask(fresh_gateway, recorder, client, "all-fail", f"Hi {tag}", rid=rid)
    assert [(r["path"], r["body"]["model"]) for r in mock.with_nonce(tag)] == \
        [(g.UPSTREAM_PATH["openai"], "mock-fail-500"), (g.UPSTREAM_PATH["anthropic"], "mock-fail-500")]
    log = fresh_gateway.log_for(rid)
    assert 500 <= log["status"] < 600 and log["outcome"] == "error", log
    assert [(a["provider"], a["model"], a["status"]) for a in log["attempts"]] == \
        [("openai", "mock-fail-500", 500), ("anthropic", "mock-fail-500", 500)]
    r = g.raw_request(fresh_gateway.url, "POST", chat_path(client), chat_body(client, "all-fail", f"Again {tag}"),
                      auth(client), recorder)
    assert_error(client, r, tuple(range(500, 600)))


@CLIENTS
def test_only_target_rate_limited(fresh_gateway, recorder, mock, tag, client):
    rid = f"rid-{tag}"
    exc = openai.RateLimitError if client == "openai" else anthropic.RateLimitError
    with pytest.raises(exc):
        ask(fresh_gateway, recorder, client, "only-429", f"Hi {tag}", rid=rid)
    log = fresh_gateway.log_for(rid)
    assert (log["status"], log["outcome"]) == (429, "error"), log


# ================================================================================================
# failures after the first byte: no failover; the stream ends with an error event in the client's format


@CLIENTS
@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
@pytest.mark.parametrize("kind", ["error", "cut"], ids=["error-event", "connection-cut"])
def test_mid_stream_failure(fresh_gateway, recorder, mock, tag, client, upstream, kind):
    rid = f"rid-{tag}"
    model = f"{upstream}/mock-stream-{kind}"
    text = ""
    if client == "openai":
        c = g.openai_client(fresh_gateway, recorder)
        with pytest.raises(openai.APIError) as ei:
            for ch in c.chat.completions.create(model=model, stream=True, extra_headers={"X-Request-ID": rid},
                                                messages=[{"role": "user", "content": f"Hi {tag}"}]):
                text += "".join(x.delta.content or "" for x in ch.choices)
        assert not isinstance(ei.value, openai.APIConnectionError), \
            f"the stream must end with an error event, not a broken connection: {ei.value!r}"
        events, clean = g.parse_sse(recorder.last(rid).body)
        errors = [e for e in (json_or_none(d) for _, d in events) if e and "error" in e]
        assert errors and isinstance(errors[-1].get("error"), dict) and errors[-1]["error"].get("message"), events[-3:]
    else:
        c = g.anthropic_client(fresh_gateway, recorder)
        with pytest.raises(anthropic.APIError):  # a raw transport error (a cut stream) would not be an APIError
            for ev in c.messages.create(model=model, stream=True, max_tokens=100, extra_headers={"X-Request-ID": rid},
                                        messages=[{"role": "user", "content": f"Hi {tag}"}]):
                if ev.type == "content_block_delta" and ev.delta.type == "text_delta":
                    text += ev.delta.text
        events, clean = g.parse_sse(recorder.last(rid).body)
        last_name, last_data = [e for e in events if e[0] != "ping"][-1]
        body = json_or_none(last_data)
        assert last_name == "error" and body and body.get("type") == "error", events[-3:]
        assert isinstance(body["error"].get("type"), str) and body["error"].get("message"), body
    assert clean, "the error event must be complete (terminated by a blank line)"
    assert text == "partial ", "what the upstream sent before failing must reach the client first"
    assert len(mock.with_nonce(tag)) == 1
    assert fresh_gateway.log_for(rid)["outcome"] != "ok"


@CLIENTS
def test_no_failover_after_first_byte(fresh_gateway, recorder, mock, tag, client):
    """stream-error-chain = [openai/mock-stream-error, anthropic/...]: once bytes flowed, no other target."""
    with pytest.raises((openai.APIError, anthropic.APIError)):
        ask(fresh_gateway, recorder, client, "stream-error-chain", f"Hi {tag}", stream=True)
    assert [(r["path"], r["body"]["model"]) for r in mock.with_nonce(tag)] == [(g.UPSTREAM_PATH["openai"], "mock-stream-error")]


@CLIENTS
@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
def test_client_disconnect_cancels_upstream(fresh_gateway, recorder, mock, tag, client, upstream):
    rid = f"rid-{tag}"
    model = f"{upstream}/mock-drip"
    got = 0
    if client == "openai":
        s = g.openai_client(fresh_gateway, recorder).chat.completions.create(
            model=model, stream=True, extra_headers={"X-Request-ID": rid}, messages=[{"role": "user", "content": f"Hi {tag}"}])
        for ch in s:
            got += sum(1 for x in ch.choices if x.delta.content)
            if got >= 2:
                break
    else:
        s = g.anthropic_client(fresh_gateway, recorder).messages.create(
            model=model, stream=True, max_tokens=100, extra_headers={"X-Request-ID": rid},
            messages=[{"role": "user", "content": f"Hi {tag}"}])
        for ev in s:
            got += ev.type == "content_block_delta"
            if got >= 2:
                break
    s.close()
    deadline = time.monotonic() + 6  # the mock would keep dripping for ~10 s
    while time.monotonic() < deadline and not all(r["client_gone"] for r in mock.with_nonce(tag)):
        time.sleep(0.1)
    reqs = mock.with_nonce(tag)
    assert len(reqs) == 1 and reqs[0]["client_gone"], "the gateway must stop reading the upstream when its client leaves"
    log = fresh_gateway.log_for(rid, timeout=10)
    assert log["outcome"] == "client_disconnected", log


def json_or_none(data: str):
    try:
        v = json.loads(data)
    except ValueError:
        return None
    return v if isinstance(v, dict) else None
