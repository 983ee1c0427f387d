#!/usr/bin/env python3
"""Deterministic mock of the OpenAI Chat Completions, Anthropic Messages and Gemini APIs (stdlib only).

One server speaks several upstreams, selected by the first path segment:

    /openai/v1/chat/completions         OpenAI (exact OpenAI framing, usage only with include_usage)
    /openai/v1/responses                the OpenAI Responses API (mock_responses.py)
    /groq/v1/chat/completions           OpenAI-compatible with Groq's quirks (whole tool call in one
                                        chunk, usage on the finish chunk and in `x_groq`)
    /nokey/v1/chat/completions          OpenAI format; every request is refused with 401
    /anthropic/v1/messages              Anthropic Messages (+ /v1/messages/count_tokens)
    /gemini/v1beta/models/M:generateContent        Gemini (Generative Language API, v1beta; v1 too):
    /gemini/v1beta/models/M:streamGenerateContent  `?alt=sse`: `data: {GenerateContentResponse}\r\n\r\n`
                                        events, no [DONE]; without it: one JSON array of the same responses
    /gemini/v1beta/models/M:countTokens `{"totalTokens": N}`; GET /gemini/v1beta/models[/M]: model list / model
    /{prefix}/v1/models                 model lists in the matching format
    /bedrock/model/M/converse[-stream]  AWS Bedrock Converse / ConverseStream (mock_bedrock.py: SigV4 or a
                                        Bedrock API key, binary event-stream answers)
    /cohere/v2/chat                     Cohere v2 chat (mock_cohere.py)
    GET  /_mock/requests                every recorded request (path, lower-cased headers, JSON body,
                                        and `issued`: what the mock answered with: ids, signatures, counts)
    POST /_mock/reset                   forget recorded requests (issued thinking signatures are kept)

So a gateway is pointed at it with OPENAI_BASE_URL=http://127.0.0.1:P/openai/v1,
ANTHROPIC_BASE_URL=http://127.0.0.1:P/anthropic, GROQ_BASE_URL=http://127.0.0.1:P/groq/v1,
GEMINI_BASE_URL=http://127.0.0.1:P/gemini/v1beta.

Gemini specifics: the key comes in `x-goog-api-key` or `?key=` (missing: 403 PERMISSION_DENIED, wrong:
400 INVALID_ARGUMENT / API_KEY_INVALID, a bearer token instead: 401); the body is proto JSON (camelCase
or snake_case names, an unknown name is a 400 "Invalid JSON payload received. Unknown name ..."); tool
`parameters` / `responseSchema` take only the OpenAPI subset (`additionalProperties`, `$schema`, `$ref`,
... are unknown names; `parametersJsonSchema` / `responseJsonSchema` take JSON Schema); roles are
user / model; function call and response turns pair up; every thoughtSignature must be one the mock
issued (compared as bytes: the SDK re-encodes them URL-safe), a functionCall's on that same call, and
the first functionCall of each model step of the current turn must carry its signature (Gemini 3's
rule, applied to every model here). Answers: `echo: <last user text>`, a functionCall (args TOOL_ARGS,
no id, a thoughtSignature, finishReason STOP) when tools are declared, `thought: true` parts when
thinkingConfig.includeThoughts, JSON from the response schema for responseMimeType application/json;
usageMetadata from GEMINI_USAGE (candidatesTokenCount excludes thoughtsTokenCount; a stream's chunks
carry running counts, the last one the final counts).

Requests are validated the way the real APIs validate them (auth header, unknown parameters,
roles, tool-call / tool-result pairing, thinking signatures, ...) and refused with that provider's
own error shape, so a translation mistake in the gateway shows up as a 400.

Behaviour is driven by the request (see `plan_reply`) and by the model name (a model that *starts
with* one of the trigger names below; the rest of the name is free, e.g. `mock-fail-500-x1`):

    mock-fail-500      500 (OpenAI server_error / Anthropic api_error / Gemini INTERNAL)
    mock-fail-429      429 with `retry-after: 1` (Gemini: RESOURCE_EXHAUSTED with a RetryInfo detail too)
    mock-fail-400      400 invalid_request_error (Gemini: INVALID_ARGUMENT)
    mock-overloaded    Anthropic: 529 overloaded_error; OpenAI: 503; Gemini: 503 UNAVAILABLE
    mock-slow          sleeps 5 s before sending anything, then answers normally
    mock-lag           sleeps 0.25 s before sending anything (a slower, healthy upstream)
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
    mock-gzip-drip     OpenAI chat, streamed: the stream gzip-compressed (`Content-Encoding: gzip`), each event
                       sync-flushed in a chunk of its own, and GZIP_DRIP_PAUSE seconds after the first text delta

Run standalone: python3 mock_upstream.py --port 8999 --openai-key K1 --anthropic-key K2 --groq-key K3 --gemini-key K4
(Bedrock then takes mock_bedrock.DEFAULT_KEYS' credentials, SigV4 region us-east-1.)
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
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

# Numbers the tests assert on (usage mapping).
ANTHROPIC_USAGE = {"input_tokens": 21, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 3, "output_tokens": 9}
OPENAI_USAGE = {"prompt_tokens": 25, "cached_tokens": 5, "completion_tokens": 9}
REASONING_TOKENS = 4  # extra output tokens when thinking / reasoning is on
TOOL_ARGS = {"location": "Paris"}
# `mock-call NAME {"arg": ...}` in the last user text: call the client's own tool NAME (if offered) with
# those (flat) arguments instead of the first tool with TOOL_ARGS. The agent tests use it to make the real
# agent run a real tool.
DIRECTED_CALL = re.compile(r"mock-call (\S+) (\{[^{}]*\})")
TOOL_PREAMBLE = "Checking the weather."  # Anthropic text block emitted before a tool_use block
SLOW_SECONDS = 5.0
LAG_SECONDS = 0.25  # mock-lag: a slower but healthy upstream (least_latency routing)
DRIP_COUNT = 50
DRIP_INTERVAL = 0.2
ENDLESS_CHUNK = 1024 * 1024  # mock-endless-line: bytes per chunk...
ENDLESS_LIMIT = 512 * 1024 * 1024  # ...and the most it sends
HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
             b"<body><h1>Bad Gateway</h1><p>mock-html: a proxy in front of the API answered with a page.</p></body></html>\n")
HTML_EVENT_DATA = b"<html>not json"
GZIP_DRIP_PAUSE = 1.0

TRIGGERS = (  # longest first: mock-slow-body must win over mock-slow
    "mock-gzip-drip",
    "mock-endless-line",
    "mock-filtered",
    "mock-stream-error",
    "mock-stream-cut",
    "mock-overloaded",
    "mock-slow-body",
    "mock-fail-500",
    "mock-fail-429",
    "mock-fail-400",
    "mock-slow",
    "mock-lag",
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
    def __init__(self, keys: dict[str, Any]):
        # prefix -> expected key (None: every request is unauthorised)
        self.keys = dict(keys)
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.counter = 0
        self.signatures: dict[str, str] = {}  # issued thinking signature -> its thinking text
        self.redacted: set[str] = set()  # issued redacted_thinking data
        self.g_signatures: dict[bytes, dict] = {}  # issued Gemini thoughtSignature (decoded) -> what it was issued on

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

    def make_g_signature(self, on: dict) -> str:
        """A Gemini thoughtSignature (standard base64 with padding, as Gemini sends them) for the part `on`
        ({"kind": "functionCall", "name", "args"} or {"kind": "text"})."""
        n = self.next_id()
        raw = b"\xfb\xef\xbe\xff\xff\xffgemini" + hashlib.sha256(f"{n}:{json.dumps(on, sort_keys=True)}".encode()).digest()[:13]
        with self.lock:
            self.g_signatures[raw] = on
        return base64.b64encode(raw).decode()  # 25 bytes -> "++++////Z2VtaW5p...==": "+", "/" and padding

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


def json_fragments(args: dict, usual: tuple[str, ...]) -> tuple[str, ...]:
    """The streamed pieces of a call's arguments: the recorded split for TOOL_ARGS, thirds otherwise."""
    if args == TOOL_ARGS:
        return usual
    s = json.dumps(args)
    n = len(s)
    return ("", s[: n // 3], s[n // 3: 2 * n // 3], s[2 * n // 3:])


def directed_call(plan: dict, user_text: str, names: list[str]) -> bool:
    """Applies a `mock-call` directive naming one of `names`; says whether there was one."""
    m = DIRECTED_CALL.search(user_text or "")
    if not m or m.group(1) not in names:
        return False
    plan["tool"], plan["args"] = m.group(1), json.loads(m.group(2))
    return True


def plan_reply(kind: str, body: dict) -> dict:
    """Decide the answer: {"text", "tool": name|None, "thinking": bool, "stops": [...], "limit": int|None}."""
    msgs = body["messages"]
    last = msgs[-1]
    plan: dict[str, Any] = {"text": "", "tool": None}
    if kind == "openai":
        # Instructions after the last turn (Claude Code's mid-conversation system messages) do not change whose turn it is.
        msgs = [m for m in msgs if m.get("role") not in ("system", "developer")] or msgs
        last = msgs[-1]
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
            if not directed_call(plan, user_text, [t.get("function", {}).get("name") for t in tools]):
                plan["tool"] = tc["function"]["name"] if isinstance(tc, dict) else tools[0]["function"]["name"]
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
            if not directed_call(plan, user_text, [t.get("name") for t in tools]):
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
# Gemini (generativelanguage v1beta): proto JSON parsing, validation, what to answer
#
# The request is proto JSON: field names in lowerCamelCase or in the proto's snake_case (the
# google-genai SDK itself sends `thinkingConfig: {"include_thoughts": ...}`), an unknown name is a
# 400 "Invalid JSON payload received. Unknown name ...", bytes fields (inlineData.data,
# thoughtSignature) are base64 in the standard or the URL-safe alphabet. Field lists: the v1beta
# protos (google-ai-generativelanguage 0.12.1) plus `thinkingLevel` (Gemini 3).

_G_TYPES = "type.googleapis.com/google.ai.generativelanguage.v1beta."
G_SPEC: dict[str, dict[str, Any]] = {
    "GenerateContentRequest": {"model": "string", "contents": ["Content"], "systemInstruction": "Content",
                               "tools": ["Tool"], "toolConfig": "ToolConfig", "safetySettings": ["SafetySetting"],
                               "generationConfig": "GenerationConfig", "cachedContent": "string"},
    "CountTokensRequest": {"model": "string", "contents": ["Content"], "generateContentRequest": "GenerateContentRequest"},
    "Content": {"parts": ["Part"], "role": "string"},
    "Part": {"text": "string", "inlineData": "Blob", "functionCall": "FunctionCall", "functionResponse": "FunctionResponse",
             "fileData": "FileData", "executableCode": "opaque", "codeExecutionResult": "opaque",
             "videoMetadata": "opaque", "thought": "bool", "thoughtSignature": "bytes", "partMetadata": "struct"},
    "Blob": {"mimeType": "string", "data": "bytes"},
    "FileData": {"mimeType": "string", "fileUri": "string"},
    "FunctionCall": {"id": "string", "name": "string", "args": "struct"},
    "FunctionResponse": {"id": "string", "name": "string", "response": "struct", "parts": ["opaque"],
                         "willContinue": "bool", "scheduling": "string"},
    "Tool": {"functionDeclarations": ["FunctionDeclaration"], "googleSearchRetrieval": "opaque", "codeExecution": "opaque",
             "googleSearch": "opaque", "computerUse": "opaque", "urlContext": "opaque", "fileSearch": "opaque",
             "googleMaps": "opaque"},
    "FunctionDeclaration": {"name": "string", "description": "string", "parameters": "Schema",
                            "parametersJsonSchema": "value", "response": "Schema", "responseJsonSchema": "value",
                            "behavior": "string"},
    "Schema": {"type": "enum:Type", "format": "string", "title": "string", "description": "string", "nullable": "bool",
               "enum": ["string"], "items": "Schema", "maxItems": "int", "minItems": "int", "properties": {"map": "Schema"},
               "required": ["string"], "minProperties": "int", "maxProperties": "int", "minimum": "float",
               "maximum": "float", "minLength": "int", "maxLength": "int", "pattern": "string", "example": "value",
               "anyOf": ["Schema"], "propertyOrdering": ["string"], "default": "value"},
    "ToolConfig": {"functionCallingConfig": "FunctionCallingConfig", "retrievalConfig": "opaque"},
    "FunctionCallingConfig": {"mode": "enum:FunctionCallingConfig.Mode", "allowedFunctionNames": ["string"]},
    "SafetySetting": {"category": "string", "threshold": "string"},
    "GenerationConfig": {"candidateCount": "int", "stopSequences": ["string"], "maxOutputTokens": "int",
                         "temperature": "float", "topP": "float", "topK": "int", "seed": "int",
                         "responseMimeType": "string", "responseSchema": "Schema", "responseJsonSchema": "value",
                         "responseJsonSchemaOrdered": "value", "presencePenalty": "float", "frequencyPenalty": "float",
                         "responseLogprobs": "bool", "logprobs": "int", "enableEnhancedCivicAnswers": "bool",
                         "responseModalities": ["string"], "speechConfig": "opaque", "thinkingConfig": "ThinkingConfig",
                         "imageConfig": "opaque", "mediaResolution": "string"},
    "ThinkingConfig": {"includeThoughts": "bool", "thinkingBudget": "int", "thinkingLevel": "enum:ThinkingLevel"},
}
G_ENUMS = {
    "Type": {"TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"},
    "FunctionCallingConfig.Mode": {"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"},
    "ThinkingLevel": {"THINKING_LEVEL_UNSPECIFIED", "MINIMAL", "LOW", "MEDIUM", "HIGH"},
}
G_PART_DATA = ("text", "inlineData", "functionCall", "functionResponse", "fileData", "executableCode", "codeExecutionResult")
G_RESPONSE_MIME_TYPES = ("text/plain", "application/json", "application/xml", "application/yaml", "text/x.enum")
# Gemini's documented stand-ins for a signature the client does not have (history from another model)
G_DUMMY_SIGNATURES = ("skip_thought_signature_validator", "context_engineering_is_the_way_to_go")
G_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")
G_THINKING_BUDGET = {"gemini-2.5-flash": (0, 24576), "gemini-2.5-pro": (128, 32768)}  # inclusive; -1 = dynamic
GEMINI_USAGE = {"promptTokenCount": 23, "cachedContentTokenCount": 6, "candidatesTokenCount": 9}
GEMINI_MODELS = ("gemini-2.5-flash", "gemini-2.5-pro")
GEMINI_THOUGHT_PREFIX = "Thoughts on: "
GEMINI_INTERNAL = "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"


class GInvalid(Exception):
    """A request Gemini refuses: `status` HTTP status, `gstatus` the canonical code name."""

    def __init__(self, message: str, violations: list[dict] | None = None, status: int = 400, gstatus: str = "INVALID_ARGUMENT"):
        super().__init__(message)
        self.message = message
        self.violations = violations or []
        self.status = status
        self.gstatus = gstatus


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _jpath(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def g_b64decode(value: Any) -> bytes | None:
    """Proto JSON `bytes`: base64 in the standard or the URL-safe alphabet, padding optional."""
    if not isinstance(value, str):
        return None
    t = value.replace("-", "+").replace("_", "/")
    if len(t) % 4 == 1:
        return None
    t += "=" * (-len(t) % 4)
    try:
        return base64.b64decode(t, validate=True)
    except (binascii.Error, ValueError):
        return None


def _g_scalar(kind: str, value: Any, path: str, errs: list[tuple[str, str]]) -> Any:
    shown = json.dumps(value)[:80]
    if kind == "string":
        if isinstance(value, str):
            return value
        errs.append((path, f"Invalid value at '{path}' (TYPE_STRING), {shown}"))
    elif kind == "bool":
        if isinstance(value, bool):
            return value
        errs.append((path, f"Invalid value at '{path}' (TYPE_BOOL), {shown}"))
    elif kind == "int":  # proto JSON takes numbers or numeric strings
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
            return int(value)
        errs.append((path, f"Invalid value at '{path}' (TYPE_INT32), {shown}"))
    elif kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        errs.append((path, f"Invalid value at '{path}' (TYPE_FLOAT), {shown}"))
    elif kind == "bytes":
        if g_b64decode(value) is not None:
            return value
        errs.append((path, f"Invalid value at '{path}' (TYPE_BYTES), Base64 decoding failed for {shown}"))
    elif kind == "struct":
        if isinstance(value, dict):
            return value
        errs.append((path, f"Invalid value at '{path}' (type.googleapis.com/google.protobuf.Struct), {shown}"))
    elif kind == "opaque":  # a message the mock does not model
        if isinstance(value, dict):
            return value
        errs.append((path, f"Invalid JSON payload received. Unknown name at '{path}': expected an object."))
    elif kind == "value":
        return value
    elif kind.startswith("enum:"):
        enum = kind[5:]
        if isinstance(value, str) and value.upper() in G_ENUMS[enum]:
            return value.upper()
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(G_ENUMS[enum]):
            return value
        errs.append((path, f"Invalid value at '{path}' ({_G_TYPES}{enum}), {shown}"))
    return None


def g_parse(obj: Any, typ: str, path: str, errs: list[tuple[str, str]]) -> dict:
    """Parse proto JSON of message `typ`: collects (field, description) errors; returns the message with
    camelCase keys (null fields dropped, numbers from strings converted)."""
    if not isinstance(obj, dict):
        where = f"'{path}'" if path else "the root"
        errs.append((path, f"Invalid JSON payload received. Expected an object for {where} ({_G_TYPES}{typ}), got {json.dumps(obj)[:80]}."))
        return {}
    spec = G_SPEC[typ]
    snake_to_camel = {_snake(k): k for k in spec}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = key if key in spec else snake_to_camel.get(key)
        if name is None:
            at = f" at '{path}'" if path else ""
            errs.append((path or key, f'Invalid JSON payload received. Unknown name "{key}"{at}: Cannot find field.'))
            continue
        if value is None:
            continue
        kind = spec[name]
        fpath = _jpath(path, _snake(name))
        if isinstance(kind, list):
            if not isinstance(value, list):
                errs.append((fpath, f"Invalid value at '{fpath}': expected a list, got {json.dumps(value)[:80]}"))
                continue
            inner = kind[0]
            out[name] = [g_parse(v, inner, f"{fpath}[{i}]", errs) if inner in G_SPEC else _g_scalar(inner, v, f"{fpath}[{i}]", errs)
                         for i, v in enumerate(value)]
        elif isinstance(kind, dict):  # map<string, message>
            if not isinstance(value, dict):
                errs.append((fpath, f"Invalid value at '{fpath}': expected an object, got {json.dumps(value)[:80]}"))
                continue
            out[name] = {k: g_parse(v, kind["map"], f"{fpath}[{i}].value", errs) for i, (k, v) in enumerate(value.items())}
        elif kind in G_SPEC:
            out[name] = g_parse(value, kind, fpath, errs)
        else:
            out[name] = _g_scalar(kind, value, fpath, errs)
    return out


def _g_raise_parse(errs: list[tuple[str, str]]) -> None:
    if errs:
        raise GInvalid("\n".join(d for _, d in errs),
                       [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                         "fieldViolations": [{"field": f, "description": d} for f, d in errs]}])


def _g_schema_checks(schema: dict, path: str, out: list[str], response_schema: bool) -> None:
    """Semantic checks of an OpenAPI-subset Schema (function `parameters`, `responseSchema`)."""
    typ = schema.get("type")
    props = schema.get("properties")
    if props is not None:
        if typ != "OBJECT":
            out.append(f"{path}.properties: only allowed for OBJECT type")
        elif not props and response_schema:
            out.append(f"{path}.properties: should be non-empty for OBJECT type")
        for k, sub in props.items():
            _g_schema_checks(sub, f"{path}.properties[{k}]", out, response_schema)
    for i, r in enumerate(schema.get("required") or []):
        if r not in (props or {}):
            out.append(f"{path}.required[{i}]: property is not defined")
    if schema.get("enum") is not None and typ != "STRING":
        out.append(f"{path}.enum: only allowed for STRING type")
    if schema.get("items") is not None:
        if typ != "ARRAY":
            out.append(f"{path}.items: only allowed for ARRAY type")
        _g_schema_checks(schema["items"], f"{path}.items", out, response_schema)
    for i, sub in enumerate(schema.get("anyOf") or []):
        _g_schema_checks(sub, f"{path}.any_of[{i}]", out, response_schema)


def _g_part_kind(part: dict) -> str | None:
    data = [k for k in G_PART_DATA if k in part]
    return data[0] if len(data) == 1 else None


def g_validate_contents(contents: list[dict], prefix: str) -> None:
    """Structure of `contents`: parts, roles, function call / response turns (countTokens checks these too)."""
    if not contents:
        raise GInvalid(f"* {prefix}.contents: contents is not specified\n")
    for i, c in enumerate(contents):
        parts = c.get("parts") or []
        if not parts:
            raise GInvalid(f"* {prefix}.contents[{i}].parts: contents.parts must not be empty.\n")
        for j, p in enumerate(parts):
            data = [k for k in G_PART_DATA if k in p]
            if not data:
                raise GInvalid(f"* {prefix}.contents[{i}].parts[{j}].data: required oneof field 'data' must have one initialized field\n")
            if len(data) > 1:
                raise GInvalid(f"Invalid JSON payload received. Oneof field 'data' is already set. Cannot set '{_snake(data[1])}'",
                               [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [
                                   {"field": f"contents[{i}].parts[{j}]", "description": f"Oneof field 'data' is already set. Cannot set '{_snake(data[1])}'"}]}])
            ib = p.get("inlineData")
            if ib is not None and (not isinstance(ib.get("mimeType"), str) or "/" not in ib["mimeType"] or not ib.get("data")):
                raise GInvalid(f"* {prefix}.contents[{i}].parts[{j}].inline_data: mime_type and data are required\n")
            fc = p.get("functionCall")
            if fc is not None and not fc.get("name"):
                raise GInvalid(f"* {prefix}.contents[{i}].parts[{j}].function_call.name: Name cannot be empty.\n")
            fr = p.get("functionResponse")
            if fr is not None:
                if not fr.get("name"):
                    raise GInvalid(f"* {prefix}.contents[{i}].parts[{j}].function_response.name: Name cannot be empty.\n")
                if "response" not in fr:
                    raise GInvalid(f"* {prefix}.contents[{i}].parts[{j}].function_response.response: response is required\n")
        if c.get("role", "") not in ("", "user", "model"):
            raise GInvalid("Please use a valid role: user, model.")

    def kind(c: dict) -> str:
        parts = c.get("parts") or []
        if c.get("role") == "model":
            return "call" if any("functionCall" in p for p in parts) else "model"
        return "response" if any("functionResponse" in p for p in parts) else "user"

    kinds = [kind(c) for c in contents]
    for i, k in enumerate(kinds):
        prev = kinds[i - 1] if i else None
        if k == "call" and prev not in ("user", "response"):
            raise GInvalid("Please ensure that function call turn comes immediately after a user turn or after a function response turn.")
        if k == "response":
            if prev != "call":
                raise GInvalid("Please ensure that function response turn comes immediately after a function call turn.")
            calls = [p["functionCall"] for p in contents[i - 1]["parts"] if "functionCall" in p]
            resps = [p["functionResponse"] for p in contents[i]["parts"] if "functionResponse" in p]
            if len(calls) != len(resps):
                raise GInvalid("Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.")
            names = [c.get("name") for c in calls]
            for r in resps:  # mock strictness: Gemini calls carry no ids, the name is what pairs them
                if r.get("name") not in names:
                    raise GInvalid(f"mock: functionResponse \"{r.get('name')}\" in contents[{i}] answers no functionCall of contents[{i - 1}] ({names})")


def g_validate_signatures(contents: list[dict], state: "MockState") -> None:
    """Thought signatures: each must be one this mock issued (else "corrupted"), a functionCall's on that same
    call; and, as Gemini 3 enforces, the first functionCall part of each model step of the current turn (the
    contents after the last user message with non-functionResponse content) must carry its signature."""
    for i, c in enumerate(contents):
        for j, p in enumerate(c.get("parts") or []):
            sig = p.get("thoughtSignature")
            if not sig:
                continue
            raw = g_b64decode(sig)
            if any(raw in (g_b64decode(d), d.encode()) for d in G_DUMMY_SIGNATURES):
                continue  # the stand-in, sent as is or base64-encoded
            with state.lock:
                on = state.g_signatures.get(raw)
            if on is None:
                raise GInvalid(f"Corrupted thought signature. (mock: contents[{i}].parts[{j}] carries a signature this mock never issued)")
            if on["kind"] == "functionCall":
                fc = p.get("functionCall")
                if c.get("role") != "model" or fc is None or fc.get("name") != on["name"] or (fc.get("args") or {}) != on["args"]:
                    raise GInvalid(f"Corrupted thought signature. (mock: contents[{i}].parts[{j}] carries the signature issued "
                                   f"on functionCall {on['name']}{json.dumps(on['args'])}: it must come back on that part)")
    start = 0
    for i, c in enumerate(contents):
        if c.get("role") != "model" and any(_g_part_kind(p) in ("text", "inlineData", "fileData") and not p.get("thought")
                                            for p in c.get("parts") or []):
            start = i
    for i in range(start + 1, len(contents)):
        c = contents[i]
        calls = [p for p in c.get("parts") or [] if "functionCall" in p]
        if c.get("role") == "model" and calls and not calls[0].get("thoughtSignature"):
            raise GInvalid(f"Function call `{calls[0]['functionCall'].get('name')}` in the `{i}.` content block is missing a "
                           "`thought_signature`. Learn more: https://ai.google.dev/gemini-api/docs/thought-signatures")


def g_validate_generate(req: dict, model: str, state: "MockState") -> None:
    """Semantic checks of a parsed GenerateContentRequest (the parse already refused unknown names and bad types)."""
    g_validate_contents(req.get("contents") or [], "GenerateContentRequest")
    si = req.get("systemInstruction")
    if si is not None and not si.get("parts"):
        raise GInvalid("* GenerateContentRequest.system_instruction.parts: contents.parts must not be empty.\n")
    problems: list[str] = []
    names: list[str] = []
    for ti, tool in enumerate(req.get("tools") or []):
        for di, d in enumerate(tool.get("functionDeclarations") or []):
            where = f"GenerateContentRequest.tools[{ti}].function_declarations[{di}]"
            name = d.get("name") or ""
            if not G_FUNCTION_NAME.fullmatch(name):
                problems.append(f"{where}.name: Invalid function name. Must start with a letter or an underscore. Must be "
                                "alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 64.")
            if d.get("parameters") is not None and d.get("parametersJsonSchema") is not None:
                problems.append(f"{where}: parameters and parameters_json_schema cannot both be set.")
            if d.get("parameters") is not None:
                _g_schema_checks(d["parameters"], f"{where}.parameters", problems, False)
            names.append(name)
    fcc = (req.get("toolConfig") or {}).get("functionCallingConfig") or {}
    allowed = fcc.get("allowedFunctionNames") or []
    if allowed and fcc.get("mode") not in ("ANY", "VALIDATED"):
        problems.append("GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: "
                        "should only be set when the Mode is ANY or VALIDATED.")
    for i, a in enumerate(allowed):
        if a not in names:
            problems.append(f"GenerateContentRequest.tool_config.function_calling_config.allowed_function_names[{i}]: "
                            f"function \"{a}\" is not declared in tools.")
    gc = req.get("generationConfig") or {}
    mime = gc.get("responseMimeType")
    if mime is not None and mime not in G_RESPONSE_MIME_TYPES:
        problems.append("GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes are `text/plain`, "
                        "`application/json`, `application/xml`, `application/yaml` and `text/x.enum`.")
    if gc.get("responseSchema") is not None or gc.get("responseJsonSchema") is not None:
        if gc.get("responseSchema") is not None and gc.get("responseJsonSchema") is not None:
            problems.append("GenerateContentRequest.generation_config: response_schema and response_json_schema cannot both be set.")
        if mime not in ("application/json", "text/x.enum"):
            problems.append("GenerateContentRequest.generation_config.response_mime_type: a response schema requires "
                            "response_mime_type `application/json` or `text/x.enum`.")
        if gc.get("responseSchema") is not None:
            _g_schema_checks(gc["responseSchema"], "GenerateContentRequest.generation_config.response_schema", problems, True)
    n = gc.get("candidateCount")
    if n is not None and not 1 <= n <= 8:
        problems.append("GenerateContentRequest.generation_config.candidate_count: must be in the range [1, 8].")
    if len(gc.get("stopSequences") or []) > 5:
        problems.append("GenerateContentRequest.generation_config.stop_sequences: at most 5 stop sequences are allowed.")
    if gc.get("maxOutputTokens") is not None and gc["maxOutputTokens"] < 1:
        problems.append("GenerateContentRequest.generation_config.max_output_tokens: must be positive.")
    t = gc.get("temperature")
    if t is not None and not 0 <= t <= 2:
        problems.append("GenerateContentRequest.generation_config.temperature: must be in the range [0.0, 2.0].")
    tp = gc.get("topP")
    if tp is not None and not 0 <= tp <= 1:
        problems.append("GenerateContentRequest.generation_config.top_p: must be in the range [0.0, 1.0].")
    if problems:
        raise GInvalid("".join(f"* {p}\n" for p in problems))
    tc = gc.get("thinkingConfig") or {}
    budget, level = tc.get("thinkingBudget"), tc.get("thinkingLevel")
    if budget is not None and level not in (None, "THINKING_LEVEL_UNSPECIFIED", 0):
        raise GInvalid("You can only set only one of thinking budget and thinking level.")
    if level not in (None, "THINKING_LEVEL_UNSPECIFIED", 0) and model.startswith("gemini-2"):
        raise GInvalid("Thinking level is not supported for this model.")
    if budget is not None and budget != -1 and model in G_THINKING_BUDGET:
        lo, hi = G_THINKING_BUDGET[model]
        if budget == 0 and lo > 0:
            raise GInvalid("Budget 0 is invalid. This model only works in thinking mode.")
        if not lo <= budget <= hi:
            raise GInvalid(f"The thinking budget {budget} is invalid. Please choose a value between {lo} and {hi}.")
    g_validate_signatures(req["contents"], state)


def gemini_text_of(content: dict) -> str:
    """The visible text of a Content (thought parts excluded)."""
    return "".join(p.get("text", "") for p in content.get("parts") or [] if "text" in p and not p.get("thought"))


def gemini_count_tokens(req: dict) -> int:
    """The mock's deterministic count for a GenerateContentRequest: characters of all text // 4 + 7."""
    total = sum(len(gemini_text_of(c)) for c in req.get("contents") or [])
    if req.get("systemInstruction"):
        total += len(gemini_text_of(req["systemInstruction"]))
    return total // 4 + 7


def gemini_function_output(response: Any) -> str:
    """A functionResponse.response as text: its `output` (documented), else its only string value, else the JSON."""
    if isinstance(response, dict):
        if "output" in response:
            out = response["output"]
            return out if isinstance(out, str) else json.dumps(out)
        strings = [v for v in response.values() if isinstance(v, str)]
        if len(response) == 1 and strings:
            return strings[0]
    return json.dumps(response)


def gemini_example(schema: Any, text: str) -> Any:
    """A deterministic instance of a response schema (OpenAPI subset or JSON Schema): strings are `text`."""
    if not isinstance(schema, dict):
        return text
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "any_of", "oneOf"):
        if schema.get(key):
            return gemini_example(schema[key][0], text)
    typ = schema.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if str(t).lower() != "null"), "null")
    typ = str(typ or ("object" if "properties" in schema else "string")).lower()
    if typ == "object":
        props = schema.get("properties") or {}
        order = [k for k in schema.get("propertyOrdering") or [] if k in props] + [k for k in props if k not in (schema.get("propertyOrdering") or [])]
        return {k: gemini_example(props[k], text) for k in order}
    if typ == "array":
        return [gemini_example(schema.get("items"), text)]
    return {"integer": 1, "number": 1.5, "boolean": True, "null": None}.get(typ, text)


def describe_images_gemini(content: dict) -> list[str]:
    out = []
    for p in content.get("parts") or []:
        if "inlineData" in p:
            out.append(f"base64:{p['inlineData']['mimeType']}")
        elif "fileData" in p:
            out.append(f"file:{p['fileData'].get('fileUri')}")
    return out


def plan_gemini(req: dict) -> dict:
    """What to answer a parsed GenerateContentRequest (same conventions as `plan_reply`)."""
    contents = req["contents"]
    last = contents[-1]
    last_user = next((c for c in reversed(contents) if c.get("role") != "model" and gemini_text_of(c)), None)
    user_text = gemini_text_of(last_user) if last_user else ""
    gc = req.get("generationConfig") or {}
    decls = [d for t in req.get("tools") or [] for d in t.get("functionDeclarations") or []]
    fcc = (req.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode = fcc.get("mode") or "AUTO"
    plan: dict[str, Any] = {"text": "", "tool": None, "user_text": user_text}
    responses = [p["functionResponse"] for p in last.get("parts") or [] if "functionResponse" in p]
    if last.get("role") != "model" and responses:
        plan["text"] = "tool result: " + "; ".join(gemini_function_output(r.get("response")) for r in responses)
    elif last.get("role") != "model" and decls and mode != "NONE":
        allowed = fcc.get("allowedFunctionNames") or []
        if not directed_call(plan, user_text, [d.get("name") for d in decls]):
            plan["tool"] = allowed[0] if allowed and mode in ("ANY", "VALIDATED") else decls[0]["name"]
    elif last.get("role") != "model" and (imgs := describe_images_gemini(last)):
        plan["text"] = "images: " + ", ".join(imgs)
    elif gc.get("responseMimeType") == "application/json":
        schema = gc.get("responseSchema") if gc.get("responseSchema") is not None else gc.get("responseJsonSchema")
        plan["text"] = json.dumps(gemini_example(schema, user_text) if schema is not None else {"echo": user_text})
    else:
        plan["text"] = "echo: " + user_text
    tc = gc.get("thinkingConfig") or {}
    budget = tc.get("thinkingBudget")
    plan["thinking"] = bool(tc) and budget != 0 and bool(
        tc.get("includeThoughts") or budget is not None or tc.get("thinkingLevel") not in (None, "THINKING_LEVEL_UNSPECIFIED", 0))
    plan["show_thoughts"] = plan["thinking"] and tc.get("includeThoughts") is True
    plan["finish"] = "STOP"  # Gemini says STOP for a function call and for a stop sequence too
    plan["candidates"] = gc.get("candidateCount") or 1
    limit = gc.get("maxOutputTokens")
    plan["output_tokens"] = GEMINI_USAGE["candidatesTokenCount"]
    if not plan["tool"]:
        plan["text"], _ = apply_stop(plan["text"], list(gc.get("stopSequences") or []))
        if isinstance(limit, int) and limit <= 3:
            plan["text"], plan["finish"] = plan["text"][:4], "MAX_TOKENS"
            plan["output_tokens"] = min(plan["output_tokens"], limit)
    return plan


def gemini_usage(plan: dict, candidates_so_far: int | None = None, thoughts_so_far: int | None = None) -> dict:
    """usageMetadata: final (defaults) or running (a stream's intermediate chunks: prompt and counts so far)."""
    final = candidates_so_far is None
    cand = plan["output_tokens"] if final else candidates_so_far
    thoughts = (REASONING_TOKENS if plan["thinking"] else 0) if thoughts_so_far is None else thoughts_so_far
    prompt = GEMINI_USAGE["promptTokenCount"]
    u: dict[str, Any] = {"promptTokenCount": prompt}
    if cand:
        u["candidatesTokenCount"] = cand
    u["totalTokenCount"] = prompt + cand + thoughts
    if final:
        u["cachedContentTokenCount"] = GEMINI_USAGE["cachedContentTokenCount"]
    u["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    if final:
        u["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": GEMINI_USAGE["cachedContentTokenCount"]}]
    if thoughts:
        u["thoughtsTokenCount"] = thoughts
    return u


def gemini_model_info(model: str) -> dict:
    pro = "pro" in model
    return {"name": f"models/{model}", "version": "001", "displayName": "Gemini 2.5 Pro" if pro else "Gemini 2.5 Flash",
            "description": "mock", "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
            "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"],
            "temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2, "thinking": True}


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
        t_head = time.time()  # the request head arrived (the body may still be on its way)
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
        kind = {"openai": "openai", "groq": "openai", "nokey": "openai", "pool": "openai", "anthropic": "anthropic",
                "gemini": "gemini"}.get(prefix)
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
            "t_head": t_head,
        }
        self.state.record(entry)
        self.entry = entry
        if path == "/_mock/cloud" and method == "POST":  # token lifetimes and revocations (mock_cloud.py)
            import mock_cloud  # noqa: PLC0415
            cs = mock_cloud.cloud_state(self)
            with self.state.lock:
                for k in ("aad_ttl", "google_ttl", "copilot_ttl"):
                    if isinstance(body, dict) and k in body:
                        cs[k] = body[k]
                for issuer in ("aad", "google", "copilot"):
                    cs[issuer].pop((body or {}).get("revoke"), None)
                out = json.loads(json.dumps(cs))
            return self.send_json(200, out)
        if prefix in ("aad", "azure", "foundry", "google", "vertex", "github", "copilot", "ghlogin", "replicate"):  # cloud auth and URL shapes: mock_cloud.py
            import mock_cloud  # noqa: PLC0415 (imported here: it drives this module's handlers)
            return mock_cloud.route(self, prefix, method, rest, url.query, raw, body, json_ok)
        if prefix in ("bedrock", "cohere"):  # protocol mocks of their own: mock_bedrock.py, mock_cohere.py
            import mock_bedrock, mock_cohere  # noqa: E401 (imported here: they import this module)
            if prefix == "bedrock":
                return mock_bedrock.route(self, method, rest, raw, body, json_ok)
            return mock_cohere.route(self, method, rest, body, json_ok)
        if kind is None:
            entry["status"] = 404
            return self.send_json(404, {"error": {"message": f"mock: unknown prefix {prefix!r}", "type": "invalid_request_error", "param": None, "code": "unknown_url"}})

        # auth first, as the real APIs do
        if not self.check_auth(prefix, kind):
            return

        if kind == "gemini":
            return self.gemini_route(method, rest, url.query, body, json_ok, raw)
        if kind == "openai":
            if rest == "/v1/chat/completions" and method == "POST":
                return self.openai_chat(prefix, body, json_ok)
            if rest == "/v1/embeddings" and method == "POST":
                return self.openai_embeddings(body)
            if rest == "/v1/completions" and method == "POST" and prefix == "openai":
                return self.openai_completions(body, json_ok)
            if rest == "/v1/responses" and prefix == "openai":  # the Responses API: mock_responses.py
                import mock_responses  # noqa: PLC0415 (imported here: it imports this module)
                return mock_responses.route(self, method, body, json_ok)
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

    def openai_completions(self, body: Any, json_ok: bool) -> None:
        """The legacy completions API: `prompt` (a string) -> `completion: <prompt>`; streamed as text chunks."""
        if not json_ok or not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            return self.openai_error(400, "'prompt' is a required property", "invalid_request_error", "prompt")
        if not str(body.get("model", "")).endswith("-instruct") and trigger_of(body.get("model")) is None:
            return self.openai_error(404, f"This is a chat model and not supported in the v1/completions endpoint. "
                                     f"Did you mean to use v1/chat/completions?", "invalid_request_error", "model")
        n = self.state.next_id()
        text = f"completion: {body['prompt']}"
        usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        base = {"id": f"cmpl-mock{n:06d}", "object": "text_completion", "created": int(time.time()), "model": body["model"]}
        self.entry["status"] = 200
        if not body.get("stream"):
            return self.send_json(200, {**base, "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}],
                                        "usage": usage})
        self.start_stream()
        events = [{**base, "choices": [{"text": piece, "index": 0, "logprobs": None, "finish_reason": None}]} for piece in split_text(text, 3)]
        events.append({**base, "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}]})
        self.write_events([b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"])
        self.end_stream()

    def openai_embeddings(self, body: Any) -> None:
        import mock_embed  # noqa: PLC0415
        if isinstance(body, dict) and trigger_of(body.get("model")) == "mock-fail-500":
            return self.openai_error(500, "The server had an error while processing your request. Sorry about that!", "server_error")
        try:
            return self.reply(200, mock_embed.openai(body))
        except mock_embed.EmbedInvalid as e:
            return self.openai_error(e.status, e.message, "invalid_request_error")

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
        if kind == "gemini":
            return self.gemini_auth(expected)
        if kind == "openai":
            got = self.headers.get("Authorization")
            if got is None:
                self.openai_error(401, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", "invalid_request_error")
                return False
            if isinstance(expected, dict):  # /pool: several keys; a "busy" one is rate-limited for 30 s
                state = expected.get(got.removeprefix("Bearer "))
                if state == "busy":
                    self.send_response(429)
                    body = json.dumps({"error": {"message": "Rate limit reached for requests", "type": "requests",
                                                 "param": None, "code": "rate_limit_exceeded"}}).encode()
                    for k, v in (("content-type", "application/json"), ("content-length", str(len(body))),
                                 ("retry-after", "30"), ("x-ratelimit-reset-requests", "30s")):
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                    self.entry["status"] = 429
                    return False
                if state is None:
                    self.openai_error(401, "Incorrect API key provided.", "invalid_request_error", None, "invalid_api_key")
                    return False
                return True
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

    def openai_chat(self, prefix: str, body: Any, json_ok: bool, azure: bool = False) -> None:
        """`azure`: Azure's content-filter annotations (mock_cloud.py)."""
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
        if trig == "mock-lag":
            time.sleep(LAG_SECONDS)
        if trig == "mock-slow":
            time.sleep(SLOW_SECONDS)
        if trig == "mock-endless-line" and stream:
            return self.endless_line({"x-request-id": f"req_mock{self.state.next_id():06d}"})
        if trig == "mock-html" and not stream:
            return self.send_html()
        plan = plan_reply("openai", body)
        filtered = azure and trig == "mock-filtered"
        if filtered:
            plan["text"] = plan["text"][:4]
            plan["stop_reason"] = "filtered"
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
        finish = {"tool": "tool_calls", "end": "stop", "stop_sequence": "stop", "max_tokens": "length",
                  "filtered": "content_filter"}[plan["stop_reason"]]
        safe = {k: {"filtered": False, "severity": "safe"} for k in ("hate", "self_harm", "sexual", "violence")}
        flagged = {**safe, "violence": {"filtered": True, "severity": "high"}}
        prompt_filter = [{"prompt_index": 0, "content_filter_results": safe}]
        args = json.dumps(plan.get("args", TOOL_ARGS))
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
            if azure:
                for c in choices:
                    c["content_filter_results"] = flagged if filtered else safe
            resp: dict[str, Any] = {"id": ids["id"], "object": "chat.completion", "created": created, "model": model,
                                    "choices": choices, "usage": usage, "system_fingerprint": "fp_mock"}
            if azure:
                resp["prompt_filter_results"] = prompt_filter
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
            if azure and delta is not None:
                c["choices"][0]["content_filter_results"] = (flagged if finish_reason == "content_filter" else
                                                             {} if finish_reason or not delta.get("content") else safe)
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
                for frag in json_fragments(plan.get("args", TOOL_ARGS), ('{"loca', 'tion": "Pa', 'ris"}')):
                    events.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": frag}}]}))
        elif trig == "mock-drip":
            pass
        else:
            for piece in split_text(plan["text"], 3):
                events.append(chunk({"content": piece}))
        if azure:  # Azure's first chunk: the prompt's filter results, nothing else set
            events.insert(0, {"choices": [], "created": 0, "id": "", "model": "", "object": "",
                              "prompt_filter_results": prompt_filter})
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
        if trig == "mock-gzip-drip":
            self.start_stream({**extra_headers, "Content-Encoding": "gzip"})
            z = zlib.compressobj(wbits=31)  # the gzip container
            first_text = next((i for i, e in enumerate(events) if (e.get("choices") or [{}])[0].get("delta", {}).get("content")), 0)
            for i, ev in enumerate([sse(e) for e in events] + [sse(b"[DONE]")]):
                self.chunk(z.compress(ev) + z.flush(zlib.Z_SYNC_FLUSH))
                if i == first_text:
                    time.sleep(GZIP_DRIP_PAUSE)
            self.chunk(z.flush())
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
        if trig == "mock-lag":
            time.sleep(LAG_SECONDS)
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
            blocks.append({"type": "tool_use", "id": tid, "name": plan["tool"], "input": dict(plan.get("args", TOOL_ARGS))})
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
                for frag in json_fragments(b["input"], ("", '{"location": ', '"Par', 'is"}')):
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


    # ---- Gemini --------------------------------------------------------------------------------

    def gemini_error(self, status: int, gstatus: str, message: str, details: list | None = None,
                     headers: dict[str, str] | None = None) -> None:
        err: dict[str, Any] = {"code": status, "message": message, "status": gstatus}
        if details:
            err["details"] = details
        self.reply(status, {"error": err}, headers)

    def gemini_auth(self, expected: str | None) -> bool:
        """`x-goog-api-key` or `?key=`, as the Generative Language API takes an API key."""
        q = parse_qs(urlsplit(self.path).query)
        got = self.headers.get("x-goog-api-key") or (q.get("key") or [None])[0]
        if got is None:
            if self.headers.get("Authorization"):  # an API key sent as a bearer token is not an OAuth token
                self.gemini_error(401, "UNAUTHENTICATED",
                                  "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                                  "or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
                                  [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED",
                                    "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}])
            else:
                self.gemini_error(403, "PERMISSION_DENIED",
                                  "Method doesn't allow unregistered callers (callers without established identity). "
                                  "Please use API Key or other form of API consumer identity to call this API.")
            return False
        if expected is None or got != expected:
            msg = "API key not valid. Please pass a valid API key."
            self.gemini_error(400, "INVALID_ARGUMENT", msg, [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                 "metadata": {"service": "generativelanguage.googleapis.com"}},
                {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": msg}])
            return False
        return True

    def gemini_route(self, method: str, rest: str, query: str, body: Any, json_ok: bool, raw: bytes) -> None:
        m = re.fullmatch(r"/(v1|v1beta)/models(?:/([^/:]+)(?::([A-Za-z]+))?)?/?", rest)
        if not m:
            return self.gemini_error(404, "NOT_FOUND", f"Method not found: {method} {rest}")
        version, model, action = m.group(1), unquote(m.group(2) or ""), m.group(3)
        if not model:
            if method != "GET":
                return self.gemini_error(404, "NOT_FOUND", f"Method not found: {method} {rest}")
            return self.reply(200, {"models": [gemini_model_info(x) for x in GEMINI_MODELS]})
        known = model.startswith("gemini-") or trigger_of(model) is not None
        if action is None:
            if method != "GET":
                return self.gemini_error(404, "NOT_FOUND", f"Method not found: {method} {rest}")
            if model not in GEMINI_MODELS:
                return self.gemini_error(404, "NOT_FOUND", f"models/{model} is not found for API version {version}")
            return self.reply(200, gemini_model_info(model))
        if method == "POST" and action in ("embedContent", "batchEmbedContents", "predict"):
            import mock_embed  # noqa: PLC0415
            if not json_ok:
                return self.gemini_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
            try:
                if action == "predict":  # Vertex AI only (mock_cloud.py routes it here)
                    return self.reply(200, mock_embed.vertex_predict(body))
                return self.reply(200, mock_embed.gemini(model, action, body))
            except mock_embed.EmbedInvalid as e:
                return self.gemini_error(e.status, "INVALID_ARGUMENT", e.message)
        if method != "POST" or action not in ("generateContent", "streamGenerateContent", "countTokens"):
            return self.gemini_error(404, "NOT_FOUND", f"Method not found: {method} {rest}")
        if not known:
            return self.gemini_error(404, "NOT_FOUND", f"models/{model} is not found for API version {version}, or is not "
                                     f"supported for {action}. Call ListModels to see the list of available models and their supported methods.")
        if not json_ok:
            return self.gemini_error(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. Unexpected token.\n{raw[:40]!r}\n^")
        typ = "CountTokensRequest" if action == "countTokens" else "GenerateContentRequest"
        errs: list[tuple[str, str]] = []
        try:
            req = g_parse({} if body is None else body, typ, "", errs)
            _g_raise_parse(errs)
            if action == "countTokens":
                return self.gemini_count(req)
            g_validate_generate(req, model, self.state)
        except GInvalid as e:
            return self.gemini_error(e.status, e.gstatus, e.message, e.violations)
        alt = (parse_qs(query).get("alt") or ["json"])[0]
        self.gemini_generate(model, req, stream=action == "streamGenerateContent", sse=alt == "sse")

    def gemini_count(self, req: dict) -> None:
        inner = req.get("generateContentRequest")
        if inner is not None and req.get("contents"):
            raise GInvalid("* CountTokensRequest: contents and generate_content_request are mutually exclusive.\n")
        if inner is not None:
            if not inner.get("model"):
                raise GInvalid("* GenerateContentRequest.model: unexpected model name format\n")
            g_validate_contents(inner.get("contents") or [], "GenerateContentRequest")
            n = gemini_count_tokens(inner)
        else:
            g_validate_contents(req.get("contents") or [], "CountTokensRequest")
            n = gemini_count_tokens(req)
        self.entry["issued"] = {"totalTokens": n}
        self.reply(200, {"totalTokens": n, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": n}]})

    def gemini_generate(self, model: str, req: dict, stream: bool, sse: bool) -> None:
        trig = trigger_of(model)
        if trig == "mock-fail-500":
            return self.gemini_error(500, "INTERNAL", GEMINI_INTERNAL)
        if trig == "mock-fail-429":
            return self.gemini_error(429, "RESOURCE_EXHAUSTED",
                                     "You exceeded your current quota, please check your plan and billing details. For more "
                                     "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
                                     [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                                         {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                                          "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
                                      {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}],
                                     {"retry-after": "1"})
        if trig == "mock-fail-400":
            return self.gemini_error(400, "INVALID_ARGUMENT", "mock-fail-400: Request contains an invalid argument.")
        if trig == "mock-overloaded":
            return self.gemini_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
        if trig == "mock-lag":
            time.sleep(LAG_SECONDS)
        if trig == "mock-slow":
            time.sleep(SLOW_SECONDS)
        if trig == "mock-endless-line" and stream:
            return self.endless_line()
        if trig == "mock-html" and not (stream and sse):
            return self.send_html()

        plan = plan_gemini(req)
        n = self.state.next_id()
        response_id = base64.urlsafe_b64encode(hashlib.sha256(f"gemini-{n}".encode()).digest()[:16]).decode().rstrip("=")
        issued: dict[str, Any] = {"responseId": response_id}
        thoughts = GEMINI_THOUGHT_PREFIX + plan["user_text"] if plan["show_thoughts"] else None
        if thoughts:
            issued["thoughts"] = thoughts
        sig = None
        if plan["tool"]:
            sig = self.state.make_g_signature({"kind": "functionCall", "name": plan["tool"], "args": dict(plan.get("args", TOOL_ARGS))})
            issued["function_calls"] = [{"name": plan["tool"], "args": dict(plan.get("args", TOOL_ARGS)), "thoughtSignature": sig}]
        elif plan["thinking"]:
            sig = self.state.make_g_signature({"kind": "text"})
            issued["text_signature"] = sig
        self.entry["issued"] = issued
        self.entry["status"] = 200
        fc_part = {"functionCall": {"name": plan["tool"], "args": dict(plan.get("args", TOOL_ARGS))}, "thoughtSignature": sig} if plan["tool"] else None

        def response(parts: list[dict], finish: str | None, usage: dict) -> dict:
            cands = []
            for i in range(plan["candidates"]):
                c: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
                if finish:
                    c["finishReason"] = finish
                c["index"] = i
                cands.append(c)
            return {"candidates": cands, "usageMetadata": usage, "modelVersion": model, "responseId": response_id}

        if not stream:
            parts: list[dict] = [{"text": thoughts, "thought": True}] if thoughts else []
            if fc_part:
                parts.append(fc_part)
            else:
                parts.append({"text": plan["text"], **({"thoughtSignature": sig} if sig else {})})
            resp = response(parts, plan["finish"], gemini_usage(plan))
            if trig == "mock-gzip":
                return self.send_gzip_json(200, resp)
            return self.send_json(200, resp, delay_body=SLOW_SECONDS if trig == "mock-slow-body" else 0.0)

        chunks: list[dict] = []
        thoughts_total = REASONING_TOKENS if plan["thinking"] else 0
        if thoughts:
            pieces = split_text(thoughts, 2)
            for i, piece in enumerate(pieces):
                chunks.append(response([{"text": piece, "thought": True}], None,
                                       gemini_usage(plan, 0, thoughts_total * (i + 1) // len(pieces))))
        if fc_part:
            chunks.append(response([fc_part], plan["finish"], gemini_usage(plan)))
        else:
            text = plan["text"]
            pieces = split_text(text, 3) if text else [""]
            done = 0
            for i, piece in enumerate(pieces):
                done += len(piece)
                last = i == len(pieces) - 1
                if last and not sig:
                    chunks.append(response([{"text": piece}], plan["finish"], gemini_usage(plan)))
                else:
                    so_far = plan["output_tokens"] * done // max(1, len(text))
                    chunks.append(response([{"text": piece}], None, gemini_usage(plan, so_far, thoughts_total)))
            if sig:  # as Gemini 3 streams it: the signature on an empty text part of the last chunk
                chunks.append(response([{"text": "", "thoughtSignature": sig}], plan["finish"], gemini_usage(plan)))

        def frame(obj: Any, i: int) -> bytes:
            data = obj if isinstance(obj, bytes) else json.dumps(obj, indent=2 if not sse else None).encode()
            if sse:
                return b"data: " + data + b"\r\n\r\n"
            return (b"[" if i == 0 else b"\n,\r\n") + data

        def start() -> None:
            if sse:
                self.start_stream()
            else:  # the same chunked 200, as one JSON array
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()

        def finish_array() -> None:
            if not sse:
                self.chunk(b"\n]")

        if trig in ("mock-stream-error", "mock-stream-cut"):
            start()
            first = response([{"text": "partial "}], None, gemini_usage(plan, 2, 0))
            self.chunk(frame(first, 0))
            if trig == "mock-stream-error":
                self.chunk(frame({"error": {"code": 500, "message": GEMINI_INTERNAL, "status": "INTERNAL"}}, 1))
                finish_array()
                self.end_stream()
            else:
                self.abort_stream()
            return
        if trig == "mock-drip":
            start()
            try:
                for i in range(DRIP_COUNT):
                    if i:
                        time.sleep(DRIP_INTERVAL)
                    self.chunk(frame(response([{"text": f"drip {i} "}], None, gemini_usage(plan, i + 1, 0)), i))
                plan["output_tokens"] = DRIP_COUNT
                self.chunk(frame(response([{"text": ""}], "STOP", gemini_usage(plan)), DRIP_COUNT))
                finish_array()
                self.end_stream()
            except OSError:
                self.entry["client_gone"] = True
                self.close_connection = True
            return
        frames = [frame(c, i) for i, c in enumerate(chunks)]
        if trig == "mock-html":  # the first event's data replaced by a page fragment
            frames[0] = frame(HTML_EVENT_DATA, 0)
        start()
        if trig == "mock-slow-body":
            time.sleep(SLOW_SECONDS)
        self.write_events(frames)
        finish_array()
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
    ap.add_argument("--gemini-key", default=os.environ.get("MOCK_GEMINI_KEY", "AIza-mock-gemini"))
    ap.add_argument("--cohere-key", default=os.environ.get("MOCK_COHERE_KEY", "co-mock-cohere"))
    a = ap.parse_args()
    srv = MockServer((a.host, a.port), {"openai": a.openai_key, "anthropic": a.anthropic_key, "groq": a.groq_key,
                                        "gemini": a.gemini_key, "cohere": a.cohere_key, "nokey": None})
    print(f"MOCK_PORT={srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
