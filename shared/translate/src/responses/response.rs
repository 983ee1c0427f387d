//! The Responses API's `response` object <-> canonical response; usage; output items.

use crate::json::parse_body;
use gw_model::*;
use serde_json::{Value, json};

/// Canonical usage from a Responses `usage` (input includes cached tokens, output includes
/// reasoning tokens).
pub fn parse_usage(u: &Value) -> Usage {
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("/input_tokens_details/cached_tokens");
    Usage {
        input: n("/input_tokens").saturating_sub(cached),
        output: n("/output_tokens"),
        cache_read: cached,
        cache_write: 0,
        reasoning: n("/output_tokens_details/reasoning_tokens"),
    }
}

/// A Responses `usage` object.
pub fn usage_json(u: &Usage) -> Value {
    let input = u.prompt_total();
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": u.cache_read},
        "output_tokens": u.output,
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": u.total(),
    })
}

/// The output items of a canonical answer (ids derived from the response id, stable across a
/// stream and the final object).
pub(crate) fn output_items(r: &ChatResponse, namespaces: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut text = String::new();
    let flush = |text: &mut String, out: &mut Vec<Value>| {
        if !text.is_empty() {
            let n = out.len();
            out.push(message_item(
                &item_id("msg", &r.id, n),
                std::mem::take(text),
                "completed",
            ));
        }
    };
    for p in &r.content {
        match p {
            Part::Text { text: t, .. } => text.push_str(t),
            Part::Thinking { text: t, signature } => {
                flush(&mut text, &mut out);
                let n = out.len();
                out.push(reasoning_item(
                    &item_id("rs", &r.id, n),
                    t,
                    signature.as_deref(),
                ));
            }
            Part::ToolUse {
                id,
                name,
                arguments,
                ..
            } => {
                flush(&mut text, &mut out);
                let n = out.len();
                out.push(call_item(
                    &item_id("fc", &r.id, n),
                    id,
                    name,
                    arguments,
                    "completed",
                    namespaces,
                ));
            }
            Part::RedactedThinking { data } => {
                flush(&mut text, &mut out);
                let n = out.len();
                out.push(
                    json!({"type": "reasoning", "id": item_id("rs", &r.id, n), "summary": [],
                                "encrypted_content": format!("{}{data}", super::REDACTED)}),
                );
            }
            Part::Opaque {
                format: Format::Responses,
                block,
            } => {
                flush(&mut text, &mut out);
                out.push(block.clone());
            }
            _ => {}
        }
    }
    flush(&mut text, &mut out);
    if r.stop_reason == StopReason::MaxTokens {
        mark_cut(&mut out);
    }
    out
}

/// The last message of an answer cut by the output limit is incomplete, as OpenAI marks it.
pub(crate) fn mark_cut(output: &mut [Value]) {
    if let Some(m) = output.iter_mut().rev().find(|i| i["type"] == "message") {
        m["status"] = json!("incomplete");
    }
}

/// An output item id: `<prefix>_<response id tag>_<index>`.
pub(crate) fn item_id(prefix: &str, response_id: &str, index: usize) -> String {
    let tag: String = response_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(24)
        .collect();
    format!("{prefix}_{tag}{index}")
}

pub(crate) fn message_item(id: &str, text: String, status: &str) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

pub(crate) fn reasoning_item(id: &str, text: &str, signature: Option<&str>) -> Value {
    let mut v = json!({"type": "reasoning", "id": id,
                       "summary": [{"type": "summary_text", "text": text}]});
    if let Some(s) = signature {
        v["encrypted_content"] = json!(s);
    }
    v
}

pub(crate) fn call_item(
    id: &str,
    call_id: &str,
    name: &str,
    arguments: &str,
    status: &str,
    namespaces: &[String],
) -> Value {
    let (ns, name) = super::tools::split_name(namespaces, name);
    let mut v = json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
                       "arguments": arguments, "status": status});
    if let Some(ns) = ns {
        v["namespace"] = json!(ns);
    }
    v
}

/// The whole `response` object.
pub(crate) fn response_object(r: &ChatResponse, output: Vec<Value>, status: &str) -> Value {
    let incomplete = (status == "incomplete").then(|| json!({"reason": "max_output_tokens"}));
    json!({
        "id": r.id,
        "object": "response",
        "created_at": r.created.unwrap_or(0),
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": null,
        "model": r.model,
        "output": output,
        "parallel_tool_calls": true,
        "tool_choice": "auto",
        "tools": [],
        "text": {"format": {"type": "text"}},
        "usage": usage_json(&r.usage),
    })
}

/// Response status for a canonical stop.
pub(crate) fn status_for(stop: StopReason) -> &'static str {
    if stop == StopReason::MaxTokens {
        "incomplete"
    } else {
        "completed"
    }
}

/// Encodes a complete response for a Responses client whose request declared `namespaces`.
pub fn encode_response(r: &ChatResponse, namespaces: &[String]) -> Vec<u8> {
    let mut r = r.clone();
    if !r.id.starts_with("resp_") {
        r.id = format!(
            "resp_{}",
            r.id.chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
        );
    }
    let output = output_items(&r, namespaces);
    serde_json::to_vec(&response_object(&r, output, status_for(r.stop_reason))).unwrap_or_default()
}

/// Decodes a complete upstream `response` object.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, ApiError> {
    let m = parse_body(body).map_err(|e| {
        ApiError::new(
            ErrorKind::Api,
            format!("upstream sent malformed JSON: {}", e.message),
        )
    })?;
    decode_object(&Value::Object(m))
}

pub(crate) fn decode_object(m: &Value) -> Result<ChatResponse, ApiError> {
    let output = m
        .get("output")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::new(ErrorKind::Api, "upstream sent a response without output"))?;
    let mut content = Vec::new();
    for item in output {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                for c in item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(t) = c.get("text").and_then(Value::as_str) {
                        content.push(Part::Text {
                            text: t.to_owned(),
                            cache: None,
                        });
                    }
                }
            }
            Some("function_call") => content.push(Part::ToolUse {
                id: item
                    .get("call_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                name: item
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                arguments: item
                    .get("arguments")
                    .and_then(Value::as_str)
                    .unwrap_or("{}")
                    .to_owned(),
                cache: None,
            }),
            Some("reasoning") => content.push(Part::Thinking {
                text: item
                    .get("summary")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.get("text").and_then(Value::as_str))
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default(),
                signature: item
                    .get("encrypted_content")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            }),
            _ => content.push(Part::Opaque {
                format: Format::Responses,
                block: item.clone(),
            }),
        }
    }
    let called = content.iter().any(|p| matches!(p, Part::ToolUse { .. }));
    let stop_reason = match (m.get("status").and_then(Value::as_str), called) {
        (Some("incomplete"), _) => match m
            .pointer("/incomplete_details/reason")
            .and_then(Value::as_str)
        {
            Some("content_filter") => StopReason::ContentFilter,
            _ => StopReason::MaxTokens,
        },
        (Some("failed"), _) => StopReason::Error,
        (_, true) => StopReason::ToolUse,
        _ => StopReason::EndTurn,
    };
    Ok(ChatResponse {
        id: m
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        model: m
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        content,
        stop_reason,
        stop_sequence: None,
        usage: m.get("usage").map(parse_usage).unwrap_or_default(),
        created: m.get("created_at").and_then(Value::as_i64),
    })
}
