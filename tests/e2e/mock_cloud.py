"""Mocks of the cloud providers' auth and URL shapes, on top of mock_upstream's protocol mocks (stdlib only).

    POST /aad/{tenant}/oauth2/v2.0/token     Azure AD client credentials: the tenant, client id, secret,
                                            grant type and scope must be the configured ones; issues
                                            `aad-tok-N` tokens (expires_in from the state's `aad_ttl`, 3599)
    /azure/openai/deployments/{d}/chat/completions?api-version=V
                                            Azure OpenAI: `api-version` is required (404 Resource not found
                                            without it); `api-key` must be the key, or `Authorization: Bearer`
                                            a token the AAD mock issued and not yet expired (the key as a bearer
                                            is refused, as Azure refuses it); the deployment is the model.
                                            Answers carry Azure's `prompt_filter_results` and
                                            `content_filter_results` (a stream starts with the empty-choices
                                            prompt-filter chunk); `mock-filtered` ends with `content_filter`.
    GET  /azure/openai/models?api-version=V the model list (health probe)
    /foundry/models/chat/completions?api-version=V, GET /foundry/models/info
                                            Azure AI Foundry model inference: `api-key` or an AAD token;
                                            the model is the body's
    POST /google/token                      Google OAuth: a `jwt-bearer` grant whose RS256 assertion verifies
                                            with the service account's public key, `aud` this endpoint's
                                            configured URL, iat/exp sane; issues `ya29.mock-N` tokens
    /vertex/v1/projects/P/locations/L/publishers/google/models/M:{generateContent,streamGenerateContent,countTokens}
                                            Gemini on Vertex: only tokens the Google mock issued; P and L must
                                            be the configured project and location
    /vertex/v1/projects/P/locations/L/publishers/anthropic/models/M:{rawPredict,streamRawPredict}
                                            Claude on Vertex: the body must carry `anthropic_version:
                                            vertex-2023-10-16` and no `model`
    GET  /vertex/v1/publishers/{google,anthropic}/models/M     publisher model (health probe)

    GET  /github/copilot_internal/v2/token  GitHub's Copilot token exchange: `Authorization: token <gh>` with a
                                            known GitHub token (401 Bad credentials otherwise); issues
                                            `tid=N;exp=...` tokens, expires_at/refresh_in from `copilot_ttl`,
                                            `endpoints.api` this mock's /copilot
    /copilot/chat/completions, GET /copilot/models
                                            the Copilot API: only unexpired issued tokens; `Editor-Version` and
                                            `Copilot-Integration-Id` are required
    POST /ghlogin/login/device/code, /ghlogin/login/oauth/access_token
                                            GitHub's device flow: one `authorization_pending`, then a token

    POST /replicate/v1/predictions          Replicate: Bearer key; body {version: owner/name[:version] | version id,
                                            input: {prompt (required),
                                            system_prompt, max_tokens, ...}, stream}; unknown fields are a 422.
                                            Answers `echo: <prompt>` (the last `User:` turn of a transcript);
                                            with `Prefer: wait` a finished prediction with `metrics`, else
                                            `starting` with `urls.get` / `urls.stream`; models starting with
                                            `meta/mock-poll` stay `processing` for one poll, `meta/mock-fail`
                                            fail ("CUDA out of memory")
    GET  /replicate/v1/predictions/{id}     the prediction (polling)
    GET  /replicate/stream/{id}             its SSE stream: `output` events, then `done`

The handler's state keys: "aad" {tenant, client_id, client_secret}, "azure" (api key), "foundry" (api key),
"google" {public_key_pem, client_email}, "vertex" {project, location}, "github" [GitHub tokens with Copilot], "replicate" (API token). Issued tokens are in
`state.cloud` ("aad": {token: expiry}, "google": {token: expiry}); `POST /_mock/cloud` with
{"aad_ttl": s, "revoke": token} changes them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from typing import Any
from urllib.parse import parse_qs, unquote

AAD_SCOPE = "https://cognitiveservices.azure.com/.default"
VERTEX_VERSION = "vertex-2023-10-16"


def cloud_state(h: Any) -> dict:
    st = h.state
    with st.lock:
        if not hasattr(st, "cloud"):
            st.cloud = {"aad": {}, "google": {}, "copilot": {}, "aad_ttl": 3599, "google_ttl": 3599, "copilot_ttl": 1800,
                        "exchanges": {"aad": 0, "google": 0, "copilot": 0}, "polls": {}}
        return st.cloud


# ---- RS256 verification (PKCS#1 v1.5, SHA-256) with a PKCS#1 RSA public key, no dependencies -----

def _der_ints(der: bytes) -> list[int]:
    """The INTEGERs of a DER SEQUENCE of INTEGERs (an RSAPublicKey)."""
    def length(i: int) -> tuple[int, int]:
        n = der[i]
        if n < 0x80:
            return n, i + 1
        k = n & 0x7F
        return int.from_bytes(der[i + 1:i + 1 + k], "big"), i + 1 + k
    assert der[0] == 0x30
    _, i = length(1)
    out = []
    while i < len(der):
        assert der[i] == 0x02
        n, i = length(i + 1)
        out.append(int.from_bytes(der[i:i + n], "big"))
        i += n
    return out


def rsa_public_key(pem: str) -> tuple[int, int]:
    body = "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))
    n, e = _der_ints(base64.b64decode(body))
    return n, e


def rs256_verify(pub: tuple[int, int], signed: bytes, sig: bytes) -> bool:
    n, e = pub
    k = (n.bit_length() + 7) // 8
    if len(sig) != k:
        return False
    em = pow(int.from_bytes(sig, "big"), e, n).to_bytes(k, "big")
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(signed).digest()
    expected = b"\x00\x01" + b"\xff" * (k - len(digest_info) - 3) + b"\x00" + digest_info
    return em == expected


def b64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


# ---- routing --------------------------------------------------------------------------------

def route(h: Any, prefix: str, method: str, rest: str, query: str, raw: bytes, body: Any, json_ok: bool) -> None:
    if prefix == "aad":
        return aad_token(h, method, rest, raw)
    if prefix == "google":
        return google_token(h, method, rest, raw)
    if prefix in ("azure", "foundry"):
        return azure(h, prefix, method, rest, query, body, json_ok)
    if prefix == "github":
        return copilot_token(h, method, rest)
    if prefix == "copilot":
        return copilot_api(h, method, rest, body, json_ok)
    if prefix == "ghlogin":
        return device_flow(h, method, rest, raw)
    if prefix == "replicate":
        return replicate(h, method, rest, body, json_ok)
    return vertex(h, method, rest, query, body, json_ok, raw)


def form(raw: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}


def aad_error(h: Any, status: int, code: str, desc: str) -> None:
    h.reply(status, {"error": code, "error_description": desc, "error_codes": [7000215], "timestamp": "2026-12-06 00:00:00Z",
                     "trace_id": "00000000-0000-0000-0000-000000000000", "correlation_id": "00000000-0000-0000-0000-000000000001"})


def aad_token(h: Any, method: str, rest: str, raw: bytes) -> None:
    want = h.state.keys.get("aad") or {}
    m = re.fullmatch(r"/([^/]+)/oauth2/v2\.0/token", rest)
    if method != "POST" or not m:
        return aad_error(h, 404, "invalid_request", f"AADSTS900561: The endpoint only accepts POST requests. ({method} {rest})")
    if m.group(1) != want.get("tenant"):
        return aad_error(h, 400, "invalid_request", f"AADSTS90002: Tenant '{m.group(1)}' not found.")
    if "application/x-www-form-urlencoded" not in (h.headers.get("content-type") or ""):
        return aad_error(h, 400, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'.")
    f = form(raw)
    if f.get("grant_type") != "client_credentials":
        return aad_error(h, 400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.")
    if f.get("client_id") != want.get("client_id"):
        return aad_error(h, 400, "unauthorized_client", f"AADSTS700016: Application with identifier '{f.get('client_id')}' was not found.")
    if f.get("client_secret") != want.get("client_secret"):
        return aad_error(h, 401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
    if f.get("scope") != AAD_SCOPE:
        return aad_error(h, 400, "invalid_scope", f"AADSTS70011: The provided value for scope {f.get('scope')} is not valid.")
    cs = cloud_state(h)
    n = h.state.next_id()
    tok = f"aad-tok-{n:06d}-" + hashlib.sha256(str(n).encode()).hexdigest()[:24]
    with h.state.lock:
        cs["aad"][tok] = time.time() + cs["aad_ttl"]
        cs["exchanges"]["aad"] += 1
    h.entry["issued"] = {"token": tok}
    h.reply(200, {"token_type": "Bearer", "expires_in": cs["aad_ttl"], "ext_expires_in": cs["aad_ttl"], "access_token": tok})


def google_token(h: Any, method: str, rest: str, raw: bytes) -> None:
    want = h.state.keys.get("google") or {}

    def bad(desc: str, code: str = "invalid_grant", status: int = 400) -> None:
        h.reply(status, {"error": code, "error_description": desc})
    if method != "POST" or rest != "/token":
        return bad(f"not found: {method} {rest}", "invalid_request", 404)
    f = form(raw)
    if f.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
        return bad("Invalid grant_type", "unsupported_grant_type")
    parts = (f.get("assertion") or "").split(".")
    if len(parts) != 3:
        return bad("Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.")
    try:
        header, claims, sig = json.loads(b64url(parts[0])), json.loads(b64url(parts[1])), b64url(parts[2])
    except ValueError:
        return bad("Invalid JWT: could not decode")
    if header.get("alg") != "RS256":
        return bad("Invalid JWT: alg must be RS256")
    if not rs256_verify(rsa_public_key(want["public_key_pem"]), f"{parts[0]}.{parts[1]}".encode(), sig):
        return bad("Invalid JWT Signature.")
    now = time.time()
    if claims.get("iss") != want.get("client_email"):
        return bad("Invalid JWT: iss is not a known service account", "invalid_client", 401)
    aud = f"http://{h.headers.get('Host')}/google/token"  # this endpoint, as the key file's token_uri names it
    if claims.get("aud") != aud:
        return bad(f"Invalid JWT: aud must be {aud}")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int) or abs(iat - now) > 300 or exp - iat > 3600 or exp <= now:
        return bad("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values.")
    if not claims.get("scope"):
        return bad("Invalid OAuth scope or ID token audience provided.", "invalid_scope")
    cs = cloud_state(h)
    n = h.state.next_id()
    tok = f"ya29.mock-{n:06d}-" + hashlib.sha256(str(n).encode()).hexdigest()[:32]
    with h.state.lock:
        cs["google"][tok] = now + cs["google_ttl"]
        cs["exchanges"]["google"] += 1
    h.entry["issued"] = {"token": tok}
    h.reply(200, {"access_token": tok, "expires_in": cs["google_ttl"], "token_type": "Bearer"})


def bearer_valid(h: Any, issuer: str) -> bool | None:
    """None: no bearer token; else whether it is one `issuer` issued and still valid."""
    got = h.headers.get("Authorization") or ""
    if not got.startswith("Bearer "):
        return None
    exp = cloud_state(h)[issuer].get(got[7:])
    return exp is not None and exp > time.time()


def azure_error(h: Any, status: int, code: str, message: str) -> None:
    h.reply(status, {"error": {"code": code, "message": message}})


def azure(h: Any, prefix: str, method: str, rest: str, query: str, body: Any, json_ok: bool) -> None:
    q = parse_qs(query)
    if not q.get("api-version"):
        return azure_error(h, 404, "404", "Resource not found")
    key = h.headers.get("api-key")
    if key is not None:
        if key != h.state.keys.get(prefix):
            return azure_error(h, 401, "401", "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
                               "to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.")
    else:
        ok = bearer_valid(h, "aad")
        if ok is None:
            return azure_error(h, 401, "401", "Access denied due to missing subscription key. Make sure to include subscription "
                               "key when making requests to an API.")
        if not ok:
            return azure_error(h, 401, "401", "Unauthorized. Access token is missing, invalid, audience is incorrect "
                               "(https://cognitiveservices.azure.com), or have expired.")
    if prefix == "azure":
        if rest == "/openai/models" and method == "GET":
            return h.reply(200, {"data": [{"id": "gpt-4o", "object": "model", "status": "succeeded"}], "object": "list"})
        m = re.fullmatch(r"/openai/deployments/([^/]+)/embeddings", rest)
        if m and method == "POST":
            return h.openai_embeddings(body)
        m = re.fullmatch(r"/openai/deployments/([^/]+)/chat/completions", rest)
        if not m or method != "POST":
            return azure_error(h, 404, "404", "Resource not found")
        deployment = unquote(m.group(1))
        if not (deployment.startswith("gpt") or deployment.startswith("mock-")):
            return azure_error(h, 404, "DeploymentNotFound", "The API deployment for this resource does not exist. If you "
                               "created the deployment within the last 5 minutes, please wait a moment and try again.")
        if isinstance(body, dict) and "model" not in body:
            body["model"] = deployment
        return h.openai_chat("azure", body, json_ok, azure=True)
    if rest == "/models/info" and method == "GET":
        return h.reply(200, {"model_name": "Phi-4", "model_type": "chat-completion", "model_provider_name": "Microsoft"})
    if rest == "/models/embeddings" and method == "POST":
        return h.openai_embeddings(body)
    if rest != "/models/chat/completions" or method != "POST":
        return azure_error(h, 404, "404", "Resource not found")
    if isinstance(body, dict) and not body.get("model"):
        return azure_error(h, 400, "no_model_name", "No model specified in request. Please provide a model name in the request body or as a x-ms-model-mesh-model-name header.")
    return h.openai_chat("foundry", body, json_ok, azure=True)


def vertex(h: Any, method: str, rest: str, query: str, body: Any, json_ok: bool, raw: bytes) -> None:
    want = h.state.keys.get("vertex") or {}

    def gerr(status: int, gstatus: str, message: str) -> None:
        h.gemini_error(status, gstatus, message)
    ok = bearer_valid(h, "google")
    if ok is None:
        return gerr(401, "UNAUTHENTICATED", "Request is missing required authentication credential. Expected OAuth 2 access token, "
                    "login cookie or other valid authentication credential.")
    if not ok:
        return gerr(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
                    "cookie or other valid authentication credential.")
    m = re.fullmatch(r"/v1/publishers/(google|anthropic)/models/([^/:]+)", rest)
    if m and method == "GET":
        return h.reply(200, {"name": f"publishers/{m.group(1)}/models/{m.group(2)}", "versionId": "001"})
    m = re.fullmatch(r"/v1/projects/([^/]+)/locations/([^/]+)/publishers/(google|anthropic)/models/([^/:]+):([A-Za-z]+)", rest)
    if not m or method != "POST":
        return gerr(404, "NOT_FOUND", f"Method not found: {method} {rest}")
    project, location, publisher, model, action = m.group(1), m.group(2), m.group(3), unquote(m.group(4)), m.group(5)
    if project != want.get("project"):
        return gerr(403, "PERMISSION_DENIED", f"Permission 'aiplatform.endpoints.predict' denied on resource "
                    f"'//aiplatform.googleapis.com/projects/{project}/locations/{location}/publishers/{publisher}/models/{model}'")
    if location != want.get("location"):
        return gerr(400, "FAILED_PRECONDITION", f"Location {location} is not supported for this project")
    if publisher == "google":
        if action == "predict" and not model.startswith(("text-embedding", "gemini-embedding", "text-multilingual")):
            return gerr(400, "FAILED_PRECONDITION", f"{model} does not support predict")
        return h.gemini_route(method, f"/v1/models/{model}:{action}", query, body, json_ok, raw)
    if action not in ("rawPredict", "streamRawPredict"):
        return gerr(404, "NOT_FOUND", f"Method not found: {action}")
    if not json_ok or not isinstance(body, dict):
        return h.anthropic_error(400, "invalid_request_error", "There was an issue with the JSON body of your request.")
    if body.get("anthropic_version") != VERTEX_VERSION:
        return h.anthropic_error(400, "invalid_request_error", f"anthropic_version: Input should be '{VERTEX_VERSION}'")
    if "model" in body:
        return h.anthropic_error(400, "invalid_request_error", "model: Extra inputs are not permitted")
    if action == "streamRawPredict" and not body.get("stream"):
        return h.anthropic_error(400, "invalid_request_error", "streamRawPredict requires `stream: true`")
    body = {k: v for k, v in body.items() if k != "anthropic_version"}  # the recorded request stays as sent
    body["model"] = model
    return h.anthropic_messages(body, True)


# ---- GitHub Copilot ------------------------------------------------------------------------------

def copilot_token(h: Any, method: str, rest: str) -> None:
    if method != "GET" or rest != "/copilot_internal/v2/token":
        return h.reply(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
    got = h.headers.get("Authorization") or ""
    if not got.startswith("token ") or got[6:] not in (h.state.keys.get("github") or []):
        return h.reply(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})
    cs = cloud_state(h)
    n = h.state.next_id()
    now = int(time.time())
    ttl = cs["copilot_ttl"]
    tok = f"tid=mock{n:06d};exp={now + ttl};sku=copilot_for_business;8kp=1:" + hashlib.sha256(str(n).encode()).hexdigest()[:24]
    with h.state.lock:
        cs["copilot"][tok] = now + ttl
        cs["exchanges"]["copilot"] += 1
    h.entry["issued"] = {"token": tok}
    h.reply(200, {"token": tok, "expires_at": now + ttl, "refresh_in": max(ttl - 300, 1),
                  "endpoints": {"api": f"http://{h.headers.get('Host')}/copilot", "proxy": "https://proxy.example"},
                  "chat_enabled": True, "sku": "copilot_for_business"})


def copilot_api(h: Any, method: str, rest: str, body: Any, json_ok: bool) -> None:
    ok = bearer_valid(h, "copilot")
    if not ok:
        h.send_response(401)
        msg = b"unauthorized: token expired" if ok is False else b"unauthorized: missing token"
        h.send_header("content-type", "text/plain; charset=utf-8")
        h.send_header("content-length", str(len(msg)))
        h.end_headers()
        h.wfile.write(msg)
        h.entry["status"] = 401
        return
    for need in ("Editor-Version", "Copilot-Integration-Id"):
        if not h.headers.get(need):
            return h.reply(400, {"error": {"message": f"missing {need} header for IDE auth", "code": "bad_request"}})
    if rest == "/models" and method == "GET":
        return h.reply(200, {"data": [{"id": "gpt-4.1", "object": "model"}], "object": "list"})
    if rest != "/chat/completions" or method != "POST":
        return h.reply(404, {"error": {"message": "not found", "code": "not_found"}})
    return h.openai_chat("copilot", body, json_ok)


def device_flow(h: Any, method: str, rest: str, raw: bytes) -> None:
    f = form(raw)
    if method != "POST" or f.get("client_id") != "Iv1.b507a08c87ecfe98":
        return h.reply(404, {"error": "Not Found"})
    cs = cloud_state(h)
    if rest == "/login/device/code":
        n = h.state.next_id()
        code = f"dc-{n:06d}"
        with h.state.lock:
            cs["polls"][code] = 0
        return h.reply(200, {"device_code": code, "user_code": "WDJB-MJHT", "verification_uri": "https://github.com/login/device",
                             "expires_in": 900, "interval": 1})
    if rest == "/login/oauth/access_token":
        code = f.get("device_code")
        if f.get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code" or code not in cs["polls"]:
            return h.reply(200, {"error": "bad_verification_code", "error_description": "The device code is wrong."})
        with h.state.lock:
            cs["polls"][code] += 1
            polls = cs["polls"][code]
        if polls == 1:
            return h.reply(200, {"error": "authorization_pending", "error_description": "The authorization request is still pending."})
        return h.reply(200, {"access_token": (h.state.keys.get("github") or ["gho_none"])[0], "token_type": "bearer", "scope": "read:user"})
    return h.reply(404, {"error": "Not Found"})


# ---- Replicate -----------------------------------------------------------------------------------

REPLICATE_MODELS = ("meta/meta-llama-3-70b-instruct", "meta/meta-llama-3-8b-instruct", "meta/llama-2-70b-chat")


def _prediction(h: Any, pid: str, p: dict) -> dict:
    base = f"http://{h.headers.get('Host')}/replicate"
    out = {"id": pid, "model": p["model"], "version": "v-mock", "input": p["input"], "logs": "", "error": None,
           "status": p["status"], "created_at": "2026-12-06T00:00:00Z",
           "urls": {"get": f"{base}/v1/predictions/{pid}", "cancel": f"{base}/v1/predictions/{pid}/cancel",
                    "stream": f"{base}/stream/{pid}"}}
    if p["status"] == "succeeded":
        out["output"] = p["tokens"]
        out["metrics"] = {"input_token_count": 11, "output_token_count": len(p["tokens"]), "predict_time": 0.1}
    if p["status"] == "failed":
        out["error"] = "CUDA out of memory"
    return out


def replicate(h: Any, method: str, rest: str, body: Any, json_ok: bool) -> None:
    def err(status: int, detail: str, title: str = "Invalid input") -> None:
        h.reply(status, {"title": title, "detail": detail, "status": status})
    if h.headers.get("Authorization") != f"Bearer {h.state.keys.get('replicate')}":
        return err(401, "You did not pass a valid authentication token", "Unauthenticated")
    st = cloud_state(h)
    with h.state.lock:
        preds = st.setdefault("predictions", {})
    m = re.fullmatch(r"/stream/([^/]+)", rest)
    if m and method == "GET":
        p = preds.get(m.group(1))
        if p is None:
            return err(404, "no such stream", "Not found")
        h.entry["status"] = 200
        h.start_stream()
        events = [f"event: output\nid: {i}\ndata: {t}\n\n".encode() for i, t in enumerate(p["tokens"])]
        events.append(b"event: done\ndata: {}\n\n")
        h.write_events(events)
        h.end_stream()
        return
    m = re.fullmatch(r"/v1/predictions/([^/]+)", rest)
    if m and method == "GET":
        p = preds.get(m.group(1))
        if p is None:
            return err(404, "The requested resource does not exist", "Not found")
        with h.state.lock:
            p["polls"] += 1
            if p["status"] in ("starting", "processing"):
                p["status"] = "processing" if p["model"].startswith("meta/mock-poll") and p["polls"] < 2 else "succeeded"
        return h.reply(200, _prediction(h, m.group(1), p))
    m = re.fullmatch(r"/v1/models/([^/]+)/([^/]+)/predictions", rest)
    if not (m or rest == "/v1/predictions") or method != "POST":
        return err(404, "The requested resource does not exist", "Not found")
    if not json_ok or not isinstance(body, dict) or not isinstance(body.get("input"), dict):
        return err(422, "- input: Input should be a valid dictionary")
    version = body.get("version") if not m else None
    if not m and not isinstance(version, str):
        return err(422, "- version: version is required")
    model = f"{m.group(1)}/{m.group(2)}" if m else version.split(":")[0]
    known = model in REPLICATE_MODELS or model.startswith(("meta/mock-poll", "meta/mock-fail"))
    if not known and not re.fullmatch(r"[0-9a-f]{64}", model) and not (version and ":" in version):
        return err(404, f"Model {model} does not exist", "Not found")
    extra = set(body) - {"input", "stream", "webhook", "webhook_events_filter", *(["version"] if not m else [])}
    if extra:
        return err(422, f"- {sorted(extra)[0]}: Additional property is not allowed")
    inp = body["input"]
    if not isinstance(inp.get("prompt"), str):
        return err(422, "- input.prompt: prompt is required")
    unknown = set(inp) - {"prompt", "system_prompt", "max_tokens", "min_tokens", "temperature", "top_p", "top_k",
                          "stop_sequences", "seed", "presence_penalty", "frequency_penalty", "prompt_template"}
    if unknown:
        return err(422, f"- input.{sorted(unknown)[0]}: Additional property is not allowed")
    prompt = inp["prompt"]
    last_user = prompt.rsplit("User: ", 1)[-1].removesuffix("Assistant:").strip() if "User: " in prompt else prompt
    text = f"echo: {last_user}"
    tokens = [text[i:i + 5] for i in range(0, len(text), 5)]
    pid = f"rp{h.state.next_id():06d}"
    wait = (h.headers.get("Prefer") or "").startswith("wait")
    status = "starting"
    if model.startswith("meta/mock-fail"):
        status = "failed"
    elif wait and not body.get("stream") and not model.startswith("meta/mock-poll"):
        status = "succeeded"
    with h.state.lock:
        preds[pid] = {"model": model, "input": inp, "tokens": tokens, "status": status, "polls": 0}
    h.entry["issued"] = {"prediction": pid}
    return h.reply(201, _prediction(h, pid, preds[pid]))
