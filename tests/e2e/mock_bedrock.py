"""The mock's AWS Bedrock Runtime upstream: Converse and ConverseStream (mounted by mock_upstream.py at
/bedrock, so a gateway is pointed at it with BEDROCK_BASE_URL=http://127.0.0.1:P/bedrock).

    POST /bedrock/model/{modelId}/converse          a Converse JSON answer
    POST /bedrock/model/{modelId}/converse-stream   binary AWS event-stream messages

What it checks, as Bedrock does (sources in the brackets):

* Auth first. `Authorization: Bearer <Bedrock API key>` [botocore 1.44 reads AWS_BEARER_TOKEN_BEDROCK;
  bedrock-runtime's service model lists `smithy.api#httpBearerAuth`], or AWS SigV4 for service `bedrock`
  [service model: signingName bedrock]. The signature is recomputed with botocore's own SigV4Auth from
  the request exactly as received (method, the path as sent, so `%3A` is encoded again to `%253A` in the
  canonical URI, the headers named in SignedHeaders, the body, x-amz-date) [litellm#14763 shows Bedrock's
  canonical string with `%253A`]. Failures answer 403 with AWS's bodies: a bad signature
  `InvalidSignatureException` "The request signature we calculated does not match ..." with the canonical
  string and string-to-sign it expected [litellm#14763]; an unknown key id or session token
  `UnrecognizedClientException` "The security token included in the request is invalid." [aider#1986,
  vercel/ai#4163]; a wrong API key `{"Message": "Authentication failed: Please make sure your API Key is
  valid."}` (capital M, as Bedrock sends it) [ai4s-research/open-science#53, opencode#47073].
* The body against the ConverseRequest shape of botocore's bedrock-runtime service model (unknown
  members, required members, unions with exactly one member, enums, lengths, patterns, ranges, blobs as
  base64) -> 400 ValidationException; `modelId` is a URI label, never a body member.
* Conversation rules: starts with a user turn; roles alternate ("A conversation must alternate between
  user and assistant roles ..." [langchain-aws#130, semantic-kernel#10281]); non-empty content and text;
  every toolUse answered by the next (user) turn ("Expected toolResult blocks at messages.N.content for
  the following Ids: ..." [camel#3954]) and no extra results ("The number of toolResult blocks at
  messages.N.content exceeds the number of toolUse blocks of previous turn." [strands harness-sdk#1435]);
  toolConfig present whenever the history holds toolUse / toolResult ("The toolConfig field must be defined
  when using toolUse and toolResult content blocks." [vxcontrol/pentagi#196]); images only in user turns.
* Anthropic models (`*anthropic.claude*`) add Claude's own rules, reported as "The model returned the
  following errors: ...": tool results first in their user turn ("Did not find N `tool_result` block(s) at
  the beginning of this message" [browser-use#988]); additionalModelRequestFields keys Claude knows
  ("extraneous key [k] is not permitted" [ruby_llm#586, AnthropicSwiftSDK#19]); thinking budget >= 1024 and
  < maxTokens; no forced tool choice with thinking; reasoningText needs a signature ("thinking.signature:
  Field required" [llama_index#20851]) and it must be one this mock issued, for that text.

Errors: HTTP status + JSON `{"message": ...}` + `x-amzn-ErrorType: <Type>:http://internal.amazon.com/coral/...`
[AnthropicSwiftSDK#19 shows the header] + x-amzn-RequestId; statuses from the service model's exception
shapes (ValidationException 400, AccessDenied 403, Throttling 429, InternalServer 500, ServiceUnavailable
503, ModelStreamError 424).

Answers: `echo: <last user text>`; a toolUse (id `tooluse_...`, input TOOL_ARGS, after a TOOL_PREAMBLE
text block, stopReason tool_use) when tools are offered; `tool result: ...` after tool results;
`images: base64:image/<format>` for images; a reasoningContent block (text + signature) first when
additionalModelRequestFields.thinking is enabled. Usage from BEDROCK_USAGE (inputTokens excludes the
cache, as Anthropic's input_tokens does).

Streams: real event-stream messages (prelude total length + headers length, prelude CRC32, string
headers `:event-type` / `:content-type` / `:message-type`, JSON payload, message CRC32) [AWS event-stream
encoding; botocore.eventstream decodes them]: messageStart, (contentBlockStart for toolUse),
contentBlockDelta..., contentBlockStop, messageStop, then metadata with the usage; every payload carries
Bedrock's random-length `p` padding [aws-sdk-js-v3#6919]. Text blocks get no contentBlockStart, as Bedrock
streams them [the recorded stream in shared/translate/tests/fixtures]. In-stream exceptions are messages
with `:message-type: exception` and `:exception-type` [service model: ConverseStreamOutput members].

Triggers (model ids starting with): mock-fail-500 / -429 / -400, mock-overloaded (503), mock-slow,
mock-stream-error (a text delta, then a throttlingException message), mock-stream-model-error (then a
modelStreamErrorException with originalStatusCode), mock-stream-cut (connection closed mid-stream).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import re
import struct
import time
import uuid
import zlib
from typing import Any
from urllib.parse import unquote, urlsplit

import mock_upstream as mu

# Numbers the tests assert on. inputTokens excludes what was read from / written to the cache.
BEDROCK_USAGE = {"inputTokens": 17, "cacheReadInputTokens": 4, "cacheWriteInputTokens": 2, "outputTokens": 9}
MODELS = ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "anthropic.claude-3-5-sonnet-20240620-v1:0",
          "amazon.nova-pro-v1:0")
THINKING_PREFIX = "Thinking about: "
PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
DEFAULT_KEYS = {"access_key_id": "AKIAMOCKBEDROCK00001", "secret_access_key": "mock-bedrock-secret",
                "session_token": None, "region": "us-east-1", "bearer": None}
CLAUDE_EXTRA_FIELDS = {"thinking", "top_k", "anthropic_beta", "output_config"}
SIG_SKEW = datetime.timedelta(minutes=5)
_CORAL = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
_MAGIC = {"png": (b"\x89PNG\r\n\x1a\n",), "jpeg": (b"\xff\xd8\xff",), "gif": (b"GIF87a", b"GIF89a"), "webp": (b"RIFF",)}

_MODEL = None


def service_model():
    """botocore's bedrock-runtime service model (the shapes the request is validated against)."""
    global _MODEL
    if _MODEL is None:
        import botocore.session
        _MODEL = botocore.session.get_session().get_service_model("bedrock-runtime")
    return _MODEL


class BedrockError(Exception):
    def __init__(self, status: int, etype: str, message: str, key: str = "message"):
        super().__init__(message)
        self.status, self.etype, self.message, self.key = status, etype, message, key


def invalid(message: str) -> BedrockError:
    return BedrockError(400, "ValidationException", message)


def model_error(message: str) -> BedrockError:
    """Claude's own validation, as Bedrock relays it."""
    return invalid(f"The model returned the following errors: {message}")


def is_claude(model: str) -> bool:
    return "anthropic.claude" in model


# ----------------------------------------------------------------------------------------------
# the AWS event-stream encoding


def es_message(headers: list[tuple[str, str]], payload: bytes) -> bytes:
    """One event-stream message; every header a string (type 7)."""
    hb = b"".join(bytes([len(n)]) + n.encode() + b"\x07" + struct.pack(">H", len(v.encode())) + v.encode() for n, v in headers)
    prelude = struct.pack(">II", 16 + len(hb) + len(payload), len(hb))
    msg = prelude + struct.pack(">I", zlib.crc32(prelude)) + hb + payload
    return msg + struct.pack(">I", zlib.crc32(msg))


def es_event(event_type: str, payload: dict) -> bytes:
    return es_message([(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")],
                      json.dumps(payload, separators=(",", ":")).encode())


def es_exception(exception_type: str, payload: dict) -> bytes:
    return es_message([(":exception-type", exception_type), (":content-type", "application/json"),
                       (":message-type", "exception")], json.dumps(payload, separators=(",", ":")).encode())


def es_decode(data: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Decode concatenated messages (string headers only), checking both CRCs: for tests."""
    out, i = [], 0
    while i < len(data):
        total, hlen = struct.unpack(">II", data[i:i + 8])
        assert struct.unpack(">I", data[i + 8:i + 12])[0] == zlib.crc32(data[i:i + 8]), "prelude CRC"
        msg = data[i:i + total]
        assert len(msg) == total, "truncated message"
        assert struct.unpack(">I", msg[-4:])[0] == zlib.crc32(msg[:-4]), "message CRC"
        h, j, hb = {}, 0, msg[12:12 + hlen]
        while j < len(hb):
            n = hb[j + 1:j + 1 + hb[j]].decode()
            j += 1 + hb[j]
            assert hb[j] == 7, f"header {n} is not a string"
            vlen = struct.unpack(">H", hb[j + 1:j + 3])[0]
            h[n] = hb[j + 3:j + 3 + vlen].decode()
            j += 3 + vlen
        out.append((h, msg[12 + hlen:-4]))
        i += total
    return out


# ----------------------------------------------------------------------------------------------
# request validation: the service model's shapes


def _at(path: str) -> str:
    return path or "body"


def validate_shape(value: Any, shape: Any, path: str) -> None:
    t = shape.type_name
    meta = shape.metadata
    if value is None:
        return
    if t == "structure":
        if meta.get("document"):
            return
        if not isinstance(value, dict):
            raise invalid(f"1 validation error detected: Value at '{_at(path)}' failed to satisfy constraint: Member must be an object")
        for k in value:
            if k not in shape.members:
                raise invalid(f"1 validation error detected: Value at '{_at(path)}' failed to satisfy constraint: "
                              f"Unknown member '{k}', not one of [{', '.join(shape.members)}]")
        for r in shape.required_members:
            if value.get(r) is None:
                raise invalid(f"1 validation error detected: Value at '{path + '.' if path else ''}{r}' failed to satisfy "
                              "constraint: Member must not be null")
        if meta.get("union"):
            set_ = [k for k, v in value.items() if v is not None]
            if len(set_) != 1:
                raise invalid(f"1 validation error detected: Value at '{_at(path)}' failed to satisfy constraint: "
                              f"Member must have exactly one of [{', '.join(shape.members)}] set, found {set_}")
        for k, v in value.items():
            validate_shape(v, shape.members[k], f"{path}.{k}" if path else k)
    elif t == "list":
        if not isinstance(value, list):
            raise invalid(f"1 validation error detected: Value at '{_at(path)}' failed to satisfy constraint: Member must be a list")
        _length(value, meta, path)
        for i, v in enumerate(value):
            validate_shape(v, shape.member, f"{path}.{i}")
    elif t == "map":
        if not isinstance(value, dict):
            raise invalid(f"1 validation error detected: Value at '{_at(path)}' failed to satisfy constraint: Member must be a map")
        for k, v in value.items():
            validate_shape(v, shape.value, f"{path}.{k}")
    elif t == "string":
        if not isinstance(value, str):
            raise invalid(f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: Member must be a string")
        if shape.enum and value not in shape.enum:
            raise invalid(f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: "
                          f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
        _length(value, meta, path)
        pat = meta.get("pattern")
        if pat:
            try:
                ok = re.fullmatch(pat, value) is not None
            except re.error:  # a Java-only construct: not checked
                ok = True
            if not ok:
                raise invalid(f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: "
                              f"Member must satisfy regular expression pattern: {pat}")
    elif t in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise invalid(f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: Member must be an integer")
        _range(value, meta, path)
    elif t in ("float", "double"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise invalid(f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: Member must be a number")
        _range(value, meta, path)
    elif t == "boolean":
        if not isinstance(value, bool):
            raise invalid(f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: Member must be a boolean")
    elif t == "blob":
        try:
            raw = base64.b64decode(value, validate=True) if isinstance(value, str) else None
        except (binascii.Error, ValueError):
            raw = None
        if raw is None:
            raise invalid(f"1 validation error detected: Value at '{path}' failed to satisfy constraint: Member must be base64 encoded bytes")
        _length(raw, meta, path)


def _length(value: Any, meta: dict, path: str) -> None:
    if "min" in meta and len(value) < meta["min"]:
        raise invalid(f"1 validation error detected: Value at '{path}' failed to satisfy constraint: "
                      f"Member must have length greater than or equal to {meta['min']}")
    if "max" in meta and len(value) > meta["max"]:
        raise invalid(f"1 validation error detected: Value at '{path}' failed to satisfy constraint: "
                      f"Member must have length less than or equal to {meta['max']}")


def _range(value: Any, meta: dict, path: str) -> None:
    if "min" in meta and value < meta["min"]:
        raise invalid(f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: "
                      f"Member must have value greater than or equal to {meta['min']}")
    if "max" in meta and value > meta["max"]:
        raise invalid(f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: "
                      f"Member must have value less than or equal to {meta['max']}")


def validate_body(body: Any, stream: bool) -> None:
    """The JSON body against Converse(Stream)Request, without its URI label (modelId)."""
    op = service_model().operation_model("ConverseStream" if stream else "Converse")
    shape = op.input_shape
    if not isinstance(body, dict):
        raise BedrockError(400, "SerializationException", "Start of structure or map found where not expected.")
    for k in body:
        m = shape.members.get(k)
        if m is None or m.serialization.get("location"):
            raise invalid(f"1 validation error detected: Value at 'body' failed to satisfy constraint: Unknown member '{k}' "
                          f"for {shape.name} (the model id belongs in the path)")
    for r in shape.required_members:
        if r not in body and not shape.members[r].serialization.get("location"):
            raise invalid(f"1 validation error detected: Value at '{r}' failed to satisfy constraint: Member must not be null")
    for k, v in body.items():
        validate_shape(v, shape.members[k], k)


def block_kind(b: dict) -> str:
    return next(iter(b))


def validate_conversation(body: dict, model: str, state: Any) -> None:
    msgs = body.get("messages") or []
    claude = is_claude(model)
    has_tool_blocks = any(block_kind(b) in ("toolUse", "toolResult") for m in msgs for b in m["content"])
    if has_tool_blocks and not (body.get("toolConfig") or {}).get("tools"):
        raise invalid("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
    if not msgs or msgs[0]["role"] != "user":
        raise invalid("A conversation must start with a user message. Try again with a conversation that starts with a user message.")
    for i, m in enumerate(msgs):
        if m["role"] not in ("user", "assistant"):
            raise model_error(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i and msgs[i - 1]["role"] == m["role"]:
            raise invalid("A conversation must alternate between user and assistant roles. Make sure the conversation "
                          "alternates between user and assistant roles and try again.")
        if not m["content"]:
            raise invalid(f"The content field in the Message object at messages.{i} is empty. Add a ContentBlock object to "
                          "the content field and try again.")
        for j, b in enumerate(m["content"]):
            kind = block_kind(b)
            if kind == "text" and not b["text"].strip():
                raise invalid(f"The text field in the ContentBlock object at messages.{i}.content.{j} is blank. Add text to "
                              "the text field, and try again.")
            if kind in ("image", "document", "video", "audio") and m["role"] != "user":
                raise invalid(f"messages.{i}.content.{j}: {kind} content is only allowed in user messages.")
            if kind == "image":
                img = b["image"]
                data = base64.b64decode(img["source"].get("bytes") or "")
                if "bytes" in img["source"] and not data.startswith(_MAGIC[img["format"]]):
                    raise invalid(f"messages.{i}.content.{j}.image: the image bytes are not a {img['format']} image")
            if kind == "toolUse" and not isinstance(b["toolUse"]["input"], dict):
                raise model_error(f"messages.{i}.content.{j}.tool_use.input: Input should be a valid dictionary")
            if kind == "toolUse" and m["role"] != "assistant":
                raise invalid(f"messages.{i}.content.{j}: toolUse blocks are only allowed in assistant messages.")
            if kind == "toolResult" and m["role"] != "user":
                raise invalid(f"messages.{i}.content.{j}: toolResult blocks are only allowed in user messages.")
            if kind == "reasoningContent":
                if m["role"] != "assistant":
                    raise invalid(f"messages.{i}.content.{j}: reasoningContent blocks are only allowed in assistant messages.")
                rt = b["reasoningContent"].get("reasoningText")
                if rt is not None and claude:
                    sig = rt.get("signature")
                    if not sig:
                        raise model_error(f"messages.{i}.content.{j}.thinking.signature: Field required")
                    if state.signatures.get(sig) != rt["text"]:
                        raise model_error(f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block")
        # tool use -> results in the next turn
        uses = [b["toolUse"]["toolUseId"] for b in m["content"] if block_kind(b) == "toolUse"]
        results = [b["toolResult"]["toolUseId"] for b in m["content"] if block_kind(b) == "toolResult"]
        prev_uses = [b["toolUse"]["toolUseId"] for b in msgs[i - 1]["content"] if block_kind(b) == "toolUse"] if i else []
        if results and (len(results) > len(prev_uses) or set(results) - set(prev_uses)):
            raise invalid(f"The number of toolResult blocks at messages.{i}.content exceeds the number of toolUse blocks of "
                          "previous turn.")
        if prev_uses:
            missing = [u for u in prev_uses if u not in results]
            if missing:
                raise invalid(f"Expected toolResult blocks at messages.{i}.content for the following Ids: {', '.join(missing)}")
            if claude:
                lead = 0
                for b in m["content"]:
                    if block_kind(b) == "toolResult":
                        lead += 1
                    elif block_kind(b) != "cachePoint":
                        break
                if lead < len(prev_uses):
                    raise model_error(f"messages.{i}: Did not find {len(prev_uses)} `tool_result` block(s) at the beginning "
                                      "of this message. Messages following `tool_use` blocks must begin with a matching "
                                      "number of `tool_result` blocks.")
        if uses and i == len(msgs) - 1:
            raise invalid(f"Expected toolResult blocks at messages.{i + 1}.content for the following Ids: {', '.join(uses)}")
    tc = body.get("toolConfig")
    if tc:
        names = [t["toolSpec"]["name"] for t in tc["tools"] if "toolSpec" in t]
        if len(set(names)) != len(names):
            raise invalid("The toolConfig field contains duplicate tool names.")
        forced = (tc.get("toolChoice") or {}).get("tool")
        if forced and forced["name"] not in names:
            raise invalid(f"The tool {forced['name']} in toolChoice is not in toolConfig.tools.")
    if claude:
        extra = body.get("additionalModelRequestFields")
        if extra is not None:
            if not isinstance(extra, dict):
                raise model_error("Malformed input request: #: expected type: JSONObject, please reformat your input and try again.")
            for k in extra:
                if k not in CLAUDE_EXTRA_FIELDS:
                    raise model_error(f"Malformed input request: #: extraneous key [{k}] is not permitted, please reformat "
                                      "your input and try again.")
            th = extra.get("thinking")
            if th is not None:
                if not isinstance(th, dict) or th.get("type") not in ("enabled", "disabled"):
                    raise model_error("thinking.type: Input should be 'enabled' or 'disabled'")
                if th["type"] == "enabled":
                    budget = th.get("budget_tokens")
                    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1024:
                        raise model_error("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
                    max_tokens = (body.get("inferenceConfig") or {}).get("maxTokens")
                    if max_tokens is not None and max_tokens <= budget:
                        raise model_error("`max_tokens` must be greater than `thinking.budget_tokens`.")
                    temp = (body.get("inferenceConfig") or {}).get("temperature")
                    if temp is not None and temp != 1:
                        raise model_error("`temperature` may only be set to 1 when thinking is enabled.")
                    choice = ((body.get("toolConfig") or {}).get("toolChoice") or {})
                    if "any" in choice or "tool" in choice:
                        raise model_error("Thinking may not be enabled when tool_choice forces tool use.")


# ----------------------------------------------------------------------------------------------
# auth


def _amz_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def verify_sigv4(h: Any, raw: bytes, keys: dict) -> dict:
    """Recompute the signature with botocore from the request as received; return what was verified."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest, HTTPHeaders
    from botocore.credentials import Credentials

    class AsSigned(SigV4Auth):
        """botocore's SigV4, over exactly the headers the client named in SignedHeaders."""

        def headers_to_sign(self, request):  # noqa: ANN001, ANN201
            hm = HTTPHeaders()
            for n, v in request.headers.items():
                hm[n.lower()] = v
            return hm

    auth = h.headers.get("Authorization") or ""
    m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})", auth)
    if not m:
        raise BedrockError(403, "IncompleteSignatureException",
                           f"Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters. "
                           f"Authorization={auth[:40]}")
    cred, signed, given = m.groups()
    parts = cred.split("/")
    if len(parts) != 5:
        raise BedrockError(403, "IncompleteSignatureException", f"Credential should have exactly five parts: {cred}")
    akid, date, region, service, term = parts
    if akid != keys["access_key_id"]:
        raise BedrockError(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    token = h.headers.get("x-amz-security-token")
    if keys.get("session_token") and token != keys["session_token"]:
        raise BedrockError(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    amz_date = h.headers.get("x-amz-date")
    if not amz_date:
        raise BedrockError(403, "IncompleteSignatureException",
                           "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    names = signed.split(";")
    if "host" not in names:
        raise BedrockError(403, "IncompleteSignatureException", "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    if "x-amz-date" not in names:
        raise BedrockError(403, "IncompleteSignatureException", "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.")
    if token is not None and "x-amz-security-token" not in names:
        raise BedrockError(403, "IncompleteSignatureException", "'X-Amz-Security-Token' must be a 'SignedHeader' in the AWS Authorization.")
    if names != sorted(names) or len(set(names)) != len(names):
        raise BedrockError(403, "IncompleteSignatureException", f"SignedHeaders must be sorted and unique: {signed}")
    if service != "bedrock":
        raise BedrockError(403, "InvalidSignatureException", "Credential should be scoped to correct service: 'bedrock'. ")
    if region != keys["region"]:
        raise BedrockError(403, "InvalidSignatureException", f"Credential should be scoped to a valid region, not '{region}'. ")
    if term != "aws4_request" or date != amz_date[:8]:
        raise BedrockError(403, "InvalidSignatureException",
                           f"Credential should be scoped with a valid terminator: 'aws4_request', and date {amz_date[:8]}")
    try:
        sent = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    except ValueError:
        raise BedrockError(403, "IncompleteSignatureException", f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'.") from None
    now = _amz_now()
    if abs(now - sent) > SIG_SKEW:
        raise BedrockError(403, "InvalidSignatureException",
                           f"Signature expired: {amz_date} is now earlier than {(now - SIG_SKEW):%Y%m%dT%H%M%SZ} "
                           f"({now:%Y%m%dT%H%M%SZ} - 5 min.)")
    headers = {}
    for n in names:
        vals = h.headers.get_all(n)
        if vals is None:
            raise BedrockError(403, "IncompleteSignatureException", f"Signed header '{n}' is not in the request.")
        headers[n] = ",".join(vals)
    sha = h.headers.get("x-amz-content-sha256")
    if sha is not None and sha != hashlib.sha256(raw).hexdigest():
        raise BedrockError(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.")
    req = AWSRequest(method=h.command, url=f"http://{h.headers.get('Host')}{h.path}", data=raw, headers=headers)
    req.context["timestamp"] = amz_date
    signer = AsSigned(Credentials(akid, keys["secret_access_key"], keys.get("session_token")), "bedrock", region)
    canonical = signer.canonical_request(req)
    sts = signer.string_to_sign(req, canonical)
    expected = signer.signature(sts, req)
    if expected != given:
        raise BedrockError(403, "InvalidSignatureException",
                           "The request signature we calculated does not match the signature you provided. Check your AWS "
                           "Secret Access Key and signing method. Consult the service documentation for details.\n\n"
                           f"The Canonical String for this request should have been\n'{canonical}'\n\n"
                           f"The String-to-Sign should have been\n'{sts}'\n")
    return {"verified": True, "access_key_id": akid, "region": region, "service": service, "signed_headers": names,
            "canonical_uri": canonical.split("\n")[1], "session_token_sent": token is not None}


def check_auth(h: Any, raw: bytes, keys: dict) -> dict:
    auth = h.headers.get("Authorization")
    if auth is None:
        raise BedrockError(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    if auth.startswith("Bearer "):
        if not keys.get("bearer") or auth != f"Bearer {keys['bearer']}":
            raise BedrockError(403, "AccessDeniedException", "Authentication failed: Please make sure your API Key is valid.", key="Message")
        return {"auth": "bearer"}
    return {"auth": "sigv4", "sigv4": verify_sigv4(h, raw, keys)}


# ----------------------------------------------------------------------------------------------
# the answer


def text_of(blocks: list[dict]) -> str:
    return "".join(b["text"] for b in blocks if "text" in b)


def tool_result_text(tr: dict) -> str:
    out = []
    for c in tr.get("content") or []:
        if "text" in c:
            out.append(c["text"])
        elif "json" in c:
            out.append(json.dumps(c["json"]))
    return "".join(out)


def plan(body: dict) -> dict:
    msgs = body["messages"]
    last = msgs[-1]
    last_user = next((m for m in reversed(msgs) if m["role"] == "user" and text_of(m["content"])), None)
    user_text = text_of(last_user["content"]) if last_user else ""
    tc = body.get("toolConfig") or {}
    tools = [t["toolSpec"]["name"] for t in tc.get("tools") or [] if "toolSpec" in t]
    results = [b["toolResult"] for b in last["content"] if "toolResult" in b]
    images = [b["image"]["format"] for b in last["content"] if "image" in b]
    p: dict[str, Any] = {"text": "", "tool": None, "user_text": user_text, "matched_stop": None}
    if results:
        p["text"] = "tool result: " + "; ".join(tool_result_text(r) for r in results)
    elif tools:
        forced = (tc.get("toolChoice") or {}).get("tool")
        if not mu.directed_call(p, user_text, tools):
            p["tool"] = forced["name"] if forced else tools[0]
    elif images:
        p["text"] = "images: " + ", ".join(f"base64:image/{f}" for f in images)
    else:
        p["text"] = "echo: " + user_text
    ic = body.get("inferenceConfig") or {}
    th = (body.get("additionalModelRequestFields") or {}).get("thinking") if isinstance(body.get("additionalModelRequestFields"), dict) else None
    p["thinking"] = isinstance(th, dict) and th.get("type") == "enabled"
    p["stop_reason"] = "tool_use" if p["tool"] else "end_turn"
    limit = ic.get("maxTokens")
    if not p["tool"]:
        text, matched = mu.apply_stop(p["text"], ic.get("stopSequences") or [])
        if matched is not None:
            p["text"], p["matched_stop"], p["stop_reason"] = text, matched, "stop_sequence"
        if isinstance(limit, int) and limit <= 3:
            p["text"], p["stop_reason"] = p["text"][:4], "max_tokens"
    p["output_tokens"] = min(BEDROCK_USAGE["outputTokens"], limit or 10**9) + (mu.REASONING_TOKENS if p["thinking"] else 0)
    return p


def usage(output_tokens: int) -> dict:
    u = BEDROCK_USAGE
    return {"inputTokens": u["inputTokens"], "outputTokens": output_tokens,
            "totalTokens": u["inputTokens"] + u["cacheReadInputTokens"] + u["cacheWriteInputTokens"] + output_tokens,
            "cacheReadInputTokens": u["cacheReadInputTokens"], "cacheWriteInputTokens": u["cacheWriteInputTokens"]}


def tool_use_id(n: int) -> str:
    return "tooluse_" + base64.urlsafe_b64encode(hashlib.sha256(f"bedrock-{n}".encode()).digest()[:16]).decode().rstrip("=")


def pad(i: int) -> str:
    return PADDING[: 1 + (i * 7) % len(PADDING)]


# ----------------------------------------------------------------------------------------------
# the route


def error(h: Any, e: BedrockError) -> None:
    rid = str(uuid.uuid4())
    h.reply(e.status, {e.key: e.message}, {"x-amzn-ErrorType": e.etype + _CORAL, "x-amzn-RequestId": rid})


def route(h: Any, method: str, rest: str, raw: bytes, body: Any, json_ok: bool) -> None:
    keys = {**DEFAULT_KEYS, **(h.state.keys.get("bedrock") or {})}
    h.entry["raw_body_b64"] = base64.b64encode(raw).decode()  # the exact bytes signed, for the tests' own check
    try:
        h.entry["issued"] = check_auth(h, raw, keys)
    except BedrockError as e:
        return error(h, e)
    inv = re.fullmatch(r"/model/([^/]+)/invoke", rest)
    if inv and method == "POST":  # InvokeModel: embedding models (mock_embed.py)
        import mock_embed  # noqa: PLC0415
        try:
            return h.reply(200, mock_embed.bedrock_invoke(unquote(inv.group(1)), body))
        except mock_embed.EmbedInvalid as e:
            return error(h, invalid(e.message))
    m = re.fullmatch(r"/model/([^/]+)/(converse|converse-stream)", rest)
    if method != "POST" or not m:
        return error(h, BedrockError(404, "UnknownOperationException", f"Unknown operation {method} {rest}"))
    model, stream = unquote(m.group(1)), m.group(2) == "converse-stream"
    h.entry["model_id"] = model
    trig = next((t for t in ("mock-stream-model-error",) if model.startswith(t)), None) or mu.trigger_of(model)
    try:
        if not json_ok or body is None:
            raise BedrockError(400, "SerializationException", "Unexpected character: was expecting a JSON document.")
        validate_body(body, stream)
        if trig is None and model not in MODELS:
            raise invalid("The provided model identifier is invalid.")
        validate_conversation(body, model, h.state)
    except BedrockError as e:
        return error(h, e)
    if trig == "mock-fail-500":
        return error(h, BedrockError(500, "InternalServerException", "The server encountered an internal error while processing the request."))
    if trig == "mock-fail-429":
        return error(h, BedrockError(429, "ThrottlingException", "Too many requests, please wait before trying again."))
    if trig == "mock-fail-400":
        return error(h, invalid("mock-fail-400: The provided request is not valid."))
    if trig == "mock-overloaded":
        return error(h, BedrockError(503, "ServiceUnavailableException", "Bedrock is unable to process your request."))
    if trig == "mock-slow":
        time.sleep(mu.SLOW_SECONDS)

    p = plan(body)
    n = h.state.next_id()
    issued = dict(h.entry["issued"])
    blocks: list[dict] = []
    if p["thinking"]:
        thinking = THINKING_PREFIX + p["user_text"]
        sig = h.state.make_signature(thinking)
        issued.update(thinking=thinking, signature=sig)
        blocks.append({"reasoningContent": {"reasoningText": {"text": thinking, "signature": sig}}})
    if p["tool"]:
        tid = tool_use_id(n)
        issued["tool_use_ids"] = [tid]
        blocks.append({"text": mu.TOOL_PREAMBLE})
        blocks.append({"toolUse": {"toolUseId": tid, "name": p["tool"], "input": dict(p.get("args", mu.TOOL_ARGS))}})
    elif p["text"]:
        blocks.append({"text": p["text"]})
    h.entry["issued"] = issued
    h.entry["status"] = 200
    rid = str(uuid.uuid4())
    u = usage(p["output_tokens"])
    if not stream:
        resp = {"output": {"message": {"role": "assistant", "content": blocks}}, "stopReason": p["stop_reason"],
                "usage": u, "metrics": {"latencyMs": 321}}
        if is_claude(model):  # Claude's stop_sequence, as in the stream's messageStop
            resp["additionalModelResponseFields"] = {"stop_sequence": p["matched_stop"]}
        return h.send_json(200, resp, {"x-amzn-RequestId": rid})

    frames: list[bytes] = []

    def ev(kind: str, payload: dict) -> None:
        frames.append(es_event(kind, {**payload, "p": pad(len(frames))}))

    ev("messageStart", {"role": "assistant"})
    if trig in ("mock-stream-error", "mock-stream-model-error", "mock-stream-cut"):
        ev("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "partial "}})
        start_stream(h, rid)
        for f in frames:
            h.chunk(f)
        if trig == "mock-stream-cut":
            return h.abort_stream()
        if trig == "mock-stream-error":
            h.chunk(es_exception("throttlingException", {"message": "Too many requests, please wait before trying again."}))
        else:
            h.chunk(es_exception("modelStreamErrorException", {"message": "Model stream failed.", "originalStatusCode": 500,
                                                               "originalMessage": "The model had an internal error."}))
        return h.end_stream()
    for i, b in enumerate(blocks):
        if "reasoningContent" in b:
            rt = b["reasoningContent"]["reasoningText"]
            for piece in mu.split_text(rt["text"], 2):
                ev("contentBlockDelta", {"contentBlockIndex": i, "delta": {"reasoningContent": {"text": piece}}})
            ev("contentBlockDelta", {"contentBlockIndex": i, "delta": {"reasoningContent": {"signature": rt["signature"]}}})
        elif "text" in b:
            for piece in mu.split_text(b["text"], 3):
                ev("contentBlockDelta", {"contentBlockIndex": i, "delta": {"text": piece}})
        else:
            tu = b["toolUse"]
            ev("contentBlockStart", {"contentBlockIndex": i, "start": {"toolUse": {"toolUseId": tu["toolUseId"], "name": tu["name"]}}})
            for frag in mu.json_fragments(tu["input"], ('{"location"', ': "Par', 'is"}')):
                ev("contentBlockDelta", {"contentBlockIndex": i, "delta": {"toolUse": {"input": frag}}})
        ev("contentBlockStop", {"contentBlockIndex": i})
    stop: dict[str, Any] = {"stopReason": p["stop_reason"]}
    if is_claude(model):  # as recorded from Claude on Bedrock (shared/translate/tests/fixtures/amazon-bedrock-text)
        stop["additionalModelResponseFields"] = {"delta": {"stop_sequence": p["matched_stop"]}}
    ev("messageStop", stop)
    ev("metadata", {"usage": u, "metrics": {"latencyMs": 321}})
    start_stream(h, rid)
    if trig == "mock-slow-body":
        time.sleep(mu.SLOW_SECONDS)
    h.write_events(frames)
    h.end_stream()


def start_stream(h: Any, rid: str) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/vnd.amazon.eventstream")
    h.send_header("Transfer-Encoding", "chunked")
    h.send_header("x-amzn-RequestId", rid)
    h.end_headers()
    h.wfile.flush()
