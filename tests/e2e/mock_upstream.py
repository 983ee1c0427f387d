#!/usr/bin/env python3
"""Deterministic mock of the OpenAI Chat Completions and Anthropic Messages APIs (stdlib only).

One server speaks several upstreams, selected by the first path segment:

    /openai/v1/chat/completions         OpenAI (exact OpenAI framing, usage only with include_usage)
    /groq/v1/chat/completions           OpenAI-compatible with Groq's quirks (whole tool call in one
                                        chunk, usage on the finish chunk and in `x_groq`)
    /nokey/v1/chat/completions          OpenAI format; every request is refused with 401
    /anthropic/v1/messages              Anthropic Messages (+ /v1/messages/count_tokens)
    /{prefix}/v1/models                 model lists in the matching format
    GET  /_mock/requests                every recorded request (path, lower-cased headers, JSON body,
                                        and `issued`: what the mock answered with: ids, signatures, counts)
    POST /_mock/reset                   forget recorded requests (issued thinking signatures are kept)

So a gateway is pointed at it with OPENAI_BASE_URL=http://127.0.0.1:P/openai/v1,
ANTHROPIC_BASE_URL=http://127.0.0.1:P/anthropic, GROQ_BASE_URL=http://127.0.0.1:P/groq/v1.

Requests are validated the way the real APIs validate them (auth header, unknown parameters,
roles, tool-call / tool-result pairing, thinking signatures, ...) and refused with that provider's
own error shape, so a translation mistake in the gateway shows up as a 400.

Behaviour is driven by the request (see `plan_reply`) and by the model name (a model that *starts
with* one of the trigger names below; the rest of the name is free, e.g. `mock-fail-500-x1`):

    mock-fail-500      500 (OpenAI server_error / Anthropic api_error)
    mock-fail-429      429 with `retry-after: 1`
    mock-fail-400      400 invalid_request_error
    mock-overloaded    Anthropic: 529 overloaded_error; OpenAI: 503
    mock-slow          sleeps 5 s before sending anything, then answers normally
    mock-slow-body     sends the response headers at once, then sleeps 5 s before the body
    mock-stream-error  stream: a few events, then a provider error event (then a clean end)
    mock-stream-cut    stream: a few events, then the connection is closed mid-body
    mock-drip          stream: 50 text deltas, 0.2 s apart (records `client_gone` if the reader leaves)
    mock-endless-line  stream: `data: {"x":"` then 'a' bytes in 1 MiB chunks, never a newline, until the
                       reader leaves (records `client_gone`) or 512 MiB were sent (records `endless_sent`)
    mock-html          not streamed: 200 text/html with an HTML page; streamed: the first event's data is
                       `<html>not json`, the rest of the stream is normal
    mock-gzip          not streamed: the normal answer gzip-compressed with `Content-Encoding: gzip`, whatever
                       the request's Accept-Encoding; streamed: a normal stream

Run standalone: python3 mock_upstream.py --port 8999 --openai-key K1 --anthropic-key K2 --groq-key K3
"""

from __future__ import annotations

import argparse
import base64
import binascii
import gzip
import hashlib
import json
import math
import os
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

# Numbers the tests assert on (usage mapping).
ANTHROPIC_USAGE = {"input_tokens": 21, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 3, "output_tokens": 9}
OPENAI_USAGE = {"prompt_tokens": 25, "cached_tokens": 5, "completion_tokens": 9}
REASONING_TOKENS = 4  # extra output tokens when thinking / reasoning is on
TOOL_ARGS = {"location": "Paris"}
TOOL_PREAMBLE = "Checking the weather."  # Anthropic text block emitted before a tool_use block
SLOW_SECONDS = 5.0
DRIP_COUNT = 50
DRIP_INTERVAL = 0.2
ENDLESS_CHUNK = 1024 * 1024  # mock-endless-line: bytes per chunk...
ENDLESS_LIMIT = 512 * 1024 * 1024  # ...and the most it sends
HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
             b"<body><h1>Bad Gateway</h1><p>mock-html: a proxy in front of the API answered with a page.</p></body></html>\n")
HTML_EVENT_DATA = b"<html>not json"

TRIGGERS = (  # longest first: mock-slow-body must win over mock-slow
    "mock-endless-line",
    "mock-stream-error",
    "mock-stream-cut",
    "mock-overloaded",
    "mock-slow-body",
    "mock-fail-500",
    "mock-fail-429",
    "mock-fail-400",
    "mock-slow",
    "mock-drip",
    "mock-html",
    "mock-gzip",
)

OPENAI_PARAMS = {
    "model", "messages", "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
    "max_completion_tokens", "max_tokens", "metadata", "modalities", "moderation", "n", "parallel_tool_calls",
    "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention",
    "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier", "stop", "store", "stream",
    "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity",
    "web_search_options",
}
ANTHROPIC_PARAMS = {
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature", "top_p",
    "top_k", "tools", "tool_choice", "thinking", "service_tier", "container", "mcp_servers", "context_management",
    "output_config", "cache_control", "inference_geo", "speed", "diagnostics",
}
ANTHROPIC_COUNT_PARAMS = {
    "model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers", "context_management",
    "output_config", "cache_control", "speed",
}
IMAGE_MEDIA_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
DATA_URI = re.compile(r"^data:(image/[a-z+.-]+);base64,(.*)$", re.S)


class Invalid(Exception):
    """A request the real API would refuse with 400."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param


# ----------------------------------------------------------------------------------------------
# shared helpers


def is_b64(data: Any) -> bool:
    if not isinstance(data, str) or not data:
        return False
    try:
        base64.b64decode(data, validate=True)
        return True
    except (binascii.Error, ValueError):
        return False


def split_text(text: str, parts: int = 3) -> list[str]:
    """Split into `parts` non-empty pieces (fewer only if the text is shorter)."""
    if len(text) <= 1:
        return [text]
    step = max(1, math.ceil(len(text) / parts))
    return [text[i : i + step] for i in range(0, len(text), step)]


def oa_content_text(content: Any) -> str:
    """Text of an OpenAI message `content` (string or array of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")


def an_content_text(content: Any) -> str:
    """Text of an Anthropic message `content` / tool_result content (string or blocks)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")


def apply_stop(text: str, stops: list[str]) -> tuple[str, str | None]:
    """Cut `text` at the earliest stop sequence; return (text, the sequence that matched)."""
    best: tuple[int, str] | None = None
    for s in stops:
        if s and (i := text.find(s)) >= 0 and (best is None or i < best[0]):
            best = (i, s)
    if best is None:
        return text, None
    return text[: best[0]], best[1]


def trigger_of(model: Any) -> str | None:
    if not isinstance(model, str):
        return None
    for t in TRIGGERS:
        if model.startswith(t):
            return t
    return None


def count_tokens_for(body: dict) -> int:
    """The mock's deterministic token count: characters of all text // 4 + 7."""
    total = 0
    system = body.get("system")
    total += len(system) if isinstance(system, str) else len(an_content_text(system))
    for m in body.get("messages") or []:
        c = m.get("content") if isinstance(m, dict) else None
        if isinstance(c, str):
            total += len(c)
        elif isinstance(c, list):
            for b in c:
                if not isinstance(b, dict):
                    continue
                if b.get("type") == "text":
                    total += len(b.get("text") or "")
                elif b.get("type") == "tool_result":
                    total += len(an_content_text(b.get("content")))
    return total // 4 + 7


# ----------------------------------------------------------------------------------------------
# state


class MockState:
    def __init__(self, keys: dict[str, str | None]):
        # prefix -> expected key (None: every request is unauthorised)
        self.keys = dict(keys)
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.counter = 0
        self.signatures: dict[str, str] = {}  # issued thinking signature -> its thinking text
        self.redacted: set[str] = set()  # issued redacted_thinking data

    def next_id(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter

    def record(self, entry: dict) -> None:
        with self.lock:
            entry["seq"] = len(self.requests)
            self.requests.append(entry)

    def snapshot(self) -> list[dict]:
        with self.lock:
            return json.loads(json.dumps(self.requests))

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()

    def make_signature(self, thinking: str) -> str:
        n = self.next_id()
        raw = b"\xfb\xef\xbe\xff\xff\xff" + hashlib.sha256(f"{n}:{thinking}".encode()).digest()[:13]
        sig = "sig-" + base64.b64encode(raw).decode()  # 19 bytes -> ends with "==", contains "+" and "/"
        with self.lock:
            self.signatures[sig] = thinking
        return sig

    def make_redacted(self) -> str:
        n = self.next_id()
        data = "redacted-" + base64.b64encode(b"\xff\xfe" + hashlib.sha256(str(n).encode()).digest()[:11]).decode()
        with self.lock:
            self.redacted.add(data)
        return data


# ----------------------------------------------------------------------------------------------
# OpenAI validation


def validate_openai(body: Any, prefix: str) -> None:
    if not isinstance(body, dict):
        raise Invalid("Invalid type for request body: expected an object.")
    for k in body:
        if k not in OPENAI_PARAMS:
            raise Invalid(f"Unrecognized request argument supplied: {k}", k)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Invalid("you must provide a model parameter", "model")
    msgs = body.get("messages")
    if not isinstance(msgs, list):
        raise Invalid("Invalid type for 'messages': expected an array.", "messages")
    if not msgs:
        raise Invalid("[] is too short - 'messages'", "messages")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise Invalid("Invalid type for 'tools': expected an array.", "tools")
        for i, t in enumerate(tools):
            if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(t.get("function"), dict):
                raise Invalid(f"Invalid value for 'tools[{i}]': expected a function tool.", f"tools[{i}]")
            fn = t["function"]
            if set(t) - {"type", "function"}:
                raise Invalid(f"Unrecognized request argument supplied: tools[{i}].{sorted(set(t) - {'type', 'function'})[0]}")
            if not isinstance(fn.get("name"), str) or not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", fn["name"]):
                raise Invalid(f"Invalid 'tools[{i}].function.name'.", f"tools[{i}].function.name")
            if "parameters" in fn and not isinstance(fn["parameters"], dict):
                raise Invalid(f"Invalid type for 'tools[{i}].function.parameters'.", f"tools[{i}].function.parameters")
            extra = set(fn) - {"name", "description", "parameters", "strict"}
            if extra:
                raise Invalid(f"Unrecognized request argument supplied: tools[{i}].function.{sorted(extra)[0]}")
    has_tools = bool(tools)
    if body.get("tool_choice") is not None:  # explicit nulls count as absent, as in the real API
        tc = body["tool_choice"]
        if not has_tools:
            raise Invalid("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", "tool_choice")
        ok = tc in ("none", "auto", "required") or (
            isinstance(tc, dict) and tc.get("type") == "function" and isinstance(tc.get("function"), dict)
            and isinstance(tc["function"].get("name"), str)
        )
        if not ok:
            raise Invalid("Invalid value for 'tool_choice'.", "tool_choice")
    if body.get("parallel_tool_calls") is not None:
        if not has_tools:
            raise Invalid("Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are specified.", "parallel_tool_calls")
        if not isinstance(body["parallel_tool_calls"], bool):
            raise Invalid("Invalid type for 'parallel_tool_calls': expected a boolean.", "parallel_tool_calls")
    if "stream" in body and body["stream"] is not None and not isinstance(body["stream"], bool):
        raise Invalid("Invalid type for 'stream': expected a boolean.", "stream")
    if body.get("stream_options") is not None:
        if not body.get("stream"):
            raise Invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options")
        if not isinstance(body["stream_options"], dict):
            raise Invalid("Invalid type for 'stream_options': expected an object.", "stream_options")
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            pass
        elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
            if len(stop) > 4:
                raise Invalid("Invalid 'stop': array too long. Expected an array with maximum length 4.", "stop")
        else:
            raise Invalid("Invalid type for 'stop'.", "stop")
    for f in ("max_tokens", "max_completion_tokens", "n"):
        v = body.get(f)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise Invalid(f"Invalid '{f}': expected an integer >= 1.", f)
    if body.get("max_tokens") is not None and re.match(r"^o\d", model):
        raise Invalid(
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
            "max_tokens",
        )
    for f, hi in (("temperature", 2), ("top_p", 1)):
        v = body.get(f)
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= hi):
            raise Invalid(f"Invalid '{f}': must be a number between 0 and {hi}.", f)
    re_eff = body.get("reasoning_effort")
    if re_eff is not None and re_eff not in ("none", "minimal", "low", "medium", "high", "xhigh"):
        raise Invalid("Invalid value for 'reasoning_effort'.", "reasoning_effort")

    pending: list[str] = []  # tool_call ids of the last assistant message not yet answered
    for i, m in enumerate(msgs):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise Invalid(f"Invalid type for '{where}': expected an object.", where)
        role = m.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool", "function"):
            raise Invalid(f"Invalid value for '{where}.role': '{role}'.", f"{where}.role")
        if role != "tool" and pending:
            raise Invalid(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}",
                where,
            )
        allowed = {"role", "content", "name"}
        c = m.get("content")
        if role in ("system", "developer"):
            if not (isinstance(c, str) or (isinstance(c, list) and c and all(
                isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in c))):
                raise Invalid(f"Invalid '{where}.content': expected a string or an array of text parts.", f"{where}.content")
        elif role == "user":
            if isinstance(c, str):
                pass
            elif isinstance(c, list) and c:
                for j, p in enumerate(c):
                    w = f"{where}.content[{j}]"
                    if not isinstance(p, dict):
                        raise Invalid(f"Invalid type for '{w}'.", w)
                    t = p.get("type")
                    if t == "text":
                        if not isinstance(p.get("text"), str):
                            raise Invalid(f"Invalid '{w}.text'.", f"{w}.text")
                    elif t == "image_url":
                        iu = p.get("image_url")
                        url = iu.get("url") if isinstance(iu, dict) else None
                        if not isinstance(url, str) or not url:
                            raise Invalid(f"Invalid '{w}.image_url': expected an object with a url.", f"{w}.image_url")
                        if url.startswith("data:"):
                            mt = DATA_URI.match(url)
                            if not mt or not is_b64(mt.group(2)):
                                raise Invalid("Invalid base64 image_url.", f"{w}.image_url.url")
                        elif not url.startswith(("http://", "https://")):
                            raise Invalid("Invalid image_url: expected a URL or a base64 data URI.", f"{w}.image_url.url")
                    elif t in ("input_audio", "file"):
                        pass
                    else:
                        raise Invalid(f"Invalid value: '{t}'. Supported values are: 'text', 'image_url', 'input_audio', 'refusal', 'audio', and 'file'.", f"{w}.type")
            else:
                raise Invalid(f"Invalid '{where}.content': expected a string or a non-empty array.", f"{where}.content")
        elif role == "assistant":
            allowed |= {"tool_calls", "refusal", "audio", "function_call", "reasoning_content"}
            tcs = m.get("tool_calls")
            if c is None and not tcs and not m.get("function_call"):
                raise Invalid(f"Invalid '{where}': 'content' is required unless 'tool_calls' is specified.", f"{where}.content")
            if c is not None and not isinstance(c, str) and not (isinstance(c, list) and all(
                isinstance(p, dict) and p.get("type") in ("text", "refusal") for p in c)):
                raise Invalid(f"Invalid '{where}.content'.", f"{where}.content")
            if tcs is not None:
                if not isinstance(tcs, list) or not tcs:
                    raise Invalid(f"Invalid '{where}.tool_calls': empty array.", f"{where}.tool_calls")
                for j, tc in enumerate(tcs):
                    w = f"{where}.tool_calls[{j}]"
                    fn = tc.get("function") if isinstance(tc, dict) else None
                    if not isinstance(tc, dict) or not isinstance(tc.get("id"), str) or not tc["id"]:
                        raise Invalid(f"Missing required parameter: '{w}.id'.", f"{w}.id")
                    if tc.get("type") != "function":
                        raise Invalid(f"Missing required parameter: '{w}.type'.", f"{w}.type")
                    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                        raise Invalid(f"Missing required parameter: '{w}.function.name'.", f"{w}.function.name")
                    if not isinstance(fn.get("arguments"), str):
                        raise Invalid(f"Invalid type for '{w}.function.arguments': expected a string.", f"{w}.function.arguments")
                pending = [tc["id"] for tc in tcs]
        elif role == "tool":
            allowed |= {"tool_call_id"}
            tid = m.get("tool_call_id")
            if not isinstance(tid, str):
                raise Invalid(f"Missing required parameter: '{where}.tool_call_id'.", f"{where}.tool_call_id")
            if tid not in pending:
                raise Invalid(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
                    f"{where}.role",
                )
            pending.remove(tid)
            if not (isinstance(c, str) or (isinstance(c, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in c))):
                raise Invalid(f"Invalid '{where}.content'.", f"{where}.content")
        extra = set(m) - allowed
        if extra:
            raise Invalid(f"Unrecognized request argument supplied: {where}.{sorted(extra)[0]}")
    if pending:
        raise Invalid(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. "
            f"The following tool_call_ids did not have response messages: {', '.join(pending)}",
            "messages",
        )


# ----------------------------------------------------------------------------------------------
# Anthropic validation


def validate_anthropic(body: Any, state: MockState, count_only: bool = False) -> None:
    if not isinstance(body, dict):
        raise Invalid("body: Input should be a valid dictionary")
    allowed = ANTHROPIC_COUNT_PARAMS if count_only else ANTHROPIC_PARAMS
    for k in body:
        if k not in allowed:
            raise Invalid(f"{k}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise Invalid("model: Field required")
    if not count_only:
        mt = body.get("max_tokens")
        if mt is None:
            raise Invalid("max_tokens: Field required")
        if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
            raise Invalid("max_tokens: Input should be a valid integer greater than or equal to 1")
    msgs = body.get("messages")
    if not isinstance(msgs, list):
        raise Invalid("messages: Input should be a valid list")
    if not msgs:
        raise Invalid("messages: at least one message is required")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise Invalid("stream: Input should be a valid boolean")

    system = body.get("system")
    if system is not None:
        if isinstance(system, str):
            pass
        elif isinstance(system, list):
            for i, b in enumerate(system):
                if not isinstance(b, dict) or b.get("type") != "text" or not isinstance(b.get("text"), str):
                    raise Invalid(f"system.{i}: Input should be a text block")
                if not b["text"]:
                    raise Invalid("system: text content blocks must be non-empty")
                if set(b) - {"type", "text", "cache_control", "citations"}:
                    raise Invalid(f"system.{i}.{sorted(set(b) - {'type', 'text', 'cache_control', 'citations'})[0]}: Extra inputs are not permitted")
        else:
            raise Invalid("system: Input should be a valid string or list of text blocks")

    tools = body.get("tools")
    tool_names: set[str] = set()
    if tools is not None:
        if not isinstance(tools, list):
            raise Invalid("tools: Input should be a valid list")
        for i, t in enumerate(tools):
            if not isinstance(t, dict):
                raise Invalid(f"tools.{i}: Input should be a valid dictionary")
            if t.get("type") not in (None, "custom"):
                tool_names.add(str(t.get("name")))
                continue  # server tools have their own shapes
            extra = set(t) - {"name", "description", "input_schema", "cache_control", "type", "strict", "input_examples"}
            if extra:
                raise Invalid(f"tools.{i}.custom.{sorted(extra)[0]}: Extra inputs are not permitted")
            if not isinstance(t.get("name"), str) or not re.fullmatch(r"[a-zA-Z0-9_-]{1,128}", t["name"]):
                raise Invalid(f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
            schema = t.get("input_schema")
            if not isinstance(schema, dict):
                raise Invalid(f"tools.{i}.custom.input_schema: Field required")
            if schema.get("type") != "object":
                raise Invalid(f"tools.{i}.custom.input_schema.type: Input should be 'object'")
            tool_names.add(t["name"])
    tc = body.get("tool_choice")
    if tc is not None:
        if not isinstance(tc, dict):
            raise Invalid("tool_choice: Input should be a valid dictionary")
        kind = tc.get("type")
        if kind not in ("auto", "any", "tool", "none"):
            raise Invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
        extra = set(tc) - {"type", "disable_parallel_tool_use"} - ({"name"} if kind == "tool" else set())
        if extra:
            raise Invalid(f"tool_choice.{kind}.{sorted(extra)[0]}: Extra inputs are not permitted")
        if kind == "tool" and tc.get("name") not in tool_names:
            raise Invalid("tool_choice.tool.name: tool not found in tools")
        if "disable_parallel_tool_use" in tc and not isinstance(tc["disable_parallel_tool_use"], bool):
            raise Invalid("tool_choice.disable_parallel_tool_use: Input should be a valid boolean")
        if kind in ("any", "tool") and not tools:
            raise Invalid("tool_choice: tools must be provided when tool_choice is 'any' or 'tool'")

    thinking = body.get("thinking")
    thinking_on = False
    if thinking is not None:
        if not isinstance(thinking, dict):
            raise Invalid("thinking: Input should be a valid dictionary")
        kind = thinking.get("type")
        if kind == "enabled":
            bt = thinking.get("budget_tokens")
            if not isinstance(bt, int) or isinstance(bt, bool) or bt < 1024:
                raise Invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
            if not count_only and bt >= body["max_tokens"]:
                raise Invalid("`max_tokens` must be greater than `thinking.budget_tokens`")
            if set(thinking) - {"type", "budget_tokens", "display"}:
                raise Invalid("thinking.enabled: Extra inputs are not permitted")
            thinking_on = True
        elif kind == "adaptive":
            thinking_on = True
        elif kind == "disabled":
            pass
        else:
            raise Invalid("thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'")
    if thinking_on:
        if body.get("temperature") is not None and body["temperature"] != 1:
            raise Invalid("`temperature` may only be set to 1 when thinking is enabled.")
        if body.get("top_k") is not None:
            raise Invalid("`top_k` is not supported when thinking is enabled.")

    ss = body.get("stop_sequences")
    if ss is not None:
        if not isinstance(ss, list) or not all(isinstance(s, str) for s in ss):
            raise Invalid("stop_sequences: Input should be a valid list of strings")
        for s in ss:
            if not s.strip():
                raise Invalid("stop_sequences: each stop sequence must contain non-whitespace")
    for f, lo, hi in (("temperature", 0, 1), ("top_p", 0, 1)):
        v = body.get(f)
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi):
            raise Invalid(f"{f}: Input should be between {lo} and {hi}")
    tk = body.get("top_k")
    if tk is not None and (not isinstance(tk, int) or isinstance(tk, bool) or tk < 0):
        raise Invalid("top_k: Input should be a non-negative integer")
    md = body.get("metadata")
    if md is not None and (not isinstance(md, dict) or set(md) - {"user_id"}):
        raise Invalid("metadata: only `user_id` is permitted")

    prev_role = None
    prev_tool_uses: list[str] = []
    for i, m in enumerate(msgs):
        where = f"messages.{i}"
        if not isinstance(m, dict):
            raise Invalid(f"{where}: Input should be a valid dictionary")
        extra = set(m) - {"role", "content"}
        if extra:
            raise Invalid(f"{where}.{sorted(extra)[0]}: Extra inputs are not permitted")
        role = m.get("role")
        if role not in ("user", "assistant"):
            raise Invalid(f"{where}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            raise Invalid("messages: first message must use the \"user\" role")
        if role == prev_role:
            raise Invalid(f'messages: roles must alternate between "user" and "assistant", but found multiple "{role}" roles in a row')
        c = m.get("content")
        last = i == len(msgs) - 1
        if isinstance(c, str):
            if not c and not (last and role == "assistant"):
                raise Invalid(f"{where}: all messages must have non-empty content except for the optional final assistant message")
            blocks: list = []
        elif isinstance(c, list):
            if not c and not (last and role == "assistant"):
                raise Invalid(f"{where}: all messages must have non-empty content except for the optional final assistant message")
            blocks = c
        else:
            raise Invalid(f"{where}.content: Input should be a valid string or list")
        tool_uses: list[str] = []
        results: list[str] = []
        for j, b in enumerate(blocks):
            w = f"{where}.content.{j}"
            if not isinstance(b, dict):
                raise Invalid(f"{w}: Input should be a valid dictionary")
            t = b.get("type")
            if t == "text":
                if not isinstance(b.get("text"), str):
                    raise Invalid(f"{w}.text.text: Field required")
                if not b["text"]:
                    raise Invalid("messages: text content blocks must be non-empty")
                if set(b) - {"type", "text", "cache_control", "citations"}:
                    raise Invalid(f"{w}.text.{sorted(set(b) - {'type', 'text', 'cache_control', 'citations'})[0]}: Extra inputs are not permitted")
            elif t == "image":
                if role != "user":
                    raise Invalid(f"{w}: image blocks are only allowed in user messages")
                src = b.get("source")
                if not isinstance(src, dict):
                    raise Invalid(f"{w}.image.source: Field required")
                if src.get("type") == "base64":
                    if src.get("media_type") not in IMAGE_MEDIA_TYPES:
                        raise Invalid(f"{w}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'")
                    if not is_b64(src.get("data")):
                        raise Invalid(f"{w}.image.source.base64.data: invalid base64 data")
                    if set(src) - {"type", "media_type", "data"}:
                        raise Invalid(f"{w}.image.source.base64: Extra inputs are not permitted")
                elif src.get("type") == "url":
                    if not isinstance(src.get("url"), str) or not src["url"].startswith(("http://", "https://")):
                        raise Invalid(f"{w}.image.source.url.url: invalid URL")
                    if set(src) - {"type", "url"}:
                        raise Invalid(f"{w}.image.source.url: Extra inputs are not permitted")
                elif src.get("type") == "file":
                    pass
                else:
                    raise Invalid(f"{w}.image.source: Input tag '{src.get('type')}' found using 'type' does not match any of the expected tags: 'base64', 'url', 'file'")
            elif t == "tool_use":
                if role != "assistant":
                    raise Invalid(f"{w}: tool_use blocks are only allowed in assistant messages")
                if not isinstance(b.get("id"), str) or not re.fullmatch(r"[a-zA-Z0-9_-]+", b["id"]):
                    raise Invalid(f"{w}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
                if not isinstance(b.get("name"), str) or not b["name"]:
                    raise Invalid(f"{w}.tool_use.name: Field required")
                if not isinstance(b.get("input"), dict):
                    raise Invalid(f"{w}.tool_use.input: Input should be a valid dictionary")
                if set(b) - {"type", "id", "name", "input", "cache_control", "caller"}:
                    raise Invalid(f"{w}.tool_use: Extra inputs are not permitted")
                tool_uses.append(b["id"])
            elif t == "tool_result":
                if role != "user":
                    raise Invalid(f"{w}: tool_result blocks are only allowed in user messages")
                if not isinstance(b.get("tool_use_id"), str):
                    raise Invalid(f"{w}.tool_result.tool_use_id: Field required")
                rc = b.get("content")
                if rc is not None and not isinstance(rc, str) and not (
                    isinstance(rc, list) and all(isinstance(x, dict) and x.get("type") in ("text", "image", "document", "search_result") for x in rc)
                ):
                    raise Invalid(f"{w}.tool_result.content: Input should be a valid string or list of content blocks")
                if isinstance(rc, list):
                    for x in rc:
                        if x.get("type") == "text" and not x.get("text"):
                            raise Invalid("messages: text content blocks must be non-empty")
                if "is_error" in b and not isinstance(b["is_error"], bool):
                    raise Invalid(f"{w}.tool_result.is_error: Input should be a valid boolean")
                if set(b) - {"type", "tool_use_id", "content", "is_error", "cache_control"}:
                    raise Invalid(f"{w}.tool_result: Extra inputs are not permitted")
                results.append(b["tool_use_id"])
            elif t == "thinking":
                if role != "assistant":
                    raise Invalid(f"{w}: thinking blocks are only allowed in assistant messages")
                sig, text = b.get("signature"), b.get("thinking")
                if not isinstance(sig, str) or not isinstance(text, str):
                    raise Invalid(f"{w}.thinking: `thinking` and `signature` are required")
                with state.lock:
                    issued = state.signatures.get(sig)
                if issued is None or issued != text:
                    raise Invalid(f"{w}: Invalid `signature` in `thinking` block")
            elif t == "redacted_thinking":
                if role != "assistant":
                    raise Invalid(f"{w}: redacted_thinking blocks are only allowed in assistant messages")
                with state.lock:
                    known = b.get("data") in state.redacted
                if not known:
                    raise Invalid(f"{w}: Invalid `data` in `redacted_thinking` block")
            elif t in ("document", "search_result", "server_tool_use", "web_search_tool_result"):
                pass
            else:
                raise Invalid(f"{w}: Input tag '{t}' found using 'type' does not match any of the expected tags")
        if results:
            unknown = [r for r in results if r not in prev_tool_uses]
            if unknown:
                raise Invalid(
                    f"messages.{i}.content.0: unexpected `tool_use_id` found in `tool_result` blocks: {unknown[0]}. "
                    "Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                )
        if prev_tool_uses:
            missing = [u for u in prev_tool_uses if u not in results]
            if missing:
                raise Invalid(
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in the next message."
                )
        prev_tool_uses = tool_uses
        prev_role = role


# ----------------------------------------------------------------------------------------------
# what to answer


def describe_images_openai(content: Any) -> list[str]:
    out = []
    if isinstance(content, list):
        for p in content:
            if isinstance(p, dict) and p.get("type") == "image_url":
                url = p["image_url"]["url"]
                mt = DATA_URI.match(url)
                out.append(f"base64:{mt.group(1)}" if mt else f"url:{url}")
    return out


def describe_images_anthropic(content: Any) -> list[str]:
    out = []
    if isinstance(content, list):
        for b in content:
            if isinstance(b, dict) and b.get("type") == "image":
                src = b["source"]
                if src.get("type") == "base64":
                    out.append(f"base64:{src['media_type']}")
                elif src.get("type") == "url":
                    out.append(f"url:{src['url']}")
                else:
                    out.append(f"{src.get('type')}:?")
    return out


def plan_reply(kind: str, body: dict) -> dict:
    """Decide the answer: {"text", "tool": name|None, "thinking": bool, "stops": [...], "limit": int|None}."""
    msgs = body["messages"]
    last = msgs[-1]
    plan: dict[str, Any] = {"text": "", "tool": None}
    if kind == "openai":
        last_user = next((m for m in reversed(msgs) if m.get("role") == "user"), None)
        user_text = oa_content_text(last_user.get("content")) if last_user else ""
        tools = body.get("tools") or []
        tc = body.get("tool_choice")
        if last.get("role") == "tool":
            results = []
            for m in reversed(msgs):
                if m.get("role") != "tool":
                    break
                results.insert(0, oa_content_text(m.get("content")))
            plan["text"] = "tool result: " + "; ".join(results)
        elif last.get("role") == "user" and tools and tc != "none":
            name = tc["function"]["name"] if isinstance(tc, dict) else tools[0]["function"]["name"]
            plan["tool"] = name
        elif last.get("role") == "user" and (imgs := describe_images_openai(last.get("content"))):
            plan["text"] = "images: " + ", ".join(imgs)
        else:
            plan["text"] = "echo: " + user_text
        stop = body.get("stop")
        plan["stops"] = [stop] if isinstance(stop, str) else list(stop or [])
        plan["limit"] = body.get("max_completion_tokens") or body.get("max_tokens")
        plan["thinking"] = body.get("reasoning_effort") not in (None, "none")
        plan["user_text"] = user_text
    else:
        last_user = next((m for m in reversed(msgs) if m.get("role") == "user"), None)
        user_text = an_content_text(last_user.get("content")) if last_user else ""
        tools = body.get("tools") or []
        tc = body.get("tool_choice") or {}
        content = last.get("content")
        results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"] if isinstance(content, list) else []
        if last.get("role") == "user" and results:
            plan["text"] = "tool result: " + "; ".join(an_content_text(r.get("content")) for r in results)
        elif last.get("role") == "user" and tools and tc.get("type") != "none":
            plan["tool"] = tc["name"] if tc.get("type") == "tool" else tools[0]["name"]
        elif last.get("role") == "user" and (imgs := describe_images_anthropic(content)):
            plan["text"] = "images: " + ", ".join(imgs)
        else:
            plan["text"] = "echo: " + user_text
        plan["stops"] = list(body.get("stop_sequences") or [])
        plan["limit"] = body.get("max_tokens")
        plan["thinking"] = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
        plan["user_text"] = user_text
    # stop sequences and max_tokens only shape plain text answers
    plan["stop_reason"] = "tool" if plan["tool"] else "end"
    plan["matched_stop"] = None
    if not plan["tool"]:
        text, matched = apply_stop(plan["text"], plan["stops"])
        if matched is not None:
            plan["text"], plan["matched_stop"], plan["stop_reason"] = text, matched, "stop_sequence"
        if isinstance(plan["limit"], int) and plan["limit"] <= 3:
            plan["text"], plan["stop_reason"] = plan["text"][:4], "max_tokens"
    return plan


# ----------------------------------------------------------------------------------------------
# the HTTP handler


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-upstream/1"
    sys_version = "stdlib"

    # quiet
    def log_message(self, fmt: str, *args: Any) -> None:  # noqa: D102
        if os.environ.get("MOCK_UPSTREAM_VERBOSE"):
            sys.stderr.write("mock: " + (fmt % args) + "\n")

    @property
    def state(self) -> MockState:
        return self.server.state  # type: ignore[attr-defined]

    # ---- low-level I/O -------------------------------------------------------------------------

    def read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None, delay_body: float = 0.0) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if delay_body:
            self.wfile.flush()
            time.sleep(delay_body)
        self.wfile.write(data)
        self.wfile.flush()

    def start_stream(self, headers: dict[str, str] | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.flush()

    def chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def abort_stream(self) -> None:
        """Close the connection in the middle of a chunked body."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def send_gzip_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        """The JSON answer gzip-compressed, with `Content-Encoding: gzip` (mock-gzip)."""
        data = gzip.compress(json.dumps(obj).encode())
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def send_html(self) -> None:
        """200 with an HTML page (mock-html, not streamed)."""
        self.entry["status"] = 200
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(HTML_PAGE)))
        self.end_headers()
        self.wfile.write(HTML_PAGE)
        self.wfile.flush()

    def endless_line(self, headers: dict[str, str] | None = None) -> None:
        """mock-endless-line: an SSE line that never ends, until the reader leaves or ENDLESS_LIMIT."""
        self.entry["status"] = 200
        self.start_stream(headers)
        sent = 0
        block = b"a" * ENDLESS_CHUNK
        try:
            self.chunk(b'data: {"x":"')
            while sent < ENDLESS_LIMIT:
                self.chunk(block)
                sent += len(block)
            self.end_stream()
        except OSError:
            self.entry["client_gone"] = True
            self.close_connection = True
        self.entry["endless_sent"] = sent

    def write_events(self, events: list[bytes]) -> None:
        """One chunk per event, except: event 2 is split across two chunks and events 3+4 share one
        (real upstreams do not align TCP reads with SSE events)."""
        i = 0
        while i < len(events):
            ev = events[i]
            if i == 2 and len(ev) > 8:
                mid = len(ev) // 2
                self.chunk(ev[:mid])
                time.sleep(0.005)
                self.chunk(ev[mid:])
            elif i == 3 and i + 1 < len(events):
                self.chunk(ev + events[i + 1])
                i += 1
            else:
                self.chunk(ev)
            i += 1

    # ---- routing ---------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802
        self.dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self.dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self.dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self.dispatch("DELETE")

    def dispatch(self, method: str) -> None:
        try:
            self._dispatch(method)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path
        raw = self.read_body() if method in ("POST", "PUT") else b""
        if path == "/_mock/requests" and method == "GET":
            return self.send_json(200, self.state.snapshot())
        if path == "/_mock/reset" and method == "POST":
            self.state.reset()
            return self.send_json(200, {"ok": True})
        if path == "/_mock/health":
            return self.send_json(200, {"ok": True})

        parts = path.split("/", 2)
        prefix = parts[1] if len(parts) > 1 else ""
        rest = "/" + parts[2] if len(parts) > 2 else "/"
        kind = {"openai": "openai", "groq": "openai", "nokey": "openai", "anthropic": "anthropic"}.get(prefix)
        body: Any = None
        json_ok = True
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                json_ok = False
        entry = {
            "method": method,
            "path": path,
            "query": url.query,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
            "raw_body_len": len(raw),
            "issued": {},
            "status": None,
            "client_gone": False,
            "time": time.time(),
        }
        self.state.record(entry)
        self.entry = entry
        if kind is None:
            entry["status"] = 404
            return self.send_json(404, {"error": {"message": f"mock: unknown prefix {prefix!r}", "type": "invalid_request_error", "param": None, "code": "unknown_url"}})

        # auth first, as the real APIs do
        if not self.check_auth(prefix, kind):
            return

        if kind == "openai":
            if rest == "/v1/chat/completions" and method == "POST":
                return self.openai_chat(prefix, body, json_ok)
            if rest == "/v1/models" and method == "GET":
                return self.reply(200, {"object": "list", "data": [
                    {"id": m, "object": "model", "created": 1700000000, "owned_by": "mock"} for m in ("gpt-4o-mini", "o4-mini")]})
            return self.openai_error(404, f"Invalid URL ({method} {rest})", "invalid_request_error", None, "unknown_url")
        if rest == "/v1/messages" and method == "POST":
            return self.anthropic_messages(body, json_ok)
        if rest == "/v1/messages/count_tokens" and method == "POST":
            return self.anthropic_count(body, json_ok)
        if rest == "/v1/models" and method == "GET":
            data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-09-29T00:00:00Z"} for m in ("claude-sonnet-4-5",)]
            return self.reply(200, {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]})
        return self.anthropic_error(404, "not_found_error", f"Not found: {method} {rest}")

    def reply(self, status: int, obj: Any, headers: dict[str, str] | None = None, delay_body: float = 0.0) -> None:
        self.entry["status"] = status
        self.send_json(status, obj, headers, delay_body)

    def openai_error(self, status: int, message: str, etype: str, param: str | None = None, code: str | None = None,
                     headers: dict[str, str] | None = None) -> None:
        self.reply(status, {"error": {"message": message, "type": etype, "param": param, "code": code}}, headers)

    def anthropic_error(self, status: int, etype: str, message: str, headers: dict[str, str] | None = None) -> None:
        rid = f"req_mock{self.state.next_id():06d}"
        self.reply(status, {"type": "error", "error": {"type": etype, "message": message}, "request_id": rid},
                   {"request-id": rid, **(headers or {})})

    def check_auth(self, prefix: str, kind: str) -> bool:
        expected = self.state.keys.get(prefix)
        if kind == "openai":
            got = self.headers.get("Authorization")
            if got is None:
                self.openai_error(401, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", "invalid_request_error")
                return False
            if expected is None or got != f"Bearer {expected}":
                self.openai_error(401, "Incorrect API key provided.", "invalid_request_error", None, "invalid_api_key")
                return False
            return True
        got = self.headers.get("x-api-key")
        if expected is None or got != expected:
            self.anthropic_error(401, "authentication_error", "invalid x-api-key")
            return False
        if not self.headers.get("anthropic-version"):
            self.anthropic_error(400, "invalid_request_error", "anthropic-version: header is required")
            return False
        return True

    # ---- OpenAI --------------------------------------------------------------------------------

    def openai_chat(self, prefix: str, body: Any, json_ok: bool) -> None:
        if not json_ok or body is None:
            return self.openai_error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        try:
            validate_openai(body, prefix)
        except Invalid as e:
            return self.openai_error(400, e.message, "invalid_request_error", e.param)
        trig = trigger_of(body["model"])
        stream = bool(body.get("stream"))
        if trig == "mock-fail-500":
            return self.openai_error(500, "The server had an error while processing your request. Sorry about that!", "server_error")
        if trig == "mock-fail-429":
            return self.openai_error(429, "Rate limit reached for requests per min (RPM): Limit 3, Used 3.", "requests", None,
                                     "rate_limit_exceeded", {"retry-after": "1", "x-ratelimit-remaining-requests": "0"})
        if trig == "mock-fail-400":
            return self.openai_error(400, "mock-fail-400: Invalid value for 'messages'.", "invalid_request_error", "messages")
        if trig == "mock-overloaded":
            return self.openai_error(503, "The engine is currently overloaded, please try again later.", "server_error")
        if trig == "mock-slow":
            time.sleep(SLOW_SECONDS)
        if trig == "mock-endless-line" and stream:
            return self.endless_line({"x-request-id": f"req_mock{self.state.next_id():06d}"})
        if trig == "mock-html" and not stream:
            return self.send_html()
        plan = plan_reply("openai", body)
        n = self.state.next_id()
        groq = prefix == "groq"
        ids = {"id": f"chatcmpl-mock{n:06d}"}
        if plan["tool"]:
            ids["tool_call_ids"] = [f"call_mock{n:06d}"]
        self.entry["issued"] = ids
        reasoning = f"Reasoning about: {plan['user_text']}" if plan["thinking"] else None
        completion = min(OPENAI_USAGE["completion_tokens"], plan["limit"] or 10**9) + (REASONING_TOKENS if reasoning else 0)
        if groq:
            usage: dict[str, Any] = {"queue_time": 0.01, "prompt_tokens": OPENAI_USAGE["prompt_tokens"], "prompt_time": 0.002,
                                     "completion_tokens": completion, "completion_time": 0.03,
                                     "total_tokens": OPENAI_USAGE["prompt_tokens"] + completion, "total_time": 0.032}
        else:
            usage = {
                "prompt_tokens": OPENAI_USAGE["prompt_tokens"],
                "completion_tokens": completion,
                "total_tokens": OPENAI_USAGE["prompt_tokens"] + completion,
                "prompt_tokens_details": {"cached_tokens": OPENAI_USAGE["cached_tokens"], "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": REASONING_TOKENS if reasoning else 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
            }
        finish = {"tool": "tool_calls", "end": "stop", "stop_sequence": "stop", "max_tokens": "length"}[plan["stop_reason"]]
        args = json.dumps(TOOL_ARGS)
        model = body["model"]
        created = int(time.time())
        extra_headers = {"x-request-id": f"req_mock{n:06d}", "openai-processing-ms": "7"}
        self.entry["status"] = 200

        if not stream:
            msg: dict[str, Any] = {"role": "assistant", "content": plan["text"] if not plan["tool"] else None,
                                   "refusal": None, "annotations": []}
            if reasoning:
                msg["reasoning_content"] = reasoning
            if plan["tool"]:
                msg["tool_calls"] = [{"id": ids["tool_call_ids"][0], "type": "function",
                                      "function": {"name": plan["tool"], "arguments": args}}]
            choices = [{"index": i, "message": msg, "logprobs": None, "finish_reason": finish} for i in range(body.get("n") or 1)]
            resp: dict[str, Any] = {"id": ids["id"], "object": "chat.completion", "created": created, "model": model,
                                    "choices": choices, "usage": usage, "system_fingerprint": "fp_mock"}
            if groq:
                resp["x_groq"] = {"id": f"req_groq{n:06d}"}
            else:
                resp["service_tier"] = "default"
            if trig == "mock-gzip":
                return self.send_gzip_json(200, resp, extra_headers)
            return self.send_json(200, resp, extra_headers, delay_body=SLOW_SECONDS if trig == "mock-slow-body" else 0.0)

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict | None, finish_reason: str | None = None, **extra: Any) -> dict:
            c: dict[str, Any] = {"id": ids["id"], "object": "chat.completion.chunk", "created": created, "model": model}
            if not groq:
                c["service_tier"] = "default"
            c["system_fingerprint"] = "fp_mock"
            c["choices"] = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
            if include_usage and not groq:
                c["usage"] = None
            c.update(extra)
            return c

        events: list[dict] = []
        if groq:
            events.append(chunk({"role": "assistant", "content": None if plan["tool"] else ""}, x_groq={"id": f"req_groq{n:06d}"}))
        else:
            events.append(chunk({"role": "assistant", "content": None if (plan["tool"] or reasoning) else "", "refusal": None}))
        if reasoning:
            for piece in split_text(reasoning, 2):
                events.append(chunk({"content": None, "reasoning_content": piece}))
        if plan["tool"]:
            tcid = ids["tool_call_ids"][0]
            if groq:  # whole call in one chunk, index last (as recorded)
                events.append(chunk({"tool_calls": [{"id": tcid, "type": "function", "function": {"name": plan["tool"], "arguments": args}, "index": 0}]}))
            else:
                events.append(chunk({"tool_calls": [{"index": 0, "id": tcid, "type": "function", "function": {"name": plan["tool"], "arguments": ""}}]}))
                for frag in ('{"loca', 'tion": "Pa', 'ris"}'):
                    events.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": frag}}]}))
        elif trig == "mock-drip":
            pass
        else:
            for piece in split_text(plan["text"], 3):
                events.append(chunk({"content": piece}))
        if groq:
            events.append(chunk({}, finish, x_groq={"id": f"req_groq{n:06d}", "usage": usage}, usage=usage))
        else:
            events.append(chunk({}, finish))
            if include_usage:
                events.append(chunk(None, None, usage=usage))

        def sse(obj: Any) -> bytes:
            return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"

        if trig in ("mock-stream-error", "mock-stream-cut"):
            self.start_stream(extra_headers)
            self.chunk(sse(events[0]))
            self.chunk(sse(chunk({"content": "partial "})))
            if trig == "mock-stream-error":
                self.chunk(sse({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": None, "code": None}}))
                self.end_stream()
            else:
                self.abort_stream()
            return
        if trig == "mock-drip":
            self.start_stream(extra_headers)
            self.chunk(sse(events[0]))
            try:
                for i in range(DRIP_COUNT):
                    time.sleep(DRIP_INTERVAL)
                    self.chunk(sse(chunk({"content": f"drip {i} "})))
                for ev in events[1:]:
                    self.chunk(sse(ev))
                self.chunk(sse(b"[DONE]"))
                self.end_stream()
            except OSError:
                self.entry["client_gone"] = True
                self.close_connection = True
            return
        if trig == "mock-html":
            self.start_stream(extra_headers)
            self.write_events([sse(HTML_EVENT_DATA)] + [sse(e) for e in events[1:]] + [sse(b"[DONE]")])
            self.end_stream()
            return
        self.start_stream(extra_headers)
        if trig == "mock-slow-body":
            time.sleep(SLOW_SECONDS)
        self.write_events([sse(e) for e in events] + [sse(b"[DONE]")])
        self.end_stream()

    # ---- Anthropic ---------------------------------------------------------------------------

    def anthropic_count(self, body: Any, json_ok: bool) -> None:
        if not json_ok or body is None:
            return self.anthropic_error(400, "invalid_request_error", "There was an issue with the JSON body of your request.")
        try:
            validate_anthropic(body, self.state, count_only=True)
        except Invalid as e:
            return self.anthropic_error(400, "invalid_request_error", e.message)
        n = count_tokens_for(body)
        self.entry["issued"] = {"input_tokens": n}
        self.reply(200, {"input_tokens": n})

    def anthropic_messages(self, body: Any, json_ok: bool) -> None:
        if not json_ok or body is None:
            return self.anthropic_error(400, "invalid_request_error", "There was an issue with the JSON body of your request.")
        try:
            validate_anthropic(body, self.state)
        except Invalid as e:
            return self.anthropic_error(400, "invalid_request_error", e.message)
        trig = trigger_of(body["model"])
        stream = bool(body.get("stream"))
        if trig == "mock-fail-500":
            return self.anthropic_error(500, "api_error", "Internal server error")
        if trig == "mock-fail-429":
            return self.anthropic_error(429, "rate_limit_error", "This request would exceed the rate limit for your organization.",
                                        {"retry-after": "1", "anthropic-ratelimit-requests-remaining": "0"})
        if trig == "mock-fail-400":
            return self.anthropic_error(400, "invalid_request_error", "mock-fail-400: messages: invalid request")
        if trig == "mock-overloaded":
            return self.anthropic_error(529, "overloaded_error", "Overloaded")
        if trig == "mock-slow":
            time.sleep(SLOW_SECONDS)
        if trig == "mock-endless-line" and stream:
            return self.endless_line({"request-id": f"req_mock{self.state.next_id():06d}"})
        if trig == "mock-html" and not stream:
            return self.send_html()

        plan = plan_reply("anthropic", body)
        n = self.state.next_id()
        msg_id = f"msg_mock{n:06d}"
        issued: dict[str, Any] = {"id": msg_id}
        blocks: list[dict] = []
        if plan["thinking"]:
            if "redact" in plan["user_text"]:
                data = self.state.make_redacted()
                issued["redacted"] = data
                blocks.append({"type": "redacted_thinking", "data": data})
            thinking = f"Thinking about: {plan['user_text']}"
            sig = self.state.make_signature(thinking)
            issued["signature"] = sig
            issued["thinking"] = thinking
            blocks.append({"type": "thinking", "thinking": thinking, "signature": sig})
        if plan["tool"]:
            tid = f"toolu_mock{n:06d}"
            issued["tool_use_ids"] = [tid]
            blocks.append({"type": "text", "text": TOOL_PREAMBLE})
            blocks.append({"type": "tool_use", "id": tid, "name": plan["tool"], "input": dict(TOOL_ARGS)})
        elif trig != "mock-drip" and plan["text"]:
            blocks.append({"type": "text", "text": plan["text"]})
        self.entry["issued"] = issued
        stop_reason = {"tool": "tool_use", "end": "end_turn", "stop_sequence": "stop_sequence", "max_tokens": "max_tokens"}[plan["stop_reason"]]
        output = min(ANTHROPIC_USAGE["output_tokens"], plan["limit"]) + (REASONING_TOKENS if plan["thinking"] else 0)
        usage = {
            "input_tokens": ANTHROPIC_USAGE["input_tokens"],
            "cache_creation_input_tokens": ANTHROPIC_USAGE["cache_creation_input_tokens"],
            "cache_read_input_tokens": ANTHROPIC_USAGE["cache_read_input_tokens"],
            "cache_creation": {"ephemeral_5m_input_tokens": ANTHROPIC_USAGE["cache_creation_input_tokens"], "ephemeral_1h_input_tokens": 0},
            "output_tokens": output,
            "service_tier": "standard",
        }
        rid = f"req_mock{n:06d}"
        headers = {"request-id": rid, "anthropic-organization-id": "org-mock"}
        self.entry["status"] = 200
        if not stream:
            resp = {"id": msg_id, "type": "message", "role": "assistant", "model": body["model"], "content": blocks,
                    "stop_reason": stop_reason, "stop_sequence": plan["matched_stop"], "usage": usage}
            if trig == "mock-gzip":
                return self.send_gzip_json(200, resp, headers)
            return self.send_json(200, resp, headers, delay_body=SLOW_SECONDS if trig == "mock-slow-body" else 0.0)

        def ev(obj: dict) -> bytes:
            return f"event: {obj['type']}\ndata: {json.dumps(obj)}\n\n".encode()

        start_usage = dict(usage, output_tokens=1)
        start = ev({"type": "message_start", "message": {"id": msg_id, "type": "message", "role": "assistant", "model": body["model"],
                                                         "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}})
        if trig in ("mock-stream-error", "mock-stream-cut"):
            self.start_stream(headers)
            self.chunk(start)
            self.chunk(ev({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))
            self.chunk(ev({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "partial "}}))
            if trig == "mock-stream-error":
                self.chunk(ev({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
                self.end_stream()
            else:
                self.abort_stream()
            return
        if trig == "mock-drip":
            self.start_stream(headers)
            self.chunk(start)
            try:
                self.chunk(ev({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))
                for i in range(DRIP_COUNT):
                    time.sleep(DRIP_INTERVAL)
                    self.chunk(ev({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"drip {i} "}}))
                self.chunk(ev({"type": "content_block_stop", "index": 0}))
                self.chunk(ev({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": DRIP_COUNT}}))
                self.chunk(ev({"type": "message_stop"}))
                self.end_stream()
            except OSError:
                self.entry["client_gone"] = True
                self.close_connection = True
            return

        events = [start]
        for i, b in enumerate(blocks):
            if b["type"] == "text":
                events.append(ev({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}))
                if i == 0:
                    events.append(ev({"type": "ping"}))
                for piece in split_text(b["text"], 3):
                    events.append(ev({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": piece}}))
            elif b["type"] == "thinking":
                events.append(ev({"type": "content_block_start", "index": i, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}))
                for piece in split_text(b["thinking"], 2):
                    events.append(ev({"type": "content_block_delta", "index": i, "delta": {"type": "thinking_delta", "thinking": piece}}))
                events.append(ev({"type": "content_block_delta", "index": i, "delta": {"type": "signature_delta", "signature": b["signature"]}}))
            elif b["type"] == "redacted_thinking":
                events.append(ev({"type": "content_block_start", "index": i, "content_block": b}))
            elif b["type"] == "tool_use":
                events.append(ev({"type": "content_block_start", "index": i, "content_block": {"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}}))
                for frag in ("", '{"location": ', '"Par', 'is"}'):
                    events.append(ev({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": frag}}))
            events.append(ev({"type": "content_block_stop", "index": i}))
        final_usage = {k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")}
        events.append(ev({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": plan["matched_stop"]}, "usage": final_usage}))
        events.append(ev({"type": "message_stop"}))
        if trig == "mock-html":  # the message_start event's data replaced by a page fragment
            events[0] = b"event: message_start\ndata: " + HTML_EVENT_DATA + b"\n\n"
        self.start_stream(headers)
        if trig == "mock-slow-body":
            time.sleep(SLOW_SECONDS)
        self.write_events(events)
        self.end_stream()


class MockServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], keys: dict[str, str | None]):
        super().__init__(addr, Handler)
        self.state = MockState(keys)

    def handle_error(self, request: Any, client_address: Any) -> None:  # broken pipes are expected
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def start_in_thread(keys: dict[str, str | None], host: str = "127.0.0.1", port: int = 0) -> MockServer:
    """Start a mock server on a daemon thread; `server.server_address[1]` is its port; stop with shutdown()."""
    srv = MockServer((host, port), keys)
    t = threading.Thread(target=srv.serve_forever, name="mock-upstream", daemon=True)
    t.start()
    return srv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--openai-key", default=os.environ.get("MOCK_OPENAI_KEY", "sk-mock-openai"))
    ap.add_argument("--anthropic-key", default=os.environ.get("MOCK_ANTHROPIC_KEY", "sk-mock-anthropic"))
    ap.add_argument("--groq-key", default=os.environ.get("MOCK_GROQ_KEY", "sk-mock-groq"))
    a = ap.parse_args()
    srv = MockServer((a.host, a.port), {"openai": a.openai_key, "anthropic": a.anthropic_key, "groq": a.groq_key, "nokey": None})
    print(f"MOCK_PORT={srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
