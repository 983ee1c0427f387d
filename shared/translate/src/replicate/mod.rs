//! Replicate predictions (`POST /predictions` with `version`: `owner/name`, `owner/name:version`
//! or a version id) <-> canonical model.
//!
//! Replicate's language models take a prompt, not a conversation. The chat becomes:
//! - `system_prompt`: the system parts (and mid-conversation instructions), joined by a blank line;
//! - `prompt`: a single user turn's text as it is; a longer conversation as
//!   `User: ...` / `Assistant: ...` paragraphs ending with `Assistant:`;
//! - `max_tokens`, `temperature`, `top_p`, `top_k`, `seed`, `presence_penalty`,
//!   `frequency_penalty`, and `stop_sequences` (comma-separated).
//!
//! Tools and images have no place there: a 400 names them rather than dropping them.
//!
//! A call is two steps: the prediction is created, then its answer is read where the creation
//! answer points ([`follow_up`]): `urls.stream` for streams (SSE `output` / `done` / `error`),
//! `urls.get` for a prediction still running after `Prefer: wait`. Usage is the prediction's
//! `metrics` (`input_token_count`, `output_token_count`), which streams do not carry.

mod stream;

use crate::EncodeOpts;
use gw_model::{
    ApiError, ChatRequest, ChatResponse, ErrorKind, Message, Part, Role, StopReason, Usage,
};
use serde_json::{Map, Value, json};
pub use stream::{Decoder, Encoder};

/// Where the answer of a created prediction is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUp {
    /// The URL to GET.
    pub url: String,
    /// It is the SSE stream (else the prediction, polled).
    pub stream: bool,
}

/// After the creation answer (or a poll): where to read next, if anywhere.
pub fn follow_up(stream: bool, body: &[u8]) -> Option<FollowUp> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let url = |k: &str| {
        v.get("urls")
            .and_then(|u| u.get(k))
            .and_then(Value::as_str)
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .map(str::to_owned)
    };
    if stream {
        return url("stream").map(|url| FollowUp { url, stream: true });
    }
    match v.get("status").and_then(Value::as_str) {
        Some("starting" | "processing") => url("get").map(|url| FollowUp { url, stream: false }),
        _ => None,
    }
}

fn text_of(parts: &[Part], what: &str) -> Result<String, ApiError> {
    let mut out = String::new();
    for p in parts {
        match p {
            Part::Text { text, .. } => out.push_str(text),
            Part::Thinking { .. } | Part::RedactedThinking { .. } => {}
            Part::Image { .. } => return Err(not_here("images")),
            Part::ToolUse { .. } | Part::ToolResult { .. } => return Err(not_here("tools")),
            Part::Opaque { .. } => {
                return Err(not_here(&format!("this {what} content block")));
            }
        }
    }
    Ok(out)
}

fn not_here(what: &str) -> ApiError {
    ApiError::invalid(format!(
        "Replicate models take a text prompt: {what} cannot be sent to them"
    ))
    .with_code("unsupported_parameter")
}

/// Encodes a canonical request as a prediction.
pub fn encode_request(req: &ChatRequest, o: &EncodeOpts<'_>) -> Result<Vec<u8>, ApiError> {
    if !req.tools.is_empty() {
        return Err(not_here("tools"));
    }
    let mut system: Vec<String> = Vec::new();
    let sys = text_of(&req.system, "system")?;
    if !sys.is_empty() {
        system.push(sys);
    }
    let mut turns: Vec<(Role, String)> = Vec::new();
    for m in &req.messages {
        let t = text_of(&m.content, "message")?;
        match m.role {
            Role::System => system.push(t),
            r => turns.push((r, t)),
        }
    }
    let prompt = match turns.as_slice() {
        [(Role::User, t)] => t.clone(),
        _ => {
            let mut p = String::new();
            for (r, t) in &turns {
                p.push_str(if *r == Role::User {
                    "User: "
                } else {
                    "Assistant: "
                });
                p.push_str(t);
                p.push_str("\n\n");
            }
            if turns.last().is_none_or(|(r, _)| *r == Role::User) {
                p.push_str("Assistant:");
            }
            p.trim_end().to_owned()
        }
    };
    let mut input = Map::new();
    input.insert("prompt".into(), json!(prompt));
    if !system.is_empty() {
        input.insert("system_prompt".into(), json!(system.join("\n\n")));
    }
    let s = &req.sampling;
    input.insert(
        "max_tokens".into(),
        json!(s.max_tokens.unwrap_or(o.default_max_tokens)),
    );
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            input.insert(k.into(), v);
        }
    };
    put("temperature", s.temperature.map(crate::json::num));
    put("top_p", s.top_p.map(crate::json::num));
    put("top_k", s.top_k.map(|k| json!(k)));
    put("seed", s.seed.map(|k| json!(k)));
    put("presence_penalty", s.presence_penalty.map(crate::json::num));
    put(
        "frequency_penalty",
        s.frequency_penalty.map(crate::json::num),
    );
    if !s.stop.is_empty() {
        input.insert("stop_sequences".into(), json!(s.stop.join(",")));
    }
    crate::json::body_bytes(
        [
            ("version".to_owned(), json!(o.model)),
            ("input".to_owned(), Value::Object(input)),
            ("stream".to_owned(), json!(req.stream)),
        ]
        .into_iter()
        .collect(),
    )
}

/// Decodes a prediction as a request (the gateway is no Replicate server; for symmetry and tests).
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let m = crate::json::parse_body(body)?;
    let input = m
        .get("input")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::invalid("`input` is required").with_param("input"))?;
    let text = |k: &str| input.get(k).and_then(Value::as_str).map(str::to_owned);
    let part = |t: String| Part::Text {
        text: t,
        cache: None,
    };
    let mut req = ChatRequest {
        model: m
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        stream: m.get("stream").and_then(Value::as_bool).unwrap_or(false),
        ..ChatRequest::default()
    };
    req.system.extend(text("system_prompt").map(part));
    req.messages.push(Message {
        role: Role::User,
        content: vec![part(text("prompt").unwrap_or_default())],
    });
    req.sampling.max_tokens = input
        .get("max_tokens")
        .or_else(|| input.get("max_new_tokens"))
        .and_then(Value::as_u64);
    Ok(req)
}

/// A prediction's usage, from its `metrics`.
pub fn usage_of(v: &Value) -> Usage {
    let m = v.get("metrics");
    let n = |k: &str| {
        m.and_then(|m| m.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Usage {
        input: n("input_token_count"),
        output: n("output_token_count"),
        ..Usage::default()
    }
}

/// The model's text: `output` is the streamed tokens as a list, or one string.
fn output_text(v: &Value) -> String {
    match v.get("output") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// Decodes a finished prediction; a failed or canceled one is an error.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorKind::Api,
            format!("upstream sent a prediction that is not JSON: {e}"),
        )
    })?;
    match v.get("status").and_then(Value::as_str) {
        Some("succeeded") => {}
        Some("failed") => {
            let why = v
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            return Err(ApiError::new(
                ErrorKind::Api,
                format!("the prediction failed: {why}"),
            ));
        }
        Some("canceled") => {
            return Err(ApiError::new(ErrorKind::Api, "the prediction was canceled"));
        }
        other => {
            return Err(ApiError::new(
                ErrorKind::Timeout,
                format!(
                    "the prediction did not finish (status {})",
                    other.unwrap_or("missing")
                ),
            ));
        }
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
        content: vec![Part::Text {
            text: output_text(&v),
            cache: None,
        }],
        stop_reason: StopReason::EndTurn,
        stop_sequence: None,
        usage: usage_of(&v),
        created: None,
    })
}

/// Encodes a canonical answer as a finished prediction.
pub fn encode_response(resp: &ChatResponse) -> Vec<u8> {
    let text: String = resp
        .content
        .iter()
        .filter_map(|p| match p {
            Part::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    serde_json::to_vec(&json!({
        "id": resp.id, "model": resp.model, "status": "succeeded", "output": [text], "error": null,
        "metrics": {"input_token_count": resp.usage.prompt_total(), "output_token_count": resp.usage.output},
    }))
    .unwrap_or_default()
}

/// Decodes an error body: `{"detail": ...}` (with a `title` on newer errors).
pub fn decode_error(status: u16, body: &[u8]) -> ApiError {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let s = |k: &str| {
        v.as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let message = match (s("title"), s("detail")) {
        (Some(t), Some(d)) => format!("{t}: {d}"),
        (None, Some(d)) => d,
        _ => crate::anthropic::body_snippet(body),
    };
    ApiError::new(ApiError::kind_for_status(status), message).with_status(status)
}

/// Encodes an error body.
pub fn encode_error(err: &ApiError) -> Vec<u8> {
    serde_json::to_vec(&json!({"detail": err.message, "status": err.status})).unwrap_or_default()
}

#[cfg(test)]
mod tests;
