//! Bedrock Converse responses <-> canonical response; usage, stop reasons and errors.

use crate::json::parse_body;
use gw_model::*;
use serde_json::{Value, json};

/// Canonical stop for a Converse `stopReason`.
pub fn stop_from_reason(reason: &str) -> StopReason {
    match reason {
        "tool_use" => StopReason::ToolUse,
        "max_tokens" | "model_context_window_exceeded" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        "guardrail_intervened" | "content_filtered" => StopReason::ContentFilter,
        "malformed_model_output" | "malformed_tool_use" => StopReason::Error,
        _ => StopReason::EndTurn,
    }
}

/// Converse `stopReason` for a canonical stop.
pub fn stop_reason(stop: StopReason) -> &'static str {
    match stop {
        StopReason::EndTurn | StopReason::Pause | StopReason::Error => "end_turn",
        StopReason::MaxTokens => "max_tokens",
        StopReason::StopSequence => "stop_sequence",
        StopReason::ToolUse => "tool_use",
        StopReason::ContentFilter | StopReason::Refusal => "content_filtered",
    }
}

/// Canonical usage: `inputTokens` excludes the cache, as Anthropic's does.
pub fn parse_usage(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input: n("inputTokens"),
        output: n("outputTokens"),
        cache_read: n("cacheReadInputTokens"),
        cache_write: n("cacheWriteInputTokens"),
        reasoning: 0,
    }
}

/// `usage` for a Converse client.
pub fn usage_json(u: &Usage) -> Value {
    json!({
        "inputTokens": u.input,
        "outputTokens": u.output,
        "totalTokens": u.total(),
        "cacheReadInputTokens": u.cache_read,
        "cacheWriteInputTokens": u.cache_write,
    })
}

/// Decodes a complete Converse response.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, ApiError> {
    let m = parse_body(body).map_err(|e| {
        ApiError::new(
            ErrorKind::Api,
            format!("upstream sent malformed JSON: {}", e.message),
        )
    })?;
    let blocks = m
        .get("output")
        .and_then(|o| o.pointer("/message/content"))
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::new(ErrorKind::Api, "upstream sent a response without output"))?;
    let mut content = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        if let Some(p) =
            super::request::decode_block_pub(b, &format!("output.message.content[{i}]"))?
        {
            content.push(p);
        }
    }
    Ok(ChatResponse {
        id: String::new(),
        model: String::new(),
        content,
        stop_reason: stop_from_reason(
            m.get("stopReason")
                .and_then(Value::as_str)
                .unwrap_or("end_turn"),
        ),
        // Claude on Bedrock names the matched sequence in its model-specific fields.
        stop_sequence: m
            .get("additionalModelResponseFields")
            .and_then(|f| f.get("stop_sequence"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        usage: m.get("usage").map(parse_usage).unwrap_or_default(),
        created: None,
    })
}

/// Encodes a complete response for a Converse client.
pub fn encode_response(r: &ChatResponse) -> Vec<u8> {
    let content: Vec<Value> = r
        .content
        .iter()
        .filter_map(super::request::encode_answer_block)
        .collect();
    serde_json::to_vec(&json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason(r.stop_reason),
        "usage": usage_json(&r.usage),
        "metrics": {"latencyMs": 0},
    }))
    .unwrap_or_default()
}

/// Encodes an error body (`{"message": ...}`, the type is in a header Bedrock clients also read).
pub fn encode_error(err: &ApiError) -> Vec<u8> {
    serde_json::to_vec(&json!({"message": err.message})).unwrap_or_default()
}

/// Decodes an upstream error body: `{"message"}` (or `{"Message"}`).
pub fn decode_error(status: u16, body: &[u8]) -> ApiError {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let message = v
        .as_ref()
        .and_then(|v| v.get("message").or_else(|| v.get("Message")))
        .and_then(Value::as_str)
        .map_or_else(|| crate::anthropic::body_snippet(body), str::to_owned);
    ApiError::new(ApiError::kind_for_status(status), message).with_status(status)
}
