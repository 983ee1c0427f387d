//! Breakers and the state store as the engine uses them: failures open a target's breaker,
//! a store outage fails open, and exactly one store call before the upstream and one after.

use super::*;

#[test]
fn repeated_failures_open_the_breaker_and_the_target_is_skipped() {
    let ok = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"fine"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}"#;
    let (g, lines) = gateway(
        vec![
            ("oa", Script::Status(500, "boom")),
            ("an", Script::Status(200, ok)),
        ],
        false,
    );
    for _ in 0..2 {
        assert_eq!(run(&g, chat("strict")).0, 200, "falls over to anthropic");
    }
    let calls_before = g.inner.http.seen.lock().unwrap().len();
    assert_eq!(run(&g, chat("strict")).0, 200);
    let seen = g.inner.http.seen.lock().unwrap();
    assert_eq!(
        seen.len(),
        calls_before + 1,
        "the open target was not called"
    );
    assert!(seen.last().unwrap().0.starts_with("http://an/"));
    assert_eq!(
        last_log(&lines)["attempts"][0]["error_class"],
        "circuit_open"
    );
}

#[test]
fn every_target_open_gives_503_with_retry_after_in_the_client_format() {
    let (g, lines) = gateway(vec![("oa", Script::Status(503, "down"))], false);
    for _ in 0..2 {
        assert_eq!(run(&g, chat("gpt-x")).0, 503);
    }
    let mut req = post(
        "/v1/messages",
        json!({"model": "gpt-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    );
    req.headers_mut()
        .insert("x-api-key", HeaderValue::from_static("proxy-key-123"));
    let (status, headers, body) = run(&g, req);
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "30");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("circuit open")
    );
    assert_eq!(
        last_log(&lines)["attempts"][0]["error_class"],
        "circuit_open"
    );
}

#[test]
fn a_stream_that_breaks_counts_as_a_failure_and_a_clean_one_does_not() {
    let streamed = || {
        post(
            "/v1/chat/completions",
            json!({"model": "gpt-x", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
    };
    let (g, _) = gateway(
        vec![("oa", Script::SseThenBreak(OAI_STREAM[..1].to_vec()))],
        false,
    );
    run(&g, streamed());
    run(&g, streamed());
    let (status, _, body) = run(&g, streamed());
    assert_eq!(status, 503, "two broken streams opened the breaker: {body}");

    let (g, _) = gateway(vec![("oa", Script::Sse(OAI_STREAM.to_vec()))], false);
    for _ in 0..3 {
        assert_eq!(run(&g, streamed()).0, 200);
    }
}

#[test]
fn a_store_outage_fails_open_and_is_logged() {
    let (g, lines) = gateway_with(
        vec![("oa", Script::Sse(OAI_STREAM.to_vec()))],
        false,
        BrokenStore,
    );
    let streamed = post(
        "/v1/chat/completions",
        json!({"model": "gpt-x", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(run(&g, streamed).0, 200);
    let logs = lines.0.lock().unwrap();
    let req_line = logs
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v.get("request_id").is_some())
        .unwrap();
    assert!(
        req_line["store_error"]
            .as_str()
            .unwrap()
            .contains("connection refused")
    );
    assert!(
        logs.iter().any(|l| l.contains("state_store_error")),
        "the deferred write failure is logged too"
    );
}

#[test]
fn no_configured_proxy_key_refuses_every_request_and_says_how_to_set_one() {
    let env = |k: &str| match k {
        "OA_KEY" => Some("sk-oa-SECRET-0123456789".to_owned()),
        _ => None,
    };
    let cfg = Config::load(YAML, "t.yaml", &env).unwrap();
    assert!(cfg.keys.is_empty());
    let g = Gateway::new(
        cfg,
        FakeHttp::default(),
        TestClock { fire: false },
        Lines::default(),
        MemoryStore::new(),
    );
    // Even an empty presented key must not match an empty key set.
    let mut req = post(
        "/v1/messages",
        json!({"model": "claude-x", "max_tokens": 5, "messages": []}),
    );
    req.headers_mut()
        .insert("authorization", HeaderValue::from_static("Bearer "));
    let (status, _, body) = run(&g, req);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["type"], "error");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("GATEWAY_PROXY_KEY"), "{msg}");
    // The OpenAI shape too, with a code a client can act on; /health still answers.
    let (status, _, body) = run(
        &g,
        post(
            "/v1/chat/completions",
            json!({"model": "gpt-x", "messages": []}),
        ),
    );
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "proxy_key_not_configured");
    let health = Request::get("/health").body(Bytes::new()).unwrap();
    assert_eq!(run(&g, health).0, StatusCode::OK);
}

/// Records which commands reach the store, in order.
#[derive(Clone, Default)]
struct CountingStore {
    inner: std::sync::Arc<MemoryStore>,
    seen: std::sync::Arc<Mutex<Vec<&'static str>>>,
}

impl StateStore for CountingStore {
    async fn apply(
        &self,
        key: &str,
        cmd: &gw_state::Command,
        now: u64,
    ) -> Result<Reply, StoreError> {
        self.seen.lock().unwrap().push(match cmd {
            gw_state::Command::Admit(_) => "admit",
            gw_state::Command::Record { .. } => "record",
            gw_state::Command::Add { .. } => "add",
            gw_state::Command::Cooldown { .. } => "cooldown",
            gw_state::Command::Once { .. } => "once",
            gw_state::Command::Peek { .. } => "peek",
            gw_state::Command::Inspect => "inspect",
            gw_state::Command::Reserve(_) => "reserve",
            gw_state::Command::Settle(_) => "settle",
            gw_state::Command::Book(_) => "book",
            gw_state::Command::Ledger { .. } => "ledger",
        });
        self.inner.apply(key, cmd, now).await
    }
}

#[test]
fn one_store_round_trip_before_the_upstream_and_one_after_the_response() {
    for stream in [false, true] {
        let store = CountingStore::default();
        let script = if stream {
            Script::Sse(OAI_STREAM.to_vec())
        } else {
            Script::Status(
                200,
                r#"{"id":"c1","object":"chat.completion","created":1,"model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
            )
        };
        let (g, _) = gateway_with(vec![("oa", script)], false, store.clone());
        let req = post(
            "/v1/chat/completions",
            json!({"model": "gpt-x", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}),
        );
        block_on(async {
            let h = g.handle(req, "rid".into()).await;
            assert_eq!(h.response.status(), 200);
            let body: Vec<Bytes> = h.response.into_body().collect().await;
            assert!(!body.is_empty());
            // The whole response is out and only the admission has touched the store.
            assert_eq!(*store.seen.lock().unwrap(), ["admit"], "stream={stream}");
            h.after.await;
        });
        // After it: the outcome, and the answer's spend for the day, the month and all time.
        assert_eq!(
            *store.seen.lock().unwrap(),
            ["admit", "record", "book", "book", "book"],
            "stream={stream}"
        );
    }
}

/// A store that never answers (a black-holed DynamoDB endpoint).
struct HangingStore;

impl StateStore for HangingStore {
    async fn apply(&self, _: &str, _: &gw_state::Command, _: u64) -> Result<Reply, StoreError> {
        futures_util::future::pending().await
    }
}

#[test]
fn a_store_that_never_answers_is_timed_out_and_traffic_flows() {
    // `fire`: every timer fires at once, so the store's time limit passes immediately.
    let (g, lines) = gateway_with(
        vec![("oa", Script::Sse(OAI_STREAM.to_vec()))],
        true,
        HangingStore,
    );
    let streamed = post(
        "/v1/chat/completions",
        json!({"model": "gpt-x", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    let (status, _, body) = run(&g, streamed);
    assert_eq!(status, 200);
    assert!(body.contains("Hel") && body.contains("[DONE]"), "{body}");
    let logs = lines.0.lock().unwrap();
    assert!(
        logs.iter().any(|l| l.contains("timeouts.store_ms")),
        "the timeout is logged: {logs:?}"
    );
}

#[test]
fn a_refused_request_between_ledger_flushes_leaves_no_deferred_work() {
    let store = CountingStore::default();
    let ok = r#"{"id":"c1","object":"chat.completion","created":1,"model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;
    let (g, _) = gateway_with(vec![("oa", Script::Status(200, ok))], false, store.clone());
    g.batch_ledger(60_000);
    block_on(async {
        // An answer starts the ledger's batch (its booking is not due for a minute).
        let req = json!({"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]});
        let h = g
            .handle(post("/v1/chat/completions", req), "r1".into())
            .await;
        let _: Vec<Bytes> = h.response.into_body().collect().await;
        h.after.await;
        assert_eq!(*store.seen.lock().unwrap(), ["admit", "record"]);
        store.seen.lock().unwrap().clear();
        // A request refused before any attempt has nothing to write: its deferred work is done.
        let h = g
            .handle(
                post("/v1/chat/completions", json!({"model": "gpt-x"})),
                "r2".into(),
            )
            .await;
        assert_eq!(h.response.status(), 400);
        assert!(futures_util::FutureExt::now_or_never(h.after).is_some());
    });
    assert!(store.seen.lock().unwrap().is_empty());
}
