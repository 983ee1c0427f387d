"""The OpenAI Responses API as a CLIENT API: the `openai` SDK's `client.responses` pointed at the gateway
(`POST /v1/responses`, streamed and not).

* To the `openai` provider (it declares `paths: {responses: /responses}` in gateway.test.yaml) the request goes
  natively: `{OPENAI_BASE_URL}/responses`, the body byte for byte but for `model`; items the gateway does not
  translate (web_search_call, item_reference), previous_response_id and store pass through, and the mock
  (mock_responses.py) validates them as OpenAI does.
* To Anthropic (`claude-sonnet-4-5`) and the Groq-dialect OpenAI-compatible upstream (`llama-3.3-70b-versatile`,
  `fast`, `groq/...`; Chat Completions) it is translated: instructions -> system prompt, input items -> turns,
  function tools and tool_choice, two-turn tool round trips, text.format -> structured output,
  reasoning.effort -> thinking (the Anthropic signature rides in the reasoning item's encrypted_content and
  comes back byte for byte), max_output_tokens -> the output limit (status incomplete when hit), usage with
  cached / reasoning details. What it cannot translate it refuses with a 400 in OpenAI's shape:
  previous_response_id, store: true, input items like web_search_call or item_reference.
* Streams: the documented events in order, sequence_number 0, 1, 2, ..., response.created first and
  response.completed (or response.incomplete) last, carrying the same Response a non-streamed call returns.
* Errors: an upstream 400 is the client's 400; 429 / 500 / 529 fail over within a route; a failure mid-stream
  ends the stream with response.failed (or an `error` event); a bad proxy key is a 401 in OpenAI's shape.
"""

from __future__ import annotations

import json
import time

import openai
import pytest

import gwresponses as gr
import gwtest as g
from gwtest import ANY, IMAGE_URL, PNG_B64, SYSTEM, TOOL_RESULT, WEATHER_DESC, WEATHER_PARAMS
from mock_upstream import TOOL_ARGS, TOOL_PREAMBLE

STREAM = pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
ALL_UPSTREAMS = pytest.mark.parametrize("upstream", ["openai", "anthropic", "groq"])
TRANSLATED = pytest.mark.parametrize("upstream", ["anthropic", "groq"])
CLIENT_FORMAT = "responses"  # the per-request log line's client_format
RESPONSES_PATH = "/openai/v1/responses"
TOOL = {"type": "function", "name": "get_weather", "description": WEATHER_DESC, "parameters": WEATHER_PARAMS, "strict": False}
AUTH = {"Authorization": f"Bearer {g.PROXY_KEY}"}
UNTRANSLATABLE = {
    "web_search_call": {"type": "web_search_call", "id": "ws_0123456789abcdef0123", "status": "completed",
                        "action": {"type": "search", "query": "weather in Paris"}},
    "item_reference": {"type": "item_reference", "id": "msg_0123456789abcdef0123"},
    "file_search_call": {"type": "file_search_call", "id": "fs_0123456789abcdef0123", "status": "completed",
                         "queries": ["weather"], "results": None},
}


def upstream_path(upstream: str) -> str:
    return RESPONSES_PATH if upstream == "openai" else g.UPSTREAM_PATH[upstream]


def check_log(gw: g.Gateway, rid: str, model: str, upstream: str, reasoning: bool = False,
              upstream_model: str | None = None) -> None:
    um = upstream_model or model
    g.assert_log(gw.log_for(rid), request_id=rid, client_format=CLIENT_FORMAT, model=model, provider=upstream,
                 upstream_model=um, attempts=[(upstream, um, 200, False)], usage=g.expected_log_usage(upstream, reasoning))


def oa_turns(body: dict) -> list[tuple[str, str]]:
    """An OpenAI-format upstream's messages as (role, text), system and developer both as "system"."""
    return [("system" if m["role"] in ("system", "developer") else m["role"], g.oa_text(m.get("content")))
            for m in body["messages"]]


def an_system(body: dict) -> str:
    return g.an_text(body.get("system"))


def openai_max_tokens(body: dict) -> int | None:
    present = [k for k in ("max_tokens", "max_completion_tokens") if body.get(k) is not None]
    assert len(present) <= 1, f"both max_tokens and max_completion_tokens sent: {body}"
    return body[present[0]] if present else None


def assert_refused(r: g.Raw, *names: str) -> dict:
    """A 400 in OpenAI's shape whose param or message names each of `names`."""
    err = g.assert_openai_error(r, 400)
    said = f"{err.get('param')} {err['message']}"
    for n in names:
        assert n in said, f"the error must name {n!r}: {err}"
    return err


def post(gw: g.Gateway, recorder: g.Recorder, body, headers: dict | None = None) -> g.Raw:
    return g.raw_request(gw.url, "POST", "/v1/responses", body, {**AUTH, **(headers or {})}, recorder)


# ================================================================================================
# native: the openai provider serves /responses itself


@STREAM
def test_native_text_goes_through_byte_for_byte(gateway, oai, mock, recorder, tag, stream):
    q = f"Hello {tag}"
    r = gr.create(oai, recorder, stream=stream, model="openai/gpt-4o-mini", instructions=SYSTEM, input=q,
                  temperature=0.5, top_p=0.9, max_output_tokens=100, metadata={"case": tag}, truncation="auto",
                  text={"verbosity": "low"}, prompt_cache_key=f"k-{tag}")
    assert r.text == f"echo: {q}"
    gr.check_usage(r.usage, "openai")
    assert r.headers.get("x-request-id") == r.request_id
    req = mock.one(tag)
    assert req["path"] == RESPONSES_PATH and req["status"] == 200
    g.assert_upstream_auth(req, "openai")
    expected = dict(json.loads(r.extra["sent_raw"]), model="gpt-4o-mini")
    assert list(req["body"].items()) == list(expected.items()), \
        f"the body must reach OpenAI as sent (only `model` rewritten, field order kept):\n{req['body']}\n{expected}"
    assert req["raw_body_len"] == len(r.extra["sent_raw"]) - len("openai/"), "byte for byte but for the model name"
    assert r.response["id"] == req["issued"]["id"] and r.output == req["issued"]["output"], \
        "the client gets OpenAI's answer: its ids and items"
    check_log(gateway, r.request_id, "openai/gpt-4o-mini", "openai", upstream_model="gpt-4o-mini")


@STREAM
def test_native_tools_round_trip(oai, mock, recorder, tag, stream):
    history: list = [{"role": "user", "content": f"What's the weather in Paris? {tag}"}]
    r1 = gr.create(oai, recorder, stream=stream, model="gpt-4o-mini", input=history, tools=[TOOL],
                   tool_choice="required", parallel_tool_calls=False)
    (call,) = r1.calls
    issued = mock.one(tag)["issued"]
    assert call["call_id"] == issued["call_ids"][0] and r1.output == issued["output"]
    assert (call["name"], json.loads(call["arguments"])) == ("get_weather", TOOL_ARGS)
    history += r1.output + [{"type": "function_call_output", "call_id": call["call_id"], "output": TOOL_RESULT}]
    r2 = gr.create(oai, recorder, stream=stream, model="gpt-4o-mini", input=history, tools=[TOOL])
    assert r2.text == f"tool result: {TOOL_RESULT}"
    reqs = mock.with_nonce(tag)
    assert [q["path"] for q in reqs] == [RESPONSES_PATH] * 2
    assert reqs[1]["body"]["input"] == json.loads(json.dumps(history)), "the items go back to OpenAI unchanged"


@STREAM
def test_native_reasoning_round_trip(gateway, oai, mock, recorder, tag, stream):
    """Stateless reasoning (store: false + encrypted_content): OpenAI verifies the encrypted content it issued,
    so the second turn only succeeds if the gateway passed it through unchanged both ways."""
    q = f"Think {tag}"
    kw = dict(model="o4-mini", reasoning={"effort": "low", "summary": "auto"}, store=False,
              include=["reasoning.encrypted_content"])
    r1 = gr.create(oai, recorder, stream=stream, input=q, **kw)
    issued = mock.one(tag)["issued"]["reasoning"]
    assert [it["type"] for it in r1.output] == ["reasoning", "message"]
    rs = r1.output[0]
    assert (rs["id"], rs["summary"], rs["encrypted_content"]) == (issued["id"], issued["summary"], issued["encrypted_content"])
    gr.check_usage(r1.usage, "openai", reasoning=True)
    check_log(gateway, r1.request_id, "o4-mini", "openai", reasoning=True)
    history = [{"role": "user", "content": q}, *r1.output, {"role": "user", "content": f"Again {tag}"}]
    r2 = gr.create(oai, recorder, stream=stream, input=history, **kw)
    assert r2.text == f"echo: Again {tag}"
    assert mock.with_nonce(tag)[-1]["body"]["input"][1]["encrypted_content"] == issued["encrypted_content"]


def test_native_passes_state_and_untranslatable_items_through(oai, mock, recorder, tag):
    """What only OpenAI can resolve (stored responses, item references, hosted-tool items) reaches it verbatim."""
    r1 = gr.create(oai, recorder, stream=False, model="gpt-4o-mini", input=f"First {tag}", store=True)
    r2 = gr.create(oai, recorder, stream=False, model="gpt-4o-mini", input=f"Second {tag}",
                   previous_response_id=r1.response["id"])
    assert r2.text == f"echo: Second {tag}"
    assert mock.with_nonce(tag)[-1]["body"]["previous_response_id"] == r1.response["id"]
    items = [UNTRANSLATABLE["web_search_call"], {"type": "item_reference", "id": r1.output[0]["id"]},
             {"role": "user", "content": f"Third {tag}"}]
    r3 = gr.create(oai, recorder, stream=False, model="gpt-4o-mini", input=items, tools=[{"type": "web_search"}],
                   include=["web_search_call.action.sources"])
    assert r3.text == f"echo: Third {tag}"
    body = mock.with_nonce(tag)[-1]["body"]
    assert body["input"] == items and body["tools"] == [{"type": "web_search"}]
    assert body["include"] == ["web_search_call.action.sources"]


def test_native_unknown_parameter_is_openais_own_400(gateway, recorder, mock, tag):
    r = post(gateway, recorder, {"model": "gpt-4o-mini", "input": f"Hi {tag}", "frobnicate": True})
    err = g.assert_openai_error(r, 400)
    assert (err["param"], err["code"]) == ("frobnicate", "unknown_parameter"), err
    assert mock.one(tag)["status"] == 400, "the native route forwards what it does not know; OpenAI judges it"


@STREAM
def test_native_structured_output_and_incomplete(oai, mock, recorder, tag, stream):
    schema = {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"],
              "additionalProperties": False}
    r = gr.create(oai, recorder, stream=stream, model="gpt-4o-mini", input=f"Where? {tag}",
                  text={"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}})
    assert json.loads(r.text) == {"location": f"echo: Where? {tag}"}
    r = gr.create(oai, recorder, stream=stream, terminal="response.incomplete", model="gpt-4o-mini",
                  input=f"Long {tag}", max_output_tokens=16)
    assert (r.response["status"], r.response["incomplete_details"], r.text) == \
        ("incomplete", {"reason": "max_output_tokens"}, "echo")


# ================================================================================================
# translated: Anthropic Messages and Groq's Chat Completions


@STREAM
@TRANSLATED
def test_translated_text(gateway, oai, mock, recorder, tag, upstream, stream):
    model, q = g.UPSTREAM_MODEL[upstream], f"Hello {tag}"
    r = gr.create(oai, recorder, stream=stream, model=model, instructions=SYSTEM, input=q, max_output_tokens=100,
                  temperature=0.5)
    assert r.text == f"echo: {q}"
    (msg,) = r.output
    assert msg["type"] == "message" and msg["status"] == "completed"
    gr.check_usage(r.usage, upstream)
    assert r.response["model"], r.response
    assert r.headers.get("x-request-id") == r.request_id
    req = mock.one(tag)
    assert req["path"] == upstream_path(upstream)
    g.assert_upstream_auth(req, upstream)
    body = req["body"]
    assert body["model"] == model and bool(body.get("stream")) is stream
    assert body["temperature"] == 0.5
    if upstream == "anthropic":
        assert an_system(body) == SYSTEM, "instructions become the system prompt"
        assert [(m["role"], g.an_text(m["content"])) for m in body["messages"]] == [("user", q)]
        assert body["max_tokens"] == 100
    else:
        assert oa_turns(body) == [("system", SYSTEM), ("user", q)]
        assert openai_max_tokens(body) == 100
        if stream:
            assert (body.get("stream_options") or {}).get("include_usage") is True, \
                "response.completed carries usage: the gateway must ask the upstream for it"
    check_log(gateway, r.request_id, model, upstream)


@STREAM
@ALL_UPSTREAMS
def test_created_at_is_now(oai, recorder, tag, upstream, stream):
    """created_at is the Unix time the response was created (Anthropic answers carry no time of their own)."""
    t0 = time.time()
    r = gr.create(oai, recorder, stream=stream, model=g.UPSTREAM_MODEL[upstream], input=f"Hi {tag}")
    assert t0 - 5 <= r.response["created_at"] <= time.time() + 5, f"created_at {r.response['created_at']}, now {t0:.0f}"


@TRANSLATED
def test_translated_input_items(oai, mock, recorder, tag, upstream):
    """Message items of every role, text parts, assistant history; a developer message is a system instruction."""
    model = g.UPSTREAM_MODEL[upstream]
    items = [{"role": "developer", "content": "Dev rules."},
             {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "First"},
                                                             {"type": "input_text", "text": " question"}]},
             {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "First answer", "annotations": []}]},
             {"role": "user", "content": f"Second {tag}"}]
    r = gr.create(oai, recorder, stream=False, model=model, instructions=SYSTEM, input=items)
    assert r.text == f"echo: Second {tag}"
    body = mock.one(tag)["body"]
    if upstream == "anthropic":
        sys_text = an_system(body)
        assert SYSTEM in sys_text and "Dev rules." in sys_text and sys_text.index(SYSTEM) < sys_text.index("Dev rules."), sys_text
        assert [(m["role"], g.an_text(m["content"])) for m in body["messages"]] == \
            [("user", "First question"), ("assistant", "First answer"), ("user", f"Second {tag}")]
    else:
        turns = oa_turns(body)
        system = [t for role, t in turns if role == "system"]
        assert "\n".join(system).index(SYSTEM) < "\n".join(system).index("Dev rules."), turns
        assert [t for t in turns if t[0] != "system"] == \
            [("user", "First question"), ("assistant", "First answer"), ("user", f"Second {tag}")], turns
        assert turns[0][0] == "system", turns


@STREAM
@TRANSLATED
def test_translated_tools_round_trip(gateway, oai, mock, recorder, tag, upstream, stream):
    model = g.UPSTREAM_MODEL[upstream]
    history: list = [{"role": "user", "content": f"What's the weather in Paris? {tag}"}]
    r1 = gr.create(oai, recorder, stream=stream, model=model, instructions=SYSTEM, input=history, tools=[TOOL],
                   tool_choice="required", parallel_tool_calls=False)
    (call,) = r1.calls
    req1 = mock.one(tag)
    issued = req1["issued"]["tool_use_ids" if upstream == "anthropic" else "tool_call_ids"][0]
    assert call["call_id"] == issued, "call_id is the upstream's tool call id"
    assert (call["name"], json.loads(call["arguments"])) == ("get_weather", TOOL_ARGS)
    assert r1.text == (TOOL_PREAMBLE if upstream == "anthropic" else "")
    assert r1.output[-1] == call, "the call is the last output item"
    gr.check_usage(r1.usage, upstream)
    check_log(gateway, r1.request_id, model, upstream)
    b1 = req1["body"]
    if upstream == "anthropic":
        assert [(t["name"], t.get("description"), t["input_schema"]) for t in b1["tools"]] == [("get_weather", WEATHER_DESC, WEATHER_PARAMS)]
        assert b1["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    else:
        assert [(t["type"], t["function"]["name"], t["function"]["parameters"]) for t in b1["tools"]] == \
            [("function", "get_weather", WEATHER_PARAMS)]
        assert b1["tool_choice"] == "required" and b1["parallel_tool_calls"] is False

    # the second turn: the output items as they came, then the result
    history += r1.output + [{"type": "function_call_output", "call_id": call["call_id"], "output": TOOL_RESULT}]
    r2 = gr.create(oai, recorder, stream=stream, model=model, instructions=SYSTEM, input=history, tools=[TOOL])
    assert r2.text == f"tool result: {TOOL_RESULT}" and r2.calls == []
    b2 = mock.with_nonce(tag)[-1]["body"]
    if upstream == "anthropic":
        assert [m["role"] for m in b2["messages"]] == ["user", "assistant", "user"]
        blocks = g.an_blocks(b2["messages"][1]["content"])
        assert [(b["id"], b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"] == [(call["call_id"], "get_weather", TOOL_ARGS)]
        assert [b["text"] for b in blocks if b["type"] == "text"] in ([], [TOOL_PREAMBLE])
        results = [b for b in g.an_blocks(b2["messages"][2]["content"]) if b["type"] == "tool_result"]
        assert [(x["tool_use_id"], g.an_text(x.get("content"))) for x in results] == [(call["call_id"], TOOL_RESULT)]
    else:
        msgs = [m for m in b2["messages"] if m["role"] not in ("system", "developer")]
        assert [m["role"] for m in msgs] == ["user", "assistant", "tool"]
        tcs = msgs[1]["tool_calls"]
        assert [(t["id"], t["function"]["name"], json.loads(t["function"]["arguments"])) for t in tcs] == \
            [(call["call_id"], "get_weather", TOOL_ARGS)]
        assert (msgs[2]["tool_call_id"], g.oa_text(msgs[2]["content"])) == (call["call_id"], TOOL_RESULT)


@TRANSLATED
def test_translated_named_tool_choice(oai, mock, recorder, tag, upstream):
    other = dict(TOOL, name="get_time", description="Get the time")
    r = gr.create(oai, recorder, stream=False, model=g.UPSTREAM_MODEL[upstream], input=f"Time? {tag}",
                  tools=[TOOL, other], tool_choice={"type": "function", "name": "get_time"})
    assert [c["name"] for c in r.calls] == ["get_time"]
    tc = mock.one(tag)["body"]["tool_choice"]
    if upstream == "anthropic":
        assert tc == {"type": "tool", "name": "get_time"}, tc
    else:
        assert tc == {"type": "function", "function": {"name": "get_time"}}, tc


@TRANSLATED
def test_translated_images(oai, mock, recorder, tag, upstream):
    r = gr.create(oai, recorder, stream=False, model=g.UPSTREAM_MODEL[upstream], input=[{"role": "user", "content": [
        {"type": "input_text", "text": f"What is this? {tag}"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG_B64}", "detail": "auto"},
        {"type": "input_image", "image_url": IMAGE_URL, "detail": "low"}]}])
    assert r.text == f"images: base64:image/png, url:{IMAGE_URL}"
    content = mock.one(tag)["body"]["messages"][-1]["content"]
    if upstream == "anthropic":
        imgs = [b["source"] for b in content if b["type"] == "image"]
        assert imgs == [{"type": "base64", "media_type": "image/png", "data": PNG_B64}, {"type": "url", "url": IMAGE_URL}]
    else:
        assert [p["image_url"]["url"] for p in content if p["type"] == "image_url"] == [f"data:image/png;base64,{PNG_B64}", IMAGE_URL]


@STREAM
@TRANSLATED
def test_translated_structured_output(oai, mock, recorder, tag, upstream, stream):
    schema = {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"],
              "additionalProperties": False}
    q = f"Where? {tag}"
    r = gr.create(oai, recorder, stream=stream, model=g.UPSTREAM_MODEL[upstream], input=q,
                  text={"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}})
    body = mock.one(tag)["body"]
    if upstream == "anthropic":
        forced = body.get("tool_choice") or {}
        via_tool = forced.get("type") == "tool" and any(
            t.get("name") == forced.get("name") and t.get("input_schema") == schema for t in body.get("tools") or [])
        via_format = ((body.get("output_config") or {}).get("format") or {}).get("schema") == schema
        assert via_tool or via_format, f"the schema must reach Anthropic (a forced tool or output_config.format): {body}"
        assert r.calls == [], "structured output is text, not a function call"
        if via_tool:  # the forced tool's input is the answer (the mock's Anthropic writes a preamble first)
            assert json.loads(r.text[r.text.index("{"):]) == TOOL_ARGS, r.text
    else:
        rf = body.get("response_format") or {}
        assert rf.get("type") == "json_schema" and rf["json_schema"]["name"] == "place" and rf["json_schema"]["schema"] == schema, rf
        assert r.text == f"echo: {q}"


@STREAM
def test_translated_reasoning_round_trip(gateway, oai, mock, recorder, tag, stream):
    """reasoning.effort -> Anthropic thinking; the thinking comes back as a reasoning item (summary = the thinking
    text, encrypted_content = the signature); sent back, it reaches Anthropic as the same thinking block."""
    q, model = f"Think {tag}", "claude-sonnet-4-5"
    kw = dict(model=model, max_output_tokens=8000, reasoning={"effort": "low", "summary": "auto"}, store=False,
              include=["reasoning.encrypted_content"])
    r1 = gr.create(oai, recorder, stream=stream, input=q, **kw)
    req1 = mock.one(tag)
    issued = req1["issued"]
    th = req1["body"].get("thinking") or {}
    assert th.get("type") in ("enabled", "adaptive"), f"reasoning.effort must turn thinking on: {req1['body']}"
    if th["type"] == "enabled":
        assert 1024 <= th["budget_tokens"] < req1["body"]["max_tokens"], req1["body"]
    assert "store" not in req1["body"] and "include" not in req1["body"]
    assert [it["type"] for it in r1.output] == ["reasoning", "message"]
    rs = r1.output[0]
    assert rs["summary"] == [{"type": "summary_text", "text": issued["thinking"]}]
    assert rs["encrypted_content"] == issued["signature"], "the signature must reach the client unchanged"
    assert r1.text == f"echo: {q}"
    gr.check_usage(r1.usage, "anthropic", reasoning=True)
    check_log(gateway, r1.request_id, model, "anthropic", reasoning=True)

    history = [{"role": "user", "content": q}, *r1.output, {"role": "user", "content": f"Again {tag}"}]
    r2 = gr.create(oai, recorder, stream=stream, input=history, **kw)  # the mock 400s on any other signature
    assert r2.text == f"echo: Again {tag}"
    sent = mock.with_nonce(tag)[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert g.an_blocks(sent[1]["content"])[0] == {"type": "thinking", "thinking": issued["thinking"], "signature": issued["signature"]}


def test_translated_redacted_thinking_round_trip(oai, mock, recorder, tag):
    """Redacted thinking has no text: whatever reasoning items carry it, sent back they reach Anthropic intact."""
    q = f"Please redact {tag}"
    kw = dict(model="claude-sonnet-4-5", max_output_tokens=8000, reasoning={"effort": "low"}, store=False,
              include=["reasoning.encrypted_content"])
    r1 = gr.create(oai, recorder, stream=False, input=q, **kw)
    issued = mock.one(tag)["issued"]
    assert r1.text == f"echo: {q}"
    encs = [it.get("encrypted_content") or "" for it in r1.items("reasoning")]
    assert any(issued["redacted"] in e for e in encs), f"the redacted data must reach the client: {r1.output}"
    history = [{"role": "user", "content": q}, *r1.output, {"role": "user", "content": f"Again {tag}"}]
    r2 = gr.create(oai, recorder, stream=False, input=history, **kw)
    assert r2.text == f"echo: Again {tag}"
    blocks = g.an_blocks(mock.with_nonce(tag)[-1]["body"]["messages"][1]["content"])
    assert blocks[:2] == [{"type": "redacted_thinking", "data": issued["redacted"]},
                          {"type": "thinking", "thinking": issued["thinking"], "signature": issued["signature"]}]


@STREAM
@TRANSLATED
def test_translated_max_output_tokens_hit(oai, mock, recorder, tag, upstream, stream):
    r = gr.create(oai, recorder, stream=stream, terminal="response.incomplete", model=g.UPSTREAM_MODEL[upstream],
                  input=f"Long {tag}", max_output_tokens=3)
    assert r.response["status"] == "incomplete"
    assert r.response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert r.text == "echo"
    assert r.items("message")[0]["status"] == "incomplete", "the cut message item is `incomplete` too, as OpenAI marks it"
    body = mock.one(tag)["body"]
    assert (body["max_tokens"] if upstream == "anthropic" else openai_max_tokens(body)) == 3


def test_default_max_tokens_for_anthropic(oai, mock, recorder, tag):
    gr.create(oai, recorder, stream=False, model="claude-sonnet-4-5", input=f"Hi {tag}")
    assert mock.one(tag)["body"]["max_tokens"] == 1234, "server.default_max_tokens from the config"


# ================================================================================================
# the stream's final response is the non-streamed response


SCENARIOS = {
    "text": dict(input="Hello NONCE", instructions=SYSTEM),
    "tool": dict(input="Weather? NONCE", tools=[TOOL], tool_choice="required"),
    "reasoning": dict(input="Think NONCE", reasoning={"effort": "low", "summary": "auto"}, max_output_tokens=8000),
}


@pytest.mark.parametrize("upstream,scenario", [(u, s) for s in SCENARIOS for u in ("openai", "anthropic", "groq")
                                                if not (s == "reasoning" and u == "groq")])
def test_stream_final_response_equals_nonstreamed(oai, recorder, tag, upstream, scenario):
    model = "o4-mini" if scenario == "reasoning" and upstream == "openai" else g.UPSTREAM_MODEL[upstream]
    kw = json.loads(json.dumps(SCENARIOS[scenario]).replace("NONCE", tag))
    a = gr.create(oai, recorder, stream=False, model=model, **kw)
    b = gr.create(oai, recorder, stream=True, model=model, **kw)
    assert gr.normalized(b.response) == gr.normalized(a.response)
    added = [e["item"]["type"] for e in b.events if e["type"] == "response.output_item.added"]
    assert added == [it["type"] for it in a.output]


# ================================================================================================
# what the gateway cannot translate: refused, never dropped


@TRANSLATED
def test_previous_response_id_refused_when_translated(gateway, recorder, mock, tag, upstream):
    r = post(gateway, recorder, {"model": g.UPSTREAM_MODEL[upstream], "input": f"Hi {tag}",
                                 "previous_response_id": "resp_0123456789abcdef"})
    assert_refused(r, "previous_response_id")
    assert mock.with_nonce(tag) == []


@TRANSLATED
def test_store_true_refused_when_translated(gateway, oai, recorder, mock, tag, upstream):
    r = post(gateway, recorder, {"model": g.UPSTREAM_MODEL[upstream], "input": f"Hi {tag}", "store": True})
    assert_refused(r, "store")
    assert mock.with_nonce(tag) == []
    ok = gr.create(oai, recorder, stream=False, model=g.UPSTREAM_MODEL[upstream], input=f"Hi again {tag}", store=False)
    assert ok.text == f"echo: Hi again {tag}", "store: false is what the gateway does anyway"


@TRANSLATED
@pytest.mark.parametrize("kind", list(UNTRANSLATABLE))
def test_untranslatable_input_item_refused(gateway, recorder, mock, tag, upstream, kind):
    items = [{"role": "user", "content": "Look it up"}, UNTRANSLATABLE[kind], {"role": "user", "content": f"And? {tag}"}]
    r = post(gateway, recorder, {"model": g.UPSTREAM_MODEL[upstream], "input": items})
    assert_refused(r, kind)
    assert mock.with_nonce(tag) == [], f"a {kind} item must not be dropped silently"


@TRANSLATED
def test_hosted_tool_offer_left_out_when_translated(gateway, recorder, mock, tag, upstream):
    """A hosted OpenAI tool the client merely offers (Codex always offers `web_search`) has no counterpart
    upstream: it is left out and the function tools go; forcing it with `tool_choice` is refused."""
    r = post(gateway, recorder, {"model": g.UPSTREAM_MODEL[upstream], "input": f"Search {tag}",
                                 "tools": [TOOL, {"type": "web_search"}]})
    assert r.status == 200, r.body
    (up,) = mock.with_nonce(tag)
    assert "web_search" not in json.dumps(up["body"]) and "get_weather" in json.dumps(up["body"]["tools"])
    r = post(gateway, recorder, {"model": g.UPSTREAM_MODEL[upstream], "input": f"Search again {tag}",
                                 "tools": [TOOL, {"type": "web_search"}], "tool_choice": {"type": "web_search"}})
    assert_refused(r, "tool_choice", "web_search")
    assert len(mock.with_nonce(tag)) == 1


@TRANSLATED
def test_namespace_tools_flatten_and_calls_come_back_namespaced(gateway, recorder, mock, tag, upstream):
    """Codex groups tools in a `namespace`: upstream they are `{namespace}__{name}` functions, and the call the
    model makes comes back to the client with its `namespace` and plain `name`, as OpenAI would send it."""
    ns = {"type": "namespace", "name": "crm", "description": "Customer records.",
          "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]}
    for stream in (False, True):
        r = post(gateway, recorder, {"model": g.UPSTREAM_MODEL[upstream], "input": f"Find {tag} {stream}",
                                     "tools": [ns], "stream": stream})
        assert r.status == 200, r.body
        up = mock.with_nonce(tag)[-1]
        assert "crm__lookup" in json.dumps(up["body"]["tools"]) and '"namespace"' not in json.dumps(up["body"])
        if stream:
            events = [json.loads(line[6:]) for line in r.body.decode().splitlines() if line.startswith("data: {")]
            (item,) = [e["item"] for e in events
                       if e.get("type") == "response.output_item.done" and e["item"]["type"] == "function_call"]
        else:
            (item,) = [i for i in r.json()["output"] if i["type"] == "function_call"]
        assert (item["type"], item.get("namespace"), item["name"]) == ("function_call", "crm", "lookup"), item


# ================================================================================================
# errors


@pytest.mark.parametrize("model", ["openai/mock-fail-400", "anthropic/mock-fail-400", "groq/mock-fail-400"])
def test_upstream_400_is_the_clients_400(fresh_gateway, recorder, mock, tag, model):
    r = post(fresh_gateway, recorder, {"model": model, "input": f"Hi {tag}"})
    g.assert_openai_error(r, 400)
    assert len(mock.with_nonce(tag)) == 1
    with pytest.raises(openai.BadRequestError):
        g.openai_client(fresh_gateway, recorder).responses.create(model=model, input=f"Again {tag}")


FAILOVER = [
    ("fallback-500", [("openai", "mock-fail-500", 500, True), ("anthropic", "claude-sonnet-4-5", 200, False)]),
    ("fallback-429", [("openai", "mock-fail-429", 429, True), ("anthropic", "claude-sonnet-4-5", 200, False)]),
    ("fallback-529", [("anthropic", "mock-overloaded", 529, True), ("openai", "gpt-4o-mini", 200, False)]),
]


@STREAM
@pytest.mark.parametrize("route,attempts", FAILOVER, ids=[f[0] for f in FAILOVER])
def test_failover(fresh_gateway, recorder, mock, tag, stream, route, attempts):
    c = g.openai_client(fresh_gateway, recorder)
    r = gr.create(c, recorder, stream=stream, model=route, input=f"Hi {tag}")
    assert r.text == f"echo: Hi {tag}"
    reqs = mock.with_nonce(tag)
    assert [(q["path"], q["body"]["model"]) for q in reqs] == [(upstream_path(p), m) for p, m, _, _ in attempts], \
        "upstream requests, in order (OpenAI natively at /responses)"
    for q, (p, _, st, _) in zip(reqs, attempts):
        g.assert_upstream_auth(q, p)
        assert q["status"] == st, "the failing target must have been sent a valid request"
    final_provider, final_model = attempts[-1][0], attempts[-1][1]
    gr.check_usage(r.usage, final_provider)
    g.assert_log(fresh_gateway.log_for(r.request_id), request_id=r.request_id, client_format=CLIENT_FORMAT, model=route,
                 provider=final_provider, upstream_model=final_model, attempts=attempts,
                 usage=g.expected_log_usage(final_provider))


@STREAM
def test_no_failover_on_400(fresh_gateway, recorder, mock, tag, stream):
    c = g.openai_client(fresh_gateway, recorder)
    with pytest.raises(openai.BadRequestError):
        kw = dict(model="no-failover-400", input=f"Hi {tag}", extra_headers={"X-Request-ID": f"rid-{tag}"})
        if stream:
            for _ in c.responses.create(stream=True, **kw):
                pass
        else:
            c.responses.create(**kw)
    assert [(q["path"], q["body"]["model"]) for q in mock.with_nonce(tag)] == [(RESPONSES_PATH, "mock-fail-400")]
    g.assert_log(fresh_gateway.log_for(f"rid-{tag}"), request_id=f"rid-{tag}", client_format=CLIENT_FORMAT,
                 model="no-failover-400", provider=ANY, upstream_model=ANY, status=400, outcome="error",
                 attempts=[("openai", "mock-fail-400", 400, True)])


@ALL_UPSTREAMS
@pytest.mark.parametrize("kind", ["error", "cut"], ids=["error-event", "connection-cut"])
def test_mid_stream_failure(fresh_gateway, recorder, mock, tag, upstream, kind):
    """After the first byte there is no failover: the stream ends with response.failed (or an `error` event),
    after what the upstream sent before failing."""
    rid = f"rid-{tag}"
    c = g.openai_client(fresh_gateway, recorder)
    try:
        for _ in c.responses.create(model=f"{upstream}/mock-stream-{kind}", input=f"Hi {tag}", stream=True,
                                    extra_headers={"X-Request-ID": rid}):
            pass
    except openai.APIConnectionError as e:
        pytest.fail(f"the stream must end with an event, not a broken connection: {e!r}")
    except openai.APIError:
        pass  # an `error` event with an `error` object: the SDK raises it
    raw = bytes(recorder.last(rid).body)
    events, clean = g.parse_sse(raw)
    assert clean, "the last event must be complete (terminated by a blank line)"
    objs = [json.loads(d) for _, d in events]
    assert objs[0]["type"] == "response.created"
    last = objs[-1]
    if last.get("type") == "response.failed":
        assert last["response"]["status"] == "failed" and last["response"]["error"]["message"], last
        assert last["response"]["id"] == objs[0]["response"]["id"], \
            f"response.failed must be about the response the stream created: {last['response']['id']!r}"
    else:
        assert last.get("type") == "error", f"the stream must end with response.failed or error: {objs[-3:]}"
        assert last.get("message") or (last.get("error") or {}).get("message"), last
    assert [o.get("sequence_number") for o in objs] == list(range(len(objs))), "sequence numbers stay in order"
    text = "".join(o.get("delta", "") for o in objs if o.get("type") == "response.output_text.delta")
    assert text == "partial ", "what the upstream sent before failing reaches the client first"
    assert not [o for o in objs if o.get("type") == "response.completed"]
    assert len(mock.with_nonce(tag)) == 1
    assert fresh_gateway.log_for(rid)["outcome"] != "ok"


def test_bad_proxy_key(gateway, recorder, mock, tag):
    r = g.raw_request(gateway.url, "POST", "/v1/responses", {"model": "gpt-4o-mini", "input": f"Hi {tag}"},
                      {"Authorization": f"Bearer wrong-{tag}"}, recorder)
    g.assert_openai_error(r, 401)
    r = g.raw_request(gateway.url, "POST", "/v1/responses", {"model": "claude-sonnet-4-5", "input": f"Hi {tag}"}, None, recorder)
    g.assert_openai_error(r, 401)
    with pytest.raises(openai.AuthenticationError):
        g.openai_client(gateway, recorder, key="wrong-key").responses.create(model="gpt-4o-mini", input=f"Hi {tag}")
    assert mock.with_nonce(tag) == [], "an unauthenticated request must not reach an upstream"


BAD_INPUT = {
    "malformed-json": b'{"model": "MODEL", "input": "hi"',
    "body-not-object": [1, 2, 3],
    "missing-model": {"input": "hi"},
    "input-number": {"model": "MODEL", "input": 42},
    "item-not-object": {"model": "MODEL", "input": ["hi"]},
}


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-5"])
@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input(gateway, recorder, case, model):
    body = BAD_INPUT[case]
    body = body.replace(b"MODEL", model.encode()) if isinstance(body, bytes) else \
        json.loads(json.dumps(body).replace('"MODEL"', json.dumps(model)))
    g.assert_openai_error(post(gateway, recorder, body), 400)


# ================================================================================================
# routing


RESOLUTION = [
    ("smart", "anthropic", "claude-sonnet-4-5"),
    ("fast", "groq", "llama-3.3-70b-versatile"),
    ("groq/llama-3.3-70b-versatile", "groq", "llama-3.3-70b-versatile"),
    ("gpt-4o", "openai", "gpt-4o"),
    ("claude-e2e-glob-model", "anthropic", "claude-e2e-glob-model"),
]


@pytest.mark.parametrize("requested,provider,upstream_model", RESOLUTION, ids=[r[0] for r in RESOLUTION])
def test_model_resolution(gateway, oai, recorder, mock, tag, requested, provider, upstream_model):
    r = gr.create(oai, recorder, stream=False, model=requested, input=f"Hi {tag}")
    assert r.text == f"echo: Hi {tag}"
    req = mock.one(tag)
    assert (req["path"], req["body"]["model"]) == (upstream_path(provider), upstream_model)
    g.assert_upstream_auth(req, provider)
    check_log(gateway, r.request_id, requested, provider, upstream_model=upstream_model)


def test_responses_and_chat_share_the_gateway(oai, recorder, mock, tag):
    """The new endpoint leaves Chat Completions to the same provider as it was."""
    r = g.openai_chat(oai, stream=False, model="gpt-4o-mini", messages=[{"role": "user", "content": f"Chat {tag}"}])
    assert r.text == f"echo: Chat {tag}"
    assert mock.one(tag)["path"] == "/openai/v1/chat/completions"
