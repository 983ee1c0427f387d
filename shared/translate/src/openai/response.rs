//! OpenAI `chat.completion` objects <-> canonical response.

use gw_model::*;
use serde_json::{Map, Value, json};

/// Canonical stop reason from an OpenAI `finish_reason`.
pub fn stop_from_finish(f: &str) -> StopReason {
    match f {
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::ContentFilter,
        _ => StopReason::EndTurn,
    }
}

/// OpenAI `finish_reason` for a canonical stop reason. `Error` maps to `stop`: OpenAI has no
/// error finish reason and `content_filter` would wrongly blame the content.
pub fn finish_reason(r: StopReason) -> &'static str {
    match r {
        StopReason::EndTurn | StopReason::StopSequence | StopReason::Pause | StopReason::Error => {
            "stop"
        }
        StopReason::MaxTokens => "length",
        StopReason::ToolUse => "tool_calls",
        StopReason::ContentFilter | StopReason::Refusal => "content_filter",
    }
}

/// Canonical usage from an OpenAI `usage` object (`input` excludes cached tokens).
pub fn parse_usage(u: &Value) -> Usage {
    let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let prompt = n(u.get("prompt_tokens"));
    let cached = n(u.pointer("/prompt_tokens_details/cached_tokens"));
    Usage {
        input: prompt.saturating_sub(cached),
        output: n(u.get("completion_tokens")),
        cache_read: cached,
        cache_write: 0,
        reasoning: n(u.pointer("/completion_tokens_details/reasoning_tokens")),
    }
}

/// OpenAI `usage` object for canonical usage.
pub fn usage_json(u: &Usage) -> Value {
    let prompt = u.prompt_total();
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": u.output,
        "total_tokens": u.total(),
        "prompt_tokens_details": {"cached_tokens": u.cache_read},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning},
    })
}

/// Decodes a `chat.completion` body.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorKind::Api, format!("upstream sent malformed JSON: {e}")))?;
    let choice = v
        .pointer("/choices/0")
        .ok_or_else(|| ApiError::new(ErrorKind::Api, "upstream response has no choices"))?;
    let msg = choice.get("message").cloned().unwrap_or(Value::Null);
    let mut content = Vec::new();
    if let Some(r) = msg
        .get("reasoning_content")
        .or_else(|| msg.get("reasoning"))
        .and_then(Value::as_str)
        && !r.is_empty()
    {
        content.push(Part::Thinking {
            text: r.to_owned(),
            signature: None,
        });
    }
    if let Some(t) = msg.get("content").and_then(Value::as_str)
        && !t.is_empty()
    {
        content.push(Part::Text {
            text: t.to_owned(),
            cache: None,
        });
    }
    let refusal = msg.get("refusal").and_then(Value::as_str);
    if let Some(r) = refusal {
        content.push(Part::Text {
            text: r.to_owned(),
            cache: None,
        });
    }
    if let Some(calls) = msg.get("tool_calls").and_then(Value::as_array) {
        for (i, c) in calls.iter().enumerate() {
            content.push(Part::ToolUse {
                id: c
                    .get("id")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("call_{i}"), str::to_owned),
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
    let mut stop = stop_from_finish(
        choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .unwrap_or("stop"),
    );
    if refusal.is_some() {
        stop = StopReason::Refusal;
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
        stop_sequence: None,
        usage: v.get("usage").map(parse_usage).unwrap_or_default(),
        created: v.get("created").and_then(Value::as_i64),
    })
}

/// Encodes a `chat.completion` body.
pub fn encode_response(r: &ChatResponse) -> Vec<u8> {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for p in &r.content {
        match p {
            Part::Text { text: t, .. } => text.push_str(t),
            Part::Thinking { text: t, .. } => reasoning.push_str(t),
            Part::ToolUse { id, name, arguments, .. } => {
                calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}))
            }
            _ => {}
        }
    }
    let mut msg = Map::new();
    msg.insert("role".into(), json!("assistant"));
    msg.insert(
        "content".into(),
        if text.is_empty() && !calls.is_empty() {
            Value::Null
        } else {
            json!(text)
        },
    );
    msg.insert("refusal".into(), Value::Null);
    if !reasoning.is_empty() {
        msg.insert("reasoning_content".into(), json!(reasoning));
    }
    if !calls.is_empty() {
        msg.insert("tool_calls".into(), Value::Array(calls));
    }
    let body = json!({
        "id": r.id,
        "object": "chat.completion",
        "created": r.created.unwrap_or(0),
        "model": r.model,
        "choices": [{"index": 0, "message": msg, "logprobs": null, "finish_reason": finish_reason(r.stop_reason)}],
        "usage": usage_json(&r.usage),
    });
    serde_json::to_vec(&body).unwrap_or_default()
}
