"""The mock's Cohere upstream: the v2 Chat API (mounted by mock_upstream.py at /cohere, so a gateway is
pointed at it with COHERE_BASE_URL=http://127.0.0.1:P/cohere).

    POST /cohere/v2/chat     a V2ChatResponse, or (stream: true) an SSE stream of V2ChatStreamResponse events

What it checks, as Cohere does (sources in the brackets; "SDK" is the `cohere` Python SDK 7.3.1, generated
from Cohere's API definition):

* `Authorization: Bearer <key>` [docs.cohere.com/reference/chat]: none -> 401 {"message": "no api key
  supplied"}, wrong -> 401 {"message": "invalid api token"} [cohere-toolkit#857, wandb/edu#155].
* The body: top-level fields of V2ChatRequest only [SDK v2/raw_client.py chat()]; an unknown field (top
  level or inside a message / tool) -> 422 {"message": "unknown field: parameter 'X' is not a valid field.
  For proper usage, please refer to https://docs.cohere.com/reference/chat"} [agno#3503]; other mistakes ->
  400 {"id", "message": "invalid request: ..."} [Risuai#504, chat-ui#1404]; an unknown model -> 404.
* messages: roles system / user / assistant / tool (discriminated by `role` [SDK types/chat_message_v2.py]);
  user content a string or text / image_url parts [SDK types/content.py]; assistant `tool_plan`,
  `tool_calls` [{id, type: function, function: {name, arguments: a JSON string}}] [SDK tool_call_v2.py];
  tool messages {tool_call_id, content} [SDK tool_message_v2.py] answering the previous assistant turn's
  calls, every call answered before the next user / assistant message.
* tools [{type: function, function: {name, description, parameters}}] [SDK tool_v2.py]; tool_choice REQUIRED
  or NONE only, and only with tools [SDK chat() docstring]; response_format {type: text} | {type:
  json_object, json_schema?}, not together with tools [SDK response_format_v2.py: "not supported when used
  in combinations with the documents or tools parameters"]; thinking {type: enabled|disabled,
  token_budget > 0} [SDK thinking.py]; p 0.01-0.99, k 0-500, penalties 0-1, at most 5 stop_sequences
  [SDK chat() docstring].

Answers: `echo: <last user text>`; a tool call with a tool_plan (finish_reason TOOL_CALL) when tools are
offered; `tool result: ...` after tool messages; `images: ...` for images; JSON shaped by the schema for
response_format json_object; a `thinking` content item first when thinking is enabled. `usage` has
`billed_units` and `tokens` with different numbers (COHERE_USAGE) and `cached_tokens`.

Streams: `event: <type>\\ndata: <json>\\n\\n` SSE [vercel/ai's Cohere provider tests], events message-start,
content-start / content-delta / content-end, tool-plan-delta, tool-call-start / -delta / -end, and
message-end with delta.finish_reason and delta.usage [SDK v2/types/v2chat_stream_response.py,
docs.cohere.com/docs/streaming]; no [DONE]. A failure mid-stream is a message-end with finish_reason ERROR
and delta.error [SDK chat_message_end_event_delta.py].

Triggers (model names starting with): mock-fail-500 / -429 / -400, mock-overloaded (503), mock-slow,
mock-stream-error (message-end ERROR after a text delta), mock-stream-cut.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from typing import Any

import mock_upstream as mu

# Numbers the tests assert on: `tokens` (what the model processed, the prompt template included) differ
# from `billed_units`; cached_tokens is part of tokens.input_tokens.
COHERE_USAGE = {"billed_input_tokens": 12, "billed_output_tokens": 9, "input_tokens": 31, "output_tokens": 9, "cached_tokens": 5}
MODELS = ("command-a-03-2025", "command-r-plus-08-2024", "command-r-08-2024", "command-r7b-12-2024", "command-a-reasoning-08-2025")
THINKING_PREFIX = "Thinking about: "
DOCS = "For proper usage, please refer to https://docs.cohere.com/reference/chat"
REQUEST_FIELDS = {"model", "messages", "tools", "strict_tools", "documents", "citation_options", "response_format", "safety_mode",
                  "max_tokens", "stop_sequences", "temperature", "seed", "frequency_penalty", "presence_penalty", "k", "p",
                  "logprobs", "tool_choice", "thinking", "priority", "stream"}
MESSAGE_FIELDS = {"system": {"role", "content"}, "user": {"role", "content"}, "tool": {"role", "tool_call_id", "content"},
                  "assistant": {"role", "content", "tool_plan", "tool_calls", "citations"}}


def tool_plan_for(name: str) -> str:
    return f"I will use the {name} tool to answer this."


class CohereError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def bad(message: str) -> CohereError:
    return CohereError(400, f"invalid request: {message}")


def unknown(field: str) -> CohereError:
    return CohereError(422, f"unknown field: parameter '{field}' is not a valid field. {DOCS}")


def _keys(obj: dict, allowed: set[str]) -> None:
    for k in obj:
        if k not in allowed:
            raise unknown(k)


def _num(body: dict, name: str, lo: float, hi: float | None, integer: bool = False) -> None:
    v = body.get(name)
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)):
        raise bad(f"{name} must be {'an integer' if integer else 'a number'}")
    if v < lo or (hi is not None and v > hi):
        raise bad(f"{name} must be between {lo} and {hi}" if hi is not None else f"{name} must be at least {lo}")


def _content(c: Any, where: str, parts: tuple[str, ...]) -> None:
    if isinstance(c, str):
        return
    if not isinstance(c, list):
        raise bad(f"{where}.content must be a string or a list of content blocks")
    for j, p in enumerate(c):
        if not isinstance(p, dict) or p.get("type") not in parts:
            raise bad(f"{where}.content[{j}].type must be one of {', '.join(parts)}")
        t = p["type"]
        if t == "text":
            _keys(p, {"type", "text"})
            if not isinstance(p.get("text"), str):
                raise bad(f"{where}.content[{j}].text must be a string")
        elif t == "thinking":
            _keys(p, {"type", "thinking"})
        elif t == "image_url":
            _keys(p, {"type", "image_url"})
            iu = p.get("image_url")
            if not isinstance(iu, dict):
                raise bad(f"{where}.content[{j}].image_url must be an object")
            _keys(iu, {"url", "detail"})
            url = iu.get("url")
            if not isinstance(url, str) or not (mu.DATA_URI.match(url) or re.match(r"https?://", url)):
                raise bad(f"{where}.content[{j}].image_url.url must be a base64 data URI or a web URL")
            if iu.get("detail") not in (None, "auto", "low", "high"):
                raise bad(f"{where}.content[{j}].image_url.detail must be one of auto, low, high")
        elif t == "document":
            _keys(p, {"type", "document"})


def validate(body: Any) -> None:
    if not isinstance(body, dict):
        raise bad("body must be a JSON object")
    _keys(body, REQUEST_FIELDS)
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise bad("model is required")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise bad("messages must be a non-empty list")
    tools = body.get("tools")
    names: list[str] = []
    if tools is not None:
        if not isinstance(tools, list):
            raise bad("tools must be a list")
        for i, t in enumerate(tools):
            if not isinstance(t, dict):
                raise bad(f"tools[{i}] must be an object")
            _keys(t, {"type", "function"})
            fn = t.get("function")
            if t.get("type") != "function" or not isinstance(fn, dict):
                raise bad(f"tools[{i}] must be a function tool")
            _keys(fn, {"name", "description", "parameters"})
            if not isinstance(fn.get("name"), str) or not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", fn["name"]):
                raise bad(f"tools[{i}].function.name is invalid")
            if not isinstance(fn.get("parameters"), dict):
                raise bad(f"tools[{i}].function.parameters must be a JSON schema object")
            names.append(fn["name"])
    tc = body.get("tool_choice")
    if tc is not None:
        if tc not in ("REQUIRED", "NONE"):
            raise bad("tool_choice must be one of REQUIRED, NONE")
        if not names:
            raise bad("tool_choice requires tools to be specified")
    rf = body.get("response_format")
    if rf is not None:
        if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object"):
            raise bad("response_format.type must be one of text, json_object")
        _keys(rf, {"type", "json_schema"})
        if rf["type"] == "text" and "json_schema" in rf:
            raise bad("response_format.json_schema must not be specified when the type is text")
        if "json_schema" in rf and not isinstance(rf["json_schema"], dict):
            raise bad("response_format.json_schema must be an object")
        if names:
            raise bad("response_format is not supported with tools")
    th = body.get("thinking")
    if th is not None:
        if not isinstance(th, dict) or th.get("type") not in ("enabled", "disabled"):
            raise bad("thinking.type must be one of enabled, disabled")
        _keys(th, {"type", "token_budget"})
        tb = th.get("token_budget")
        if tb is not None and (isinstance(tb, bool) or not isinstance(tb, int) or tb < 1):
            raise bad("thinking.token_budget must be a positive integer")
    _num(body, "max_tokens", 1, None, integer=True)
    _num(body, "temperature", 0, None)
    _num(body, "p", 0.01, 0.99)
    _num(body, "k", 0, 500, integer=True)
    _num(body, "frequency_penalty", 0, 1)
    _num(body, "presence_penalty", 0, 1)
    _num(body, "seed", -(2**63), 2**63 - 1, integer=True)
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops) or len(stops) > 5):
        raise bad("stop_sequences must be a list of at most 5 strings")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise bad("stream must be a boolean")

    pending: list[str] = []  # calls of the last assistant turn not answered yet
    answered: set[str] = set()
    for i, m in enumerate(msgs):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in MESSAGE_FIELDS:
            raise bad(f"{where}.role must be one of system, user, assistant, tool")
        role = m["role"]
        _keys(m, MESSAGE_FIELDS[role])
        if role != "tool" and pending:
            raise bad(f"{where}: the tool calls {', '.join(pending)} of the previous assistant message have no tool results")
        if role in ("system", "user"):
            if "content" not in m:
                raise bad(f"{where}.content is required")
            _content(m["content"], where, ("text",) if role == "system" else ("text", "image_url"))
            if role == "user" and (m["content"] == "" or m["content"] == []):
                raise bad(f"{where}: message must be at least 1 token long or tool results must be specified.")
        elif role == "assistant":
            calls = m.get("tool_calls")
            if m.get("content") is not None:
                _content(m["content"], where, ("text", "thinking"))
            if calls is not None:
                if not isinstance(calls, list):
                    raise bad(f"{where}.tool_calls must be a list")
                for j, c in enumerate(calls):
                    cw = f"{where}.tool_calls[{j}]"
                    if not isinstance(c, dict):
                        raise bad(f"{cw} must be an object")
                    _keys(c, {"id", "type", "function"})
                    fn = c.get("function")
                    if not isinstance(c.get("id"), str) or not c["id"] or c.get("type", "function") != "function" or not isinstance(fn, dict):
                        raise bad(f"{cw} must have an id, type function and a function")
                    _keys(fn, {"name", "arguments"})
                    try:
                        args = json.loads(fn.get("arguments")) if isinstance(fn.get("arguments"), str) else None
                    except ValueError:
                        args = None
                    if not isinstance(args, dict):
                        raise bad(f"{cw}.function.arguments must be a string holding a JSON object")
                    pending.append(c["id"])
            if m.get("tool_plan") is not None and not isinstance(m["tool_plan"], str):
                raise bad(f"{where}.tool_plan must be a string")
            if not calls and not m.get("content"):
                raise bad(f"{where}: an assistant message must have content or tool_calls")
            answered = set()
        else:  # tool
            tcid = m.get("tool_call_id")
            if not isinstance(tcid, str) or not tcid:
                raise bad(f"{where}.tool_call_id is required")
            if tcid not in pending:
                raise bad(f"{where}: tool_call_id {tcid} does not match any tool call of the previous assistant message"
                          + (" (already answered)" if tcid in answered else ""))
            pending.remove(tcid)
            answered.add(tcid)
            if "content" not in m:
                raise bad(f"{where}.content is required")
            _content(m["content"], where, ("text", "document"))
    if pending:
        raise bad(f"the tool calls {', '.join(pending)} of the last assistant message have no tool results")


def content_text(c: Any) -> str:
    if isinstance(c, str):
        return c
    return "".join(p.get("text", "") for p in c or [] if isinstance(p, dict) and p.get("type") == "text")


def example(schema: Any, text: str) -> Any:
    if not isinstance(schema, dict):
        return text
    t = schema.get("type")
    if t == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {k: example(v, text) for k, v in props.items()}
    return {"string": text, "integer": 1, "number": 1.5, "boolean": True, "array": [example(schema.get("items"), text)],
            "null": None}.get(t, text)


def plan(body: dict) -> dict:
    msgs = body["messages"]
    last = msgs[-1]
    last_user = next((m for m in reversed(msgs) if m["role"] == "user"), None)
    user_text = content_text(last_user["content"]) if last_user else ""
    names = [t["function"]["name"] for t in body.get("tools") or []]
    p: dict[str, Any] = {"text": "", "tool": None, "user_text": user_text, "finish": "COMPLETE"}
    if last["role"] == "tool":
        results = []
        for m in reversed(msgs):
            if m["role"] != "tool":
                break
            results.insert(0, content_text(m["content"]))
        p["text"] = "tool result: " + "; ".join(results)
    elif last["role"] == "user" and names and body.get("tool_choice") != "NONE":
        if not mu.directed_call(p, user_text, names):
            p["tool"] = names[0]
    elif last["role"] == "user" and isinstance(last["content"], list) and (imgs := mu.describe_images_openai(last["content"])):
        p["text"] = "images: " + ", ".join(imgs)
    elif (body.get("response_format") or {}).get("type") == "json_object":
        schema = body["response_format"].get("json_schema")
        p["text"] = json.dumps(example(schema, user_text) if schema else {"echo": user_text})
    else:
        p["text"] = "echo: " + user_text
    th = body.get("thinking")
    p["thinking"] = isinstance(th, dict) and th.get("type") == "enabled"
    if p["tool"]:
        p["finish"] = "TOOL_CALL"
    else:
        text, matched = mu.apply_stop(p["text"], body.get("stop_sequences") or [])
        if matched is not None:
            p["text"], p["finish"] = text, "STOP_SEQUENCE"
        if isinstance(body.get("max_tokens"), int) and body["max_tokens"] <= 3:
            p["text"], p["finish"] = p["text"][:4], "MAX_TOKENS"
    limit = body.get("max_tokens") or 10**9
    p["output_tokens"] = min(COHERE_USAGE["output_tokens"], limit) + (mu.REASONING_TOKENS if p["thinking"] else 0)
    return p


def usage(output_tokens: int) -> dict:
    u = COHERE_USAGE
    return {"billed_units": {"input_tokens": u["billed_input_tokens"], "output_tokens": min(u["billed_output_tokens"], output_tokens)},
            "tokens": {"input_tokens": u["input_tokens"], "output_tokens": output_tokens},
            "cached_tokens": u["cached_tokens"]}


def ids(n: int) -> tuple[str, str]:
    digest = hashlib.sha256(f"cohere-{n}".encode()).digest()
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return str(uuid.UUID(bytes=digest[:16])), "".join(alphabet[b % 36] for b in digest[16:28])


def error(h: Any, status: int, message: str, headers: dict | None = None) -> None:
    h.reply(status, {"id": str(uuid.uuid4()), "message": message}, headers)


def route(h: Any, method: str, rest: str, body: Any, json_ok: bool) -> None:
    expected = h.state.keys.get("cohere")
    got = h.headers.get("Authorization")
    if not got:
        return h.reply(401, {"message": "no api key supplied"})
    if not expected or got != f"Bearer {expected}":
        return h.reply(401, {"message": "invalid api token"})
    if rest == "/v2/embed" and method == "POST":
        import mock_embed  # noqa: PLC0415
        try:
            return h.reply(200, mock_embed.cohere(body))
        except mock_embed.EmbedInvalid as e:
            return error(h, e.status, e.message)
    if rest != "/v2/chat" or method != "POST":
        return error(h, 404, f"{method} {rest} not found")
    if not json_ok or body is None:
        return error(h, 400, "invalid request: the body could not be parsed as JSON")
    try:
        validate(body)
    except CohereError as e:
        return error(h, e.status, e.message)
    model = body["model"]
    trig = mu.trigger_of(model)
    if trig is None and model not in MODELS:
        return error(h, 404, f"model '{model}' not found, make sure the correct model ID was used and that you have access to the model.")
    if trig == "mock-fail-500":
        return error(h, 500, "internal server error, this has been reported to our developers")
    if trig == "mock-fail-429":
        return error(h, 429, "You are past the per minute request limit, please wait and try again later.", {"retry-after": "1"})
    if trig == "mock-fail-400":
        return error(h, 400, "invalid request: mock-fail-400")
    if trig == "mock-overloaded":
        return error(h, 503, "service unavailable, please try again later")
    if trig == "mock-slow":
        time.sleep(mu.SLOW_SECONDS)

    p = plan(body)
    n = h.state.next_id()
    rid, suffix = ids(n)
    issued: dict[str, Any] = {"id": rid}
    content: list[dict] = []
    if p["thinking"]:
        issued["thinking"] = THINKING_PREFIX + p["user_text"]
        content.append({"type": "thinking", "thinking": issued["thinking"]})
    message: dict[str, Any] = {"role": "assistant"}
    if p["tool"]:
        call = {"id": f"{p['tool']}_{suffix}", "type": "function",
                "function": {"name": p["tool"], "arguments": json.dumps(p.get("args", mu.TOOL_ARGS))}}
        issued.update(tool_call_ids=[call["id"]], tool_plan=tool_plan_for(p["tool"]))
        message.update(tool_plan=issued["tool_plan"], tool_calls=[call])
        if content:
            message["content"] = content
    else:
        content.append({"type": "text", "text": p["text"]})
        message["content"] = content
    h.entry["issued"] = issued
    h.entry["status"] = 200
    u = usage(p["output_tokens"])
    headers = {"x-request-id": rid}
    if not body.get("stream"):
        return h.send_json(200, {"id": rid, "finish_reason": p["finish"], "message": message, "usage": u}, headers)

    def ev(obj: dict) -> bytes:
        return f"event: {obj['type']}\ndata: {json.dumps(obj)}\n\n".encode()

    events = [ev({"id": rid, "type": "message-start", "delta": {"message": {
        "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}})]
    if trig in ("mock-stream-error", "mock-stream-cut"):
        events.append(ev({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}))
        events.append(ev({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "partial "}}}}))
        h.start_stream(headers)
        for e in events:
            h.chunk(e)
        if trig == "mock-stream-cut":
            return h.abort_stream()
        h.chunk(ev({"type": "message-end", "delta": {"error": "internal server error, this has been reported to our developers",
                                                      "finish_reason": "ERROR"}}))
        return h.end_stream()
    for i, c in enumerate(message.get("content") or []):
        key = c["type"]
        events.append(ev({"type": "content-start", "index": i, "delta": {"message": {"content": {"type": key, key: ""}}}}))
        for piece in mu.split_text(c[key], 3):
            events.append(ev({"type": "content-delta", "index": i, "delta": {"message": {"content": {key: piece}}}}))
        events.append(ev({"type": "content-end", "index": i}))
    if p["tool"]:
        for piece in mu.split_text(message["tool_plan"], 3):
            events.append(ev({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}}))
        call = message["tool_calls"][0]
        events.append(ev({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {
            "id": call["id"], "type": "function", "function": {"name": call["function"]["name"], "arguments": ""}}}}}))
        for frag in mu.json_fragments(json.loads(call["function"]["arguments"]), ('{"', 'location": "', 'Paris"}')):
            events.append(ev({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": frag}}}}}))
        events.append(ev({"type": "tool-call-end", "index": 0}))
    events.append(ev({"type": "message-end", "delta": {"finish_reason": p["finish"], "usage": u}}))
    h.start_stream(headers)
    if trig == "mock-slow-body":
        time.sleep(mu.SLOW_SECONDS)
    h.write_events(events)
    h.end_stream()
