"""Client format (OpenAI SDK, Anthropic SDK) x upstream format (openai, anthropic, groq) x stream / non-stream:
text, tools (call, then a second turn with the result), images, thinking / reasoning.

Each test checks what the client saw (text, tool calls, stop reason, usage, stream framing), what
the upstream received (the mock's record of the request) and the gateway's log line.
"""

from __future__ import annotations

import json

import anthropic
import pytest

import gwtest as g
from gwtest import IMAGE_URL, PNG_B64, SYSTEM, TOOL_RESULT, WEATHER_DESC, WEATHER_PARAMS, WEATHER_TOOL_AN, WEATHER_TOOL_OA
from mock_upstream import TOOL_ARGS, TOOL_PREAMBLE

STREAM = pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
ALL_UPSTREAMS = pytest.mark.parametrize("upstream", ["openai", "anthropic", "groq"])
TWO_UPSTREAMS = pytest.mark.parametrize("upstream", ["openai", "anthropic"])


def usage_kw(stream: bool) -> dict:
    return {"stream_options": {"include_usage": True}} if stream else {}


def openai_max_tokens(body: dict) -> int | None:
    """An OpenAI-format upstream gets exactly one of max_tokens / max_completion_tokens."""
    present = [k for k in ("max_tokens", "max_completion_tokens") if body.get(k) is not None]
    assert len(present) <= 1, f"both max_tokens and max_completion_tokens sent: {body}"
    return body[present[0]] if present else None


def check_stream_framing(recorder: g.Recorder, rid: str, client: str, upstream: str, include_usage: bool | None) -> None:
    raw = recorder.last(rid).body
    if client == "openai":
        g.check_openai_stream(raw, include_usage=include_usage if upstream != "groq" else None)
    else:
        g.check_anthropic_stream(raw)


def check_log(gateway: g.Gateway, rid: str, client: str, model: str, upstream: str, reasoning: bool = False,
              usage: bool = True) -> None:
    g.assert_log(gateway.log_for(rid), request_id=rid, client_format=client, model=model, provider=upstream,
                 upstream_model=model, attempts=[(upstream, model, 200, False)],
                 usage=g.expected_log_usage(upstream, reasoning) if usage else None)


def oa_upstream_system_and_user(body: dict) -> list[tuple[str, str]]:
    return [("system" if m["role"] in ("system", "developer") else m["role"], g.oa_text(m.get("content")))
            for m in body["messages"]]


# ================================================================================================
# text


@STREAM
@ALL_UPSTREAMS
def test_openai_client_text(gateway, oai, mock, recorder, tag, upstream, stream):
    rid, user, model = f"rid-{tag}", f"Hello {tag}", g.UPSTREAM_MODEL[upstream]
    r = g.openai_chat(oai, stream=stream, request_id=rid, model=model, max_tokens=100, temperature=0.5, stop=["ZZSTOP"],
                      messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}], **usage_kw(stream))
    assert r.text == f"echo: {user}"
    assert r.finish_reason == "stop"
    assert r.tool_calls == []
    g.check_openai_usage(r.usage, upstream)
    assert r.headers.get("x-request-id") == rid
    if stream:
        check_stream_framing(recorder, rid, "openai", upstream, include_usage=True)

    req = mock.one(tag)
    assert req["path"] == g.UPSTREAM_PATH[upstream]
    g.assert_upstream_auth(req, upstream)
    body = req["body"]
    assert body["model"] == model
    assert bool(body.get("stream")) is stream
    if upstream == "anthropic":
        assert g.an_text(body.get("system")) == SYSTEM, "system message must become the top-level `system`"
        assert [m["role"] for m in body["messages"]] == ["user"]
        assert g.an_text(body["messages"][0]["content"]) == user
        assert body["max_tokens"] == 100
        assert body["stop_sequences"] == ["ZZSTOP"]
        assert body["temperature"] == 0.5
    else:
        assert oa_upstream_system_and_user(body) == [("system", SYSTEM), ("user", user)]
        assert openai_max_tokens(body) == 100
        assert body["stop"] in (["ZZSTOP"], "ZZSTOP")
        assert body["temperature"] == 0.5
        if stream:
            assert body["stream_options"]["include_usage"] is True
    check_log(gateway, rid, "openai", model, upstream)


@STREAM
@ALL_UPSTREAMS
def test_anthropic_client_text(gateway, anth, mock, recorder, tag, upstream, stream):
    rid, user, model = f"rid-{tag}", f"Hello {tag}", g.UPSTREAM_MODEL[upstream]
    r = g.anthropic_messages(anth, stream=stream, request_id=rid, model=model, system=SYSTEM, max_tokens=100,
                             stop_sequences=["ZZSTOP"], messages=[{"role": "user", "content": user}],
                             extra_body={"temperature": 0.5})
    assert [b["type"] for b in r.blocks] == ["text"]
    assert r.text == f"echo: {user}"
    assert r.stop_reason == "end_turn"
    assert r.stop_sequence is None
    g.check_anthropic_usage(r.usage, upstream)
    assert r.headers.get("x-request-id") == rid
    if stream:
        check_stream_framing(recorder, rid, "anthropic", upstream, None)
        if upstream == "anthropic":  # the upstream told the input count up front: message_start must carry it
            assert r.start_usage["input_tokens"] == g.expected_anthropic_usage("anthropic")["input_tokens"]
            assert r.start_usage["cache_read_input_tokens"] == g.expected_anthropic_usage("anthropic")["cache_read_input_tokens"]
        else:  # OpenAI reports input only at the end: message_start has the gateway's estimate, never 0
            chars = len(SYSTEM) + len(user)
            assert chars // 4 < r.start_usage["input_tokens"] <= chars // 4 + 16, r.start_usage
            assert r.usage["input_tokens"] == g.expected_anthropic_usage(upstream)["input_tokens"], "exact at the end"

    req = mock.one(tag)
    assert req["path"] == g.UPSTREAM_PATH[upstream]
    g.assert_upstream_auth(req, upstream)
    body = req["body"]
    assert body["model"] == model
    assert bool(body.get("stream")) is stream
    if upstream == "anthropic":
        assert g.an_text(body.get("system")) == SYSTEM
        assert [(m["role"], g.an_text(m["content"])) for m in body["messages"]] == [("user", user)]
        assert body["max_tokens"] == 100
        assert body["stop_sequences"] == ["ZZSTOP"]
        assert body["temperature"] == 0.5
    else:
        assert oa_upstream_system_and_user(body) == [("system", SYSTEM), ("user", user)], \
            "Anthropic `system` must become a leading system/developer message"
        if upstream == "openai":  # config: max_tokens_field: max_completion_tokens
            assert body.get("max_completion_tokens") == 100 and "max_tokens" not in body, body
        else:  # groq keeps the default field
            assert body.get("max_tokens") == 100 and "max_completion_tokens" not in body, body
        assert body["stop"] in (["ZZSTOP"], "ZZSTOP")
        assert body["temperature"] == 0.5
        if stream:
            assert (body.get("stream_options") or {}).get("include_usage") is True, \
                "the gateway needs usage for message_delta: it must ask the OpenAI upstream for it"
    check_log(gateway, rid, "anthropic", model, upstream)


# ================================================================================================
# tools: the model calls a tool, the client sends the result back


@STREAM
@ALL_UPSTREAMS
def test_openai_client_tools(gateway, oai, mock, recorder, tag, upstream, stream):
    rid, model = f"rid-{tag}", g.UPSTREAM_MODEL[upstream]
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"What's the weather in Paris? {tag}"}]
    r1 = g.openai_chat(oai, stream=stream, request_id=rid, model=model, messages=msgs, tools=[WEATHER_TOOL_OA],
                       tool_choice="required", parallel_tool_calls=False, **usage_kw(stream))
    assert r1.finish_reason == "tool_calls"
    assert len(r1.tool_calls) == 1, r1.tool_calls
    call = r1.tool_calls[0]
    req1 = mock.one(tag)
    issued = req1["issued"]["tool_use_ids" if upstream == "anthropic" else "tool_call_ids"][0]
    assert call["id"] == issued, "the tool call id must be the upstream's"
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == TOOL_ARGS
    assert r1.text == (TOOL_PREAMBLE if upstream == "anthropic" else "")
    g.check_openai_usage(r1.usage, upstream)
    if stream:
        check_stream_framing(recorder, rid, "openai", upstream, include_usage=True)
    check_log(gateway, rid, "openai", model, upstream)

    b1 = req1["body"]
    g.assert_upstream_auth(req1, upstream)
    if upstream == "anthropic":
        assert len(b1["tools"]) == 1
        t = b1["tools"][0]
        assert (t["name"], t.get("description"), t["input_schema"]) == ("get_weather", WEATHER_DESC, WEATHER_PARAMS)
        assert b1["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}, \
            "required -> any, parallel_tool_calls: false -> disable_parallel_tool_use: true"
    else:
        assert [t["function"]["name"] for t in b1["tools"]] == ["get_weather"]
        assert b1["tools"][0]["function"]["parameters"] == WEATHER_PARAMS
        assert b1["tool_choice"] == "required"
        assert b1["parallel_tool_calls"] is False

    msgs += [{"role": "assistant", "content": r1.text or None, "tool_calls": [
        {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": TOOL_RESULT}]
    rid2 = rid + "-2"
    r2 = g.openai_chat(oai, stream=stream, request_id=rid2, model=model, messages=msgs, tools=[WEATHER_TOOL_OA],
                       tool_choice="auto", **usage_kw(stream))
    assert r2.text == f"tool result: {TOOL_RESULT}"
    assert r2.finish_reason == "stop"
    assert r2.tool_calls == []
    reqs = mock.with_nonce(tag)
    assert len(reqs) == 2
    b2 = reqs[1]["body"]
    if upstream == "anthropic":
        assert [m["role"] for m in b2["messages"]] == ["user", "assistant", "user"]
        uses = [b for b in g.an_blocks(b2["messages"][1]["content"]) if b["type"] == "tool_use"]
        assert [(u["id"], u["name"], u["input"]) for u in uses] == [(call["id"], "get_weather", TOOL_ARGS)], \
            "tool_calls[].function.arguments (a JSON string) must become tool_use.input (an object)"
        texts = [b["text"] for b in g.an_blocks(b2["messages"][1]["content"]) if b["type"] == "text"]
        assert texts in ([], [TOOL_PREAMBLE])
        results = [b for b in g.an_blocks(b2["messages"][2]["content"]) if b["type"] == "tool_result"]
        assert [(x["tool_use_id"], g.an_text(x.get("content"))) for x in results] == [(call["id"], TOOL_RESULT)], \
            "a role:tool message must become a tool_result block in a user turn"
        assert b2["tool_choice"]["type"] == "auto"
    else:
        assert [m["role"] for m in b2["messages"]] == ["system", "user", "assistant", "tool"]
        assert b2["messages"][3]["tool_call_id"] == call["id"]
    check_log(gateway, rid2, "openai", model, upstream)


@STREAM
@ALL_UPSTREAMS
def test_anthropic_client_tools(gateway, anth, mock, recorder, tag, upstream, stream):
    rid, model = f"rid-{tag}", g.UPSTREAM_MODEL[upstream]
    msgs = [{"role": "user", "content": f"What's the weather in Paris? {tag}"}]
    r1 = g.anthropic_messages(anth, stream=stream, request_id=rid, model=model, system=SYSTEM, max_tokens=200,
                              messages=msgs, tools=[WEATHER_TOOL_AN],
                              tool_choice={"type": "any", "disable_parallel_tool_use": True})
    assert r1.stop_reason == "tool_use"
    uses = r1.of("tool_use")
    assert len(uses) == 1, r1.blocks
    req1 = mock.one(tag)
    issued = req1["issued"]["tool_use_ids" if upstream == "anthropic" else "tool_call_ids"][0]
    assert uses[0]["id"] == issued, "the tool call id must be the upstream's"
    assert (uses[0]["name"], uses[0]["input"]) == ("get_weather", TOOL_ARGS)
    assert all(b["text"] for b in r1.of("text")), f"empty text block sent to the client: {r1.blocks}"
    assert [b["type"] for b in r1.blocks] == (["text", "tool_use"] if upstream == "anthropic" else ["tool_use"])
    if upstream == "anthropic":
        assert r1.blocks[0]["text"] == TOOL_PREAMBLE
    g.check_anthropic_usage(r1.usage, upstream)
    if stream:
        check_stream_framing(recorder, rid, "anthropic", upstream, None)
    check_log(gateway, rid, "anthropic", model, upstream)

    b1 = req1["body"]
    g.assert_upstream_auth(req1, upstream)
    if upstream == "anthropic":
        assert b1["tools"] == [WEATHER_TOOL_AN]
        assert b1["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    else:
        fns = [t["function"] for t in b1["tools"]]
        assert [(f["name"], f.get("description"), f["parameters"]) for f in fns] == [("get_weather", WEATHER_DESC, WEATHER_PARAMS)]
        assert all(t["type"] == "function" for t in b1["tools"])
        assert b1["tool_choice"] == "required", "any -> required"
        assert b1["parallel_tool_calls"] is False, "disable_parallel_tool_use -> parallel_tool_calls: false"

    history = [{"type": "text", "text": b["text"]} if b["type"] == "text" else
               {"type": "tool_use", "id": b["id"], "name": b["name"], "input": b["input"]} for b in r1.blocks]
    msgs += [{"role": "assistant", "content": history},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0]["id"], "content": TOOL_RESULT}]}]
    rid2 = rid + "-2"
    r2 = g.anthropic_messages(anth, stream=stream, request_id=rid2, model=model, system=SYSTEM, max_tokens=200,
                              messages=msgs, tools=[WEATHER_TOOL_AN])
    assert r2.text == f"tool result: {TOOL_RESULT}"
    assert r2.stop_reason == "end_turn"
    reqs = mock.with_nonce(tag)
    assert len(reqs) == 2
    b2 = reqs[1]["body"]
    if upstream != "anthropic":
        roles = [m["role"] for m in b2["messages"]]
        assert roles == ["system", "user", "assistant", "tool"] or roles == ["developer", "user", "assistant", "tool"], roles
        a = b2["messages"][2]
        assert [(tc["id"], tc["function"]["name"], json.loads(tc["function"]["arguments"])) for tc in a["tool_calls"]] == \
            [(uses[0]["id"], "get_weather", TOOL_ARGS)], "tool_use must become tool_calls with a JSON-string `arguments`"
        tool = b2["messages"][3]
        assert tool["tool_call_id"] == uses[0]["id"]
        assert g.oa_text(tool["content"]) == TOOL_RESULT
    else:
        assert [(m["role"], g.an_blocks(m["content"])) for m in b2["messages"]] == \
            [(m["role"], g.an_blocks(m["content"])) for m in msgs]
    check_log(gateway, rid2, "anthropic", model, upstream)


def test_parallel_tool_results_merge_into_one_user_turn(oai, mock, tag):
    """Two consecutive role:tool messages -> one user turn with two tool_result blocks (the mock enforces alternation)."""
    calls = [{"id": f"call_{x}", "type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"location": x})}}
             for x in ("Paris", "Oslo")]
    msgs = [{"role": "user", "content": f"Weather in Paris and Oslo? {tag}"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "call_Paris", "content": "22C"},
            {"role": "tool", "tool_call_id": "call_Oslo", "content": "3C"}]
    r = g.openai_chat(oai, stream=False, model="claude-sonnet-4-5", messages=msgs, tools=[WEATHER_TOOL_OA])
    assert r.text == "tool result: 22C; 3C"
    b = mock.one(tag)["body"]
    assert [m["role"] for m in b["messages"]] == ["user", "assistant", "user"]
    assert [(x["tool_use_id"], g.an_text(x.get("content"))) for x in g.an_blocks(b["messages"][2]["content"])
            if x["type"] == "tool_result"] == [("call_Paris", "22C"), ("call_Oslo", "3C")]
    assert [u["input"] for u in g.an_blocks(b["messages"][1]["content"]) if u["type"] == "tool_use"] == \
        [{"location": "Paris"}, {"location": "Oslo"}]


def test_named_tool_choice(oai, anth, mock, tag):
    g.openai_chat(oai, stream=False, model="claude-sonnet-4-5", tools=[WEATHER_TOOL_OA],
                  tool_choice={"type": "function", "function": {"name": "get_weather"}},
                  messages=[{"role": "user", "content": f"a {tag}"}])
    tc = mock.with_nonce(tag)[-1]["body"]["tool_choice"]
    assert (tc["type"], tc.get("name"), tc.get("disable_parallel_tool_use", False)) == ("tool", "get_weather", False)
    g.anthropic_messages(anth, stream=False, model="gpt-4o-mini", max_tokens=50, tools=[WEATHER_TOOL_AN],
                         tool_choice={"type": "tool", "name": "get_weather"}, messages=[{"role": "user", "content": f"b {tag}"}])
    assert mock.with_nonce(tag)[-1]["body"]["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


# ================================================================================================
# images


@STREAM
@TWO_UPSTREAMS
def test_openai_client_images(gateway, oai, mock, tag, upstream, stream):
    rid, model = f"rid-{tag}", g.UPSTREAM_MODEL[upstream]
    content = [{"type": "text", "text": f"What is in these images? {tag}"},
               {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
               {"type": "image_url", "image_url": {"url": IMAGE_URL}}]
    r = g.openai_chat(oai, stream=stream, request_id=rid, model=model, messages=[{"role": "user", "content": content}],
                      **usage_kw(stream))
    assert r.text == f"images: base64:image/png, url:{IMAGE_URL}"
    body = mock.one(tag)["body"]
    if upstream == "anthropic":
        blocks = g.an_blocks(body["messages"][0]["content"])
        assert [b["source"] for b in blocks if b["type"] == "image"] == [
            {"type": "base64", "media_type": "image/png", "data": PNG_B64},
            {"type": "url", "url": IMAGE_URL}], "data URI -> base64 source; URL -> url source"
        assert [b["text"] for b in blocks if b["type"] == "text"] == [f"What is in these images? {tag}"]
    else:
        parts = body["messages"][0]["content"]
        assert [p["image_url"]["url"] for p in parts if p["type"] == "image_url"] == [f"data:image/png;base64,{PNG_B64}", IMAGE_URL]
    check_log(gateway, rid, "openai", model, upstream)


@STREAM
@TWO_UPSTREAMS
def test_anthropic_client_images(gateway, anth, mock, tag, upstream, stream):
    rid, model = f"rid-{tag}", g.UPSTREAM_MODEL[upstream]
    content = [{"type": "text", "text": f"What is in these images? {tag}"},
               {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
               {"type": "image", "source": {"type": "url", "url": IMAGE_URL}}]
    r = g.anthropic_messages(anth, stream=stream, request_id=rid, model=model, max_tokens=100,
                             messages=[{"role": "user", "content": content}])
    assert r.text == f"images: base64:image/png, url:{IMAGE_URL}"
    body = mock.one(tag)["body"]
    if upstream == "anthropic":
        assert body["messages"][0]["content"] == content
    else:
        parts = body["messages"][-1]["content"]
        assert [p["image_url"]["url"] for p in parts if p["type"] == "image_url"] == [f"data:image/png;base64,{PNG_B64}", IMAGE_URL], \
            "base64 source -> data URI; url source -> URL"
        assert [p["text"] for p in parts if p["type"] == "text"] == [f"What is in these images? {tag}"]
    check_log(gateway, rid, "anthropic", model, upstream)


# ================================================================================================
# thinking / reasoning


@STREAM
@TWO_UPSTREAMS
def test_openai_client_reasoning(gateway, oai, mock, tag, upstream, stream):
    """reasoning_effort -> the upstream's reasoning; the reasoning text comes back as `reasoning_content`."""
    rid, model, q = f"rid-{tag}", g.REASONING_MODEL[upstream], f"Think {tag}"
    r = g.openai_chat(oai, stream=stream, request_id=rid, model=model, reasoning_effort="low", max_completion_tokens=8000,
                      messages=[{"role": "user", "content": q}], **usage_kw(stream))
    assert r.text == f"echo: {q}"
    assert r.finish_reason == "stop"
    expected = f"Thinking about: {q}" if upstream == "anthropic" else f"Reasoning about: {q}"
    assert r.reasoning == expected
    g.check_openai_usage(r.usage, upstream, reasoning=True)
    body = mock.one(tag)["body"]
    if upstream == "anthropic":
        th = body.get("thinking") or {}
        assert th.get("type") in ("enabled", "adaptive"), f"reasoning_effort must turn thinking on: {body}"
        if th["type"] == "enabled":
            assert 1024 <= th["budget_tokens"] < body["max_tokens"], body
    else:
        assert body["reasoning_effort"] == "low"
        assert openai_max_tokens(body) == 8000
    check_log(gateway, rid, "openai", model, upstream, reasoning=True)


@STREAM
def test_anthropic_client_thinking_round_trip(gateway, anth, mock, recorder, tag, stream):
    """The signature the upstream issued comes back to it byte for byte on the next turn."""
    rid, q = f"rid-{tag}", f"Think {tag}"
    kw = dict(model="claude-sonnet-4-5", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024})
    r1 = g.anthropic_messages(anth, stream=stream, request_id=rid, messages=[{"role": "user", "content": q}], **kw)
    issued = mock.one(tag)["issued"]
    assert [b["type"] for b in r1.blocks] == ["thinking", "text"]
    th = r1.blocks[0]
    assert th["thinking"] == issued["thinking"]
    assert th["signature"] == issued["signature"], "the thinking signature must reach the client unchanged"
    assert r1.text == f"echo: {q}"
    assert mock.one(tag)["body"]["thinking"] == kw["thinking"]
    g.check_anthropic_usage(r1.usage, "anthropic", reasoning=True)
    if stream:
        g.check_anthropic_stream(recorder.last(rid).body)
    check_log(gateway, rid, "anthropic", "claude-sonnet-4-5", "anthropic", reasoning=True)

    msgs = [{"role": "user", "content": q},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": th["thinking"], "signature": th["signature"]},
                                              {"type": "text", "text": r1.text}]},
            {"role": "user", "content": f"Again {tag}"}]
    r2 = g.anthropic_messages(anth, stream=stream, messages=msgs, **kw)  # the mock 400s on any other signature
    assert r2.text == f"echo: Again {tag}"
    sent = mock.with_nonce(tag)[-1]["body"]["messages"][1]["content"][0]
    assert sent == {"type": "thinking", "thinking": issued["thinking"], "signature": issued["signature"]}


@STREAM
def test_anthropic_client_redacted_thinking_round_trip(anth, mock, tag, stream):
    q = f"Please redact {tag}"
    kw = dict(model="claude-sonnet-4-5", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024})
    r1 = g.anthropic_messages(anth, stream=stream, messages=[{"role": "user", "content": q}], **kw)
    issued = mock.one(tag)["issued"]
    assert [b["type"] for b in r1.blocks] == ["redacted_thinking", "thinking", "text"]
    assert r1.blocks[0]["data"] == issued["redacted"]
    msgs = [{"role": "user", "content": q},
            {"role": "assistant", "content": [{"type": "redacted_thinking", "data": r1.blocks[0]["data"]},
                                              {"type": "thinking", "thinking": r1.blocks[1]["thinking"], "signature": r1.blocks[1]["signature"]},
                                              {"type": "text", "text": r1.text}]},
            {"role": "user", "content": f"Again {tag}"}]
    r2 = g.anthropic_messages(anth, stream=stream, messages=msgs, **kw)
    assert r2.text == f"echo: Again {tag}"


def test_tampered_signature_is_refused_upstream_and_not_retried(anth, mock, tag):
    """Negative control for the round trip: a changed signature gets the upstream's 400, unchanged, once."""
    kw = dict(model="claude-sonnet-4-5", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024})
    r1 = g.anthropic_messages(anth, stream=False, messages=[{"role": "user", "content": f"Think {tag}"}], **kw)
    th = r1.blocks[0]
    msgs = [{"role": "user", "content": f"Think {tag}"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": th["thinking"], "signature": g.tamper(th["signature"])},
                                              {"type": "text", "text": r1.text}]},
            {"role": "user", "content": "Again"}]
    with pytest.raises(anthropic.BadRequestError) as ei:
        anth.messages.create(messages=msgs, **kw)
    assert "signature" in str(ei.value.message)
    assert len(mock.with_nonce(tag)) == 2


@STREAM
def test_anthropic_client_thinking_to_openai_upstream(anth, mock, tag, stream):
    """Thinking requested from an OpenAI-format upstream: no Anthropic-only field leaks (the mock rejects
    unknown parameters); whatever reasoning surfaces carries the upstream's reasoning text."""
    q = f"Think {tag}"
    r = g.anthropic_messages(anth, stream=stream, model="o4-mini", max_tokens=2048,
                             thinking={"type": "enabled", "budget_tokens": 1024}, messages=[{"role": "user", "content": q}])
    assert r.text == f"echo: {q}"
    assert r.stop_reason == "end_turn"
    body = mock.one(tag)["body"]
    assert "thinking" not in body
    assert openai_max_tokens(body) == 2048
    for b in r.of("thinking"):
        assert b["thinking"] == f"Reasoning about: {q}"


def test_thinking_blocks_are_dropped_for_openai_upstreams(anth, mock, tag):
    """History from an Anthropic model replayed to an OpenAI-format one: the thinking block must not be sent."""
    msgs = [{"role": "user", "content": "First"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "secret chain", "signature": "sig-abc+/=="},
                                              {"type": "text", "text": "First answer"}]},
            {"role": "user", "content": f"Second {tag}"}]
    r = g.anthropic_messages(anth, stream=False, model="gpt-4o-mini", max_tokens=100, messages=msgs)
    assert r.text == f"echo: Second {tag}"
    body = mock.one(tag)["body"]
    assert [(m["role"], g.oa_text(m.get("content"))) for m in body["messages"]] == \
        [("user", "First"), ("assistant", "First answer"), ("user", f"Second {tag}")]
    assert "sig-abc" not in json.dumps(body)


# ================================================================================================
# stop reasons, limits, defaults


@TWO_UPSTREAMS
def test_stop_sequence_mapping(oai, anth, mock, tag, upstream):
    model = g.UPSTREAM_MODEL[upstream]
    q = f"Say A ZZSTOP B {tag}"
    r = g.openai_chat(oai, stream=False, model=model, stop=["ZZSTOP"], messages=[{"role": "user", "content": q}])
    assert (r.text, r.finish_reason) == ("echo: Say A ", "stop")
    a = g.anthropic_messages(anth, stream=True, model=model, max_tokens=100, stop_sequences=["ZZSTOP"],
                             messages=[{"role": "user", "content": q}])
    assert a.text == "echo: Say A "
    if upstream == "anthropic":
        assert (a.stop_reason, a.stop_sequence) == ("stop_sequence", "ZZSTOP")
    else:  # OpenAI only says "stop"; the gateway may or may not recognise the sequence
        assert a.stop_reason in ("end_turn", "stop_sequence")
        if a.stop_reason == "stop_sequence":
            assert a.stop_sequence == "ZZSTOP"


@STREAM
@TWO_UPSTREAMS
def test_max_tokens_mapping(oai, anth, mock, tag, upstream, stream):
    model = g.UPSTREAM_MODEL[upstream]
    r = g.openai_chat(oai, stream=stream, model=model, max_tokens=3, messages=[{"role": "user", "content": f"Long {tag}"}])
    assert (r.text, r.finish_reason) == ("echo", "length")
    a = g.anthropic_messages(anth, stream=stream, model=model, max_tokens=3, messages=[{"role": "user", "content": f"Long {tag}"}])
    assert (a.text, a.stop_reason) == ("echo", "max_tokens")
    bodies = [r["body"] for r in mock.with_nonce(tag)]
    if upstream == "anthropic":
        assert [b["max_tokens"] for b in bodies] == [3, 3]
    else:
        assert [openai_max_tokens(b) for b in bodies] == [3, 3]


def test_default_max_tokens_for_anthropic_upstream(oai, mock, tag):
    r = g.openai_chat(oai, stream=False, model="claude-sonnet-4-5", messages=[{"role": "user", "content": f"Hi {tag}"}])
    assert r.text == f"echo: Hi {tag}"
    assert mock.one(tag)["body"]["max_tokens"] == 1234, "server.default_max_tokens from the config"


@TWO_UPSTREAMS
def test_openai_stream_without_include_usage(gateway, oai, recorder, tag, upstream):
    """The client gets no usage chunk it did not ask for, yet the gateway still accounts the usage
    (it may ask the upstream for it on its own: budgets and TPM limits need it)."""
    rid, model = f"rid-{tag}", g.UPSTREAM_MODEL[upstream]
    r = g.openai_chat(oai, stream=True, request_id=rid, model=model, messages=[{"role": "user", "content": f"Hi {tag}"}])
    assert r.text == f"echo: Hi {tag}"
    assert r.usage is None
    g.check_openai_stream(recorder.last(rid).body, include_usage=False)
    check_log(gateway, rid, "openai", model, upstream)


def test_n_is_passed_to_openai_upstreams(oai, mock, tag):
    raw = oai.chat.completions.create(model="gpt-4o-mini", n=2, messages=[{"role": "user", "content": f"Hi {tag}"}])
    assert [c.message.content for c in raw.choices] == [f"echo: Hi {tag}"] * 2
    assert mock.one(tag)["body"]["n"] == 2
