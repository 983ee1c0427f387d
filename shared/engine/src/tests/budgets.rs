//! Budgets: spend from the price table and the real usage, a hard cap that refuses before the
//! upstream call, and alerts that fire once per threshold (log line and webhook).

use super::*;

const BUDGET: &str = "
keys:
  - {name: team, key: team-key-456, budget: {daily_usd: 0.1}}
providers:
  oa: {format: openai, base_url: 'http://oa', auth: {type: bearer, env: [OA_KEY]}, models: [gpt-x]}
prices:
  gpt-x: {input: 1000, output: 1000}
alerts: {thresholds: [50, 100], webhook_url: 'http://hook/alerts'}
";

/// 45 tokens at $1000 per 1M: $0.045 an answer.
const OAI_45: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":40,"completion_tokens":5,"total_tokens":45}}"#;

fn budget_gateway() -> (Gw, Lines) {
    let scripts = vec![
        ("oa", Script::Status(200, OAI_45)),
        ("hook", Script::Status(204, "")),
    ];
    gateway_on(BUDGET, scripts, true)
}

fn chat(key: &str) -> Request<Bytes> {
    let mut r = post(
        "/v1/chat/completions",
        json!({"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}),
    );
    r.headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    r
}

#[test]
fn a_spent_budget_refuses_before_the_upstream_and_alerts_fire_once() {
    let (g, lines) = budget_gateway();
    for i in 0..3 {
        let (status, _, body) = run(&g, chat("team-key-456"));
        assert_eq!(status, 200, "request {i}: {body}");
        let line = lines
            .0
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|l| l.contains("request_id"))
            .cloned();
        let line: Value = serde_json::from_str(&line.unwrap()).unwrap();
        assert_eq!(line["cost_usd"], 0.045, "cost in the log line");
    }
    // $0.135 spent of $0.10: the next request is refused, naming the budget, and goes nowhere.
    let upstream = |g: &Gw| {
        g.inner
            .http
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(u, ..)| u.starts_with("http://oa"))
            .count()
    };
    assert_eq!(upstream(&g), 3);
    let (status, headers, body) = run(&g, chat("team-key-456"));
    assert_eq!(status, 429, "{body}");
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["error"]["code"], "budget_exceeded");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("budget `keys.team.budget.daily_usd` ($0.10 per day) is spent"),
        "{msg}"
    );
    assert!(headers.contains_key("retry-after"));
    assert_eq!(upstream(&g), 3);
    // Other keys have no budget.
    assert_eq!(run(&g, chat("proxy-key-123")).0, 200);

    // 50 % was crossed by the 2nd answer and 100 % by the 3rd: one alert each, logged and posted.
    let alerts: Vec<Value> = lines
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "budget_alert")
        .collect();
    let pcts: Vec<u64> = alerts
        .iter()
        .map(|a| a["threshold_percent"].as_u64().unwrap())
        .collect();
    assert_eq!(pcts, [50, 100], "{alerts:?}");
    assert_eq!(alerts[0]["budget"], "keys.team.budget.daily_usd");
    assert!((alerts[1]["spent_usd"].as_f64().unwrap() - 0.135).abs() < 1e-9);
    let hooks: Vec<Value> = g
        .inner
        .http
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(u, ..)| u == "http://hook/alerts")
        .map(|(_, _, b)| b.clone())
        .collect();
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[1]["threshold_percent"], 100);
}

#[test]
fn budget_config_errors_name_the_path() {
    let e = Config::load(
        &BUDGET.replace("daily_usd: 0.1", "daily_usd: -1"),
        "t.yaml",
        &|_| None,
    )
    .unwrap_err();
    assert_eq!(e.path, "keys[0].budget.daily_usd");
    let e = Config::load(&BUDGET.replace("[50, 100]", "[0]"), "t.yaml", &|_| None).unwrap_err();
    assert_eq!(e.path, "alerts.thresholds");
    let e = Config::load(
        &BUDGET.replace("input: 1000", "input: -1"),
        "t.yaml",
        &|_| None,
    )
    .unwrap_err();
    assert_eq!(e.path, "prices.gpt-x");
}

#[test]
fn budgets_fail_open_unless_told_to_fail_closed() {
    for closed in [false, true] {
        let yaml = format!("{BUDGET}\nserver: {{budgets_fail_closed: {closed}}}\n");
        let env = |k: &str| match k {
            "OA_KEY" => Some("sk-oa-SECRET-0123456789".to_owned()),
            _ => None,
        };
        let cfg = Config::load(&yaml, "t.yaml", &env).unwrap();
        let http = FakeHttp {
            by_host: vec![("oa", Script::Status(200, OAI_45))]
                .into_iter()
                .collect(),
            ..FakeHttp::default()
        };
        let g = Gateway::new(
            cfg,
            http,
            TestClock { fire: false },
            Lines::default(),
            BrokenStore,
        );
        let (status, _, body) = run(&g, chat("team-key-456"));
        if closed {
            assert_eq!(status, 503, "{body}");
            assert!(
                body.contains("budget_unavailable") && body.contains("keys.team.budget.daily_usd"),
                "{body}"
            );
            assert!(g.inner.http.seen.lock().unwrap().is_empty());
        } else {
            assert_eq!(
                status, 200,
                "a store outage lets traffic through by default: {body}"
            );
        }
    }
}
