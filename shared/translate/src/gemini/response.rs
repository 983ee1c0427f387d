//! Gemini `GenerateContentResponse` <-> canonical response; usage and finish reasons.

use super::ids;
use crate::json::parse_body;
use gw_model::*;
use serde_json::{Map, Value, json};

/// Canonical stop for a Gemini `finishReason`; `called` says a function call was made (Gemini
/// says `STOP` then too).
pub fn stop_from_finish(reason: &str, called: bool) -> StopReason {
    match reason {
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY" | "PROHIBITED_CONTENT" | "BLOCKLIST" | "SPII" | "IMAGE_SAFETY" | "RECITATION" => {
            StopReason::ContentFilter
        }
        "MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL" | "OTHER" | "LANGUAGE" => {
            StopReason::Error
        }
        _ if called => StopReason::ToolUse,
        _ => StopReason::EndTurn,
    }
}

/// Gemini `finishReason` for a canonical stop.
pub fn finish_reason(stop: StopReason) -> &'static str {
    match stop {
        StopReason::EndTurn
        | StopReason::StopSequence
        | StopReason::ToolUse
        | StopReason::Pause => "STOP",
        StopReason::MaxTokens => "MAX_TOKENS",
        StopReason::ContentFilter | StopReason::Refusal => "SAFETY",
        StopReason::Error => "OTHER",
    }
}

/// Canonical usage from `usageMetadata`: `candidatesTokenCount` excludes thoughts, and the
/// prompt count includes cached tokens.
pub fn parse_usage(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("cachedContentTokenCount");
    let thoughts = n("thoughtsTokenCount");
    Usage {
        input: (n("promptTokenCount").saturating_add(n("toolUsePromptTokenCount")))
            .saturating_sub(cached),
        output: n("candidatesTokenCount").saturating_add(thoughts),
        cache_read: cached,
        cache_write: 0,
        reasoning: thoughts,
    }
}

/// `usageMetadata` for a Gemini client.
pub fn usage_json(u: &Usage) -> Value {
    let prompt = u.prompt_total();
    let candidates = u.output.saturating_sub(u.reasoning);
    let mut m = json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": u.total(),
    });
    if u.reasoning > 0 {
        m["thoughtsTokenCount"] = json!(u.reasoning);
    }
    if u.cache_read > 0 {
        m["cachedContentTokenCount"] = json!(u.cache_read);
    }
    m
}

/// Decodes a complete upstream response.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, ApiError> {
    let m = parse_body(body).map_err(|e| {
        ApiError::new(
            ErrorKind::Api,
            format!("upstream sent malformed JSON: {}", e.message),
        )
    })?;
    let id = m
        .get("responseId")
        .and_then(Value::as_str)
        .unwrap_or("gemini")
        .to_owned();
    let cand = m
        .get("candidates")
        .and_then(Value::as_array)
        .and_then(|a| a.first());
    let mut content = Vec::new();
    let mut calls = 0;
    if let Some(parts) = cand
        .and_then(|c| c.pointer("/content/parts"))
        .and_then(Value::as_array)
    {
        for p in parts {
            if let Some(part) = decode_part(p, &id, &mut calls) {
                content.push(part);
            }
        }
    }
    let finish = cand
        .and_then(|c| c.get("finishReason"))
        .and_then(Value::as_str);
    let blocked = m
        .get("promptFeedback")
        .and_then(|f| f.get("blockReason"))
        .is_some();
    let called = calls > 0;
    let stop_reason = match finish {
        Some(f) => stop_from_finish(f, called),
        None if blocked => StopReason::ContentFilter,
        None if cand.is_none() => {
            return Err(ApiError::new(
                ErrorKind::Api,
                "upstream sent a response without candidates",
            ));
        }
        None if called => StopReason::ToolUse,
        None => StopReason::EndTurn,
    };
    Ok(ChatResponse {
        id,
        model: m
            .get("modelVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        content,
        stop_reason,
        stop_sequence: None,
        usage: m.get("usageMetadata").map(parse_usage).unwrap_or_default(),
        created: None,
    })
}

/// One response part; `calls` counts function calls (their ids are numbered by it).
pub(crate) fn decode_part(p: &Value, response_id: &str, calls: &mut usize) -> Option<Part> {
    let sig = p.get("thoughtSignature").and_then(Value::as_str);
    if let Some(fc) = p.get("functionCall") {
        let n = *calls;
        *calls += 1;
        let id = match fc.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => ids::call_id(response_id, n, sig),
        };
        return Some(Part::ToolUse {
            id,
            name: fc
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            arguments: fc
                .get("args")
                .cloned()
                .unwrap_or_else(|| json!({}))
                .to_string(),
            cache: None,
        });
    }
    if let Some(t) = p.get("text").and_then(Value::as_str) {
        if p.get("thought").and_then(Value::as_bool) == Some(true) {
            return Some(Part::Thinking {
                text: t.to_owned(),
                signature: sig.map(str::to_owned),
            });
        }
        return (!t.is_empty()).then(|| Part::Text {
            text: t.to_owned(),
            cache: None,
        });
    }
    Some(Part::Opaque {
        format: Format::Gemini,
        block: p.clone(),
    })
}

/// The part a Gemini client reads for a canonical part (`None`: nothing to show).
pub(crate) fn encode_part(p: &Part) -> Option<Value> {
    Some(match p {
        Part::Text { text, .. } => json!({"text": text}),
        Part::Thinking { text, signature } => {
            let mut v = json!({"text": text, "thought": true});
            // A bytes field: another provider's signature that is not base64 is wrapped.
            if let Some(s) = signature {
                v["thoughtSignature"] = json!(ids::wrap_signature(s));
            }
            v
        }
        Part::ToolUse {
            id,
            name,
            arguments,
            ..
        } => function_call(id, name, arguments),
        Part::Image {
            source: ImageSource::Base64 { media_type, data },
            ..
        } => json!({"inlineData": {"mimeType": media_type, "data": data}}),
        Part::Opaque {
            format: Format::Gemini,
            block,
        } => block.clone(),
        _ => return None,
    })
}

/// A `functionCall` part; the id goes along so the client's `functionResponse` can name it.
pub(crate) fn function_call(id: &str, name: &str, arguments: &str) -> Value {
    let args: Value = serde_json::from_str(arguments)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    let mut v = json!({"functionCall": {"name": name, "args": args, "id": id}});
    if let Some(sig) = ids::signature_of(id) {
        v["thoughtSignature"] = json!(sig);
    }
    v
}

/// Encodes a complete response for a Gemini client.
pub fn encode_response(r: &ChatResponse) -> Vec<u8> {
    let parts: Vec<Value> = r.content.iter().filter_map(encode_part).collect();
    let mut body = Map::new();
    body.insert(
        "candidates".into(),
        json!([{
            "content": {"role": "model", "parts": parts},
            "finishReason": finish_reason(r.stop_reason),
            "index": 0,
        }]),
    );
    body.insert("usageMetadata".into(), usage_json(&r.usage));
    body.insert("modelVersion".into(), json!(r.model));
    body.insert("responseId".into(), json!(r.id));
    serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
}
