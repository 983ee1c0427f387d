//! Gemini through the engine: as an upstream (URL per model and stream, key header, signatures
//! carried in call ids) and as a client API (model and stream from the URL, `?key=`, SSE or
//! one JSON array, Google's error shape).

use super::*;

const GEM_YAML: &str = "
providers:
  gem: {format: gemini, base_url: 'http://gem/v1beta', auth: {type: header, name: x-goog-api-key, env: [G_KEY]}, models: [gemini-2.5-flash]}
  oa: {format: openai, base_url: 'http://oa', auth: {type: bearer, env: [OA_KEY]}, models: [gpt-x]}
";

const GEM_SSE: &[&str] = &[
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hel\"}]},\"index\":0}],\"responseId\":\"r1\",\"modelVersion\":\"gemini-2.5-flash\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{\"a\":1}},\"thoughtSignature\":\"c2lnbmF0dXJl\"}]},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":2,\"thoughtsTokenCount\":3},\"responseId\":\"r1\"}\r\n\r\n",
];

fn gw(scripts: Vec<(&'static str, Script)>) -> (Gw, Lines) {
    gateway_on(GEM_YAML, scripts, false)
}

#[test]
fn an_openai_client_streams_from_gemini_with_a_tool_call() {
    let (g, lines) = gw(vec![("gem", Script::Sse(GEM_SSE.to_vec()))]);
    let req = post(
        "/v1/chat/completions",
        json!({"model": "gemini-2.5-flash", "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "hi"}]}),
    );
    let (s, headers, body) = run(&g, req);
    assert_eq!(s, 200, "{body}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let seen = g.inner.http.seen.lock().unwrap();
    assert_eq!(
        seen[0].0,
        "http://gem/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(seen[0].1["x-goog-api-key"], "g-SECRET-0123456789");
    assert!(seen[0].2.get("model").is_none());
    assert!(body.contains("\"content\":\"Hel\""), "{body}");
    assert!(
        body.contains("\"finish_reason\":\"tool_calls\""),
        "STOP with a call: {body}"
    );
    assert!(
        body.contains("_gts_c2lnbmF0dXJl"),
        "the signature rides in the call id: {body}"
    );
    assert!(body.contains("\"reasoning_tokens\":3"), "{body}");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    assert_eq!(last_log(&lines)["outcome"], "ok");
}

fn gemini_post(path: &str, body: Value) -> Request<Bytes> {
    Request::builder()
        .method("POST")
        .uri(path)
        .header("x-goog-api-key", "proxy-key-123")
        .body(Bytes::from(body.to_string()))
        .unwrap()
}

const OAI_ANSWER: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":1}}"#;

#[test]
fn a_gemini_client_reaches_an_openai_upstream() {
    let (g, _) = gw(vec![("oa", Script::Status(200, OAI_ANSWER))]);
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "systemInstruction": {"parts": [{"text": "Be brief."}]}});
    let (s, _, out) = run(
        &g,
        gemini_post("/v1beta/models/gpt-x:generateContent", body),
    );
    assert_eq!(s, 200, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["candidates"][0]["content"]["parts"][0]["text"], "hello");
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 4);
    let seen = g.inner.http.seen.lock().unwrap();
    assert_eq!(seen[0].2["model"], "gpt-x", "the model came from the URL");
    assert_eq!(
        seen[0].2["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
}

#[test]
fn a_gemini_client_gets_sse_or_one_json_array() {
    for (query, array) in [("?alt=sse", false), ("", true)] {
        let (g, _) = gw(vec![("gem", Script::Sse(GEM_SSE.to_vec()))]);
        let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
        let path = format!("/v1beta/models/gemini-2.5-flash:streamGenerateContent{query}");
        let (s, headers, out) = run(&g, gemini_post(&path, body));
        assert_eq!(s, 200, "{out}");
        let ct = headers["content-type"].to_str().unwrap();
        if array {
            assert_eq!(ct, "application/json");
            let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
            let chunks = v.as_array().unwrap();
            assert_eq!(
                chunks.last().unwrap()["candidates"][0]["finishReason"],
                "STOP"
            );
            let call = chunks
                .iter()
                .find_map(|c| c["candidates"][0]["content"]["parts"][0].get("functionCall"))
                .unwrap();
            assert_eq!(call["args"], json!({"a": 1}));
        } else {
            assert!(ct.starts_with("text/event-stream"));
            assert_eq!(
                out.as_bytes(),
                GEM_SSE.concat().as_bytes(),
                "same format: a byte copy"
            );
        }
    }
}

#[test]
fn a_gemini_client_may_send_its_key_in_the_query_and_gets_googles_error_shape() {
    let (g, _) = gw(vec![("oa", Script::Status(200, OAI_ANSWER))]);
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let req = |uri: &str| {
        Request::builder()
            .method("POST")
            .uri(uri)
            .body(Bytes::from(body.to_string()))
            .unwrap()
    };
    assert_eq!(
        run(
            &g,
            req("/v1beta/models/gpt-x:generateContent?key=proxy-key-123")
        )
        .0,
        200
    );
    let (s, _, out) = run(&g, req("/v1beta/models/gpt-x:generateContent?key=wrong"));
    assert_eq!(s, 401);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(v["error"]["code"], 401);
    let (s, _, out) = run(
        &g,
        gemini_post("/v1beta/models/nosuch:generateContent", body.clone()),
    );
    assert_eq!(s, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["error"]["status"],
        "NOT_FOUND"
    );
    let (s, _, out) = run(&g, gemini_post("/v1beta/models/gpt-x:countTokens", body));
    assert_eq!(s, 200);
    assert!(
        serde_json::from_str::<Value>(&out).unwrap()["totalTokens"]
            .as_u64()
            .unwrap()
            > 0
    );
}
