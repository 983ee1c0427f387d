"""The mock upstream on its own (no gateway needed): the official SDKs talk to it directly.

If these fail, fix the mock before believing anything the gateway tests say.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import time

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import types

import gwtest as g
import mock_upstream
from gwtest import IMAGE_URL, PNG_B64, TOOL_RESULT, WEATHER_TOOL_AN, WEATHER_TOOL_OA
from mock_upstream import GEMINI_THOUGHT_PREFIX, GEMINI_USAGE, REASONING_TOKENS, TOOL_ARGS, TOOL_PREAMBLE


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


# ---- Gemini: the google-genai SDK against the mock -------------------------------------------------

GEMINI_KEY_HEADER = {"x-goog-api-key": g.UPSTREAM_KEYS["gemini"]}
WEATHER_DECL = types.FunctionDeclaration(name="get_weather", description=g.WEATHER_DESC, parameters_json_schema=g.WEATHER_PARAMS)
NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)


@pytest.fixture
def direct_gemini(mock_url, own_recorder):
    def make(key: str | None = None):
        return g.genai_client(f"{mock_url}/gemini", own_recorder, key=key or g.UPSTREAM_KEYS["gemini"], source="direct")
    return make


def gemini_raw(mock_url: str, body, model: str = "gemini-2.5-flash", action: str = "generateContent",
               headers: dict | None = None, query: str = "") -> g.Raw:
    return g.raw_request(mock_url, "POST", f"/gemini/v1beta/models/{model}:{action}{query}", body,
                         GEMINI_KEY_HEADER if headers is None else headers)


def user(text: str) -> dict:
    return {"role": "user", "parts": [{"text": text}]}


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_gemini_text_and_usage(direct_gemini, own_recorder, mock, tag, stream):
    rid = "direct-" + tag
    r = g.gemini_generate(direct_gemini(), stream=stream, request_id=rid, model="gemini-2.5-flash", contents=f"hi {tag}",
                          system_instruction="sys", max_output_tokens=100, temperature=0.5)
    assert (r.text, r.finish_reason, r.thoughts, r.calls) == (f"echo: hi {tag}", "STOP", None, [])
    g.check_gemini_usage(r.usage, "gemini")
    assert "thoughts_token_count" not in r.usage
    req = mock.one(tag)
    assert req["path"] == "/gemini/v1beta/models/gemini-2.5-flash:" + ("streamGenerateContent" if stream else "generateContent")
    assert req["query"] == ("alt=sse" if stream else "")
    assert req["headers"]["x-goog-api-key"] == g.UPSTREAM_KEYS["gemini"]
    assert req["body"]["systemInstruction"]["parts"] == [{"text": "sys"}]
    assert req["body"]["generationConfig"] == {"maxOutputTokens": 100, "temperature": 0.5}
    if stream:
        chunks = g.check_gemini_stream(bytes(own_recorder.last(rid).body))
        assert len(chunks) == 3
        assert [c["usageMetadata"].get("candidatesTokenCount") for c in chunks] == [3, 6, 9], "running counts, the last one final"
        assert {c["responseId"] for c in chunks} == {req["issued"]["responseId"]}


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_gemini_tools_round_trip(direct_gemini, mock, tag, stream):
    c = direct_gemini()
    kw = dict(tools=[types.Tool(function_declarations=[WEATHER_DECL])], automatic_function_calling=NO_AFC,
              tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="ANY")))
    ask = types.Content(role="user", parts=[types.Part(text=f"weather? {tag}")])
    r1 = g.gemini_generate(c, stream=stream, model="gemini-2.5-flash", contents=[ask], **kw)
    (call,) = r1.calls
    issued = mock.one(tag)["issued"]["function_calls"][0]
    assert (call["name"], call["args"], call["id"]) == ("get_weather", TOOL_ARGS, None), "Gemini function calls carry no id"
    assert call["thought_signature"] == base64.b64decode(issued["thoughtSignature"])
    assert r1.finish_reason == "STOP", "Gemini finishes a function call with STOP"
    answer = types.Content(role="user", parts=[types.Part.from_function_response(name="get_weather", response={"result": TOOL_RESULT})])
    r2 = g.gemini_generate(c, stream=stream, model="gemini-2.5-flash", contents=[ask, r1.content, answer], **kw)
    assert r2.text == f"tool result: {TOOL_RESULT}" and r2.calls == []
    sent = mock.with_nonce(tag)[1]["body"]["contents"][1]["parts"]
    fc = next(p for p in sent if "functionCall" in p)
    assert fc["thoughtSignature"] != issued["thoughtSignature"], "the SDK re-encodes bytes URL-safe"
    assert mock_upstream.g_b64decode(fc["thoughtSignature"]) == base64.b64decode(issued["thoughtSignature"])

    # the signature must come back, on that call, unchanged
    missing = types.Content(role="model", parts=[types.Part(function_call=types.FunctionCall(name="get_weather", args=TOOL_ARGS))])
    with pytest.raises(genai.errors.ClientError) as ei:
        g.gemini_generate(c, stream=stream, model="gemini-2.5-flash", contents=[ask, missing, answer], **kw)
    assert ei.value.code == 400 and "thought_signature" in ei.value.message
    tampered = types.Content(role="model", parts=[types.Part(function_call=types.FunctionCall(name="get_weather", args=TOOL_ARGS),
                                                             thought_signature=call["thought_signature"][:-1] + bytes([call["thought_signature"][-1] ^ 0xFF]))])
    with pytest.raises(genai.errors.ClientError) as ei:
        g.gemini_generate(c, stream=stream, model="gemini-2.5-flash", contents=[ask, tampered, answer], **kw)
    assert ei.value.code == 400 and "Corrupted thought signature" in ei.value.message


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_gemini_thinking(direct_gemini, mock, tag, stream):
    c = direct_gemini()
    q = f"think {tag}"
    think = types.ThinkingConfig(include_thoughts=True, thinking_budget=1024)
    r = g.gemini_generate(c, stream=stream, model="gemini-2.5-flash", contents=q, thinking_config=think)
    assert (r.thoughts, r.text) == (GEMINI_THOUGHT_PREFIX + q, f"echo: {q}")
    assert r.usage["thoughts_token_count"] == REASONING_TOKENS
    assert r.usage["candidates_token_count"] == GEMINI_USAGE["candidatesTokenCount"], "candidatesTokenCount excludes thoughts"
    assert r.usage["total_token_count"] == GEMINI_USAGE["promptTokenCount"] + GEMINI_USAGE["candidatesTokenCount"] + REASONING_TOKENS
    assert mock.one(tag)["body"]["generationConfig"]["thinkingConfig"] == {"include_thoughts": True, "thinking_budget": 1024}, \
        "the SDK sends thinkingConfig's fields in snake_case: proto JSON accepts both spellings"
    signed = [p for p in r.content.parts if p.thought_signature]
    assert len(signed) == 1 and not signed[0].thought, "the signature of a text answer rides on its (last) text part"
    history = [types.Content(role="user", parts=[types.Part(text=q)]), r.content,
               types.Content(role="user", parts=[types.Part(text=f"again {tag}")])]
    assert g.gemini_generate(c, stream=stream, model="gemini-2.5-flash", contents=history, thinking_config=think).text == f"echo: again {tag}"
    r = g.gemini_generate(c, stream=stream, model="gemini-2.5-flash", contents=f"quiet {tag}",
                          thinking_config=types.ThinkingConfig(thinking_budget=512))
    assert r.thoughts is None and r.usage["thoughts_token_count"] == REASONING_TOKENS, "thinks, shows no thoughts"


def test_gemini_structured_output(direct_gemini, tag):
    schema = {"type": "OBJECT", "properties": {"city": {"type": "STRING"}, "temp_c": {"type": "INTEGER"}},
              "required": ["city", "temp_c"], "propertyOrdering": ["city", "temp_c"]}
    r = g.gemini_generate(direct_gemini(), stream=False, model="gemini-2.5-flash", contents=f"json {tag}",
                          response_mime_type="application/json", response_schema=schema)
    assert json.loads(r.text) == {"city": f"json {tag}", "temp_c": 1}
    js = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "additionalProperties": False}
    r = g.gemini_generate(direct_gemini(), stream=True, model="gemini-2.5-flash", contents=f"json {tag}",
                          response_mime_type="application/json", response_json_schema=js)
    assert json.loads(r.text) == {"ok": True}, "responseJsonSchema takes JSON Schema (additionalProperties included)"


def test_gemini_image_and_count_tokens(direct_gemini, mock, tag):
    c = direct_gemini()
    r = g.gemini_generate(c, stream=False, model="gemini-2.5-flash", contents=[
        f"what? {tag}", types.Part.from_bytes(data=base64.b64decode(PNG_B64), mime_type="image/png")])
    assert r.text == "images: base64:image/png"
    text = f"count me please {tag}"
    assert c.models.count_tokens(model="gemini-2.5-flash", contents=text).total_tokens == \
        mock.with_nonce(tag)[-1]["issued"]["totalTokens"] == len(text) // 4 + 7
    assert [m.name for m in c.models.list()] == ["models/gemini-2.5-flash", "models/gemini-2.5-pro"]
    assert c.models.get(model="gemini-2.5-pro").input_token_limit == 1048576


def test_gemini_auth(direct_gemini, mock_url):
    with pytest.raises(genai.errors.ClientError) as ei:
        direct_gemini(key="wrong").models.generate_content(model="gemini-2.5-flash", contents="x")
    assert (ei.value.code, ei.value.status) == (400, "INVALID_ARGUMENT")
    assert ei.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    body = {"contents": [user("x")]}
    assert g.assert_gemini_error(gemini_raw(mock_url, body, headers={}), 403)["status"] == "PERMISSION_DENIED"
    g.assert_gemini_error(gemini_raw(mock_url, body, headers={"Authorization": f"Bearer {g.UPSTREAM_KEYS['gemini']}"}), 401)
    r = gemini_raw(mock_url, body, headers={}, query=f"?key={g.UPSTREAM_KEYS['gemini']}")
    assert r.status == 200 and r.json()["candidates"][0]["content"]["parts"] == [{"text": "echo: x"}]


FC = {"functionCall": {"name": "get_weather", "args": TOOL_ARGS}}
FR = {"functionResponse": {"name": "get_weather", "response": {"result": "r"}}}
WEATHER_TOOLS = [{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}]}]


def _with_schema(extra: dict) -> dict:
    params = {"type": "object", "properties": {"location": {"type": "string"}}, **extra}
    return {"contents": [user("x")], "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": params}]}]}


GEMINI_BAD = {
    "unknown-field": ({"contents": [user("x")], "stream": True}, 'Unknown name "stream"'),
    "unknown-nested": ({"contents": [user("x")], "generationConfig": {"max_tokens": 5}}, "at 'generation_config'"),
    "openai-style-part": ({"contents": [{"role": "user", "parts": [{"type": "text", "text": "x"}]}]}, 'Unknown name "type"'),
    "additionalProperties": (_with_schema({"additionalProperties": False}), 'Unknown name "additionalProperties"'),
    "$schema": (_with_schema({"$schema": "http://json-schema.org/draft-07/schema#"}), 'Unknown name "$schema"'),
    "$ref": (_with_schema({"$defs": {"a": {"type": "string"}}}), 'Unknown name "$defs"'),
    "nested-additionalProperties": ({"contents": [user("x")], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {
        "type": "object", "properties": {"o": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}}}}]}]},
        "properties[0].value"),
    "type-list": (_with_schema({"properties": {"a": {"type": ["string", "null"]}}}), "Invalid value"),
    "required-undefined": (_with_schema({"required": ["city"]}), "property is not defined"),
    "properties-without-object": ({"contents": [user("x")], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {
        "properties": {"a": {"type": "string"}}}}]}]}, "only allowed for OBJECT type"),
    "bad-function-name": ({"contents": [user("x")], "tools": [{"functionDeclarations": [{"name": "get weather"}]}]}, "Invalid function name"),
    "role-assistant": ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role: user, model"),
    "role-system": ({"contents": [{"role": "system", "parts": [{"text": "x"}]}, user("y")]}, "valid role: user, model"),
    "no-contents": ({"contents": []}, "contents is not specified"),
    "empty-parts": ({"contents": [{"role": "user", "parts": []}]}, "contents.parts must not be empty"),
    "part-without-data": ({"contents": [{"role": "user", "parts": [{"thought": True}]}]}, "required oneof field 'data'"),
    "part-with-two-data": ({"contents": [{"role": "user", "parts": [{"text": "x", "inlineData": {"mimeType": "image/png", "data": PNG_B64}}]}]},
                           "Oneof field 'data' is already set"),
    "data-uri-in-inlineData": ({"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png",
                                "data": f"data:image/png;base64,{PNG_B64}"}}]}]}, "Base64 decoding failed"),
    "call-first": ({"contents": [{"role": "model", "parts": [FC]}, {"role": "user", "parts": [FR]}]}, "function call turn comes immediately after"),
    "orphan-response": ({"contents": [user("x"), {"role": "user", "parts": [FR]}]}, "function response turn comes immediately after"),
    "response-count": ({"contents": [user("x"), {"role": "model", "parts": [{**FC, "thoughtSignature": "skip_thought_signature_validator"}]},
                        {"role": "user", "parts": [FR, FR]}], "tools": WEATHER_TOOLS}, "number of function response parts"),
    "missing-signature": ({"contents": [user("x"), {"role": "model", "parts": [FC]}, {"role": "user", "parts": [FR]}], "tools": WEATHER_TOOLS},
                          "missing a `thought_signature`"),
    "foreign-signature": ({"contents": [user("x"), {"role": "model", "parts": [{**FC, "thoughtSignature": base64.b64encode(b"not issued").decode()}]},
                           {"role": "user", "parts": [FR]}], "tools": WEATHER_TOOLS}, "Corrupted thought signature"),
    "schema-without-json": ({"contents": [user("x")], "generationConfig": {"responseSchema": {"type": "STRING"}}}, "response_mime_type"),
    "bad-response-mime": ({"contents": [user("x")], "generationConfig": {"responseMimeType": "application/jsonl"}}, "allowed mimetypes"),
    "thinkingLevel-on-2.5": ({"contents": [user("x")], "generationConfig": {"thinkingConfig": {"thinkingLevel": "LOW"}}}, "Thinking level"),
    "budget-and-level": ({"contents": [user("x")], "generationConfig": {"thinkingConfig": {"thinkingLevel": "LOW", "thinkingBudget": 10}}},
                         "only one of thinking budget and thinking level"),
    "budget-over-range": ({"contents": [user("x")], "generationConfig": {"thinkingConfig": {"thinkingBudget": 32768}}}, "thinking budget"),
    "six-stop-sequences": ({"contents": [user("x")], "generationConfig": {"stopSequences": list("abcdef")}}, "stop_sequences"),
}


@pytest.mark.parametrize("case", list(GEMINI_BAD))
def test_gemini_validation(mock_url, case):
    body, expected = GEMINI_BAD[case]
    err = g.assert_gemini_error(gemini_raw(mock_url, body), 400)
    assert expected in err["message"], err


def test_gemini_validation_model_specific_and_accepted(mock_url, tag):
    r = gemini_raw(mock_url, {"contents": [user("x")], "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}}, model="gemini-2.5-pro")
    assert "only works in thinking mode" in g.assert_gemini_error(r, 400)["message"]
    assert "is not found for API version v1beta" in g.assert_gemini_error(gemini_raw(mock_url, {"contents": [user("x")]}, model="gpt-4o"), 404)["message"]
    # accepted: snake_case names, numbers as strings, a blank role, lower-case schema types, documented dummy signatures
    ok = {"contents": [{"parts": [{"text": f"a {tag}"}]}, {"role": "model", "parts": [{**FC, "thought_signature": "skip_thought_signature_validator"}]},
                       {"role": "user", "parts": [FR]}],
          "system_instruction": {"parts": [{"text": "s"}]}, "tools": WEATHER_TOOLS,
          "generation_config": {"max_output_tokens": "100", "stop_sequences": ["Z"], "thinking_config": {"thinking_budget": -1}}}
    r = gemini_raw(mock_url, ok)
    assert r.status == 200, r.body[:400]
    assert r.json()["candidates"][0]["content"]["parts"][0]["text"] == "tool result: r"
    ok["contents"][1]["parts"][0]["thought_signature"] = base64.b64encode(b"context_engineering_is_the_way_to_go").decode()
    assert gemini_raw(mock_url, ok).status == 200, "the stand-in, base64-encoded"


@pytest.mark.parametrize("model,status,gstatus", [
    ("mock-fail-500", 500, "INTERNAL"), ("mock-fail-429", 429, "RESOURCE_EXHAUSTED"),
    ("mock-fail-400", 400, "INVALID_ARGUMENT"), ("mock-overloaded", 503, "UNAVAILABLE"),
])
def test_gemini_failure_triggers(direct_gemini, model, status, gstatus):
    with pytest.raises(genai.errors.APIError) as ei:
        direct_gemini().models.generate_content(model=model, contents="x")
    assert (ei.value.code, ei.value.status) == (status, gstatus)
    assert isinstance(ei.value, genai.errors.ClientError if status < 500 else genai.errors.ServerError)
    if model == "mock-fail-429":
        assert ei.value.response.headers.get("retry-after") == "1"
        assert any(d.get("retryDelay") == "1s" for d in ei.value.details["error"]["details"])


def test_gemini_stream_failures(direct_gemini, mock_url):
    text = ""
    with pytest.raises(genai.errors.ServerError) as ei:
        for ch in direct_gemini().models.generate_content_stream(model="mock-stream-error", contents="x"):
            text += ch.text or ""
    assert text == "partial " and ei.value.status == "INTERNAL", "an error event mid-stream is raised by the SDK"
    text = ""
    with pytest.raises(Exception) as ei:  # a transport error (the SDK does not wrap it)
        for ch in direct_gemini().models.generate_content_stream(model="mock-stream-cut", contents="x"):
            text += ch.text or ""
    assert text == "partial " and not isinstance(ei.value, genai.errors.APIError)


def test_gemini_non_sse_stream_is_a_json_array(mock_url, tag):
    r = gemini_raw(mock_url, {"contents": [user(f"hi {tag}")]}, action="streamGenerateContent")
    assert r.status == 200 and r.headers["content-type"].startswith("application/json")
    arr = r.json()
    assert isinstance(arr, list) and len(arr) == 3
    assert "".join(p["text"] for x in arr for p in x["candidates"][0]["content"]["parts"]) == f"echo: hi {tag}"
    assert arr[-1]["candidates"][0]["finishReason"] == "STOP" and arr[-1]["usageMetadata"]["candidatesTokenCount"] == 9


def test_gemini_checkers_reject_broken_streams():
    ok = (b'data: {"candidates": [{"content": {"parts": [{"text": "x"}], "role": "model"}, "index": 0}]}\r\n\r\n'
          b'data: {"candidates": [{"content": {"parts": [{"text": "y"}], "role": "model"}, "finishReason": "STOP", "index": 0}],'
          b' "usageMetadata": {"promptTokenCount": 1}}\r\n\r\n')
    g.check_gemini_stream(ok)
    for broken in (ok + b"data: [DONE]\r\n\r\n", ok.replace(b'"finishReason": "STOP", ', b""), ok[:-4],
                   ok.replace(b'"role": "model"}, "index": 0}]}', b'"role": "assistant"}, "index": 0}]}'),
                   b"event: message\r\n" + ok, ok.replace(b', "usageMetadata": {"promptTokenCount": 1}', b"")):
        with pytest.raises(AssertionError):
            g.check_gemini_stream(broken)


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_gemini_html_and_gzip_triggers(mock_url, tag, stream):
    action, query = ("streamGenerateContent", "?alt=sse") if stream else ("generateContent", "")
    r = gemini_raw(mock_url, {"contents": [user(f"hi {tag}")]}, model="mock-html", action=action, query=query)
    if not stream:
        assert r.headers["content-type"].startswith("text/html") and r.body == mock_upstream.HTML_PAGE
    else:
        events, clean = g.parse_sse(r.body)
        assert clean and events[0][1] == mock_upstream.HTML_EVENT_DATA.decode() and len(events) == 3
    r = gemini_raw(mock_url, {"contents": [user(f"hi {tag}")]}, model="mock-gzip", action=action, query=query)
    if not stream:
        assert r.headers.get("content-encoding") == "gzip"
        assert json.loads(gzip.decompress(r.body))["candidates"][0]["content"]["parts"] == [{"text": f"echo: hi {tag}"}]
    else:
        assert "content-encoding" not in r.headers
        g.check_gemini_stream(r.body)


@pytest.mark.parametrize("model", ["mock-drip", "mock-endless-line"])
def test_gemini_notices_its_reader_leaving(mock, mock_url, tag, model):
    conn = http.client.HTTPConnection("127.0.0.1", int(mock_url.rsplit(":", 1)[1]), timeout=10)
    try:
        conn.request("POST", f"/gemini/v1beta/models/{model}:streamGenerateContent?alt=sse",
                     body=json.dumps({"contents": [user(f"hi {tag}")]}), headers={"Content-Type": "application/json", **GEMINI_KEY_HEADER})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("content-type", "").startswith("text/event-stream")
        first = resp.read1(1 << 16)
        assert first.startswith(b'data: {"candidates"' if model == "mock-drip" else b'data: {"x":"'), first[:80]
    finally:
        conn.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not mock.one(tag)["client_gone"]:
        time.sleep(0.05)
    assert mock.one(tag)["client_gone"], "the mock must stop when its reader leaves"


# ---- Bedrock: botocore (the core of the AWS SDK for Python) against the mock ----------------------

import datetime  # noqa: E402
from unittest import mock as umock  # noqa: E402
from urllib.parse import quote, urlsplit  # noqa: E402

import botocore.session  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.eventstream import EventStreamBuffer  # noqa: E402
from botocore.exceptions import ClientError, EventStreamError  # noqa: E402

import mock_bedrock  # noqa: E402
import mock_cohere  # noqa: E402

BR = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
AWS_SECRET = g.AWS_SECRETS["AWS_SECRET_ACCESS_KEY"]
AWS_TOKEN = g.AWS_SECRETS["AWS_SESSION_TOKEN"]
BR_TOOLS = {"tools": [{"toolSpec": {"name": "get_weather", "description": g.WEATHER_DESC, "inputSchema": {"json": g.WEATHER_PARAMS}}}]}


def bedrock_client(mock_url: str, **creds):
    kw = dict(aws_access_key_id=g.AWS_ACCESS_KEY_ID, aws_secret_access_key=AWS_SECRET, aws_session_token=AWS_TOKEN)
    kw.update(creds)
    region = kw.pop("region", g.AWS_REGION)
    return botocore.session.get_session().create_client(
        "bedrock-runtime", region_name=region, endpoint_url=f"{mock_url}/bedrock",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=30, connect_timeout=5), **kw)


def signed_raw(mock_url: str, body, model: str = BR, stream: bool = False, secret: str = AWS_SECRET, region: str = g.AWS_REGION,
               key_id: str = g.AWS_ACCESS_KEY_ID, token: str | None = AWS_TOKEN, when: datetime.datetime | None = None,
               send_body: bytes | None = None) -> g.Raw:
    """One request signed by botocore's SigV4Auth, sent as raw HTTP (`send_body`: different bytes than signed)."""
    url = f"{mock_url}/bedrock/model/{quote(model, safe='')}/converse" + ("-stream" if stream else "")
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = AWSRequest(method="POST", url=url, data=data, headers={"Content-Type": "application/json"})
    with umock.patch("botocore.auth.get_current_datetime", return_value=when or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)):
        SigV4Auth(Credentials(key_id, secret, token), "bedrock", region).add_auth(req)
    return g.raw_request(mock_url, "POST", urlsplit(url).path, send_body if send_body is not None else data, dict(req.headers.items()))


def br_user(text: str) -> dict:
    return {"role": "user", "content": [{"text": text}]}


def converse(c, stream: bool, **kw) -> dict:
    """converse / converse_stream, the stream folded into a Converse-like answer (plus the raw events)."""
    if not stream:
        return c.converse(**kw)
    events = list(c.converse_stream(**kw)["stream"])
    blocks: dict[int, dict] = {}
    out: dict = {"events": events}
    for ev in events:
        (kind, body), = ev.items()
        if kind == "contentBlockStart":
            blocks[body["contentBlockIndex"]] = {"toolUse": dict(body["start"]["toolUse"], input="")}
        elif kind == "contentBlockDelta":
            d, b = body["delta"], blocks.setdefault(body["contentBlockIndex"], {})
            if "text" in d:
                b["text"] = b.get("text", "") + d["text"]
            elif "toolUse" in d:
                b["toolUse"]["input"] += d["toolUse"]["input"]
            elif "reasoningContent" in d:
                rt = b.setdefault("reasoningContent", {"reasoningText": {"text": ""}})["reasoningText"]
                rt["text"] += d["reasoningContent"].get("text", "")
                if "signature" in d["reasoningContent"]:
                    rt["signature"] = d["reasoningContent"]["signature"]
        elif kind == "messageStop":
            out["stopReason"] = body["stopReason"]
        elif kind == "metadata":
            out["usage"] = body["usage"]
    for b in blocks.values():
        if "toolUse" in b:
            b["toolUse"]["input"] = json.loads(b["toolUse"]["input"])
    out["output"] = {"message": {"role": "assistant", "content": [blocks[i] for i in sorted(blocks)]}}
    return out


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_bedrock_text_tools_thinking(mock_url, mock, tag, stream):
    c = bedrock_client(mock_url)
    r = converse(c, stream, modelId=BR, system=[{"text": "sys"}], messages=[br_user(f"hi {tag}")],
                 inferenceConfig={"maxTokens": 100, "temperature": 0.5})
    assert r["output"]["message"]["content"] == [{"text": f"echo: hi {tag}"}] and r["stopReason"] == "end_turn"
    assert r["usage"] == mock_bedrock.usage(mock_bedrock.BEDROCK_USAGE["outputTokens"])
    req = mock.one(tag)
    assert req["path"] == "/bedrock/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse" + ("-stream" if stream else "")
    assert req["issued"]["auth"] == "sigv4" and req["issued"]["sigv4"]["verified"]
    assert req["issued"]["sigv4"]["canonical_uri"].endswith("v1%253A0/converse" + ("-stream" if stream else ""))

    msgs = [br_user(f"weather? {tag}")]
    r1 = converse(c, stream, modelId=BR, messages=msgs, toolConfig={**BR_TOOLS, "toolChoice": {"any": {}}})
    assert r1["stopReason"] == "tool_use"
    text, use = r1["output"]["message"]["content"]
    assert text == {"text": TOOL_PREAMBLE} and (use["toolUse"]["name"], use["toolUse"]["input"]) == ("get_weather", TOOL_ARGS)
    assert use["toolUse"]["toolUseId"] == mock.with_nonce(tag)[-1]["issued"]["tool_use_ids"][0]
    msgs += [{"role": "assistant", "content": [text, {"toolUse": use["toolUse"]}]},
             {"role": "user", "content": [{"toolResult": {"toolUseId": use["toolUse"]["toolUseId"], "content": [{"text": TOOL_RESULT}]}}]}]
    r2 = converse(c, stream, modelId=BR, messages=msgs, toolConfig=BR_TOOLS)
    assert r2["output"]["message"]["content"] == [{"text": f"tool result: {TOOL_RESULT}"}]

    q = f"think {tag}"
    think = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    r3 = converse(c, stream, modelId=BR, messages=[br_user(q)], inferenceConfig={"maxTokens": 2048}, additionalModelRequestFields=think)
    rc, txt = r3["output"]["message"]["content"]
    issued = mock.with_nonce(tag)[-1]["issued"]
    assert rc == {"reasoningContent": {"reasoningText": {"text": mock_bedrock.THINKING_PREFIX + q, "signature": issued["signature"]}}}
    assert txt == {"text": f"echo: {q}"}
    assert r3["usage"]["outputTokens"] == mock_bedrock.BEDROCK_USAGE["outputTokens"] + REASONING_TOKENS
    history = [br_user(q), {"role": "assistant", "content": [rc, txt]}, br_user(f"again {tag}")]
    assert converse(c, stream, modelId=BR, messages=history, inferenceConfig={"maxTokens": 2048},
                    additionalModelRequestFields=think)["output"]["message"]["content"][-1] == {"text": f"echo: again {tag}"}
    history[1]["content"][0]["reasoningContent"]["reasoningText"]["signature"] = g.tamper(issued["signature"])
    with pytest.raises(ClientError) as ei:
        converse(c, stream, modelId=BR, messages=history, inferenceConfig={"maxTokens": 2048}, additionalModelRequestFields=think)
    assert ei.value.response["Error"]["Code"] == "ValidationException" and "Invalid `signature`" in str(ei.value)

    r = converse(c, stream, modelId="amazon.nova-pro-v1:0", messages=[{"role": "user", "content": [
        {"text": f"img {tag}"}, {"image": {"format": "png", "source": {"bytes": base64.b64decode(PNG_B64)}}}]}])
    assert r["output"]["message"]["content"] == [{"text": "images: base64:image/png"}]


def test_bedrock_stream_is_a_real_event_stream(mock_url, tag):
    """The bytes: AWS event-stream messages (both CRCs, string headers), `p` padding on every event, no
    contentBlockStart for text, metadata (usage) after messageStop; decoded by botocore's own parser too."""
    r = signed_raw(mock_url, {"messages": [br_user(f"weather? {tag}")], "toolConfig": BR_TOOLS}, stream=True)
    assert r.status == 200 and r.headers["content-type"] == "application/vnd.amazon.eventstream"
    msgs = mock_bedrock.es_decode(r.body)
    buf = EventStreamBuffer()
    buf.add_data(r.body)
    parsed = list(buf)
    assert len(parsed) == len(msgs) and all(p.headers[":message-type"] == "event" for p in parsed)
    kinds = [h[":event-type"] for h, _ in msgs]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"], kinds
    assert kinds.count("contentBlockStart") == 1, "only the toolUse block starts with contentBlockStart"
    payloads = [json.loads(p) for _, p in msgs]
    assert all(isinstance(p.get("p"), str) and mock_bedrock.PADDING.startswith(p["p"]) for p in payloads)
    assert len({len(p["p"]) for p in payloads}) > 1, "random-length padding"
    assert all(h[":content-type"] == "application/json" for h, _ in msgs)
    assert payloads[-1]["usage"]["totalTokens"] == 32 and payloads[-2]["stopReason"] == "tool_use"


def test_bedrock_sigv4_is_verified(mock_url, mock, tag):
    ok = {"messages": [br_user(f"sig {tag}")]}
    assert signed_raw(mock_url, ok).status == 200

    def refused(r: g.Raw, code: str, status: int = 403) -> str:
        assert r.status == status and r.headers["x-amzn-errortype"].split(":")[0] == code, (r.status, r.headers, r.body[:300])
        body = r.json()
        return body.get("message") or body.get("Message")

    msg = refused(signed_raw(mock_url, ok, secret="wrong-secret"), "InvalidSignatureException")
    assert msg.startswith("The request signature we calculated does not match the signature you provided.")
    assert "/bedrock/model/us.anthropic.claude-3-7-sonnet-20250219-v1%253A0/converse" in msg, "the canonical string it expected"
    refused(signed_raw(mock_url, ok, send_body=json.dumps({"messages": [br_user("changed")]}).encode()), "InvalidSignatureException")
    assert refused(signed_raw(mock_url, ok, key_id="AKIAUNKNOWN000000000"), "UnrecognizedClientException") == \
        "The security token included in the request is invalid."
    refused(signed_raw(mock_url, ok, token=None), "UnrecognizedClientException")
    refused(signed_raw(mock_url, ok, token="other-token"), "UnrecognizedClientException")
    assert "valid region" in refused(signed_raw(mock_url, ok, region="us-east-1"), "InvalidSignatureException")
    old = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=20)
    assert refused(signed_raw(mock_url, ok, when=old), "InvalidSignatureException").startswith("Signature expired")
    assert refused(g.raw_request(mock_url, "POST", f"/bedrock/model/{quote(BR, safe='')}/converse", ok), "MissingAuthenticationTokenException") == \
        "Missing Authentication Token"
    with pytest.raises(ClientError) as ei:
        bedrock_client(mock_url, aws_secret_access_key="wrong").converse(modelId=BR, messages=[br_user("x")])
    assert ei.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_bedrock_api_key(mock_url, mock, tag):
    """A Bedrock API key (AWS_BEARER_TOKEN_BEDROCK) as a bearer token, as botocore sends it (botocore itself only
    does so over HTTPS, so this is raw HTTP): accepted; a wrong one is refused with Bedrock's capital-M `Message`."""
    path = f"/bedrock/model/{quote(BR, safe='')}/converse"
    r = g.raw_request(mock_url, "POST", path, {"messages": [br_user(f"key {tag}")]},
                      {"Authorization": f"Bearer {g.AWS_SECRETS['AWS_BEARER_TOKEN_BEDROCK']}"})
    assert r.status == 200 and r.json()["output"]["message"]["content"] == [{"text": f"echo: key {tag}"}]
    assert mock.one(tag)["issued"]["auth"] == "bearer"
    r = g.raw_request(mock_url, "POST", path, {"messages": [br_user("x")]}, {"Authorization": "Bearer ABSK-wrong"})
    assert r.status == 403 and r.json() == {"Message": "Authentication failed: Please make sure your API Key is valid."}


_TU = {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"location": "Paris"}}}
_TR = {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "r"}]}}
_IMG = {"image": {"format": "png", "source": {"bytes": PNG_B64}}}
_THINK = {"thinking": {"type": "enabled", "budget_tokens": 1024}}


def _asst(*blocks) -> dict:
    return {"role": "assistant", "content": list(blocks)}


BEDROCK_BAD = {
    "unknown-field": ({"messages": [br_user("x")], "temperature": 0.5}, "Unknown member 'temperature'"),
    "model-in-body": ({"modelId": BR, "messages": [br_user("x")]}, "Unknown member 'modelId'"),
    "nested-unknown": ({"messages": [br_user("x")], "inferenceConfig": {"max_tokens": 5}}, "Unknown member 'max_tokens'"),
    "bad-role": ({"messages": [{"role": "tool", "content": [{"text": "x"}]}]}, "enum value set"),
    "two-members": ({"messages": [{"role": "user", "content": [{"text": "x", **_IMG}]}]}, "exactly one"),
    "assistant-first": ({"messages": [_asst({"text": "a"}), br_user("x")]}, "must start with a user message"),
    "no-alternation": ({"messages": [br_user("x"), br_user("y")]}, "must alternate between user and assistant roles"),
    "empty-content": ({"messages": [{"role": "user", "content": []}]}, "is empty"),
    "blank-text": ({"messages": [br_user(" ")]}, "is blank"),
    "temperature-range": ({"messages": [br_user("x")], "inferenceConfig": {"temperature": 1.5}}, "less than or equal to 1"),
    "tool-name": ({"messages": [br_user("x")], "toolConfig": {"tools": [{"toolSpec": {"name": "get weather", "inputSchema": {"json": {}}}}]}},
                  "regular expression"),
    "no-toolConfig": ({"messages": [br_user("x"), _asst(_TU), {"role": "user", "content": [_TR]}]}, "toolConfig field must be defined"),
    "missing-result": ({"messages": [br_user("x"), _asst(_TU), br_user("y")], "toolConfig": BR_TOOLS},
                       "Expected toolResult blocks at messages.2.content for the following Ids: tooluse_1"),
    "orphan-result": ({"messages": [br_user("x"), _asst({"text": "a"}), {"role": "user", "content": [_TR]}], "toolConfig": BR_TOOLS},
                      "exceeds the number of toolUse blocks"),
    "text-before-result": ({"messages": [br_user("x"), _asst(_TU), {"role": "user", "content": [{"text": "t"}, _TR]}], "toolConfig": BR_TOOLS},
                           "Did not find 1 `tool_result` block(s) at the beginning"),
    "image-format": ({"messages": [{"role": "user", "content": [{"image": {"format": "bmp", "source": {"bytes": PNG_B64}}}]}]}, "enum value set"),
    "image-data-uri": ({"messages": [{"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": f"data:image/png;base64,{PNG_B64}"}}}]}]},
                       "base64"),
    "image-not-jpeg": ({"messages": [{"role": "user", "content": [{"image": {"format": "jpeg", "source": {"bytes": PNG_B64}}}]}]}, "not a jpeg"),
    "image-from-assistant": ({"messages": [br_user("x"), _asst(_IMG), br_user("y")]}, "only allowed in user messages"),
    "extraneous-field": ({"messages": [br_user("x")], "additionalModelRequestFields": {"reasoning_effort": "low"}},
                         "extraneous key [reasoning_effort] is not permitted"),
    "budget-too-small": ({"messages": [br_user("x")], "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 512}}},
                         "greater than or equal to 1024"),
    "budget-over-max": ({"messages": [br_user("x")], "inferenceConfig": {"maxTokens": 1024}, "additionalModelRequestFields": _THINK},
                        "`max_tokens` must be greater than `thinking.budget_tokens`"),
    "thinking-temperature": ({"messages": [br_user("x")], "inferenceConfig": {"temperature": 0.5}, "additionalModelRequestFields": _THINK},
                             "temperature"),
    "thinking-forced-tool": ({"messages": [br_user("x")], "toolConfig": {**BR_TOOLS, "toolChoice": {"any": {}}},
                              "additionalModelRequestFields": _THINK}, "tool_choice forces tool use"),
    "reasoning-no-signature": ({"messages": [br_user("x"), _asst({"reasoningContent": {"reasoningText": {"text": "t"}}}, {"text": "a"}),
                                             br_user("y")]}, "thinking.signature: Field required"),
    "reasoning-forged": ({"messages": [br_user("x"), _asst({"reasoningContent": {"reasoningText": {"text": "t", "signature": "Zm9yZ2Vk"}}},
                                                           {"text": "a"}), br_user("y")]}, "Invalid `signature`"),
}


@pytest.mark.parametrize("case", list(BEDROCK_BAD))
def test_bedrock_validation(mock_url, case):
    body, expected = BEDROCK_BAD[case]
    r = signed_raw(mock_url, body)
    assert r.status == 400 and r.headers["x-amzn-errortype"].startswith("ValidationException:"), (r.status, r.headers, r.body[:300])
    assert expected in r.json()["message"], r.json()


def test_bedrock_validation_accepts_and_models(mock_url, tag):
    ok = {"messages": [br_user(f"a {tag}"), _asst({"text": "b"}, _TU), {"role": "user", "content": [
              {"toolResult": {"toolUseId": "tooluse_1", "content": [{"json": {"t": 22}}], "status": "error"}}, {"cachePoint": {"type": "default"}},
              {"text": "and?"}]}],
          "system": [{"text": "s"}, {"cachePoint": {"type": "default"}}], "toolConfig": {**BR_TOOLS, "toolChoice": {"auto": {}}},
          "inferenceConfig": {"maxTokens": 50, "topP": 0.9, "stopSequences": ["Z"]}, "additionalModelRequestFields": {"top_k": 5}}
    r = signed_raw(mock_url, ok)
    assert r.status == 200, r.body[:400]
    assert r.json()["output"]["message"]["content"] == [{"text": 'tool result: {"t": 22}'}]
    r = signed_raw(mock_url, {"messages": [br_user("x")]}, model="anthropic.claude-nope-v1:0")
    assert r.status == 400 and r.json()["message"] == "The provided model identifier is invalid."


@pytest.mark.parametrize("model,code,status", [
    ("mock-fail-500", "InternalServerException", 500), ("mock-fail-429", "ThrottlingException", 429),
    ("mock-fail-400", "ValidationException", 400), ("mock-overloaded", "ServiceUnavailableException", 503),
])
def test_bedrock_failure_triggers(mock_url, model, code, status):
    with pytest.raises(ClientError) as ei:
        bedrock_client(mock_url).converse(modelId=model, messages=[br_user("x")])
    assert (ei.value.response["Error"]["Code"], ei.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (code, status)


@pytest.mark.parametrize("model,code", [("mock-stream-error", "throttlingException"),
                                        ("mock-stream-model-error", "modelStreamErrorException")])
def test_bedrock_in_stream_exceptions(mock_url, model, code):
    events = []
    with pytest.raises(EventStreamError) as ei:
        for ev in bedrock_client(mock_url).converse_stream(modelId=model, messages=[br_user("x")])["stream"]:
            events.append(ev)
    assert ei.value.response["Error"]["Code"] == code
    assert events == [{"messageStart": {"role": "assistant"}}, {"contentBlockDelta": {"delta": {"text": "partial "}, "contentBlockIndex": 0}}]


# ---- Cohere: the `cohere` SDK against the mock -------------------------------------------------------

CO = "command-a-03-2025"
CO_TOOL = {"type": "function", "function": {"name": "get_weather", "description": g.WEATHER_DESC, "parameters": g.WEATHER_PARAMS}}


def cohere_client(mock_url: str, key: str | None = None):
    import cohere
    return cohere.ClientV2(api_key=key or g.UPSTREAM_KEYS["cohere"], base_url=f"{mock_url}/cohere", timeout=30)


def cohere_chat(c, stream: bool, **kw) -> dict:
    """chat / chat_stream folded into {text, thinking, tool_plan, tool_calls, finish_reason, usage, events}."""
    if not stream:
        r = c.chat(**kw)
        m = r.message
        return {"text": "".join(x.text for x in m.content or [] if x.type == "text"),
                "thinking": "".join(x.thinking for x in m.content or [] if x.type == "thinking") or None,
                "tool_plan": m.tool_plan, "finish_reason": r.finish_reason, "usage": r.usage.dict(), "id": r.id,
                "tool_calls": [{"id": t.id, "name": t.function.name, "arguments": t.function.arguments} for t in m.tool_calls or []]}
    out = {"text": "", "thinking": None, "tool_plan": None, "tool_calls": [], "events": []}
    kinds: dict[int, str] = {}
    for ev in c.chat_stream(**kw):
        out["events"].append(ev)
        if ev.type == "message-start":
            out["id"] = ev.id
        elif ev.type == "content-start":
            kinds[ev.index] = ev.delta.message.content.type
        elif ev.type == "content-delta":
            cnt = ev.delta.message.content
            if kinds[ev.index] == "thinking":
                out["thinking"] = (out["thinking"] or "") + cnt.thinking
            else:
                out["text"] += cnt.text
        elif ev.type == "tool-plan-delta":
            out["tool_plan"] = (out["tool_plan"] or "") + ev.delta.message.tool_plan
        elif ev.type == "tool-call-start":
            tc = ev.delta.message.tool_calls
            out["tool_calls"].append({"id": tc.id, "name": tc.function.name, "arguments": tc.function.arguments or ""})
        elif ev.type == "tool-call-delta":
            out["tool_calls"][-1]["arguments"] += ev.delta.message.tool_calls.function.arguments
        elif ev.type == "message-end":
            out["finish_reason"] = ev.delta.finish_reason
            out["usage"] = ev.delta.usage.dict() if ev.delta.usage else None
            out["error"] = ev.delta.error
    return out


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_cohere_text_tools_thinking(mock_url, mock, tag, stream):
    c = cohere_client(mock_url)
    r = cohere_chat(c, stream, model=CO, messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": f"hi {tag}"}])
    assert (r["text"], r["finish_reason"]) == (f"echo: hi {tag}", "COMPLETE")
    u = mock_cohere.COHERE_USAGE
    assert r["usage"]["tokens"] == {"input_tokens": u["input_tokens"], "output_tokens": u["output_tokens"]}
    assert r["usage"]["billed_units"]["input_tokens"] == u["billed_input_tokens"] != u["input_tokens"]
    req = mock.one(tag)
    assert req["path"] == "/cohere/v2/chat" and req["headers"]["authorization"] == f"Bearer {g.UPSTREAM_KEYS['cohere']}"
    assert bool(req["body"].get("stream")) is stream

    msgs = [{"role": "user", "content": f"weather? {tag}"}]
    r1 = cohere_chat(c, stream, model=CO, messages=msgs, tools=[CO_TOOL], tool_choice="REQUIRED")
    issued = mock.with_nonce(tag)[-1]["issued"]
    assert r1["finish_reason"] == "TOOL_CALL" and r1["tool_plan"] == issued["tool_plan"]
    (call,) = r1["tool_calls"]
    assert (call["id"], call["name"], json.loads(call["arguments"])) == (issued["tool_call_ids"][0], "get_weather", TOOL_ARGS)
    msgs += [{"role": "assistant", "tool_plan": r1["tool_plan"], "tool_calls": [
        {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": TOOL_RESULT}]
    r2 = cohere_chat(c, stream, model=CO, messages=msgs, tools=[CO_TOOL])
    assert (r2["text"], r2["finish_reason"]) == (f"tool result: {TOOL_RESULT}", "COMPLETE")

    schema = {"type": "object", "properties": {"city": {"type": "string"}, "ok": {"type": "boolean"}}, "required": ["city"]}
    r = cohere_chat(c, stream, model=CO, messages=[{"role": "user", "content": f"json {tag}"}],
                    response_format={"type": "json_object", "json_schema": schema})
    assert json.loads(r["text"]) == {"city": f"json {tag}", "ok": True}
    r = cohere_chat(c, stream, model=CO, messages=[{"role": "user", "content": f"think {tag}"}], thinking={"type": "enabled", "token_budget": 500})
    assert (r["thinking"], r["text"]) == (mock_cohere.THINKING_PREFIX + f"think {tag}", f"echo: think {tag}")
    r = cohere_chat(c, stream, model=CO, messages=[{"role": "user", "content": [
        {"type": "text", "text": f"img {tag}"}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}]}])
    assert r["text"] == "images: base64:image/png"


def test_cohere_stream_is_sse_with_event_names(mock_url, tag):
    r = g.raw_request(mock_url, "POST", "/cohere/v2/chat", {"model": CO, "stream": True, "messages": [{"role": "user", "content": f"hi {tag}"}],
                                                            "tools": [CO_TOOL]}, {"Authorization": f"Bearer {g.UPSTREAM_KEYS['cohere']}"})
    assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
    events, clean = g.parse_sse(r.body)
    assert clean and all(name == json.loads(d)["type"] for name, d in events), "every event is named after its type"
    names = [n for n, _ in events]
    assert names[0] == "message-start" and names[-1] == "message-end" and "[DONE]" not in r.body.decode()
    assert names[1:-1] == ["tool-plan-delta"] * 3 + ["tool-call-start"] + ["tool-call-delta"] * 3 + ["tool-call-end"], names
    end = json.loads(events[-1][1])["delta"]
    assert end["finish_reason"] == "TOOL_CALL" and end["usage"]["tokens"]["input_tokens"] == mock_cohere.COHERE_USAGE["input_tokens"]


def test_cohere_auth(mock_url):
    from cohere.errors import UnauthorizedError
    with pytest.raises(UnauthorizedError) as ei:
        cohere_client(mock_url, key="wrong").chat(model=CO, messages=[{"role": "user", "content": "x"}])
    assert ei.value.body == {"message": "invalid api token"}
    r = g.raw_request(mock_url, "POST", "/cohere/v2/chat", {"model": CO, "messages": [{"role": "user", "content": "x"}]})
    assert r.status == 401 and r.json() == {"message": "no api key supplied"}


_CO_USER = {"role": "user", "content": "x"}
_CO_CALL = {"role": "assistant", "tool_plan": "p", "tool_calls": [{"id": "c1", "type": "function",
                                                                  "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}}]}
COHERE_BAD = {
    "unknown-field": ({"messages": [_CO_USER], "n": 2}, 422, "unknown field: parameter 'n' is not a valid field"),
    "unknown-tool-field": ({"messages": [_CO_USER], "tools": [{"type": "function", "function": {**CO_TOOL["function"], "strict": True}}]},
                           422, "parameter 'strict' is not a valid field"),
    "unknown-message-field": ({"messages": [{**_CO_USER, "name": "bob"}]}, 422, "parameter 'name'"),
    "no-messages": ({"messages": []}, 400, "messages must be a non-empty list"),
    "bad-role": ({"messages": [{"role": "developer", "content": "x"}]}, 400, "role must be one of"),
    "orphan-tool": ({"messages": [_CO_USER, {"role": "tool", "tool_call_id": "c1", "content": "r"}]}, 400, "does not match any tool call"),
    "unanswered-call": ({"messages": [_CO_USER, _CO_CALL, _CO_USER], "tools": [CO_TOOL]}, 400, "have no tool results"),
    "wrong-call-id": ({"messages": [_CO_USER, _CO_CALL, {"role": "tool", "tool_call_id": "c2", "content": "r"}], "tools": [CO_TOOL]}, 400,
                      "does not match any tool call"),
    "arguments-object": ({"messages": [_CO_USER, {**_CO_CALL, "tool_calls": [{"id": "c1", "type": "function",
                          "function": {"name": "get_weather", "arguments": {"location": "Paris"}}}]},
                          {"role": "tool", "tool_call_id": "c1", "content": "r"}]}, 400, "arguments must be a string"),
    "tool_choice-auto": ({"messages": [_CO_USER], "tools": [CO_TOOL], "tool_choice": "AUTO"}, 400, "tool_choice must be one of REQUIRED, NONE"),
    "tool_choice-named": ({"messages": [_CO_USER], "tools": [CO_TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
                          400, "tool_choice must be one of"),
    "tool_choice-without-tools": ({"messages": [_CO_USER], "tool_choice": "REQUIRED"}, 400, "requires tools"),
    "response_format-with-tools": ({"messages": [_CO_USER], "tools": [CO_TOOL], "response_format": {"type": "json_object"}}, 400,
                                   "not supported with tools"),
    "json_schema-with-text": ({"messages": [_CO_USER], "response_format": {"type": "text", "json_schema": {}}}, 400, "must not be specified"),
    "openai-response_format": ({"messages": [_CO_USER], "response_format": {"type": "json_schema", "json_schema": {}}}, 400, "response_format.type"),
    "p-range": ({"messages": [_CO_USER], "p": 1.0}, 400, "p must be between"),
    "six-stops": ({"messages": [_CO_USER], "stop_sequences": list("abcdef")}, 400, "at most 5"),
    "thinking-budget": ({"messages": [_CO_USER], "thinking": {"type": "enabled", "token_budget": 0}}, 400, "token_budget"),
    "image-not-url": ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "cat.png"}}]}]}, 400, "data URI"),
}


@pytest.mark.parametrize("case", list(COHERE_BAD))
def test_cohere_validation(mock_url, case):
    body, status, expected = COHERE_BAD[case]
    r = g.raw_request(mock_url, "POST", "/cohere/v2/chat", {"model": CO, **body}, {"Authorization": f"Bearer {g.UPSTREAM_KEYS['cohere']}"})
    assert r.status == status and expected in r.json()["message"], (r.status, r.body[:300])
    r = g.raw_request(mock_url, "POST", "/cohere/v2/chat", {"model": "command-nope", "messages": [_CO_USER]},
                      {"Authorization": f"Bearer {g.UPSTREAM_KEYS['cohere']}"})
    assert r.status == 404 and "not found" in r.json()["message"]


@pytest.mark.parametrize("model,status", [("mock-fail-500", 500), ("mock-fail-429", 429), ("mock-fail-400", 400), ("mock-overloaded", 503)])
def test_cohere_failure_triggers(mock_url, model, status):
    from cohere.core.api_error import ApiError
    with pytest.raises(ApiError) as ei:
        cohere_client(mock_url).chat(model=model, messages=[_CO_USER])
    assert ei.value.status_code == status and ei.value.body["message"]


def test_cohere_stream_error(mock_url):
    r = cohere_chat(cohere_client(mock_url), True, model="mock-stream-error", messages=[_CO_USER])
    assert (r["text"], r["finish_reason"]) == ("partial ", "ERROR") and r["error"]


# ---- the OpenAI Responses API (mock_responses.py): the openai SDK's `responses` against the mock ---------

import gwresponses as gr  # noqa: E402

RSP_TOOL = {"type": "function", "name": "get_weather", "description": g.WEATHER_DESC, "parameters": g.WEATHER_PARAMS,
            "strict": False}
RSP_AUTH = {"Authorization": f"Bearer {g.UPSTREAM_KEYS['openai']}"}


def _rsp_raw(mock_url: str, body: dict) -> g.Raw:
    return g.raw_request(mock_url, "POST", "/openai/v1/responses", body, RSP_AUTH)


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_responses_text_and_usage(direct_openai, own_recorder, mock, tag, stream):
    q = f"hi {tag}"
    r = gr.create(direct_openai(), own_recorder, stream=stream, model="gpt-4o-mini", instructions="sys", input=q,
                  temperature=0.5, max_output_tokens=100, text={"verbosity": "low"})
    assert r.text == f"echo: {q}"
    gr.check_usage(r.usage, "openai")
    issued = mock.one(tag)["issued"]
    assert r.response["id"] == issued["id"] and r.output == issued["output"]
    (msg,) = r.output
    assert msg["id"].startswith("msg_") and msg["status"] == "completed"
    assert msg["content"] == [{"type": "output_text", "annotations": [], "logprobs": [], "text": f"echo: {q}"}]
    resp = r.response
    assert (resp["instructions"], resp["temperature"], resp["max_output_tokens"], resp["store"], resp["text"]) == \
        ("sys", 0.5, 100, True, {"format": {"type": "text"}, "verbosity": "low"})
    if stream:
        assert r.sdk.output_text == f"echo: {q}"
        deltas = [e for e in r.events if e["type"] == "response.output_text.delta"]
        assert len(deltas) == 3 and all(isinstance(e.get("obfuscation"), str) for e in deltas)
        assert mock.one(tag)["body"]["stream"] is True
    # include_obfuscation: false drops the padding
    r = gr.create(direct_openai(), own_recorder, stream=True, model="gpt-4o-mini", input=f"again {tag}",
                  stream_options={"include_obfuscation": False})
    assert all("obfuscation" not in e for e in r.events)


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_responses_tools_round_trip(direct_openai, own_recorder, mock, tag, stream):
    c = direct_openai()
    history: list = [{"role": "user", "content": f"weather? {tag}"}]
    r1 = gr.create(c, own_recorder, stream=stream, model="gpt-4o-mini", input=history, tools=[RSP_TOOL],
                   tool_choice="required", parallel_tool_calls=False)
    (call,) = r1.calls
    assert r1.output == [call] and r1.text == ""
    assert call["call_id"] == mock.one(tag)["issued"]["call_ids"][0]
    assert (call["name"], json.loads(call["arguments"]), call["id"][:3]) == ("get_weather", TOOL_ARGS, "fc_")
    history += r1.sdk.output if stream else r1.output  # as the SDK's docs do it: the output items go back as they are
    with pytest.raises(openai.BadRequestError) as ei:  # a call without its output
        c.responses.create(model="gpt-4o-mini", input=history, tools=[RSP_TOOL])
    assert ei.value.body["message"] == f"No tool output found for function call {call['call_id']}."
    history.append({"type": "function_call_output", "call_id": call["call_id"], "output": TOOL_RESULT})
    r2 = gr.create(c, own_recorder, stream=stream, model="gpt-4o-mini", input=history, tools=[RSP_TOOL])
    assert r2.text == f"tool result: {TOOL_RESULT}"
    with pytest.raises(openai.BadRequestError) as ei:  # an output without its call
        c.responses.create(model="gpt-4o-mini", input=[history[0], history[-1]], tools=[RSP_TOOL])
    assert ei.value.body["message"] == f"No tool call found for function call output with call_id {call['call_id']}."
    # a named function; tool_choice none answers with text
    r3 = gr.create(c, own_recorder, stream=False, model="gpt-4o-mini", input=f"x {tag}", tool_choice={"type": "function", "name": "get_weather"},
                   tools=[RSP_TOOL, dict(RSP_TOOL, name="other")])
    assert [x["name"] for x in r3.calls] == ["get_weather"]
    r4 = gr.create(c, own_recorder, stream=False, model="gpt-4o-mini", input=f"y {tag}", tool_choice="none", tools=[RSP_TOOL])
    assert r4.calls == [] and r4.text == f"echo: y {tag}"


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_responses_reasoning_round_trip(direct_openai, own_recorder, mock, tag, stream):
    c = direct_openai()
    q = f"think {tag}"
    kw = dict(model="o4-mini", reasoning={"effort": "low", "summary": "auto"}, store=False, include=["reasoning.encrypted_content"])
    r1 = gr.create(c, own_recorder, stream=stream, input=q, **kw)
    assert [it["type"] for it in r1.output] == ["reasoning", "message"]
    rs = r1.output[0]
    issued = mock.one(tag)["issued"]["reasoning"]
    assert rs["summary"] == [{"type": "summary_text", "text": f"Reasoning about: {q}"}] == issued["summary"]
    enc = rs["encrypted_content"]
    assert enc == issued["encrypted_content"] and "+" in enc and "/" in enc and enc.endswith("=")
    assert r1.text == f"echo: {q}"
    gr.check_usage(r1.usage, "openai", reasoning=True)
    history = [{"role": "user", "content": q}, *r1.output, {"role": "user", "content": f"again {tag}"}]
    r2 = gr.create(c, own_recorder, stream=stream, input=history, **kw)  # stateless: verified through encrypted_content
    assert r2.text == f"echo: again {tag}"
    # the summary alone (no reasoning.summary asked): an empty summary list
    r = gr.create(c, own_recorder, stream=False, model="o4-mini", input=f"quiet {tag}")
    assert r.output[0]["summary"] == [] and r.output[0]["type"] == "reasoning"

    def refused(items: list, status: int = 400) -> dict:
        with pytest.raises(openai.APIStatusError) as ei:
            c.responses.create(input=items, **kw)
        assert ei.value.status_code == status, ei.value
        return ei.value.body

    tampered = dict(rs, encrypted_content=g.tamper(enc))
    body = refused([history[0], tampered, *history[2:]])
    assert body["code"] == "invalid_encrypted_content" and rs["id"] in body["message"]
    body = refused([history[0], {k: v for k, v in rs.items() if k != "encrypted_content"}, *history[2:]], 404)
    assert "Items are not persisted when `store` is set to false" in body["message"]
    body = refused([history[0], rs, history[-1]])  # without the message it came with
    assert body["message"] == f"Item '{rs['id']}' of type 'reasoning' was provided without its required following item."


def test_responses_previous_response_id_and_item_reference(direct_openai, own_recorder, mock, tag):
    c = direct_openai()
    r1 = gr.create(c, own_recorder, stream=False, model="gpt-4o-mini", input=f"first {tag}")
    r2 = gr.create(c, own_recorder, stream=False, model="gpt-4o-mini", input=f"second {tag}", previous_response_id=r1.response["id"])
    assert r2.text == f"echo: second {tag}" and r2.response["previous_response_id"] == r1.response["id"]
    ref = [{"type": "item_reference", "id": r1.output[0]["id"]}, {"role": "user", "content": f"third {tag}"}]
    assert gr.create(c, own_recorder, stream=False, model="gpt-4o-mini", input=ref).text == f"echo: third {tag}"
    with pytest.raises(openai.BadRequestError) as ei:
        c.responses.create(model="gpt-4o-mini", input="x", previous_response_id="resp_doesnotexist")
    assert (ei.value.body["code"], ei.value.body["param"]) == ("previous_response_not_found", "previous_response_id")
    unstored = gr.create(c, own_recorder, stream=False, model="gpt-4o-mini", input=f"fourth {tag}", store=False)
    with pytest.raises(openai.BadRequestError):
        c.responses.create(model="gpt-4o-mini", input="x", previous_response_id=unstored.response["id"])
    with pytest.raises(openai.NotFoundError):
        c.responses.create(model="gpt-4o-mini", input=[{"type": "item_reference", "id": unstored.output[0]["id"]},
                                                       {"role": "user", "content": "x"}])
    # a call answered through previous_response_id
    r5 = gr.create(c, own_recorder, stream=False, model="gpt-4o-mini", input=f"call {tag}", tools=[RSP_TOOL])
    r6 = gr.create(c, own_recorder, stream=False, model="gpt-4o-mini", previous_response_id=r5.response["id"], tools=[RSP_TOOL],
                   input=[{"type": "function_call_output", "call_id": r5.calls[0]["call_id"], "output": TOOL_RESULT}])
    assert r6.text == f"tool result: {TOOL_RESULT}"
    with pytest.raises(openai.BadRequestError) as ei:
        c.responses.create(model="gpt-4o-mini", previous_response_id=r5.response["id"], input="ignoring the call")
    assert "No tool output found" in ei.value.body["message"]


def test_responses_structured_output_images_and_other_items(direct_openai, own_recorder, tag):
    c = direct_openai()
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
              "required": ["city", "temp"], "additionalProperties": False}
    r = gr.create(c, own_recorder, stream=False, model="gpt-4o-mini", input=f"w {tag}",
                  text={"format": {"type": "json_schema", "name": "weather", "schema": schema, "strict": True}})
    assert json.loads(r.text) == {"city": f"echo: w {tag}", "temp": 1.5}
    r = gr.create(c, own_recorder, stream=False, model="gpt-4o-mini", input=f"answer in json {tag}", text={"format": {"type": "json_object"}})
    assert json.loads(r.text) == {"echo": f"echo: answer in json {tag}"}
    with pytest.raises(openai.BadRequestError, match="must contain the word 'json'"):
        c.responses.create(model="gpt-4o-mini", input="no such word", text={"format": {"type": "json_object"}})
    r = gr.create(c, own_recorder, stream=False, model="gpt-4o-mini", input=[{"role": "user", "content": [
        {"type": "input_text", "text": f"what? {tag}"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG_B64}", "detail": "auto"},
        {"type": "input_image", "image_url": IMAGE_URL}]}])
    assert r.text == f"images: base64:image/png, url:{IMAGE_URL}"
    ws = {"type": "web_search_call", "id": "ws_0123456789abcdef", "status": "completed",
          "action": {"type": "search", "query": "weather paris"}}
    r = gr.create(c, own_recorder, stream=False, model="gpt-4o-mini", input=[{"role": "user", "content": "search"}, ws,
                                                                           {"role": "user", "content": f"then {tag}"}])
    assert r.text == f"echo: then {tag}"


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_responses_incomplete(direct_openai, own_recorder, tag, stream):
    r = gr.create(direct_openai(), own_recorder, stream=stream, terminal="response.incomplete", model="gpt-4o-mini",
                  input=f"long {tag}", max_output_tokens=16)
    assert r.response["status"] == "incomplete" and r.response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert r.text == "echo" and r.output[0]["status"] == "incomplete" and r.usage["output_tokens"] == 16
    if stream:  # the SDK's helper only completes on response.completed
        with pytest.raises(RuntimeError, match="response.completed"):
            with direct_openai().responses.stream(model="gpt-4o-mini", input="x", max_output_tokens=16) as s:
                s.get_final_response()


RSP_BAD = {  # body, status, param, code, message fragment
    "chat-messages": ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}, 400, "messages", "unknown_parameter", "Unknown parameter: 'messages'."),
    "no-model": ({"input": "x"}, 400, "model", "missing_required_parameter", "Missing required parameter: 'model'."),
    "input-object": ({"model": "gpt-4o-mini", "input": {"role": "user"}}, 400, "input", "invalid_type", "Invalid type for 'input'"),
    "chat-tool": ({"model": "gpt-4o-mini", "input": "x", "tools": [g.WEATHER_TOOL_OA]}, 400, "tools[0].name", "missing_required_parameter", "Missing required parameter: 'tools[0].name'."),
    "tool-unknown-field": ({"model": "gpt-4o-mini", "input": "x", "tools": [dict(RSP_TOOL, input_schema={})]}, 400, "tools[0].input_schema", "unknown_parameter", "Unknown parameter"),
    "max_output_tokens<16": ({"model": "gpt-4o-mini", "input": "x", "max_output_tokens": 10}, 400, "max_output_tokens", "integer_below_min_value", "Expected a value >= 16, but got 10 instead."),
    "reasoning-on-gpt-4o": ({"model": "gpt-4o-mini", "input": "x", "reasoning": {"effort": "low"}}, 400, "reasoning.effort", "unsupported_parameter", "'reasoning.effort' is not supported with this model"),
    "temperature-on-o4": ({"model": "o4-mini", "input": "x", "temperature": 0.5}, 400, "temperature", "unsupported_parameter", "'temperature' is not supported"),
    "fc-id-prefix": ({"model": "gpt-4o-mini", "input": [{"type": "function_call", "id": "call_1", "call_id": "call_1", "name": "f", "arguments": "{}"},
                                                        {"type": "function_call_output", "call_id": "call_1", "output": "r"}]},
                     400, "input[0].id", "invalid_value", "Expected an ID that begins with 'fc'."),
    "empty-call_id": ({"model": "gpt-4o-mini", "input": [{"type": "function_call", "call_id": "", "name": "f", "arguments": "{}"}]},
                      400, "input[0].call_id", "empty_string", "Expected a string with minimum length 1"),
    "arguments-object": ({"model": "gpt-4o-mini", "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]},
                         400, "input[0].arguments", "invalid_type", "expected a string"),
    "user-output_text": ({"model": "gpt-4o-mini", "input": [{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]},
                         400, "input[0].content[0].type", "invalid_value", "Invalid value: 'output_text'."),
    "assistant-input_text": ({"model": "gpt-4o-mini", "input": [{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}]},
                             400, "input[0].content[0].type", "invalid_value", "Supported values are: 'output_text' and 'refusal'."),
    "chat-image_url-part": ({"model": "gpt-4o-mini", "input": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": IMAGE_URL}}]}]},
                            400, "input[0].content[0].type", "invalid_value", "Invalid value: 'image_url'."),
    "role-tool": ({"model": "gpt-4o-mini", "input": [{"role": "tool", "content": "x"}]}, 400, "input[0].role", "invalid_value", "Invalid value: 'tool'."),
    "unknown-item-type": ({"model": "gpt-4o-mini", "input": [{"type": "tool_result", "content": "x"}]}, 400, "input[0].type", "invalid_value", "Invalid value: 'tool_result'."),
    "item-unknown-field": ({"model": "gpt-4o-mini", "input": [{"role": "user", "content": "x", "name": "bob"}]}, 400, "input[0].name", "unknown_parameter", "Unknown parameter: 'input[0].name'."),
    "stream_options-without-stream": ({"model": "gpt-4o-mini", "input": "x", "stream_options": {"include_obfuscation": False}}, 400, "stream_options", None, "only allowed when 'stream' is enabled"),
    "json_schema-without-name": ({"model": "gpt-4o-mini", "input": "x", "text": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
                                 400, "text.format.name", "missing_required_parameter", "Missing required parameter: 'text.format.name'."),
    "chat-response_format": ({"model": "gpt-4o-mini", "input": "x", "response_format": {"type": "json_object"}}, 400, "response_format", "unknown_parameter", "Unknown parameter"),
    "include-unknown": ({"model": "gpt-4o-mini", "input": "x", "include": ["reasoning.summary"]}, 400, "include[0]", "invalid_value", "Invalid value"),
    "tool_choice-unknown-function": ({"model": "gpt-4o-mini", "input": "x", "tools": [RSP_TOOL], "tool_choice": {"type": "function", "name": "nope"}},
                                     400, "tool_choice", None, "not found in 'tools'"),
    "reasoning-item-without-id": ({"model": "o4-mini", "input": [{"type": "reasoning", "summary": []}, {"role": "assistant", "content": "a"}]},
                                  400, "input[0].id", "missing_required_parameter", "Missing required parameter: 'input[0].id'."),
}


@pytest.mark.parametrize("case", list(RSP_BAD))
def test_responses_validation(mock_url, case):
    body, status, param, code, fragment = RSP_BAD[case]
    r = _rsp_raw(mock_url, body)
    err = g.assert_openai_error(r, status)
    assert (err["type"], err["param"], err["code"]) == ("invalid_request_error", param, code), err
    assert fragment in err["message"], err


def test_responses_auth_and_unparsable_body(direct_openai, mock_url):
    with pytest.raises(openai.AuthenticationError):
        direct_openai("openai", key="wrong").responses.create(model="gpt-4o-mini", input="x")
    r = g.raw_request(mock_url, "POST", "/openai/v1/responses", {"model": "gpt-4o-mini", "input": "x"})
    assert "didn't provide an API key" in g.assert_openai_error(r, 401)["message"]
    r = g.raw_request(mock_url, "POST", "/openai/v1/responses", b'{"model": ', RSP_AUTH)
    g.assert_openai_error(r, 400)
    r = g.raw_request(mock_url, "POST", "/groq/v1/responses", {"model": "gpt-4o-mini", "input": "x"},
                      {"Authorization": f"Bearer {g.UPSTREAM_KEYS['groq']}"})
    g.assert_openai_error(r, 404)


@pytest.mark.parametrize("model,exc", [
    ("mock-fail-500", openai.InternalServerError),
    ("mock-fail-429", openai.RateLimitError),
    ("mock-fail-400", openai.BadRequestError),
    ("mock-overloaded", openai.InternalServerError),
])
def test_responses_failure_triggers(direct_openai, model, exc):
    with pytest.raises(exc) as ei:
        direct_openai().responses.create(model=model, input="x")
    if model == "mock-fail-429":
        assert ei.value.response.headers.get("retry-after") == "1"


def test_responses_stream_failures(direct_openai, own_recorder, tag):
    r = gr.create(direct_openai(), own_recorder, stream=True, terminal="response.failed", model="mock-stream-error", input=f"x {tag}")
    assert r.response["status"] == "failed" and r.response["error"]["code"] == "server_error"
    assert "".join(e["delta"] for e in r.events if e["type"] == "response.output_text.delta") == "partial "
    with pytest.raises((openai.APIConnectionError, httpx2.RemoteProtocolError)):
        for _ in direct_openai().responses.create(model="mock-stream-cut", input="x", stream=True):
            pass


def test_responses_checker_rejects_broken_streams(direct_openai, own_recorder, tag):
    r = gr.create(direct_openai(), own_recorder, stream=True, model="o4-mini", input=f"x {tag}", tools=[RSP_TOOL],
                  reasoning={"effort": "low", "summary": "detailed"})
    raw = bytes(own_recorder.last(r.request_id).body)
    gr.check_responses_stream(raw)
    evs = [json.loads(d) for _, d in g.parse_sse(raw)[0]]

    def frame(objs: list[dict]) -> bytes:
        return b"".join(f"event: {o['type']}\ndata: {json.dumps(o)}\n\n".encode() for o in objs)

    def renumber(objs: list[dict]) -> list[dict]:
        return [dict(o, sequence_number=i) for i, o in enumerate(objs)]

    broken = {
        "no-in_progress": renumber([e for e in evs if e["type"] != "response.in_progress"]),
        "sequence-gap": [dict(e, sequence_number=e["sequence_number"] + (1 if i > 3 else 0)) for i, e in enumerate(evs)],
        "no-terminal": evs[:-1],
        "delta-lost": renumber([e for i, e in enumerate(evs) if not (e["type"] == "response.function_call_arguments.delta" and i % 2)]),
        "item-not-closed": renumber([e for e in evs if not (e["type"] == "response.output_item.done" and e["output_index"] == 0)]),
        "final-output-differs": evs[:-1] + [dict(evs[-1], response=dict(evs[-1]["response"], output=evs[-1]["response"]["output"][1:]))],
    }
    for name, objs in broken.items():
        with pytest.raises(AssertionError):
            gr.check_responses_stream(frame(objs))
            pytest.fail(f"the checker accepted a stream with {name}")
    with pytest.raises(AssertionError):
        gr.check_responses_stream(raw + b"data: [DONE]\n\n")
