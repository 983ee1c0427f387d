//! Never-panic fuzzing of every codec, and exactness of the hand-written stream encoders.

use super::*;

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
        "contents",
        "parts",
        "role",
        "model",
        "functionCall",
        "functionResponse",
        "args",
        "response",
        "thought",
        "thoughtSignature",
        "inlineData",
        "mimeType",
        "candidates",
        "finishReason",
        "STOP",
        "MAX_TOKENS",
        "SAFETY",
        "usageMetadata",
        "systemInstruction",
        "functionDeclarations",
        "generationConfig",
        "thinkingConfig",
        "responseSchema",
        "promptFeedback",
        "message-start",
        "content-delta",
        "tool-call-start",
        "tool-call-delta",
        "message-end",
        "delta",
        "message",
        "tool_calls",
        "tool_plan",
        "finish_reason",
        "TOOL_CALL",
        "tokens",
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
        for f in [Format::OpenAi, Format::Anthropic, Format::Gemini, Format::Cohere, Format::Bedrock, Format::Responses, Format::Replicate] {
            prop_assert!(decode_request(f, &bytes).map_or_else(|e| e.status == 400, |_| true));
            let body = v.to_string();
            match decode_request(f, body.as_bytes()) {
                Err(e) => prop_assert_eq!(e.status, 400),
                Ok(req) => {
                    for up in [Format::OpenAi, Format::Anthropic, Format::Gemini, Format::Cohere, Format::Bedrock, Format::Responses, Format::Replicate] {
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
        for f in [Format::OpenAi, Format::Anthropic, Format::Gemini, Format::Cohere, Format::Bedrock, Format::Responses, Format::Replicate] {
            let mut d = Decoder::new(f);
            let mut events = Vec::new();
            for (event, data) in &frames {
                let text = data.to_string();
                let _ = decode_response(f, text.as_bytes());
                let _ = decode_error(f, status, text.as_bytes());
                let _ = d.feed(&SseFrame { event: event.clone(), data: text, raw: Vec::new() }, &mut events);
            }
            let _ = d.finish(&mut events);
            for client in [Format::OpenAi, Format::Anthropic, Format::Gemini, Format::Cohere, Format::Bedrock, Format::Responses, Format::Replicate] {
                let _ = reencode(&events, client, true);
            }
        }
    }
}

proptest! {
    /// The Anthropic delta event is written by hand for speed: byte for byte what serializing
    /// the event as JSON gives, for any text (quotes, control characters, any Unicode).
    #[test]
    fn openai_chunks_are_exact_json(text in "\\PC*|[\"\\\\\n\r\t\u{0}-\u{1f}\u{2028}😀]{0,8}", thinking in any::<bool>(), usage in any::<bool>(), id in "[a-z\"\\\\]{0,6}") {
        let mut e = Encoder::new(Format::OpenAi, usage);
        let mut out = Vec::new();
        e.encode(&StreamEvent::Start { id: id.clone(), model: "m\"x".into(), usage: Usage::default(), created: Some(7) }, &mut out);
        out.clear();
        let delta = if thinking { Delta::Thinking(text.clone()) } else { Delta::Text(text.clone()) };
        e.encode(&StreamEvent::Delta { index: 0, delta }, &mut out);
        let key = if thinking { "reasoning_content" } else { "content" };
        let mut want = json!({"id": id, "object": "chat.completion.chunk", "created": 7, "model": "m\"x",
                              "choices": [{"index": 0, "delta": {key: text}, "logprobs": null, "finish_reason": null}]});
        if usage {
            want["usage"] = Value::Null;
        }
        prop_assert_eq!(String::from_utf8(out).unwrap(), format!("data: {want}\n\n"));
    }

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
