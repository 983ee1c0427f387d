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
                                                             thought_signature=call["thought_signature"][:-1] + b"\x00")])
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
