//! Unit tests: recorded provider streams decoded to golden canonical events, split-anywhere
//! properties, cross-format stream round trips, and request/response mapping facts.

use crate::*;
use gw_codec::{SseFrame, SseParser};
use gw_model::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::path::PathBuf;

fn fixture_dir() -> PathBuf {
    // The run-time value (cargo and nextest set it): a binary cached from a clone elsewhere
    // must read this checkout's files, not the compile-time path.
    let root =
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    PathBuf::from(root).join("tests/fixtures")
}

/// (name, upstream format, SSE bytes). `.chunks.txt` fixtures hold one JSON event per line with
/// the framing removed; they are re-framed exactly as the provider sends them.
fn fixtures() -> Vec<(String, Format, Vec<u8>)> {
    let dir = fixture_dir();
    let mut out = Vec::new();
    for (name, format) in [
        ("anthropic-text.chunks.txt", Format::Anthropic),
        ("anthropic-json-tool.1.chunks.txt", Format::Anthropic),
        ("openai-text.chunks.txt", Format::OpenAi),
        ("groq-tool-call.chunks.txt", Format::OpenAi),
        ("mistral-tool-call.chunks.txt", Format::OpenAi),
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let mut sse = String::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match format {
                Format::OpenAi => sse.push_str(&format!("data: {line}\n\n")),
                Format::Anthropic => {
                    let v: Value = serde_json::from_str(line).unwrap();
                    sse.push_str(&format!(
                        "event: {}\ndata: {line}\n\n",
                        v["type"].as_str().unwrap()
                    ));
                }
            }
        }
        if format == Format::OpenAi {
            sse.push_str("data: [DONE]\n\n");
        }
        out.push((
            name.trim_end_matches(".chunks.txt").to_owned(),
            format,
            sse.into_bytes(),
        ));
    }
    for name in [
        "basic_response",
        "tool_use_response",
        "refusal_response",
        "incomplete_partial_json_response",
    ] {
        let bytes = std::fs::read(dir.join(format!("anthropic-sdk-python/{name}.txt"))).unwrap();
        out.push((format!("anthropic-sdk-{name}"), Format::Anthropic, bytes));
    }
    out
}

/// Decodes a stream fed in the given pieces; a decode error becomes a final `Error` event.
fn decode(format: Format, pieces: &[&[u8]]) -> Vec<StreamEvent> {
    let mut p = SseParser::new();
    let mut d = Decoder::new(format);
    let mut frames: Vec<SseFrame> = Vec::new();
    let mut events = Vec::new();
    for piece in pieces {
        p.feed(piece, &mut frames).unwrap();
    }
    p.finish(&mut frames);
    for f in &frames {
        if let Err(e) = d.feed(f, &mut events) {
            events.push(StreamEvent::Error(e));
            return events;
        }
    }
    if let Err(e) = d.finish(&mut events) {
        events.push(StreamEvent::Error(e));
    }
    events
}

#[test]
fn fixtures_decode_to_golden_events() {
    let golden_dir = fixture_dir().join("golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for (name, format, bytes) in fixtures() {
        let events = decode(format, &[&bytes]);
        let got = serde_json::to_string_pretty(&events).unwrap() + "\n";
        let path = golden_dir.join(format!("{name}.events.json"));
        if update {
            std::fs::create_dir_all(&golden_dir).unwrap();
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("missing golden {path:?}; run with UPDATE_GOLDEN=1"));
        assert_eq!(
            got, want,
            "{name}: decoded events differ from the golden file"
        );
    }
}

fn text_of(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Delta {
                delta: Delta::Text(t),
                ..
            } => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn fixture_facts() {
    let all = fixtures();
    let get = |n: &str| {
        let (_, f, b) = all.iter().find(|(name, ..)| name == n).unwrap();
        decode(*f, &[b])
    };
    let ev = get("anthropic-text");
    assert_eq!(
        text_of(&ev),
        "Hello! I'm doing well, thank you for asking. How are you doing today? Is there anything I can help you with?"
    );
    assert!(
        matches!(&ev[0], StreamEvent::Start { id, usage, .. } if id == "msg_01QC4g3HwBThD4BaNtBckFDJ" && usage.input == 12)
    );
    assert!(ev.contains(&StreamEvent::Stop {
        reason: StopReason::EndTurn,
        stop_sequence: None
    }));
    assert_eq!(ev.last(), Some(&StreamEvent::End));

    let ev = get("groq-tool-call");
    assert!(ev.contains(&StreamEvent::BlockStart {
        index: 0,
        block: BlockKind::ToolUse {
            id: "tk85n1k4m".into(),
            name: "weather".into()
        }
    }));
    assert!(ev.contains(&StreamEvent::Stop {
        reason: StopReason::ToolUse,
        stop_sequence: None
    }));
    assert!(
        ev.iter()
            .any(|e| matches!(e, StreamEvent::Usage(u) if u.input == 210 && u.output == 15))
    );

    let ev = get("mistral-tool-call");
    assert!(
        ev.contains(&StreamEvent::BlockStart {
            index: 0,
            block: BlockKind::ToolUse {
                id: "gSIMJiOkT".into(),
                name: "weather".into()
            }
        }),
        "Mistral's index-less tool call"
    );
    assert!(ev.contains(&StreamEvent::Delta {
        index: 0,
        delta: Delta::ToolArgs("{\"location\": \"San Francisco\"}".into())
    }));

    let ev = get("openai-text");
    assert!(
        ev.iter()
            .any(|e| matches!(e, StreamEvent::Usage(u) if u.input == 16 && u.output == 300))
    );
    assert!(text_of(&ev).starts_with("**Holiday Name:**"));

    let ev = get("anthropic-sdk-refusal_response");
    assert!(ev.iter().any(|e| matches!(
        e,
        StreamEvent::Stop {
            reason: StopReason::Refusal,
            ..
        }
    )));

    let ev = get("anthropic-sdk-incomplete_partial_json_response");
    assert_eq!(
        ev.last(),
        Some(&StreamEvent::End),
        "incomplete partial JSON is passed through, not judged"
    );
}

#[test]
fn a_stream_cut_short_is_an_error() {
    let (_, _, bytes) = fixtures()
        .into_iter()
        .find(|(n, ..)| n == "anthropic-text")
        .unwrap();
    let cut = &bytes[..bytes.len() / 2];
    assert!(
        matches!(decode(Format::Anthropic, &[cut]).last(), Some(StreamEvent::Error(e)) if e.message.contains("message_stop"))
    );
    let ev = decode(
        Format::OpenAi,
        &[b"data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"],
    );
    assert!(matches!(ev.last(), Some(StreamEvent::Error(_))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn fixtures_split_anywhere_decode_identically(which in 0usize..9, cuts in proptest::collection::vec(any::<usize>(), 1..40)) {
        let all = fixtures();
        let (_, format, bytes) = &all[which % all.len()];
        let whole = decode(*format, &[bytes]);
        let mut idx: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        idx.sort_unstable();
        let mut pieces = Vec::new();
        let mut last = 0;
        for i in idx { pieces.push(&bytes[last..i]); last = i; }
        pieces.push(&bytes[last..]);
        prop_assert_eq!(decode(*format, &pieces), whole);
    }
}

/// What a client would rebuild from a stream: text, thinking, tool calls, stop, usage.
#[derive(Debug, PartialEq, Default)]
struct Summary {
    text: String,
    thinking: String,
    signature: String,
    tools: Vec<(String, String, String)>,
    stop: Option<StopReason>,
    usage: Usage,
}

fn summarize(events: &[StreamEvent]) -> Summary {
    let mut s = Summary::default();
    let mut tool_at = std::collections::HashMap::new();
    for e in events {
        match e {
            StreamEvent::Start { usage, .. } => s.usage = s.usage.merge(*usage),
            StreamEvent::BlockStart {
                index,
                block: BlockKind::ToolUse { id, name },
            } => {
                tool_at.insert(*index, s.tools.len());
                s.tools.push((id.clone(), name.clone(), String::new()));
            }
            StreamEvent::Delta { index, delta } => match delta {
                Delta::Text(t) => s.text.push_str(t),
                Delta::Thinking(t) => s.thinking.push_str(t),
                Delta::Signature(t) => s.signature.push_str(t),
                Delta::ToolArgs(a) => s.tools[tool_at[index]].2.push_str(a),
            },
            StreamEvent::Stop { reason, .. } => s.stop = Some(*reason),
            StreamEvent::Usage(u) => s.usage = s.usage.merge(*u),
            _ => {}
        }
    }
    s
}

fn reencode(events: &[StreamEvent], client: Format, include_usage: bool) -> Vec<u8> {
    let mut enc = Encoder::new(client, include_usage);
    let mut out = Vec::new();
    for e in events {
        enc.encode(e, &mut out);
    }
    out
}

#[test]
fn every_fixture_survives_translation_into_both_client_formats() {
    for (name, format, bytes) in fixtures() {
        let events = decode(format, &[&bytes]);
        let want = summarize(&events);
        for client in [Format::OpenAi, Format::Anthropic] {
            let sse = reencode(&events, client, true);
            let back = decode(client, &[&sse]);
            assert_eq!(
                back.last(),
                Some(&StreamEvent::End),
                "{name} -> {client:?}: stream must end properly"
            );
            let mut got = summarize(&back);
            if client == Format::OpenAi {
                assert_eq!(got.signature, "", "no signature reaches an OpenAI client");
                got.signature.clone_from(&want.signature);
            }
            // Stop reasons that the client format cannot express collapse as documented.
            let collapse = |r: Option<StopReason>| match (client, r) {
                (
                    Format::OpenAi,
                    Some(StopReason::StopSequence | StopReason::Pause | StopReason::Error),
                ) => Some(StopReason::EndTurn),
                (Format::OpenAi, Some(StopReason::Refusal)) => Some(StopReason::ContentFilter),
                (Format::Anthropic, Some(StopReason::ContentFilter)) => Some(StopReason::Refusal),
                (_, r) => r,
            };
            let mut want_c = Summary {
                stop: collapse(want.stop),
                ..Summary::default()
            };
            want_c.text.clone_from(&want.text);
            want_c.thinking.clone_from(&want.thinking);
            want_c.signature.clone_from(&want.signature);
            want_c.tools.clone_from(&want.tools);
            want_c.usage = want.usage;
            assert_eq!(got, want_c, "{name} -> {client:?}");
        }
    }
}

#[test]
fn openai_client_gets_usage_chunk_only_when_asked() {
    let (_, f, b) = fixtures()
        .into_iter()
        .find(|(n, ..)| n == "anthropic-text")
        .unwrap();
    let events = decode(f, &[&b]);
    let with = String::from_utf8(reencode(&events, Format::OpenAi, true)).unwrap();
    let without = String::from_utf8(reencode(&events, Format::OpenAi, false)).unwrap();
    assert!(
        with.contains("\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":30"),
        "{with}"
    );
    assert!(!without.contains("\"usage\""));
    assert!(with.ends_with("data: [DONE]\n\n") && without.ends_with("data: [DONE]\n\n"));
}

#[test]
fn anthropic_client_gets_message_start_first_and_cumulative_usage_last() {
    let (_, f, b) = fixtures()
        .into_iter()
        .find(|(n, ..)| n == "openai-text")
        .unwrap();
    let sse = String::from_utf8(reencode(&decode(f, &[&b]), Format::Anthropic, true)).unwrap();
    assert!(sse.starts_with("event: message_start\n"));
    let delta_line = sse
        .lines()
        .find(|l| l.contains("\"message_delta\""))
        .unwrap();
    let v: Value = serde_json::from_str(delta_line.trim_start_matches("data: ")).unwrap();
    assert_eq!(v["usage"]["output_tokens"], 300);
    assert_eq!(v["usage"]["input_tokens"], 16);
    assert_eq!(v["delta"]["stop_reason"], "end_turn");
    assert!(
        sse.trim_end()
            .ends_with("data: {\"type\":\"message_stop\"}")
    );
}

#[test]
fn thinking_signature_survives_anthropic_round_trip_byte_for_byte() {
    let sig = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds+/Ab==";
    let up = format!(
        "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"m\",\"model\":\"c\",\"usage\":{{\"input_tokens\":5,\"cache_read_input_tokens\":7}}}}}}\n\n\
         event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}}}\n\n\
         event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}}}\n\n\
         event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"signature_delta\",\"signature\":\"{sig}\"}}}}\n\n\
         event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
         event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{{\"type\":\"redacted_thinking\",\"data\":\"opaque+/=\"}}}}\n\n\
         event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":1}}\n\n\
         event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\"}},\"usage\":{{\"output_tokens\":9}}}}\n\n\
         event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
    );
    let events = decode(Format::Anthropic, &[up.as_bytes()]);
    let again = decode(
        Format::Anthropic,
        &[&reencode(&events, Format::Anthropic, true)],
    );
    assert_eq!(summarize(&again).signature, sig);
    assert!(again.contains(&StreamEvent::BlockStart {
        index: 1,
        block: BlockKind::RedactedThinking {
            data: "opaque+/=".into()
        }
    }));
    // To an OpenAI client: reasoning_content, usage with cached tokens folded into the prompt.
    let oai = String::from_utf8(reencode(&events, Format::OpenAi, true)).unwrap();
    assert!(oai.contains("\"reasoning_content\":\"hmm\""));
    assert!(
        oai.contains("\"prompt_tokens\":12") && oai.contains("\"cached_tokens\":7"),
        "{oai}"
    );
}

fn opts<'a>(model: &'a str, provider: &'a str) -> EncodeOpts<'a> {
    EncodeOpts {
        model,
        provider,
        default_max_tokens: 4096,
        max_tokens_field: "max_tokens",
    }
}

fn to_json(b: Vec<u8>) -> Value {
    serde_json::from_slice(&b).unwrap()
}

#[test]
fn openai_request_to_anthropic() {
    let body = json!({
        "model": "gpt-4",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"location\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"location\":\"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rainy"}]},
            {"role": "user", "content": "thanks"}
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "stop": ["END"],
        "temperature": 0.5,
        "max_completion_tokens": 100,
        "user": "u-1",
        "stream": true,
        "stream_options": {"include_usage": true}
    });
    let req = decode_request(Format::OpenAi, body.to_string().as_bytes()).unwrap();
    assert!(req.include_usage && req.stream);
    let a =
        to_json(encode_request(Format::Anthropic, &req, &opts("claude-x", "anthropic")).unwrap());
    assert_eq!(a["model"], "claude-x");
    assert_eq!(a["system"], "Be brief.\n\nUse tools.");
    assert_eq!(a["max_tokens"], 100);
    assert_eq!(a["stop_sequences"], json!(["END"]));
    assert_eq!(
        a["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        a["tools"][0]["input_schema"]["properties"]["location"]["type"],
        "string"
    );
    assert_eq!(a["metadata"]["user_id"], "u-1");
    let msgs = a["messages"].as_array().unwrap();
    assert_eq!(
        msgs.len(),
        3,
        "user, assistant, user (tool results + text merged): {msgs:?}"
    );
    assert_eq!(
        msgs[0]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="})
    );
    assert_eq!(
        msgs[0]["content"][2]["source"],
        json!({"type": "url", "url": "https://example.com/cat.png"})
    );
    assert_eq!(msgs[1]["content"][1]["input"], json!({"location": "Rome"}));
    assert_eq!(
        msgs[2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "sunny"}]})
    );
    assert_eq!(msgs[2]["content"][1]["tool_use_id"], "call_2");
    assert_eq!(
        msgs[2]["content"][2],
        json!({"type": "text", "text": "thanks"})
    );
    assert!(
        a.get("stream_options").is_none(),
        "OpenAI-only fields do not leak to Anthropic"
    );
}

#[test]
fn anthropic_request_to_openai() {
    let body = json!({
        "model": "claude-3",
        "max_tokens": 50,
        "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "t", "signature": "sig"},
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"location": "Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny", "is_error": false},
                {"type": "text", "text": "and?"}
            ]}
        ],
        "tools": [{"name": "weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "weather"},
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "stop_sequences": ["X"],
        "top_k": 5
    });
    let req = decode_request(Format::Anthropic, body.to_string().as_bytes()).unwrap();
    let o = to_json(
        encode_request(
            Format::OpenAi,
            &req,
            &EncodeOpts {
                max_tokens_field: "max_completion_tokens",
                ..opts("gpt-4o", "openai")
            },
        )
        .unwrap(),
    );
    assert_eq!(
        o["messages"][0],
        json!({"role": "system", "content": "sys"})
    );
    assert_eq!(o["messages"][2]["content"], "calling");
    assert_eq!(
        o["messages"][2]["tool_calls"][0]["function"],
        json!({"name": "weather", "arguments": "{\"location\":\"Paris\"}"})
    );
    assert_eq!(
        o["messages"][3],
        json!({"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"})
    );
    assert_eq!(o["messages"][4], json!({"role": "user", "content": "and?"}));
    assert_eq!(
        o["tool_choice"],
        json!({"type": "function", "function": {"name": "weather"}})
    );
    assert_eq!(o["max_completion_tokens"], 50);
    assert_eq!(o["reasoning_effort"], "low");
    assert_eq!(o["stop"], json!(["X"]));
    assert!(o.get("top_k").is_none(), "OpenAI itself rejects top_k");
}

#[test]
fn effort_becomes_a_thinking_budget_below_max_tokens() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "medium", "max_tokens": 1000});
    let req = decode_request(Format::OpenAi, body.to_string().as_bytes()).unwrap();
    let a = to_json(encode_request(Format::Anthropic, &req, &opts("c", "anthropic")).unwrap());
    assert_eq!(
        a["thinking"],
        json!({"type": "enabled", "budget_tokens": 8192})
    );
    assert!(a["max_tokens"].as_u64().unwrap() > 8192);
}

#[test]
fn response_format_json_schema_goes_through_a_forced_tool_and_comes_back_as_text() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object", "properties": {"a": {"type": "number"}}}}}});
    let req = decode_request(Format::OpenAi, body.to_string().as_bytes()).unwrap();
    let a = to_json(encode_request(Format::Anthropic, &req, &opts("c", "anthropic")).unwrap());
    assert_eq!(
        a["tool_choice"],
        json!({"type": "tool", "name": anthropic::JSON_TOOL})
    );
    let up = json!({"id": "m1", "type": "message", "role": "assistant", "model": "c", "stop_reason": "tool_use",
        "content": [{"type": "tool_use", "id": "t", "name": anthropic::JSON_TOOL, "input": {"a": 1}}],
        "usage": {"input_tokens": 3, "output_tokens": 4}});
    let r = decode_response(Format::Anthropic, up.to_string().as_bytes()).unwrap();
    let o = to_json(encode_response(Format::OpenAi, &r));
    assert_eq!(o["choices"][0]["message"]["content"], "{\"a\":1}");
    assert_eq!(o["choices"][0]["finish_reason"], "stop");
}

#[test]
fn unsupported_parameters_are_named() {
    for (extra, param) in [
        (json!({"n": 2}), "n"),
        (json!({"logprobs": true}), "logprobs"),
        (json!({"presence_penalty": 0.5}), "presence_penalty"),
    ] {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let req = decode_request(Format::OpenAi, body.to_string().as_bytes()).unwrap();
        let e = encode_request(Format::Anthropic, &req, &opts("c", "anthropic")).unwrap_err();
        assert_eq!(
            (e.status, e.param.as_deref()),
            (400, Some(param)),
            "{}",
            e.message
        );
        assert!(e.message.contains("anthropic"));
    }
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": [" "]});
    let req = decode_request(Format::OpenAi, body.to_string().as_bytes()).unwrap();
    assert!(
        encode_request(Format::Anthropic, &req, &opts("c", "anthropic"))
            .unwrap_err()
            .message
            .contains("whitespace")
    );
    let body = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "stop_sequences": ["a", "b", "c", "d", "e"]});
    let req = decode_request(Format::Anthropic, body.to_string().as_bytes()).unwrap();
    assert!(
        encode_request(Format::OpenAi, &req, &opts("c", "openai"))
            .unwrap_err()
            .message
            .contains("4 stop")
    );
}

#[test]
fn bad_requests_get_precise_messages() {
    let cases: &[(Format, &str, &str)] = &[
        (Format::OpenAi, "{", "malformed JSON"),
        (Format::OpenAi, "[]", "must be a JSON object"),
        (Format::OpenAi, r#"{"messages":[]}"#, "`model`: required"),
        (Format::OpenAi, r#"{"model":"m"}"#, "`messages`: required"),
        (
            Format::OpenAi,
            r#"{"model":"m","messages":"hi"}"#,
            "`messages`: expected an array, got a string",
        ),
        (
            Format::OpenAi,
            r#"{"model":"m","messages":[{"role":"user","content":5}]}"#,
            "`messages[0].content`: expected a string or an array",
        ),
        (
            Format::OpenAi,
            r#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#,
            "unknown role \"robot\"",
        ),
        (
            Format::OpenAi,
            r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#,
            "`messages[0].tool_call_id`: required",
        ),
        (
            Format::OpenAi,
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"9"}"#,
            "`max_tokens`: expected an integer",
        ),
        (
            Format::OpenAi,
            r#"{"model":5,"messages":[]}"#,
            "`model`: expected a string, got a number",
        ),
        (
            Format::Anthropic,
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64"}}]}]}"#,
            "`messages[0].content[0].source.media_type`: required",
        ),
        (
            Format::Anthropic,
            r#"{"model":"m","messages":[{"role":"system","content":"x"}]}"#,
            "unknown role \"system\"",
        ),
        (
            Format::Anthropic,
            r#"{"model":"m","messages":[],"temperature":"hot"}"#,
            "`temperature`: expected a number",
        ),
        (
            Format::OpenAi,
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":"nope"}}]}"#,
            "`tools[0].function.parameters`: expected an object, got a string",
        ),
        (
            Format::Anthropic,
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"name":"f","input_schema":"nope"}]}"#,
            "`tools[0].input_schema`: expected an object, got a string",
        ),
    ];
    for (f, body, want) in cases {
        let e = decode_request(*f, body.as_bytes()).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.message.contains(want),
            "{body}: {} (wanted {want})",
            e.message
        );
    }
}

#[test]
fn usage_mapping_follows_the_conversion_table() {
    // Anthropic -> OpenAI: prompt = input + cache_read + cache_write; cached = cache_read.
    let u = anthropic::parse_usage(
        &json!({"input_tokens": 10, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 3, "output_tokens": 7}),
    );
    let o = openai::usage_json(&u);
    assert_eq!(
        (
            o["prompt_tokens"].as_u64(),
            o["prompt_tokens_details"]["cached_tokens"].as_u64(),
            o["total_tokens"].as_u64()
        ),
        (Some(18), Some(5), Some(25))
    );
    // OpenAI -> Anthropic: input = prompt - cached; cache_read = cached; reasoning kept.
    let u = openai::parse_usage(
        &json!({"prompt_tokens": 20, "completion_tokens": 9, "prompt_tokens_details": {"cached_tokens": 5}, "completion_tokens_details": {"reasoning_tokens": 4}}),
    );
    assert_eq!(
        u,
        Usage {
            input: 15,
            output: 9,
            cache_read: 5,
            cache_write: 0,
            reasoning: 4
        }
    );
}

#[test]
fn responses_translate_both_ways() {
    let oai = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "ok", "reasoning_content": "why",
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4}}});
    let r = decode_response(Format::OpenAi, oai.to_string().as_bytes()).unwrap();
    let a = to_json(encode_response(Format::Anthropic, &r));
    assert_eq!(a["stop_reason"], "tool_use");
    assert_eq!(
        a["content"][0],
        json!({"type": "thinking", "thinking": "why", "signature": ""})
    );
    assert_eq!(a["content"][1], json!({"type": "text", "text": "ok"}));
    assert_eq!(
        a["content"][2],
        json!({"type": "tool_use", "id": "call_9", "name": "f", "input": {"a": 1}})
    );
    assert_eq!(a["usage"]["input_tokens"], 6);
    assert_eq!(a["usage"]["cache_read_input_tokens"], 4);
    let back = decode_response(Format::Anthropic, &encode_response(Format::Anthropic, &r)).unwrap();
    let o = to_json(encode_response(Format::OpenAi, &back));
    assert_eq!(
        o["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"a\":1}"
    );
    assert_eq!(o["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(o["usage"]["prompt_tokens"], 10);
}

#[test]
fn errors_in_each_format() {
    let e = ApiError::new(ErrorKind::NotFound, "no such model").with_code("model_not_found");
    assert_eq!(
        to_json(encode_error(Format::OpenAi, &e)),
        json!({"error": {"message": "no such model", "type": "invalid_request_error", "param": null, "code": "model_not_found"}})
    );
    assert_eq!(
        to_json(encode_error(Format::Anthropic, &e)),
        json!({"type": "error", "error": {"type": "not_found_error", "message": "no such model"}})
    );
    let d = decode_error(
        Format::Anthropic,
        529,
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    );
    assert_eq!(
        (d.kind, d.status, d.message.as_str()),
        (ErrorKind::Overloaded, 529, "Overloaded")
    );
    let d = decode_error(
        Format::OpenAi,
        429,
        br#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
    );
    assert_eq!(
        (d.kind, d.code.as_deref()),
        (ErrorKind::RateLimit, Some("rate_limit_exceeded"))
    );
    let d = decode_error(Format::OpenAi, 502, b"<html>bad gateway</html>");
    assert_eq!(d.message, "<html>bad gateway</html>");
}

#[test]
fn openai_stream_error_chunk_becomes_an_error_event() {
    let ev = decode(
        Format::OpenAi,
        &[b"data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n"],
    );
    assert!(matches!(&ev[0], StreamEvent::Error(e) if e.message == "boom"));
}

/// JSON built from the words these formats use, so random input reaches deep code paths.
fn arb_json() -> impl Strategy<Value = Value> {
    let words = prop::sample::select(vec![
        "model",
        "messages",
        "role",
        "content",
        "type",
        "text",
        "user",
        "assistant",
        "system",
        "tool",
        "developer",
        "tool_calls",
        "tool_call_id",
        "function",
        "name",
        "arguments",
        "image_url",
        "url",
        "source",
        "base64",
        "media_type",
        "data",
        "tool_use",
        "tool_result",
        "tool_use_id",
        "input",
        "thinking",
        "signature",
        "redacted_thinking",
        "tools",
        "tool_choice",
        "auto",
        "any",
        "required",
        "none",
        "max_tokens",
        "stream",
        "stop",
        "stop_sequences",
        "response_format",
        "json_schema",
        "schema",
        "reasoning_effort",
        "n",
        "logprobs",
        "index",
        "delta",
        "choices",
        "finish_reason",
        "usage",
        "error",
        "message_start",
        "content_block_start",
        "content_block_delta",
        "message_delta",
        "message_stop",
        "content_block",
        "partial_json",
        "input_json_delta",
        "text_delta",
        "thinking_delta",
        "signature_delta",
        "temperature",
        "budget_tokens",
        "document",
        "file",
        "file_data",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-10.0f64..10.0).prop_map(|f| json!(f)),
        words.clone().prop_map(|w| json!(w)),
        "[ -~]{0,12}".prop_map(Value::String),
        Just(json!("data:image/png;base64,AAAA")),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((words.clone(), inner), 0..6).prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Requests: any input gives a request or a 400, never a panic; whatever decodes also encodes
    /// for every upstream format (or is refused with a 400).
    #[test]
    fn request_codecs_never_panic(v in arb_json(), bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        for f in [Format::OpenAi, Format::Anthropic] {
            prop_assert!(decode_request(f, &bytes).map_or_else(|e| e.status == 400, |_| true));
            let body = v.to_string();
            match decode_request(f, body.as_bytes()) {
                Err(e) => prop_assert_eq!(e.status, 400),
                Ok(req) => {
                    for up in [Format::OpenAi, Format::Anthropic] {
                        if let Err(e) = encode_request(up, &req, &opts("m", "p")) {
                            prop_assert_eq!(e.status, 400);
                        }
                    }
                }
            }
        }
    }

    /// Upstream answers: responses, errors and stream frames of any shape never panic, and the
    /// encoders accept whatever the decoders produce.
    #[test]
    fn response_and_stream_codecs_never_panic(frames in prop::collection::vec((prop::option::of("[a-z_]{1,20}"), arb_json()), 0..8), status in 400u16..600) {
        for f in [Format::OpenAi, Format::Anthropic] {
            let mut d = Decoder::new(f);
            let mut events = Vec::new();
            for (event, data) in &frames {
                let text = data.to_string();
                let _ = decode_response(f, text.as_bytes());
                let _ = decode_error(f, status, text.as_bytes());
                let _ = d.feed(&SseFrame { event: event.clone(), data: text, raw: Vec::new() }, &mut events);
            }
            let _ = d.finish(&mut events);
            for client in [Format::OpenAi, Format::Anthropic] {
                let _ = reencode(&events, client, true);
            }
        }
    }
}

proptest! {
    /// The Anthropic delta event is written by hand for speed: byte for byte what serializing
    /// the event as JSON gives, for any text (quotes, control characters, any Unicode).
    #[test]
    fn anthropic_delta_events_are_exact_json(text in "\\PC*|[\"\\\\\n\r\t\u{0}-\u{1f}\u{2028}😀]{0,8}", kind in 0u8..4, index in 0u32..1000) {
        let (delta, ty, field) = match kind {
            0 => (Delta::Text(text.clone()), "text_delta", "text"),
            1 => (Delta::ToolArgs(text.clone()), "input_json_delta", "partial_json"),
            2 => (Delta::Thinking(text.clone()), "thinking_delta", "thinking"),
            _ => (Delta::Signature(text.clone()), "signature_delta", "signature"),
        };
        let block = match kind {
            0 => BlockKind::Text,
            1 => BlockKind::ToolUse { id: "t".into(), name: "f".into() },
            _ => BlockKind::Thinking,
        };
        let mut e = Encoder::new(Format::Anthropic, false);
        let mut out = Vec::new();
        e.encode(&StreamEvent::Start { id: "m".into(), model: "x".into(), usage: Usage::default(), created: None }, &mut out);
        e.encode(&StreamEvent::BlockStart { index, block }, &mut out);
        out.clear();
        e.encode(&StreamEvent::Delta { index, delta }, &mut out);
        let want = json!({"type": "content_block_delta", "index": 0, "delta": {"type": ty, field: text}});
        let got = String::from_utf8(out).unwrap();
        prop_assert_eq!(got, format!("event: content_block_delta\ndata: {want}\n\n"));
    }
}

#[test]
fn openai_chunks_tolerate_null_error_and_odd_field_types() {
    let stream = concat!(
        "data: {\"id\":\"c1\",\"model\":\"m\",\"created\":\"not a number\",\"error\":null,",
        "\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":null,\"reasoning\":\"think\"}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":[1,2]}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hi \\\"there\\\"\"},\"finish_reason\":\"stop\"}]}\n\n",
        "data: [DONE]\n\n",
    );
    let events = decode(Format::OpenAi, &[stream.as_bytes()]);
    assert!(
        !events.iter().any(|e| matches!(e, StreamEvent::Error(_))),
        "a null `error` is no error: {events:?}"
    );
    assert!(matches!(&events[0], StreamEvent::Start { id, created: None, .. } if id == "c1"));
    let deltas: Vec<&Delta> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Delta { delta, .. } => Some(delta),
            _ => None,
        })
        .collect();
    // `reasoning` is used when `reasoning_content` is null; a non-string content is skipped.
    assert_eq!(
        deltas,
        [
            &Delta::Thinking("think".into()),
            &Delta::Text("Hi \"there\"".into())
        ]
    );
}
