"""Google's Gemini API (Generative Language API, v1beta), both ways, against a gateway started with
gateway.gemini.yaml (gateway.test.yaml plus the `gemini` provider):

* Gemini as an UPSTREAM: the OpenAI and Anthropic SDKs ask for `gemini-2.5-flash`; the mock's Gemini
  upstream validates what the gateway sends as Gemini does (proto JSON, roles, the OpenAPI-subset
  schemas, function call / response turns, thought signatures) and answers in Gemini's shapes.
* Gemini as a CLIENT API: the google-genai SDK, pointed at the gateway (`{gateway}/v1beta/models/
  {model}:generateContent`, key in `x-goog-api-key`), talks to OpenAI, Anthropic and Gemini routes.

Each assertion is what a user of that API relies on: the documented shapes, stop reasons and usage
semantics (Gemini: promptTokenCount includes cached tokens, candidatesTokenCount excludes thoughts).
"""

from __future__ import annotations

import base64
import json
import re
import time

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

import gwtest as g
import mock_upstream
from gwtest import PNG_B64, SYSTEM, TOOL_RESULT, WEATHER_DESC, WEATHER_PARAMS, WEATHER_TOOL_AN, WEATHER_TOOL_OA
from mock_upstream import GEMINI_THOUGHT_PREFIX, TOOL_ARGS, TOOL_PREAMBLE

GEMINI_CONFIG = g.HERE / "gateway.gemini.yaml"
MODEL = "gemini-2.5-flash"
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
CLIENTS = pytest.mark.parametrize("client", ["openai", "anthropic"])
ALL_UPSTREAMS = pytest.mark.parametrize("upstream", ["openai", "anthropic", "gemini"])
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")  # what Anthropic accepts as a tool_use id
GEMINI_AUTH = {"x-goog-api-key": g.PROXY_KEY}
WEATHER_DECL = types.FunctionDeclaration(name="get_weather", description=WEATHER_DESC, parameters_json_schema=WEATHER_PARAMS)
NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)


# ------------------------------------------------------------------------------------------------
# fixtures: a gateway of this module (gateway.gemini.yaml), and clients of it


def _start(factory: g.GatewayFactory, name: str) -> g.Gateway:
    try:
        return factory.start(name, config=GEMINI_CONFIG)
    except RuntimeError as e:
        problem = str(e)
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="module")
def ggw(gateway_factory) -> g.Gateway:
    gw = _start(gateway_factory, "gemini")
    yield gw
    gw.stop()


@pytest.fixture
def fresh_ggw(gateway_factory, request) -> g.Gateway:
    """A gateway of its own, for tests that make upstreams fail (breaker / cooldown state stays local)."""
    gw = _start(gateway_factory, request.node.name)
    yield gw
    gw.stop()


@pytest.fixture
def goai(ggw, recorder):
    return g.openai_client(ggw, recorder)


@pytest.fixture
def ganth(ggw, recorder):
    return g.anthropic_client(ggw, recorder)


@pytest.fixture
def gem(ggw, recorder):
    return g.genai_client(ggw.url, recorder)


# ------------------------------------------------------------------------------------------------
# helpers


def usage_kw(stream: bool) -> dict:
    return {"stream_options": {"include_usage": True}} if stream else {}


def gbody(req: dict) -> dict:
    """The recorded Gemini request, parsed as Gemini parses it (camelCase names, enums upper-cased)."""
    errs: list = []
    body = mock_upstream.g_parse(req["body"], "GenerateContentRequest", "", errs)
    assert not errs, errs
    return body


def check_gemini_request(req: dict, model: str, stream: bool) -> dict:
    """Path, `alt=sse`, the key; returns the parsed body."""
    action = "streamGenerateContent" if stream else "generateContent"
    assert req["path"] == f"/gemini/v1beta/models/{model}:{action}", req["path"]
    query = dict(kv.split("=", 1) for kv in req["query"].split("&") if kv)
    if stream:
        assert query.get("alt") == "sse", f"a streamed request asks for SSE: {req['query']!r}"
    assert "key" not in query, "the key goes in the x-goog-api-key header (a URL ends up in logs)"
    g.assert_upstream_auth(req, "gemini")
    return gbody(req)


def texts(content: dict) -> str:
    return mock_upstream.gemini_text_of(content)


def lower_types(schema):
    """A schema with its `type`s lower-cased: Gemini's OpenAPI subset spells them OBJECT, STRING, ..."""
    if isinstance(schema, dict):
        return {k: (v.lower() if k == "type" and isinstance(v, str) else lower_types(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [lower_types(v) for v in schema]
    return schema


def tool_parameters(body: dict) -> list[tuple]:
    decls = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
    return [(d["name"], d.get("description"), lower_types(d.get("parameters") if d.get("parameters") is not None
                                                         else d.get("parametersJsonSchema"))) for d in decls]


def same_bytes(a: str | None, b: str | None) -> bool:
    """thoughtSignature is a proto `bytes` field: equal when the decoded bytes are (either base64 alphabet)."""
    return a is not None and b is not None and mock_upstream.g_b64decode(a) == mock_upstream.g_b64decode(b)


def check_log(gw: g.Gateway, rid: str, client: str, model: str, upstream: str, reasoning: bool = False,
              upstream_model: str | None = None) -> None:
    um = upstream_model or model
    g.assert_log(gw.log_for(rid), request_id=rid, client_format=client, model=model, provider=upstream,
                 upstream_model=um, attempts=[(upstream, um, 200, False)], usage=g.expected_log_usage(upstream, reasoning))


def sent_by_sdk(recorder: g.Recorder, rid: str) -> dict:
    return json.loads(recorder.last(rid).request_body)


def json_or_none(data: str):
    try:
        v = json.loads(data)
    except ValueError:
        return None
    return v if isinstance(v, dict) else None


# ================================================================================================
# Gemini as the UPSTREAM: OpenAI and Anthropic clients
# ================================================================================================


@STREAM
def test_openai_client_text(ggw, goai, mock, recorder, tag, stream):
    rid, user = f"rid-{tag}", f"Hello {tag}"
    r = g.openai_chat(goai, stream=stream, request_id=rid, model=MODEL, max_tokens=100, temperature=0.5, stop=["ZZSTOP"],
                      messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}], **usage_kw(stream))
    assert (r.text, r.finish_reason, r.tool_calls) == (f"echo: {user}", "stop", [])
    g.check_openai_usage(r.usage, "gemini")
    assert r.headers.get("x-request-id") == rid
    if stream:
        g.check_openai_stream(recorder.last(rid).body, include_usage=True)
    body = check_gemini_request(mock.one(tag), MODEL, stream)
    assert [(c.get("role"), texts(c)) for c in body["contents"]] == [("user", user)], \
        "the system message must not be a content: Gemini has only user / model roles"
    assert texts(body["systemInstruction"]) == SYSTEM, "system -> systemInstruction"
    gc = body["generationConfig"]
    assert (gc.get("maxOutputTokens"), gc.get("temperature"), gc.get("stopSequences")) == (100, 0.5, ["ZZSTOP"])
    check_log(ggw, rid, "openai", MODEL, "gemini")


@STREAM
def test_anthropic_client_text(ggw, ganth, mock, recorder, tag, stream):
    rid, user = f"rid-{tag}", f"Hello {tag}"
    r = g.anthropic_messages(ganth, stream=stream, request_id=rid, model=MODEL, system=SYSTEM, max_tokens=100,
                             stop_sequences=["ZZSTOP"], messages=[{"role": "user", "content": user}], extra_body={"temperature": 0.5})
    assert [b["type"] for b in r.blocks] == ["text"] and r.text == f"echo: {user}"
    assert (r.stop_reason, r.stop_sequence) == ("end_turn", None)
    g.check_anthropic_usage(r.usage, "gemini")
    if stream:
        g.check_anthropic_stream(recorder.last(rid).body)
    body = check_gemini_request(mock.one(tag), MODEL, stream)
    assert [(c.get("role"), texts(c)) for c in body["contents"]] == [("user", user)]
    assert texts(body["systemInstruction"]) == SYSTEM
    gc = body["generationConfig"]
    assert (gc.get("maxOutputTokens"), gc.get("temperature"), gc.get("stopSequences")) == (100, 0.5, ["ZZSTOP"])
    check_log(ggw, rid, "anthropic", MODEL, "gemini")


@STREAM
def test_openai_client_tools(ggw, goai, mock, recorder, tag, stream):
    """A tool call from Gemini (no id; a thoughtSignature) and the result sent back: the gateway makes up
    the id and must put the signature back on that functionCall part (the mock refuses the turn otherwise)."""
    rid = f"rid-{tag}"
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"What's the weather in Paris? {tag}"}]
    r1 = g.openai_chat(goai, stream=stream, request_id=rid, model=MODEL, messages=msgs, tools=[WEATHER_TOOL_OA],
                       tool_choice="required", parallel_tool_calls=False, **usage_kw(stream))
    assert r1.finish_reason == "tool_calls", "Gemini says STOP after a function call; an OpenAI client needs tool_calls"
    (call,) = r1.tool_calls
    assert (call["name"], json.loads(call["arguments"]), r1.text) == ("get_weather", TOOL_ARGS, "")
    assert isinstance(call["id"], str) and ID_PATTERN.fullmatch(call["id"]), f"tool call id {call['id']!r}"
    g.check_openai_usage(r1.usage, "gemini")
    if stream:
        g.check_openai_stream(recorder.last(rid).body, include_usage=True)
    req1 = mock.one(tag)
    issued = req1["issued"]["function_calls"][0]
    b1 = check_gemini_request(req1, MODEL, stream)
    assert tool_parameters(b1) == [("get_weather", WEATHER_DESC, WEATHER_PARAMS)]
    assert b1["toolConfig"]["functionCallingConfig"]["mode"] == "ANY", "tool_choice required -> mode ANY"
    check_log(ggw, rid, "openai", MODEL, "gemini")

    msgs += [{"role": "assistant", "content": None, "tool_calls": [
        {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": TOOL_RESULT}]
    r2 = g.openai_chat(goai, stream=stream, request_id=rid + "-2", model=MODEL, messages=msgs, tools=[WEATHER_TOOL_OA],
                       tool_choice="auto", **usage_kw(stream))
    assert (r2.text, r2.finish_reason, r2.tool_calls) == (f"tool result: {TOOL_RESULT}", "stop", [])
    reqs = mock.with_nonce(tag)
    assert len(reqs) == 2
    b2 = check_gemini_request(reqs[1], MODEL, stream)
    assert [c.get("role") for c in b2["contents"]] == ["user", "model", "user"]
    fcs = [p for p in b2["contents"][1]["parts"] if "functionCall" in p]
    assert [(p["functionCall"]["name"], p["functionCall"].get("args")) for p in fcs] == [("get_weather", TOOL_ARGS)]
    assert same_bytes(fcs[0].get("thoughtSignature"), issued["thoughtSignature"]), \
        "the functionCall's thoughtSignature must come back on that part, unchanged"
    frs = [p["functionResponse"] for p in b2["contents"][2]["parts"] if "functionResponse" in p]
    assert [f["name"] for f in frs] == ["get_weather"] and TOOL_RESULT in json.dumps(frs[0]["response"])
    assert b2.get("toolConfig", {}).get("functionCallingConfig", {}).get("mode", "AUTO") == "AUTO"
    check_log(ggw, rid + "-2", "openai", MODEL, "gemini")


@STREAM
def test_anthropic_client_tools(ggw, ganth, mock, recorder, tag, stream):
    rid = f"rid-{tag}"
    msgs = [{"role": "user", "content": f"What's the weather in Paris? {tag}"}]
    r1 = g.anthropic_messages(ganth, stream=stream, request_id=rid, model=MODEL, system=SYSTEM, max_tokens=200, messages=msgs,
                              tools=[WEATHER_TOOL_AN], tool_choice={"type": "any", "disable_parallel_tool_use": True})
    assert r1.stop_reason == "tool_use", "Gemini says STOP after a function call; an Anthropic client needs tool_use"
    assert [b["type"] for b in r1.blocks] == ["tool_use"], f"no empty text block: {r1.blocks}"
    use = r1.blocks[0]
    assert (use["name"], use["input"]) == ("get_weather", TOOL_ARGS)
    assert ID_PATTERN.fullmatch(use["id"]), f"tool_use id {use['id']!r}"
    g.check_anthropic_usage(r1.usage, "gemini")
    if stream:
        g.check_anthropic_stream(recorder.last(rid).body)
    req1 = mock.one(tag)
    issued = req1["issued"]["function_calls"][0]
    b1 = check_gemini_request(req1, MODEL, stream)
    assert tool_parameters(b1) == [("get_weather", WEATHER_DESC, WEATHER_PARAMS)]
    assert b1["toolConfig"]["functionCallingConfig"]["mode"] == "ANY", "tool_choice any -> mode ANY"

    msgs += [{"role": "assistant", "content": [{"type": "tool_use", "id": use["id"], "name": use["name"], "input": use["input"]}]},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": TOOL_RESULT}]}]
    r2 = g.anthropic_messages(ganth, stream=stream, request_id=rid + "-2", model=MODEL, system=SYSTEM, max_tokens=200,
                              messages=msgs, tools=[WEATHER_TOOL_AN])
    assert (r2.text, r2.stop_reason) == (f"tool result: {TOOL_RESULT}", "end_turn")
    b2 = check_gemini_request(mock.with_nonce(tag)[1], MODEL, stream)
    assert [c.get("role") for c in b2["contents"]] == ["user", "model", "user"]
    fc = next(p for p in b2["contents"][1]["parts"] if "functionCall" in p)
    assert (fc["functionCall"]["name"], fc["functionCall"].get("args")) == ("get_weather", TOOL_ARGS)
    assert same_bytes(fc.get("thoughtSignature"), issued["thoughtSignature"])
    fr = next(p["functionResponse"] for p in b2["contents"][2]["parts"] if "functionResponse" in p)
    assert fr["name"] == "get_weather" and TOOL_RESULT in json.dumps(fr["response"])
    check_log(ggw, rid + "-2", "anthropic", MODEL, "gemini")


@CLIENTS
def test_tool_history_from_another_model(goai, ganth, mock, tag, client):
    """Tool calls that did not come from Gemini (a conversation moved over from another model) carry no
    thoughtSignature; Gemini 3 refuses such a current turn unless it carries the documented stand-in
    signature: the request must still succeed (two calls answered in one turn, too)."""
    ids = [f"foreign_{x}" for x in ("a", "b")]
    if client == "openai":
        msgs = [{"role": "user", "content": f"Weather in Paris and Oslo? {tag}"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": i, "type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"location": loc})}}
                    for i, loc in zip(ids, ("Paris", "Oslo"))]},
                *[{"role": "tool", "tool_call_id": i, "content": t} for i, t in zip(ids, ("22C", "3C"))]]
        text = g.openai_chat(goai, stream=False, model=MODEL, messages=msgs, tools=[WEATHER_TOOL_OA]).text
    else:
        msgs = [{"role": "user", "content": f"Weather in Paris and Oslo? {tag}"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": i, "name": "get_weather", "input": {"location": loc}}
                                                  for i, loc in zip(ids, ("Paris", "Oslo"))]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": i, "content": t} for i, t in zip(ids, ("22C", "3C"))]}]
        text = g.anthropic_messages(ganth, stream=False, model=MODEL, max_tokens=100, messages=msgs, tools=[WEATHER_TOOL_AN]).text
    assert text == "tool result: 22C; 3C"
    body = gbody(mock.one(tag))
    assert [c.get("role") for c in body["contents"]] == ["user", "model", "user"], "both calls in one model turn, both results in one user turn"
    assert [p["functionCall"]["args"] for p in body["contents"][1]["parts"] if "functionCall" in p] == [{"location": "Paris"}, {"location": "Oslo"}]
    assert [p["functionResponse"]["name"] for p in body["contents"][2]["parts"] if "functionResponse" in p] == ["get_weather"] * 2


@STREAM
@CLIENTS
def test_image_input(goai, ganth, mock, tag, client, stream):
    q = f"What is in this image? {tag}"
    if client == "openai":
        r = g.openai_chat(goai, stream=stream, model=MODEL, messages=[{"role": "user", "content": [
            {"type": "text", "text": q}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}]}])
        text = r.text
    else:
        text = g.anthropic_messages(ganth, stream=stream, model=MODEL, max_tokens=100, messages=[{"role": "user", "content": [
            {"type": "text", "text": q}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}]}]).text
    assert text == "images: base64:image/png"
    (content,) = check_gemini_request(mock.one(tag), MODEL, stream)["contents"]
    blobs = [p["inlineData"] for p in content["parts"] if "inlineData" in p]
    assert [b["mimeType"] for b in blobs] == ["image/png"] and same_bytes(blobs[0]["data"], PNG_B64), \
        "a base64 image -> inlineData {mimeType, data} (raw base64, no data: URI)"
    assert texts(content) == q


WEATHER_JSON_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "temp_c": {"type": "integer"}},
                       "required": ["city", "temp_c"], "additionalProperties": False}


@STREAM
def test_structured_output(goai, mock, tag, stream):
    """response_format json_schema -> responseMimeType application/json + the schema (responseSchema takes no
    additionalProperties: the mock refuses it there; responseJsonSchema takes JSON Schema as is)."""
    q = f"Weather as JSON {tag}"
    r = g.openai_chat(goai, stream=stream, model=MODEL, messages=[{"role": "user", "content": q}], response_format={
        "type": "json_schema", "json_schema": {"name": "weather", "strict": True, "schema": WEATHER_JSON_SCHEMA}})
    assert json.loads(r.text) == {"city": q, "temp_c": 1} and r.finish_reason == "stop"
    gc = check_gemini_request(mock.one(tag), MODEL, stream)["generationConfig"]
    assert gc.get("responseMimeType") == "application/json"
    schema = gc.get("responseSchema") if gc.get("responseSchema") is not None else gc.get("responseJsonSchema")
    assert schema is not None, f"no response schema sent: {gc}"
    assert {k: v for k, v in lower_types(schema).items() if k in ("type", "properties", "required")} == \
        {k: v for k, v in WEATHER_JSON_SCHEMA.items() if k in ("type", "properties", "required")}
    q2 = f"Any JSON {tag}"
    r = g.openai_chat(goai, stream=stream, model=MODEL, messages=[{"role": "user", "content": q2}], response_format={"type": "json_object"})
    assert isinstance(json.loads(r.text), dict)
    assert check_gemini_request(mock.with_nonce(tag)[-1], MODEL, stream)["generationConfig"].get("responseMimeType") == "application/json"


@STREAM
def test_openai_client_reasoning(ggw, goai, mock, tag, stream):
    """reasoning_effort -> thinkingConfig (a budget: thinkingLevel is for Gemini 3 only, 2.5 refuses it) with
    includeThoughts; the thought parts come back as reasoning_content; thoughts count as completion tokens."""
    rid, q = f"rid-{tag}", f"Think {tag}"
    r = g.openai_chat(goai, stream=stream, request_id=rid, model=MODEL, reasoning_effort="low", max_completion_tokens=8000,
                      messages=[{"role": "user", "content": q}], **usage_kw(stream))
    assert (r.text, r.finish_reason, r.reasoning) == (f"echo: {q}", "stop", GEMINI_THOUGHT_PREFIX + q)
    g.check_openai_usage(r.usage, "gemini", reasoning=True)
    gc = check_gemini_request(mock.one(tag), MODEL, stream)["generationConfig"]
    tc = gc.get("thinkingConfig") or {}
    assert tc.get("includeThoughts") is True and tc.get("thinkingBudget") not in (None, 0), f"thinkingConfig {tc}"
    assert gc.get("maxOutputTokens") == 8000
    check_log(ggw, rid, "openai", MODEL, "gemini", reasoning=True)


@STREAM
def test_anthropic_client_thinking(ggw, ganth, mock, recorder, tag, stream):
    rid, q = f"rid-{tag}", f"Think {tag}"
    kw = dict(model=MODEL, max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024})
    r1 = g.anthropic_messages(ganth, stream=stream, request_id=rid, messages=[{"role": "user", "content": q}], **kw)
    assert [b["type"] for b in r1.blocks] == ["thinking", "text"], r1.blocks
    th = r1.blocks[0]
    assert th["thinking"] == GEMINI_THOUGHT_PREFIX + q and isinstance(th.get("signature"), str)
    assert (r1.text, r1.stop_reason) == (f"echo: {q}", "end_turn")
    g.check_anthropic_usage(r1.usage, "gemini", reasoning=True)
    if stream:
        g.check_anthropic_stream(recorder.last(rid).body)
    tc = check_gemini_request(mock.one(tag), MODEL, stream)["generationConfig"].get("thinkingConfig") or {}
    assert (tc.get("thinkingBudget"), tc.get("includeThoughts")) == (1024, True), f"thinkingConfig {tc}"
    check_log(ggw, rid, "anthropic", MODEL, "gemini", reasoning=True)

    msgs = [{"role": "user", "content": q},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": th["thinking"], "signature": th["signature"]},
                                              {"type": "text", "text": r1.text}]},
            {"role": "user", "content": f"Again {tag}"}]
    r2 = g.anthropic_messages(ganth, stream=stream, messages=msgs, **kw)  # the mock refuses any signature it did not issue
    assert r2.text == f"echo: Again {tag}"
    b2 = gbody(mock.with_nonce(tag)[-1])
    assert [c.get("role") for c in b2["contents"]] == ["user", "model", "user"]
    assert texts(b2["contents"][1]) == r1.text


@STREAM
def test_max_tokens_and_stop_sequence(goai, ganth, mock, tag, stream):
    r = g.openai_chat(goai, stream=stream, model=MODEL, max_tokens=3, messages=[{"role": "user", "content": f"Long {tag}"}])
    assert (r.text, r.finish_reason) == ("echo", "length"), "MAX_TOKENS -> length"
    a = g.anthropic_messages(ganth, stream=stream, model=MODEL, max_tokens=3, messages=[{"role": "user", "content": f"Long {tag}"}])
    assert (a.text, a.stop_reason) == ("echo", "max_tokens"), "MAX_TOKENS -> max_tokens"
    assert [gbody(x)["generationConfig"]["maxOutputTokens"] for x in mock.with_nonce(tag)] == [3, 3]
    q = f"Say A ZZSTOP B {tag}"
    r = g.openai_chat(goai, stream=stream, model=MODEL, stop=["ZZSTOP"], messages=[{"role": "user", "content": q}])
    assert (r.text, r.finish_reason) == ("echo: Say A ", "stop")
    a = g.anthropic_messages(ganth, stream=stream, model=MODEL, max_tokens=100, stop_sequences=["ZZSTOP"],
                             messages=[{"role": "user", "content": q}])
    assert a.text == "echo: Say A "
    assert (a.stop_reason, a.stop_sequence) in (("end_turn", None), ("stop_sequence", "ZZSTOP")), \
        "Gemini says STOP for a stop sequence too; the gateway may or may not recognise it"


def test_models_list_includes_gemini(goai):
    ids = [m.id for m in goai.models.list().data]
    assert {"gemini-2.5-flash", "gemini-2.5-pro", "gpt-4o-mini", "claude-sonnet-4-5"} <= set(ids), ids


# ---- upstream errors ---------------------------------------------------------------------------


@CLIENTS
def test_upstream_400_in_the_clients_format(ggw, recorder, mock, tag, client):
    model = "gemini/mock-fail-400"
    if client == "openai":
        r = g.raw_request(ggw.url, "POST", "/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": f"Hi {tag}"}]},
                          {"Authorization": f"Bearer {g.PROXY_KEY}"}, recorder)
        err = g.assert_openai_error(r, 400)
        with pytest.raises(openai.BadRequestError):
            g.openai_client(ggw, recorder).chat.completions.create(model=model, messages=[{"role": "user", "content": f"Hi {tag}"}])
    else:
        r = g.raw_request(ggw.url, "POST", "/v1/messages", {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": f"Hi {tag}"}]},
                          {"x-api-key": g.PROXY_KEY, "anthropic-version": "2023-06-01"}, recorder)
        err = g.assert_anthropic_error(r, 400)
        with pytest.raises(anthropic.BadRequestError):
            g.anthropic_client(ggw, recorder).messages.create(model=model, max_tokens=10, messages=[{"role": "user", "content": f"Hi {tag}"}])
    assert "mock-fail-400" in err["message"], f"the upstream's reason must reach the client: {err}"
    assert len(mock.with_nonce(tag)) == 2, "a 400 is not retried"


@STREAM
@CLIENTS
@pytest.mark.parametrize("route,attempts", [
    ("fallback-gemini-500", [("gemini", "mock-fail-500", 500, True), ("openai", "gpt-4o-mini", 200, False)]),
    ("fallback-to-gemini", [("openai", "mock-fail-500", 500, True), ("gemini", MODEL, 200, False)]),
], ids=["from-gemini", "to-gemini"])
def test_failover(fresh_ggw, recorder, mock, tag, client, stream, route, attempts):
    rid = f"rid-{tag}"
    if client == "openai":
        text = g.openai_chat(g.openai_client(fresh_ggw, recorder), stream=stream, request_id=rid, model=route,
                             messages=[{"role": "user", "content": f"Hi {tag}"}], **usage_kw(stream)).text
    else:
        text = g.anthropic_messages(g.anthropic_client(fresh_ggw, recorder), stream=stream, request_id=rid, model=route,
                                    max_tokens=100, messages=[{"role": "user", "content": f"Hi {tag}"}]).text
    assert text == f"echo: Hi {tag}"
    reqs = mock.with_nonce(tag)
    assert [r["path"].split("/")[1] for r in reqs] == [a[0] for a in attempts]
    assert all(r["status"] == a[2] for r, a in zip(reqs, attempts)), "each target was sent a valid request"
    g.assert_log(fresh_ggw.log_for(rid), request_id=rid, client_format=client, model=route, provider=attempts[-1][0],
                 upstream_model=attempts[-1][1], attempts=attempts, usage=g.expected_log_usage(attempts[-1][0]))


@CLIENTS
def test_upstream_500_and_429(fresh_ggw, recorder, mock, tag, client):
    if client == "openai":
        c = g.openai_client(fresh_ggw, recorder)
        with pytest.raises(openai.APIStatusError) as ei:
            c.chat.completions.create(model="gemini/mock-fail-500", messages=[{"role": "user", "content": f"Hi {tag}"}])
        assert 500 <= ei.value.status_code < 600
        with pytest.raises(openai.RateLimitError):
            c.chat.completions.create(model="gemini/mock-fail-429", messages=[{"role": "user", "content": f"Hi {tag}"}])
    else:
        c = g.anthropic_client(fresh_ggw, recorder)
        with pytest.raises(anthropic.APIStatusError) as ei:
            c.messages.create(model="gemini/mock-fail-500", max_tokens=10, messages=[{"role": "user", "content": f"Hi {tag}"}])
        assert 500 <= ei.value.status_code < 600
        with pytest.raises(anthropic.RateLimitError):
            c.messages.create(model="gemini/mock-fail-429", max_tokens=10, messages=[{"role": "user", "content": f"Hi {tag}"}])
    reqs = mock.with_nonce(tag)
    assert [r["path"] for r in reqs] == ["/gemini/v1beta/models/mock-fail-500:generateContent",
                                         "/gemini/v1beta/models/mock-fail-429:generateContent"]
    assert [r["status"] for r in reqs] == [500, 429], "both were valid Gemini requests"


@CLIENTS
@pytest.mark.parametrize("kind", ["error", "cut"], ids=["error-event", "connection-cut"])
def test_mid_stream_failure(fresh_ggw, recorder, mock, tag, client, kind):
    """Gemini fails after the first chunk (an error event, or a cut connection): what came first reaches
    the client, then a well-formed error event in the client's format."""
    rid, model, text = f"rid-{tag}", f"gemini/mock-stream-{kind}", ""
    if client == "openai":
        c = g.openai_client(fresh_ggw, recorder)
        with pytest.raises(openai.APIError) as ei:
            for ch in c.chat.completions.create(model=model, stream=True, extra_headers={"X-Request-ID": rid},
                                                messages=[{"role": "user", "content": f"Hi {tag}"}]):
                text += "".join(x.delta.content or "" for x in ch.choices)
        assert not isinstance(ei.value, openai.APIConnectionError), f"an error event, not a broken connection: {ei.value!r}"
        events, clean = g.parse_sse(recorder.last(rid).body)
        errors = [e for e in (json_or_none(d) for _, d in events) if e and "error" in e]
        assert errors and isinstance(errors[-1]["error"], dict) and errors[-1]["error"].get("message"), events[-3:]
    else:
        c = g.anthropic_client(fresh_ggw, recorder)
        with pytest.raises(anthropic.APIError):
            for ev in c.messages.create(model=model, stream=True, max_tokens=100, extra_headers={"X-Request-ID": rid},
                                        messages=[{"role": "user", "content": f"Hi {tag}"}]):
                if ev.type == "content_block_delta" and ev.delta.type == "text_delta":
                    text += ev.delta.text
        events, clean = g.parse_sse(recorder.last(rid).body)
        last_name, last_data = [e for e in events if e[0] != "ping"][-1]
        body = json_or_none(last_data)
        assert last_name == "error" and body and body.get("type") == "error" and body["error"].get("message"), events[-3:]
    assert clean, "the error event must be complete (terminated by a blank line)"
    assert text == "partial "
    assert len(mock.with_nonce(tag)) == 1
    assert fresh_ggw.log_for(rid)["outcome"] != "ok"


def test_client_disconnect_cancels_gemini_upstream(fresh_ggw, recorder, mock, tag):
    got = 0
    s = g.openai_client(fresh_ggw, recorder).chat.completions.create(
        model="gemini/mock-drip", stream=True, messages=[{"role": "user", "content": f"Hi {tag}"}])
    for ch in s:
        got += sum(1 for x in ch.choices if x.delta.content)
        if got >= 2:
            break
    s.close()
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and not all(r["client_gone"] for r in mock.with_nonce(tag)):
        time.sleep(0.1)
    reqs = mock.with_nonce(tag)
    assert len(reqs) == 1 and reqs[0]["client_gone"], "the gateway must stop reading the upstream when its client leaves"


# ================================================================================================
# Gemini as the CLIENT API: the google-genai SDK against the gateway
# ================================================================================================


@STREAM
@ALL_UPSTREAMS
def test_gemini_client_text(ggw, gem, mock, recorder, tag, upstream, stream):
    rid, user, model = f"rid-{tag}", f"Hello {tag}", g.UPSTREAM_MODEL[upstream]
    r = g.gemini_generate(gem, stream=stream, request_id=rid, model=model, contents=user, system_instruction=SYSTEM,
                          max_output_tokens=100, temperature=0.5, stop_sequences=["ZZSTOP"])
    assert (r.text, r.finish_reason, r.calls, r.thoughts) == (f"echo: {user}", "STOP", [], None)
    g.check_gemini_usage(r.usage, upstream)
    assert r.headers.get("x-request-id") == rid
    seen = recorder.last(rid)
    if stream:
        g.check_gemini_stream(bytes(seen.body))
    else:
        g.check_gemini_parts(json.loads(seen.body), "response")
    req = mock.one(tag)
    sent = sent_by_sdk(recorder, rid)
    if upstream == "gemini":
        check_gemini_request(req, model, stream)
        assert req["body"] == sent, "same format: the upstream gets exactly what the client sent"
    elif upstream == "openai":
        g.assert_upstream_auth(req, "openai")
        b = req["body"]
        assert [("system" if m["role"] in ("system", "developer") else m["role"], g.oa_text(m["content"])) for m in b["messages"]] == \
            [("system", SYSTEM), ("user", user)], "systemInstruction -> a system message"
        assert (b.get("max_completion_tokens"), b["temperature"], b["stop"] in (["ZZSTOP"], "ZZSTOP")) == (100, 0.5, True)
        assert bool(b.get("stream")) is stream
    else:
        g.assert_upstream_auth(req, "anthropic")
        b = req["body"]
        assert g.an_text(b["system"]) == SYSTEM
        assert [(m["role"], g.an_text(m["content"])) for m in b["messages"]] == [("user", user)]
        assert (b["max_tokens"], b["temperature"], b["stop_sequences"]) == (100, 0.5, ["ZZSTOP"])
    check_log(ggw, rid, "gemini", model, upstream)


@STREAM
def test_gemini_client_alias_takes_the_model_from_the_url(ggw, gem, mock, recorder, tag, stream):
    """Same format, but the route renames the model: it travels in the URL, the body is untouched."""
    rid = f"rid-{tag}"
    r = g.gemini_generate(gem, stream=stream, request_id=rid, model="g-alias", contents=f"Hi {tag}", temperature=0.2)
    assert r.text == f"echo: Hi {tag}"
    req = mock.one(tag)
    check_gemini_request(req, "gemini-2.5-pro", stream)
    assert req["body"] == sent_by_sdk(recorder, rid)
    check_log(ggw, rid, "gemini", "g-alias", "gemini", upstream_model="gemini-2.5-pro")


@STREAM
@ALL_UPSTREAMS
def test_gemini_client_tools(ggw, gem, mock, recorder, tag, upstream, stream):
    """A function call round trip through the SDK (automatic function calling off): the model's content goes
    back into the history as the SDK has it, then the functionResponse."""
    rid, model = f"rid-{tag}", g.UPSTREAM_MODEL[upstream]
    kw = dict(tools=[types.Tool(function_declarations=[WEATHER_DECL])], automatic_function_calling=NO_AFC,
              tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="ANY")))
    ask = types.Content(role="user", parts=[types.Part(text=f"What's the weather in Paris? {tag}")])
    r1 = g.gemini_generate(gem, stream=stream, request_id=rid, model=model, contents=[ask], **kw)
    assert [(c["name"], c["args"]) for c in r1.calls] == [("get_weather", TOOL_ARGS)]
    assert r1.finish_reason == "STOP", "Gemini finishes a function call with STOP"
    assert r1.text == (TOOL_PREAMBLE if upstream == "anthropic" else "")
    req1 = mock.one(tag)
    if upstream == "gemini":
        assert req1["body"] == sent_by_sdk(recorder, rid)
        assert r1.calls[0]["thought_signature"] == base64.b64decode(req1["issued"]["function_calls"][0]["thoughtSignature"])
    elif upstream == "openai":
        b = req1["body"]
        assert [(t["function"]["name"], t["function"].get("description"), t["function"]["parameters"]) for t in b["tools"]] == \
            [("get_weather", WEATHER_DESC, WEATHER_PARAMS)]
        assert b["tool_choice"] == "required", "mode ANY -> required"
    else:
        b = req1["body"]
        assert [(t["name"], t.get("description"), t["input_schema"]) for t in b["tools"]] == [("get_weather", WEATHER_DESC, WEATHER_PARAMS)]
        assert b["tool_choice"]["type"] == "any", "mode ANY -> any"
    check_log(ggw, rid, "gemini", model, upstream)

    answer = types.Content(role="user", parts=[types.Part.from_function_response(name="get_weather", response={"result": TOOL_RESULT})])
    rid2 = rid + "-2"
    r2 = g.gemini_generate(gem, stream=stream, request_id=rid2, model=model, contents=[ask, r1.content, answer], **kw)
    assert r2.text.startswith("tool result: ") and TOOL_RESULT in r2.text and r2.calls == []
    assert r2.finish_reason == "STOP"
    req2 = mock.with_nonce(tag)[1]
    if upstream == "gemini":
        assert req2["body"] == sent_by_sdk(recorder, rid2), "the signature comes back as the SDK re-encoded it"
    elif upstream == "openai":
        msgs = req2["body"]["messages"]
        assert [m["role"] for m in msgs] == ["user", "assistant", "tool"]
        (tc,) = msgs[1]["tool_calls"]
        assert (tc["function"]["name"], json.loads(tc["function"]["arguments"])) == ("get_weather", TOOL_ARGS)
        assert msgs[2]["tool_call_id"] == tc["id"] and TOOL_RESULT in g.oa_text(msgs[2]["content"])
    else:
        msgs = req2["body"]["messages"]
        assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
        (use,) = [b for b in g.an_blocks(msgs[1]["content"]) if b["type"] == "tool_use"]
        (res,) = [b for b in g.an_blocks(msgs[2]["content"]) if b["type"] == "tool_result"]
        assert (use["name"], use["input"], res["tool_use_id"]) == ("get_weather", TOOL_ARGS, use["id"])
        assert TOOL_RESULT in json.dumps(res.get("content"))
    check_log(ggw, rid2, "gemini", model, upstream)


@STREAM
@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
def test_gemini_client_thinking(gem, mock, tag, upstream, stream):
    """thinkingConfig (which the SDK sends in snake_case) -> the upstream's reasoning; thoughts come back as
    `thought: true` parts."""
    model = g.REASONING_MODEL[upstream]
    q = f"Think {tag}"
    r = g.gemini_generate(gem, stream=stream, model=model, contents=q, max_output_tokens=4096,
                          thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=1024))
    assert r.text == f"echo: {q}"
    assert r.thoughts == (f"Thinking about: {q}" if upstream == "anthropic" else f"Reasoning about: {q}")
    if upstream == "openai":  # reasoning_tokens are thoughts; candidatesTokenCount excludes them
        assert (r.usage.get("thoughts_token_count"), r.usage.get("candidates_token_count")) == \
            (mock_upstream.REASONING_TOKENS, mock_upstream.OPENAI_USAGE["completion_tokens"]), r.usage
    b = mock.one(tag)["body"]
    if upstream == "anthropic":
        assert b["thinking"] == {"type": "enabled", "budget_tokens": 1024} and b["max_tokens"] == 4096
    else:
        assert b.get("reasoning_effort") not in (None, "none")


@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
def test_gemini_client_image(gem, mock, tag, upstream):
    """inlineData (the SDK sends it URL-safe base64) -> the upstream's own image form, standard base64."""
    r = g.gemini_generate(gem, stream=False, model=g.UPSTREAM_MODEL[upstream], contents=[
        f"What is in this image? {tag}", types.Part.from_bytes(data=base64.b64decode(PNG_B64), mime_type="image/png")])
    assert r.text == "images: base64:image/png"
    b = mock.one(tag)["body"]
    if upstream == "openai":
        urls = [p["image_url"]["url"] for p in b["messages"][-1]["content"] if p["type"] == "image_url"]
        assert urls == [f"data:image/png;base64,{PNG_B64}"]
    else:
        srcs = [x["source"] for x in g.an_blocks(b["messages"][-1]["content"]) if x["type"] == "image"]
        assert srcs == [{"type": "base64", "media_type": "image/png", "data": PNG_B64}]


@ALL_UPSTREAMS
def test_gemini_client_count_tokens(gem, mock, recorder, tag, upstream):
    model = g.UPSTREAM_MODEL[upstream]
    text = f"Count these words please {tag}"
    res = gem.models.count_tokens(model=model, contents=text)
    if upstream == "gemini":
        req = mock.one(tag)
        assert req["path"] == f"/gemini/v1beta/models/{model}:countTokens"
        g.assert_upstream_auth(req, "gemini")
        assert res.total_tokens == req["issued"]["totalTokens"] == len(text) // 4 + 7, "exact, from the upstream"
        return
    big = gem.models.count_tokens(model=model, contents=text + " word" * 800)
    assert isinstance(res.total_tokens, int) and 0 < res.total_tokens < big.total_tokens
    assert [r["path"] for r in mock.with_nonce(tag) if r["path"].endswith(("/chat/completions", "/v1/messages"))] == [], \
        "counting must not run a completion"


def test_gemini_client_models(ggw, gem, recorder):
    names = [m.name for m in gem.models.list()]
    assert {"models/gpt-4o-mini", "models/claude-sonnet-4-5", "models/gemini-2.5-flash", "models/gemini-2.5-pro"} <= set(names), names
    r = g.raw_request(ggw.url, "GET", "/v1beta/models", headers=GEMINI_AUTH, recorder=recorder)
    assert r.status == 200, r.body[:300]
    models = r.json()["models"]
    assert all(m["name"].startswith("models/") for m in models) and len({m["name"] for m in models}) == len(models)
    assert all("generateContent" in (m.get("supportedGenerationMethods") or []) for m in models), models
    assert gem.models.get(model="gemini-2.5-flash").name == "models/gemini-2.5-flash"
    assert "no-such-model" in g.assert_gemini_error(
        g.raw_request(ggw.url, "GET", "/v1beta/models/no-such-model", headers=GEMINI_AUTH, recorder=recorder), 404)["message"]


@pytest.mark.parametrize("upstream", ["openai", "gemini"])
def test_gemini_client_stream_without_sse_is_a_json_array(ggw, mock, recorder, tag, upstream):
    """`:streamGenerateContent` without `alt=sse` answers one JSON array of GenerateContentResponse."""
    model = g.UPSTREAM_MODEL[upstream]
    r = g.raw_request(ggw.url, "POST", f"/v1beta/models/{model}:streamGenerateContent",
                      {"contents": [{"role": "user", "parts": [{"text": f"Hi {tag}"}]}]}, GEMINI_AUTH, recorder)
    assert r.status == 200 and r.headers.get("content-type", "").startswith("application/json"), (r.status, r.headers, r.body[:300])
    arr = r.json()
    assert isinstance(arr, list) and arr, arr
    for x in arr:
        g.check_gemini_parts(x, "array element")
    assert "".join(p.get("text", "") for x in arr for c in x.get("candidates") or [] for p in c.get("content", {}).get("parts") or []) == f"echo: Hi {tag}"
    assert [c.get("finishReason") for x in arr for c in x.get("candidates") or [] if c.get("finishReason")] == ["STOP"]
    if upstream == "gemini":
        assert mock.one(tag)["body"] == {"contents": [{"role": "user", "parts": [{"text": f"Hi {tag}"}]}]}


def test_gemini_client_key_in_query(ggw, mock, recorder, tag):
    r = g.raw_request(ggw.url, "POST", f"/v1beta/models/gpt-4o-mini:generateContent?key={g.PROXY_KEY}",
                      {"contents": [{"role": "user", "parts": [{"text": f"Hi {tag}"}]}]}, {}, recorder)
    assert r.status == 200, r.body[:300]
    assert r.json()["candidates"][0]["content"]["parts"] == [{"text": f"echo: Hi {tag}"}]
    g.assert_no_secret_leak_upstream(mock.one(tag))


def test_gemini_client_default_api_version(ggw, recorder, tag):
    """google-genai 3.6.1 calls `{base_url}/v1/models/...` unless told `api_version`: the Gemini API serves v1 too."""
    c = g.genai_client(ggw.url, recorder, api_version=None)
    assert c.models.generate_content(model="gpt-4o-mini", contents=f"Hi {tag}").text == f"echo: Hi {tag}"


# ---- errors in Google's shape --------------------------------------------------------------------


def test_gemini_client_bad_key(ggw, recorder, mock, tag):
    with pytest.raises(genai.errors.ClientError) as ei:
        g.genai_client(ggw.url, recorder, key="wrong-" + tag).models.generate_content(model="gpt-4o-mini", contents=f"Hi {tag}")
    assert ei.value.code in (400, 401, 403) and ei.value.status == g.GOOGLE_STATUS[ei.value.code]
    body = {"contents": [{"role": "user", "parts": [{"text": f"Hi {tag}"}]}]}
    for headers in ({"x-goog-api-key": "wrong-" + tag}, {}):
        g.assert_gemini_error(g.raw_request(ggw.url, "POST", "/v1beta/models/gpt-4o-mini:generateContent", body, headers, recorder),
                              (400, 401, 403))
    g.assert_gemini_error(g.raw_request(ggw.url, "POST", f"/v1beta/models/gpt-4o-mini:generateContent?key=wrong-{tag}", body, {},
                                        recorder), (400, 401, 403))
    assert mock.with_nonce(tag) == [], "an unauthenticated request must not reach an upstream"


@STREAM
def test_gemini_client_unknown_model(ggw, gem, recorder, mock, tag, stream):
    model = f"no-such-model-{tag}"
    with pytest.raises(genai.errors.ClientError) as ei:
        g.gemini_generate(gem, stream=stream, model=model, contents="hi")
    assert (ei.value.code, ei.value.status) == (404, "NOT_FOUND")
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    r = g.raw_request(ggw.url, "POST", f"/v1beta/models/{model}:{action}", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
                      GEMINI_AUTH, recorder)
    assert model in g.assert_gemini_error(r, 404)["message"]
    assert mock.with_nonce(tag) == []


@pytest.mark.parametrize("body", [b'{"contents": [', b'[1, 2]', b'{"contents": []}', b'{"contents": "hi"}'],
                         ids=["malformed", "not-an-object", "no-contents", "contents-string"])
def test_gemini_client_bad_input(ggw, recorder, body):
    r = g.raw_request(ggw.url, "POST", "/v1beta/models/gpt-4o-mini:generateContent", body, GEMINI_AUTH, recorder)
    g.assert_gemini_error(r, 400)


def test_gemini_client_upstream_errors(fresh_ggw, recorder, mock, tag):
    """An upstream's 400 / 429 reaches a Gemini client as INVALID_ARGUMENT / RESOURCE_EXHAUSTED."""
    c = g.genai_client(fresh_ggw.url, recorder)
    with pytest.raises(genai.errors.ClientError) as ei:
        c.models.generate_content(model="g-fail-400", contents=f"Hi {tag}")
    assert (ei.value.code, ei.value.status) == (400, "INVALID_ARGUMENT") and "mock-fail-400" in ei.value.message
    with pytest.raises(genai.errors.ClientError) as ei:
        c.models.generate_content(model="g-fail-429", contents=f"Hi {tag}")
    assert (ei.value.code, ei.value.status) == (429, "RESOURCE_EXHAUSTED")


def test_gemini_client_mid_stream_error(fresh_ggw, recorder, mock, tag):
    """An upstream failing mid-stream: the text so far, then `data: {"error": {code, message, status}}`,
    which the SDK raises."""
    rid, text = f"rid-{tag}", ""
    c = g.genai_client(fresh_ggw.url, recorder)
    cfg = types.GenerateContentConfig(http_options=types.HttpOptions(headers={"X-Request-ID": rid}))
    with pytest.raises(genai.errors.APIError):
        for ch in c.models.generate_content_stream(model="g-stream-error", contents=f"Hi {tag}", config=cfg):
            text += ch.text or ""
    assert text == "partial "
    events, clean = g.parse_sse(bytes(recorder.last(rid).body))
    assert clean, "the error event must be complete"
    err = json.loads(events[-1][1])["error"]
    assert isinstance(err.get("code"), int) and err.get("message") and err.get("status") == g.GOOGLE_STATUS.get(err["code"], err.get("status"))
    assert len(mock.with_nonce(tag)) == 1
