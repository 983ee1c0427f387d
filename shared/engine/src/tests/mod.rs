//! Engine tests: the whole pipeline on fake ports (scripted upstreams, a clock whose timers
//! fire on demand, a log sink that keeps lines). No runtime, no sockets.

use super::*;
use futures::executor::block_on;
use futures_util::StreamExt;
use gw_ports::{ByteStream, TransportError, TransportErrorKind};
use gw_state::{MemoryStore, StoreError};
use gw_testkit::{FakeHttp, Lines, Script, TestClock};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::sync::Mutex;

const YAML: &str = "
providers:
  oa: {format: openai, base_url: 'http://oa', auth: {type: bearer, env: [OA_KEY]}, models: [gpt-x]}
  an: {format: anthropic, base_url: 'http://an', auth: {type: header, name: x-api-key, env: [AN_KEY]}, headers: {anthropic-version: '2023-06-01'}, models: [claude-x]}
  down: {format: openai, base_url: 'http://down', auth: {type: bearer, env: [OA_KEY]}}
  nokey: {format: openai, base_url: 'http://nokey', auth: {type: bearer, env: [NOKEY_KEY]}}
breaker: {consecutive_failures: 2, cooldown_ms: 30000}
routes:
  chain: [down/m, nokey/m, oa/gpt-x]
  to-claude: [an/claude-x]
  strict: [oa/gpt-x, an/claude-x]
";

/// A store that is down.
struct BrokenStore;

impl StateStore for BrokenStore {
    async fn apply(&self, _: &str, _: &gw_state::Command, _: u64) -> Result<Reply, StoreError> {
        Err(StoreError("connection refused".into()))
    }
}

type Gw = Gateway<FakeHttp, TestClock, Lines, MemoryStore>;

fn gateway(scripts: Vec<(&'static str, Script)>, fire: bool) -> (Gw, Lines) {
    gateway_with(scripts, fire, MemoryStore::new())
}

fn gateway_with<S: StateStore>(
    scripts: Vec<(&'static str, Script)>,
    fire: bool,
    store: S,
) -> (Gateway<FakeHttp, TestClock, Lines, S>, Lines) {
    gateway_env(YAML, &test_env, scripts, fire, store)
}

/// The test secrets every test config reads, by variable.
fn test_env(k: &str) -> Option<String> {
    let v = match k {
        "OA_KEY" => "sk-oa-SECRET-0123456789",
        "AN_KEY" => "sk-an-SECRET-0123456789",
        "G_KEY" => "g-SECRET-0123456789",
        "Q_KEY" => "q-SECRET-0123456789",
        "AWS_ACCESS_KEY_ID" => "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY" => "aws-SECRET-wJalrXUtnFEMI",
        "GATEWAY_PROXY_KEY" => "proxy-key-123",
        _ => return None,
    };
    Some(v.to_owned())
}

/// A gateway on `yaml` with the test secrets, upstreams scripted by host, on the memory store
/// (`fire`: every timer fires at once).
fn gateway_on(yaml: &str, scripts: Vec<(&'static str, Script)>, fire: bool) -> (Gw, Lines) {
    gateway_env(yaml, &test_env, scripts, fire, MemoryStore::new())
}

/// [`gateway_on`] with its own variables and store.
fn gateway_env<S: StateStore>(
    yaml: &str,
    env: &dyn Fn(&str) -> Option<String>,
    scripts: Vec<(&'static str, Script)>,
    fire: bool,
    store: S,
) -> (Gateway<FakeHttp, TestClock, Lines, S>, Lines) {
    let cfg = Config::load(yaml, "t.yaml", env).unwrap();
    let http = FakeHttp {
        by_host: scripts.into_iter().collect(),
        ..FakeHttp::default()
    };
    let lines = Lines::default();
    (
        Gateway::new(cfg, http, TestClock { fire }, lines.clone(), store),
        lines,
    )
}

fn post(path: &str, body: Value) -> Request<Bytes> {
    Request::builder()
        .method("POST")
        .uri(path)
        .header("authorization", "Bearer proxy-key-123")
        .body(Bytes::from(body.to_string()))
        .unwrap()
}

fn run<H: gw_ports::HttpClient, S: StateStore>(
    g: &Gateway<H, TestClock, Lines, S>,
    req: Request<Bytes>,
) -> (StatusCode, HeaderMap, String) {
    block_on(async {
        let h = g.handle(req, "rid-1".into()).await;
        let (parts, body) = h.response.into_parts();
        let chunks: Vec<Bytes> = body.collect().await;
        h.after.await;
        let all: Vec<u8> = chunks.concat();
        (parts.status, parts.headers, String::from_utf8(all).unwrap())
    })
}

fn last_log(l: &Lines) -> Value {
    serde_json::from_str(l.0.lock().unwrap().last().unwrap()).unwrap()
}

const OAI_STREAM: &[&str] = &[
    "data: {\"id\":\"c1\",\"model\":\"gpt-x\",\"created\":1,\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n",
    "data: {\"id\":\"c1\",\"model\":\"gpt-x\",\"created\":1,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"id\":\"c1\",\"model\":\"gpt-x\",\"created\":1,\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n",
    "data: [DONE]\n\n",
];

#[test]
fn fallback_skips_unreachable_and_unconfigured_targets() {
    let (g, lines) = gateway(vec![("oa", Script::Sse(OAI_STREAM.to_vec()))], false);
    let (status, headers, body) = run(
        &g,
        post(
            "/v1/chat/completions",
            json!({"model": "chain", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        ),
    );
    assert_eq!(status, 200);
    assert_eq!(headers["x-request-id"], "rid-1");
    assert!(body.contains("\"content\":\"Hel\"") && body.ends_with("data: [DONE]\n\n"));
    assert!(
        !body.contains("\"usage\":{"),
        "the client did not ask for usage: {body}"
    );
    let log = last_log(&lines);
    let classes: Vec<&str> = log["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["error_class"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(classes, ["connect", "not_configured", "ok"]);
    assert_eq!(
        (
            log["provider"].as_str(),
            log["fast_path"].as_bool(),
            log["outcome"].as_str()
        ),
        (Some("oa"), Some(true), Some("ok"))
    );
    assert_eq!(
        log["usage"]["input"], 5,
        "usage read on the side of the fast path"
    );
    let seen = g.inner.http.seen.lock().unwrap();
    let (url, h, b) = seen.last().unwrap();
    assert_eq!(url, "http://oa/chat/completions");
    assert_eq!(h["authorization"], "Bearer sk-oa-SECRET-0123456789");
    assert_eq!(b["model"], "gpt-x");
    assert_eq!(b["stream_options"], json!({"include_usage": true}));
}

#[test]
fn openai_client_to_anthropic_upstream_streams_translated() {
    let up = vec![
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":9}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ];
    let (g, lines) = gateway(vec![("an", Script::Sse(up))], false);
    let (status, _, body) = run(
        &g,
        post(
            "/v1/chat/completions",
            json!({"model": "to-claude", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]}),
        ),
    );
    assert_eq!(status, 200);
    assert!(body.contains("\"content\":\"Hi\""));
    assert!(body.contains("\"finish_reason\":\"stop\""));
    assert!(
        body.contains("\"prompt_tokens\":9,\"completion_tokens\":3"),
        "{body}"
    );
    let log = last_log(&lines);
    assert_eq!(
        (log["fast_path"].as_bool(), log["usage"]["output"].as_u64()),
        (Some(false), Some(3))
    );
    let seen = g.inner.http.seen.lock().unwrap();
    let (url, h, b) = &seen[0];
    assert_eq!(url, "http://an/v1/messages");
    assert_eq!(h["x-api-key"], "sk-an-SECRET-0123456789");
    assert_eq!(h["anthropic-version"], "2023-06-01");
    assert_eq!(b["max_tokens"], 4096);
}

#[test]
fn client_errors_do_not_fail_over_and_server_errors_do() {
    let (g, lines) = gateway(
        vec![
            (
                "oa",
                Script::Status(
                    400,
                    r#"{"error":{"message":"bad thing","type":"invalid_request_error"}}"#,
                ),
            ),
            ("an", Script::Sse(vec![])),
        ],
        false,
    );
    let (status, _, body) = run(
        &g,
        post(
            "/v1/messages",
            json!({"model": "strict", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        ),
    );
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["type"], "error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bad thing")
    );
    assert_eq!(last_log(&lines)["attempts"].as_array().unwrap().len(), 1);

    let ok = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"fine"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}"#;
    let (g, lines) = gateway(
        vec![
            ("oa", Script::Status(503, "overloaded")),
            ("an", Script::Status(200, ok)),
        ],
        false,
    );
    let (status, _, body) = run(
        &g,
        post(
            "/v1/chat/completions",
            json!({"model": "strict", "messages": [{"role": "user", "content": "hi"}]}),
        ),
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "fine");
    assert_eq!(last_log(&lines)["attempts"][0]["status"], 503);
}

#[test]
fn timeouts_fail_over_and_report_504() {
    let (g, lines) = gateway(vec![("oa", Script::Hang), ("an", Script::Hang)], true);
    let (status, _, body) = run(
        &g,
        post(
            "/v1/chat/completions",
            json!({"model": "strict", "messages": [{"role": "user", "content": "hi"}]}),
        ),
    );
    assert_eq!(status, 504);
    assert!(
        body.contains("all 2 targets failed") && body.contains("did not answer within"),
        "{body}"
    );
    let log = last_log(&lines);
    assert_eq!(log["attempts"][1]["error_class"], "timeout");
}

#[test]
fn a_stream_that_breaks_after_the_first_byte_ends_with_an_error_event() {
    let (g, lines) = gateway(
        vec![("oa", Script::SseThenBreak(OAI_STREAM[..1].to_vec()))],
        false,
    );
    let (status, _, body) = run(
        &g,
        post(
            "/v1/messages",
            json!({"model": "gpt-x", "stream": true, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        ),
    );
    assert_eq!(status, 200);
    assert!(body.starts_with("event: message_start"));
    assert!(
        body.contains("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\""),
        "{body}"
    );
    assert_eq!(last_log(&lines)["outcome"], "upstream_incomplete");
}

#[test]
fn a_burst_handed_over_a_chunk_at_a_time_goes_out_in_two_writes() {
    // As hyper's client delivers a stream it read at once: one chunk per executor turn. The
    // relay writes the opening event at once, then lets the client run and writes the rest of
    // the burst in one go, not once per event, on both paths.
    for path in ["/v1/chat/completions", "/v1/messages"] {
        let script = Script::SseHandedOver(OAI_STREAM.to_vec());
        let (g, lines) = gateway(vec![("oa", script)], false);
        let mut req = post(
            path,
            json!({"model": "gpt-x", "stream": true, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        );
        req.headers_mut()
            .insert("x-api-key", http::HeaderValue::from_static("proxy-key-123"));
        let writes: Vec<Bytes> = block_on(async {
            let h = g.handle(req, "rid-1".into()).await;
            let chunks = h.response.into_body().collect().await;
            h.after.await;
            chunks
        });
        assert_eq!(writes.len(), 2, "{path}: {} writes", writes.len());
        let (opening, rest) = (
            String::from_utf8_lossy(&writes[0]),
            String::from_utf8_lossy(&writes[1]),
        );
        assert!(
            opening.contains("Hel") && !opening.contains("lo\""),
            "{path}: {opening}"
        );
        assert!(rest.contains("lo\""), "{path}: {rest}");
        assert_eq!(last_log(&lines)["outcome"], "ok", "{path}");
    }
}

#[test]
fn a_steady_stream_is_not_held_back_past_the_turn_budget() {
    // 200 events handed over one turn pair each: no write waits through more than MAX_TURNS
    // (128) turns, so a write holds at most 65 of them (64 waited for, one ready) and a steady
    // upstream keeps flowing. The usage-only chunk is dropped (the client did not ask for it).
    const MID: &str = "data: {\"id\":\"c1\",\"model\":\"gpt-x\",\"created\":1,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n";
    let mut events = vec![OAI_STREAM[0]];
    events.extend(std::iter::repeat_n(MID, 200));
    events.extend_from_slice(&OAI_STREAM[1..]);
    let (g, _) = gateway(vec![("oa", Script::SseHandedOver(events))], false);
    let req = post(
        "/v1/chat/completions",
        json!({"model": "gpt-x", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    let writes: Vec<Bytes> = block_on(async {
        let h = g.handle(req, "rid-1".into()).await;
        h.response.into_body().collect().await
    });
    let per_write: Vec<usize> = writes
        .iter()
        .map(|w| String::from_utf8_lossy(w).matches("data: ").count())
        .collect();
    assert_eq!(per_write.iter().sum::<usize>(), 203, "{per_write:?}");
    assert!(per_write.len() >= 4, "{per_write:?}");
    assert!(per_write.iter().all(|&n| n <= 65), "{per_write:?}");
}

#[test]
fn a_dropped_client_stream_is_logged_as_disconnected() {
    let (g, lines) = gateway(
        vec![("oa", Script::SseThenHang(OAI_STREAM[..2].to_vec()))],
        false,
    );
    block_on(async {
        let resp = g.handle(post("/v1/chat/completions", json!({"model": "gpt-x", "stream": true, "messages": [{"role": "user", "content": "hi"}]})), "r".into()).await;
        let mut body = resp.response.into_body();
        let _first = body.next().await;
        drop(body);
    });
    assert_eq!(last_log(&lines)["outcome"], "client_disconnected");
}

#[test]
fn upstream_keys_never_reach_clients_or_logs() {
    let echo = r#"{"error":{"message":"Incorrect API key provided: sk-oa-SECRET-0123456789","type":"invalid_request_error"}}"#;
    let (g, lines) = gateway(vec![("oa", Script::Status(401, echo))], false);
    let (status, _, body) = run(
        &g,
        post(
            "/v1/chat/completions",
            json!({"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}),
        ),
    );
    assert_eq!(
        status, 502,
        "the gateway's own credential failed: not the client's 401"
    );
    assert!(body.contains("OA_KEY"), "names the variable to fix: {body}");
    assert!(!body.contains("SECRET"));
    assert!(
        lines
            .0
            .lock()
            .unwrap()
            .iter()
            .all(|l| !l.contains("SECRET") && !l.contains("proxy-key-123"))
    );
}

#[test]
fn auth_and_bad_input_answer_in_the_client_format() {
    let (g, _) = gateway(vec![], false);
    let mut req = post("/v1/messages", json!({}));
    req.headers_mut()
        .insert("authorization", HeaderValue::from_static("Bearer wrong"));
    let (status, _, body) = run(&g, req);
    assert_eq!(status, 401);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["type"],
        "authentication_error"
    );
    let (status, _, body) = run(
        &g,
        post(
            "/v1/chat/completions",
            json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
        ),
    );
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        "model_not_found"
    );
    let (status, _, body) = run(
        &g,
        post(
            "/v1/chat/completions",
            json!({"model": "nokey/x", "messages": [{"role": "user", "content": "x"}]}),
        ),
    );
    assert_eq!(status, 503);
    assert!(body.contains("NOKEY_KEY"));
}

#[test]
fn count_tokens_estimates_for_non_anthropic_targets() {
    let (g, lines) = gateway(vec![], false);
    let (status, headers, body) = run(
        &g,
        post(
            "/v1/messages/count_tokens",
            json!({"model": "gpt-x", "messages": [{"role": "user", "content": "a".repeat(400)}]}),
        ),
    );
    assert_eq!(status, 200);
    assert_eq!(headers["x-gateway-token-count"], "estimate");
    let n = serde_json::from_str::<Value>(&body).unwrap()["input_tokens"]
        .as_u64()
        .unwrap();
    assert!((100..=120).contains(&n), "{n}");
    assert!(g.inner.http.seen.lock().unwrap().is_empty());
    assert_eq!(last_log(&lines)["outcome"], "ok");
}

#[test]
fn a_client_leaving_after_the_end_marker_is_a_complete_request() {
    for (model, script) in [
        ("gpt-x", OAI_STREAM.to_vec()),
        (
            "to-claude",
            vec![
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1}}}\n\n",
                "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
            ],
        ),
    ] {
        let (g, lines) = gateway(
            vec![
                ("oa", Script::SseThenHang(script.clone())),
                ("an", Script::SseThenHang(script)),
            ],
            false,
        );
        block_on(async {
            let req = post(
                "/v1/chat/completions",
                json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
            );
            let mut body = g.handle(req, "r".into()).await.response.into_body();
            let mut seen = Vec::new();
            while !String::from_utf8_lossy(&seen).contains("[DONE]") {
                seen.extend_from_slice(&body.next().await.unwrap());
            }
            drop(body); // the upstream never sent EOF
        });
        assert_eq!(last_log(&lines)["outcome"], "ok", "{model}");
    }
}

fn chat(model: &str) -> Request<Bytes> {
    post(
        "/v1/chat/completions",
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
    )
}

mod admin;
mod budgets;
mod gemini;
mod hardening;
mod limits;
mod pools;
mod responses;
mod seam;
mod state;
