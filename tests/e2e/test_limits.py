"""Limits and budgets (traffic management): requests and tokens per minute on proxy keys and provider targets, held in the
state store and exact under concurrency. 200 concurrent requests against a key's RPM of 50 let exactly 50
through, on the embedded file store, on the memory store, and from two gateway processes sharing one DynamoDB
Local table; the rest get a 429 in their own API's shape, naming the limit, with `Retry-After`. A target whose
limit is spent moves traffic to the next target of the route. A daily budget cuts one key off while another
works, and each alert threshold reaches the webhook exactly once."""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import gwtest as g

RPM = 50


@pytest.fixture(scope="module")
def limits_config(tmp_path_factory) -> Path:
    """gateway.test.yaml with an RPM of 50 on the second proxy key, and of 3 on the groq provider."""
    text = g.CONFIG_PATH.read_text()
    key = "    key: ${E2E_SECOND_PROXY_KEY:-}\n"
    groq = "    models: [llama-3.3-70b-versatile]\n"
    assert text.count(key) == 1 and text.count(groq) == 1 and text.count("\nroutes:\n") == 1
    text = text.replace(key, key + f"    limits: {{rpm: {RPM}}}\n")
    text = text.replace(groq, groq + "    limits: {rpm: 3}\n")
    text = text.replace("\nroutes:\n", "\nroutes:\n  groq-then-openai: [groq/llama-3.3-70b-versatile, openai/gpt-4o-mini]\n")
    p = tmp_path_factory.mktemp("cfg-limits") / "gateway.limits.yaml"
    p.write_text(text)
    return p


def _room_in_this_minute(seconds: float = 8.0) -> None:
    """Limits count per clock minute: start a burst where it cannot straddle two."""
    left = 60 - time.time() % 60
    if left < seconds:
        time.sleep(left + 0.2)


def _chat(url: str, key: str, model: str, text: str) -> g.Raw:
    return g.raw_request(url, "POST", "/v1/chat/completions",
                         {"model": model, "messages": [{"role": "user", "content": text}]},
                         headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _burst(urls: list[str], tag: str, n: int = 200) -> list[g.Raw]:
    _room_in_this_minute()
    with ThreadPoolExecutor(max_workers=40) as pool:
        return list(pool.map(lambda i: _chat(urls[i % len(urls)], g.SECOND_PROXY_KEY, "gpt-4o-mini", f"burst {tag} {i}"),
                             range(n)))


def _check_exact(results: list[g.Raw], mock, tag: str) -> None:
    statuses = [r.status for r in results]
    assert statuses.count(200) == RPM and statuses.count(429) == len(results) - RPM, \
        f"exactly {RPM} of {len(results)} pass: {sorted(set(statuses))} {statuses.count(200)}"
    assert len(mock.with_nonce(f"burst {tag} ")) == RPM, "only admitted requests reach the upstream"
    refused = next(r for r in results if r.status == 429)
    err = g.assert_openai_error(refused, 429)
    assert "keys.e2e-second.limits.rpm" in err["message"] and f"{RPM} requests per minute" in err["message"], err
    assert 1 <= int(refused.headers["retry-after"]) <= 60


@pytest.mark.parametrize("state", ["file", "memory"])
def test_exactly_the_rpm_passes_under_200_concurrent_requests(gateway_factory, limits_config, mock, tag, state):
    args = ("--state", "memory") if state == "memory" else ()
    gw = gateway_factory.start(f"limits-{state}-{tag}", args, config=limits_config)
    try:
        _check_exact(_burst([gw.url], tag), mock, tag)
        # The default key has no limit: it still works.
        assert _chat(gw.url, g.PROXY_KEY, "gpt-4o-mini", f"other key {tag}").status == 200
    finally:
        gw.stop()


def test_two_gateways_on_one_dynamodb_table_share_the_limit(gateway_factory, limits_config, dynamodb, mock, tag):
    env = {"AWS_ENDPOINT_URL_DYNAMODB": dynamodb, "AWS_REGION": g.AWS_REGION, "AWS_ACCESS_KEY_ID": g.AWS_ACCESS_KEY_ID,
           "AWS_SECRET_ACCESS_KEY": g.AWS_SECRETS["AWS_SECRET_ACCESS_KEY"],
           "AWS_SESSION_TOKEN": g.AWS_SECRETS["AWS_SESSION_TOKEN"]}
    args = ("--state", f"dynamodb:gw-limits-{tag}")
    a = gateway_factory.start(f"limits-ddb-a-{tag}", args, env, limits_config)
    b = gateway_factory.start(f"limits-ddb-b-{tag}", args, env, limits_config)
    try:
        _check_exact(_burst([a.url, b.url], tag), mock, tag)
    finally:
        a.stop()
        b.stop()


def test_a_spent_target_moves_traffic_to_the_next(gateway_factory, limits_config, mock, tag):
    gw = gateway_factory.start(f"limits-move-{tag}", config=limits_config)
    try:
        _room_in_this_minute()
        for i in range(5):
            r = _chat(gw.url, g.PROXY_KEY, "groq-then-openai", f"move {tag} {i}")
            assert r.status == 200, r.body
        paths = [mock.one(f"move {tag} {i}")["path"] for i in range(5)]
        assert paths == ["/groq/v1/chat/completions"] * 3 + ["/openai/v1/chat/completions"] * 2, paths
    finally:
        gw.stop()


class _Hook(ThreadingHTTPServer):
    """Collects the JSON bodies POSTed to it (the alert webhook)."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        hook = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("content-length") or 0)
                hook.bodies.append(json.loads(self.rfile.read(n)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a) -> None:  # noqa: ANN002
                pass

        super().__init__(("127.0.0.1", 0), H)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_a_budget_cuts_one_key_off_and_alerts_once(gateway_factory, mock, tag, tmp_path):
    """At $10,000 per 1M tokens an answer costs cents: a $1 daily budget on the second key lasts a few requests,
    then that key gets a 429 `budget_exceeded` while the default key still works; each alert threshold (50, 80,
    100 %) reaches the webhook exactly once."""
    hook = _Hook()
    text = g.CONFIG_PATH.read_text()
    key = "    key: ${E2E_SECOND_PROXY_KEY:-}\n"
    text = text.replace(key, key + "    budget: {daily_usd: 1}\n")
    text += ("\nprices: {gpt-4o-mini: {input: 10000, output: 10000}}\n"
             f"alerts: {{thresholds: [50, 80, 100], webhook_url: 'http://127.0.0.1:{hook.server_port}/alerts'}}\n")
    cfg = tmp_path / "gateway.budget.yaml"
    cfg.write_text(text)
    gw = gateway_factory.start(f"budget-{tag}", config=cfg)
    try:
        statuses = []
        for i in range(30):
            r = _chat(gw.url, g.SECOND_PROXY_KEY, "gpt-4o-mini", f"spend {tag} {i}.")
            statuses.append(r.status)
            if r.status == 429:
                break
        assert statuses[-1] == 429 and set(statuses[:-1]) == {200} and len(statuses) > 2, statuses
        err = g.assert_openai_error(r, 429)
        assert err.get("code") == "budget_exceeded" and "keys.e2e-second.budget.daily_usd" in err["message"], err
        assert len(mock.with_nonce(f"spend {tag} ")) == len(statuses) - 1, "the refused request went nowhere"
        assert _chat(gw.url, g.PROXY_KEY, "gpt-4o-mini", f"free {tag}").status == 200
        deadline = time.time() + 10
        while len(hook.bodies) < 3 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # nothing more may come
        assert sorted(b["threshold_percent"] for b in hook.bodies) == [50, 80, 100], hook.bodies
        assert all(b["event"] == "budget_alert" and b["budget"] == "keys.e2e-second.budget.daily_usd" for b in hook.bodies)
    finally:
        gw.stop()
        hook.shutdown()


def _metric(text: str, name: str, **labels: str) -> float:
    """The sum of `name` over the series whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        series, _, value = line.rpartition(" ")
        have = dict(kv.split("=", 1) for kv in series[len(name) + 1:-1].split(",") if "=" in kv)
        if all(have.get(k) == f'"{v}"' for k, v in labels.items()):
            total += float(value)
    return total


def test_metrics_match_what_the_upstream_served(gateway_factory, mock, recorder, tag):
    """/metrics (admin key) against the mock's own count: requests by target and status, and the tokens the
    upstream reported, streamed answers included; without the admin key it is refused."""
    gw = gateway_factory.start(f"metrics-{tag}", extra_env={"GATEWAY_ADMIN_KEY": "admin-e2e-key"})
    try:
        client = g.openai_client(gw, recorder)
        output = 0
        for i in range(3):
            r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"m {tag} {i}."}])
            output += r.usage.completion_tokens
        for i in range(2):
            chunks = list(client.chat.completions.create(
                model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
                messages=[{"role": "user", "content": f"ms {tag} {i}."}]))
            output += next(c.usage for c in chunks if c.usage).completion_tokens
        assert _chat(gw.url, g.PROXY_KEY, "openai/mock-fail-400", f"bad {tag}").status == 400
        assert g.raw_request(gw.url, "GET", "/metrics", headers={"Authorization": f"Bearer {g.PROXY_KEY}"}).status == 401
        r = g.raw_request(gw.url, "GET", "/metrics", headers={"Authorization": "Bearer admin-e2e-key"})
        assert r.status == 200 and r.headers["content-type"].startswith("text/plain"), r.status
        text = r.body.decode()
        served = len([x for x in mock.with_nonce(tag) if "mock-fail" not in json.dumps(x["body"])])
        ok = _metric(text, "gateway_requests_total", gen_ai_provider_name="openai", gen_ai_request_model="gpt-4o-mini",
                     status_class="2xx", error_type="none")
        assert ok == served == 5, (ok, served)
        assert _metric(text, "gateway_requests_total", status_class="4xx", error_type="upstream") == 1
        out = _metric(text, "gateway_tokens_total", gen_ai_provider_name="openai", gen_ai_token_type="output")
        assert out == output, (out, output)
        assert _metric(text, "gateway_time_to_first_byte_seconds_count", gen_ai_provider_name="openai") >= 5
    finally:
        gw.stop()


def test_two_gateways_on_one_dynamodb_table_share_a_budget(gateway_factory, dynamodb, mock, tag, tmp_path):
    """Spend from either gateway counts against one budget: alternating requests, both refuse once it is spent,
    and each alert threshold fires once across the two (one webhook POST each)."""
    hook = _Hook()
    text = g.CONFIG_PATH.read_text()
    key = "    key: ${E2E_SECOND_PROXY_KEY:-}\n"
    text = text.replace(key, key + "    budget: {daily_usd: 1}\n")
    text += ("\nprices: {gpt-4o-mini: {input: 10000, output: 10000}}\n"
             f"alerts: {{thresholds: [50, 80, 100], webhook_url: 'http://127.0.0.1:{hook.server_port}/alerts'}}\n")
    cfg = tmp_path / "gateway.budget-ddb.yaml"
    cfg.write_text(text)
    env = {"AWS_ENDPOINT_URL_DYNAMODB": dynamodb, "AWS_REGION": g.AWS_REGION, "AWS_ACCESS_KEY_ID": g.AWS_ACCESS_KEY_ID,
           "AWS_SECRET_ACCESS_KEY": g.AWS_SECRETS["AWS_SECRET_ACCESS_KEY"],
           "AWS_SESSION_TOKEN": g.AWS_SECRETS["AWS_SESSION_TOKEN"]}
    args = ("--state", f"dynamodb:gw-budget-{tag}")
    a = gateway_factory.start(f"budget-ddb-a-{tag}", args, env, cfg)
    b = gateway_factory.start(f"budget-ddb-b-{tag}", args, env, cfg)
    try:
        statuses = []
        for i in range(30):
            gw = (a, b)[i % 2]
            statuses.append(_chat(gw.url, g.SECOND_PROXY_KEY, "gpt-4o-mini", f"spend2 {tag} {i}.").status)
            if statuses[-1] == 429:
                break
        assert statuses[-1] == 429 and set(statuses[:-1]) == {200} and len(statuses) > 2, statuses
        other = (a, b)[len(statuses) % 2]  # the gateway that did not refuse
        r = _chat(other.url, g.SECOND_PROXY_KEY, "gpt-4o-mini", f"spend2 {tag} other.")
        assert r.status == 429 and g.assert_openai_error(r, 429).get("code") == "budget_exceeded"
        # The ledger in the table holds both gateways' answers (each books once a second).
        time.sleep(1.5)
        for gw in (a, b):
            day = _spend(gw, g.SECOND_PROXY_KEY).json()["periods"][0]["keys"]["e2e-second"]
            usage = g.raw_request(gw.url, "GET", "/v1/usage", headers={"Authorization": f"Bearer {g.SECOND_PROXY_KEY}"})
            budget = next(w for w in usage.json()["keys"][0]["windows"] if w.get("budget"))
            assert day["requests"] == len(statuses) - 1 and day["spent_usd"] == budget["spent_usd"] > 0, (day, budget)
        deadline = time.time() + 10
        while len(hook.bodies) < 3 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        assert sorted(x["threshold_percent"] for x in hook.bodies) == [50, 80, 100], hook.bodies
    finally:
        a.stop()
        b.stop()
        hook.shutdown()


def test_a_429_cools_one_pool_key_down_while_the_other_serves(gateway_factory, mock_url, mock, tag, tmp_path):
    """A provider with two keys (fill_first): the first answers 429 with retry-after 30; the same request goes
    on to the second key, and later requests skip the first key (cooldown in the store) without calling it."""
    pooled = f"""
  pooled:
    format: openai
    base_url: {mock_url}/pool/v1
    auth: {{type: bearer, env: [POOL_KEY_A]}}
    pool: {{env: [POOL_KEY_B], strategy: fill_first}}
    models: []
"""
    text = g.CONFIG_PATH.read_text().replace("\nroutes:\n", pooled + "\nroutes:\n", 1)
    cfg = tmp_path / "gateway.pool.yaml"
    cfg.write_text(text)
    gw = gateway_factory.start(f"pool-{tag}", extra_env={"POOL_KEY_A": g.POOL_KEYS["busy"], "POOL_KEY_B": g.POOL_KEYS["ok"]},
                               config=cfg)
    try:
        for i in range(3):
            r = _chat(gw.url, g.PROXY_KEY, "pooled/gpt-4o-mini", f"pool {tag} {i}.")
            assert r.status == 200, r.body
        used = [x["headers"]["authorization"].removeprefix("Bearer ") for x in mock.with_nonce(f"pool {tag} ")]
        assert used == [g.POOL_KEYS["busy"], g.POOL_KEYS["ok"], g.POOL_KEYS["ok"], g.POOL_KEYS["ok"]], used
    finally:
        gw.stop()


def test_health_check_round_marks_a_dead_provider_and_routing_skips_it(gateway_factory, mock, tag):
    """POST /admin/health-check (admin key) probes every configured credential (the model list): the mock's OpenAI
    answers, the `broken` provider's port is dead; /health shows the results, and a route that starts at the dead
    provider is served by the next target."""
    gw = gateway_factory.start(f"hc-{tag}", extra_env={"GATEWAY_ADMIN_KEY": "admin-e2e-key"})
    try:
        assert g.raw_request(gw.url, "POST", "/admin/health-check", b"",
                             headers={"Authorization": f"Bearer {g.PROXY_KEY}"}).status == 401
        r = g.raw_request(gw.url, "POST", "/admin/health-check", b"", headers={"Authorization": "Bearer admin-e2e-key"})
        assert r.status == 200, r.body
        got = r.json()["providers"]
        assert got["openai"]["OPENAI_API_KEY"]["ok"] is True, got
        assert got["broken"]["BROKEN_API_KEY"]["ok"] is False, got
        assert "nokey" not in got, "unconfigured providers are not probed"
        probes = [x for x in mock.requests() if x["method"] == "GET" and x["path"] == "/openai/v1/models"]
        assert probes and probes[-1]["headers"]["authorization"] == f"Bearer {g.UPSTREAM_KEYS['openai']}"
        h = g.raw_request(gw.url, "GET", "/health", headers={"Authorization": f"Bearer {g.PROXY_KEY}"}).json()
        assert h["providers"]["broken"]["checks"]["BROKEN_API_KEY"]["ok"] is False
        assert _chat(gw.url, g.PROXY_KEY, "fallback-chain", f"after check {tag}").status == 200
    finally:
        gw.stop()


def _spend(gw: g.Gateway, key: str, query: str = "") -> g.Raw:
    return g.raw_request(gw.url, "GET", f"/v1/spend{query}", headers={"Authorization": f"Bearer {key}"})


def test_spend_by_key_provider_model_and_period_survives_a_restart(gateway_factory, mock, recorder, tag, tmp_path):
    """/v1/spend: served answers (streamed ones included, refused ones not) by proxy key and its models, provider
    and model, for the day, the month and all time, priced from the upstream's usage. A proxy key reads only its
    own key; the admin key reads everything. The local server books spend once a second and at shutdown: stopped
    right after the requests and started again on its state file, it has lost nothing."""
    cfg = tmp_path / "gateway.spend.yaml"
    cfg.write_text(g.CONFIG_PATH.read_text() + "\nprices: {gpt-4o-mini: {input: 10000, output: 10000}}\n")
    env = {"GATEWAY_ADMIN_KEY": "admin-e2e-key"}
    gw = gateway_factory.start(f"spend-{tag}", extra_env=env, config=cfg)
    try:
        client = g.openai_client(gw, recorder)
        tokens = 0
        for i in range(2):
            r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"s {tag} {i}."}])
            tokens += r.usage.total_tokens
        chunks = list(client.chat.completions.create(
            model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": f"ss {tag}."}]))
        tokens += next(c.usage for c in chunks if c.usage).total_tokens
        assert _chat(gw.url, g.SECOND_PROXY_KEY, "claude-sonnet-4-5", f"s2 {tag}").status == 200
        assert _chat(gw.url, g.PROXY_KEY, "openai/mock-fail-400", f"bad {tag}").status == 400
    finally:
        gw.stop()
    gw = gateway_factory.start(f"spend-{tag}", extra_env=env, config=cfg, reuse=gw)
    try:
        r = _spend(gw, "admin-e2e-key")
        assert r.status == 200, r.body
        body = r.json()
        assert body["object"] == "spend" and [p["period"] for p in body["periods"]] == ["day", "month", "total"]
        for p in body["periods"]:
            openai_spend = {"requests": 3, "tokens": tokens, "spent_usd": pytest.approx(tokens * 0.01)}
            assert p["providers"]["openai"] == openai_spend, p
            assert p["models"]["openai/gpt-4o-mini"] == openai_spend, p
            assert p["keys"]["default"]["models"] == {"openai/gpt-4o-mini": openai_spend}, p
            assert p["keys"]["default"]["requests"] == 3
            second = p["keys"]["e2e-second"]
            assert second["requests"] == 1 and second["tokens"] > 0 and second["spent_usd"] > 0, second  # shipped price
            assert p["models"]["anthropic/claude-sonnet-4-5"]["requests"] == 1
        day = body["periods"][0]
        assert day["period_start_ms"] <= body["now_ms"] < day["resets_at_ms"]

        own = _spend(gw, g.SECOND_PROXY_KEY).json()["periods"][0]
        assert list(own["keys"]) == ["e2e-second"] and "providers" not in own and "models" not in own, own
        assert g.assert_openai_error(_spend(gw, g.SECOND_PROXY_KEY, "?key=default"), 403)
        assert g.assert_openai_error(_spend(gw, "wrong-key"), 401)

        yesterday = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86_400))
        past = _spend(gw, "admin-e2e-key", f"?date={yesterday}").json()["periods"]
        assert past[0]["keys"]["default"]["requests"] == 0 and past[2]["keys"]["default"]["requests"] == 3, past
        err = g.assert_openai_error(_spend(gw, "admin-e2e-key", "?date=12/05/2026"), 400)
        assert "YYYY-MM-DD" in err["message"]
    finally:
        gw.stop()
