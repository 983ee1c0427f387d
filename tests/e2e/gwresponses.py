"""Helpers for the OpenAI Responses API tests (test_responses.py, test_mock_upstream.py): calling through the
`openai` SDK while keeping the wire bytes, and checking Response objects and their SSE streams against the
documented shapes (types/responses/* of the pinned SDK; developers.openai.com/api/reference/resources/responses).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import openai

import gwtest as g
from mock_upstream import REASONING_TOKENS

RESPONSE_ID = re.compile(r"resp_[A-Za-z0-9_-]+")
ITEM_PREFIX = {"message": "msg_", "function_call": "fc_", "reasoning": "rs_"}
TERMINAL = ("response.completed", "response.incomplete", "response.failed")


# ------------------------------------------------------------------------------------------------
# shapes


def check_item(item: dict, where: str) -> None:
    """One output item, as the SDK's ResponseOutputMessage / ResponseFunctionToolCall / ResponseReasoningItem."""
    t = item.get("type")
    assert t in ITEM_PREFIX, f"{where}: unexpected output item type {t!r}: {item}"
    assert isinstance(item.get("id"), str) and item["id"].startswith(ITEM_PREFIX[t]), \
        f"{where}: a {t} item's id starts with {ITEM_PREFIX[t]!r} (OpenAI refuses other ids when it is sent back): {item}"
    if t == "message":
        assert item.get("role") == "assistant", f"{where}: {item}"
        assert item.get("status") in ("in_progress", "completed", "incomplete"), f"{where}: {item}"
        assert isinstance(item.get("content"), list), f"{where}: {item}"
        for p in item["content"]:
            assert p.get("type") in ("output_text", "refusal"), f"{where}: content part {p}"
            if p["type"] == "output_text":
                assert isinstance(p.get("text"), str) and isinstance(p.get("annotations"), list), f"{where}: {p}"
    elif t == "function_call":
        assert isinstance(item.get("call_id"), str) and item["call_id"], f"{where}: {item}"
        assert isinstance(item.get("name"), str) and item["name"], f"{where}: {item}"
        assert isinstance(item.get("arguments"), str), f"{where}: arguments is a JSON string: {item}"
        json.loads(item["arguments"])
        assert item.get("status") in (None, "in_progress", "completed", "incomplete"), f"{where}: {item}"
    else:
        assert isinstance(item.get("summary"), list), f"{where}: {item}"
        for s in item["summary"]:
            assert s.get("type") == "summary_text" and isinstance(s.get("text"), str), f"{where}: summary {s}"
        assert item.get("encrypted_content") is None or isinstance(item["encrypted_content"], str), f"{where}: {item}"


def check_usage_shape(usage: Any) -> None:
    assert isinstance(usage, dict), f"no usage: {usage!r}"
    for k in ("input_tokens", "output_tokens", "total_tokens"):
        assert isinstance(usage.get(k), int), f"usage.{k}: {usage}"
    assert isinstance((usage.get("input_tokens_details") or {}).get("cached_tokens"), int), f"usage.input_tokens_details: {usage}"
    assert isinstance((usage.get("output_tokens_details") or {}).get("reasoning_tokens"), int), f"usage.output_tokens_details: {usage}"
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"], usage


def check_response(resp: Any, status: str = "completed") -> dict:
    """A final Response object (JSON)."""
    assert isinstance(resp, dict), resp
    assert resp.get("object") == "response", resp
    assert isinstance(resp.get("id"), str) and RESPONSE_ID.fullmatch(resp["id"]), f"id: {resp.get('id')!r}"
    assert isinstance(resp.get("created_at"), (int, float)), resp
    assert isinstance(resp.get("model"), str) and resp["model"], resp
    assert resp.get("status") == status, f"status {resp.get('status')!r}, expected {status!r}: {resp}"
    assert isinstance(resp.get("output"), list), resp
    for i, it in enumerate(resp["output"]):
        check_item(it, f"output[{i}]")
    if status == "incomplete":
        assert isinstance(resp.get("incomplete_details"), dict) and resp["incomplete_details"].get("reason"), resp
    else:
        assert resp.get("incomplete_details") is None, resp
    if status == "failed":
        assert isinstance(resp.get("error"), dict) and resp["error"].get("message"), f"a failed response says why: {resp}"
    else:
        assert resp.get("error") is None, resp
        check_usage_shape(resp.get("usage"))
    return resp


def check_responses_stream(raw: bytes, terminal: str | tuple[str, ...] = "response.completed") -> tuple[list[dict], dict]:
    """Assert `raw` is a well-formed Responses SSE stream; return (the events, the final Response).

    `event:` names match `type`, no [DONE]; sequence_number 0, 1, 2, ...; response.created then
    response.in_progress first, one terminal event last; each output item is opened (output_item.added at the
    next output_index), filled by its own kind of events, closed (output_item.done) before the next one opens;
    deltas add up to the .done values; the terminal response's output is the items as they were closed."""
    events, clean = g.parse_sse(raw)
    assert events, "empty stream"
    assert clean, f"stream does not end on an event boundary: {raw[-200:]!r}"
    objs: list[dict] = []
    for name, d in events:
        assert d != "[DONE]", "a Responses stream has no [DONE]"
        try:
            obj = json.loads(d)
        except ValueError as e:
            raise AssertionError(f"non-JSON data in a Responses stream: {d!r}") from e
        assert isinstance(obj, dict) and isinstance(obj.get("type"), str), obj
        assert name == obj["type"], f"event name {name!r} does not match data type {obj['type']!r}"
        objs.append(obj)
    seqs = [o.get("sequence_number") for o in objs]
    assert seqs == list(range(len(objs))), f"sequence_number must be 0, 1, 2, ...: {seqs}"
    types = [o["type"] for o in objs]
    assert types[:2] == ["response.created", "response.in_progress"], f"first events: {types[:3]}"
    terminals = (terminal,) if isinstance(terminal, str) else terminal
    assert types[-1] in terminals, f"last event {types[-1]!r}, expected {terminals}: {types[-4:]}"
    assert not [t for t in types[:-1] if t in TERMINAL or t == "error"], f"a terminal event before the end: {types}"
    rid = objs[0]["response"]["id"]
    for o in (objs[0], objs[1], objs[-1]) if "response" in objs[-1] else (objs[0], objs[1]):
        assert o["response"]["id"] == rid, f"{o['type']}: response id changed"
    created = objs[0]["response"]
    assert created.get("status") in ("in_progress", "queued") and created.get("output") == [], created
    if "response" in objs[-1]:
        assert objs[-1]["response"].get("created_at") == created.get("created_at"), "created_at changed during the stream"

    done_items: list[dict] = []
    cur: dict | None = None  # {"index", "item", "parts", "args", "summary"}
    for o in objs[2:-1]:
        t = o["type"]
        if t == "response.output_item.added":
            assert cur is None, f"item {o['output_index']} opened while {cur and cur['index']} is open"
            assert o["output_index"] == len(done_items), f"output_index {o['output_index']}, expected {len(done_items)}"
            it = o["item"]
            assert it.get("type") in ITEM_PREFIX and isinstance(it.get("id"), str), o
            cur = {"index": o["output_index"], "item": it, "parts": {}, "args": "", "summary": {}}
            continue
        assert cur is not None, f"{t} outside an output item"
        if "output_index" in o:
            assert o["output_index"] == cur["index"], f"{t} for output {o['output_index']} while {cur['index']} is open"
        if "item_id" in o:
            assert o["item_id"] == cur["item"]["id"], f"{t}: item_id {o['item_id']!r}, open item {cur['item']['id']!r}"
        kind = cur["item"]["type"]
        if t == "response.output_item.done":
            it = o["item"]
            assert it.get("id") == cur["item"]["id"] and it.get("type") == kind, f"item changed between added and done: {o}"
            check_item(it, f"output_item.done[{cur['index']}]")
            if kind == "message":
                texts = [p.get("text") for p in it["content"] if p.get("type") == "output_text"]
                assert texts == [cur["parts"][k]["done"] for k in sorted(cur["parts"])], \
                    f"message text differs from its deltas: {texts} vs {cur['parts']}"
            elif kind == "function_call":
                assert it["arguments"] == cur["args_done"], "function_call arguments differ from arguments.done"
            else:
                assert [s["text"] for s in it["summary"]] == [cur["summary"][k]["done"] for k in sorted(cur["summary"])], \
                    f"reasoning summary differs from its deltas: {it['summary']}"
            done_items.append(it)
            cur = None
        elif t in ("response.content_part.added", "response.output_text.delta", "response.output_text.done",
                   "response.content_part.done", "response.output_text.annotation.added", "response.refusal.delta",
                   "response.refusal.done"):
            assert kind == "message", f"{t} inside a {kind} item"
            ci = o["content_index"]
            if t == "response.content_part.added":
                assert ci == len(cur["parts"]), f"content_index {ci}, expected {len(cur['parts'])}"
                cur["parts"][ci] = {"text": "", "done": None, "part_done": False}
                continue
            part = cur["parts"].get(ci)
            assert part is not None and not part["part_done"], f"{t} for content part {ci} that is not open"
            if t == "response.output_text.delta":
                assert part["done"] is None, "output_text.delta after output_text.done"
                part["text"] += o["delta"]
            elif t == "response.output_text.done":
                assert o["text"] == part["text"], f"output_text.done {o['text']!r} != deltas {part['text']!r}"
                part["done"] = o["text"]
            elif t == "response.content_part.done":
                assert part["done"] is not None and o["part"].get("text") == part["done"], f"content_part.done: {o}"
                part["part_done"] = True
        elif t in ("response.function_call_arguments.delta", "response.function_call_arguments.done"):
            assert kind == "function_call", f"{t} inside a {kind} item"
            if t.endswith(".delta"):
                assert "args_done" not in cur, "arguments.delta after arguments.done"
                cur["args"] += o["delta"]
            else:
                assert o["arguments"] == cur["args"], f"arguments.done {o['arguments']!r} != deltas {cur['args']!r}"
                cur["args_done"] = o["arguments"]
        elif t.startswith("response.reasoning_summary_"):
            assert kind == "reasoning", f"{t} inside a {kind} item"
            si = o["summary_index"]
            if t == "response.reasoning_summary_part.added":
                assert si == len(cur["summary"]), f"summary_index {si}, expected {len(cur['summary'])}"
                cur["summary"][si] = {"text": "", "done": None}
                continue
            s = cur["summary"].get(si)
            assert s is not None, f"{t} for summary part {si} that was never added"
            if t == "response.reasoning_summary_text.delta":
                s["text"] += o["delta"]
            elif t == "response.reasoning_summary_text.done":
                assert o["text"] == s["text"], f"summary_text.done {o['text']!r} != deltas {s['text']!r}"
                s["done"] = o["text"]
            elif t == "response.reasoning_summary_part.done":
                assert s["done"] is not None and o["part"].get("text") == s["done"], f"summary_part.done: {o}"
        elif t.startswith("response.reasoning_text") or t.startswith("response.reasoning."):
            assert kind == "reasoning", f"{t} inside a {kind} item"
        else:
            raise AssertionError(f"unexpected event {t} inside an output item")
    last = objs[-1]
    if last["type"] in TERMINAL:
        final = last["response"]
        status = last["type"].removeprefix("response.")
        if status != "failed":
            assert cur is None, f"the stream ended with item {cur and cur['index']} still open"
            assert final.get("output") == done_items, \
                f"the terminal response's output differs from the items as they were closed:\n{final.get('output')}\n{done_items}"
        check_response(final, status)
    else:
        final = {}
    return objs, final


# ------------------------------------------------------------------------------------------------
# usage


def expected_usage(upstream: str, reasoning: bool = False) -> dict:
    """What a Responses client must see: input_tokens includes the cached tokens (as OpenAI counts them)."""
    u = g.expected_openai_usage(upstream, reasoning)
    return {"input_tokens": u["prompt_tokens"], "cached_tokens": u["cached_tokens"], "output_tokens": u["completion_tokens"],
            "total_tokens": u["total_tokens"]}


def check_usage(usage: Any, upstream: str, reasoning: bool = False) -> None:
    check_usage_shape(usage)
    got = {"input_tokens": usage["input_tokens"], "cached_tokens": usage["input_tokens_details"]["cached_tokens"],
           "output_tokens": usage["output_tokens"], "total_tokens": usage["total_tokens"]}
    exp = expected_usage(upstream, reasoning)
    assert got == exp, f"usage {usage} -> {got}, expected {exp}"
    if upstream == "openai":  # the only upstream that reports reasoning tokens separately
        assert usage["output_tokens_details"]["reasoning_tokens"] == (REASONING_TOKENS if reasoning else 0), usage


# ------------------------------------------------------------------------------------------------
# calling


@dataclass
class RResult:
    response: dict                    # the final Response as sent (a stream's: its terminal event's)
    events: list[dict]                # a stream's events ([] when not streamed)
    headers: dict                     # the gateway's response headers (lower-case names)
    request_id: str
    sent: dict                        # the request body the SDK sent
    sdk: Any = None                   # the SDK's own final object (stream helper's get_final_response())
    extra: dict = field(default_factory=dict)

    @property
    def output(self) -> list[dict]:
        return self.response.get("output") or []

    def items(self, kind: str) -> list[dict]:
        return [it for it in self.output if it.get("type") == kind]

    @property
    def text(self) -> str:
        return "".join(p.get("text", "") for m in self.items("message") for p in m["content"] if p.get("type") == "output_text")

    @property
    def calls(self) -> list[dict]:
        return self.items("function_call")

    @property
    def usage(self) -> dict:
        return self.response.get("usage") or {}


def create(client: openai.OpenAI, recorder: g.Recorder, *, stream: bool, request_id: str | None = None,
           helper: bool | None = None, terminal: str | tuple[str, ...] = "response.completed",
           extra_headers: dict | None = None, **kw: Any) -> RResult:
    """`client.responses.create(...)` (streamed: through the SDK's `responses.stream()` helper, whose accumulator
    checks item identities, unless `helper=False` or a terminal other than response.completed is expected);
    the wire bytes are checked with check_response / check_responses_stream."""
    rid = request_id or "rsp-" + g.nonce()
    hdrs = {"X-Request-ID": rid, **(extra_headers or {})}
    sdk = None
    if not stream:
        raw = client.responses.with_raw_response.create(extra_headers=hdrs, **kw)
        sdk = raw.parse()
        seen = recorder.last(rid)
        resp = json.loads(bytes(seen.body))
        status = resp.get("status") if isinstance(resp, dict) else None
        check_response(resp, status if status in ("completed", "incomplete") else "completed")
        assert sdk.id == resp["id"]
        return RResult(resp, [], {k.lower(): v for k, v in seen.headers}, rid, json.loads(seen.request_body), sdk,
                       {"sent_raw": seen.request_body})
    use_helper = helper if helper is not None else terminal == "response.completed"
    if use_helper:
        with client.responses.stream(extra_headers=hdrs, **kw) as s:
            for _ in s:
                pass
            sdk = s.get_final_response()
    else:
        for _ in client.responses.create(stream=True, extra_headers=hdrs, **kw):
            pass
    seen = recorder.last(rid)
    events, final = check_responses_stream(bytes(seen.body), terminal)
    if sdk is not None:
        assert sdk.id == final["id"] and sdk.output_text == "".join(
            p.get("text", "") for m in final["output"] if m["type"] == "message" for p in m["content"] if p.get("type") == "output_text")
    return RResult(final, events, {k.lower(): v for k, v in seen.headers}, rid,
                   json.loads(seen.request_body) if seen.request_body else {}, sdk, {"sent_raw": seen.request_body})


def normalized(resp: dict) -> dict:
    """A Response with its per-call values (ids, call ids, timestamps, encrypted content) replaced, to compare
    a streamed answer with a non-streamed one."""
    out = []
    for it in resp.get("output") or []:
        it = dict(it, id=it.get("type"))
        if "call_id" in it:
            it["call_id"] = "CALL"
        if isinstance(it.get("arguments"), str):  # the same JSON, however it is spaced
            it["arguments"] = json.loads(it["arguments"])
        if it.get("encrypted_content"):
            it["encrypted_content"] = "ENC"
        out.append(it)
    return {"status": resp.get("status"), "output": out, "usage": resp.get("usage"),
            "incomplete_details": resp.get("incomplete_details")}
