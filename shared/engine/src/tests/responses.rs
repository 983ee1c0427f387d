//! The Responses API through the engine: natively to an OpenAI provider that serves it (a byte
//! copy), translated everywhere else, and what only a stored-response provider can do refused.

use super::*;

const RESP_YAML: &str = "
providers:
  oa: {format: openai, base_url: 'http://oa', auth: {type: bearer, env: [OA_KEY]}, paths: {responses: /responses}, models: [gpt-x]}
  an: {format: anthropic, base_url: 'http://an', auth: {type: header, name: x-api-key, env: [AN_KEY]}, models: [claude-x]}
";

fn gw(scripts: Vec<(&'static str, Script)>) -> (Gw, Lines) {
    gateway_on(RESP_YAML, scripts, false)
}

const AN_THINKING: &[&str] = &[
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Let me see.\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCkYIARgCSIG=\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":12}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
];

fn responses(body: Value) -> Request<Bytes> {
    post("/v1/responses", body)
}

#[test]
fn a_responses_stream_translated_from_anthropic_has_the_documented_events_in_order() {
    let (g, lines) = gw(vec![("an", Script::Sse(AN_THINKING.to_vec()))]);
    let (s, headers, body) = run(
        &g,
        responses(
            json!({"model": "claude-x", "instructions": "Be brief.", "input": "hi", "stream": true,
                         "reasoning": {"effort": "low"}, "max_output_tokens": 3000}),
        ),
    );
    assert_eq!(s, 200, "{body}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let done = &events.last().unwrap()["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(
        done["output"][0]["encrypted_content"], "EqQBCkYIARgCSIG=",
        "the signature rides along"
    );
    assert_eq!(done["output"][1]["content"][0]["text"], "Hello");
    assert_eq!(done["usage"]["input_tokens"], 9);
    assert_eq!(done["usage"]["output_tokens"], 12);
    let seen = g.inner.http.seen.lock().unwrap();
    assert_eq!(seen[0].0, "http://an/v1/messages");
    assert_eq!(seen[0].2["system"], "Be brief.");
    assert_eq!(seen[0].2["thinking"]["type"], "enabled");
    assert_eq!(last_log(&lines)["outcome"], "ok");
}

#[test]
fn the_reasoning_item_sent_back_reaches_anthropic_as_signed_thinking() {
    let ok = r#"{"id":"msg_2","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"fine"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}"#;
    let (g, _) = gw(vec![("an", Script::Status(200, ok))]);
    let input = json!([
        {"role": "user", "content": "hi"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Let me see."}], "encrypted_content": "EqQBCkYIARgCSIG="},
        {"type": "function_call", "call_id": "toolu_1", "name": "f", "arguments": "{\"a\":1}"},
        {"type": "function_call_output", "call_id": "toolu_1", "output": "42"}
    ]);
    let (s, _, body) = run(
        &g,
        responses(
            json!({"model": "claude-x", "input": input, "tools": [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}]}),
        ),
    );
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["object"].clone(), v["status"].clone()),
        (json!("response"), json!("completed"))
    );
    assert_eq!(v["output"][0]["content"][0]["text"], "fine");
    let seen = g.inner.http.seen.lock().unwrap();
    let msgs = &seen[0].2["messages"];
    assert_eq!(
        msgs[1]["content"][0],
        json!({"type": "thinking", "thinking": "Let me see.", "signature": "EqQBCkYIARgCSIG="})
    );
    assert_eq!(msgs[1]["content"][1]["type"], "tool_use");
    assert_eq!(msgs[2]["content"][0]["type"], "tool_result");
}

#[test]
fn an_openai_provider_that_serves_responses_gets_the_request_as_it_came() {
    let answer = r#"{"id":"resp_1","object":"response","status":"completed","output":[{"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"hi"}]}],"usage":{"input_tokens":3,"output_tokens":1,"total_tokens":4}}"#;
    let (g, lines) = gw(vec![("oa", Script::Status(200, answer))]);
    let req = json!({"model": "gpt-x", "input": [{"type": "web_search_call", "id": "ws_1", "status": "completed"}, {"role": "user", "content": "hi"}], "store": true, "previous_response_id": "resp_0"});
    let (s, _, body) = run(&g, responses(req.clone()));
    assert_eq!(s, 200, "{body}");
    assert_eq!(body, answer, "a byte copy");
    let seen = g.inner.http.seen.lock().unwrap();
    assert_eq!(seen[0].0, "http://oa/responses");
    assert_eq!(
        seen[0].2, req,
        "items, store and previous_response_id pass unchanged"
    );
    assert_eq!(last_log(&lines)["fast_path"], true);
    assert_eq!(last_log(&lines)["usage"]["input"], 3);
}

#[test]
fn what_only_openai_can_do_is_refused_by_name_on_a_translated_route() {
    let (g, _) = gw(vec![]);
    for (extra, name) in [
        (
            json!({"previous_response_id": "resp_0"}),
            "previous_response_id",
        ),
        (json!({"store": true}), "store"),
    ] {
        let mut body = json!({"model": "claude-x", "input": "hi"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (s, _, out) = run(&g, responses(body));
        assert_eq!(s, 400, "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["error"]["param"], name, "{out}");
    }
    let (s, _, out) = run(
        &g,
        responses(
            json!({"model": "claude-x", "input": [{"type": "web_search_call", "id": "ws_1"}, {"role": "user", "content": "hi"}]}),
        ),
    );
    assert_eq!(s, 400, "{out}");
    assert!(out.contains("web_search_call"), "the item is named: {out}");
    assert!(g.inner.http.seen.lock().unwrap().is_empty());
}
