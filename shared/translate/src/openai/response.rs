//! OpenAI `chat.completion` objects <-> canonical response.

use crate::lax;
use gw_model::*;
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;

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

/// Canonical usage from an OpenAI `usage` object's text, as `parse_usage` reads it, without a
/// JSON tree. Anything but an object reads as zeros.
pub(crate) fn usage_from_raw(raw: &str) -> Usage {
    #[derive(serde::Deserialize, Default)]
    struct In {
        #[serde(default)]
        prompt_tokens: lax::U64,
        #[serde(default)]
        completion_tokens: lax::U64,
        #[serde(default, deserialize_with = "lax::object")]
        prompt_tokens_details: Cached,
        #[serde(default, deserialize_with = "lax::object")]
        completion_tokens_details: Reasoning,
    }
    #[derive(serde::Deserialize, Default)]
    struct Cached {
        #[serde(default)]
        cached_tokens: lax::U64,
    }
    #[derive(serde::Deserialize, Default)]
    struct Reasoning {
        #[serde(default)]
        reasoning_tokens: lax::U64,
    }
    let u: In = lax::object_from_str(raw);
    let cached = u.prompt_tokens_details.cached_tokens.0;
    Usage {
        input: u.prompt_tokens.0.saturating_sub(cached),
        output: u.completion_tokens.0,
        cache_read: cached,
        cache_write: 0,
        reasoning: u.completion_tokens_details.reasoning_tokens.0,
    }
}

/// OpenAI `usage` object for canonical usage.
pub fn usage_json(u: &Usage) -> Value {
    serde_json::to_value(UsageOut::of(u)).unwrap_or_default()
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
    // Serialized straight from borrowed parts: no JSON tree is built on the way.
    let mut text: Cow<'_, str> = Cow::Borrowed("");
    let mut reasoning: Cow<'_, str> = Cow::Borrowed("");
    let mut tool_calls = Vec::new();
    for p in &r.content {
        match p {
            Part::Text { text: t, .. } => append(&mut text, t),
            Part::Thinking { text: t, .. } => append(&mut reasoning, t),
            Part::ToolUse {
                id,
                name,
                arguments,
                ..
            } => tool_calls.push(Call {
                id,
                kind: "function",
                function: Function { name, arguments },
            }),
            _ => {}
        }
    }
    let content = (!text.is_empty() || tool_calls.is_empty()).then_some(text);
    let body = Completion {
        id: &r.id,
        object: "chat.completion",
        created: r.created.unwrap_or(0),
        model: &r.model,
        choices: [Choice {
            index: 0,
            message: Message {
                role: "assistant",
                content,
                refusal: None,
                reasoning_content: reasoning,
                tool_calls,
            },
            logprobs: None,
            finish_reason: finish_reason(r.stop_reason),
        }],
        usage: UsageOut::of(&r.usage),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Adds `t` to `acc`, borrowing while there is only one piece.
fn append<'a>(acc: &mut Cow<'a, str>, t: &'a str) {
    if acc.is_empty() {
        *acc = Cow::Borrowed(t);
    } else {
        acc.to_mut().push_str(t);
    }
}

/// A `chat.completion` as written (field order as OpenAI's).
#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: UsageOut,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    /// `null` when the answer is only tool calls.
    content: Option<Cow<'a, str>>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "str::is_empty")]
    reasoning_content: Cow<'a, str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<Call<'a>>,
}

#[derive(Serialize)]
struct Call<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a>,
}

#[derive(Serialize)]
struct Function<'a> {
    name: &'a str,
    arguments: &'a str,
}

/// OpenAI's `usage` object, as `usage_json` builds it.
#[derive(Serialize)]
struct UsageOut {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: Cached,
    completion_tokens_details: Reasoning,
}

#[derive(Serialize)]
struct Cached {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct Reasoning {
    reasoning_tokens: u64,
}

impl UsageOut {
    fn of(u: &Usage) -> Self {
        Self {
            prompt_tokens: u.prompt_total(),
            completion_tokens: u.output,
            total_tokens: u.total(),
            prompt_tokens_details: Cached {
                cached_tokens: u.cache_read,
            },
            completion_tokens_details: Reasoning {
                reasoning_tokens: u.reasoning,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(content: Vec<Part>, stop: StopReason) -> ChatResponse {
        ChatResponse {
            id: "msg_1".into(),
            model: "m".into(),
            content,
            stop_reason: stop,
            stop_sequence: None,
            usage: Usage {
                input: 5,
                output: 7,
                cache_read: 2,
                cache_write: 1,
                reasoning: 3,
            },
            created: Some(9),
        }
    }

    fn text(t: &str) -> Part {
        serde_json::from_value(json!({"type": "text", "text": t})).unwrap()
    }

    #[test]
    fn a_completion_is_written_in_openai_field_order_with_text_joined() {
        let thinking = serde_json::from_value(json!({"type": "thinking", "text": "hm"})).unwrap();
        let call = serde_json::from_value(
            json!({"type": "tool_use", "id": "c1", "name": "f", "arguments": "{\"a\":1}"}),
        )
        .unwrap();
        let r = answer(
            vec![text("Hel"), thinking, text("lo \""), call],
            StopReason::ToolUse,
        );
        assert_eq!(
            String::from_utf8(encode_response(&r)).unwrap(),
            concat!(
                r#"{"id":"msg_1","object":"chat.completion","created":9,"model":"m","choices":[{"index":0,"#,
                r#""message":{"role":"assistant","content":"Hello \"","refusal":null,"reasoning_content":"hm","#,
                r#""tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"#,
                r#""logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":8,"#,
                r#""completion_tokens":7,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":2},"#,
                r#""completion_tokens_details":{"reasoning_tokens":3}}}"#
            )
        );
    }

    #[test]
    fn content_is_null_only_when_the_answer_is_tool_calls_alone() {
        let call = serde_json::from_value(
            json!({"type": "tool_use", "id": "c", "name": "f", "arguments": "{}"}),
        )
        .unwrap();
        let v: Value =
            serde_json::from_slice(&encode_response(&answer(vec![call], StopReason::ToolUse)))
                .unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
        let v: Value =
            serde_json::from_slice(&encode_response(&answer(vec![], StopReason::EndTurn))).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "");
        assert!(v["choices"][0]["message"].get("tool_calls").is_none());
        assert!(
            v["choices"][0]["message"]
                .get("reasoning_content")
                .is_none()
        );
        assert_eq!(
            usage_json(&answer(vec![], StopReason::EndTurn).usage)["total_tokens"],
            15
        );
    }
}
