//! Key policy (allowed models, expiry), `/metrics` and `/v1/usage`.

use super::*;

const POLICY: &str = "
keys:
  - {name: team, key: team-key-456, models: ['claude-*', gpt-x], limits: {rpm: 5}, budget: {daily_usd: 2}}
  - {name: old, key: old-key-789, expires: '2023-01-01'}
  - {name: later, key: later-key-000, expires: '2030-01-01T00:00:00Z'}
providers:
  oa: {format: openai, base_url: 'http://oa', auth: {type: bearer, env: [OA_KEY]}, models: [gpt-x, gpt-y]}
prices:
  gpt-x: {input: 1000, output: 1000}
";

const OAI_45: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":40,"completion_tokens":5,"total_tokens":45}}"#;

fn policy_gateway() -> Gw {
    let env = |k: &str| match k {
        "GATEWAY_ADMIN_KEY" => Some("admin-key-321".to_owned()),
        _ => test_env(k),
    };
    let scripts = vec![("oa", Script::Status(200, OAI_45))];
    gateway_env(POLICY, &env, scripts, false, MemoryStore::new()).0
}

fn with_key(mut r: Request<Bytes>, key: &str) -> Request<Bytes> {
    r.headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    r
}

fn chat(key: &str, model: &str) -> Request<Bytes> {
    with_key(
        post(
            "/v1/chat/completions",
            json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
        ),
        key,
    )
}

fn get(path: &str, key: &str) -> Request<Bytes> {
    with_key(
        Request::builder()
            .method("GET")
            .uri(path)
            .body(Bytes::new())
            .unwrap(),
        key,
    )
}

#[test]
fn a_key_reaches_only_its_models_and_stops_at_its_expiry() {
    let g = policy_gateway();
    assert_eq!(run(&g, chat("team-key-456", "gpt-x")).0, 200);
    let (status, _, body) = run(&g, chat("team-key-456", "gpt-y"));
    assert_eq!(status, 403, "{body}");
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["error"]["code"], "model_not_allowed");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("it may use: claude-*, gpt-x")
    );
    let (status, _, body) = run(&g, chat("old-key-789", "gpt-x"));
    assert_eq!(status, 401);
    assert!(
        body.contains("proxy key `old` expired at 2023-01-01"),
        "{body}"
    );
    assert_eq!(run(&g, chat("later-key-000", "gpt-y")).0, 200);
    assert_eq!(g.inner.http.seen.lock().unwrap().len(), 2);
}

#[test]
fn metrics_count_what_happened_for_the_admin_key_only() {
    let g = policy_gateway();
    run(&g, chat("team-key-456", "gpt-x"));
    run(&g, chat("team-key-456", "gpt-y"));
    assert_eq!(run(&g, get("/metrics", "team-key-456")).0, 401);
    // Refusals come in the caller's API shape (here Anthropic's).
    let mut r = get("/metrics", "team-key-456");
    r.headers_mut()
        .insert("anthropic-version", "2023-06-01".parse().unwrap());
    let (status, _, body) = run(&g, r);
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status.as_u16(), &e["type"], &e["error"]["type"]),
        (401, &json!("error"), &json!("authentication_error"))
    );
    let (status, headers, text) = run(&g, get("/metrics", "admin-key-321"));
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let ok = "gateway_requests_total{gen_ai_provider_name=\"oa\",gen_ai_request_model=\"gpt-x\",client_format=\"openai\",status_class=\"2xx\",error_type=\"none\"} 1";
    assert!(text.contains(ok), "{text}");
    assert!(
        text.contains("status_class=\"4xx\",error_type=\"invalid_request\"} 1"),
        "{text}"
    );
    assert!(text.contains("gateway_tokens_total{gen_ai_provider_name=\"oa\",gen_ai_request_model=\"gpt-x\",gen_ai_token_type=\"input\"} 40"));
    assert!(text.contains(
        "gateway_spend_usd_total{gen_ai_provider_name=\"oa\",gen_ai_request_model=\"gpt-x\"} 0.045"
    ));
    assert!(text.contains("gen_ai_client_token_usage_bucket{gen_ai_provider_name=\"oa\",gen_ai_request_model=\"gpt-x\",gen_ai_token_type=\"output\",le=\"16\"} 1"));
    assert!(text.contains("gateway_overhead_seconds_count 1"), "{text}");
}

#[test]
fn a_key_reads_its_own_usage_and_the_admin_key_reads_any() {
    let g = policy_gateway();
    for _ in 0..2 {
        run(&g, chat("team-key-456", "gpt-x"));
    }
    let (status, _, body) = run(&g, get("/v1/usage", "team-key-456"));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let w = &v["keys"][0]["windows"];
    assert_eq!(v["keys"][0]["key"], "team");
    assert_eq!(
        (&w[0]["limits"], &w[0]["requests"], &w[0]["rpm"]),
        (&json!("keys.team.limits"), &json!(2), &json!(5))
    );
    assert_eq!(w[0]["tokens"], 90, "settled to the real usage");
    assert_eq!(
        (&w[1]["budget"], &w[1]["spent_usd"], &w[1]["cap_usd"]),
        (
            &json!("keys.team.budget.daily_usd"),
            &json!(0.09),
            &json!(2.0)
        )
    );
    assert_eq!(run(&g, get("/v1/usage?key=old", "team-key-456")).0, 403);
    let (status, _, body) = run(&g, get("/v1/usage?key=team", "admin-key-321"));
    assert_eq!(status, 200);
    assert!(body.contains("\"spent_usd\":0.09"), "{body}");
}

#[test]
fn a_failed_health_check_keeps_its_credential_out_of_traffic() {
    let (g, lines) = gateway(vec![("oa", Script::Status(200, "{\"data\":[]}"))], false);
    let got = block_on(g.health_check());
    assert_eq!(got["providers"]["oa"]["OA_KEY"]["ok"], true, "{got}");
    assert_eq!(got["providers"]["down"]["OA_KEY"]["ok"], false, "{got}");
    assert!(
        got["providers"].get("nokey").is_none(),
        "unconfigured providers are not probed"
    );
    let probe = g
        .inner
        .http
        .seen
        .lock()
        .unwrap()
        .iter()
        .find(|(u, ..)| u == "http://oa/models")
        .cloned();
    assert_eq!(
        probe.unwrap().1["authorization"],
        "Bearer sk-oa-SECRET-0123456789"
    );
    // The failed one is skipped without a call; the answer comes from the next target.
    let before = g.inner.http.seen.lock().unwrap().len();
    let (status, _, _) = run(
        &g,
        post(
            "/v1/chat/completions",
            json!({"model": "chain", "messages": [{"role": "user", "content": "hi"}]}),
        ),
    );
    assert_eq!(status, 200);
    let log = last_log(&lines);
    assert_eq!(log["attempts"][0]["error_class"], "circuit_open", "{log}");
    let urls: Vec<String> = g.inner.http.seen.lock().unwrap()[before..]
        .iter()
        .map(|(u, ..)| u.clone())
        .collect();
    assert_eq!(urls, ["http://oa/chat/completions"]);
    // /health (with a proxy key) shows the last results.
    let (_, _, body) = run(
        &g,
        Request::builder()
            .method("GET")
            .uri("/health")
            .header("authorization", "Bearer proxy-key-123")
            .body(Bytes::new())
            .unwrap(),
    );
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        h["providers"]["down"]["checks"]["OA_KEY"]["ok"], false,
        "{h}"
    );
}

#[test]
fn breakers_and_cooldowns_show_from_the_store_to_the_admin() {
    let g = policy_gateway();
    let bkey = format!(
        "breaker:oa:{}",
        gw_auth::fingerprint("sk-oa-SECRET-0123456789")
    );
    let now = 1_700_000_000_000;
    let cool = gw_state::Command::Cooldown {
        config: g.config().breaker.clone(),
        until_ms: now + 30_000,
    };
    g.inner.store.apply_now(&bkey, &cool, now).unwrap();
    let (_, _, text) = run(&g, get("/metrics", "admin-key-321"));
    assert!(
        text.contains("gateway_breaker_open{gen_ai_provider_name=\"oa\",credential=\"OA_KEY\"} 1"),
        "{text}"
    );
    assert!(text.contains("gateway_breaker_retry_after_seconds{gen_ai_provider_name=\"oa\",credential=\"OA_KEY\"} 30"), "{text}");
    let (_, _, body) = run(&g, get("/v1/usage", "admin-key-321"));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["providers"][0],
        json!({"provider": "oa", "credential": "OA_KEY", "breaker": {"state": "open", "retry_after_ms": 30_000}})
    );
    // A proxy key does not see providers.
    let (_, _, body) = run(&g, get("/v1/usage", "team-key-456"));
    assert!(
        serde_json::from_str::<Value>(&body)
            .unwrap()
            .get("providers")
            .is_none()
    );
}
