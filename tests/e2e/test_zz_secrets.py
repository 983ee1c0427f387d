"""Runs last: no secret (upstream keys, proxy keys) in anything the gateway sent back during the session,
nor in any gateway log; no proxy key ever reached an upstream, and each upstream only saw its own key."""

from __future__ import annotations

import json

import pytest

import gwtest as g


def _material(gateway, recorder):
    """If this test runs alone, produce some responses to scan: success, stream, errors, health, models."""
    oai, anth = g.openai_client(gateway, recorder), g.anthropic_client(gateway, recorder)
    g.openai_chat(oai, stream=True, model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}])
    g.anthropic_messages(anth, stream=True, model="gpt-4o-mini", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    g.raw_request(gateway.url, "POST", "/v1/chat/completions", {"model": "nope", "messages": []},
                  {"Authorization": f"Bearer {g.PROXY_KEY}"}, recorder)
    g.raw_request(gateway.url, "POST", "/v1/messages", {"model": "only-nokey", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
                  {"x-api-key": g.PROXY_KEY, "anthropic-version": "2023-06-01"}, recorder)
    g.raw_request(gateway.url, "GET", "/health", recorder=recorder)
    g.raw_request(gateway.url, "GET", "/v1/models", headers={"Authorization": f"Bearer {g.PROXY_KEY}"}, recorder=recorder)


@pytest.mark.last
def test_no_secrets_leak(gateway, gateway_factory, recorder, mock):
    if len(recorder.entries) < 10:
        _material(gateway, recorder)
    # The dummy service account's private key (a fixed test key: a line from the middle of its PEM body).
    pem = json.loads((g.SERVICE_ACCOUNT_DIR / "service_account.json").read_text())["private_key"].splitlines()[5]
    needles = {**g.ALL_SECRETS, "tail shared by every secret": g.SECRET_RUN, "the service account's private key": pem}
    leaks = []

    def scan(where: str, text: str) -> None:
        for name, secret in needles.items():
            if secret in text:
                leaks.append(f"{name} found in {where}")

    with recorder.lock:
        entries = list(recorder.entries)
    assert entries, "nothing was recorded"
    for e in entries:
        scan(f"response headers of {e.method} {e.url} (request id {e.request_id})",
             "\n".join(f"{k}: {v}" for k, v in e.headers))
        scan(f"response body of {e.method} {e.url} (request id {e.request_id})", e.body.decode("latin-1"))
    logs = 0
    for gw in gateway_factory.started:
        for name in ("gateway.stderr.log", "gateway.stdout.log"):
            path = gw.workdir / name
            if path.exists():
                logs += 1
                scan(str(path), path.read_text(errors="replace"))
    assert logs, "no gateway log to scan"
    assert not leaks, "secrets leaked:\n" + "\n".join(sorted(set(leaks)))

    upstream = [r for r in mock.requests() if r["path"].split("/")[1] in ("openai", "anthropic", "groq", "nokey", "gemini",
                                                                                "bedrock", "cohere", "azure", "foundry",
                                                                                "aad", "google", "vertex", "github", "copilot",
                                                                                "ghlogin", "replicate")]
    assert upstream, "no upstream request recorded"
    for r in upstream:
        g.assert_no_secret_leak_upstream(r)
