//! ConverseStream events <-> canonical events. Frames come from the event-stream framer, named
//! by `:event-type` (`messageStart`, `contentBlockStart` / `Delta` / `Stop`, `messageStop`,
//! `metadata` with the usage, after the stop) or `exception:<type>` for in-stream exceptions.

use super::response::{parse_usage, stop_from_reason, stop_reason, usage_json};
use gw_codec::SseFrame;
use gw_codec::eventstream::encode;
use gw_model::*;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Upstream events -> canonical events.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Bedrock block index -> (canonical index, kind) of open blocks.
    open: HashMap<u64, (u32, Open)>,
    next_index: u32,
    stopped: bool,
    ended: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Tool,
    Thinking,
}

impl Decoder {
    fn block(
        &mut self,
        i: u64,
        kind: Open,
        start: Option<BlockKind>,
        out: &mut Vec<StreamEvent>,
    ) -> u32 {
        if let Some((idx, k)) = self.open.get(&i)
            && *k == kind
        {
            return *idx;
        }
        let index = self.next_index;
        self.next_index += 1;
        let block = start.unwrap_or(match kind {
            Open::Thinking => BlockKind::Thinking,
            _ => BlockKind::Text,
        });
        out.push(StreamEvent::BlockStart { index, block });
        self.open.insert(i, (index, kind));
        index
    }

    /// Feeds one frame.
    pub fn feed(&mut self, frame: &SseFrame, out: &mut Vec<StreamEvent>) -> Result<(), ApiError> {
        let event = frame.event.as_deref().unwrap_or_default();
        if let Some(kind) = event.strip_prefix("exception:") {
            // In-stream exceptions end the stream with an error in the client's format.
            let status = match kind {
                "throttlingException" => 429,
                "validationException" => 400,
                "serviceUnavailableException" => 503,
                "modelTimeoutException" => 504,
                _ => 500,
            };
            let mut e = super::decode_error(status, frame.data.as_bytes());
            e.message = format!("{kind}: {}", e.message);
            out.push(StreamEvent::Error(e));
            self.ended = true;
            return Ok(());
        }
        let v: Value = serde_json::from_str(&frame.data).map_err(|e| {
            ApiError::new(
                ErrorKind::Api,
                format!("upstream sent a malformed stream event: {e}"),
            )
        })?;
        let idx = || {
            v.get("contentBlockIndex")
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        match event {
            "messageStart" => out.push(StreamEvent::Start {
                id: String::new(),
                model: String::new(),
                usage: Usage::default(),
                created: None,
            }),
            "contentBlockStart" => {
                if let Some(tu) = v.pointer("/start/toolUse") {
                    let s = |k: &str| {
                        tu.get(k)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let start = BlockKind::ToolUse {
                        id: s("toolUseId"),
                        name: s("name"),
                    };
                    self.block(idx(), Open::Tool, Some(start), out);
                }
            }
            "contentBlockDelta" => {
                let i = idx();
                let d = v.get("delta").cloned().unwrap_or(Value::Null);
                if let Some(t) = d.get("text").and_then(Value::as_str) {
                    let index = self.block(i, Open::Text, None, out);
                    out.push(StreamEvent::Delta {
                        index,
                        delta: Delta::Text(t.to_owned()),
                    });
                } else if let Some(a) = d.pointer("/toolUse/input").and_then(Value::as_str) {
                    let index = self.block(i, Open::Tool, None, out);
                    out.push(StreamEvent::Delta {
                        index,
                        delta: Delta::ToolArgs(a.to_owned()),
                    });
                } else if let Some(rc) = d.get("reasoningContent") {
                    if let Some(r) = rc.get("redactedContent").and_then(Value::as_str) {
                        let index = self.next_index;
                        self.next_index += 1;
                        out.push(StreamEvent::BlockStart {
                            index,
                            block: BlockKind::RedactedThinking { data: r.to_owned() },
                        });
                        out.push(StreamEvent::BlockStop { index });
                    } else {
                        let index = self.block(i, Open::Thinking, None, out);
                        if let Some(t) = rc.get("text").and_then(Value::as_str) {
                            out.push(StreamEvent::Delta {
                                index,
                                delta: Delta::Thinking(t.to_owned()),
                            });
                        }
                        if let Some(s) = rc.get("signature").and_then(Value::as_str) {
                            out.push(StreamEvent::Delta {
                                index,
                                delta: Delta::Signature(s.to_owned()),
                            });
                        }
                    }
                }
            }
            "contentBlockStop" => {
                if let Some((index, _)) = self.open.remove(&idx()) {
                    out.push(StreamEvent::BlockStop { index });
                }
            }
            "messageStop" => {
                let mut open: Vec<u32> = self.open.drain().map(|(_, (i, _))| i).collect();
                open.sort_unstable();
                for index in open {
                    out.push(StreamEvent::BlockStop { index });
                }
                self.stopped = true;
                out.push(StreamEvent::Stop {
                    reason: stop_from_reason(
                        v.get("stopReason")
                            .and_then(Value::as_str)
                            .unwrap_or("end_turn"),
                    ),
                    stop_sequence: v
                        .pointer("/additionalModelResponseFields/stop_sequence")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                });
            }
            "metadata" => {
                if let Some(u) = v.get("usage") {
                    out.push(StreamEvent::Usage(parse_usage(u)));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The upstream closed the stream: complete once `messageStop` came (the usage follows it).
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ApiError> {
        if self.ended {
            return Ok(());
        }
        if !self.stopped {
            return Err(ApiError::new(
                ErrorKind::Api,
                "upstream stream ended before it was complete",
            ));
        }
        out.push(StreamEvent::End);
        Ok(())
    }
}

/// Canonical events -> ConverseStream event-stream messages for a Converse client.
#[derive(Debug, Default)]
pub struct Encoder {
    usage: Usage,
    stop: Option<StopReason>,
}

fn event(out: &mut Vec<u8>, ty: &str, payload: &Value) {
    out.extend(encode(
        &[
            (":event-type", ty),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    ));
}

impl Encoder {
    /// Encodes one event.
    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        match ev {
            StreamEvent::Start { usage, .. } => {
                self.usage = self.usage.merge(*usage);
                event(out, "messageStart", &json!({"role": "assistant"}));
            }
            StreamEvent::BlockStart {
                index,
                block: BlockKind::ToolUse { id, name },
            } => event(
                out,
                "contentBlockStart",
                &json!({"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": id, "name": name}}}),
            ),
            StreamEvent::BlockStart {
                index,
                block: BlockKind::RedactedThinking { data },
            } => event(
                out,
                "contentBlockDelta",
                &json!({"contentBlockIndex": index, "delta": {"reasoningContent": {"redactedContent": data}}}),
            ),
            StreamEvent::BlockStart { .. } => {}
            StreamEvent::Delta { index, delta } => {
                let d = match delta {
                    Delta::Text(t) => json!({"text": t}),
                    Delta::ToolArgs(a) => json!({"toolUse": {"input": a}}),
                    Delta::Thinking(t) => json!({"reasoningContent": {"text": t}}),
                    Delta::Signature(s) => json!({"reasoningContent": {"signature": s}}),
                };
                event(
                    out,
                    "contentBlockDelta",
                    &json!({"contentBlockIndex": index, "delta": d}),
                );
            }
            StreamEvent::BlockStop { index } => {
                event(
                    out,
                    "contentBlockStop",
                    &json!({"contentBlockIndex": index}),
                );
            }
            StreamEvent::Usage(u) => self.usage = self.usage.merge(*u),
            StreamEvent::Stop { reason, .. } => self.stop = Some(*reason),
            StreamEvent::End => {
                let reason = stop_reason(self.stop.unwrap_or(StopReason::EndTurn));
                event(out, "messageStop", &json!({"stopReason": reason}));
                event(
                    out,
                    "metadata",
                    &json!({"usage": usage_json(&self.usage), "metrics": {"latencyMs": 0}}),
                );
            }
            StreamEvent::Error(e) => out.extend(encode(
                &[
                    (":exception-type", "modelStreamErrorException"),
                    (":content-type", "application/json"),
                    (":message-type", "exception"),
                ],
                json!({"message": e.message}).to_string().as_bytes(),
            )),
        }
    }
}
