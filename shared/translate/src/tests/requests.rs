//! Request, response and error mapping between the formats: the conversion table's facts.

use super::*;

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
    let o = to_json(encode_response(Format::OpenAi, &ChatRequest::default(), &r));
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
            r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#,
            "Unexpected role \"tool\"",
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
    let a = to_json(encode_response(
        Format::Anthropic,
        &ChatRequest::default(),
        &r,
    ));
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
    let back = decode_response(
        Format::Anthropic,
        &encode_response(Format::Anthropic, &ChatRequest::default(), &r),
    )
    .unwrap();
    let o = to_json(encode_response(
        Format::OpenAi,
        &ChatRequest::default(),
        &back,
    ));
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

#[test]
fn azure_prompt_filter_chunk_does_not_start_the_message() {
    // Azure's stream opens with the prompt's filter results: no id, model or choices.
    let ev = decode(
        Format::OpenAi,
        &[
            br#"data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}"#,
            b"

",
            br#"data: {"id":"chatcmpl-az1","object":"chat.completion.chunk","created":7,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"hi"},"content_filter_results":{},"finish_reason":null}]}"#,
            b"

",
            br#"data: {"id":"chatcmpl-az1","object":"chat.completion.chunk","created":7,"model":"gpt-4o","choices":[{"index":0,"delta":{},"content_filter_results":{"violence":{"filtered":true,"severity":"high"}},"finish_reason":"content_filter"}]}"#,
            b"

data: [DONE]

",
        ],
    );
    assert!(
        matches!(&ev[0], StreamEvent::Start { id, model, created: Some(7), .. } if id == "chatcmpl-az1" && model == "gpt-4o"),
        "{ev:?}"
    );
    assert!(ev.iter().any(|e| matches!(
        e,
        StreamEvent::Stop {
            reason: StopReason::ContentFilter,
            ..
        }
    )));
}

#[test]
fn openai_request_to_gemini() {
    let sig = "EqUCCqICAb4+9vsh8Pd5taZV/oPzSvjWWw==";
    // The call id a Gemini upstream's call got, carrying its signature.
    let decoded = crate::gemini::decode_response(
        json!({"responseId": "r1", "candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": sig}
        ]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 3, "thoughtsTokenCount": 7, "cachedContentTokenCount": 4}})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        decoded.stop_reason,
        StopReason::ToolUse,
        "STOP with a call is a tool stop"
    );
    assert_eq!(
        decoded.usage,
        Usage {
            input: 6,
            output: 10,
            cache_read: 4,
            cache_write: 0,
            reasoning: 7
        }
    );
    let Part::ToolUse { id, .. } = &decoded.content[0] else {
        panic!()
    };
    let body = json!({
        "model": "gpt-x",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather?"},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", "iVBORw0KGgo=")}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": id, "content": "{\"temp\": 21}"}
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {
            "$schema": "x", "type": "object", "additionalProperties": false,
            "properties": {"city": {"type": ["string", "null"]}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object", "additionalProperties": false, "properties": {"t": {"type": "number"}}}}},
        "reasoning_effort": "low",
        "max_completion_tokens": 500,
        "stop": ["END"]
    });
    let req = decode_request(Format::OpenAi, body.to_string().as_bytes()).unwrap();
    let out =
        to_json(encode_request(Format::Gemini, &req, &opts("gemini-2.5-flash", "gemini")).unwrap());
    assert_eq!(
        out["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    assert!(out.get("model").is_none(), "the model is in the URL");
    let contents = out["contents"].as_array().unwrap();
    assert_eq!(
        contents[0]["parts"][1],
        json!({"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}})
    );
    assert_eq!(contents[1]["role"], "model");
    assert_eq!(
        contents[1]["parts"][0],
        json!({"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": sig}),
        "the signature comes back on the same part, byte for byte"
    );
    assert_eq!(
        contents[2]["parts"][0],
        json!({"functionResponse": {"name": "weather", "response": {"temp": 21}}})
    );
    assert_eq!(
        out["tools"][0]["functionDeclarations"][0]["parameters"],
        json!({"type": "object", "properties": {"city": {"type": "string", "nullable": true}}})
    );
    assert_eq!(
        out["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}})
    );
    let gc = &out["generationConfig"];
    assert_eq!(gc["maxOutputTokens"], 500);
    assert_eq!(gc["stopSequences"], json!(["END"]));
    assert_eq!(gc["responseMimeType"], "application/json");
    assert_eq!(
        gc["responseSchema"],
        json!({"type": "object", "properties": {"t": {"type": "number"}}})
    );
    assert_eq!(
        gc["thinkingConfig"],
        json!({"thinkingBudget": 2048, "includeThoughts": true})
    );
    // Back to OpenAI the carried signature stays out of the (40-character) id.
    let oa = to_json(encode_request(Format::OpenAi, &req, &opts("gpt-x", "openai")).unwrap());
    let oid = oa["messages"][2]["tool_calls"][0]["id"].as_str().unwrap();
    assert!(
        oid.len() <= 40 && oa["messages"][3]["tool_call_id"] == oid,
        "{oid}"
    );
}

#[test]
fn gemini_request_to_the_canonical_model() {
    let body = json!({
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "weather", "response": {"result": "21C"}}}]}
        ],
        "system_instruction": {"parts": [{"text": "Be brief."}]},
        "tools": [{"functionDeclarations": [{"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]}, {"googleSearch": {}}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
        "generationConfig": {"maxOutputTokens": 100, "temperature": 0.5, "thinkingConfig": {"thinkingBudget": 1024}},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    });
    let req = decode_request(Format::Gemini, body.to_string().as_bytes()).unwrap();
    assert_eq!(
        req.system,
        vec![Part::Text {
            text: "Be brief.".into(),
            cache: None
        }]
    );
    let Part::ToolUse { id, .. } = &req.messages[1].content[0] else {
        panic!()
    };
    assert_eq!(
        req.messages[2].content[0],
        Part::ToolResult {
            tool_use_id: id.clone(),
            content: vec![Part::Text {
                text: "21C".into(),
                cache: None
            }],
            is_error: false,
            cache: None
        },
        "a result names the call it answers, by position"
    );
    assert_eq!(req.tool_choice, Some(ToolChoice::Required));
    assert_eq!(req.sampling.max_tokens, Some(100));
    assert_eq!(req.reasoning.as_ref().unwrap().budget_tokens, Some(1024));
    assert_eq!(req.extra.format, Some(Format::Gemini));
    assert!(req.extra.fields.contains_key("safetySettings"));
    // The Google Search tool has no place in another format: refused, never dropped.
    let e = encode_request(Format::OpenAi, &req, &opts("gpt-x", "openai")).unwrap_err();
    assert!(
        e.message.contains("googleSearch") || e.message.contains("server tool"),
        "{}",
        e.message
    );
    let bad = json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]});
    assert!(
        decode_request(Format::Gemini, bad.to_string().as_bytes())
            .unwrap_err()
            .message
            .contains("unknown role")
    );
}

#[test]
fn anthropic_request_to_cohere_and_its_answer_back() {
    let body = json!({
        "model": "claude-x", "max_tokens": 300, "system": "Be brief.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Checking."}, {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "21C"}]}
        ],
        "tools": [{"name": "weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "any"},
        "top_p": 0.9, "top_k": 40, "stop_sequences": ["END"]
    });
    let req = decode_request(Format::Anthropic, body.to_string().as_bytes()).unwrap();
    let out =
        to_json(encode_request(Format::Cohere, &req, &opts("command-r-plus", "cohere")).unwrap());
    assert_eq!(out["model"], "command-r-plus");
    assert_eq!(
        out["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(
        out["messages"][1]["content"][1],
        json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}})
    );
    assert_eq!(
        out["messages"][2]["tool_plan"], "Checking.",
        "text before calls is the tool plan"
    );
    assert_eq!(
        out["messages"][2]["tool_calls"][0]["function"],
        json!({"name": "weather", "arguments": "{\"city\":\"Paris\"}"})
    );
    assert_eq!(
        out["messages"][3],
        json!({"role": "tool", "tool_call_id": "t1", "content": "21C"})
    );
    assert_eq!(out["tool_choice"], "REQUIRED");
    assert_eq!(
        (
            out["p"].clone(),
            out["k"].clone(),
            out["max_tokens"].clone()
        ),
        (json!(0.9), json!(40), json!(300))
    );
    assert_eq!(out["stop_sequences"], json!(["END"]));
    // A named tool has no Cohere form: refused, not dropped.
    let mut named = req.clone();
    named.tool_choice = Some(ToolChoice::Named("weather".into()));
    assert_eq!(
        encode_request(Format::Cohere, &named, &opts("c", "cohere"))
            .unwrap_err()
            .status,
        400
    );

    let answer = json!({"id": "r1", "finish_reason": "TOOL_CALL", "message": {"role": "assistant",
        "tool_plan": "I will check.", "content": [],
        "tool_calls": [{"id": "weather_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        "usage": {"billed_units": {"input_tokens": 5, "output_tokens": 7}, "tokens": {"input_tokens": 50, "output_tokens": 9}, "cached_tokens": 20}});
    let r = decode_response(Format::Cohere, answer.to_string().as_bytes()).unwrap();
    assert_eq!(r.stop_reason, StopReason::ToolUse);
    assert_eq!(
        r.content[0],
        Part::Text {
            text: "I will check.".into(),
            cache: None
        }
    );
    assert_eq!(
        r.usage,
        Usage {
            input: 30,
            output: 9,
            cache_read: 20,
            cache_write: 0,
            reasoning: 0
        },
        "tokens, not billed units"
    );
    let e = decode_error(Format::Cohere, 429, br#"{"message":"too many requests"}"#);
    assert_eq!((e.status, e.message.as_str()), (429, "too many requests"));
}

#[test]
fn claude_code_requests_for_other_models_translate() {
    // What Claude Code sends for a non-Claude model: a mid-conversation system message (its
    // beta), adaptive thinking and an effort.
    let body = json!({
        "model": "gpt-4o", "max_tokens": 1000,
        "system": [{"type": "text", "text": "You are Claude Code."}],
        "messages": [
            {"role": "user", "content": "list files"},
            {"role": "system", "content": "The user switched to plan mode."},
            {"role": "user", "content": "go"}
        ],
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"}
    });
    let req = decode_request(Format::Anthropic, body.to_string().as_bytes()).unwrap();
    assert_eq!(
        req.reasoning.as_ref().unwrap().effort.as_deref(),
        Some("high")
    );
    let oa = to_json(encode_request(Format::OpenAi, &req, &opts("gpt-4o", "openai")).unwrap());
    let roles: Vec<&str> = oa["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "system", "user"], "kept in place");
    assert_eq!(
        oa["messages"][2]["content"],
        "The user switched to plan mode."
    );
    assert_eq!(oa["reasoning_effort"], "high");
    assert!(oa.get("output_config").is_none() && oa.get("thinking").is_none());
    // Formats with one place for instructions fold it in.
    let g =
        to_json(encode_request(Format::Gemini, &req, &opts("gemini-2.5-pro", "gemini")).unwrap());
    assert_eq!(
        g["systemInstruction"]["parts"][1]["text"],
        "The user switched to plan mode."
    );
    assert_eq!(
        g["contents"].as_array().unwrap().len(),
        1,
        "the two user turns around it merge"
    );
    let a =
        to_json(encode_request(Format::Anthropic, &req, &opts("claude-x", "anthropic")).unwrap());
    assert!(
        a["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["role"] != "system")
    );
    // An OpenAI developer message after the first turn stays in place too.
    let oa_body = json!({"model": "m", "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "developer", "content": "Now in French."}]});
    let r = decode_request(Format::OpenAi, oa_body.to_string().as_bytes()).unwrap();
    assert_eq!(r.system.len(), 1);
    assert_eq!(r.messages[1].role, Role::System);
}
