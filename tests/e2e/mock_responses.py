"""The mock's OpenAI Responses API upstream: `POST /openai/v1/responses` (mounted by mock_upstream.py for the
`openai` prefix, after the same `Authorization: Bearer` check as its Chat Completions; a gateway points at it
with OPENAI_BASE_URL=http://127.0.0.1:P/openai/v1).

What it checks, as OpenAI does. Sources: [SDK] = the pinned `openai` Python SDK (types/responses/*, generated
from OpenAI's OpenAPI spec: field names, required fields, enums, item and event shapes); [docs] =
developers.openai.com/api/reference/resources/responses (create, streaming events); the error wordings are
the API's own, as quoted in public issue reports (in the brackets):

* Top-level fields: ResponseCreateParams only [SDK response_create_params.py]; anything else -> 400
  "Unknown parameter: 'x'." (param x, code unknown_parameter) [cogwheel0/conduit#258]; the same for an
  unknown field inside an item (`input[3].foo`) [Stack-Cairn/LiveAgent#334] or a function tool.
* `model` required -> "Missing required parameter: 'model'." (code missing_required_parameter); `input` a
  string or an array of items, else invalid_type.
* Items [SDK response_input_item_param.py]: messages (`type: message` or no type) with role user / assistant /
  system / developer; content a string or parts: input_text / input_image (an http(s) URL or a base64 data URI,
  or a file_id) / input_file / input_audio for user, system and developer; output_text / refusal for
  assistant. function_call {call_id (non-empty: "Invalid 'input[4].call_id': empty string. Expected a string
  with minimum length 1, ..." code empty_string [BigPizzaV3/CodexPlusPlus#315]), name, arguments (a string),
  id?}; function_call_output {call_id, output (a string or input_* parts)}; reasoning {id, summary
  [{type: summary_text, text}], encrypted_content?}; item_reference {id}; the other SDK item types shallowly.
  An item id must carry its type's prefix: "Invalid 'input[66].id': 'item_...'. Expected an ID that begins
  with 'rs'." [jlcodes99/cockpit-tools#2090] (fc for function_call, msg for message, ws for web_search_call).
* Pairing: a function_call_output without its call -> "No tool call found for function call output with
  call_id X." [continuedev/continue#10092, microsoft/vscode#320060]; a call without its output -> "No tool
  output found for function call X." [router-for-me/CLIProxyAPI#2368] (both param input, code null); a
  reasoning item not followed by the assistant item it came with -> "Item 'rs_..' of type 'reasoning' was
  provided without its required following item." [continuedev/continue#8933].
* Reasoning items come back statelessly through `encrypted_content`: one the mock did not issue for that item
  -> "The encrypted content for item rs_.. could not be verified. Reason: Encrypted content could not be
  decrypted or parsed." (code invalid_encrypted_content) [openai/codex#8145, smallmain/vscode-unify-chat-
  provider#178]; a reasoning item without it, or an item_reference, must name an item the mock stored (store
  not false), else 404 "Item with id 'rs_..' not found. Items are not persisted when `store` is set to false.
  Try again with `store` set to true, or remove this item from your input." [can1357/oh-my-pi#41].
* `previous_response_id` must name a response the mock stored, else 400 "Previous response with id 'resp_..'
  not found." (code previous_response_not_found) [maximhq/bifrost#2441]; its input and output then precede
  this request's input (calls answered in this turn are paired with them).
* tools: flat function definitions {type: function, name, description?, parameters, strict} [SDK
  function_tool_param.py]; the Chat Completions shape {type, function: {...}} -> "Missing required
  parameter: 'tools[0].name'." [icebear0828/codex-proxy#399]; hosted tool types pass. tool_choice none / auto
  / required / {type: function, name} (a name among the tools) / {type: allowed_tools, ...} / hosted types.
* text.format text / json_object / json_schema {name, schema, strict?, description?} [SDK
  response_format_text_json_schema_config_param.py] ("Missing required parameter: 'text.format.name'.").
* reasoning {effort: none..max, summary / generate_summary: auto / concise / detailed} [SDK
  shared_params/reasoning.py]; only reasoning models (o1.., gpt-5..) take `reasoning.effort` and refuse
  `temperature` / `top_p` ("Unsupported parameter: 'reasoning.effort' is not supported with this model.",
  code unsupported_parameter).
* max_output_tokens >= 16: "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16,
  but got 10 instead." (code integer_below_min_value) [vectorize-io/hindsight#58]; temperature 0-2, top_p 0-1;
  stream_options only with stream; include values from ResponseIncludable [SDK response_includable.py].
  (Wordings without a source in brackets, e.g. for an unknown tool_choice function, a bad input_image or
  json_object without the word "json", follow the API's style but are the mock's own.)

Answers (a Response object [SDK response.py]: id resp_.., object response, created_at, status, output,
usage, and the request's settings echoed): `echo: <last user text>` as a message item {id msg_.., role
assistant, status, content [{type output_text, text, annotations [], logprobs []}]}; a function_call item
{id fc_.., call_id call_.., name, arguments (TOOL_ARGS), status} when function tools are offered (and
tool_choice is not none) and the last item is a user message; `tool result: <outputs>` after
function_call_output items; `images: ...` for input_image parts; JSON shaped by the schema for text.format
json_schema (`{"echo": ...}` for json_object). A reasoning model puts a reasoning item {id rs_.., summary,
encrypted_content} first (summary [{type summary_text, text "Reasoning about: <user text>"}] only when
reasoning.summary is set; encrypted_content always, as the SDK documents for POST /v1/responses).
max_output_tokens at the API's minimum (16) stands for "the limit was hit": status incomplete,
incomplete_details {reason: max_output_tokens}, the text cut to 4 characters.

usage: input_tokens 25 (cached_tokens 5 of them), output_tokens 9 (+4 reasoning_tokens), total_tokens
(mock_upstream.OPENAI_USAGE, REASONING_TOKENS).

Streams (stream: true) are SSE `event: <type>\\ndata: <json>\\n\\n` with no [DONE] [docs streaming events]:
response.created, response.in_progress (status in_progress, no output), then per item output_item.added,
(reasoning_summary_part.added, reasoning_summary_text.delta*, .done, reasoning_summary_part.done |
content_part.added, output_text.delta*, output_text.done, content_part.done | function_call_arguments.delta*,
.done), output_item.done, and response.completed (or response.incomplete) carrying the whole Response. Every
event has `sequence_number`, 0, 1, 2, ...; delta events carry `obfuscation` unless stream_options
{include_obfuscation: false}.

Triggers (model names starting with, as in mock_upstream): mock-fail-500 / -429 / -400, mock-overloaded (503),
mock-slow, mock-slow-body, mock-stream-error (a text delta "partial ", then response.failed with
error {code: server_error}), mock-stream-cut, mock-drip, mock-endless-line, mock-html, mock-gzip.

Recorded per request (`issued`): the response id, the output items, call ids, the reasoning item's id,
summary and encrypted_content.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from typing import Any

import mock_upstream as mu

REQUEST_FIELDS = {  # ResponseCreateParams of the pinned SDK
    "access_programs", "background", "background_options", "context_management", "conversation", "image", "include",
    "input", "instructions", "max_output_tokens", "max_tool_calls", "metadata", "model", "moderation",
    "parallel_tool_calls", "previous_response_id", "prompt", "prompt_cache_key", "prompt_cache_options",
    "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier", "store", "stream", "stream_options",
    "temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "user",
    "client_metadata",  # not in the SDK; the Codex CLI sends it to api.openai.com
}
INCLUDABLE = {"file_search_call.results", "web_search_call.results", "web_search_call.action.sources",
              "message.input_image.image_url", "computer_call_output.output.image_url", "code_interpreter_call.outputs",
              "reasoning.encrypted_content", "message.output_text.logprobs"}
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
SUMMARIES = ("auto", "concise", "detailed")
REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")
MIN_OUTPUT_TOKENS = 16
SUMMARY_PREFIX = "Reasoning about: "
SERVER_ERROR = "An error occurred while processing your request. You can retry your request, or contact us through our help center at help.openai.com if the error persists."

MESSAGE_FIELDS = {"type", "role", "content", "id", "status", "phase"}
FUNCTION_CALL_FIELDS = {"type", "id", "call_id", "name", "arguments", "status", "namespace", "caller", "async"}
FUNCTION_OUTPUT_FIELDS = {"type", "id", "call_id", "output", "status", "name", "namespace", "caller"}
REASONING_FIELDS = {"type", "id", "summary", "content", "encrypted_content", "status"}
FUNCTION_TOOL_FIELDS = {"type", "name", "description", "parameters", "strict", "defer_loading", "output_schema",
                        "allowed_callers", "async"}
ID_PREFIX = {"function_call": "fc", "reasoning": "rs", "message": "msg", "web_search_call": "ws"}
OTHER_ITEM_TYPES = {  # accepted shallowly (the SDK's other input item types)
    "file_search_call", "computer_call", "computer_call_output", "web_search_call", "tool_search_call",
    "tool_search_output", "additional_tools", "configuration_update", "compaction", "image_generation_call",
    "code_interpreter_call", "local_shell_call", "local_shell_call_output", "shell_call", "shell_call_output",
    "apply_patch_call", "apply_patch_call_output", "mcp_list_tools", "mcp_approval_request", "mcp_approval_response",
    "mcp_call", "custom_tool_call_output", "custom_tool_call", "compaction_trigger", "program", "program_output",
}
ITEM_TYPES = {"message", "function_call", "function_call_output", "reasoning", "item_reference"} | OTHER_ITEM_TYPES
HOSTED_TOOL_TYPES = {"file_search", "computer", "computer_use_preview", "web_search", "web_search_2025_08_26",
                     "web_search_preview", "web_search_preview_2025_03_11", "mcp", "code_interpreter",
                     "programmatic_tool_calling", "image_generation", "local_shell", "shell", "custom", "namespace",
                     "tool_search", "apply_patch"}


class RInvalid(Exception):
    """A request OpenAI would refuse: status, message, param, code (type invalid_request_error)."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None, status: int = 400):
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status


def unknown(path: str) -> RInvalid:
    return RInvalid(f"Unknown parameter: '{path}'.", path, "unknown_parameter")


def missing(path: str) -> RInvalid:
    return RInvalid(f"Missing required parameter: '{path}'.", path, "missing_required_parameter")


def bad_type(path: str, expected: str, value: Any) -> RInvalid:
    got = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
           float: "a number", type(None): "null"}.get(type(value), "a value")
    return RInvalid(f"Invalid type for '{path}': expected {expected}, but got {got} instead.", path, "invalid_type")


def bad_value(path: str, value: Any, allowed: Any) -> RInvalid:
    vals = [f"'{a}'" for a in allowed]
    listed = vals[0] if len(vals) == 1 else " and ".join(vals) if len(vals) == 2 else ", ".join(vals[:-1]) + f", and {vals[-1]}"
    return RInvalid(f"Invalid value: '{value}'. Supported values are: {listed}.", path, "invalid_value")


def not_found(item_id: str, store: bool) -> RInvalid:
    if store:
        return RInvalid(f"Item with id '{item_id}' not found.", "input", None, 404)
    return RInvalid(f"Item with id '{item_id}' not found. Items are not persisted when `store` is set to false. "
                    "Try again with `store` set to true, or remove this item from your input.", "input", None, 404)


# ----------------------------------------------------------------------------------------------
# state: stored responses and items, issued encrypted reasoning


class RState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.responses: dict[str, list[dict]] = {}  # stored response id -> its input and output items, in order
        self.items: dict[str, dict] = {}  # stored item id -> item
        self.encrypted: dict[str, str] = {}  # issued encrypted_content -> the reasoning item id it was issued on


_STATE_LOCK = threading.Lock()


def rstate(h: Any) -> RState:
    st = h.state
    with _STATE_LOCK:
        if not hasattr(st, "responses_api"):
            st.responses_api = RState()
        return st.responses_api


def hex_id(prefix: str, n: int, kind: str) -> str:
    return prefix + hashlib.sha256(f"{kind}-{n}-{time.time_ns()}".encode()).hexdigest()[:48]


def make_encrypted(n: int, item_id: str) -> str:
    """Looks like OpenAI's (a Fernet token: 'gAAAAA' + URL-unsafe base64 with + / and = padding)."""
    raw = b"\x80" + bytes(5) + b"\xfb\xef\xbe\xff\xff\xff" + hashlib.sha256(f"{n}:{item_id}".encode()).digest()[:16]
    return base64.b64encode(raw).decode()


# ----------------------------------------------------------------------------------------------
# validation


def _obj(v: Any, path: str) -> dict:
    if not isinstance(v, dict):
        raise bad_type(path, "an object", v)
    return v


def _str(d: dict, key: str, path: str, required: bool = True, nonempty: bool = False) -> str | None:
    v = d.get(key)
    p = f"{path}.{key}" if path else key
    if v is None:
        if required:
            raise missing(p)
        return None
    if not isinstance(v, str):
        raise bad_type(p, "a string", v)
    if nonempty and not v:
        raise RInvalid(f"Invalid '{p}': empty string. Expected a string with minimum length 1, but got an empty string "
                       "instead.", p, "empty_string")
    return v


def _extra(d: dict, allowed: set[str], path: str) -> None:
    for k in d:
        if k not in allowed:
            raise unknown(f"{path}.{k}")


def _id_prefix(item: dict, kind: str, path: str) -> None:
    iid = item.get("id")
    if iid is None:
        return
    if not isinstance(iid, str):
        raise bad_type(f"{path}.id", "a string", iid)
    want = ID_PREFIX.get(kind)
    if want and not iid.startswith(want):
        raise RInvalid(f"Invalid '{path}.id': '{iid}'. Expected an ID that begins with '{want}'.", f"{path}.id", "invalid_value")


def _validate_parts(content: Any, role: str, path: str) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise bad_type(f"{path}.content", "one of a string or array of input content items", content)
    allowed = ("output_text", "refusal") if role == "assistant" else ("input_text", "input_image", "input_file", "input_audio")
    for j, p in enumerate(content):
        w = f"{path}.content[{j}]"
        _obj(p, w)
        t = p.get("type")
        if t not in allowed:
            raise bad_value(f"{w}.type", t, allowed)
        if t in ("input_text", "output_text"):
            _str(p, "text", w)
            _extra(p, {"type", "text", "annotations", "logprobs", "prompt_cache_breakpoint"} if t == "output_text"
                   else {"type", "text", "prompt_cache_breakpoint"}, w)
        elif t == "refusal":
            _str(p, "refusal", w)
        elif t == "input_image":
            url, fid = p.get("image_url"), p.get("file_id")
            if url is None and fid is None:
                raise RInvalid(f"Invalid '{w}': one of 'image_url' or 'file_id' must be provided.", w, "missing_required_parameter")
            if url is not None:
                if not isinstance(url, str):
                    raise bad_type(f"{w}.image_url", "a string", url)
                if url.startswith("data:"):
                    mt = mu.DATA_URI.match(url)
                    if not mt or not mu.is_b64(mt.group(2)):
                        raise RInvalid(f"Invalid '{w}.image_url'. Expected a base64-encoded data URL with an image MIME type "
                                       "(e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got an invalid value.",
                                       f"{w}.image_url", "invalid_value")
                elif not url.startswith(("http://", "https://")):
                    raise RInvalid(f"Invalid '{w}.image_url'. Expected a valid URL, but got a value with an invalid format.",
                                   f"{w}.image_url", "invalid_value")
            if p.get("detail") is not None and p["detail"] not in ("low", "high", "auto", "original"):
                raise bad_value(f"{w}.detail", p["detail"], ("low", "high", "auto", "original"))
            _extra(p, {"type", "image_url", "file_id", "detail", "prompt_cache_breakpoint"}, w)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") in ("input_text", "output_text"))


def _item_type(item: dict) -> str | None:
    t = item.get("type")
    if t is None and "role" in item:
        return "message"
    return t


def validate_items(items: list, state: RState, store: bool, prior: list[dict]) -> None:
    """Shapes, id prefixes, call / output pairing and reasoning items of `input` (after `prior`: the items of
    previous_response_id's response)."""
    calls = {it["call_id"] for it in prior if it.get("type") == "function_call"}
    answered = {it["call_id"] for it in prior if it.get("type") == "function_call_output"}
    order = [it["call_id"] for it in prior if it.get("type") == "function_call" and it["call_id"] not in answered]
    for i, item in enumerate(items):
        path = f"input[{i}]"
        _obj(item, path)
        t = _item_type(item)
        if t is None:
            raise missing(f"{path}.type")
        if t not in ITEM_TYPES:
            raise bad_value(f"{path}.type", t, sorted(ITEM_TYPES))
        _id_prefix(item, t, path)
        if t == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise bad_value(f"{path}.role", role, ("assistant", "system", "developer", "user"))
            if "content" not in item:
                raise missing(f"{path}.content")
            _validate_parts(item["content"], role, path)
            if item.get("status") is not None and item["status"] not in ("in_progress", "completed", "incomplete"):
                raise bad_value(f"{path}.status", item["status"], ("in_progress", "completed", "incomplete"))
            _extra(item, MESSAGE_FIELDS, path)
        elif t == "function_call":
            cid = _str(item, "call_id", path, nonempty=True)
            _str(item, "name", path, nonempty=True)
            if "arguments" not in item:
                raise missing(f"{path}.arguments")
            if not isinstance(item["arguments"], str):
                raise bad_type(f"{path}.arguments", "a string", item["arguments"])
            _extra(item, FUNCTION_CALL_FIELDS, path)
            calls.add(cid)
            order.append(cid)
        elif t == "function_call_output":
            cid = _str(item, "call_id", path, nonempty=True)
            out = item.get("output")
            if out is None:
                raise missing(f"{path}.output")
            if isinstance(out, list):
                for j, p in enumerate(out):
                    _obj(p, f"{path}.output[{j}]")
                    if p.get("type") not in ("input_text", "input_image", "input_file"):
                        raise bad_value(f"{path}.output[{j}].type", p.get("type"), ("input_text", "input_image", "input_file"))
            elif not isinstance(out, str):
                raise bad_type(f"{path}.output", "one of a string or array of content items", out)
            _extra(item, FUNCTION_OUTPUT_FIELDS, path)
            if cid not in calls:
                raise RInvalid(f"No tool call found for function call output with call_id {cid}.", "input")
            answered.add(cid)
        elif t == "reasoning":
            rid = _str(item, "id", path)
            summ = item.get("summary")
            if summ is None:
                raise missing(f"{path}.summary")
            if not isinstance(summ, list):
                raise bad_type(f"{path}.summary", "an array", summ)
            for j, s in enumerate(summ):
                _obj(s, f"{path}.summary[{j}]")
                if s.get("type") != "summary_text":
                    raise bad_value(f"{path}.summary[{j}].type", s.get("type"), ("summary_text",))
                _str(s, "text", f"{path}.summary[{j}]")
            _extra(item, REASONING_FIELDS, path)
            enc = item.get("encrypted_content")
            with state.lock:
                issued_for = state.encrypted.get(enc) if isinstance(enc, str) else None
                stored = rid in state.items
            if enc is not None:
                if issued_for != rid:
                    shown = enc if len(enc) <= 12 else f"{enc[:4]}...{enc[-4:]}"
                    raise RInvalid(f"The encrypted content for item {rid} could not be verified. Reason: Encrypted content "
                                   f"could not be decrypted or parsed. ({shown})", None, "invalid_encrypted_content")
            elif not stored:
                raise not_found(rid, store)
            nxt = items[i + 1] if i + 1 < len(items) else None
            if not (isinstance(nxt, dict) and (_item_type(nxt) == "function_call" or
                                               (_item_type(nxt) == "message" and nxt.get("role") == "assistant"))):
                raise RInvalid(f"Item '{rid}' of type 'reasoning' was provided without its required following item.", "input")
        elif t == "item_reference":
            iid = _str(item, "id", path)
            _extra(item, {"type", "id"}, path)
            with state.lock:
                ref = state.items.get(iid)
            if ref is None:
                raise not_found(iid, store)
            if ref.get("type") == "function_call":
                calls.add(ref["call_id"])
                order.append(ref["call_id"])
            elif ref.get("type") == "function_call_output":
                answered.add(ref["call_id"])
        elif t == "web_search_call":
            _str(item, "id", path)
            if not isinstance(item.get("action"), dict):
                raise missing(f"{path}.action")
            if item.get("status") not in ("in_progress", "searching", "completed", "failed", "incomplete"):
                raise bad_value(f"{path}.status", item.get("status"), ("in_progress", "searching", "completed", "failed", "incomplete"))
            _extra(item, {"type", "id", "action", "status"}, path)
    for cid in order:
        if cid not in answered:
            raise RInvalid(f"No tool output found for function call {cid}.", "input")


def validate(body: Any, state: RState) -> tuple[list[dict], list[dict]]:
    """Raises RInvalid; returns (the prior items of previous_response_id, this request's input as items)."""
    if not isinstance(body, dict):
        raise RInvalid("Invalid type for request body: expected an object.", None, "invalid_type")
    for k in body:
        if k not in REQUEST_FIELDS:
            raise unknown(k)
    model = body.get("model")
    if model is None:
        raise missing("model")
    if not isinstance(model, str) or not model:
        raise bad_type("model", "a string", model)
    reasoning_model = bool(REASONING_MODEL.match(model))
    for f in ("stream", "store", "parallel_tool_calls", "background"):
        if body.get(f) is not None and not isinstance(body[f], bool):
            raise bad_type(f, "a boolean", body[f])
    if body.get("stream_options") is not None:
        if not body.get("stream"):
            raise RInvalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options")
        _obj(body["stream_options"], "stream_options")
        _extra(body["stream_options"], {"include_obfuscation"}, "stream_options")
    store = body.get("store") is not False
    for f in ("instructions", "previous_response_id", "user", "safety_identifier", "prompt_cache_key"):
        if body.get(f) is not None and not isinstance(body[f], str):
            raise bad_type(f, "a string", body[f])
    mot = body.get("max_output_tokens")
    if mot is not None:
        if not isinstance(mot, int) or isinstance(mot, bool):
            raise bad_type("max_output_tokens", "an integer", mot)
        if mot < MIN_OUTPUT_TOKENS:
            raise RInvalid(f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= {MIN_OUTPUT_TOKENS}, "
                           f"but got {mot} instead.", "max_output_tokens", "integer_below_min_value")
    for f, hi in (("temperature", 2), ("top_p", 1)):
        v = body.get(f)
        if v is None:
            continue
        if reasoning_model:
            raise RInvalid(f"Unsupported parameter: '{f}' is not supported with this model.", f, "unsupported_parameter")
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise bad_type(f, "a number", v)
        if not 0 <= v <= hi:
            raise RInvalid(f"Invalid '{f}': decimal above maximum value. Expected a value <= {hi}, but got {v} instead."
                           if v > hi else f"Invalid '{f}': decimal below minimum value. Expected a value >= 0, but got {v} instead.",
                           f, "decimal_above_max_value" if v > hi else "decimal_below_min_value")
    inc = body.get("include")
    if inc is not None:
        if not isinstance(inc, list):
            raise bad_type("include", "an array", inc)
        for j, v in enumerate(inc):
            if v not in INCLUDABLE:
                raise bad_value(f"include[{j}]", v, sorted(INCLUDABLE))
    rs = body.get("reasoning")
    if rs is not None:
        _obj(rs, "reasoning")
        _extra(rs, {"effort", "summary", "generate_summary", "context", "mode"}, "reasoning")
        if rs.get("effort") is not None:
            if rs["effort"] not in EFFORTS:
                raise bad_value("reasoning.effort", rs["effort"], EFFORTS)
            if not reasoning_model:
                raise RInvalid("Unsupported parameter: 'reasoning.effort' is not supported with this model.",
                               "reasoning.effort", "unsupported_parameter")
        for f in ("summary", "generate_summary"):
            if rs.get(f) is not None and rs[f] not in SUMMARIES:
                raise bad_value(f"reasoning.{f}", rs[f], SUMMARIES)

    # tools
    tools = body.get("tools")
    fn_names: list[str] = []
    if tools is not None:
        if not isinstance(tools, list):
            raise bad_type("tools", "an array", tools)
        for i, t in enumerate(tools):
            path = f"tools[{i}]"
            _obj(t, path)
            typ = t.get("type")
            if typ is None:
                raise missing(f"{path}.type")
            if typ == "function":
                name = _str(t, "name", path)
                if not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name):
                    raise RInvalid(f"Invalid '{path}.name': string does not match pattern. Expected a string that matches "
                                   "the pattern '^[a-zA-Z0-9_-]+$'.", f"{path}.name", "invalid_value")
                if t.get("parameters") is not None and not isinstance(t["parameters"], dict):
                    raise bad_type(f"{path}.parameters", "an object", t["parameters"])
                if t.get("strict") is not None and not isinstance(t["strict"], bool):
                    raise bad_type(f"{path}.strict", "a boolean", t["strict"])
                _extra(t, FUNCTION_TOOL_FIELDS, path)
                fn_names.append(name)
            elif typ not in HOSTED_TOOL_TYPES:
                raise bad_value(f"{path}.type", typ, ["function", *sorted(HOSTED_TOOL_TYPES)])
    tc = body.get("tool_choice")
    if tc is not None:
        if isinstance(tc, str):
            if tc not in ("none", "auto", "required"):
                raise bad_value("tool_choice", tc, ("none", "auto", "required"))
        elif isinstance(tc, dict):
            if tc.get("type") == "function":
                name = _str(tc, "name", "tool_choice")
                _extra(tc, {"type", "name"}, "tool_choice")
                if name not in fn_names:
                    raise RInvalid("Tool choice 'function' not found in 'tools' parameter.", "tool_choice")
            elif tc.get("type") is None:
                raise missing("tool_choice.type")
        else:
            raise bad_type("tool_choice", "one of a string or an object", tc)

    # text.format
    text = body.get("text")
    if text is not None:
        _obj(text, "text")
        _extra(text, {"format", "verbosity"}, "text")
        if text.get("verbosity") is not None and text["verbosity"] not in ("low", "medium", "high"):
            raise bad_value("text.verbosity", text["verbosity"], ("low", "medium", "high"))
        fmt = text.get("format")
        if fmt is not None:
            _obj(fmt, "text.format")
            ft = fmt.get("type")
            if ft == "json_schema":
                name = _str(fmt, "name", "text.format")
                if not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name):
                    raise RInvalid("Invalid 'text.format.name': string does not match pattern. Expected a string that "
                                   "matches the pattern '^[a-zA-Z0-9_-]+$'.", "text.format.name", "invalid_value")
                if "schema" not in fmt:
                    raise missing("text.format.schema")
                _obj(fmt["schema"], "text.format.schema")
                _extra(fmt, {"type", "name", "schema", "strict", "description"}, "text.format")
            elif ft in ("text", "json_object"):
                _extra(fmt, {"type"}, "text.format")
            else:
                raise bad_value("text.format.type", ft, ("text", "json_schema", "json_object"))

    # previous_response_id, input
    prior: list[dict] = []
    prev = body.get("previous_response_id")
    if prev is not None:
        with state.lock:
            found = state.responses.get(prev)
        if found is None:
            raise RInvalid(f"Previous response with id '{prev}' not found.", "previous_response_id", "previous_response_not_found")
        prior = found
    inp = body.get("input")
    if inp is None:
        if prev is None and body.get("prompt") is None and body.get("conversation") is None:
            raise missing("input")
        items: list[dict] = []
    elif isinstance(inp, str):
        items = [{"type": "message", "role": "user", "content": inp}]
        validate_items(items, state, store, prior)
    elif isinstance(inp, list):
        validate_items(inp, state, store, prior)
        items = inp
    else:
        raise bad_type("input", "one of a string or array of input items", inp)
    if (fmt := ((body.get("text") or {}).get("format") or {})).get("type") == "json_object":
        words = (body.get("instructions") or "") + json.dumps(items)
        if "json" not in words.lower():
            raise RInvalid("Response input messages must contain the word 'json' in some form to use 'text.format' of "
                           "type 'json_object'.", "input")
    return prior, items


# ----------------------------------------------------------------------------------------------
# what to answer


def describe_images(content: Any) -> list[str]:
    out = []
    if isinstance(content, list):
        for p in content:
            if isinstance(p, dict) and p.get("type") == "input_image":
                url = p.get("image_url")
                if url:
                    mt = mu.DATA_URI.match(url)
                    out.append(f"base64:{mt.group(1)}" if mt else f"url:{url}")
                else:
                    out.append(f"file:{p.get('file_id')}")
    return out


def resolve(items: list[dict], state: RState) -> list[dict]:
    """item_references replaced by the items they name."""
    out = []
    for it in items:
        if isinstance(it, dict) and it.get("type") == "item_reference":
            with state.lock:
                out.append(state.items.get(it.get("id"), it))
        else:
            out.append(it)
    return out


def plan(body: dict, history: list[dict]) -> dict:
    """{"text", "tool", "reasoning" (bool), "summary" (bool), "user_text", "truncated"}."""
    last = history[-1] if history else {}
    last_user = next((m for m in reversed(history) if _item_type(m) == "message" and m.get("role") == "user"), None)
    user_text = _text_of(last_user.get("content")) if last_user else ""
    fn_tools = [t["name"] for t in body.get("tools") or [] if t.get("type") == "function"]
    tc = body.get("tool_choice")
    p: dict[str, Any] = {"text": "", "tool": None, "user_text": user_text, "truncated": False}
    if _item_type(last) == "function_call_output":
        outs = []
        for it in reversed(history):
            if _item_type(it) != "function_call_output":
                break
            o = it.get("output")
            outs.insert(0, o if isinstance(o, str) else _text_of(o))
        p["text"] = "tool result: " + "; ".join(outs)
    elif _item_type(last) == "message" and last.get("role") == "user" and fn_tools and tc != "none" and not (
            isinstance(tc, dict) and tc.get("type") not in ("function", "allowed_tools")):
        if not mu.directed_call(p, user_text, fn_tools):
            p["tool"] = tc["name"] if isinstance(tc, dict) and tc.get("type") == "function" else fn_tools[0]
    elif _item_type(last) == "message" and last.get("role") == "user" and (imgs := describe_images(last.get("content"))):
        p["text"] = "images: " + ", ".join(imgs)
    else:
        p["text"] = "echo: " + user_text
    fmt = (body.get("text") or {}).get("format") or {}
    if not p["tool"] and fmt.get("type") == "json_schema":
        p["text"] = json.dumps(mu.gemini_example(fmt.get("schema"), p["text"]))
    elif not p["tool"] and fmt.get("type") == "json_object":
        p["text"] = json.dumps({"echo": p["text"]})
    rs = body.get("reasoning") or {}
    p["reasoning"] = bool(REASONING_MODEL.match(body["model"])) and rs.get("effort") != "none"
    p["summary"] = p["reasoning"] and (rs.get("summary") or rs.get("generate_summary")) is not None
    if body.get("max_output_tokens") == MIN_OUTPUT_TOKENS and not p["tool"]:
        p["text"], p["truncated"] = p["text"][:4], True
    return p


def build(body: dict, p: dict, n: int, state: RState) -> tuple[dict, dict]:
    """The final Response object and what was issued."""
    rid = hex_id("resp_", n, "resp")
    output: list[dict] = []
    issued: dict[str, Any] = {"id": rid}
    if p["reasoning"]:
        rs_id = hex_id("rs_", n, "rs")
        summary = [{"type": "summary_text", "text": SUMMARY_PREFIX + p["user_text"]}] if p["summary"] else []
        enc = make_encrypted(n, rs_id)
        with state.lock:
            state.encrypted[enc] = rs_id
        output.append({"id": rs_id, "type": "reasoning", "summary": summary, "encrypted_content": enc})
        issued["reasoning"] = {"id": rs_id, "summary": summary, "encrypted_content": enc}
    if p["tool"]:
        call_id = "call_" + hashlib.sha256(f"call-{n}".encode()).hexdigest()[:24]
        output.append({"id": hex_id("fc_", n, "fc"), "type": "function_call", "status": "completed",
                       "arguments": json.dumps(p.get("args", mu.TOOL_ARGS)), "call_id": call_id, "name": p["tool"]})
        issued["call_ids"] = [call_id]
    else:
        output.append({"id": hex_id("msg_", n, "msg"), "type": "message", "status": "incomplete" if p["truncated"] else "completed",
                       "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": p["text"]}],
                       "role": "assistant"})
    issued["output"] = output
    reasoning_tokens = mu.REASONING_TOKENS if p["reasoning"] else 0
    out_tokens = (body["max_output_tokens"] if p["truncated"] else mu.OPENAI_USAGE["completion_tokens"] + reasoning_tokens)
    usage = {"input_tokens": mu.OPENAI_USAGE["prompt_tokens"],
             "input_tokens_details": {"cached_tokens": mu.OPENAI_USAGE["cached_tokens"]},
             "output_tokens": out_tokens,
             "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
             "total_tokens": mu.OPENAI_USAGE["prompt_tokens"] + out_tokens}
    rs = body.get("reasoning") or {}
    now = int(time.time())
    resp = {
        "id": rid, "object": "response", "created_at": now, "status": "incomplete" if p["truncated"] else "completed",
        "background": False, "completed_at": None if p["truncated"] else now, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if p["truncated"] else None,
        "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"), "model": body["model"], "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True), "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": rs.get("effort", "medium" if p["reasoning"] else None),
                      "summary": rs.get("summary", rs.get("generate_summary"))},
        "safety_identifier": body.get("safety_identifier"), "service_tier": "default",
        "store": body.get("store") is not False,
        "temperature": body.get("temperature", 1.0), "text": {"format": ((body.get("text") or {}).get("format") or {"type": "text"}),
                                                              "verbosity": (body.get("text") or {}).get("verbosity") or "medium"},
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [], "top_logprobs": 0,
        "top_p": body.get("top_p", 1.0), "truncation": body.get("truncation") or "disabled", "usage": usage,
        "user": body.get("user"), "metadata": body.get("metadata") or {},
    }
    return resp, issued


def remember(state: RState, resp: dict, history: list[dict]) -> None:
    with state.lock:
        state.responses[resp["id"]] = [*history, *resp["output"]]
        for it in [*history, *resp["output"]]:
            if isinstance(it, dict) and isinstance(it.get("id"), str):
                state.items[it["id"]] = it


# ----------------------------------------------------------------------------------------------
# streaming


def stream_events(resp: dict, obfuscate: bool) -> list[dict]:
    """The event objects (without sequence numbers) of a streamed `resp`."""
    def obf(ev: dict) -> dict:
        if obfuscate:
            ev["obfuscation"] = hashlib.sha256(json.dumps(ev).encode()).hexdigest()[: 4 + len(ev.get("delta", "")) % 9]
        return ev

    pending = dict(resp, status="in_progress", output=[], usage=None, completed_at=None, incomplete_details=None)
    evs: list[dict] = [{"type": "response.created", "response": pending},
                       {"type": "response.in_progress", "response": pending}]
    for oi, item in enumerate(resp["output"]):
        iid = item["id"]
        if item["type"] == "reasoning":
            evs.append({"type": "response.output_item.added", "output_index": oi,
                        "item": {"id": iid, "type": "reasoning", "summary": [], "encrypted_content": None}})
            for si, s in enumerate(item["summary"]):
                evs.append({"type": "response.reasoning_summary_part.added", "item_id": iid, "output_index": oi,
                            "summary_index": si, "part": {"type": "summary_text", "text": ""}})
                for piece in mu.split_text(s["text"], 2):
                    evs.append(obf({"type": "response.reasoning_summary_text.delta", "item_id": iid, "output_index": oi,
                                    "summary_index": si, "delta": piece}))
                evs.append({"type": "response.reasoning_summary_text.done", "item_id": iid, "output_index": oi,
                            "summary_index": si, "text": s["text"]})
                evs.append({"type": "response.reasoning_summary_part.done", "item_id": iid, "output_index": oi,
                            "summary_index": si, "part": {"type": "summary_text", "text": s["text"]}})
        elif item["type"] == "function_call":
            evs.append({"type": "response.output_item.added", "output_index": oi,
                        "item": dict(item, status="in_progress", arguments="")})
            for frag in mu.json_fragments(json.loads(item["arguments"]), ('{"loca', 'tion": "Pa', 'ris"}')):
                evs.append(obf({"type": "response.function_call_arguments.delta", "item_id": iid, "output_index": oi, "delta": frag}))
            evs.append({"type": "response.function_call_arguments.done", "item_id": iid, "output_index": oi,
                        "arguments": item["arguments"]})
        else:
            evs.append({"type": "response.output_item.added", "output_index": oi,
                        "item": {"id": iid, "type": "message", "status": "in_progress", "content": [], "role": "assistant"}})
            part = item["content"][0]
            evs.append({"type": "response.content_part.added", "item_id": iid, "output_index": oi, "content_index": 0,
                        "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}})
            for piece in mu.split_text(part["text"], 3) if part["text"] else []:
                evs.append(obf({"type": "response.output_text.delta", "item_id": iid, "output_index": oi, "content_index": 0,
                                "delta": piece, "logprobs": []}))
            evs.append({"type": "response.output_text.done", "item_id": iid, "output_index": oi, "content_index": 0,
                        "text": part["text"], "logprobs": []})
            evs.append({"type": "response.content_part.done", "item_id": iid, "output_index": oi, "content_index": 0,
                        "part": part})
        evs.append({"type": "response.output_item.done", "output_index": oi, "item": item})
    evs.append({"type": "response.incomplete" if resp["status"] == "incomplete" else "response.completed", "response": resp})
    return evs


def sse(ev: dict, seq: int) -> bytes:
    obj = {"type": ev["type"], "sequence_number": seq, **{k: v for k, v in ev.items() if k != "type"}}
    return f"event: {ev['type']}\ndata: {json.dumps(obj)}\n\n".encode()


# ----------------------------------------------------------------------------------------------
# the route


def error(h: Any, status: int, message: str, etype: str = "invalid_request_error", param: str | None = None,
          code: str | None = None, headers: dict[str, str] | None = None) -> None:
    h.openai_error(status, message, etype, param, code, headers)


def route(h: Any, method: str, body: Any, json_ok: bool) -> None:
    """POST /openai/v1/responses (auth already checked)."""
    if method != "POST":
        return error(h, 404, f"Invalid URL ({method} /v1/responses)", code="unknown_url")
    if not json_ok or body is None:
        return error(h, 400, "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
                     "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.")
    state = rstate(h)
    try:
        prior, items = validate(body, state)
    except RInvalid as e:
        return error(h, e.status, e.message, param=e.param, code=e.code)
    trig = mu.trigger_of(body["model"])
    stream = bool(body.get("stream"))
    if trig == "mock-fail-500":
        return error(h, 500, SERVER_ERROR, "server_error")
    if trig == "mock-fail-429":
        return error(h, 429, "Rate limit reached for requests per min (RPM): Limit 3, Used 3.", "requests", None,
                     "rate_limit_exceeded", {"retry-after": "1", "x-ratelimit-remaining-requests": "0"})
    if trig == "mock-fail-400":
        return error(h, 400, "mock-fail-400: Invalid value for 'input'.", param="input")
    if trig == "mock-overloaded":
        return error(h, 503, "The engine is currently overloaded, please try again later.", "server_error")
    if trig == "mock-slow":
        time.sleep(mu.SLOW_SECONDS)
    n = h.state.next_id()
    extra_headers = {"x-request-id": f"req_mock{n:06d}", "openai-processing-ms": "7"}
    if trig == "mock-endless-line" and stream:
        return h.endless_line(extra_headers)
    if trig == "mock-html" and not stream:
        return h.send_html()

    history = resolve([*prior, *items], state)
    p = plan(body, history)
    resp, issued = build(body, p, n, state)
    h.entry["issued"] = issued
    if body.get("store") is not False:
        remember(state, resp, history)
    h.entry["status"] = 200
    if not stream:
        if trig == "mock-gzip":
            return h.send_gzip_json(200, resp, extra_headers)
        return h.send_json(200, resp, extra_headers, delay_body=mu.SLOW_SECONDS if trig == "mock-slow-body" else 0.0)

    obfuscate = (body.get("stream_options") or {}).get("include_obfuscation") is not False
    evs = stream_events(resp, obfuscate)
    if trig in ("mock-stream-error", "mock-stream-cut"):
        msg = next(it for it in resp["output"] if it["type"] == "message") if not p["tool"] else None
        head = evs[:2]
        if msg is not None:
            oi = resp["output"].index(msg)
            head += [e for e in evs if e.get("output_index") == oi and e["type"] in
                     ("response.output_item.added", "response.content_part.added")][:2]
            head.append({"type": "response.output_text.delta", "item_id": msg["id"], "output_index": oi, "content_index": 0,
                         "delta": "partial ", "logprobs": []})
        h.start_stream(extra_headers)
        for i, ev in enumerate(head):
            h.chunk(sse(ev, i))
        if trig == "mock-stream-error":
            failed = dict(evs[0]["response"], status="failed",
                          error={"code": "server_error", "message": SERVER_ERROR}, output=[])
            h.chunk(sse({"type": "response.failed", "response": failed}, len(head)))
            h.end_stream()
        else:
            h.abort_stream()
        return
    if trig == "mock-drip":
        h.start_stream(extra_headers)
        seq = 0
        try:
            for ev in evs:
                if ev["type"] == "response.output_text.delta":
                    continue
                if ev["type"] == "response.output_text.done":
                    for i in range(mu.DRIP_COUNT):
                        time.sleep(mu.DRIP_INTERVAL)
                        h.chunk(sse({"type": "response.output_text.delta", "item_id": ev["item_id"], "output_index": ev["output_index"],
                                     "content_index": 0, "delta": f"drip {i} ", "logprobs": []}, seq))
                        seq += 1
                h.chunk(sse(ev, seq))
                seq += 1
            h.end_stream()
        except OSError:
            h.entry["client_gone"] = True
            h.close_connection = True
        return
    frames = [sse(ev, i) for i, ev in enumerate(evs)]
    if trig == "mock-html":
        frames[0] = b"event: response.created\ndata: " + mu.HTML_EVENT_DATA + b"\n\n"
    h.start_stream(extra_headers)
    if trig == "mock-slow-body":
        time.sleep(mu.SLOW_SECONDS)
    h.write_events(frames)
    h.end_stream()
