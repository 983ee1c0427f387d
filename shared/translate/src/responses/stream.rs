//! Responses API streams: typed events with a `sequence_number` (`response.created`, output items
//! added and done, text / reasoning-summary / function-argument deltas, `response.completed`).
//! The encoder keeps every item so `response.completed` carries the whole answer.

use super::response::{call_item, item_id, message_item, parse_usage, reasoning_item};
use gw_codec::{SseFrame, write_sse};
use gw_model::*;
use serde_json::{Value, json};

/// Upstream events -> canonical events.
#[derive(Debug, Default)]
pub struct Decoder {
    ended: bool,
}

impl Decoder {
    /// Feeds one frame.
    pub fn feed(&mut self, frame: &SseFrame, out: &mut Vec<StreamEvent>) -> Result<(), ApiError> {
        let data = frame.data.trim();
        if data.is_empty() || data == "[DONE]" {
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
        let index = || {
            u32::try_from(v.get("output_index").and_then(Value::as_u64).unwrap_or(0)).unwrap_or(0)
        };
        let s = |p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        match ty {
            "response.created" => out.push(StreamEvent::Start {
                id: s("/response/id"),
                model: s("/response/model"),
                usage: Usage::default(),
                created: v.pointer("/response/created_at").and_then(Value::as_i64),
            }),
            "response.output_item.added" => {
                let block = match v.pointer("/item/type").and_then(Value::as_str) {
                    Some("message") => BlockKind::Text,
                    Some("reasoning") => BlockKind::Thinking,
                    Some("function_call") => BlockKind::ToolUse {
                        id: s("/item/call_id"),
                        name: s("/item/name"),
                    },
                    _ => return Ok(()),
                };
                out.push(StreamEvent::BlockStart {
                    index: index(),
                    block,
                });
            }
            "response.output_text.delta" => out.push(StreamEvent::Delta {
                index: index(),
                delta: Delta::Text(s("/delta")),
            }),
            "response.reasoning_summary_text.delta" => out.push(StreamEvent::Delta {
                index: index(),
                delta: Delta::Thinking(s("/delta")),
            }),
            "response.function_call_arguments.delta" => out.push(StreamEvent::Delta {
                index: index(),
                delta: Delta::ToolArgs(s("/delta")),
            }),
            "response.output_item.done" => {
                let kind = v.pointer("/item/type").and_then(Value::as_str);
                if !matches!(kind, Some("message" | "reasoning" | "function_call")) {
                    return Ok(());
                }
                if let Some(sig) = v.pointer("/item/encrypted_content").and_then(Value::as_str) {
                    out.push(StreamEvent::Delta {
                        index: index(),
                        delta: Delta::Signature(sig.to_owned()),
                    });
                }
                out.push(StreamEvent::BlockStop { index: index() });
            }
            "response.completed" | "response.incomplete" => {
                if let Some(u) = v.pointer("/response/usage") {
                    out.push(StreamEvent::Usage(parse_usage(u)));
                }
                let r =
                    super::response::decode_object(v.get("response").unwrap_or(&Value::Null)).ok();
                let reason = match (ty, r.map(|r| r.stop_reason)) {
                    ("response.incomplete", _) => StopReason::MaxTokens,
                    (_, Some(s)) => s,
                    _ => StopReason::EndTurn,
                };
                out.push(StreamEvent::Stop {
                    reason,
                    stop_sequence: None,
                });
                out.push(StreamEvent::End);
                self.ended = true;
            }
            "response.failed" | "error" => {
                let msg = v
                    .pointer("/response/error/message")
                    .or_else(|| v.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("the upstream response failed");
                out.push(StreamEvent::Error(ApiError::new(ErrorKind::Api, msg)));
                self.ended = true;
            }
            _ => {}
        }
        Ok(())
    }

    /// The upstream closed the stream; complete only after `response.completed`.
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

/// The item being streamed.
#[derive(Debug)]
enum Item {
    Message {
        index: usize,
        id: String,
        text: String,
    },
    Reasoning {
        index: usize,
        id: String,
        text: String,
        signature: Option<String>,
    },
    Call {
        index: usize,
        id: String,
        call_id: String,
        name: String,
        args: String,
    },
}

/// Canonical events -> Responses SSE for a Responses client.
#[derive(Debug)]
pub struct Encoder {
    seq: u64,
    response: ChatResponse,
    output: Vec<Value>,
    open: Option<Item>,
    /// The open message ended; it is closed when the next item starts or the stop reason is
    /// known (so an answer cut by the limit closes its message as incomplete).
    ended: bool,
    stopped: bool,
    done: bool,
    /// The request's tool namespaces, to split calls to their functions again.
    namespaces: Vec<String>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self {
            seq: 0,
            response: ChatResponse {
                id: "resp_gateway".into(),
                model: String::new(),
                content: Vec::new(),
                stop_reason: StopReason::EndTurn,
                stop_sequence: None,
                usage: Usage::default(),
                created: None,
            },
            output: Vec::new(),
            open: None,
            ended: false,
            stopped: false,
            done: false,
            namespaces: Vec::new(),
        }
    }
}

impl Encoder {
    /// An encoder for a client whose request declared the tool `namespaces`.
    pub fn with_namespaces(namespaces: Vec<String>) -> Self {
        Self {
            namespaces,
            ..Self::default()
        }
    }

    /// An encoder continuing a stream the upstream started (for an error the gateway appends):
    /// the next sequence number and the response's id, model and time.
    pub fn resume(seq: u64, id: &str, model: &str, created: i64) -> Self {
        let mut e = Self {
            seq,
            ..Self::default()
        };
        e.response.id = id.to_owned();
        e.response.model = model.to_owned();
        e.response.created = Some(created);
        e
    }

    fn emit(&mut self, ty: &str, mut body: Value, out: &mut Vec<u8>) {
        body["type"] = json!(ty);
        body["sequence_number"] = json!(self.seq);
        self.seq = self.seq.saturating_add(1);
        write_sse(out, Some(ty), &body.to_string());
    }

    fn object(&self, status: &str) -> Value {
        super::response::response_object(&self.response, self.output.clone(), status)
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        self.ended = false;
        let Some(item) = self.open.take() else { return };
        match item {
            Item::Message { index, id, text } => {
                let cut = self.stopped && self.response.stop_reason == StopReason::MaxTokens;
                let status = if cut { "incomplete" } else { "completed" };
                let part = json!({"type": "output_text", "text": text, "annotations": []});
                self.emit("response.output_text.done", json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}), out);
                self.emit(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
                    out,
                );
                let item = message_item(&id, text, status);
                self.emit(
                    "response.output_item.done",
                    json!({"output_index": index, "item": item}),
                    out,
                );
                self.output.push(item);
            }
            Item::Reasoning {
                index,
                id,
                text,
                signature,
            } => {
                let part = json!({"type": "summary_text", "text": text});
                self.emit(
                    "response.reasoning_summary_text.done",
                    json!({"item_id": id, "output_index": index, "summary_index": 0, "text": text}),
                    out,
                );
                self.emit(
                    "response.reasoning_summary_part.done",
                    json!({"item_id": id, "output_index": index, "summary_index": 0, "part": part}),
                    out,
                );
                let item = reasoning_item(&id, &text, signature.as_deref());
                self.emit(
                    "response.output_item.done",
                    json!({"output_index": index, "item": item}),
                    out,
                );
                self.output.push(item);
            }
            Item::Call {
                index,
                id,
                call_id,
                name,
                args,
            } => {
                self.emit(
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": index, "arguments": args}),
                    out,
                );
                let item = call_item(&id, &call_id, &name, &args, "completed", &self.namespaces);
                self.emit(
                    "response.output_item.done",
                    json!({"output_index": index, "item": item}),
                    out,
                );
                self.output.push(item);
            }
        }
    }

    fn open_message(&mut self, out: &mut Vec<u8>) {
        let index = self.output.len();
        let id = item_id("msg", &self.response.id, index);
        let item = json!({"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []});
        self.emit(
            "response.output_item.added",
            json!({"output_index": index, "item": item}),
            out,
        );
        let part = json!({"type": "output_text", "text": "", "annotations": []});
        self.emit(
            "response.content_part.added",
            json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
            out,
        );
        self.open = Some(Item::Message {
            index,
            id,
            text: String::new(),
        });
    }

    /// Encodes one event.
    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        match ev {
            StreamEvent::Start {
                id,
                model,
                usage,
                created,
            } => {
                let tag: String = id.chars().filter(char::is_ascii_alphanumeric).collect();
                self.response.id = format!("resp_{tag}");
                self.response.model.clone_from(model);
                self.response.created = *created;
                self.response.usage = self.response.usage.merge(*usage);
                let obj = self.object("in_progress");
                self.emit("response.created", json!({"response": obj}), out);
                self.emit("response.in_progress", json!({"response": obj}), out);
            }
            StreamEvent::BlockStart { block, .. } => {
                self.close(out);
                let index = self.output.len();
                match block {
                    BlockKind::Text => self.open_message(out),
                    BlockKind::Thinking => {
                        let id = item_id("rs", &self.response.id, index);
                        self.emit("response.output_item.added", json!({"output_index": index, "item": {"type": "reasoning", "id": id, "summary": []}}), out);
                        self.emit("response.reasoning_summary_part.added", json!({"item_id": id, "output_index": index, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}), out);
                        self.open = Some(Item::Reasoning {
                            index,
                            id,
                            text: String::new(),
                            signature: None,
                        });
                    }
                    BlockKind::ToolUse { id: call_id, name } => {
                        let id = item_id("fc", &self.response.id, index);
                        let item =
                            call_item(&id, call_id, name, "", "in_progress", &self.namespaces);
                        self.emit(
                            "response.output_item.added",
                            json!({"output_index": index, "item": item}),
                            out,
                        );
                        self.open = Some(Item::Call {
                            index,
                            id,
                            call_id: call_id.clone(),
                            name: name.clone(),
                            args: String::new(),
                        });
                    }
                    BlockKind::RedactedThinking { data } => {
                        // Opaque reasoning goes out as a reasoning item with no summary; it comes
                        // back as the same redacted block.
                        let id = item_id("rs", &self.response.id, index);
                        let item = json!({"type": "reasoning", "id": id, "summary": [], "encrypted_content": format!("{}{data}", super::REDACTED)});
                        self.emit(
                            "response.output_item.added",
                            json!({"output_index": index, "item": item}),
                            out,
                        );
                        self.emit(
                            "response.output_item.done",
                            json!({"output_index": index, "item": item}),
                            out,
                        );
                        self.output.push(item);
                    }
                }
            }
            StreamEvent::Delta { delta, .. } => match (&mut self.open, delta) {
                (Some(Item::Message { index, id, text }), Delta::Text(t)) => {
                    text.push_str(t);
                    let body = json!({"item_id": id, "output_index": index, "content_index": 0, "delta": t, "logprobs": []});
                    self.emit("response.output_text.delta", body, out);
                }
                (
                    Some(Item::Reasoning {
                        index, id, text, ..
                    }),
                    Delta::Thinking(t),
                ) => {
                    text.push_str(t);
                    let body = json!({"item_id": id, "output_index": index, "summary_index": 0, "delta": t});
                    self.emit("response.reasoning_summary_text.delta", body, out);
                }
                (Some(Item::Reasoning { signature, .. }), Delta::Signature(s)) => {
                    signature.get_or_insert_with(String::new).push_str(s);
                }
                (
                    Some(Item::Call {
                        index, id, args, ..
                    }),
                    Delta::ToolArgs(a),
                ) => {
                    args.push_str(a);
                    let body = json!({"item_id": id, "output_index": index, "delta": a});
                    self.emit("response.function_call_arguments.delta", body, out);
                }
                (None, Delta::Text(t)) => {
                    self.open_message(out);
                    self.encode(
                        &StreamEvent::Delta {
                            index: 0,
                            delta: Delta::Text(t.clone()),
                        },
                        out,
                    );
                }
                _ => {}
            },
            // A message closes once the stop reason is known (or the next item starts).
            StreamEvent::BlockStop { .. } if matches!(self.open, Some(Item::Message { .. })) => {
                self.ended = true;
            }
            StreamEvent::BlockStop { .. } => self.close(out),
            StreamEvent::Usage(u) => self.response.usage = self.response.usage.merge(*u),
            StreamEvent::Stop { reason, .. } => {
                self.response.stop_reason = *reason;
                self.stopped = true;
                if self.ended {
                    self.close(out);
                }
            }
            StreamEvent::End => {
                self.close(out);
                let status = super::response::status_for(self.response.stop_reason);
                let ty = if status == "incomplete" {
                    super::response::mark_cut(&mut self.output);
                    "response.incomplete"
                } else {
                    "response.completed"
                };
                let obj = self.object(status);
                self.emit(ty, json!({"response": obj}), out);
                self.done = true;
            }
            StreamEvent::Error(e) => {
                self.close(out);
                let mut obj = self.object("failed");
                obj["error"] = json!({"code": "server_error", "message": e.message});
                self.emit("response.failed", json!({"response": obj}), out);
                self.done = true;
            }
        }
    }
}
