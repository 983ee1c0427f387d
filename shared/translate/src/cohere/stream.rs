//! Cohere v2 chat streams <-> canonical events. Events: `message-start`, `content-start` /
//! `content-delta` / `content-end` (text or thinking), `tool-plan-delta`, `tool-call-start` /
//! `-delta` / `-end`, `citation-*`, `message-end` (finish reason and `usage.tokens`).

use super::response::{finish_reason, parse_usage, stop_from_finish, usage_json};
use gw_codec::{SseFrame, write_sse};
use gw_model::*;
use serde_json::{Value, json};

/// Upstream events -> canonical events.
#[derive(Debug, Default)]
pub struct Decoder {
    started: bool,
    /// Canonical index of the open block; text/thinking blocks are Cohere's content indexes,
    /// tool calls and the tool plan get their own.
    open: Option<u32>,
    /// The tool plan streams as text before the calls.
    plan_open: Option<u32>,
    next_index: u32,
    ended: bool,
}

impl Decoder {
    fn start_block(&mut self, block: BlockKind, out: &mut Vec<StreamEvent>) -> u32 {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        out.push(StreamEvent::BlockStart { index, block });
        self.open = Some(index);
        index
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(index) = self.open.take() {
            out.push(StreamEvent::BlockStop { index });
            if self.plan_open == Some(index) {
                self.plan_open = None;
            }
        }
    }

    /// Feeds one frame.
    pub fn feed(&mut self, frame: &SseFrame, out: &mut Vec<StreamEvent>) -> Result<(), ApiError> {
        let data = frame.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let v: Value = serde_json::from_str(data).map_err(|e| {
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
        let msg = v.pointer("/delta/message");
        match ty {
            "message-start" => {
                self.started = true;
                out.push(StreamEvent::Start {
                    id: v
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    model: String::new(),
                    usage: Usage::default(),
                    created: None,
                });
            }
            "content-start" => {
                let thinking = msg
                    .and_then(|m| m.pointer("/content/type"))
                    .and_then(Value::as_str)
                    == Some("thinking");
                self.start_block(
                    if thinking {
                        BlockKind::Thinking
                    } else {
                        BlockKind::Text
                    },
                    out,
                );
                self.content_delta(msg, out);
            }
            "content-delta" => {
                if self.open.is_none() {
                    self.start_block(BlockKind::Text, out);
                }
                self.content_delta(msg, out);
            }
            "content-end" | "tool-call-end" => self.close(out),
            "tool-plan-delta" => {
                let index = match self.plan_open {
                    Some(i) => i,
                    None => {
                        let i = self.start_block(BlockKind::Text, out);
                        self.plan_open = Some(i);
                        i
                    }
                };
                if let Some(t) = msg.and_then(|m| m.get("tool_plan")).and_then(Value::as_str) {
                    out.push(StreamEvent::Delta {
                        index,
                        delta: Delta::Text(t.to_owned()),
                    });
                }
            }
            "tool-call-start" => {
                let call = msg.and_then(|m| m.get("tool_calls"));
                let s = |p: &str| {
                    call.and_then(|c| c.pointer(p))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                let index = self.start_block(
                    BlockKind::ToolUse {
                        id: s("/id"),
                        name: s("/function/name"),
                    },
                    out,
                );
                let args = s("/function/arguments");
                if !args.is_empty() {
                    out.push(StreamEvent::Delta {
                        index,
                        delta: Delta::ToolArgs(args),
                    });
                }
            }
            "tool-call-delta" => {
                if let (Some(index), Some(a)) = (
                    self.open,
                    msg.and_then(|m| m.pointer("/tool_calls/function/arguments"))
                        .and_then(Value::as_str),
                ) {
                    out.push(StreamEvent::Delta {
                        index,
                        delta: Delta::ToolArgs(a.to_owned()),
                    });
                }
            }
            "message-end" => {
                self.close(out);
                let d = v.get("delta");
                if let Some(u) = d.and_then(|d| d.get("usage")) {
                    out.push(StreamEvent::Usage(parse_usage(u)));
                }
                let reason = d
                    .and_then(|d| d.get("finish_reason"))
                    .and_then(Value::as_str)
                    .unwrap_or("COMPLETE");
                if matches!(reason, "ERROR" | "TIMEOUT") {
                    out.push(StreamEvent::Error(ApiError::new(
                        ErrorKind::Api,
                        format!("upstream ended the message with {reason}"),
                    )));
                } else {
                    out.push(StreamEvent::Stop {
                        reason: stop_from_finish(reason),
                        stop_sequence: None,
                    });
                }
                self.ended = true;
                out.push(StreamEvent::End);
            }
            // Citations and unknown events carry nothing the canonical stream has.
            _ => {}
        }
        Ok(())
    }

    fn content_delta(&mut self, msg: Option<&Value>, out: &mut Vec<StreamEvent>) {
        let Some(index) = self.open else { return };
        let c = msg.and_then(|m| m.get("content"));
        if let Some(t) = c.and_then(|c| c.get("text")).and_then(Value::as_str)
            && !t.is_empty()
        {
            out.push(StreamEvent::Delta {
                index,
                delta: Delta::Text(t.to_owned()),
            });
        }
        if let Some(t) = c.and_then(|c| c.get("thinking")).and_then(Value::as_str)
            && !t.is_empty()
        {
            out.push(StreamEvent::Delta {
                index,
                delta: Delta::Thinking(t.to_owned()),
            });
        }
    }

    /// The upstream closed the stream; complete only after `message-end`.
    pub fn finish(&mut self, _out: &mut Vec<StreamEvent>) -> Result<(), ApiError> {
        if self.ended {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorKind::Api,
                "upstream stream ended before it was complete",
            ))
        }
    }
}

/// Canonical events -> Cohere v2 stream events for a Cohere client.
#[derive(Debug, Default)]
pub struct Encoder {
    id: String,
    usage: Usage,
    stop: Option<StopReason>,
    /// Cohere numbers content and tool calls separately.
    content_n: u32,
    call_n: u32,
    /// The open block: tool call (with its Cohere index) or content.
    open: Option<(bool, u32)>,
}

impl Encoder {
    fn emit(&self, ty: &str, body: &Value, out: &mut Vec<u8>) {
        write_sse(out, Some(ty), &body.to_string());
    }

    /// Encodes one event.
    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        match ev {
            StreamEvent::Start { id, usage, .. } => {
                self.id.clone_from(id);
                self.usage = self.usage.merge(*usage);
                let body = json!({"id": id, "type": "message-start", "delta": {"message": {
                    "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}});
                self.emit("message-start", &body, out);
            }
            StreamEvent::BlockStart { block, .. } => match block {
                BlockKind::ToolUse { id, name } => {
                    let index = self.call_n;
                    self.call_n += 1;
                    self.open = Some((true, index));
                    let body = json!({"type": "tool-call-start", "index": index, "delta": {"message": {"tool_calls": {
                        "id": id, "type": "function", "function": {"name": name, "arguments": ""}}}}});
                    self.emit("tool-call-start", &body, out);
                }
                BlockKind::Text | BlockKind::Thinking | BlockKind::RedactedThinking { .. } => {
                    let index = self.content_n;
                    self.content_n += 1;
                    self.open = Some((false, index));
                    let kind = if matches!(block, BlockKind::Text) {
                        json!({"type": "text", "text": ""})
                    } else {
                        json!({"type": "thinking", "thinking": ""})
                    };
                    let body = json!({"type": "content-start", "index": index, "delta": {"message": {"content": kind}}});
                    self.emit("content-start", &body, out);
                }
            },
            StreamEvent::Delta { delta, .. } => {
                let Some((_, index)) = self.open else { return };
                let (ty, body) = match delta {
                    Delta::Text(t) => (
                        "content-delta",
                        json!({"type": "content-delta", "index": index, "delta": {"message": {"content": {"text": t}}}}),
                    ),
                    Delta::Thinking(t) => (
                        "content-delta",
                        json!({"type": "content-delta", "index": index, "delta": {"message": {"content": {"thinking": t}}}}),
                    ),
                    Delta::ToolArgs(a) => (
                        "tool-call-delta",
                        json!({"type": "tool-call-delta", "index": index, "delta": {"message": {"tool_calls": {"function": {"arguments": a}}}}}),
                    ),
                    Delta::Signature(_) => return,
                };
                self.emit(ty, &body, out);
            }
            StreamEvent::BlockStop { .. } => {
                if let Some((call, index)) = self.open.take() {
                    let ty = if call { "tool-call-end" } else { "content-end" };
                    self.emit(ty, &json!({"type": ty, "index": index}), out);
                }
            }
            StreamEvent::Usage(u) => self.usage = self.usage.merge(*u),
            StreamEvent::Stop { reason, .. } => self.stop = Some(*reason),
            StreamEvent::End => {
                let body = json!({"type": "message-end", "delta": {
                    "finish_reason": finish_reason(self.stop.unwrap_or(StopReason::EndTurn)),
                    "usage": usage_json(&self.usage)}});
                self.emit("message-end", &body, out);
            }
            StreamEvent::Error(e) => {
                let body = json!({"type": "message-end", "delta": {"finish_reason": "ERROR", "error": e.message}});
                self.emit("message-end", &body, out);
            }
        }
    }
}
