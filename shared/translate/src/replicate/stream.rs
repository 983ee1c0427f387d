//! Replicate's prediction stream (`urls.stream`): SSE `output` events carrying text, then
//! `done` (or `error`), to and from canonical events.

use gw_codec::{SseFrame, write_sse};
use gw_model::{ApiError, BlockKind, Delta, ErrorKind, StopReason, StreamEvent};
use serde_json::{Value, json};

/// Upstream stream -> canonical events.
#[derive(Debug, Default)]
pub struct Decoder {
    started: bool,
    ended: bool,
}

impl Decoder {
    fn start(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: String::new(),
                model: String::new(),
                usage: gw_model::Usage::default(),
                created: None,
            });
            out.push(StreamEvent::BlockStart {
                index: 0,
                block: BlockKind::Text,
            });
        }
    }

    /// Feeds one SSE frame.
    pub fn feed(&mut self, frame: &SseFrame, out: &mut Vec<StreamEvent>) -> Result<(), ApiError> {
        match frame.event.as_deref() {
            Some("output") => {
                self.start(out);
                if !frame.data.is_empty() {
                    out.push(StreamEvent::Delta {
                        index: 0,
                        delta: Delta::Text(frame.data.clone()),
                    });
                }
            }
            Some("done") => {
                self.start(out);
                out.push(StreamEvent::BlockStop { index: 0 });
                let canceled = serde_json::from_str::<Value>(&frame.data)
                    .ok()
                    .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_owned));
                if let Some(r) = canceled.filter(|r| !r.is_empty()) {
                    out.push(StreamEvent::Error(ApiError::new(
                        ErrorKind::Api,
                        format!("the prediction ended early: {r}"),
                    )));
                } else {
                    out.push(StreamEvent::Stop {
                        reason: StopReason::EndTurn,
                        stop_sequence: None,
                    });
                }
                out.push(StreamEvent::End);
                self.ended = true;
            }
            Some("error") => {
                let detail = serde_json::from_str::<Value>(&frame.data)
                    .ok()
                    .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_owned))
                    .unwrap_or_else(|| frame.data.clone());
                out.push(StreamEvent::Error(ApiError::new(
                    ErrorKind::Api,
                    format!("the prediction failed: {detail}"),
                )));
                self.ended = true;
            }
            // Comments and unknown events (keep-alives) carry nothing.
            _ => {}
        }
        Ok(())
    }

    /// The stream closed: an error unless `done` or `error` came first.
    pub fn finish(&mut self, _out: &mut Vec<StreamEvent>) -> Result<(), ApiError> {
        if self.ended {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorKind::Api,
                "upstream stream ended before it was complete (no `done` event)",
            ))
        }
    }
}

/// Canonical events -> a Replicate-style stream (for symmetry: no client speaks it).
#[derive(Debug, Default)]
pub struct Encoder {
    done: bool,
}

impl Encoder {
    /// Encodes one event.
    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        match ev {
            StreamEvent::Delta {
                delta: Delta::Text(t),
                ..
            } => write_sse(out, Some("output"), t),
            StreamEvent::Error(e) if !self.done => {
                self.done = true;
                write_sse(
                    out,
                    Some("error"),
                    &json!({"detail": e.message}).to_string(),
                );
            }
            StreamEvent::End if !self.done => {
                self.done = true;
                write_sse(out, Some("done"), "{}");
            }
            _ => {}
        }
    }
}
