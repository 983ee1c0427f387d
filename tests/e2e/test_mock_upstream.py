"""The mock upstream on its own (no gateway needed): the official SDKs talk to it directly.

If these fail, fix the mock before believing anything the gateway tests say.
"""

from __future__ import annotations

import gzip
import http.client
import json
import time

import anthropic
import httpx2
import openai
import pytest

import gwtest as g
import mock_upstream
from gwtest import IMAGE_URL, PNG_B64, TOOL_RESULT, WEATHER_TOOL_AN, WEATHER_TOOL_OA
from mock_upstream import TOOL_PREAMBLE


@pytest.fixture(scope="module")
def own_recorder() -> g.Recorder:
    return g.Recorder()


@pytest.fixture
def direct_openai(mock_url, own_recorder):
    def make(prefix: str = "openai", key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{mock_url}/{prefix}/v1", api_key=key or g.UPSTREAM_KEYS.get(prefix, "x"),
                             max_retries=0, timeout=g.SDK_TIMEOUT, http_client=g.http_client(own_recorder, "direct"))
    return make


@pytest.fixture
def direct_anthropic(mock_url, own_recorder):
    def make(key: str | None = None) -> anthropic.Anthropic:
        key = key or g.UPSTREAM_KEYS["anthropic"]
        return anthropic.Anthropic(base_url=f"{mock_url}/anthropic", api_key=key, max_retries=0, timeout=g.SDK_TIMEOUT,
                                   default_headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                                   http_client=g.http_client(own_recorder, "direct"))
    return make


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
@pytest.mark.parametrize("prefix", ["openai", "groq"])
def test_openai_text_and_usage(direct_openai, own_recorder, mock, tag, prefix, stream):
    rid = "direct-" + tag
    kw = {"stream_options": {"include_usage": True}} if stream else {}
    r = g.openai_chat(direct_openai(prefix), stream=stream, request_id=rid, model="gpt-4o-mini",
                      messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": f"hi {tag}"}], **kw)
    assert r.text == f"echo: hi {tag}" and r.finish_reason == "stop"
    g.check_openai_usage(r.usage, prefix)
    if stream:
        g.check_openai_stream(own_recorder.last(rid).body, include_usage=True if prefix == "openai" else None)
    assert mock.one(tag)["path"] == f"/{prefix}/v1/chat/completions"


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
@pytest.mark.parametrize("prefix", ["openai", "groq"])
def test_openai_tools_round_trip(direct_openai, mock, tag, prefix, stream):
    c = direct_openai(prefix)
    msgs = [{"role": "user", "content": f"weather? {tag}"}]
    r1 = g.openai_chat(c, stream=stream, model="gpt-4o-mini", messages=msgs, tools=[WEATHER_TOOL_OA],
                       tool_choice="required", parallel_tool_calls=False)
    assert r1.finish_reason == "tool_calls"
    (call,) = r1.tool_calls
    assert call["id"] == mock.one(tag)["issued"]["tool_call_ids"][0]
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"location": "Paris"}
    msgs += [{"role": "assistant", "content": None, "tool_calls": [
        {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": TOOL_RESULT}]
    r2 = g.openai_chat(c, stream=stream, model="gpt-4o-mini", messages=msgs, tools=[WEATHER_TOOL_OA])
    assert r2.text == f"tool result: {TOOL_RESULT}" and r2.finish_reason == "stop"


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_openai_reasoning_and_images(direct_openai, tag, stream):
    c = direct_openai()
    r = g.openai_chat(c, stream=stream, model="o4-mini", reasoning_effort="low", max_completion_tokens=500,
                      messages=[{"role": "user", "content": f"think {tag}"}],
                      **({"stream_options": {"include_usage": True}} if stream else {}))
    assert r.reasoning == f"Reasoning about: think {tag}" and r.text == f"echo: think {tag}"
    g.check_openai_usage(r.usage, "openai", reasoning=True)
    r = g.openai_chat(c, stream=stream, model="gpt-4o-mini", messages=[{"role": "user", "content": [
        {"type": "text", "text": f"what? {tag}"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        {"type": "image_url", "image_url": {"url": IMAGE_URL}}]}])
    assert r.text == f"images: base64:image/png, url:{IMAGE_URL}"


@pytest.mark.parametrize("bad", [
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "thinking": {"type": "enabled"}},
    {"model": "gpt-4o-mini", "messages": [{"role": "tool", "tool_call_id": "call_1", "content": "x"}]},
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "tool_choice": "required"},
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": True}},
    {"model": "o4-mini", "messages": [{"role": "user", "content": "x"}], "max_tokens": 10},
    {"model": "gpt-4o-mini", "messages": [{"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "r"}]},
], ids=["unknown-param", "orphan-tool", "tool_choice-without-tools", "stream_options-without-stream",
        "max_tokens-on-o-series", "arguments-not-string"])
def test_openai_validation(mock_url, bad):
    r = g.raw_request(mock_url, "POST", "/openai/v1/chat/completions", bad,
                      {"Authorization": f"Bearer {g.UPSTREAM_KEYS['openai']}"})
    g.assert_openai_error(r, 400)


def test_openai_auth(direct_openai):
    with pytest.raises(openai.AuthenticationError):
        direct_openai("openai", key="wrong").chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.AuthenticationError):
        direct_openai("nokey", key="anything").chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_anthropic_text_tools_thinking(direct_anthropic, own_recorder, mock, tag, stream):
    c = direct_anthropic()
    rid = "direct-" + tag
    r = g.anthropic_messages(c, stream=stream, request_id=rid, model="claude-sonnet-4-5", max_tokens=100,
                             system="sys", messages=[{"role": "user", "content": f"hi {tag}"}])
    assert r.text == f"echo: hi {tag}" and r.stop_reason == "end_turn"
    g.check_anthropic_usage(r.usage, "anthropic")
    if stream:
        g.check_anthropic_stream(own_recorder.last(rid).body)
        assert r.start_usage["input_tokens"] == 21

    msgs = [{"role": "user", "content": f"weather? {tag}"}]
    r1 = g.anthropic_messages(c, stream=stream, model="claude-sonnet-4-5", max_tokens=100, messages=msgs,
                              tools=[WEATHER_TOOL_AN], tool_choice={"type": "any", "disable_parallel_tool_use": True})
    assert r1.stop_reason == "tool_use" and [b["type"] for b in r1.blocks] == ["text", "tool_use"]
    assert r1.blocks[0]["text"] == TOOL_PREAMBLE and r1.blocks[1]["input"] == {"location": "Paris"}
    tu = r1.blocks[1]
    msgs += [{"role": "assistant", "content": [{"type": "text", "text": TOOL_PREAMBLE},
                                               {"type": "tool_use", "id": tu["id"], "name": tu["name"], "input": tu["input"]}]},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tu["id"], "content": TOOL_RESULT}]}]
    r2 = g.anthropic_messages(c, stream=stream, model="claude-sonnet-4-5", max_tokens=100, messages=msgs, tools=[WEATHER_TOOL_AN])
    assert r2.text == f"tool result: {TOOL_RESULT}"

    q = f"redact and think {tag}"
    r3 = g.anthropic_messages(c, stream=stream, model="claude-sonnet-4-5", max_tokens=2048,
                              thinking={"type": "enabled", "budget_tokens": 1024}, messages=[{"role": "user", "content": q}])
    assert [b["type"] for b in r3.blocks] == ["redacted_thinking", "thinking", "text"]
    th = r3.blocks[1]
    assert th["signature"].startswith("sig-") and "+" in th["signature"] and "/" in th["signature"] and th["signature"].endswith("==")
    history = [{"role": "user", "content": q},
               {"role": "assistant", "content": [{"type": "redacted_thinking", "data": r3.blocks[0]["data"]},
                                                 {"type": "thinking", "thinking": th["thinking"], "signature": th["signature"]},
                                                 {"type": "text", "text": r3.blocks[2]["text"]}]},
               {"role": "user", "content": f"again {tag}"}]
    r4 = g.anthropic_messages(c, stream=stream, model="claude-sonnet-4-5", max_tokens=2048,
                              thinking={"type": "enabled", "budget_tokens": 1024}, messages=history)
    assert r4.text == f"echo: again {tag}"
    history[1]["content"][1]["signature"] = g.tamper(th["signature"])
    with pytest.raises(anthropic.BadRequestError):
        g.anthropic_messages(c, stream=stream, model="claude-sonnet-4-5", max_tokens=2048,
                             thinking={"type": "enabled", "budget_tokens": 1024}, messages=history)


@pytest.mark.parametrize("bad", [
    {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}]},
    {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}]},
    {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]},
    {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "n": 2},
    {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "r"}]}]},
    {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "stop_sequences": [" \n"]},
    {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
     "thinking": {"type": "enabled", "budget_tokens": 1024}},
    {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
], ids=["no-max_tokens", "system-role", "no-alternation", "unknown-param", "orphan-tool_result",
        "whitespace-stop", "budget>=max_tokens", "empty-text-block"])
def test_anthropic_validation(mock_url, bad):
    r = g.raw_request(mock_url, "POST", "/anthropic/v1/messages", bad,
                      {"x-api-key": g.UPSTREAM_KEYS["anthropic"], "anthropic-version": "2023-06-01"})
    g.assert_anthropic_error(r, 400)


def test_anthropic_auth_and_version(mock_url):
    ok_body = {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    r = g.raw_request(mock_url, "POST", "/anthropic/v1/messages", ok_body, {"x-api-key": "wrong", "anthropic-version": "2023-06-01"})
    g.assert_anthropic_error(r, 401)
    r = g.raw_request(mock_url, "POST", "/anthropic/v1/messages", ok_body, {"x-api-key": g.UPSTREAM_KEYS["anthropic"]})
    g.assert_anthropic_error(r, 400)


def test_count_tokens(direct_anthropic, mock, tag):
    res = direct_anthropic().messages.count_tokens(model="claude-sonnet-4-5", system="abcd" * 10,
                                                    messages=[{"role": "user", "content": f"count me {tag}"}])
    assert res.input_tokens == mock.one(tag)["issued"]["input_tokens"] == (40 + len(f"count me {tag}")) // 4 + 7


@pytest.mark.parametrize("model,exc", [
    ("mock-fail-500", anthropic.InternalServerError),
    ("mock-fail-429", anthropic.RateLimitError),
    ("mock-fail-400", anthropic.BadRequestError),
    ("mock-overloaded", anthropic.OverloadedError),
])
def test_anthropic_failure_triggers(direct_anthropic, model, exc):
    with pytest.raises(exc) as ei:
        direct_anthropic().messages.create(model=model, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    if model == "mock-fail-429":
        assert ei.value.response.headers.get("retry-after") == "1"


@pytest.mark.parametrize("model,exc", [
    ("mock-fail-500", openai.InternalServerError),
    ("mock-fail-429", openai.RateLimitError),
    ("mock-fail-400", openai.BadRequestError),
    ("mock-overloaded", openai.InternalServerError),
])
def test_openai_failure_triggers(direct_openai, model, exc):
    with pytest.raises(exc):
        direct_openai().chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize("kind", ["error", "cut"])
def test_stream_failures_raise_in_sdks(direct_openai, direct_anthropic, kind):
    text = ""
    with pytest.raises((openai.APIError, openai.APIConnectionError)):
        for ch in direct_openai().chat.completions.create(model=f"mock-stream-{kind}", stream=True,
                                                          messages=[{"role": "user", "content": "x"}]):
            text += "".join(c.delta.content or "" for c in ch.choices)
    assert text == "partial "
    text = ""
    # the Anthropic SDK does not wrap transport errors raised while iterating
    with pytest.raises(anthropic.APIError if kind == "error" else httpx2.RemoteProtocolError):
        for ev in direct_anthropic().messages.create(model=f"mock-stream-{kind}", stream=True, max_tokens=5,
                                                     messages=[{"role": "user", "content": "x"}]):
            if ev.type == "content_block_delta":
                text += ev.delta.text
    assert text == "partial "


def test_checkers_reject_broken_streams():
    ok = b'data: {"id":"a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"x"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    g.check_openai_stream(ok)
    with pytest.raises(AssertionError):
        g.check_openai_stream(ok.replace(b"data: [DONE]\n\n", b""))
    with pytest.raises(AssertionError):
        g.check_openai_stream(ok, include_usage=True)
    an = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant","content":[],"usage":{"input_tokens":1,"output_tokens":1}}}\n\n'
          b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
          b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}\n\n'
          b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
          b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":1}}\n\n'
          b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    g.check_anthropic_stream(an)
    with pytest.raises(AssertionError):
        g.check_anthropic_stream(an.replace(b"event: content_block_delta\n", b""))
    with pytest.raises(AssertionError):
        g.check_anthropic_stream(an.replace(b'"index":0,"delta"', b'"index":1,"delta"'))


def test_mock_records_requests(mock, mock_url, tag):
    g.raw_request(mock_url, "POST", "/openai/v1/chat/completions",
                  {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": tag}]},
                  {"Authorization": f"Bearer {g.UPSTREAM_KEYS['openai']}", "X-Custom": "Yes"})
    req = mock.one(tag)
    assert req["headers"]["x-custom"] == "Yes" and req["body"]["model"] == "gpt-4o-mini" and req["status"] == 200


# ---- triggers for the hardening tests --------------------------------------------------------------


def _mock_chat(prefix: str, model: str, text: str, stream: bool) -> tuple[str, dict, dict]:
    if prefix == "anthropic":
        return ("/anthropic/v1/messages",
                {"model": model, "max_tokens": 10, "stream": stream, "messages": [{"role": "user", "content": text}]},
                {"x-api-key": g.UPSTREAM_KEYS["anthropic"], "anthropic-version": "2023-06-01"})
    return (f"/{prefix}/v1/chat/completions", {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]},
            {"Authorization": f"Bearer {g.UPSTREAM_KEYS[prefix]}"})


@pytest.mark.parametrize("prefix", ["openai", "anthropic"])
def test_endless_line_trigger(mock, mock_url, tag, prefix):
    path, body, headers = _mock_chat(prefix, "mock-endless-line", f"hi {tag}", True)
    conn = http.client.HTTPConnection("127.0.0.1", int(mock_url.rsplit(":", 1)[1]), timeout=10)
    try:
        conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json", **headers})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("content-type", "").startswith("text/event-stream")
        got = b""
        while len(got) < 3 * mock_upstream.ENDLESS_CHUNK:
            d = resp.read1(1 << 20)
            assert d, "the endless line ended"
            got += d
    finally:
        conn.close()
    prefix_bytes = b'data: {"x":"'
    assert got.startswith(prefix_bytes) and b"\n" not in got and set(got[len(prefix_bytes):]) == {ord("a")}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not mock.one(tag)["client_gone"]:
        time.sleep(0.05)
    assert mock.one(tag)["client_gone"], "the mock must stop when its reader leaves"


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
@pytest.mark.parametrize("prefix", ["openai", "anthropic"])
def test_html_trigger(mock_url, tag, prefix, stream):
    path, body, headers = _mock_chat(prefix, "mock-html", f"hi {tag}", stream)
    r = g.raw_request(mock_url, "POST", path, body, headers)
    assert r.status == 200
    if not stream:
        assert r.headers["content-type"].startswith("text/html") and r.body == mock_upstream.HTML_PAGE
        return
    events, clean = g.parse_sse(r.body)
    assert clean and events[0][1] == mock_upstream.HTML_EVENT_DATA.decode()
    if prefix == "openai":
        assert events[-1][1] == "[DONE]"
        rest = [json.loads(d) for _, d in events[1:-1]]
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in rest if c["choices"]) == f"echo: hi {tag}"
    else:
        assert events[0][0] == "message_start" and events[-1][0] == "message_stop"
        assert all(json.loads(d)["type"] == n for n, d in events[1:])


@pytest.mark.parametrize("prefix", ["openai", "anthropic"])
def test_gzip_trigger(direct_openai, direct_anthropic, mock_url, tag, prefix):
    path, body, headers = _mock_chat(prefix, "mock-gzip", f"hi {tag}", False)
    r = g.raw_request(mock_url, "POST", path, body, headers)  # http.client: Accept-Encoding: identity
    assert r.status == 200 and r.headers.get("content-encoding") == "gzip"
    answer = json.loads(gzip.decompress(r.body))
    text = answer["choices"][0]["message"]["content"] if prefix == "openai" else answer["content"][0]["text"]
    assert text == f"echo: hi {tag}"
    # the SDKs decode it
    if prefix == "openai":
        assert g.openai_chat(direct_openai(), stream=False, model="mock-gzip",
                             messages=[{"role": "user", "content": "x"}]).text == "echo: x"
    else:
        assert g.anthropic_messages(direct_anthropic(), stream=False, model="mock-gzip", max_tokens=10,
                                    messages=[{"role": "user", "content": "x"}]).text == "echo: x"
    # streamed, it is a normal stream
    path, body, headers = _mock_chat(prefix, "mock-gzip", f"hi {tag}", True)
    r = g.raw_request(mock_url, "POST", path, body, headers)
    assert r.status == 200 and "content-encoding" not in r.headers
    (g.check_openai_stream if prefix == "openai" else g.check_anthropic_stream)(r.body)
