//! Limits: a key's and a target's requests and tokens per window, reserved before the upstream
//! call and settled with the real usage; a spent target moves the request on, and a spent key
//! or every target spent is the client's 429 naming the limit.

use super::*;

const LIMITED: &str = "
keys:
  - {name: team, key: team-key-456, limits: {rpm: 2}}
providers:
  oa: {format: openai, base_url: 'http://oa', auth: {type: bearer, env: [OA_KEY]}, models: [gpt-x], limits: {tpm: 50}}
  free: {format: openai, base_url: 'http://oa', auth: {type: bearer, env: [OA_KEY]}}
  an: {format: anthropic, base_url: 'http://an', auth: {type: header, name: x-api-key, env: [AN_KEY]}, headers: {anthropic-version: '2023-06-01'}, model_limits: {claude-x: {rpm: 1}}}
routes:
  both: [an/claude-x, oa/gpt-x]
  oa-only: [oa/gpt-x]
  free-only: [free/gpt-x]
";

/// 45 tokens in all: under the TPM of 50 on its own, over it with anything after.
const OAI_45: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":40,"completion_tokens":5,"total_tokens":45}}"#;
const AN_OK: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}"#;

fn limited_gateway() -> (Gw, Lines) {
    let scripts = vec![
        ("oa", Script::Status(200, OAI_45)),
        ("an", Script::Status(200, AN_OK)),
    ];
    gateway_on(LIMITED, scripts, false)
}

fn chat(key: &str, model: &str) -> Request<Bytes> {
    let mut r = post(
        "/v1/chat/completions",
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
    );
    r.headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    r
}

fn upstream_calls(g: &Gw) -> usize {
    g.inner.http.seen.lock().unwrap().len()
}

#[test]
fn a_spent_key_gets_a_429_in_its_own_format_naming_the_limit() {
    let (g, lines) = limited_gateway();
    for _ in 0..2 {
        assert_eq!(run(&g, chat("team-key-456", "free-only")).0, 200);
    }
    let (status, headers, body) = run(&g, chat("team-key-456", "free-only"));
    assert_eq!(status, 429);
    // The clock is 20 s into its minute.
    assert_eq!(headers["retry-after"], "40");
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["error"]["type"], "rate_limit_error", "{body}");
    assert_eq!(e["error"]["code"], "rate_limit_exceeded");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("`keys.team.limits.rpm` allows 2 requests per minute"),
        "{msg}"
    );
    assert_eq!(upstream_calls(&g), 2, "a refused request goes nowhere");
    assert_eq!(last_log(&lines)["outcome"], "limited");
    // Another key is not affected; an Anthropic client gets Anthropic's shape.
    assert_eq!(run(&g, chat("proxy-key-123", "free-only")).0, 200);
    let mut r = post(
        "/v1/messages",
        json!({"model": "free-only", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
    );
    r.headers_mut()
        .insert("authorization", "Bearer team-key-456".parse().unwrap());
    let (status, _, body) = run(&g, r);
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status.as_u16(), &e["type"], &e["error"]["type"]),
        (429, &json!("error"), &json!("rate_limit_error"))
    );
}

#[test]
fn a_spent_target_moves_the_request_on_and_all_spent_is_a_429() {
    let (g, lines) = limited_gateway();
    let (status, _, _) = run(&g, chat("proxy-key-123", "both"));
    assert_eq!(status, 200);
    assert_eq!(last_log(&lines)["provider"], "an");
    // claude-x allows 1 request a minute: the next goes to oa.
    assert_eq!(run(&g, chat("proxy-key-123", "both")).0, 200);
    let log = last_log(&lines);
    assert_eq!(log["provider"], "oa");
    assert_eq!(log["attempts"][0]["error_class"], "rate_limited");
    // oa's answer used 45 of its 50 tokens a minute (settled from the real usage): the next
    // request's estimate does not fit, and no target is left.
    let (status, headers, body) = run(&g, chat("proxy-key-123", "both"));
    assert_eq!(status, 429, "{body}");
    assert!(headers.contains_key("retry-after"));
    assert!(
        body.contains("providers.") && body.contains("per minute"),
        "{body}"
    );
    assert_eq!(upstream_calls(&g), 2);
}

#[test]
fn a_limit_of_zero_is_a_config_error_with_its_path() {
    let yaml = LIMITED.replace("limits: {rpm: 2}", "limits: {rpm: 0}");
    let e = Config::load(&yaml, "t.yaml", &|_| None).unwrap_err();
    assert_eq!(e.path, "keys[0].limits.rpm");
    let yaml = LIMITED.replace("limits: {rpm: 2}", "limits: {rps: 2}");
    let e = Config::load(&yaml, "t.yaml", &|_| None).unwrap_err();
    assert!(e.to_string().contains("rps"), "{e}");
}

#[test]
fn a_credentials_limits_are_keyed_like_its_breaker() {
    // Stored counters survive upgrades only if their keys do: `lim:p:` + the breaker key's rest.
    let (g, _) = limited_gateway();
    let p = g.inner.cfg.providers.iter().find(|p| p.id == "oa").unwrap();
    let bkey = crate::record::breaker_key(p, &p.signer);
    let fp = gw_auth::fingerprint(&test_env("OA_KEY").unwrap());
    assert_eq!(bkey, format!("breaker:oa:{fp}"));
    let scopes = crate::limit::target_scopes(p, &bkey, "gpt-x");
    assert_eq!(scopes[0].key, format!("lim:p:oa:{fp}"));
    assert_eq!(scopes[0].path, "providers.oa.limits");
}
