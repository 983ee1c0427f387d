//! Anthropic `message` objects <-> canonical response.

use crate::lax;
use gw_model::*;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::borrow::Cow;

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

/// Decodes a `message` body. Typed and borrowed from the body: no JSON tree is built, except
/// for tool inputs and blocks the gateway does not know (kept verbatim).
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, ApiError> {
    let malformed = |e: serde_json::Error| {
        ApiError::new(ErrorKind::Api, format!("upstream sent malformed JSON: {e}"))
    };
    // serde would read an array as the struct's fields in order: only an object is a message.
    if body.trim_ascii_start().first() != Some(&b'{') {
        let e = serde_json::from_slice::<serde::de::IgnoredAny>(body).err();
        return Err(ApiError::new(
            ErrorKind::Api,
            format!(
                "upstream sent malformed JSON: {}",
                e.map_or_else(|| "expected an object".to_owned(), |e| e.to_string())
            ),
        ));
    }
    let m: Message<'_> = serde_json::from_slice(body).map_err(malformed)?;
    let mut content = Vec::with_capacity(m.content.0.len());
    let mut json_tool = false;
    for raw in m.content.0 {
        // A block that is not an object (or not a readable one) is kept verbatim below.
        let b: Block<'_> = if raw.get().starts_with('{') {
            serde_json::from_str(raw.get()).unwrap_or_default()
        } else {
            Block::default()
        };
        let input = || match b.input {
            Some(i) => serde_json::from_str::<Value>(i.get()).map(|v| v.to_string()),
            None => Ok(String::new()),
        };
        content.push(match b.kind.as_deref().unwrap_or_default() {
            "text" => Part::Text {
                text: b.text.owned(),
                cache: None,
            },
            "tool_use" if b.name.as_deref() == Some(JSON_TOOL) => {
                json_tool = true;
                Part::Text {
                    text: input().map_err(malformed)?,
                    cache: None,
                }
            }
            "tool_use" => Part::ToolUse {
                arguments: if b.input.is_some() {
                    input().map_err(malformed)?
                } else {
                    "{}".to_owned()
                },
                id: b.id.owned(),
                name: b.name.owned(),
                cache: None,
            },
            "thinking" => Part::Thinking {
                text: b.thinking.owned(),
                signature: b.signature.0.map(Cow::into_owned),
            },
            "redacted_thinking" => Part::RedactedThinking {
                data: b.data.owned(),
            },
            _ => Part::Opaque {
                format: Format::Anthropic,
                block: serde_json::from_str(raw.get()).map_err(malformed)?,
            },
        });
    }
    let mut stop = stop_from_reason(m.stop_reason.as_deref().unwrap_or("end_turn"));
    if json_tool && stop == StopReason::ToolUse {
        stop = StopReason::EndTurn;
    }
    Ok(ChatResponse {
        id: m.id.owned(),
        model: m.model.owned(),
        content,
        stop_reason: stop,
        stop_sequence: m.stop_sequence.0.map(Cow::into_owned),
        usage: m.usage.canonical(),
        created: None,
    })
}

/// The fields of a `message` the gateway reads.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(default, borrow)]
    id: lax::Str<'a>,
    #[serde(default, borrow)]
    model: lax::Str<'a>,
    #[serde(default, borrow)]
    content: lax::RawList<'a>,
    #[serde(default, borrow)]
    stop_reason: lax::Str<'a>,
    #[serde(default, borrow)]
    stop_sequence: lax::Str<'a>,
    #[serde(default, deserialize_with = "lax::object")]
    usage: UsageIn,
}

/// A content block's fields, whatever its type.
#[derive(Deserialize, Default)]
struct Block<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: lax::Str<'a>,
    #[serde(default, borrow)]
    text: lax::Str<'a>,
    #[serde(default, borrow)]
    id: lax::Str<'a>,
    #[serde(default, borrow)]
    name: lax::Str<'a>,
    #[serde(default, borrow)]
    input: Option<&'a RawValue>,
    #[serde(default, borrow)]
    thinking: lax::Str<'a>,
    #[serde(default, borrow)]
    signature: lax::Str<'a>,
    #[serde(default, borrow)]
    data: lax::Str<'a>,
}

/// An Anthropic `usage` object, as `parse_usage` reads it.
#[derive(Deserialize, Default)]
struct UsageIn {
    #[serde(default)]
    input_tokens: lax::U64,
    #[serde(default)]
    output_tokens: lax::U64,
    #[serde(default)]
    cache_read_input_tokens: lax::U64,
    #[serde(default)]
    cache_creation_input_tokens: lax::U64,
}

/// Canonical usage from an Anthropic `usage` object's text, as `parse_usage` reads it, without a
/// JSON tree. Anything but an object reads as zeros.
pub(crate) fn usage_from_raw(raw: &str) -> Usage {
    lax::object_from_str::<UsageIn>(raw).canonical()
}

impl UsageIn {
    fn canonical(&self) -> Usage {
        Usage {
            input: self.input_tokens.0,
            output: self.output_tokens.0,
            cache_read: self.cache_read_input_tokens.0,
            cache_write: self.cache_creation_input_tokens.0,
            reasoning: 0,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(v: &str) -> ChatResponse {
        decode_response(v.as_bytes()).unwrap()
    }

    #[test]
    fn a_message_is_read_with_every_block_kind() {
        let r = decode(
            r#"{"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "thinking", "thinking": "hm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "a \"quoted\" word"},
                {"type": "tool_use", "id": "t1", "name": "get", "input": {"city": "Paris", "n": [1, 2]}},
                {"type": "tool_use", "id": "t2", "name": "noargs"},
                {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {"query": "q"}},
                "not a block",
                ["text", "positional"]
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 3,
                      "cache_creation_input_tokens": 2, "server_tool_use": {"web_search_requests": 1}}}"#,
        );
        assert_eq!((r.id.as_str(), r.model.as_str()), ("msg_1", "claude-x"));
        assert_eq!(r.stop_reason, StopReason::ToolUse);
        assert_eq!(r.stop_sequence, None);
        assert_eq!(
            (
                r.usage.input,
                r.usage.output,
                r.usage.cache_read,
                r.usage.cache_write
            ),
            (10, 4, 3, 2)
        );
        let c = serde_json::to_value(&r.content).unwrap();
        assert_eq!(
            c,
            json!([
                {"type": "thinking", "text": "hm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "a \"quoted\" word"},
                // Tool input as compact JSON text, keys in order.
                {"type": "tool_use", "id": "t1", "name": "get", "arguments": "{\"city\":\"Paris\",\"n\":[1,2]}"},
                {"type": "tool_use", "id": "t2", "name": "noargs", "arguments": "{}"},
                // Blocks the gateway does not know, and junk, are kept verbatim.
                {"type": "opaque", "format": "anthropic", "block": {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {"query": "q"}}},
                {"type": "opaque", "format": "anthropic", "block": "not a block"},
                {"type": "opaque", "format": "anthropic", "block": ["text", "positional"]},
            ]),
        );
    }

    #[test]
    fn fields_of_the_wrong_type_read_as_absent_and_junk_is_an_error() {
        let r = decode(
            r#"{"id": 7, "model": ["m"], "content": {"type": "text"}, "stop_reason": 1, "usage": [5, 3]}"#,
        );
        assert_eq!((r.id.as_str(), r.model.as_str()), ("", ""));
        assert!(r.content.is_empty());
        assert_eq!(r.stop_reason, StopReason::EndTurn);
        assert_eq!(r.usage, Usage::default());
        let r = decode(
            r#"{"content": [{"type": "tool_use", "name": "gateway_json_response", "input": {"a": 1}}], "stop_reason": "tool_use"}"#,
        );
        assert_eq!(
            r.stop_reason,
            StopReason::EndTurn,
            "the JSON tool's answer is text"
        );
        assert_eq!(
            serde_json::to_value(&r.content).unwrap()[0]["text"],
            "{\"a\":1}"
        );
        for bad in [&b"{\"content\": ["[..], b"not json", b"[1, 2]"] {
            let e = decode_response(bad).unwrap_err();
            assert!(e.message.contains("malformed JSON"), "{}", e.message);
        }
    }
}
