"""Shared state: the circuit breaker lives in the store, not in a process. Two gateways on one
DynamoDB table (DynamoDB Local) share it; the embedded file store keeps it across a restart."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import gwtest as g


@pytest.fixture(scope="module")
def breaker_config(tmp_path_factory) -> Path:
    """The test config with a breaker that opens after 2 failures and stays open for a minute."""
    p = tmp_path_factory.mktemp("cfg") / "gateway.breaker.yaml"
    p.write_text(g.CONFIG_PATH.read_text() + "\nbreaker: {consecutive_failures: 2, cooldown_ms: 60000}\n")
    return p


def _chat(gw: g.Gateway, model: str, text: str) -> g.Raw:
    return g.raw_request(gw.url, "POST", "/v1/chat/completions",
                         {"model": model, "messages": [{"role": "user", "content": text}]},
                         headers={"Authorization": f"Bearer {g.PROXY_KEY}"})


def _trip_and_check(first: g.Gateway, second: g.Gateway, mock, tag: str) -> None:
    model = f"openai/mock-fail-500-{tag}"
    for i in range(2):
        r = _chat(first, model, f"trip {tag} {i}")
        assert r.status >= 500 and r.status != 503, (r.status, r.body)
    time.sleep(0.5)  # the outcome writes run beside the responses
    r = _chat(second, model, f"after {tag}")
    assert r.status == 503, f"the breaker opened by the other instance must reject: {r.status} {r.body!r}"
    body = json.loads(r.body)
    assert body["error"]["code"] == "circuit_open", body
    assert int(r.headers.get("retry-after", "0")) > 0
    assert not mock.with_nonce(f"after {tag}"), "an open breaker must not call the upstream"


def test_two_gateways_share_a_breaker_through_dynamodb(gateway_factory, dynamodb, breaker_config, mock, tag):
    env = {"AWS_ENDPOINT_URL_DYNAMODB": dynamodb, "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "dummy", "AWS_SECRET_ACCESS_KEY": "dummy"}
    args = ("--state", f"dynamodb:gw-e2e-{tag}")
    a = gateway_factory.start(f"ddb-a-{tag}", args, env, breaker_config)
    b = gateway_factory.start(f"ddb-b-{tag}", args, env, breaker_config)
    try:
        _trip_and_check(a, b, mock, tag)
    finally:
        a.stop()
        b.stop()


def test_the_embedded_store_keeps_an_open_breaker_across_a_restart(gateway_factory, breaker_config, mock, tag):
    first = gateway_factory.start(f"redb-{tag}", config=breaker_config)
    first_stopped = False
    try:
        model = f"openai/mock-fail-500-{tag}"
        for i in range(2):
            assert _chat(first, model, f"trip {tag} {i}").status >= 500
        time.sleep(0.5)
        first.stop()
        first_stopped = True
        again = gateway_factory.start(f"redb-{tag}", config=breaker_config, reuse=first)
        try:
            r = _chat(again, model, f"after {tag}")
            assert r.status == 503, f"the open breaker must survive a restart: {r.status} {r.body!r}"
            assert not mock.with_nonce(f"after {tag}")
        finally:
            again.stop()
    finally:
        if not first_stopped:
            first.stop()
