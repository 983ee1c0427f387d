//! Anthropic SSE events <-> canonical events.

use super::error::encode_error;
use super::response::{JSON_TOOL, parse_usage, stop_from_reason, stop_reason, usage_json};
use gw_codec::{SseFrame, write_sse};
use gw_model::*;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};

/// Upstream Anthropic events -> canonical events.
#[derive(Debug, Default)]
pub struct Decoder {
    done: bool,
    /// Blocks that are the structured-output tool, surfaced as text.
    json_blocks: HashSet<u32>,
}

impl Decoder {
    /// Feeds one SSE frame.
    pub fn feed(&mut self, frame: &SseFrame, out: &mut Vec<StreamEvent>) -> Result<(), ApiError> {
        if frame.data.trim().is_empty() {
            return Ok(());
        }
        let v: Value = serde_json::from_str(&frame.data).map_err(|e| {
            ApiError::new(
                ErrorKind::Api,
                format!("upstream sent a malformed stream event: {e}"),
            )
        })?;
        let ty = v
            .get("type")
            .and_then(Value::as_str)
            .or(frame.event.as_deref())
            .unwrap_or_default();
        let index = || v.get("index").and_then(Value::as_u64).unwrap_or(0) as u32;
        match ty {
            "message_start" => {
                let m = v.get("message").cloned().unwrap_or(Value::Null);
                out.push(StreamEvent::Start {
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
                    usage: m.get("usage").map(parse_usage).unwrap_or_default(),
                    created: None,
                });
            }
            "content_block_start" => {
                let b = v.get("content_block").cloned().unwrap_or(Value::Null);
                let s = |k: &str| {
                    b.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                let idx = index();
                let kind = match b.get("type").and_then(Value::as_str).unwrap_or_default() {
                    "tool_use" if s("name") == JSON_TOOL => {
                        self.json_blocks.insert(idx);
                        BlockKind::Text
                    }
                    "tool_use" | "server_tool_use" => BlockKind::ToolUse {
                        id: s("id"),
                        name: s("name"),
                    },
                    "thinking" => BlockKind::Thinking,
                    "redacted_thinking" => BlockKind::RedactedThinking { data: s("data") },
                    _ => BlockKind::Text,
                };
                out.push(StreamEvent::BlockStart {
                    index: idx,
                    block: kind,
                });
                if let Some(t) = b
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    out.push(StreamEvent::Delta {
                        index: idx,
                        delta: Delta::Text(t.to_owned()),
                    });
                }
            }
            "content_block_delta" => {
                let d = v.get("delta").cloned().unwrap_or(Value::Null);
                let s = |k: &str| {
                    d.get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                let idx = index();
                let delta = match d.get("type").and_then(Value::as_str).unwrap_or_default() {
                    "text_delta" => Delta::Text(s("text")),
                    "input_json_delta" if self.json_blocks.contains(&idx) => {
                        Delta::Text(s("partial_json"))
                    }
                    "input_json_delta" => Delta::ToolArgs(s("partial_json")),
                    "thinking_delta" => Delta::Thinking(s("thinking")),
                    "signature_delta" => Delta::Signature(s("signature")),
                    _ => return Ok(()), // citations and future delta types have no canonical slot
                };
                out.push(StreamEvent::Delta { index: idx, delta });
            }
            "content_block_stop" => out.push(StreamEvent::BlockStop { index: index() }),
            "message_delta" => {
                if let Some(u) = v.get("usage") {
                    out.push(StreamEvent::Usage(parse_usage(u)));
                }
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    let mut reason = stop_from_reason(r);
                    if reason == StopReason::ToolUse && !self.json_blocks.is_empty() {
                        reason = StopReason::EndTurn;
                    }
                    out.push(StreamEvent::Stop {
                        reason,
                        stop_sequence: v
                            .pointer("/delta/stop_sequence")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                    });
                }
            }
            "message_stop" => {
                self.done = true;
                out.push(StreamEvent::End);
            }
            "error" => {
                let status = match v.pointer("/error/type").and_then(Value::as_str) {
                    Some("overloaded_error") => 529,
                    Some("rate_limit_error") => 429,
                    Some("invalid_request_error") => 400,
                    _ => 500,
                };
                out.push(StreamEvent::Error(super::decode_error(
                    status,
                    frame.data.as_bytes(),
                )));
            }
            _ => {} // ping and unknown events
        }
        Ok(())
    }

    /// The upstream closed the stream.
    pub fn finish(&mut self, _out: &mut Vec<StreamEvent>) -> Result<(), ApiError> {
        if self.done {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorKind::Api,
                "upstream stream ended before message_stop",
            ))
        }
    }
}

/// Canonical events -> Anthropic SSE for the client. Anthropic blocks are strictly sequential,
/// so a block that starts while another is open closes the open one first.
#[derive(Debug, Default)]
pub struct Encoder {
    started: bool,
    /// Canonical index -> Anthropic index.
    blocks: HashMap<u32, u32>,
    open: Option<u32>,
    next: u32,
    usage: Usage,
    stop: Option<(StopReason, Option<String>)>,
    ended: bool,
    /// The gateway's estimate of input tokens, for a `message_start` the upstream sends none for.
    input_estimate: u64,
}

impl Encoder {
    /// An encoder whose `message_start` reports `input_estimate` when the upstream reports its
    /// input tokens only at the end (OpenAI, Cohere, Bedrock): clients such as Claude Code manage
    /// their context from that first figure. `message_delta` carries the exact one.
    pub fn with_input_estimate(input_estimate: u64) -> Self {
        Self {
            input_estimate,
            ..Self::default()
        }
    }

    fn event(out: &mut Vec<u8>, name: &str, data: &Value) {
        write_sse(out, Some(name), &data.to_string());
    }

    fn close_open(&mut self, out: &mut Vec<u8>) {
        if let Some(i) = self.open.take() {
            Self::event(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": i}),
            );
        }
    }

    fn start_block(&mut self, index: u32, block: &BlockKind, out: &mut Vec<u8>) -> u32 {
        self.close_open(out);
        let i = self.next;
        self.next += 1;
        self.blocks.insert(index, i);
        self.open = Some(i);
        let cb = match block {
            BlockKind::Text => json!({"type": "text", "text": ""}),
            BlockKind::ToolUse { id, name } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": {}})
            }
            BlockKind::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
            BlockKind::RedactedThinking { data } => {
                json!({"type": "redacted_thinking", "data": data})
            }
        };
        Self::event(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": i, "content_block": cb}),
        );
        i
    }

    fn ensure_started(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.encode(
                &StreamEvent::Start {
                    id: String::new(),
                    model: String::new(),
                    usage: Usage::default(),
                    created: None,
                },
                out,
            );
        }
    }

    /// Encodes one event.
    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        match ev {
            StreamEvent::Start {
                id, model, usage, ..
            } => {
                if self.started {
                    return;
                }
                self.started = true;
                self.usage = *usage;
                let mut u = usage_json(usage);
                if usage.input == 0 && usage.cache_read == 0 && usage.cache_write == 0 {
                    u["input_tokens"] = json!(self.input_estimate);
                }
                u["output_tokens"] = json!(usage.output.max(1));
                Self::event(
                    out,
                    "message_start",
                    &json!({"type": "message_start", "message": {
                        "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
                        "stop_reason": null, "stop_sequence": null, "usage": u,
                    }}),
                );
            }
            StreamEvent::BlockStart { index, block } => {
                self.ensure_started(out);
                self.start_block(*index, block, out);
            }
            StreamEvent::Delta { index, delta } => {
                self.ensure_started(out);
                let i = match self.blocks.get(index) {
                    Some(i) if self.open == Some(*i) => *i,
                    _ => {
                        let kind = match delta {
                            Delta::Text(_) => BlockKind::Text,
                            Delta::Thinking(_) | Delta::Signature(_) => BlockKind::Thinking,
                            Delta::ToolArgs(_) => return, // arguments without their call cannot be shown
                        };
                        self.start_block(*index, &kind, out)
                    }
                };
                let (kind, field, text) = match delta {
                    Delta::Text(t) => ("text_delta", "text", t),
                    Delta::ToolArgs(a) => ("input_json_delta", "partial_json", a),
                    Delta::Thinking(t) => ("thinking_delta", "thinking", t),
                    Delta::Signature(s) => ("signature_delta", "signature", s),
                };
                // The most frequent event, written directly (same bytes as via a `Value`): an
                // escaped JSON string has no raw newline, so it is one `data:` line.
                out.extend_from_slice(
                    b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":",
                );
                out.extend_from_slice(i.to_string().as_bytes());
                out.extend_from_slice(b",\"delta\":{\"type\":\"");
                out.extend_from_slice(kind.as_bytes());
                out.extend_from_slice(b"\",\"");
                out.extend_from_slice(field.as_bytes());
                out.extend_from_slice(b"\":");
                if serde_json::to_writer(&mut *out, text).is_err() {
                    out.extend_from_slice(b"\"\"");
                }
                out.extend_from_slice(b"}}\n\n");
            }
            StreamEvent::BlockStop { index } => {
                if self
                    .blocks
                    .get(index)
                    .is_some_and(|i| self.open == Some(*i))
                {
                    self.close_open(out);
                }
            }
            StreamEvent::Usage(u) => self.usage = self.usage.merge(*u),
            StreamEvent::Stop {
                reason,
                stop_sequence,
            } => self.stop = Some((*reason, stop_sequence.clone())),
            StreamEvent::Error(e) => {
                self.ended = true;
                write_sse(
                    out,
                    Some("error"),
                    &String::from_utf8_lossy(&encode_error(e)),
                );
            }
            StreamEvent::End => {
                if self.ended {
                    return;
                }
                self.ended = true;
                self.ensure_started(out);
                self.close_open(out);
                let (reason, seq) = self.stop.take().unwrap_or((StopReason::EndTurn, None));
                Self::event(
                    out,
                    "message_delta",
                    &json!({"type": "message_delta",
                    "delta": {"stop_reason": stop_reason(reason), "stop_sequence": seq},
                    "usage": usage_json(&self.usage)}),
                );
                Self::event(out, "message_stop", &json!({"type": "message_stop"}));
            }
        }
    }
}
