"""The client-API x upstream-format matrix, the cells no other file covers: the google-genai SDK (the Gemini API
as a client API, v1beta) and the OpenAI SDK's Responses API (`client.responses`) against Gemini
(`gemini-2.5-flash`), AWS Bedrock Converse (`us.anthropic.claude-3-7-sonnet-20250219-v1:0`) and Cohere v2 chat
(`command-a-03-2025`), streamed and not, through a gateway started with gateway.matrix.yaml (gateway.test.yaml
plus the `gemini`, `bedrock` and `cohere` providers).

For each (client, upstream) pair:

1. text with a system instruction: `echo: <text>`, the system text in the upstream's own place
   (systemInstruction / Converse `system` / a Cohere system message), sampling and limits mapped;
2. a tool round trip over two turns: the client gets the call, sends the result back, the upstream receives a
   well-formed history (the mocks refuse malformed ones as the services do: unpaired calls, roles that do not
   alternate, a Gemini functionCall without its thoughtSignature, ...);
3. a base64 PNG reaching the upstream in its own shape (inlineData / image bytes / a data URI);
4. thinking / reasoning: Gemini thinkingConfig, Bedrock additionalModelRequestFields.thinking with the signature
   returned byte for byte on the next turn (the mock refuses any other), Cohere thinking;

and each time the usage in the client's semantics: the Gemini API's promptTokenCount is the whole prompt (cached
tokens included) and candidatesTokenCount excludes thoughts (thoughtsTokenCount); the Responses API's
input_tokens is the whole prompt too, output_tokens includes reasoning. Bedrock's inputTokens excludes the cache
(reads and writes); Cohere's usage is `tokens`, not `billed_units`.

Gemini client -> Gemini upstream is the same format (the body passes untouched): its text and tools cells are in
test_gemini.py; its image and thinking cells are here.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest
from google.genai import types

import gwresponses as gr
import gwtest as g
import mock_bedrock
import mock_cohere
import mock_upstream
from gwtest import PNG_B64, SYSTEM, TOOL_RESULT, WEATHER_DESC, WEATHER_PARAMS
from mock_upstream import GEMINI_THOUGHT_PREFIX, REASONING_TOKENS, TOOL_ARGS, TOOL_PREAMBLE

CONFIG = g.HERE / "gateway.matrix.yaml"
GEM = "gemini-2.5-flash"
BR = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"  # an inference-profile id: `:` in the Gemini client's URL path too
CO = "command-a-03-2025"
MODEL = {"gemini": GEM, "bedrock": BR, "cohere": CO}
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
ALL_UPSTREAMS = pytest.mark.parametrize("upstream", ["gemini", "bedrock", "cohere"])
TRANSLATED = pytest.mark.parametrize("upstream", ["bedrock", "cohere"])  # for the Gemini client: a format change
GU, BU, CU = mock_upstream.GEMINI_USAGE, mock_bedrock.BEDROCK_USAGE, mock_cohere.COHERE_USAGE

# the Gemini client
WEATHER_DECL = types.FunctionDeclaration(name="get_weather", description=WEATHER_DESC, parameters_json_schema=WEATHER_PARAMS)
NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)
MODE_ANY = types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="ANY"))
MODE_AUTO = types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="AUTO"))

# the Responses client
RESPONSES = "responses"  # the per-request log line's client_format
TOOL = {"type": "function", "name": "get_weather", "description": WEATHER_DESC, "parameters": WEATHER_PARAMS, "strict": False}


# ------------------------------------------------------------------------------------------------
# fixtures: a gateway of this module (gateway.matrix.yaml), and clients of it


@pytest.fixture(scope="module")
def mgw(gateway_factory) -> g.Gateway:
    try:
        gw = gateway_factory.start("matrix", config=CONFIG)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield gw
    gw.stop()


@pytest.fixture
def gem(mgw, recorder):
    return g.genai_client(mgw.url, recorder)


@pytest.fixture
def roai(mgw, recorder):
    return g.openai_client(mgw, recorder)


# ------------------------------------------------------------------------------------------------
# usage: the mock's numbers, then each client's semantics


def upstream_usage(upstream: str, reasoning: bool = False) -> dict:
    """What the upstream mock reports, in neutral terms: `prompt` the whole prompt (cache reads and writes
    included), `cached` read from the cache, `cache_write`, `output` (thoughts included), `thoughts` (None: the
    upstream does not count them apart)."""
    extra = REASONING_TOKENS if reasoning else 0
    if upstream == "gemini":  # promptTokenCount includes the cache; thoughtsTokenCount is apart from candidates
        return {"prompt": GU["promptTokenCount"], "cached": GU["cachedContentTokenCount"], "cache_write": 0,
                "output": GU["candidatesTokenCount"] + extra, "thoughts": extra}
    if upstream == "bedrock":  # inputTokens excludes cache reads and writes; outputTokens includes the thinking
        return {"prompt": BU["inputTokens"] + BU["cacheReadInputTokens"] + BU["cacheWriteInputTokens"],
                "cached": BU["cacheReadInputTokens"], "cache_write": BU["cacheWriteInputTokens"],
                "output": BU["outputTokens"] + extra, "thoughts": None}
    # Cohere: `tokens` (what the model processed, cached_tokens part of it), not `billed_units`
    return {"prompt": CU["input_tokens"], "cached": CU["cached_tokens"], "cache_write": 0,
            "output": CU["output_tokens"] + extra, "thoughts": None}


def check_gemini_usage(usage: dict | None, upstream: str, reasoning: bool = False) -> None:
    """usage_metadata (snake_case, as the SDK has it): promptTokenCount the whole prompt, cachedContentTokenCount
    the part read from the cache, candidatesTokenCount without thoughts, totalTokenCount the sum."""
    u = upstream_usage(upstream, reasoning)
    assert usage is not None, "no usage_metadata"
    prompt, cached = usage.get("prompt_token_count") or 0, usage.get("cached_content_token_count") or 0
    cand, thoughts, total = (usage.get(k) or 0 for k in ("candidates_token_count", "thoughts_token_count", "total_token_count"))
    assert (prompt, cached) == (u["prompt"], u["cached"]), \
        f"promptTokenCount is the whole prompt ({u['prompt']}), cachedContentTokenCount {u['cached']}: {usage}"
    if u["thoughts"] is not None:  # counted apart upstream: candidatesTokenCount excludes the thoughts
        assert (cand, thoughts) == (u["output"] - u["thoughts"], u["thoughts"]), f"candidates / thoughts: {usage}"
    else:  # the upstream's output includes its thinking: however it is split, nothing is lost or counted twice
        assert cand + thoughts == u["output"] and (reasoning or thoughts == 0), f"candidates + thoughts = {u['output']}: {usage}"
    assert total == prompt + cand + thoughts, f"totalTokenCount = prompt + candidates + thoughts: {usage}"


def check_responses_usage(usage: dict, upstream: str, reasoning: bool = False) -> None:
    """A Response's usage: input_tokens the whole prompt (cached_tokens part of it), output_tokens with reasoning."""
    gr.check_usage_shape(usage)
    u = upstream_usage(upstream, reasoning)
    got = {"input_tokens": usage["input_tokens"], "cached_tokens": usage["input_tokens_details"]["cached_tokens"],
           "output_tokens": usage["output_tokens"], "total_tokens": usage["total_tokens"]}
    exp = {"input_tokens": u["prompt"], "cached_tokens": u["cached"], "output_tokens": u["output"],
           "total_tokens": u["prompt"] + u["output"]}
    assert got == exp, f"usage {usage} -> {got}, expected {exp}"
    rt = usage["output_tokens_details"]["reasoning_tokens"]
    if u["thoughts"] is not None:
        assert rt == u["thoughts"], f"the upstream counts thoughts apart: reasoning_tokens {u['thoughts']}: {usage}"
    else:
        assert 0 <= rt <= u["output"] and (reasoning or rt == 0), f"reasoning_tokens: {usage}"


def log_usage(upstream: str, reasoning: bool = False) -> dict:
    """The per-request log line's canonical usage (Anthropic semantics: `input` excludes the cache)."""
    u = upstream_usage(upstream, reasoning)
    out = {"input": u["prompt"] - u["cached"] - u["cache_write"], "output": u["output"], "cache_read": u["cached"],
           "cache_write": u["cache_write"]}
    if u["thoughts"] is not None:
        out["reasoning"] = u["thoughts"]
    return out


def check_log(gw: g.Gateway, rid: str, client_format: str, upstream: str, reasoning: bool = False) -> None:
    model = MODEL[upstream]
    g.assert_log(gw.log_for(rid), request_id=rid, client_format=client_format, model=model, provider=upstream,
                 upstream_model=model, attempts=[(upstream, model, 200, False)], usage=log_usage(upstream, reasoning))


# ------------------------------------------------------------------------------------------------
# what the upstream received


def gbody(req: dict) -> dict:
    """A recorded Gemini request, parsed as Gemini parses it (camelCase names, enums upper-cased)."""
    errs: list = []
    body = mock_upstream.g_parse(req["body"], "GenerateContentRequest", "", errs)
    assert not errs, errs
    return body


def check_gemini_request(req: dict, stream: bool) -> dict:
    action = "streamGenerateContent" if stream else "generateContent"
    assert req["path"] == f"/gemini/v1beta/models/{GEM}:{action}", req["path"]
    query = dict(kv.split("=", 1) for kv in (req.get("query") or "").split("&") if kv)
    if stream:
        assert query.get("alt") == "sse", f"a streamed request asks for SSE: {req.get('query')!r}"
    assert "key" not in query, "the key goes in the x-goog-api-key header"
    assert req["status"] == 200, req["status"]
    g.assert_upstream_auth(req, "gemini")
    return gbody(req)


def check_bedrock_request(req: dict, stream: bool) -> dict:
    """Path (the model id percent-encoded), SigV4 verified by the mock, no model in the body."""
    assert req["path"] == f"/bedrock/model/{quote(BR, safe='')}/converse" + ("-stream" if stream else ""), req["path"]
    issued = req["issued"]
    assert issued.get("auth") == "sigv4" and issued["sigv4"]["verified"], f"SigV4 not verified: {issued}"
    assert req["status"] == 200, req["status"]
    if stream:
        assert req["headers"].get("accept") == "application/vnd.amazon.eventstream", req["headers"].get("accept")
    g.assert_no_secret_leak_upstream(req)
    assert "model" not in req["body"] and "modelId" not in req["body"], "the model id travels in the path only"
    return req["body"]


def check_cohere_request(req: dict, stream: bool) -> dict:
    assert req["path"] == "/cohere/v2/chat", req["path"]
    g.assert_upstream_auth(req, "cohere")
    assert req["status"] == 200, req["status"]
    b = req["body"]
    assert b["model"] == CO
    assert bool(b.get("stream")) is stream, f"stream flag {b.get('stream')!r}"
    return b


def upstream_body(req: dict, upstream: str, stream: bool) -> dict:
    return {"gemini": check_gemini_request, "bedrock": check_bedrock_request, "cohere": check_cohere_request}[upstream](req, stream)


def gtext(content: dict | None) -> str:
    return mock_upstream.gemini_text_of(content or {})


def br_text(content: list[dict]) -> str:
    return "".join(b.get("text", "") for b in content)


def co_text(content) -> str:
    return mock_cohere.content_text(content)


def same_bytes(a: str | None, b: str | None) -> bool:
    """Proto `bytes` (thoughtSignature, inlineData.data): equal when the decoded bytes are (either base64 alphabet)."""
    return a is not None and b is not None and mock_upstream.g_b64decode(a) == mock_upstream.g_b64decode(b)


def lower_types(schema):
    """A schema with its `type`s lower-cased: Gemini's OpenAPI subset spells them OBJECT, STRING, ..."""
    if isinstance(schema, dict):
        return {k: (v.lower() if k == "type" and isinstance(v, str) else lower_types(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [lower_types(v) for v in schema]
    return schema


def sent_by_sdk(recorder: g.Recorder, rid: str) -> dict:
    return json.loads(recorder.last(rid).request_body)


def check_gemini_wire(recorder: g.Recorder, rid: str, stream: bool) -> None:
    """The bytes the SDK got: an SSE stream of GenerateContentResponse, or one response."""
    seen = recorder.last(rid)
    if stream:
        g.check_gemini_stream(bytes(seen.body))
    else:
        g.check_gemini_parts(json.loads(bytes(seen.body)), "response")


# ================================================================================================
# the google-genai SDK (the Gemini API as a client API)
# ================================================================================================


@STREAM
@TRANSLATED
def test_gemini_client_text(mgw, gem, mock, recorder, tag, upstream, stream):
    rid, user = f"rid-{tag}", f"Hello {tag}"
    r = g.gemini_generate(gem, stream=stream, request_id=rid, model=MODEL[upstream], contents=user, system_instruction=SYSTEM,
                          max_output_tokens=100, temperature=0.5, stop_sequences=["ZZSTOP"])
    assert (r.text, r.finish_reason, r.calls, r.thoughts) == (f"echo: {user}", "STOP", [], None)
    check_gemini_usage(r.usage, upstream)
    assert r.headers.get("x-request-id") == rid
    check_gemini_wire(recorder, rid, stream)
    b = upstream_body(mock.one(tag), upstream, stream)
    if upstream == "bedrock":
        assert b.get("system") == [{"text": SYSTEM}], f"systemInstruction -> Converse `system`: {b.get('system')}"
        assert [(m["role"], br_text(m["content"])) for m in b["messages"]] == [("user", user)]
        assert b["inferenceConfig"] == {"maxTokens": 100, "temperature": 0.5, "stopSequences": ["ZZSTOP"]}, b["inferenceConfig"]
    else:
        assert [(m["role"], co_text(m["content"])) for m in b["messages"]] == [("system", SYSTEM), ("user", user)], \
            "systemInstruction -> a Cohere system message, first"
        assert (b.get("max_tokens"), b.get("temperature"), b.get("stop_sequences")) == (100, 0.5, ["ZZSTOP"])
    check_log(mgw, rid, "gemini", upstream)


@STREAM
@TRANSLATED
def test_gemini_client_tools(mgw, gem, mock, recorder, tag, upstream, stream):
    """A function call round trip through the SDK (automatic function calling off): the model's Content goes back
    into the history as the SDK has it, then a functionResponse without an id (as Part.from_function_response
    builds it): the gateway must pair it with the upstream's call id."""
    rid, model = f"rid-{tag}", MODEL[upstream]
    tools = [types.Tool(function_declarations=[WEATHER_DECL])]
    ask = types.Content(role="user", parts=[types.Part(text=f"What's the weather in Paris? {tag}")])
    r1 = g.gemini_generate(gem, stream=stream, request_id=rid, model=model, contents=[ask], system_instruction=SYSTEM,
                           tools=tools, tool_config=MODE_ANY, automatic_function_calling=NO_AFC)
    req1 = mock.one(tag)
    b1 = upstream_body(req1, upstream, stream)
    issued = req1["issued"]
    assert [(c["name"], c["args"]) for c in r1.calls] == [("get_weather", TOOL_ARGS)]
    assert r1.finish_reason == "STOP", "Gemini finishes a function call with STOP"
    if upstream == "bedrock":
        assert r1.text == TOOL_PREAMBLE, "Claude's text before the call is a text part"
        assert b1["toolConfig"]["tools"] == [{"toolSpec": {"name": "get_weather", "description": WEATHER_DESC,
                                                           "inputSchema": {"json": WEATHER_PARAMS}}}], b1["toolConfig"]
        assert b1["toolConfig"].get("toolChoice") == {"any": {}}, "mode ANY -> toolChoice any"
        assert b1.get("system") == [{"text": SYSTEM}]
    else:
        assert r1.text == issued["tool_plan"], "the tool plan reads as the model's text"
        assert b1["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": WEATHER_DESC,
                                                                 "parameters": WEATHER_PARAMS}}], b1["tools"]
        assert b1.get("tool_choice") == "REQUIRED", "mode ANY -> REQUIRED"
        assert (b1["messages"][0]["role"], co_text(b1["messages"][0]["content"])) == ("system", SYSTEM)
    check_gemini_usage(r1.usage, upstream)
    check_gemini_wire(recorder, rid, stream)
    check_log(mgw, rid, "gemini", upstream)

    answer = types.Content(role="user", parts=[types.Part.from_function_response(name="get_weather", response={"result": TOOL_RESULT})])
    rid2 = rid + "-2"
    r2 = g.gemini_generate(gem, stream=stream, request_id=rid2, model=model, contents=[ask, r1.content, answer],
                           system_instruction=SYSTEM, tools=tools, tool_config=MODE_AUTO, automatic_function_calling=NO_AFC)
    assert r2.text.startswith("tool result: ") and TOOL_RESULT in r2.text, r2.text
    assert (r2.calls, r2.finish_reason) == ([], "STOP")
    check_gemini_usage(r2.usage, upstream)
    check_gemini_wire(recorder, rid2, stream)
    reqs = mock.with_nonce(tag)
    assert len(reqs) == 2
    b2 = upstream_body(reqs[1], upstream, stream)
    if upstream == "bedrock":
        m = b2["messages"]
        assert [x["role"] for x in m] == ["user", "assistant", "user"], [x["role"] for x in m]
        uses = [c["toolUse"] for c in m[1]["content"] if "toolUse" in c]
        assert [(u["toolUseId"], u["name"], u["input"]) for u in uses] == [(issued["tool_use_ids"][0], "get_weather", TOOL_ARGS)], \
            "the call goes back with Bedrock's toolUseId"
        assert br_text(m[1]["content"]) == TOOL_PREAMBLE
        results = [c["toolResult"] for c in m[2]["content"] if "toolResult" in c]
        assert [r["toolUseId"] for r in results] == [issued["tool_use_ids"][0]], m[2]
        assert TOOL_RESULT in json.dumps(results[0]["content"]), results
        assert "any" not in (b2["toolConfig"].get("toolChoice") or {}), "mode AUTO does not force a tool"
    else:
        m = b2["messages"]
        assert [x["role"] for x in m] == ["system", "user", "assistant", "tool"], [x["role"] for x in m]
        assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in m[2]["tool_calls"]] == \
            [(issued["tool_call_ids"][0], "get_weather", TOOL_ARGS)], "the call goes back with Cohere's id"
        plan_back = [m[2].get("tool_plan") or "", co_text(m[2].get("content"))]
        assert sorted(plan_back) == ["", issued["tool_plan"]], f"the plan goes back once (tool_plan or content): {m[2]}"
        assert m[3]["tool_call_id"] == issued["tool_call_ids"][0] and TOOL_RESULT in co_text(m[3]["content"]), m[3]
        assert b2.get("tool_choice") is None, "mode AUTO: Cohere's default"
    check_log(mgw, rid2, "gemini", upstream)


@STREAM
@ALL_UPSTREAMS
def test_gemini_client_image(mgw, gem, mock, recorder, tag, upstream, stream):
    """inlineData (the SDK sends it URL-safe base64) -> the upstream's own image form."""
    rid, q = f"rid-{tag}", f"What is in this image? {tag}"
    r = g.gemini_generate(gem, stream=stream, request_id=rid, model=MODEL[upstream], contents=[
        q, types.Part.from_bytes(data=base64.b64decode(PNG_B64), mime_type="image/png")])
    assert (r.text, r.finish_reason) == ("images: base64:image/png", "STOP")
    check_gemini_usage(r.usage, upstream)
    check_gemini_wire(recorder, rid, stream)
    req = mock.one(tag)
    b = upstream_body(req, upstream, stream)
    if upstream == "gemini":
        assert req["body"] == sent_by_sdk(recorder, rid), "same format: the upstream gets exactly what the client sent"
        (content,) = b["contents"]
        blobs = [p["inlineData"] for p in content["parts"] if "inlineData" in p]
        assert [x["mimeType"] for x in blobs] == ["image/png"] and same_bytes(blobs[0]["data"], PNG_B64)
        assert gtext(content) == q
    elif upstream == "bedrock":
        (msg,) = b["messages"]
        imgs = [c["image"] for c in msg["content"] if "image" in c]
        assert imgs == [{"format": "png", "source": {"bytes": PNG_B64}}], \
            f"inlineData -> {{format, source.bytes}} in standard base64 (Bedrock's blob): {imgs}"
        assert br_text(msg["content"]) == q
    else:
        (msg,) = b["messages"]
        urls = [p["image_url"]["url"] for p in msg["content"] if p["type"] == "image_url"]
        assert urls == [f"data:image/png;base64,{PNG_B64}"], f"inlineData -> an image_url data URI: {urls}"
        assert co_text(msg["content"]) == q
    check_log(mgw, rid, "gemini", upstream)


@STREAM
@ALL_UPSTREAMS
def test_gemini_client_thinking(mgw, gem, mock, recorder, tag, upstream, stream):
    """thinkingConfig -> the upstream's thinking; thoughts come back as `thought: true` parts; the model's Content,
    put back into the history as the SDK has it, makes a valid next turn (Bedrock: the reasoningContent with its
    text and signature byte for byte, which the mock checks against what it issued)."""
    rid, q, model = f"rid-{tag}", f"Think {tag}", MODEL[upstream]
    cfg = dict(max_output_tokens=4096, thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=1024))
    r1 = g.gemini_generate(gem, stream=stream, request_id=rid, model=model, contents=q, **cfg)
    req1 = mock.one(tag)
    b1 = upstream_body(req1, upstream, stream)
    issued = req1["issued"]
    assert (r1.text, r1.finish_reason, r1.calls) == (f"echo: {q}", "STOP", [])
    if upstream == "gemini":
        assert req1["body"] == sent_by_sdk(recorder, rid), "same format: the upstream gets exactly what the client sent"
        tc = b1["generationConfig"]["thinkingConfig"]
        assert (tc.get("includeThoughts"), tc.get("thinkingBudget")) == (True, 1024), tc
        assert r1.thoughts == GEMINI_THOUGHT_PREFIX + q == issued["thoughts"]
    elif upstream == "bedrock":
        assert b1.get("additionalModelRequestFields") == {"thinking": {"type": "enabled", "budget_tokens": 1024}}, \
            b1.get("additionalModelRequestFields")
        assert b1["inferenceConfig"].get("maxTokens") == 4096, b1["inferenceConfig"]
        assert r1.thoughts == issued["thinking"], "the reasoningContent text -> thought parts"
    else:
        assert b1.get("thinking") == {"type": "enabled", "token_budget": 1024}, b1.get("thinking")
        assert b1.get("max_tokens") == 4096
        assert r1.thoughts == issued["thinking"], "Cohere's thinking content -> thought parts"
    check_gemini_usage(r1.usage, upstream, reasoning=True)
    check_gemini_wire(recorder, rid, stream)
    check_log(mgw, rid, "gemini", upstream, reasoning=True)

    again, rid2 = f"Again {tag}", rid + "-2"
    history = [types.Content(role="user", parts=[types.Part(text=q)]), r1.content,
               types.Content(role="user", parts=[types.Part(text=again)])]
    r2 = g.gemini_generate(gem, stream=stream, request_id=rid2, model=model, contents=history, **cfg)
    assert r2.text == f"echo: {again}", "the history with the model's thoughts is a valid next turn"
    req2 = mock.with_nonce(tag)[-1]
    b2 = upstream_body(req2, upstream, stream)
    if upstream == "gemini":
        assert req2["body"] == sent_by_sdk(recorder, rid2)
        assert [c.get("role") for c in b2["contents"]] == ["user", "model", "user"]
    elif upstream == "bedrock":
        m = b2["messages"]
        assert [x["role"] for x in m] == ["user", "assistant", "user"], [x["role"] for x in m]
        rc = [c["reasoningContent"]["reasoningText"] for c in m[1]["content"] if "reasoningContent" in c]
        assert rc == [{"text": issued["thinking"], "signature": issued["signature"]}], \
            f"the thinking goes back as one reasoningContent block, its signature byte for byte: {m[1]['content']}"
        assert br_text(m[1]["content"]) == r1.text
    else:
        m = b2["messages"]
        assert [x["role"] for x in m] == ["user", "assistant", "user"], [x["role"] for x in m]
        assert co_text(m[1]["content"]) == r1.text
        thinking = [p.get("thinking") for p in m[1]["content"] if isinstance(p, dict) and p.get("type") == "thinking"] \
            if isinstance(m[1]["content"], list) else []
        assert thinking in ([], [issued["thinking"]]), f"thinking, if sent back, is the model's own: {m[1]}"
    check_log(mgw, rid2, "gemini", upstream, reasoning=True)


# ================================================================================================
# the OpenAI SDK's Responses API
# ================================================================================================


@STREAM
@ALL_UPSTREAMS
def test_responses_text(mgw, roai, mock, recorder, tag, upstream, stream):
    model, q = MODEL[upstream], f"Hello {tag}"
    r = gr.create(roai, recorder, stream=stream, model=model, instructions=SYSTEM, input=q, max_output_tokens=100,
                  temperature=0.5)
    assert r.text == f"echo: {q}"
    (msg,) = r.output
    assert msg["type"] == "message" and msg["status"] == "completed", msg
    assert r.response["status"] == "completed"
    check_responses_usage(r.usage, upstream)
    assert r.headers.get("x-request-id") == r.request_id
    b = upstream_body(mock.one(tag), upstream, stream)
    if upstream == "gemini":
        assert gtext(b.get("systemInstruction")) == SYSTEM, "instructions -> systemInstruction"
        assert [(c.get("role"), gtext(c)) for c in b["contents"]] == [("user", q)], "Gemini has only user / model roles"
        gc = b.get("generationConfig") or {}
        assert (gc.get("maxOutputTokens"), gc.get("temperature")) == (100, 0.5), gc
    elif upstream == "bedrock":
        assert b.get("system") == [{"text": SYSTEM}], f"instructions -> Converse `system`: {b.get('system')}"
        assert [(m["role"], br_text(m["content"])) for m in b["messages"]] == [("user", q)]
        assert b["inferenceConfig"] == {"maxTokens": 100, "temperature": 0.5}, b["inferenceConfig"]
    else:
        assert [(m["role"], co_text(m["content"])) for m in b["messages"]] == [("system", SYSTEM), ("user", q)], \
            "instructions -> a Cohere system message, first"
        assert (b.get("max_tokens"), b.get("temperature")) == (100, 0.5)
    check_log(mgw, r.request_id, RESPONSES, upstream)


@STREAM
@ALL_UPSTREAMS
def test_responses_tools_round_trip(mgw, roai, mock, recorder, tag, upstream, stream):
    """The output items go back as they came, then the function_call_output: the upstream gets one assistant turn
    with the call (Gemini: with the thoughtSignature it issued on it; Bedrock / Cohere: their own call id), then the
    result paired with it."""
    model = MODEL[upstream]
    history: list = [{"role": "user", "content": f"What's the weather in Paris? {tag}"}]
    r1 = gr.create(roai, recorder, stream=stream, model=model, instructions=SYSTEM, input=history, tools=[TOOL],
                   tool_choice="required")
    req1 = mock.one(tag)
    b1 = upstream_body(req1, upstream, stream)
    issued = req1["issued"]
    (call,) = r1.calls
    assert (call["name"], json.loads(call["arguments"])) == ("get_weather", TOOL_ARGS)
    assert r1.output[-1] == call, "the call is the last output item"
    assert r1.response["status"] == "completed"
    if upstream == "gemini":
        assert r1.text == "" and isinstance(call["call_id"], str) and call["call_id"], call
        decls = [d for t in b1.get("tools") or [] for d in t.get("functionDeclarations") or []]
        assert [(d["name"], d.get("description")) for d in decls] == [("get_weather", WEATHER_DESC)], decls
        params = decls[0].get("parametersJsonSchema") if decls[0].get("parametersJsonSchema") is not None else decls[0].get("parameters")
        assert lower_types(params) == WEATHER_PARAMS, f"the parameters' schema: {params}"
        assert b1["toolConfig"]["functionCallingConfig"]["mode"] == "ANY", "tool_choice required -> mode ANY"
        assert gtext(b1.get("systemInstruction")) == SYSTEM
    elif upstream == "bedrock":
        assert call["call_id"] == issued["tool_use_ids"][0], "call_id is Bedrock's toolUseId"
        assert r1.text == TOOL_PREAMBLE
        assert b1["toolConfig"]["tools"] == [{"toolSpec": {"name": "get_weather", "description": WEATHER_DESC,
                                                           "inputSchema": {"json": WEATHER_PARAMS}}}], b1["toolConfig"]
        assert b1["toolConfig"].get("toolChoice") == {"any": {}}, "tool_choice required -> toolChoice any"
        assert b1.get("system") == [{"text": SYSTEM}]
    else:
        assert call["call_id"] == issued["tool_call_ids"][0], "call_id is Cohere's tool call id"
        assert r1.text == issued["tool_plan"], "the tool plan reads as the message's text"
        assert b1["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": WEATHER_DESC,
                                                                 "parameters": WEATHER_PARAMS}}], b1["tools"]
        assert b1.get("tool_choice") == "REQUIRED"
        assert (b1["messages"][0]["role"], co_text(b1["messages"][0]["content"])) == ("system", SYSTEM)
    check_responses_usage(r1.usage, upstream)
    check_log(mgw, r1.request_id, RESPONSES, upstream)

    history += r1.output + [{"type": "function_call_output", "call_id": call["call_id"], "output": TOOL_RESULT}]
    r2 = gr.create(roai, recorder, stream=stream, model=model, instructions=SYSTEM, input=history, tools=[TOOL])
    assert r2.text == f"tool result: {TOOL_RESULT}" and r2.calls == []
    check_responses_usage(r2.usage, upstream)
    reqs = mock.with_nonce(tag)
    assert len(reqs) == 2
    b2 = upstream_body(reqs[1], upstream, stream)
    if upstream == "gemini":
        c = b2["contents"]
        assert [x.get("role") for x in c] == ["user", "model", "user"], [x.get("role") for x in c]
        fcs = [p for p in c[1]["parts"] if "functionCall" in p]
        assert [(p["functionCall"]["name"], p["functionCall"].get("args")) for p in fcs] == [("get_weather", TOOL_ARGS)]
        assert same_bytes(fcs[0].get("thoughtSignature"), issued["function_calls"][0]["thoughtSignature"]), \
            "the functionCall's thoughtSignature must come back on that part, unchanged"
        frs = [p["functionResponse"] for p in c[2]["parts"] if "functionResponse" in p]
        assert [f["name"] for f in frs] == ["get_weather"] and TOOL_RESULT in json.dumps(frs[0]["response"]), frs
        assert gtext(b2.get("systemInstruction")) == SYSTEM
    elif upstream == "bedrock":
        m = b2["messages"]
        assert [x["role"] for x in m] == ["user", "assistant", "user"], [x["role"] for x in m]
        uses = [x["toolUse"] for x in m[1]["content"] if "toolUse" in x]
        assert [(u["toolUseId"], u["name"], u["input"]) for u in uses] == [(call["call_id"], "get_weather", TOOL_ARGS)]
        assert br_text(m[1]["content"]) == TOOL_PREAMBLE, "the message item and the call are one assistant turn"
        assert all("toolResult" in x for x in m[2]["content"]), m[2]
        assert [(x["toolResult"]["toolUseId"], x["toolResult"]["content"]) for x in m[2]["content"]] == \
            [(call["call_id"], [{"text": TOOL_RESULT}])]
    else:
        m = b2["messages"]
        assert [x["role"] for x in m] == ["system", "user", "assistant", "tool"], \
            f"the message item and the call are one assistant turn: {[x['role'] for x in m]}"
        assert [(x["id"], x["function"]["name"], json.loads(x["function"]["arguments"])) for x in m[2]["tool_calls"]] == \
            [(call["call_id"], "get_weather", TOOL_ARGS)]
        assert sorted([m[2].get("tool_plan") or "", co_text(m[2].get("content"))]) == ["", issued["tool_plan"]], \
            f"the plan goes back once (tool_plan or content): {m[2]}"
        assert (m[3]["tool_call_id"], co_text(m[3]["content"])) == (call["call_id"], TOOL_RESULT)
    check_log(mgw, r2.request_id, RESPONSES, upstream)


@STREAM
@ALL_UPSTREAMS
def test_responses_image(mgw, roai, mock, recorder, tag, upstream, stream):
    q = f"What is in this image? {tag}"
    r = gr.create(roai, recorder, stream=stream, model=MODEL[upstream], input=[{"role": "user", "content": [
        {"type": "input_text", "text": q},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG_B64}", "detail": "auto"}]}])
    assert r.text == "images: base64:image/png"
    check_responses_usage(r.usage, upstream)
    b = upstream_body(mock.one(tag), upstream, stream)
    if upstream == "gemini":
        (content,) = b["contents"]
        blobs = [p["inlineData"] for p in content["parts"] if "inlineData" in p]
        assert [x["mimeType"] for x in blobs] == ["image/png"] and same_bytes(blobs[0]["data"], PNG_B64), \
            f"a data URI -> inlineData {{mimeType, data}} (raw base64): {content['parts']}"
        assert gtext(content) == q
    elif upstream == "bedrock":
        (msg,) = b["messages"]
        imgs = [x["image"] for x in msg["content"] if "image" in x]
        assert imgs == [{"format": "png", "source": {"bytes": PNG_B64}}], f"a data URI -> {{format, source.bytes}}: {imgs}"
        assert br_text(msg["content"]) == q
    else:
        (msg,) = b["messages"]
        urls = [p["image_url"]["url"] for p in msg["content"] if p["type"] == "image_url"]
        assert urls == [f"data:image/png;base64,{PNG_B64}"], urls
        assert co_text(msg["content"]) == q
    check_log(mgw, r.request_id, RESPONSES, upstream)


@STREAM
@ALL_UPSTREAMS
def test_responses_reasoning_round_trip(mgw, roai, mock, recorder, tag, upstream, stream):
    """reasoning.effort -> the upstream's thinking; it comes back as a reasoning item (summary = the thinking text)
    before the message; sent back in the next turn's input (stateless: store false, encrypted content included),
    it makes a valid history (Bedrock: the reasoningContent with its signature byte for byte)."""
    q, model = f"Think {tag}", MODEL[upstream]
    kw = dict(model=model, max_output_tokens=8000, reasoning={"effort": "low", "summary": "auto"}, store=False,
              include=["reasoning.encrypted_content"])
    r1 = gr.create(roai, recorder, stream=stream, input=q, **kw)
    req1 = mock.one(tag)
    b1 = upstream_body(req1, upstream, stream)
    issued = req1["issued"]
    assert [it["type"] for it in r1.output] == ["reasoning", "message"], r1.output
    rs = r1.output[0]
    assert r1.text == f"echo: {q}"
    if upstream == "gemini":
        gc = b1.get("generationConfig") or {}
        tc = gc.get("thinkingConfig") or {}
        assert tc.get("includeThoughts") is True and tc.get("thinkingBudget") not in (None, 0), f"thinkingConfig {tc}"
        assert gc.get("maxOutputTokens") == 8000
        thoughts = issued["thoughts"]
    elif upstream == "bedrock":
        th = (b1.get("additionalModelRequestFields") or {}).get("thinking") or {}
        assert th.get("type") == "enabled" and isinstance(th.get("budget_tokens"), int) and 1024 <= th["budget_tokens"] < 8000, th
        assert b1["inferenceConfig"].get("maxTokens") == 8000
        thoughts = issued["thinking"]
        assert isinstance(rs.get("encrypted_content"), str) and rs["encrypted_content"], \
            f"store: false: the signature can only travel in encrypted_content: {rs}"
    else:
        th = b1.get("thinking") or {}
        assert th.get("type") == "enabled" and isinstance(th.get("token_budget"), int), th
        assert b1.get("max_tokens") == 8000
        thoughts = issued["thinking"]
    assert rs["summary"] == [{"type": "summary_text", "text": thoughts}], rs
    check_responses_usage(r1.usage, upstream, reasoning=True)
    check_log(mgw, r1.request_id, RESPONSES, upstream, reasoning=True)

    history = [{"role": "user", "content": q}, *r1.output, {"role": "user", "content": f"Again {tag}"}]
    r2 = gr.create(roai, recorder, stream=stream, input=history, **kw)
    assert r2.text == f"echo: Again {tag}", "the history with the reasoning item is a valid next turn"
    b2 = upstream_body(mock.with_nonce(tag)[-1], upstream, stream)
    if upstream == "gemini":
        c = b2["contents"]
        assert [x.get("role") for x in c] == ["user", "model", "user"], [x.get("role") for x in c]
        assert gtext(c[1]) == r1.text
    elif upstream == "bedrock":
        m = b2["messages"]
        assert [x["role"] for x in m] == ["user", "assistant", "user"], [x["role"] for x in m]
        rc = [x["reasoningContent"]["reasoningText"] for x in m[1]["content"] if "reasoningContent" in x]
        assert rc == [{"text": issued["thinking"], "signature": issued["signature"]}], \
            f"the thinking goes back with its signature byte for byte: {m[1]['content']}"
        assert br_text(m[1]["content"]) == r1.text
    else:
        m = b2["messages"]
        assert [x["role"] for x in m] == ["user", "assistant", "user"], [x["role"] for x in m]
        assert co_text(m[1]["content"]) == r1.text
    check_log(mgw, r2.request_id, RESPONSES, upstream, reasoning=True)
