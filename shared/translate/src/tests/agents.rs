//! What coding agents send on translated routes: Codex's tool namespaces and hosted-tool offers.

use super::*;

/// The shape Codex 0.171 sends: functions, a namespace of functions, a hosted web search.
fn codex_like(extra: Value) -> ChatRequest {
    let mut body = json!({"model": "claude-sonnet-4-5", "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"type": "function_call", "call_id": "call_1", "namespace": "multi_agent_v1", "name": "close_agent", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "closed"}],
        "tools": [
            {"type": "function", "name": "exec_command", "description": "Run", "parameters": {"type": "object", "properties": {}}},
            {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.", "tools": [
                {"type": "function", "name": "spawn_agent", "description": "Spawn", "parameters": {"type": "object", "properties": {"task": {"type": "string"}}}},
                {"type": "function", "name": "close_agent", "parameters": {"type": "object", "properties": {}}}]},
            {"type": "web_search", "external_web_access": false}],
        "tool_choice": "auto", "stream": true});
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    decode_request(Format::Responses, body.to_string().as_bytes()).unwrap()
}

#[test]
fn codex_namespaces_flatten_upstream_and_split_again_for_the_client() {
    let req = codex_like(json!({}));
    assert_eq!(req.tool_namespaces, ["multi_agent_v1"]);
    let up = to_json(
        encode_request(
            Format::Anthropic,
            &req,
            &opts("claude-sonnet-4-5", "anthropic"),
        )
        .unwrap(),
    );
    let names: Vec<&str> = up["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "exec_command",
            "multi_agent_v1__spawn_agent",
            "multi_agent_v1__close_agent"
        ],
        "web_search left out"
    );
    assert_eq!(up["tools"][1]["description"], "Sub-agents.\n\nSpawn");
    assert_eq!(
        up["messages"][1]["content"][0]["name"], "multi_agent_v1__close_agent",
        "the call in the history"
    );

    // The upstream calls a namespaced function: the client sees its namespace and name again.
    let answer = ChatResponse {
        id: "msg_1".into(),
        model: "claude-sonnet-4-5".into(),
        content: vec![
            Part::ToolUse {
                id: "toolu_1".into(),
                name: "multi_agent_v1__spawn_agent".into(),
                arguments: "{\"task\":\"x\"}".into(),
                cache: None,
            },
            Part::ToolUse {
                id: "toolu_2".into(),
                name: "exec_command".into(),
                arguments: "{}".into(),
                cache: None,
            },
        ],
        stop_reason: StopReason::ToolUse,
        stop_sequence: None,
        usage: Usage::default(),
        created: Some(1),
    };
    let full = to_json(encode_response(Format::Responses, &req, &answer));
    assert_eq!(
        (&full["output"][0]["namespace"], &full["output"][0]["name"]),
        (&json!("multi_agent_v1"), &json!("spawn_agent"))
    );
    assert!(full["output"][1].get("namespace").is_none(), "{full}");
    assert_eq!(full["output"][1]["name"], "exec_command");

    let mut enc = Encoder::for_client(Format::Responses, &req);
    let mut sse = Vec::new();
    for ev in [
        StreamEvent::Start {
            id: "msg_1".into(),
            model: "m".into(),
            usage: Usage::default(),
            created: Some(1),
        },
        StreamEvent::BlockStart {
            index: 0,
            block: BlockKind::ToolUse {
                id: "toolu_1".into(),
                name: "multi_agent_v1__spawn_agent".into(),
            },
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::ToolArgs("{}".into()),
        },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::Stop {
            reason: StopReason::ToolUse,
            stop_sequence: None,
        },
        StreamEvent::End,
    ] {
        enc.encode(&ev, &mut sse);
    }
    let sse = String::from_utf8(sse).unwrap();
    let items: Vec<Value> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter(|v| {
            v["type"] == "response.output_item.added" || v["type"] == "response.output_item.done"
        })
        .collect();
    assert_eq!(items.len(), 2, "{sse}");
    for v in items {
        assert_eq!(
            (&v["item"]["namespace"], &v["item"]["name"]),
            (&json!("multi_agent_v1"), &json!("spawn_agent"))
        );
    }
}

#[test]
fn a_name_that_only_looks_namespaced_stays_whole() {
    let req = codex_like(json!({}));
    let answer = ChatResponse {
        id: "msg_1".into(),
        model: "m".into(),
        content: vec![Part::ToolUse {
            id: "t".into(),
            name: "other__tool".into(),
            arguments: "{}".into(),
            cache: None,
        }],
        stop_reason: StopReason::ToolUse,
        stop_sequence: None,
        usage: Usage::default(),
        created: Some(1),
    };
    let full = to_json(encode_response(Format::Responses, &req, &answer));
    assert_eq!(full["output"][0]["name"], "other__tool");
    assert!(full["output"][0].get("namespace").is_none());
}

#[test]
fn hosted_tools_offered_are_left_out_but_forced_ones_are_refused() {
    for up in [
        Format::OpenAi,
        Format::Anthropic,
        Format::Gemini,
        Format::Cohere,
        Format::Bedrock,
    ] {
        let body = to_json(encode_request(up, &codex_like(json!({})), &opts("m", "p")).unwrap());
        assert!(!body.to_string().contains("web_search"), "{up:?}: {body}");
        let e = encode_request(
            up,
            &codex_like(json!({"tool_choice": {"type": "web_search"}})),
            &opts("m", "p"),
        )
        .unwrap_err();
        assert_eq!(e.status, 400, "{up:?}");
        assert!(
            e.message.contains("`tool_choice`") && e.message.contains("web_search"),
            "{}",
            e.message
        );
    }
    // Only hosted tools: no tools and no tool_choice go upstream.
    let only = decode_request(
        Format::Responses,
        json!({"model": "m", "input": "hi", "tools": [{"type": "web_search"}], "tool_choice": "required"}).to_string().as_bytes(),
    )
    .unwrap();
    let body = to_json(encode_request(Format::OpenAi, &only, &opts("m", "p")).unwrap());
    assert!(
        body.get("tools").is_none() && body.get("tool_choice").is_none(),
        "{body}"
    );
    // A client-run kind Codex may send (a custom tool) is still refused by name, never dropped.
    let custom = decode_request(
        Format::Responses,
        json!({"model": "m", "input": "hi", "tools": [{"type": "custom", "name": "apply_patch"}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert!(encode_request(Format::Anthropic, &custom, &opts("m", "p")).is_err());
}
