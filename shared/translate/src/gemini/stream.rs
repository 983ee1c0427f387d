//! Gemini streams: each event is a whole `GenerateContentResponse` holding the next parts.
//! The decoder turns them into canonical block events (function calls arrive whole); the
//! encoder writes chunks for a Gemini client, as SSE (`alt=sse`) or as one JSON array.

use super::error::error_object;
use super::response::{
    decode_part, finish_reason, function_call, parse_usage, stop_from_finish, usage_json,
};
use gw_codec::SseFrame;
use gw_model::*;
use serde_json::{Value, json};

/// Which block is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
}

/// Upstream chunks -> canonical events.
#[derive(Debug, Default)]
pub struct Decoder {
    started: bool,
    open: Option<(Open, u32)>,
    next_index: u32,
    calls: usize,
    id: String,
    finished: bool,
}

impl Decoder {
    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some((_, index)) = self.open.take() {
            out.push(StreamEvent::BlockStop { index });
        }
    }

    fn open(&mut self, kind: Open, out: &mut Vec<StreamEvent>) -> u32 {
        match self.open {
            Some((k, i)) if k == kind => i,
            _ => {
                self.close(out);
                let index = self.next_index;
                self.next_index += 1;
                out.push(StreamEvent::BlockStart {
                    index,
                    block: match kind {
                        Open::Text => BlockKind::Text,
                        Open::Thinking => BlockKind::Thinking,
                    },
                });
                self.open = Some((kind, index));
                index
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
                format!("upstream sent a malformed stream chunk: {e}"),
            )
        })?;
        if let Some(e) = v.get("error") {
            let status = e
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(500);
            let body = json!({ "error": e }).to_string();
            out.push(StreamEvent::Error(super::decode_error(
                status,
                body.as_bytes(),
            )));
            return Ok(());
        }
        if !self.started {
            self.started = true;
            self.id = v
                .get("responseId")
                .and_then(Value::as_str)
                .unwrap_or("gemini")
                .to_owned();
            out.push(StreamEvent::Start {
                id: self.id.clone(),
                model: v
                    .get("modelVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                usage: Usage::default(),
                created: None,
            });
        }
        let cand = v
            .get("candidates")
            .and_then(Value::as_array)
            .and_then(|a| a.first());
        if let Some(parts) = cand
            .and_then(|c| c.pointer("/content/parts"))
            .and_then(Value::as_array)
        {
            for p in parts {
                self.part(p, out);
            }
        }
        if let Some(u) = v.get("usageMetadata") {
            out.push(StreamEvent::Usage(parse_usage(u)));
        }
        let finish = cand
            .and_then(|c| c.get("finishReason"))
            .and_then(Value::as_str);
        let blocked = v.pointer("/promptFeedback/blockReason").is_some();
        if let Some(reason) = finish.or(blocked.then_some("SAFETY")) {
            self.close(out);
            self.finished = true;
            out.push(StreamEvent::Stop {
                reason: stop_from_finish(reason, self.calls > 0),
                stop_sequence: None,
            });
        }
        Ok(())
    }

    fn part(&mut self, p: &Value, out: &mut Vec<StreamEvent>) {
        let mut calls = self.calls;
        let decoded = decode_part(p, &self.id, &mut calls);
        self.calls = calls;
        match decoded {
            Some(Part::Text { text, .. }) => {
                let index = self.open(Open::Text, out);
                out.push(StreamEvent::Delta {
                    index,
                    delta: Delta::Text(text),
                });
            }
            Some(Part::Thinking { text, signature }) => {
                let index = self.open(Open::Thinking, out);
                if !text.is_empty() {
                    out.push(StreamEvent::Delta {
                        index,
                        delta: Delta::Thinking(text),
                    });
                }
                if let Some(s) = signature {
                    out.push(StreamEvent::Delta {
                        index,
                        delta: Delta::Signature(s),
                    });
                }
            }
            Some(Part::ToolUse {
                id,
                name,
                arguments,
                ..
            }) => {
                self.close(out);
                let index = self.next_index;
                self.next_index += 1;
                out.push(StreamEvent::BlockStart {
                    index,
                    block: BlockKind::ToolUse { id, name },
                });
                out.push(StreamEvent::Delta {
                    index,
                    delta: Delta::ToolArgs(arguments),
                });
                out.push(StreamEvent::BlockStop { index });
            }
            // Model images, code execution: not expressible as canonical stream blocks.
            _ => {}
        }
    }

    /// The upstream closed the stream: complete only if a finish reason came.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ApiError> {
        if !self.finished {
            return Err(ApiError::new(
                ErrorKind::Api,
                "upstream stream ended before it was complete",
            ));
        }
        out.push(StreamEvent::End);
        Ok(())
    }
}

/// Canonical events -> chunks for a Gemini client.
#[derive(Debug, Default)]
pub struct Encoder {
    /// One JSON array instead of SSE.
    array: bool,
    wrote_any: bool,
    closed: bool,
    id: String,
    model: String,
    usage: Option<Usage>,
    stop: Option<StopReason>,
    /// The tool call being assembled: id, name, argument text.
    call: Option<(String, String, String)>,
}

impl Encoder {
    /// An encoder writing SSE, or one JSON array when `array` is set.
    pub fn new(array: bool) -> Self {
        Self {
            array,
            ..Self::default()
        }
    }

    fn write(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        if self.closed {
            return;
        }
        let body = chunk.to_string();
        if self.array {
            out.extend_from_slice(if self.wrote_any { b",\r\n" } else { b"[" });
            out.extend_from_slice(body.as_bytes());
        } else {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(body.as_bytes());
            out.extend_from_slice(b"\r\n\r\n");
        }
        self.wrote_any = true;
    }

    fn chunk(&self, parts: Vec<Value>) -> Value {
        json!({
            "candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}],
            "modelVersion": self.model,
            "responseId": self.id,
        })
    }

    fn close_array(&mut self, out: &mut Vec<u8>) {
        if self.array && !self.closed {
            out.extend_from_slice(if self.wrote_any { b"]" } else { b"[]" });
        }
        self.closed = true;
    }

    /// Encodes one event.
    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        match ev {
            StreamEvent::Start {
                id, model, usage, ..
            } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
                if *usage != Usage::default() {
                    self.usage = Some(*usage);
                }
            }
            StreamEvent::BlockStart {
                block: BlockKind::ToolUse { id, name },
                ..
            } => self.call = Some((id.clone(), name.clone(), String::new())),
            StreamEvent::BlockStart { .. } => {}
            StreamEvent::Delta { delta, .. } => {
                let part = match delta {
                    Delta::Text(t) => json!({"text": t}),
                    Delta::Thinking(t) => json!({"text": t, "thought": true}),
                    // Another provider's signature that is not base64 goes wrapped.
                    Delta::Signature(s) => json!({"text": "", "thought": true,
                        "thoughtSignature": super::ids::wrap_signature(s)}),
                    Delta::ToolArgs(a) => {
                        if let Some(c) = self.call.as_mut() {
                            c.2.push_str(a);
                        }
                        return;
                    }
                };
                let c = self.chunk(vec![part]);
                self.write(&c, out);
            }
            StreamEvent::BlockStop { .. } => {
                if let Some((id, name, args)) = self.call.take() {
                    let c = self.chunk(vec![function_call(&id, &name, &args)]);
                    self.write(&c, out);
                }
            }
            StreamEvent::Usage(u) => self.usage = Some(self.usage.unwrap_or_default().merge(*u)),
            StreamEvent::Stop { reason, .. } => self.stop = Some(*reason),
            StreamEvent::End => {
                // A call whose block never closed (cut by the token limit) still goes out.
                if let Some((id, name, args)) = self.call.take() {
                    let c = self.chunk(vec![function_call(&id, &name, &args)]);
                    self.write(&c, out);
                }
                let mut c = self.chunk(vec![json!({"text": ""})]);
                c["candidates"][0]["finishReason"] =
                    json!(finish_reason(self.stop.unwrap_or(StopReason::EndTurn)));
                c["usageMetadata"] = usage_json(&self.usage.unwrap_or_default());
                self.write(&c, out);
                self.close_array(out);
            }
            StreamEvent::Error(e) => {
                let c = json!({"error": error_object(e)});
                self.write(&c, out);
                self.close_array(out);
            }
        }
    }
}
