"""AWS Bedrock (Converse / ConverseStream) and Cohere (v2 chat) as UPSTREAMS, against a gateway started with
gateway.bedrock_cohere.yaml (gateway.test.yaml plus the `bedrock` and `cohere` providers).

The OpenAI and Anthropic SDKs are the clients. The mock's Bedrock upstream (mock_bedrock.py) verifies the
gateway's SigV4 signature with botocore, validates the Converse body against botocore's bedrock-runtime
service model and Bedrock's / Claude's conversation rules, and streams binary AWS event-stream messages;
the Cohere upstream (mock_cohere.py) validates v2 chat bodies as Cohere does and streams its SSE events.
Each assertion is what a user of the client API relies on: the reply, finish / stop reasons, usage
semantics (Bedrock's inputTokens excludes the cache as Anthropic's input_tokens does; Cohere's usage comes
from `tokens`, not `billed_units`), tool ids that survive a round trip, thinking signatures returned
byte for byte, errors in the client's own shape.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
from unittest import mock as umock
from urllib.parse import quote

import anthropic
import openai
import pytest

import gwtest as g
import mock_bedrock
import mock_cohere
from gwtest import PNG_B64, SYSTEM, TOOL_RESULT, WEATHER_DESC, WEATHER_PARAMS, WEATHER_TOOL_AN, WEATHER_TOOL_OA, IMAGE_URL
from mock_upstream import REASONING_TOKENS, TOOL_ARGS, TOOL_PREAMBLE

CONFIG = g.HERE / "gateway.bedrock_cohere.yaml"
BR = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"  # an inference-profile id: its ':' is %3A in the path
NOVA = "amazon.nova-pro-v1:0"
CO = "command-a-03-2025"
MODEL = {"bedrock": BR, "cohere": CO}
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
CLIENTS = pytest.mark.parametrize("client", ["openai", "anthropic"])
UPSTREAMS = pytest.mark.parametrize("upstream", ["bedrock", "cohere"])
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")  # what Anthropic accepts as a tool_use id
BU, CU = mock_bedrock.BEDROCK_USAGE, mock_cohere.COHERE_USAGE
ANTHROPIC_HEADERS = {"x-api-key": g.PROXY_KEY, "anthropic-version": "2023-06-01"}


# ------------------------------------------------------------------------------------------------
# fixtures: a gateway of this module, and clients of it


def _start(factory: g.GatewayFactory, name: str, extra_env: dict | None = None) -> g.Gateway:
    try:
        return factory.start(name, config=CONFIG, extra_env=extra_env)
    except RuntimeError as e:
        problem = str(e)
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="module")
def bcgw(gateway_factory) -> g.Gateway:
    gw = _start(gateway_factory, "bedrock-cohere")
    yield gw
    gw.stop()


@pytest.fixture
def fresh_bcgw(gateway_factory, request) -> g.Gateway:
    """A gateway of its own, for tests that make upstreams fail (breaker / cooldown state stays local)."""
    gw = _start(gateway_factory, request.node.name)
    yield gw
    gw.stop()


@pytest.fixture
def boai(bcgw, recorder):
    return g.openai_client(bcgw, recorder)


@pytest.fixture
def banth(bcgw, recorder):
    return g.anthropic_client(bcgw, recorder)


# ------------------------------------------------------------------------------------------------
# expectations


def usage_kw(stream: bool) -> dict:
    return {"stream_options": {"include_usage": True}} if stream else {}


def expected_openai_usage(upstream: str, reasoning: bool = False) -> dict:
    extra = REASONING_TOKENS if reasoning else 0
    if upstream == "bedrock":  # prompt_tokens is the whole prompt: inputTokens + cache reads + cache writes
        prompt = BU["inputTokens"] + BU["cacheReadInputTokens"] + BU["cacheWriteInputTokens"]
        return {"prompt_tokens": prompt, "completion_tokens": BU["outputTokens"] + extra,
                "total_tokens": prompt + BU["outputTokens"] + extra, "cached_tokens": BU["cacheReadInputTokens"]}
    return {"prompt_tokens": CU["input_tokens"], "completion_tokens": CU["output_tokens"] + extra,
            "total_tokens": CU["input_tokens"] + CU["output_tokens"] + extra, "cached_tokens": CU["cached_tokens"]}


def expected_anthropic_usage(upstream: str, reasoning: bool = False) -> dict:
    extra = REASONING_TOKENS if reasoning else 0
    if upstream == "bedrock":  # the same semantics as Anthropic's: input_tokens excludes the cache
        return {"input_tokens": BU["inputTokens"], "output_tokens": BU["outputTokens"] + extra,
                "cache_read_input_tokens": BU["cacheReadInputTokens"], "cache_creation_input_tokens": BU["cacheWriteInputTokens"]}
    return {"input_tokens": CU["input_tokens"] - CU["cached_tokens"], "output_tokens": CU["output_tokens"] + extra,
            "cache_read_input_tokens": CU["cached_tokens"], "cache_creation_input_tokens": 0}


def expected_log_usage(upstream: str, reasoning: bool = False) -> dict:
    a = expected_anthropic_usage(upstream, reasoning)
    return {"input": a["input_tokens"], "output": a["output_tokens"], "cache_read": a["cache_read_input_tokens"],
            "cache_write": a["cache_creation_input_tokens"]}


def check_openai_usage(usage: dict | None, upstream: str, reasoning: bool = False) -> None:
    exp = expected_openai_usage(upstream, reasoning)
    assert usage is not None, "no usage"
    got = {"prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": usage.get("completion_tokens"),
           "total_tokens": usage.get("total_tokens"), "cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0}
    assert got == exp, f"usage {usage} -> {got}, expected {exp}"


def check_anthropic_usage(usage: dict, upstream: str, reasoning: bool = False) -> None:
    exp = expected_anthropic_usage(upstream, reasoning)
    got = {k: usage.get(k) or 0 for k in exp}
    assert got == exp, f"usage {usage}, expected {exp}"


def check_log(gw: g.Gateway, rid: str, client: str, model: str, upstream: str, reasoning: bool = False) -> None:
    um = MODEL[upstream] if model in (MODEL[upstream], f"{upstream}/{MODEL[upstream]}") else model
    g.assert_log(gw.log_for(rid), request_id=rid, client_format=client, model=model, provider=upstream,
                 upstream_model=um, attempts=[(upstream, um, 200, False)], usage=expected_log_usage(upstream, reasoning))


def bedrock_path(model: str, stream: bool) -> str:
    return f"/bedrock/model/{quote(model, safe='')}/converse" + ("-stream" if stream else "")


def check_bedrock_request(req: dict, stream: bool, model: str = BR) -> dict:
    """Path (model id percent-encoded), SigV4 verified by the mock, Accept for streams, no model in the body."""
    assert req["path"] == bedrock_path(model, stream), req["path"]
    issued = req["issued"]
    assert issued.get("auth") == "sigv4" and issued["sigv4"]["verified"], f"SigV4 not verified: {issued}"
    h = req["headers"]
    assert h.get("x-amz-security-token") == g.AWS_SECRETS["AWS_SESSION_TOKEN"], "the session token goes in x-amz-security-token"
    if stream:
        assert h.get("accept") == "application/vnd.amazon.eventstream", f"Accept for a stream: {h.get('accept')!r}"
    assert h.get("content-type", "").startswith("application/json"), h.get("content-type")
    assert req["status"] == 200, req["status"]
    g.assert_no_secret_leak_upstream(req)
    assert "model" not in req["body"] and "modelId" not in req["body"], "the model id travels in the path only"
    return req["body"]


def check_cohere_request(req: dict, stream: bool, model: str = CO) -> dict:
    assert req["path"] == "/cohere/v2/chat", req["path"]
    g.assert_upstream_auth(req, "cohere")
    assert req["status"] == 200, req["status"]
    b = req["body"]
    assert b["model"] == model
    assert bool(b.get("stream")) is stream, f"stream flag {b.get('stream')!r}"
    return b


def check_request(req: dict, upstream: str, stream: bool) -> dict:
    return check_bedrock_request(req, stream) if upstream == "bedrock" else check_cohere_request(req, stream)


def br_text(content: list[dict]) -> str:
    return "".join(b.get("text", "") for b in content)


def co_text(content) -> str:
    return mock_cohere.content_text(content)


def json_or_none(data: str):
    try:
        v = json.loads(data)
    except ValueError:
        return None
    return v if isinstance(v, dict) else None


def chat(client_kind: str, gw: g.Gateway, recorder: g.Recorder, *, stream: bool, model: str, user: str, rid: str | None = None,
         **kw):
    if client_kind == "openai":
        return g.openai_chat(g.openai_client(gw, recorder), stream=stream, request_id=rid, model=model,
                             messages=[{"role": "user", "content": user}], **usage_kw(stream), **kw)
    return g.anthropic_messages(g.anthropic_client(gw, recorder), stream=stream, request_id=rid, model=model, max_tokens=100,
                                messages=[{"role": "user", "content": user}], **kw)


# ================================================================================================
# text, system prompt, sampling, usage


@STREAM
@UPSTREAMS
def test_openai_client_text(bcgw, boai, mock, recorder, tag, upstream, stream):
    rid, user, model = f"rid-{tag}", f"Hello {tag}", MODEL[upstream]
    r = g.openai_chat(boai, stream=stream, request_id=rid, model=model, max_tokens=100, temperature=0.5, stop=["ZZSTOP"],
                      messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}], **usage_kw(stream))
    assert (r.text, r.finish_reason, r.tool_calls) == (f"echo: {user}", "stop", [])
    check_openai_usage(r.usage, upstream)
    assert r.headers.get("x-request-id") == rid
    b = check_request(mock.one(tag), upstream, stream)
    if upstream == "bedrock":
        assert b.get("system") == [{"text": SYSTEM}], f"system -> the top-level system blocks: {b.get('system')}"
        assert [(m["role"], br_text(m["content"])) for m in b["messages"]] == [("user", user)]
        assert b["inferenceConfig"] == {"maxTokens": 100, "temperature": 0.5, "stopSequences": ["ZZSTOP"]}
    else:
        assert [(m["role"], co_text(m["content"])) for m in b["messages"]] == [("system", SYSTEM), ("user", user)]
        assert (b.get("max_tokens"), b.get("temperature"), b.get("stop_sequences")) == (100, 0.5, ["ZZSTOP"])
    check_log(bcgw, rid, "openai", model, upstream)
    if stream:
        g.check_openai_stream(recorder.last(rid).body, include_usage=True)


@STREAM
@UPSTREAMS
def test_anthropic_client_text(bcgw, banth, mock, recorder, tag, upstream, stream):
    rid, user, model = f"rid-{tag}", f"Hello {tag}", MODEL[upstream]
    r = g.anthropic_messages(banth, stream=stream, request_id=rid, model=model, system=SYSTEM, max_tokens=100,
                             stop_sequences=["ZZSTOP"], messages=[{"role": "user", "content": user}], extra_body={"top_p": 0.9})
    assert [b["type"] for b in r.blocks] == ["text"] and r.text == f"echo: {user}"
    assert (r.stop_reason, r.stop_sequence) == ("end_turn", None)
    check_anthropic_usage(r.usage, upstream)
    if stream:
        g.check_anthropic_stream(recorder.last(rid).body)
        # Both report input only at the end: message_start has the gateway's estimate (about 4 characters a token)
        chars = len(SYSTEM) + len(user)
        assert chars // 4 < r.start_usage["input_tokens"] <= chars // 4 + 16, r.start_usage
    b = check_request(mock.one(tag), upstream, stream)
    if upstream == "bedrock":
        assert b.get("system") == [{"text": SYSTEM}]
        assert [(m["role"], br_text(m["content"])) for m in b["messages"]] == [("user", user)]
        assert b["inferenceConfig"] == {"maxTokens": 100, "topP": 0.9, "stopSequences": ["ZZSTOP"]}
    else:
        assert [(m["role"], co_text(m["content"])) for m in b["messages"]] == [("system", SYSTEM), ("user", user)]
        assert (b.get("max_tokens"), b.get("p"), b.get("stop_sequences")) == (100, 0.9, ["ZZSTOP"])
    check_log(bcgw, rid, "anthropic", model, upstream)


def test_bedrock_default_max_tokens_and_nova(boai, mock, tag):
    """No max_tokens from the client: the configured default; a second model id (no ':' escaping trouble)."""
    r = g.openai_chat(boai, stream=False, model=NOVA, messages=[{"role": "user", "content": f"Hi {tag}"}])
    assert r.text == f"echo: Hi {tag}"
    b = check_bedrock_request(mock.one(tag), False, NOVA)
    assert b["inferenceConfig"].get("maxTokens") == 1234, b["inferenceConfig"]


@UPSTREAMS
@CLIENTS
def test_stop_reasons(bcgw, mock, recorder, tag, upstream, client):
    """max_tokens cut -> length / max_tokens; a stop sequence -> stop / stop_sequence (or end_turn)."""
    model = MODEL[upstream]
    if client == "openai":
        r = chat(client, bcgw, recorder, stream=True, model=model, user=f"Long {tag}", max_tokens=3)
        assert (r.text, r.finish_reason) == ("echo", "length")
        r = chat(client, bcgw, recorder, stream=False, model=model, user=f"Say A ZZSTOP B {tag}", stop=["ZZSTOP"])
        assert (r.text, r.finish_reason) == ("echo: Say A ", "stop")
    else:
        r = g.anthropic_messages(g.anthropic_client(bcgw, recorder), stream=True, model=model, max_tokens=3,
                                 messages=[{"role": "user", "content": f"Long {tag}"}])
        assert (r.text, r.stop_reason) == ("echo", "max_tokens")
        r = g.anthropic_messages(g.anthropic_client(bcgw, recorder), stream=False, model=model, max_tokens=100,
                                 stop_sequences=["ZZSTOP"], messages=[{"role": "user", "content": f"Say A ZZSTOP B {tag}"}])
        assert r.text == "echo: Say A "
        # Claude on Bedrock names the matched sequence (additionalModelResponseFields.stop_sequence); Cohere does not
        allowed = {("stop_sequence", "ZZSTOP")} if upstream == "bedrock" else {("stop_sequence", "ZZSTOP"), ("stop_sequence", None)}
        assert (r.stop_reason, r.stop_sequence) in allowed, (r.stop_reason, r.stop_sequence)
    assert len(mock.with_nonce(tag)) == 2


# ================================================================================================
# tools: two turns, ids preserved


@STREAM
@UPSTREAMS
def test_openai_client_tools(bcgw, boai, mock, recorder, tag, upstream, stream):
    rid, model = f"rid-{tag}", MODEL[upstream]
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"What's the weather in Paris? {tag}"}]
    r1 = g.openai_chat(boai, stream=stream, request_id=rid, model=model, messages=msgs, tools=[WEATHER_TOOL_OA],
                       tool_choice="required", **usage_kw(stream))
    req1 = mock.one(tag)
    b1 = check_request(req1, upstream, stream)
    issued = req1["issued"]
    assert r1.finish_reason == "tool_calls"
    (call,) = r1.tool_calls
    assert (call["name"], json.loads(call["arguments"])) == ("get_weather", TOOL_ARGS)
    if upstream == "bedrock":
        assert call["id"] == issued["tool_use_ids"][0], "Bedrock's toolUseId is the call id"
        assert r1.text == TOOL_PREAMBLE
        assert b1["toolConfig"]["tools"] == [{"toolSpec": {"name": "get_weather", "description": WEATHER_DESC,
                                                           "inputSchema": {"json": WEATHER_PARAMS}}}]
        assert b1["toolConfig"].get("toolChoice") == {"any": {}}, "tool_choice required -> toolChoice any"
    else:
        assert call["id"] == issued["tool_call_ids"][0], "Cohere's tool call id is the call id"
        assert r1.text == issued["tool_plan"], "the tool plan reads as the message's text"
        assert b1["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": WEATHER_DESC,
                                                                 "parameters": WEATHER_PARAMS}}]
        assert b1.get("tool_choice") == "REQUIRED"
    check_openai_usage(r1.usage, upstream)
    check_log(bcgw, rid, "openai", model, upstream)

    msgs += [{"role": "assistant", "content": r1.text or None, "tool_calls": [
        {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": TOOL_RESULT}]
    r2 = g.openai_chat(boai, stream=stream, request_id=rid + "-2", model=model, messages=msgs, tools=[WEATHER_TOOL_OA],
                       **usage_kw(stream))
    assert (r2.text, r2.finish_reason, r2.tool_calls) == (f"tool result: {TOOL_RESULT}", "stop", [])
    b2 = check_request(mock.with_nonce(tag)[1], upstream, stream)
    if upstream == "bedrock":
        assert [m["role"] for m in b2["messages"]] == ["user", "assistant", "user"]
        uses = [c["toolUse"] for c in b2["messages"][1]["content"] if "toolUse" in c]
        assert [(u["toolUseId"], u["name"], u["input"]) for u in uses] == [(call["id"], "get_weather", TOOL_ARGS)]
        results = b2["messages"][2]["content"]
        assert all("toolResult" in c for c in results), f"the results' user turn holds only toolResult blocks: {results}"
        assert [(c["toolResult"]["toolUseId"], c["toolResult"]["content"]) for c in results] == [(call["id"], [{"text": TOOL_RESULT}])]
    else:
        m = b2["messages"]
        assert [x["role"] for x in m] == ["system", "user", "assistant", "tool"]
        assert m[2].get("tool_plan") == issued["tool_plan"] and not m[2].get("content"), \
            f"the text before the calls goes back as the tool plan: {m[2]}"
        assert [(c["id"], c["type"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in m[2]["tool_calls"]] == \
            [(call["id"], "function", "get_weather", TOOL_ARGS)]
        assert (m[3]["tool_call_id"], co_text(m[3]["content"])) == (call["id"], TOOL_RESULT)
    check_log(bcgw, rid + "-2", "openai", model, upstream)
    if stream:
        g.check_openai_stream(recorder.last(rid).body, include_usage=True)
        g.check_openai_stream(recorder.last(rid + "-2").body, include_usage=True)


@STREAM
@UPSTREAMS
def test_anthropic_client_tools(bcgw, banth, mock, recorder, tag, upstream, stream):
    rid, model = f"rid-{tag}", MODEL[upstream]
    msgs = [{"role": "user", "content": f"What's the weather in Paris? {tag}"}]
    r1 = g.anthropic_messages(banth, stream=stream, request_id=rid, model=model, system=SYSTEM, max_tokens=200, messages=msgs,
                              tools=[WEATHER_TOOL_AN], tool_choice={"type": "any"})
    req1 = mock.one(tag)
    b1 = check_request(req1, upstream, stream)
    issued = req1["issued"]
    assert r1.stop_reason == "tool_use"
    assert [b["type"] for b in r1.blocks] == ["text", "tool_use"], r1.blocks
    use = r1.blocks[1]
    assert (use["name"], use["input"]) == ("get_weather", TOOL_ARGS)
    assert ID_PATTERN.fullmatch(use["id"]), f"tool_use id {use['id']!r}"
    if upstream == "bedrock":
        assert use["id"] == issued["tool_use_ids"][0] and r1.blocks[0]["text"] == TOOL_PREAMBLE
        assert b1["toolConfig"].get("toolChoice") == {"any": {}}
    else:
        assert use["id"] == issued["tool_call_ids"][0] and r1.blocks[0]["text"] == issued["tool_plan"]
        assert b1.get("tool_choice") == "REQUIRED"
    check_anthropic_usage(r1.usage, upstream)
    if stream:
        g.check_anthropic_stream(recorder.last(rid).body)

    msgs += [{"role": "assistant", "content": r1.blocks},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": TOOL_RESULT}]}]
    r2 = g.anthropic_messages(banth, stream=stream, request_id=rid + "-2", model=model, system=SYSTEM, max_tokens=200,
                              messages=msgs, tools=[WEATHER_TOOL_AN])
    assert (r2.text, r2.stop_reason) == (f"tool result: {TOOL_RESULT}", "end_turn")
    b2 = check_request(mock.with_nonce(tag)[1], upstream, stream)
    if upstream == "bedrock":
        m = b2["messages"]
        assert [x["role"] for x in m] == ["user", "assistant", "user"]
        assert [c["toolUse"]["toolUseId"] for c in m[1]["content"] if "toolUse" in c] == [use["id"]]
        assert [c["toolResult"]["toolUseId"] for c in m[2]["content"]] == [use["id"]], m[2]
    else:
        m = b2["messages"]
        assert [x["role"] for x in m] == ["system", "user", "assistant", "tool"]
        assert [c["id"] for c in m[2]["tool_calls"]] == [use["id"]] and m[3]["tool_call_id"] == use["id"]
    check_log(bcgw, rid + "-2", "anthropic", model, upstream)


def test_bedrock_tool_result_and_text_in_one_user_turn(banth, mock, tag):
    """An Anthropic client may follow its tool_result blocks with text in the same user message (Claude's
    rule: results first). Converse wants user / assistant turns to alternate, so the text cannot become a
    second user turn of its own: Bedrock refuses consecutive user turns."""
    use_id = "toolu_client_made_01"
    msgs = [{"role": "user", "content": f"Weather in Paris? {tag}"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": use_id, "name": "get_weather", "input": TOOL_ARGS}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use_id, "content": TOOL_RESULT},
                                         {"type": "text", "text": f"And be brief. {tag}"}]}]
    r = g.anthropic_messages(banth, stream=False, model=BR, max_tokens=100, messages=msgs, tools=[WEATHER_TOOL_AN])
    assert r.text == f"tool result: {TOOL_RESULT}"
    m = check_bedrock_request(mock.one(tag), False)["messages"]
    assert [x["role"] for x in m] == ["user", "assistant", "user"], f"roles must alternate: {[x['role'] for x in m]}"
    kinds = [next(iter(c)) for c in m[2]["content"]]
    assert kinds[0] == "toolResult" and "text" in kinds, kinds


def test_bedrock_tool_history_with_tool_choice_none(boai, mock, tag):
    """tool_choice "none" on a turn whose history holds tool calls: Converse has no "none", but it refuses
    toolUse / toolResult blocks without a toolConfig, so the tools must still be declared."""
    call_id = "call_client_made_01"
    msgs = [{"role": "user", "content": f"Weather in Paris? {tag}"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": json.dumps(TOOL_ARGS)}}]},
            {"role": "tool", "tool_call_id": call_id, "content": TOOL_RESULT}]
    r = g.openai_chat(boai, stream=False, model=BR, messages=msgs, tools=[WEATHER_TOOL_OA], tool_choice="none")
    assert r.text == f"tool result: {TOOL_RESULT}" and r.tool_calls == []
    b = check_bedrock_request(mock.one(tag), False)
    assert b.get("toolConfig", {}).get("tools"), "the history's tool blocks need a toolConfig"


def test_bedrock_cache_points_and_error_results(banth, mock, tag):
    """cache_control -> a cachePoint block after the cached content; an is_error tool_result -> status "error"."""
    use_id = "toolu_client_made_02"
    cached = {"type": "ephemeral"}
    msgs = [{"role": "user", "content": [{"type": "text", "text": f"Weather in Paris? {tag}", "cache_control": cached}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": use_id, "name": "get_weather", "input": TOOL_ARGS}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use_id, "content": "no such city", "is_error": True}]}]
    r = g.anthropic_messages(banth, stream=True, model=BR, max_tokens=100, messages=msgs, tools=[{**WEATHER_TOOL_AN, "cache_control": cached}],
                             system=[{"type": "text", "text": SYSTEM, "cache_control": cached}])
    assert r.text == "tool result: no such city"
    b = check_bedrock_request(mock.one(tag), True)
    assert b["system"] == [{"text": SYSTEM}, {"cachePoint": {"type": "default"}}], b["system"]
    assert b["messages"][0]["content"] == [{"text": f"Weather in Paris? {tag}"}, {"cachePoint": {"type": "default"}}]
    assert [next(iter(t)) for t in b["toolConfig"]["tools"]] == ["toolSpec", "cachePoint"]
    (res,) = [c["toolResult"] for c in b["messages"][2]["content"]]
    assert (res["toolUseId"], res.get("status"), res["content"]) == (use_id, "error", [{"text": "no such city"}])


@CLIENTS
def test_cohere_named_tool_choice_is_refused(bcgw, recorder, mock, tag, client):
    """Cohere can require some tool (REQUIRED) but not one named tool: a clear 400 from the gateway, nothing sent."""
    if client == "openai":
        r = g.raw_request(bcgw.url, "POST", "/v1/chat/completions", {
            "model": CO, "messages": [{"role": "user", "content": f"Hi {tag}"}], "tools": [WEATHER_TOOL_OA],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}, {"Authorization": f"Bearer {g.PROXY_KEY}"}, recorder)
        err = g.assert_openai_error(r, 400)
    else:
        r = g.raw_request(bcgw.url, "POST", "/v1/messages", {
            "model": CO, "max_tokens": 50, "messages": [{"role": "user", "content": f"Hi {tag}"}], "tools": [WEATHER_TOOL_AN],
            "tool_choice": {"type": "tool", "name": "get_weather"}}, ANTHROPIC_HEADERS, recorder)
        err = g.assert_anthropic_error(r, 400)
    assert "tool" in err["message"].lower(), err
    assert mock.with_nonce(tag) == [], "refused before anything reached Cohere"


@STREAM
@UPSTREAMS
@CLIENTS
def test_response_identity(bcgw, recorder, tag, client, upstream, stream):
    """What every answer carries whatever the upstream sends: a non-empty id, the model, (OpenAI) a creation
    time. Bedrock answers carry no id and neither upstream echoes the model, so the gateway must fill them in."""
    model = MODEL[upstream]
    rid = f"rid-{tag}"
    if client == "openai":
        c = g.openai_client(bcgw, recorder)
        if stream:
            chunks = list(c.chat.completions.create(model=model, stream=True, extra_headers={"X-Request-ID": rid},
                                                    messages=[{"role": "user", "content": f"Hi {tag}"}]))
            ids = {(ch.id, ch.model, ch.created) for ch in chunks}
        else:
            r = c.chat.completions.create(model=model, messages=[{"role": "user", "content": f"Hi {tag}"}])
            ids = {(r.id, r.model, r.created)}
        assert len(ids) == 1, f"every chunk carries the same id / model / created: {ids}"
        (cid, cmodel, created) = ids.pop()
        assert cid and cmodel in (model, f"{upstream}/{model}") and created > 1_600_000_000, (cid, cmodel, created)
    else:
        r = g.anthropic_messages(g.anthropic_client(bcgw, recorder), stream=stream, request_id=rid, model=model, max_tokens=50,
                                 messages=[{"role": "user", "content": f"Hi {tag}"}])
        body = r.events[0].message if stream else None
        mid, mmodel = (body.id, body.model) if stream else (r.message_id, json.loads(recorder.last(rid).body)["model"])
        assert mid and mmodel in (model, f"{upstream}/{model}"), (mid, mmodel)


# ================================================================================================
# images


@CLIENTS
def test_bedrock_image_bytes(boai, banth, mock, tag, client):
    q = f"What is in this image? {tag}"
    if client == "openai":
        text = g.openai_chat(boai, stream=False, model=BR, messages=[{"role": "user", "content": [
            {"type": "text", "text": q}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}]}]).text
    else:
        text = g.anthropic_messages(banth, stream=True, model=BR, max_tokens=100, messages=[{"role": "user", "content": [
            {"type": "text", "text": q}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}]}]).text
    assert text == "images: base64:image/png"
    (msg,) = check_bedrock_request(mock.one(tag), client == "anthropic")["messages"]
    imgs = [c["image"] for c in msg["content"] if "image" in c]
    assert imgs == [{"format": "png", "source": {"bytes": PNG_B64}}], "image -> {format, source.bytes (base64)}"
    assert br_text(msg["content"]) == q


@CLIENTS
def test_bedrock_image_url_is_refused(bcgw, recorder, mock, tag, client):
    if client == "openai":
        r = g.raw_request(bcgw.url, "POST", "/v1/chat/completions", {"model": BR, "messages": [{"role": "user", "content": [
            {"type": "text", "text": f"What? {tag}"}, {"type": "image_url", "image_url": {"url": IMAGE_URL}}]}]},
            {"Authorization": f"Bearer {g.PROXY_KEY}"}, recorder)
        err = g.assert_openai_error(r, 400)
    else:
        r = g.raw_request(bcgw.url, "POST", "/v1/messages", {"model": BR, "max_tokens": 50, "messages": [{"role": "user", "content": [
            {"type": "text", "text": f"What? {tag}"}, {"type": "image", "source": {"type": "url", "url": IMAGE_URL}}]}]},
            ANTHROPIC_HEADERS, recorder)
        err = g.assert_anthropic_error(r, 400)
    assert "bedrock" in err["message"].lower() and "bytes" in err["message"].lower(), \
        f"the error must say Bedrock takes image bytes: {err['message']!r}"
    assert mock.with_nonce(tag) == []


@CLIENTS
def test_cohere_images(boai, banth, mock, tag, client):
    q = f"What is in these images? {tag}"
    if client == "openai":
        text = g.openai_chat(boai, stream=True, model=CO, messages=[{"role": "user", "content": [
            {"type": "text", "text": q}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
            {"type": "image_url", "image_url": {"url": IMAGE_URL}}]}]).text
    else:
        text = g.anthropic_messages(banth, stream=False, model=CO, max_tokens=100, messages=[{"role": "user", "content": [
            {"type": "text", "text": q}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
            {"type": "image", "source": {"type": "url", "url": IMAGE_URL}}]}]).text
    assert text == f"images: base64:image/png, url:{IMAGE_URL}"
    msg = check_cohere_request(mock.one(tag), client == "openai")["messages"][-1]
    urls = [p["image_url"]["url"] for p in msg["content"] if p["type"] == "image_url"]
    assert urls == [f"data:image/png;base64,{PNG_B64}", IMAGE_URL]


# ================================================================================================
# structured output, thinking


WEATHER_JSON_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "temp_c": {"type": "integer"}},
                       "required": ["city", "temp_c"], "additionalProperties": False}


@STREAM
def test_cohere_structured_output(boai, mock, tag, stream):
    q = f"Weather as JSON {tag}"
    r = g.openai_chat(boai, stream=stream, model=CO, messages=[{"role": "user", "content": q}], response_format={
        "type": "json_schema", "json_schema": {"name": "weather", "strict": True, "schema": WEATHER_JSON_SCHEMA}})
    assert json.loads(r.text) == {"city": q, "temp_c": 1} and r.finish_reason == "stop"
    rf = check_cohere_request(mock.one(tag), stream)["response_format"]
    assert rf == {"type": "json_object", "json_schema": WEATHER_JSON_SCHEMA}, rf
    q2 = f"Any JSON {tag}"
    r = g.openai_chat(boai, stream=stream, model=CO, messages=[{"role": "user", "content": q2}], response_format={"type": "json_object"})
    assert json.loads(r.text) == {"echo": q2}
    assert check_cohere_request(mock.with_nonce(tag)[-1], stream)["response_format"] == {"type": "json_object"}


@STREAM
def test_bedrock_anthropic_client_thinking(bcgw, banth, mock, recorder, tag, stream):
    """thinking budget -> additionalModelRequestFields.thinking; reasoningContent (text + signature) -> a thinking
    block; the next turn sends it back with the signature byte for byte (the mock refuses any other)."""
    rid, q = f"rid-{tag}", f"Think {tag}"
    kw = dict(model=BR, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024})
    r1 = g.anthropic_messages(banth, stream=stream, request_id=rid, messages=[{"role": "user", "content": q}], **kw)
    req1 = mock.one(tag)
    b1 = check_bedrock_request(req1, stream)
    assert b1.get("additionalModelRequestFields") == {"thinking": {"type": "enabled", "budget_tokens": 1024}}, b1.get("additionalModelRequestFields")
    assert b1["inferenceConfig"].get("maxTokens") == 2048
    assert [b["type"] for b in r1.blocks] == ["thinking", "text"], r1.blocks
    th = r1.blocks[0]
    assert (th["thinking"], th.get("signature")) == (req1["issued"]["thinking"], req1["issued"]["signature"]), \
        "the signature reaches the client unchanged"
    assert (r1.text, r1.stop_reason) == (f"echo: {q}", "end_turn")
    check_anthropic_usage(r1.usage, "bedrock", reasoning=True)
    if stream:
        g.check_anthropic_stream(recorder.last(rid).body)
    check_log(bcgw, rid, "anthropic", BR, "bedrock", reasoning=True)

    msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": r1.blocks}, {"role": "user", "content": f"Again {tag}"}]
    r2 = g.anthropic_messages(banth, stream=stream, messages=msgs, **kw)
    assert r2.text == f"echo: Again {tag}"
    m = check_bedrock_request(mock.with_nonce(tag)[-1], stream)["messages"]
    assert [x["role"] for x in m] == ["user", "assistant", "user"]
    rc = [c["reasoningContent"]["reasoningText"] for c in m[1]["content"] if "reasoningContent" in c]
    assert rc == [{"text": th["thinking"], "signature": req1["issued"]["signature"]}], rc
    assert br_text(m[1]["content"]) == r1.text


@STREAM
def test_bedrock_openai_client_reasoning(boai, mock, tag, stream):
    q = f"Think {tag}"
    r = g.openai_chat(boai, stream=stream, model=BR, reasoning_effort="low", max_completion_tokens=20000,
                      messages=[{"role": "user", "content": q}], **usage_kw(stream))
    req = mock.one(tag)
    th = (check_bedrock_request(req, stream).get("additionalModelRequestFields") or {}).get("thinking") or {}
    assert th.get("type") == "enabled" and isinstance(th.get("budget_tokens"), int) and th["budget_tokens"] >= 1024, th
    assert (r.text, r.reasoning) == (f"echo: {q}", req["issued"]["thinking"])
    check_openai_usage(r.usage, "bedrock", reasoning=True)


@STREAM
@CLIENTS
def test_cohere_thinking(boai, banth, mock, tag, client, stream):
    q = f"Think {tag}"
    if client == "openai":
        r = g.openai_chat(boai, stream=stream, model=CO, reasoning_effort="low", messages=[{"role": "user", "content": q}])
        thoughts, text = r.reasoning, r.text
    else:
        r = g.anthropic_messages(banth, stream=stream, model=CO, max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 1024},
                                 messages=[{"role": "user", "content": q}])
        assert [b["type"] for b in r.blocks] == ["thinking", "text"], r.blocks
        thoughts, text = r.blocks[0]["thinking"], r.text
    req = mock.one(tag)
    th = check_cohere_request(req, stream).get("thinking")
    assert th and th.get("type") == "enabled" and isinstance(th.get("token_budget"), int), th
    if client == "anthropic":
        assert th["token_budget"] == 1024
    assert (text, thoughts) == (f"echo: {q}", req["issued"]["thinking"])


# ================================================================================================
# upstream errors, failover, mid-stream exceptions


@UPSTREAMS
@CLIENTS
def test_upstream_400_in_the_clients_format(bcgw, recorder, mock, tag, client, upstream):
    model = f"{upstream}/mock-fail-400"
    if client == "openai":
        r = g.raw_request(bcgw.url, "POST", "/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": f"Hi {tag}"}]},
                          {"Authorization": f"Bearer {g.PROXY_KEY}"}, recorder)
        err = g.assert_openai_error(r, 400)
        with pytest.raises(openai.BadRequestError):
            g.openai_client(bcgw, recorder).chat.completions.create(model=model, messages=[{"role": "user", "content": f"Hi {tag}"}])
    else:
        r = g.raw_request(bcgw.url, "POST", "/v1/messages", {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": f"Hi {tag}"}]},
                          ANTHROPIC_HEADERS, recorder)
        err = g.assert_anthropic_error(r, 400)
        with pytest.raises(anthropic.BadRequestError):
            g.anthropic_client(bcgw, recorder).messages.create(model=model, max_tokens=10, messages=[{"role": "user", "content": f"Hi {tag}"}])
    assert "mock-fail-400" in err["message"], f"the upstream's reason must reach the client: {err}"
    reqs = mock.with_nonce(tag)
    assert len(reqs) == 2 and all(x["status"] == 400 for x in reqs), "a 400 is not retried"


FAILOVER = [
    ("fallback-bedrock-500", [("bedrock", "mock-fail-500", 500), ("openai", "gpt-4o-mini", 200)]),
    ("fallback-bedrock-429", [("bedrock", "mock-fail-429", 429), ("anthropic", "claude-sonnet-4-5", 200)]),
    ("fallback-to-bedrock", [("openai", "mock-fail-500", 500), ("bedrock", BR, 200)]),
    ("fallback-cohere-500", [("cohere", "mock-fail-500", 500), ("openai", "gpt-4o-mini", 200)]),
    ("fallback-cohere-429", [("cohere", "mock-fail-429", 429), ("anthropic", "claude-sonnet-4-5", 200)]),
    ("fallback-to-cohere", [("anthropic", "mock-fail-429", 429), ("cohere", CO, 200)]),
]


@CLIENTS
@pytest.mark.parametrize("route,attempts", FAILOVER, ids=[r for r, _ in FAILOVER])
def test_failover(fresh_bcgw, recorder, mock, tag, client, route, attempts):
    rid, stream = f"rid-{tag}", client == "anthropic"
    r = chat(client, fresh_bcgw, recorder, stream=stream, model=route, user=f"Hi {tag}", rid=rid)
    assert r.text == f"echo: Hi {tag}"
    reqs = mock.with_nonce(tag)
    assert [(x["path"].split("/")[1], x["status"]) for x in reqs] == [(a[0], a[2]) for a in attempts], \
        "each target was sent a request its upstream accepted as valid"
    last = attempts[-1][0]
    usage = expected_log_usage(last) if last in ("bedrock", "cohere") else g.expected_log_usage(last)
    g.assert_log(fresh_bcgw.log_for(rid), request_id=rid, client_format=client, model=route, provider=last,
                 upstream_model=attempts[-1][1], attempts=[(p, m, st, st != 200) for p, m, st in attempts], usage=usage)


@UPSTREAMS
@CLIENTS
def test_upstream_500_and_429_alone(fresh_bcgw, recorder, mock, tag, client, upstream):
    msgs = [{"role": "user", "content": f"Hi {tag}"}]
    if client == "openai":
        c = g.openai_client(fresh_bcgw, recorder)
        with pytest.raises(openai.APIStatusError) as ei:
            c.chat.completions.create(model=f"{upstream}/mock-fail-500", messages=msgs)
        assert 500 <= ei.value.status_code < 600
        with pytest.raises(openai.RateLimitError):
            c.chat.completions.create(model=f"{upstream}/mock-fail-429", messages=msgs)
    else:
        c = g.anthropic_client(fresh_bcgw, recorder)
        with pytest.raises(anthropic.APIStatusError) as ei:
            c.messages.create(model=f"{upstream}/mock-fail-500", max_tokens=10, messages=msgs)
        assert 500 <= ei.value.status_code < 600
        with pytest.raises(anthropic.RateLimitError):
            c.messages.create(model=f"{upstream}/mock-fail-429", max_tokens=10, messages=msgs)
    assert [x["status"] for x in mock.with_nonce(tag)] == [500, 429], "both were valid requests"


@CLIENTS
@pytest.mark.parametrize("model", ["bedrock/mock-stream-error", "bedrock/mock-stream-model-error", "cohere/mock-stream-error"],
                         ids=["bedrock-throttling", "bedrock-model-stream-error", "cohere-finish-error"])
def test_mid_stream_exception(fresh_bcgw, recorder, mock, tag, client, model):
    """The upstream fails after the first delta (Bedrock: an exception message in the event stream; Cohere:
    message-end with finish_reason ERROR): the text so far, then a well-formed error event in the client's format."""
    rid, text = f"rid-{tag}", ""
    if client == "openai":
        c = g.openai_client(fresh_bcgw, recorder)
        with pytest.raises(openai.APIError) as ei:
            for ch in c.chat.completions.create(model=model, stream=True, extra_headers={"X-Request-ID": rid},
                                                messages=[{"role": "user", "content": f"Hi {tag}"}]):
                text += "".join(x.delta.content or "" for x in ch.choices)
        assert not isinstance(ei.value, openai.APIConnectionError), f"an error event, not a broken connection: {ei.value!r}"
        events, clean = g.parse_sse(recorder.last(rid).body)
        errors = [e for e in (json_or_none(d) for _, d in events) if e and "error" in e]
        assert errors and isinstance(errors[-1]["error"], dict) and errors[-1]["error"].get("message"), events[-3:]
        err = errors[-1]["error"]
    else:
        c = g.anthropic_client(fresh_bcgw, recorder)
        with pytest.raises(anthropic.APIError):
            for ev in c.messages.create(model=model, stream=True, max_tokens=100, extra_headers={"X-Request-ID": rid},
                                        messages=[{"role": "user", "content": f"Hi {tag}"}]):
                if ev.type == "content_block_delta" and ev.delta.type == "text_delta":
                    text += ev.delta.text
        events, clean = g.parse_sse(recorder.last(rid).body)
        last_name, last_data = [e for e in events if e[0] != "ping"][-1]
        body = json_or_none(last_data)
        assert last_name == "error" and body and body.get("type") == "error" and body["error"].get("message"), events[-3:]
        err = body["error"]
        if model == "bedrock/mock-stream-error":
            assert err.get("type") == "rate_limit_error", f"a throttlingException is a rate limit: {err}"
    assert clean, "the error event must be complete (terminated by a blank line)"
    assert text == "partial "
    if model == "bedrock/mock-stream-error":
        assert "throttl" in err["message"].lower() or "too many requests" in err["message"].lower(), err
    assert len(mock.with_nonce(tag)) == 1
    assert fresh_bcgw.log_for(rid)["outcome"] != "ok"


# ================================================================================================
# Bedrock auth: SigV4 (botocore as the oracle), the API key alternative


def test_bedrock_sigv4_inference_profile_id(boai, mock, tag):
    """The model id's ':' is %3A in the path and %253A in the canonical URI; the signature the gateway sent is
    the one botocore computes for the same request at the same time (checked here too, besides the mock)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    g.openai_chat(boai, stream=True, model=BR, messages=[{"role": "user", "content": f"Sign me {tag}"}])
    req = mock.one(tag)
    check_bedrock_request(req, True)
    s = req["issued"]["sigv4"]
    assert s["canonical_uri"] == "/bedrock/model/us.anthropic.claude-3-7-sonnet-20250219-v1%253A0/converse-stream"
    assert (s["access_key_id"], s["region"], s["service"]) == (g.AWS_ACCESS_KEY_ID, g.AWS_REGION, "bedrock")
    assert {"host", "x-amz-date", "x-amz-security-token"} <= set(s["signed_headers"]), s["signed_headers"]
    h = req["headers"]
    signed = {n: h[n] for n in s["signed_headers"]}
    aws = AWSRequest(method="POST", url=f"http://{h['host']}{req['path']}", data=base64.b64decode(req["raw_body_b64"]),
                     headers={k: v for k, v in signed.items() if k not in ("x-amz-date", "x-amz-security-token")})
    when = datetime.datetime.strptime(h["x-amz-date"], "%Y%m%dT%H%M%SZ")
    creds = Credentials(g.AWS_ACCESS_KEY_ID, g.AWS_SECRETS["AWS_SECRET_ACCESS_KEY"], g.AWS_SECRETS["AWS_SESSION_TOKEN"])
    with umock.patch("botocore.auth.get_current_datetime", return_value=when):
        SigV4Auth(creds, "bedrock", g.AWS_REGION).add_auth(aws)
    parts = lambda a: dict(kv.strip().split("=", 1) for kv in a.removeprefix("AWS4-HMAC-SHA256 ").split(","))  # noqa: E731
    assert parts(aws.headers["Authorization"]) == parts(h["authorization"]), "botocore signs this request exactly as the gateway did"


def test_bedrock_api_key(gateway_factory, recorder, mock, tag):
    """With AWS_BEARER_TOKEN_BEDROCK set, the gateway sends `Authorization: Bearer <key>` and no SigV4 at all."""
    gw = _start(gateway_factory, "bedrock-api-key", {"AWS_BEARER_TOKEN_BEDROCK": g.AWS_SECRETS["AWS_BEARER_TOKEN_BEDROCK"]})
    try:
        for model, stream in ((BR, False), ("nova", True)):
            r = g.openai_chat(g.openai_client(gw, recorder), stream=stream, model=model,
                              messages=[{"role": "user", "content": f"Key {stream} {tag}"}])
            assert r.text == f"echo: Key {stream} {tag}"
        for req, (model, stream) in zip(mock.with_nonce(tag), ((BR, False), (NOVA, True))):
            assert req["path"] == bedrock_path(model, stream) and req["status"] == 200
            assert req["issued"]["auth"] == "bearer"
            h = req["headers"]
            assert h["authorization"] == f"Bearer {g.AWS_SECRETS['AWS_BEARER_TOKEN_BEDROCK']}"
            assert not [k for k in h if k.startswith("x-amz-")], f"no SigV4 headers with an API key: {sorted(h)}"
            g.assert_no_secret_leak_upstream(req)
    finally:
        gw.stop()


def test_bedrock_wrong_secret_is_reported(gateway_factory, recorder, mock, tag):
    """Bedrock's 403 for a bad signature reaches the client as an error (not a success, not a hang)."""
    gw = _start(gateway_factory, "bedrock-wrong-secret", {"AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    try:
        with pytest.raises(openai.APIStatusError) as ei:
            g.openai_client(gw, recorder).chat.completions.create(model=BR, messages=[{"role": "user", "content": f"Hi {tag}"}])
        assert ei.value.status_code in (401, 403, 502), ei.value
        (req,) = mock.with_nonce(tag)
        assert req["status"] == 403
    finally:
        gw.stop()


def test_models_list_includes_bedrock_and_cohere(boai):
    ids = {m.id for m in boai.models.list().data}
    assert {BR, NOVA, CO, "command-r-plus-08-2024", "gpt-4o-mini"} <= ids, sorted(ids)
