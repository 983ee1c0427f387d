"""Shared state: the circuit breaker lives in the store, not in a process. The embedded file store
keeps it across a restart (sharing through DynamoDB and Durable Objects: test_runtimes.py)."""
from __future__ import annotations

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
