//! Anthropic `message` objects <-> canonical response.

use gw_model::*;
use serde_json::{Map, Value, json};

/// Name of the forced tool that carries structured output for clients that asked for
/// `response_format` (Anthropic has no native equivalent); its input comes back as text.
pub const JSON_TOOL: &str = "gateway_json_response";

/// Canonical stop reason from an Anthropic `stop_reason`.
pub fn stop_from_reason(r: &str) -> StopReason {
    match r {
        "max_tokens" | "model_context_window_exceeded" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        "tool_use" => StopReason::ToolUse,
        "pause_turn" => StopReason::Pause,
        "refusal" => StopReason::Refusal,
        _ => StopReason::EndTurn,
    }
}

/// Anthropic `stop_reason` for a canonical one. A content filter becomes `refusal`: the closest
/// Anthropic meaning (the model did not answer for policy reasons).
pub fn stop_reason(r: StopReason) -> &'static str {
    match r {
        StopReason::EndTurn | StopReason::Error => "end_turn",
        StopReason::MaxTokens => "max_tokens",
        StopReason::StopSequence => "stop_sequence",
        StopReason::ToolUse => "tool_use",
        StopReason::ContentFilter | StopReason::Refusal => "refusal",
        StopReason::Pause => "pause_turn",
    }
}

/// Canonical usage from an Anthropic `usage` object.
pub fn parse_usage(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input: n("input_tokens"),
        output: n("output_tokens"),
        cache_read: n("cache_read_input_tokens"),
        cache_write: n("cache_creation_input_tokens"),
        reasoning: 0,
    }
}

pub(crate) fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input,
        "cache_creation_input_tokens": u.cache_write,
        "cache_read_input_tokens": u.cache_read,
        "output_tokens": u.output,
    })
}

/// Decodes a `message` body.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorKind::Api, format!("upstream sent malformed JSON: {e}")))?;
    let mut content = Vec::new();
    let mut json_tool = false;
    for b in v
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let s = |k: &str| {
            b.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        content.push(
            match b.get("type").and_then(Value::as_str).unwrap_or_default() {
                "text" => Part::Text {
                    text: s("text"),
                    cache: None,
                },
                "tool_use" if s("name") == JSON_TOOL => {
                    json_tool = true;
                    Part::Text {
                        text: b.get("input").map(Value::to_string).unwrap_or_default(),
                        cache: None,
                    }
                }
                "tool_use" => Part::ToolUse {
                    id: s("id"),
                    name: s("name"),
                    arguments: b
                        .get("input")
                        .map_or_else(|| "{}".to_owned(), Value::to_string),
                    cache: None,
                },
                "thinking" => Part::Thinking {
                    text: s("thinking"),
                    signature: b
                        .get("signature")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                },
                "redacted_thinking" => Part::RedactedThinking { data: s("data") },
                _ => Part::Opaque {
                    format: Format::Anthropic,
                    block: b.clone(),
                },
            },
        );
    }
    let mut stop = stop_from_reason(
        v.get("stop_reason")
            .and_then(Value::as_str)
            .unwrap_or("end_turn"),
    );
    if json_tool && stop == StopReason::ToolUse {
        stop = StopReason::EndTurn;
    }
    Ok(ChatResponse {
        id: v
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        model: v
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        content,
        stop_reason: stop,
        stop_sequence: v
            .get("stop_sequence")
            .and_then(Value::as_str)
            .map(str::to_owned),
        usage: v.get("usage").map(parse_usage).unwrap_or_default(),
        created: None,
    })
}

/// Encodes a `message` body.
pub fn encode_response(r: &ChatResponse) -> Vec<u8> {
    let mut blocks = Vec::new();
    for p in &r.content {
        let b = match p {
            Part::Text { text, .. } => json!({"type": "text", "text": text}),
            Part::ToolUse {
                id,
                name,
                arguments,
                ..
            } => {
                let input = serde_json::from_str::<Value>(arguments).unwrap_or_else(|_| json!({}));
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
            Part::Thinking { text, signature } => {
                json!({"type": "thinking", "thinking": text, "signature": signature.clone().unwrap_or_default()})
            }
            Part::RedactedThinking { data } => json!({"type": "redacted_thinking", "data": data}),
            Part::Opaque {
                format: Format::Anthropic,
                block,
            } => block.clone(),
            _ => continue,
        };
        blocks.push(b);
    }
    let mut m = Map::new();
    m.insert("id".into(), json!(r.id));
    m.insert("type".into(), json!("message"));
    m.insert("role".into(), json!("assistant"));
    m.insert("model".into(), json!(r.model));
    m.insert("content".into(), Value::Array(blocks));
    m.insert("stop_reason".into(), json!(stop_reason(r.stop_reason)));
    m.insert("stop_sequence".into(), json!(r.stop_sequence));
    m.insert("usage".into(), usage_json(&r.usage));
    serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
}
