//! Hostile clients and upstreams: the body is read only after the key, bounded and whole;
//! garbage from an upstream is never relayed as an answer and counts against its breaker.

use super::*;

/// A request whose body is still arriving: `chunks`, then `end` (pending forever, or an error).
fn streamed_post(
    path: &str,
    key: Option<&str>,
    chunks: Vec<&'static str>,
    end: End,
) -> Request<Body> {
    let items = futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok(Bytes::from_static(c.as_bytes())))
            .collect::<Vec<_>>(),
    );
    let s: ByteStream = match end {
        End::Hang => Box::pin(items.chain(futures_util::stream::pending())),
        End::Break => Box::pin(items.chain(futures_util::stream::iter([Err(
            TransportError::new(
                TransportErrorKind::Body,
                "connection closed before message completed",
            ),
        )]))),
    };
    let mut b = Request::builder().method("POST").uri(path);
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    b.body(Body::Stream(s)).unwrap()
}

enum End {
    Hang,
    Break,
}

fn run_body(g: &Gw, req: Request<Body>) -> (StatusCode, String) {
    block_on(async {
        let h = g.handle_body(req, "rid-1".into()).await;
        let (parts, body) = h.response.into_parts();
        let chunks: Vec<Bytes> = body.collect().await;
        h.after.await;
        (parts.status, String::from_utf8(chunks.concat()).unwrap())
    })
}

#[test]
fn a_request_without_a_valid_key_is_refused_before_its_body_is_read() {
    let (g, _) = gateway(vec![("oa", Script::Sse(OAI_STREAM.to_vec()))], false);
    // The body never completes: reading it would hang the test.
    for key in [None, Some("wrong-key")] {
        let req = streamed_post("/v1/chat/completions", key, vec!["{\"model\":"], End::Hang);
        let (status, body) = run_body(&g, req);
        assert_eq!(status, 401, "{body}");
    }
    let mut req = streamed_post("/v1/messages", None, vec![], End::Hang);
    req.headers_mut()
        .insert("content-length", HeaderValue::from_static("9000000"));
    let (status, body) = run_body(&g, req);
    assert_eq!(status, 401);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["type"],
        "error"
    );
}

#[test]
fn an_announced_oversized_body_is_refused_from_its_headers() {
    let (g, lines) = gateway(vec![], false);
    let mut req = streamed_post(
        "/v1/chat/completions",
        Some("proxy-key-123"),
        vec![],
        End::Hang,
    );
    req.headers_mut()
        .insert("content-length", HeaderValue::from_static("99999999"));
    let (status, body) = run_body(&g, req);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("server.max_body_bytes"));
    assert_eq!(last_log(&lines)["outcome"], "rejected");
}

#[test]
fn a_body_that_breaks_off_is_a_400_and_never_reaches_the_upstream() {
    let (g, _) = gateway(vec![("oa", Script::Sse(OAI_STREAM.to_vec()))], false);
    let req = streamed_post(
        "/v1/chat/completions",
        Some("proxy-key-123"),
        vec![
            "{\"model\":\"gpt-x\",\"messages\":[{\"role\":\"user\",",
            "\"content\":\"hi\"}]",
        ],
        End::Break,
    );
    let (status, body) = run_body(&g, req);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("could not be read whole"), "{body}");
    assert!(g.inner.http.seen.lock().unwrap().is_empty());
}

#[test]
fn a_body_that_stalls_times_out_with_408() {
    let (g, _) = gateway(vec![("oa", Script::Sse(OAI_STREAM.to_vec()))], true);
    let req = streamed_post(
        "/v1/messages",
        Some("proxy-key-123"),
        vec!["{\"model\""],
        End::Hang,
    );
    let (status, body) = run_body(&g, req);
    assert_eq!(status, 408, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["type"], "error", "in the Anthropic client's own shape");
    assert!(body.contains("server.body_read_timeout_ms"));
    assert!(g.inner.http.seen.lock().unwrap().is_empty());
}

#[test]
fn amplifying_bodies_are_refused_with_the_limit_named() {
    let (g, lines) = gateway(vec![("oa", Script::Sse(OAI_STREAM.to_vec()))], false);
    let many: Vec<Value> = (0..10_001)
        .map(|_| json!({"role": "user", "content": "x"}))
        .collect();
    let (s, _, body) = run(
        &g,
        post(
            "/v1/chat/completions",
            json!({"model": "gpt-x", "messages": many}),
        ),
    );
    assert_eq!(s, 400);
    assert!(body.contains("server.max_messages"), "{body}");
    let long = "m".repeat(100_000);
    let (s, _, body) = run(
        &g,
        post(
            "/v1/chat/completions",
            json!({"model": long, "messages": []}),
        ),
    );
    assert_eq!(s, 400);
    assert!(
        body.contains("server.max_model_bytes") && body.len() < 1000,
        "{body}"
    );
    let mut deep = json!("x");
    for _ in 0..100 {
        deep = json!([deep]);
    }
    let (s, _, body) = run(
        &g,
        post(
            "/v1/chat/completions",
            json!({"model": "gpt-x", "messages": [], "metadata": {"d": deep}}),
        ),
    );
    assert_eq!(s, 400);
    assert!(body.contains("server.max_json_depth"), "{body}");
    assert!(g.inner.http.seen.lock().unwrap().is_empty());
    assert!(
        lines.0.lock().unwrap().iter().all(|l| l.len() < 4096),
        "log lines stay short"
    );
}

/// A gateway on `YAML` with `server:` settings in front, over `scripts`.
fn gateway_server(server: &str, scripts: Vec<(&'static str, Script)>) -> (Gw, Lines) {
    gateway_on(&format!("server: {{{server}}}\n{YAML}"), scripts, false)
}

#[test]
fn a_long_model_name_is_cut_in_the_log_line() {
    // Names the operator allows (a raised limit) are still cut in the log.
    let (g, lines) = gateway_server("max_model_bytes: 100000", vec![]);
    let name = format!("nosuch-{}", "é".repeat(5000));
    let (s, _, body) = run(
        &g,
        post(
            "/v1/chat/completions",
            json!({"model": name, "messages": [{"role": "user", "content": "x"}]}),
        ),
    );
    assert_eq!(s, 404, "{body}");
    let logged = last_log(&lines)["model"].as_str().unwrap().to_owned();
    assert!(
        logged.len() <= 256 + "…".len() && logged.ends_with('…'),
        "{logged}"
    );
}

#[test]
fn a_fast_path_200_that_is_not_json_is_a_502_and_a_breaker_failure() {
    for garbage in [
        "<html><body>Bad gateway</body></html>",
        "{\"id\":\"x\",\"choices\":[",
        "",
    ] {
        let (g, lines) = gateway(vec![("oa", Script::Status(200, garbage))], false);
        for _ in 0..2 {
            let (s, _, body) = run(&g, chat("gpt-x"));
            assert_eq!(s, 502, "{garbage}: {body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("unreadable answer")
            );
            assert_eq!(last_log(&lines)["outcome"], "error");
        }
        let (s, _, body) = run(&g, chat("gpt-x"));
        assert_eq!(s, 503, "two garbage answers opened the breaker: {body}");
    }
}

#[test]
fn a_translated_200_that_does_not_decode_is_a_breaker_failure_too() {
    let (g, _) = gateway(vec![("an", Script::Status(200, "<html></html>"))], false);
    for _ in 0..2 {
        assert_eq!(run(&g, chat("to-claude")).0, 502);
    }
    assert_eq!(run(&g, chat("to-claude")).0, 503);
}

fn streamed(model: &str) -> Request<Bytes> {
    post(
        "/v1/chat/completions",
        json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
}

#[test]
fn a_malformed_fast_path_event_ends_the_stream_with_an_error_and_counts_as_a_failure() {
    let script = Script::Sse(vec![
        OAI_STREAM[0],
        "data: <html>not json</html>\n\n",
        OAI_STREAM[1],
        "data: [DONE]\n\n",
    ]);
    let (g, lines) = gateway(vec![("oa", script)], false);
    for _ in 0..2 {
        let (s, _, body) = run(&g, streamed("gpt-x"));
        assert_eq!(s, 200);
        assert!(
            body.contains("Hel"),
            "events before the bad one are relayed: {body}"
        );
        assert!(body.contains("malformed stream event"), "{body}");
        assert!(
            !body.contains("[DONE]") && !body.contains("<html>"),
            "{body}"
        );
        assert_ne!(last_log(&lines)["outcome"], "ok");
    }
    assert_eq!(
        run(&g, streamed("gpt-x")).0,
        503,
        "the breaker counted both"
    );
}

#[test]
fn an_anthropic_fast_path_event_that_is_not_json_is_refused() {
    let script = Script::Sse(vec![
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"usage\":{\"input_tokens\":1,\"output_tokens\":0}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ]);
    let (g, lines) = gateway(vec![("an", script)], false);
    let mut req = post(
        "/v1/messages",
        json!({"model": "claude-x", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    req.headers_mut()
        .insert("x-api-key", HeaderValue::from_static("proxy-key-123"));
    let (s, _, body) = run(&g, req);
    assert_eq!(s, 200);
    assert!(
        body.contains("event: error") && !body.contains("message_stop"),
        "{body}"
    );
    assert_ne!(last_log(&lines)["outcome"], "ok");
}

#[test]
fn an_error_event_echoing_the_key_reaches_the_client_scrubbed() {
    // Translated: an Anthropic error event mid-stream, to an OpenAI client.
    let script = Script::Sse(vec![
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"usage\":{\"input_tokens\":1,\"output_tokens\":0}}}\n\n",
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"key sk-an-SECRET-0123456789 is overloaded\"}}\n\n",
    ]);
    let (g, _) = gateway(vec![("an", script)], false);
    let (s, _, body) = run(&g, streamed("to-claude"));
    assert_eq!(s, 200);
    assert!(
        body.contains("is overloaded") && !body.contains("SECRET"),
        "{body}"
    );
    // Same format: the error event is relayed, scrubbed.
    let script = Script::Sse(vec![
        OAI_STREAM[0],
        "data: {\"error\":{\"message\":\"key sk-oa-SECRET-0123456789 was refused\",\"type\":\"server_error\"}}\n\n",
    ]);
    let (g, _) = gateway(vec![("oa", script)], false);
    let (s, _, body) = run(&g, streamed("gpt-x"));
    assert_eq!(s, 200);
    assert!(
        body.contains("was refused") && !body.contains("SECRET"),
        "{body}"
    );
}

#[test]
fn an_endless_upstream_line_ends_the_stream_at_the_limit() {
    // 1 KiB chunks of one line that never ends, then the upstream hangs: the relay must stop
    // on its own, at the limit, not wait for a newline.
    let kib: &'static str = Box::leak("a".repeat(1024).into_boxed_str());
    let mut chunks = vec![OAI_STREAM[0], "data: {\"x\":\""];
    chunks.extend(std::iter::repeat_n(kib, 64));
    for translated in [false, true] {
        let script = Script::SseThenHang(chunks.clone());
        let (g, lines) = gateway_server("max_upstream_event_bytes: 4096", vec![("oa", script)]);
        let req = if translated {
            let mut r = post(
                "/v1/messages",
                json!({"model": "gpt-x", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
            );
            r.headers_mut()
                .insert("x-api-key", HeaderValue::from_static("proxy-key-123"));
            r
        } else {
            streamed("gpt-x")
        };
        let (s, _, body) = run(&g, req);
        assert_eq!(s, 200);
        assert!(body.contains("server.max_upstream_event_bytes"), "{body}");
        assert!(
            body.len() < 8192,
            "the long line is not relayed: {} bytes",
            body.len()
        );
        assert_eq!(last_log(&lines)["outcome"], "upstream_incomplete");
    }
}

#[test]
fn a_client_leaving_during_an_attempt_is_logged_with_the_cancelled_attempt() {
    let (g, lines) = gateway(vec![("oa", Script::Hang)], false);
    block_on(async {
        let fut = g.handle(chat("gpt-x"), "rid-gone".into());
        let mut fut = Box::pin(fut);
        // Drive it until it waits on the upstream, then drop it as a server does when the
        // client's connection closes.
        assert!(futures_util::FutureExt::now_or_never(&mut fut).is_none());
        drop(fut);
    });
    let log = last_log(&lines);
    assert_eq!(log["outcome"], "client_disconnected");
    assert_eq!(log["status"], 499);
    assert_eq!(log["attempts"][0]["provider"], "oa");
    assert_eq!(log["attempts"][0]["error_class"], "cancelled");
}

#[test]
fn health_details_need_a_key() {
    let (g, _) = gateway(vec![], false);
    let get = |key: Option<&str>| {
        let mut b = Request::builder().method("GET").uri("/health");
        if let Some(k) = key {
            b = b.header("x-api-key", k);
        }
        b.body(Bytes::new()).unwrap()
    };
    let (s, _, body) = run(&g, get(None));
    assert_eq!(s, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"status": "ok"})
    );
    let (_, _, body) = run(&g, get(Some("not-the-key")));
    assert!(!body.contains("providers"));
    let (_, _, body) = run(&g, get(Some("proxy-key-123")));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["providers"]["nokey"]["missing"], "NOKEY_KEY");
}
