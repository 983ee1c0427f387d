//! Same-format fast path: forward the client's bytes, touching only named top-level fields, and
//! forward the upstream's stream as a byte copy that is still checked event by event.
//!
//! The body is scanned once into borrowed raw values (no value is parsed or re-serialised), so
//! everything the gateway does not understand — thinking signatures, cache marks, new fields —
//! reaches the upstream exactly as the client wrote it.

use crate::lax::Fields;
use crate::{Format, anthropic, openai};
use gw_codec::SseFrame;
use gw_model::{ApiError, ErrorKind, Usage};
use serde::de::IgnoredAny;
use serde_json::Value;

/// Rewrites top-level fields of a JSON object: each `(key, Some(raw_json))` replaces or appends
/// the field, each `(key, None)` removes it. Other fields keep their bytes and order; when no
/// patch changes anything (the model is already the upstream's, say), the body goes as it came.
/// Returns `None` if `body` is not a JSON object.
pub fn patch_fields(body: &[u8], patches: &[(&str, Option<&str>)]) -> Option<Vec<u8>> {
    let top: Fields<'_> = serde_json::from_slice(body).ok()?;
    let mut applied = [false; 8];
    let applied = match patches.len() {
        n if n <= applied.len() => &mut applied[..n],
        _ => return Some(rewrite(&top, patches)),
    };
    for (k, v) in &top.0 {
        if let Some(i) = patches.iter().position(|(pk, _)| *pk == k.as_ref()) {
            if applied[i] || patches[i].1 != Some(v.get()) {
                return Some(rewrite(&top, patches)); // a change, or a repeated key to fold
            }
            applied[i] = true;
        }
    }
    let unchanged = patches
        .iter()
        .zip(applied.iter())
        .all(|((_, v), done)| *done || v.is_none());
    Some(if unchanged {
        body.to_vec()
    } else {
        rewrite(&top, patches)
    })
}

/// The object with `patches` applied (see `patch_fields`).
fn rewrite(top: &Fields<'_>, patches: &[(&str, Option<&str>)]) -> Vec<u8> {
    let len = top
        .0
        .iter()
        .map(|(k, v)| k.len() + v.get().len() + 4)
        .sum::<usize>();
    let mut out = Vec::with_capacity(len + 64);
    out.push(b'{');
    let mut first = true;
    let mut push = |out: &mut Vec<u8>, k: &str, v: &str| {
        if !first {
            out.push(b',');
        }
        first = false;
        // The key as a JSON string, written in place.
        let _ = serde_json::to_writer(&mut *out, k);
        out.push(b':');
        out.extend_from_slice(v.as_bytes());
    };
    let mut applied = vec![false; patches.len()];
    for (k, v) in &top.0 {
        match patches.iter().position(|(pk, _)| *pk == k.as_ref()) {
            Some(i) => {
                applied[i] = true;
                if let Some(nv) = patches[i].1 {
                    push(&mut out, k, nv);
                }
            }
            None => push(&mut out, k, v.get()),
        }
    }
    for (i, (k, v)) in patches.iter().enumerate() {
        if let (false, Some(v)) = (applied[i], v) {
            push(&mut out, k, v);
        }
    }
    out.push(b'}');
    out
}

/// A JSON string literal for `s`.
pub fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// What the fast path learns from one upstream event.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Seen {
    /// Forward the event's bytes (false: drop it, e.g. a usage chunk the client did not ask for).
    pub forward: bool,
    /// Usage the event reported.
    pub usage: Option<Usage>,
    /// The event is the upstream reporting an error.
    pub error: bool,
}

impl Seen {
    /// An event to forward, nothing else learnt yet.
    fn forwarded() -> Self {
        Self {
            forward: true,
            ..Self::default()
        }
    }
}

/// Checks a same-format stream event by event: each must be a JSON object (or the format's end
/// marker), nothing may follow the end, and usage is read on the side.
#[derive(Debug)]
pub struct FastStream {
    format: Format,
    /// OpenAI's `include_usage` as the client set it (the gateway always asks the upstream).
    include_usage: bool,
    completed: bool,
    /// Gemini and Bedrock have no final end marker: a finish reason (`messageStop`) makes the
    /// stream complete, and later events (usage) still pass.
    gemini_finished: bool,
    /// Responses streams: the last sequence number and the response's id, model and time, so an
    /// error the gateway appends continues the same stream.
    responses: Option<(u64, String, String, i64)>,
}

impl FastStream {
    /// A checker for an upstream of `format` answering a client of the same format.
    pub fn new(format: Format, include_usage: bool) -> Self {
        Self {
            format,
            include_usage,
            completed: false,
            gemini_finished: false,
            responses: None,
        }
    }

    /// Whether the end marker arrived (`[DONE]`, `message_stop`, or an error event).
    pub fn completed(&self) -> bool {
        self.completed || self.gemini_finished
    }

    /// Checks one event; an error means the stream is garbage from here on.
    pub fn frame(&mut self, f: &SseFrame) -> Result<Seen, ApiError> {
        if self.completed {
            return Ok(Seen::default()); // nothing may follow the end marker
        }
        match self.format {
            Format::OpenAi => self.openai(f),
            Format::Anthropic => self.anthropic(f),
            Format::Gemini => self.gemini(f),
            Format::Cohere => self.cohere(f),
            Format::Bedrock => self.bedrock(f),
            Format::Responses => self.responses(f),
            // No client speaks Replicate: its streams are always translated.
            Format::Replicate => Ok(Seen::forwarded()),
        }
    }

    fn openai(&mut self, f: &SseFrame) -> Result<Seen, ApiError> {
        let d = f.data.trim();
        let mut seen = Seen::forwarded();
        if d.is_empty() {
            return Ok(seen); // no data, nothing to check (the decoders skip these too)
        }
        if d == "[DONE]" {
            self.completed = true;
            return Ok(seen);
        }
        // Cheap byte checks first: only a chunk with a usage object or an error is built into a
        // value (with include_usage every chunk carries `"usage":null`); the others are only
        // checked to be JSON.
        if !(has_object(d, "\"usage\"")
            || has_object(d, "\"x_groq\"")
            || has_object(d, "\"error\""))
        {
            return json_object(d).map(|()| seen);
        }
        let v = parse_object(d)?;
        seen.error = v.get("error").is_some_and(|e| !e.is_null());
        let u = v
            .get("usage")
            .filter(|u| u.is_object())
            .or_else(|| v.pointer("/x_groq/usage"));
        if let Some(u) = u {
            seen.usage = Some(openai::parse_usage(u));
            let usage_only = v
                .get("choices")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty);
            seen.forward = !usage_only || self.include_usage;
        }
        Ok(seen)
    }

    /// Gemini: every event a whole response; usage is cumulative in each; the stream is complete
    /// once a finish reason came (a usage-only event may still follow it).
    fn gemini(&mut self, f: &SseFrame) -> Result<Seen, ApiError> {
        let mut seen = Seen::forwarded();
        let d = f.data.trim();
        if d.is_empty() {
            return Ok(seen);
        }
        let v = parse_object(d)?;
        if let Some(u) = v.get("usageMetadata") {
            seen.usage = Some(crate::gemini::parse_usage(u));
        }
        seen.error = v.get("error").is_some();
        if seen.error || v.pointer("/candidates/0/finishReason").is_some() {
            self.gemini_finished = true;
        }
        Ok(seen)
    }

    /// Bedrock (event-stream frames): JSON payloads; `messageStop` completes the stream, the
    /// usage follows in `metadata`; an exception message is the upstream's error.
    fn bedrock(&mut self, f: &SseFrame) -> Result<Seen, ApiError> {
        let mut seen = Seen::forwarded();
        let event = f.event.as_deref().unwrap_or_default();
        if event.starts_with("exception:") {
            seen.error = true;
            self.gemini_finished = true;
            return Ok(seen);
        }
        let v = parse_object(&f.data)?;
        match event {
            "messageStop" => self.gemini_finished = true,
            "metadata" => seen.usage = v.get("usage").map(crate::bedrock::parse_usage),
            _ => {}
        }
        Ok(seen)
    }

    /// Responses API: typed JSON events; `response.completed` (or `incomplete` / `failed`)
    /// ends the stream and carries the usage.
    fn responses(&mut self, f: &SseFrame) -> Result<Seen, ApiError> {
        let mut seen = Seen::forwarded();
        let d = f.data.trim();
        if d.is_empty() {
            return Ok(seen);
        }
        if let Some(seq) = sequence_number(d) {
            let ctx = self.responses.get_or_insert_with(Default::default);
            ctx.0 = seq;
        }
        if d.contains("\"response.created\"")
            && let Ok(v) = serde_json::from_str::<Value>(d)
        {
            let ctx = self.responses.get_or_insert_with(Default::default);
            let s = |p: &str| {
                v.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            ctx.1 = s("/response/id");
            ctx.2 = s("/response/model");
            ctx.3 = v
                .pointer("/response/created_at")
                .and_then(Value::as_i64)
                .unwrap_or(0);
        }
        let terminal = d.contains("\"response.completed\"")
            || d.contains("\"response.incomplete\"")
            || d.contains("\"response.failed\"")
            || f.event.as_deref() == Some("error");
        if !terminal {
            return json_object(d).map(|()| seen);
        }
        let v = parse_object(d)?;
        match v.get("type").and_then(Value::as_str) {
            Some("response.completed" | "response.incomplete") => {
                self.completed = true;
                seen.usage = v
                    .pointer("/response/usage")
                    .map(crate::responses::parse_usage);
            }
            Some("response.failed" | "error") => {
                self.completed = true;
                seen.error = true;
            }
            _ => {}
        }
        Ok(seen)
    }

    /// Cohere: JSON events; usage and the end come with `message-end`.
    fn cohere(&mut self, f: &SseFrame) -> Result<Seen, ApiError> {
        let mut seen = Seen::forwarded();
        let d = f.data.trim();
        if d.is_empty() {
            return Ok(seen);
        }
        if !(has_object(d, "\"usage\"") || d.contains("\"message-end\"")) {
            return json_object(d).map(|()| seen);
        }
        let v = parse_object(d)?;
        if v.get("type").and_then(Value::as_str) == Some("message-end") {
            self.completed = true;
            if let Some(u) = v.pointer("/delta/usage") {
                seen.usage = Some(crate::cohere::parse_usage(u));
            }
            let reason = v.pointer("/delta/finish_reason").and_then(Value::as_str);
            seen.error = matches!(reason, Some("ERROR" | "TIMEOUT"));
        }
        Ok(seen)
    }

    fn anthropic(&mut self, f: &SseFrame) -> Result<Seen, ApiError> {
        let mut seen = Seen::forwarded();
        match f.event.as_deref() {
            Some("message_start") | Some("message_delta") => {
                let v = parse_object(&f.data)?;
                if let Some(u) = v.pointer("/message/usage").or_else(|| v.get("usage")) {
                    seen.usage = Some(anthropic::parse_usage(u));
                }
                return Ok(seen);
            }
            Some("message_stop") => self.completed = true,
            Some("error") => {
                seen.error = true;
                self.completed = true;
            }
            _ => {}
        }
        let d = f.data.trim_start();
        if d.is_empty() {
            return Ok(seen);
        }
        json_object(d).map(|()| seen)
    }
}

impl FastStream {
    /// The encoder for an error the gateway appends to this stream for a client of `client`'s
    /// format: it continues the stream where the upstream left it (Responses numbering and id).
    pub fn error_encoder(&self, client: Format) -> crate::Encoder {
        match (&self.responses, client) {
            (Some((seq, id, model, created)), Format::Responses) => crate::Encoder::Responses(
                crate::responses::Encoder::resume(seq.saturating_add(1), id, model, *created),
            ),
            _ => crate::Encoder::new(client, false),
        }
    }
}

/// A Responses event's `sequence_number`, read without parsing the event.
fn sequence_number(d: &str) -> Option<u64> {
    let i = d.rfind("\"sequence_number\"")?;
    let rest = d[i + "\"sequence_number\"".len()..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn malformed() -> ApiError {
    ApiError::new(
        ErrorKind::Api,
        "upstream sent a malformed stream event (not a JSON object)",
    )
}

/// `d` parsed, if it is a JSON object.
fn parse_object(d: &str) -> Result<Value, ApiError> {
    serde_json::from_str::<Value>(d)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(malformed)
}

fn json_object(d: &str) -> Result<(), ApiError> {
    match serde_json::from_str::<IgnoredAny>(d) {
        Ok(_) if d.starts_with('{') => Ok(()),
        _ => Err(malformed()),
    }
}

/// Whether `key` appears in `json` followed by `:` and an object.
fn has_object(json: &str, key: &str) -> bool {
    json.match_indices(key).any(|(i, _)| {
        let rest = json[i + key.len()..].trim_start();
        rest.strip_prefix(':')
            .is_some_and(|r| r.trim_start().starts_with('{'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_object_values() {
        assert!(has_object(
            r#"{"choices":[],"usage":{"prompt_tokens":1}}"#,
            "\"usage\""
        ));
        assert!(has_object(r#"{"usage" : {"a":1}}"#, "\"usage\""));
        assert!(!has_object(
            r#"{"choices":[{"delta":{"content":"usage"}}],"usage":null}"#,
            "\"usage\""
        ));
        assert!(!has_object(r#"{"error_count":{}}"#, "\"error\""));
    }

    fn frame(event: Option<&str>, data: &str) -> SseFrame {
        SseFrame {
            event: event.map(str::to_owned),
            data: data.to_owned(),
            raw: Vec::new(),
        }
    }

    #[test]
    fn openai_stream_checks_and_usage() {
        let mut s = FastStream::new(Format::OpenAi, false);
        assert!(
            s.frame(&frame(
                None,
                r#"{"choices":[{"delta":{"content":"hi"}}],"usage":null}"#
            ))
            .unwrap()
            .forward
        );
        assert!(s.frame(&frame(None, "<html>")).is_err());
        assert!(
            s.frame(&frame(None, "[1,2]")).is_err(),
            "an array is not an event"
        );
        let u = s
            .frame(&frame(
                None,
                r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
            ))
            .unwrap();
        assert!(
            !u.forward,
            "usage-only chunk dropped for a client that did not ask"
        );
        assert_eq!(u.usage.unwrap().input, 3);
        assert!(s.frame(&frame(None, "[DONE]")).unwrap().forward && s.completed());
        assert!(
            !s.frame(&frame(None, r#"{"late":1}"#)).unwrap().forward,
            "nothing after [DONE]"
        );
    }

    #[test]
    fn anthropic_stream_checks_and_usage() {
        let mut s = FastStream::new(Format::Anthropic, false);
        let start = s
            .frame(&frame(
                Some("message_start"),
                r#"{"message":{"usage":{"input_tokens":7}}}"#,
            ))
            .unwrap();
        assert_eq!(start.usage.unwrap().input, 7);
        assert!(
            s.frame(&frame(Some("content_block_delta"), r#"{"index":0,"#))
                .is_err()
        );
        let e = s
            .frame(&frame(
                Some("error"),
                r#"{"type":"error","error":{"type":"overloaded_error"}}"#,
            ))
            .unwrap();
        assert!(e.error && e.forward && s.completed());
    }

    #[test]
    fn rewrites_only_the_named_fields_and_keeps_bytes() {
        let body = br#"{ "model" : "gpt-4", "messages":[{"role":"user","content":"h\u00e9"}],"x":{"sig":"a\/b=="} }"#;
        let out = patch_fields(body, &[("model", Some("\"gpt-4o\""))]).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"h\u00e9"}],"x":{"sig":"a\/b=="}}"#
        );
    }

    #[test]
    fn appends_and_removes() {
        let out = patch_fields(br#"{"a":1,"b":2}"#, &[("b", None), ("c", Some("true"))]).unwrap();
        assert_eq!(out, br#"{"a":1,"c":true}"#);
        assert!(patch_fields(b"[1]", &[]).is_none());
        assert!(patch_fields(b"{", &[]).is_none());
    }

    #[test]
    fn a_body_no_patch_changes_goes_byte_for_byte() {
        let body = br#"{ "model" : "gpt-4o", "stream": true, "messages": [] }"#;
        for patches in [
            &[][..],
            &[("model", Some("\"gpt-4o\""))][..],
            &[("model", Some("\"gpt-4o\"")), ("gone", None)][..],
        ] {
            assert_eq!(patch_fields(body, patches).unwrap(), body, "{patches:?}");
        }
        // The same model spelt another way, a field to add, or a repeated key: rewritten.
        let spelt = br#"{"model":"gpt\u002d4o"}"#;
        let out = patch_fields(spelt, &[("model", Some("\"gpt-4o\""))]).unwrap();
        assert_eq!(out, br#"{"model":"gpt-4o"}"#);
        let out = patch_fields(
            br#"{"model":"m"}"#,
            &[("model", Some("\"m\"")), ("s", Some("1"))],
        );
        assert_eq!(out.unwrap(), br#"{"model":"m","s":1}"#);
        let twice = br#"{"model":"m", "model":"m"}"#;
        let out = patch_fields(twice, &[("model", Some("\"m\""))]).unwrap();
        assert_eq!(out, br#"{"model":"m","model":"m"}"#);
    }
}
