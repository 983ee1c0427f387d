//! The provider seam as the engine uses it: URL templates with query strings, every signer,
//! format-required headers, and the error story (whose fault, failover, breaker).

use super::*;

const ANSWER: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;

#[test]
fn url_templates_and_signers_shape_the_upstream_request() {
    let yaml = "
providers:
  az:
    format: openai
    base_url: http://az/base
    auth: {type: query, name: key, env: [Q_KEY]}
    paths: {chat: '/deployments/{model}/chat/completions?api-version={v}'}
    params: {v: '2024-10-21'}
  aws:
    format: openai
    base_url: http://aws
    auth: {type: aws_sigv4, service: bedrock, region: eu-west-1}
    paths: {chat: '/model/{model}/invoke'}
  an: {format: anthropic, base_url: 'http://an', auth: {type: header, name: x-api-key, env: [AN_KEY]}}
";
    let (g, _) = gateway_on(
        yaml,
        vec![
            ("az", Script::Status(200, ANSWER)),
            ("aws", Script::Status(200, ANSWER)),
        ],
        false,
    );
    assert_eq!(run(&g, chat("az/my deploy")).0, 200);
    assert_eq!(run(&g, chat("aws/us.meta.llama3:0")).0, 200);
    let seen = g.inner.http.seen.lock().unwrap();
    assert_eq!(
        seen[0].0,
        "http://az/base/deployments/my%20deploy/chat/completions?api-version=2024-10-21&key=q-SECRET-0123456789"
    );
    assert!(
        seen[0].1.get("authorization").is_none(),
        "the proxy key never goes upstream"
    );
    assert_eq!(seen[1].0, "http://aws/model/us.meta.llama3%3A0/invoke");
    let auth = seen[1].1["authorization"].to_str().unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
        "{auth}"
    );
    assert!(auth.contains("/eu-west-1/bedrock/aws4_request"), "{auth}");
    assert!(seen[1].1.contains_key("x-amz-date"));
}

#[test]
fn an_anthropic_upstream_gets_its_required_version_header() {
    let yaml = "
providers:
  an: {format: anthropic, base_url: 'http://an', auth: {type: header, name: x-api-key, env: [AN_KEY]}}
";
    let ok = r#"{"id":"m","type":"message","role":"assistant","model":"c","content":[{"type":"text","text":"x"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}"#;
    let (g, _) = gateway_on(yaml, vec![("an", Script::Status(200, ok))], false);
    assert_eq!(run(&g, chat("an/claude-x")).0, 200);
    let seen = g.inner.http.seen.lock().unwrap();
    assert_eq!(
        seen[0].1["anthropic-version"], "2023-06-01",
        "not in the config, still sent"
    );
    assert_eq!(seen[0].1["x-api-key"], "sk-an-SECRET-0123456789");
}

#[test]
fn a_refused_gateway_credential_fails_over_and_counts_against_its_breaker() {
    let ok = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"fine"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}"#;
    let (g, lines) = gateway(
        vec![
            (
                "oa",
                Script::Status(401, r#"{"error":{"message":"Incorrect API key"}}"#),
            ),
            ("an", Script::Status(200, ok)),
        ],
        false,
    );
    for _ in 0..2 {
        let (s, _, body) = run(&g, chat("strict"));
        assert_eq!(s, 200, "another target serves it: {body}");
        let log = last_log(&lines);
        assert_eq!(log["attempts"][0]["error_class"], "upstream_auth");
        assert!(
            log["attempts"][0]["error"]
                .as_str()
                .unwrap()
                .contains("check OA_KEY")
        );
    }
    // Two refusals opened oa's breaker (consecutive_failures: 2): it is skipped now.
    assert_eq!(run(&g, chat("strict")).0, 200);
    assert_eq!(
        last_log(&lines)["attempts"][0]["error_class"],
        "circuit_open"
    );

    // Alone, the client gets a 502 that names the variable, never a 401 about its proxy key.
    let (g, _) = gateway(vec![("oa", Script::Status(403, "{}"))], false);
    let (s, _, body) = run(&g, chat("gpt-x"));
    assert_eq!(s, 502);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "upstream_auth_failed");
    run(&g, chat("gpt-x"));
    assert_eq!(
        run(&g, chat("gpt-x")).0,
        503,
        "the credential's breaker opened"
    );
}

#[test]
fn a_client_error_neither_fails_over_nor_counts_against_the_target() {
    let (g, _) = gateway(
        vec![("oa", Script::Status(400, r#"{"error":{"message":"bad"}}"#))],
        false,
    );
    for _ in 0..3 {
        assert_eq!(run(&g, chat("strict")).0, 400);
    }
    assert_eq!(
        g.inner.http.seen.lock().unwrap().len(),
        3,
        "no failover, breaker closed"
    );
}

#[test]
fn a_rate_limited_target_alone_answers_429() {
    let (g, _) = gateway(vec![("oa", Script::Status(429, "{}"))], false);
    // The scripted upstream sends no header; the decoder still maps 429 and its class.
    let (s, _, _) = run(&g, chat("gpt-x"));
    assert_eq!(s, 429);
}

#[test]
fn a_bedrock_converse_stream_reaches_an_openai_client() {
    use gw_codec::eventstream::encode;
    let yaml = "
providers:
  br:
    format: bedrock
    base_url: http://br
    auth: {type: aws_sigv4, service: bedrock, region: us-east-1}
";
    let ev = |ty: &str, payload: &str| {
        encode(
            &[
                (":event-type", ty),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            payload.as_bytes(),
        )
    };
    let stream = [
        ev("messageStart", r#"{"role":"assistant","p":"abc"}"#),
        ev("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#),
        ev("contentBlockStop", r#"{"contentBlockIndex":0}"#),
        ev("contentBlockStart", r#"{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tu1","name":"f"}}}"#),
        ev("contentBlockDelta", r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"a\":1}"}}}"#),
        ev("contentBlockStop", r#"{"contentBlockIndex":1}"#),
        ev("messageStop", r#"{"stopReason":"tool_use"}"#),
        ev("metadata", r#"{"usage":{"inputTokens":7,"outputTokens":3,"totalTokens":10},"metrics":{"latencyMs":5}}"#),
    ]
    .concat();
    // Split mid-message: the framer must reassemble.
    let (a, b) = stream.split_at(37);
    let (g, lines) = gateway_on(
        yaml,
        vec![("br", Script::Binary(vec![a.to_vec(), b.to_vec()]))],
        false,
    );
    let req = post(
        "/v1/chat/completions",
        json!({"model": "br/us.anthropic.claude-3-7-sonnet-20250219-v1:0", "stream": true,
               "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]}),
    );
    let (s, _, body) = run(&g, req);
    assert_eq!(s, 200, "{body}");
    let seen = g.inner.http.seen.lock().unwrap();
    assert_eq!(
        seen[0].0,
        "http://br/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse-stream"
    );
    assert_eq!(seen[0].1["accept"], "application/vnd.amazon.eventstream");
    assert!(
        seen[0].1["authorization"]
            .to_str()
            .unwrap()
            .contains("/us-east-1/bedrock/aws4_request")
    );
    assert_eq!(
        seen[0].2["inferenceConfig"]["maxTokens"], 4096,
        "Converse needs a limit"
    );
    assert!(body.contains("\"content\":\"Hi\""), "{body}");
    assert!(
        body.contains("\"id\":\"tu1\"") && body.contains("tool_calls"),
        "{body}"
    );
    assert!(
        body.contains("\"prompt_tokens\":7"),
        "usage after messageStop still counts: {body}"
    );
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    assert_eq!(last_log(&lines)["outcome"], "ok");

    // A throttling exception inside the stream is an error event for the client, and a failure.
    let bad = [
        ev("messageStart", r#"{"role":"assistant"}"#),
        encode(
            &[
                (":exception-type", "throttlingException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            br#"{"message":"Too many tokens"}"#,
        ),
    ]
    .concat();
    let (g, lines) = gateway_on(yaml, vec![("br", Script::Binary(vec![bad]))], false);
    let req = post(
        "/v1/messages",
        json!({"model": "br/m", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    let mut req = req;
    req.headers_mut()
        .insert("x-api-key", HeaderValue::from_static("proxy-key-123"));
    let (_, _, body) = run(&g, req);
    assert!(
        body.contains("event: error") && body.contains("throttlingException: Too many tokens"),
        "{body}"
    );
    assert_ne!(last_log(&lines)["outcome"], "ok");
}
