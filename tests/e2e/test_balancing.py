"""Balancing strategies per route, with the official OpenAI SDK against mocks that count what reaches them:
`weighted` splits in proportion (within binomial tolerance), `round_robin` alternates exactly (one instance,
sequential requests), `least_latency` moves to the target that answers first. The order is per instance
(README: Balancing); the rest of a route's targets stay its fallback chain."""
from __future__ import annotations

from pathlib import Path

import pytest

import gwtest as g

ROUTES = """
  split:
    strategy: weighted
    targets: [{provider: openai, model: gpt-4o-mini, weight: 3}, {provider: groq, model: llama-3.3-70b-versatile}]
  turns: {strategy: round_robin, targets: [openai/gpt-4o-mini, groq/llama-3.3-70b-versatile]}
  quickest: {strategy: least_latency, targets: [openai/mock-lag, groq/llama-3.3-70b-versatile]}
"""


@pytest.fixture(scope="module")
def bgw(gateway_factory, tmp_path_factory) -> g.Gateway:
    text = g.CONFIG_PATH.read_text()
    assert text.count("\nroutes:\n") == 1
    p: Path = tmp_path_factory.mktemp("cfg-balance") / "gateway.balance.yaml"
    p.write_text(text.replace("\nroutes:\n", "\nroutes:" + ROUTES))
    gw = gateway_factory.start("balance", config=p)
    yield gw
    gw.stop()


def _where(bgw, recorder, mock, model: str, text: str) -> str:
    r = g.openai_client(bgw, recorder).chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
    assert r.choices[0].message.content == f"echo: {text}"
    return mock.one(text)["path"].split("/")[1]


def test_weighted_splits_in_proportion(bgw, recorder, mock, tag):
    n = 200
    got = [_where(bgw, recorder, mock, "split", f"w {tag} {i}.") for i in range(n)]
    # 150 expected at weight 3 of 4; the binomial sd is 6.1: 5 sd either way.
    assert 120 <= got.count("openai") <= 180 and got.count("openai") + got.count("groq") == n, got.count("openai")


def test_round_robin_alternates(bgw, recorder, mock, tag):
    got = [_where(bgw, recorder, mock, "turns", f"rr {tag} {i}.") for i in range(10)]
    assert got.count("openai") == 5 and got.count("groq") == 5, got
    assert all(a != b for a, b in zip(got, got[1:])), got


def test_least_latency_prefers_the_faster_target(bgw, recorder, mock, tag):
    got = [_where(bgw, recorder, mock, "quickest", f"ll {tag} {i}.") for i in range(10)]
    # Both get measured first (unmeasured targets go first); then the faster one serves.
    assert set(got[:2]) == {"openai", "groq"}, got
    assert got[2:] == ["groq"] * 8, got
