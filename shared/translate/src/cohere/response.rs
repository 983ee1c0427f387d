//! Cohere v2 chat responses <-> canonical response; usage and finish reasons.

use crate::json::parse_body;
use gw_model::*;
use serde_json::{Map, Value, json};

/// Canonical stop for a Cohere `finish_reason`.
pub fn stop_from_finish(reason: &str) -> StopReason {
    match reason {
        "MAX_TOKENS" => StopReason::MaxTokens,
        "STOP_SEQUENCE" => StopReason::StopSequence,
        "TOOL_CALL" => StopReason::ToolUse,
        "ERROR" | "TIMEOUT" => StopReason::Error,
        _ => StopReason::EndTurn,
    }
}

/// Cohere `finish_reason` for a canonical stop.
pub fn finish_reason(stop: StopReason) -> &'static str {
    match stop {
        StopReason::EndTurn
        | StopReason::Pause
        | StopReason::ContentFilter
        | StopReason::Refusal => "COMPLETE",
        StopReason::StopSequence => "STOP_SEQUENCE",
        StopReason::MaxTokens => "MAX_TOKENS",
        StopReason::ToolUse => "TOOL_CALL",
        StopReason::Error => "ERROR",
    }
}

/// Canonical usage: `usage.tokens` (what the model processed), not `billed_units`.
pub fn parse_usage(u: &Value) -> Usage {
    let t = |k: &str| {
        u.pointer(&format!("/tokens/{k}"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let cached = u.get("cached_tokens").and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input: t("input_tokens").saturating_sub(cached),
        output: t("output_tokens"),
        cache_read: cached,
        cache_write: 0,
        reasoning: 0,
    }
}

/// `usage` for a Cohere client.
pub fn usage_json(u: &Usage) -> Value {
    let input = u.prompt_total();
    let mut v = json!({
        "billed_units": {"input_tokens": input, "output_tokens": u.output},
        "tokens": {"input_tokens": input, "output_tokens": u.output},
    });
    if u.cache_read > 0 {
        v["cached_tokens"] = json!(u.cache_read);
    }
    v
}

/// Decodes a complete upstream response.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, ApiError> {
    let m = parse_body(body).map_err(|e| {
        ApiError::new(
            ErrorKind::Api,
            format!("upstream sent malformed JSON: {}", e.message),
        )
    })?;
    let msg = m.get("message").ok_or_else(|| {
        ApiError::new(ErrorKind::Api, "upstream sent a response without a message")
    })?;
    let mut content = Vec::new();
    // The plan the model states before its calls reads as text, as in the stream.
    if let Some(plan) = msg
        .get("tool_plan")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
    {
        content.push(Part::Text {
            text: plan.to_owned(),
            cache: None,
        });
    }
    if let Some(Value::Array(parts)) = msg.get("content") {
        for p in parts {
            match p.get("type").and_then(Value::as_str) {
                Some("text") => content.push(Part::Text {
                    text: p
                        .get("text")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    cache: None,
                }),
                Some("thinking") => content.push(Part::Thinking {
                    text: p
                        .get("thinking")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    signature: None,
                }),
                _ => content.push(Part::Opaque {
                    format: Format::Cohere,
                    block: p.clone(),
                }),
            }
        }
    }
    if let Some(Value::Array(calls)) = msg.get("tool_calls") {
        for c in calls {
            content.push(Part::ToolUse {
                id: c
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                name: c
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                arguments: c
                    .pointer("/function/arguments")
                    .and_then(Value::as_str)
                    .unwrap_or("{}")
                    .to_owned(),
                cache: None,
            });
        }
    }
    Ok(ChatResponse {
        id: m
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        model: String::new(),
        content,
        stop_reason: stop_from_finish(
            m.get("finish_reason")
                .and_then(Value::as_str)
                .unwrap_or("COMPLETE"),
        ),
        stop_sequence: None,
        usage: m.get("usage").map(parse_usage).unwrap_or_default(),
        created: None,
    })
}

/// Encodes a complete response for a Cohere client.
pub fn encode_response(r: &ChatResponse) -> Vec<u8> {
    let mut content = Vec::new();
    let mut calls = Vec::new();
    for p in &r.content {
        match p {
            Part::Text { text, .. } => content.push(json!({"type": "text", "text": text})),
            Part::Thinking { text, .. } => content.push(json!({"type": "thinking", "thinking": text})),
            Part::ToolUse {
                id,
                name,
                arguments,
                ..
            } => calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})),
            Part::Opaque {
                format: Format::Cohere,
                block,
            } => content.push(block.clone()),
            _ => {}
        }
    }
    let mut msg = Map::new();
    msg.insert("role".into(), json!("assistant"));
    msg.insert("content".into(), Value::Array(content));
    if !calls.is_empty() {
        msg.insert("tool_calls".into(), Value::Array(calls));
    }
    serde_json::to_vec(&json!({
        "id": r.id,
        "finish_reason": finish_reason(r.stop_reason),
        "message": msg,
        "usage": usage_json(&r.usage),
    }))
    .unwrap_or_default()
}
