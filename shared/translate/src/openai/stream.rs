//! OpenAI `chat.completion.chunk` streams <-> canonical events.

use super::error::error_object;
use super::response::{finish_reason, parse_usage, stop_from_finish, usage_json};
use gw_codec::{SseFrame, write_sse};
use gw_model::*;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::HashMap;

/// One chunk as borrowed raw fields: every chunk passes through here, and building a full
/// `Value` (an ordered map per object) was most of the per-chunk cost. Fields stay raw so a
/// provider's odd type for one of them is ignored, as before, instead of failing the chunk.
#[derive(Deserialize)]
struct ChunkIn<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    created: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<&'a RawValue>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    x_groq: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ChoiceIn<'a> {
    #[serde(borrow, default)]
    delta: Option<&'a RawValue>,
    #[serde(borrow, default)]
    finish_reason: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct DeltaIn<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    refusal: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning_content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<&'a RawValue>,
}

/// A raw field as a string, if it is one.
fn raw_str(r: Option<&RawValue>) -> Option<String> {
    r.and_then(|r| serde_json::from_str::<String>(r.get()).ok())
}

/// A raw field as a `Value`, unless absent or `null`.
fn raw_value(r: Option<&RawValue>) -> Option<Value> {
    r.and_then(|r| serde_json::from_str::<Value>(r.get()).ok())
        .filter(|v| !v.is_null())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    Tool(u64),
}

/// Upstream OpenAI chunks -> canonical events. Keeps ids and tool names per index, so no event
/// ever carries a placeholder.
#[derive(Debug, Default)]
pub struct Decoder {
    started: bool,
    next_index: u32,
    open: Option<(Open, u32)>,
    /// OpenAI tool index -> (canonical block index, call id).
    tools: HashMap<u64, (u32, String)>,
    last_tool: Option<u64>,
    finished: bool,
    done: bool,
}

impl Decoder {
    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some((_, idx)) = self.open.take() {
            out.push(StreamEvent::BlockStop { index: idx });
        }
    }

    fn ensure(&mut self, kind: Open, block: BlockKind, out: &mut Vec<StreamEvent>) -> u32 {
        if let Some((k, idx)) = self.open
            && k == kind
        {
            return idx;
        }
        self.close(out);
        let idx = self.next_index;
        self.next_index += 1;
        self.open = Some((kind, idx));
        out.push(StreamEvent::BlockStart { index: idx, block });
        idx
    }

    /// Feeds one SSE frame.
    pub fn feed(&mut self, frame: &SseFrame, out: &mut Vec<StreamEvent>) -> Result<(), ApiError> {
        let data = frame.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        if data == "[DONE]" {
            self.close(out);
            self.done = true;
            out.push(StreamEvent::End);
            return Ok(());
        }
        let c: ChunkIn<'_> = serde_json::from_str(data).map_err(|e| {
            ApiError::new(
                ErrorKind::Api,
                format!("upstream sent a malformed stream chunk: {e}"),
            )
        })?;
        if let Some(err) = raw_value(c.error) {
            let status = err
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| *c >= 400)
                .unwrap_or(500);
            let body = json!({ "error": err }).to_string();
            out.push(StreamEvent::Error(super::decode_error(
                status,
                body.as_bytes(),
            )));
            return Ok(());
        }
        let empty = |r: Option<&RawValue>, none: &str| r.is_none_or(|r| r.get().trim() == none);
        if !self.started
            && raw_str(c.id).unwrap_or_default().is_empty()
            && empty(c.choices, "[]")
            && empty(c.usage, "null")
        {
            // Azure's first chunk only reports the prompt's content filtering (no id, model or
            // choices): the message starts with the next one.
            return Ok(());
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: raw_str(c.id).unwrap_or_default(),
                model: raw_str(c.model).unwrap_or_default(),
                usage: Usage::default(),
                created: c
                    .created
                    .and_then(|r| serde_json::from_str::<i64>(r.get()).ok()),
            });
        }
        let first = c
            .choices
            .and_then(|r| serde_json::from_str::<Vec<&RawValue>>(r.get()).ok())
            .and_then(|v| v.first().copied())
            .and_then(|r| serde_json::from_str::<ChoiceIn<'_>>(r.get()).ok());
        if let Some(choice) = first {
            if let Some(delta) = choice
                .delta
                .and_then(|r| serde_json::from_str::<DeltaIn<'_>>(r.get()).ok())
            {
                self.delta(&delta, out);
            }
            if let Some(f) = raw_str(choice.finish_reason) {
                self.close(out);
                self.finished = true;
                out.push(StreamEvent::Stop {
                    reason: stop_from_finish(&f),
                    stop_sequence: None,
                });
            }
        }
        // Groq reports usage under `x_groq.usage`.
        let usage = raw_value(c.usage)
            .filter(Value::is_object)
            .or_else(|| raw_value(c.x_groq).and_then(|x| x.get("usage").cloned()));
        if let Some(u) = usage {
            out.push(StreamEvent::Usage(parse_usage(&u)));
        }
        Ok(())
    }

    fn delta(&mut self, delta: &DeltaIn<'_>, out: &mut Vec<StreamEvent>) {
        let reasoning = raw_str(delta.reasoning_content).or_else(|| raw_str(delta.reasoning));
        if let Some(r) = reasoning.filter(|r| !r.is_empty()) {
            let idx = self.ensure(Open::Thinking, BlockKind::Thinking, out);
            out.push(StreamEvent::Delta {
                index: idx,
                delta: Delta::Thinking(r),
            });
        }
        for raw in [delta.content, delta.refusal] {
            if let Some(t) = raw_str(raw).filter(|t| !t.is_empty()) {
                let idx = self.ensure(Open::Text, BlockKind::Text, out);
                out.push(StreamEvent::Delta {
                    index: idx,
                    delta: Delta::Text(t),
                });
            }
        }
        let Some(Value::Array(calls)) = raw_value(delta.tool_calls) else {
            return;
        };
        for c in &calls {
            let id = c
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            // Mistral omits `index`: a new id means a new call, otherwise it continues the last one.
            let oai = match c.get("index").and_then(Value::as_u64) {
                Some(i) => i,
                None => match (id, self.last_tool) {
                    (Some(id), Some(last))
                        if self.tools.get(&last).is_some_and(|(_, known)| known != id) =>
                    {
                        last.saturating_add(1)
                    }
                    (_, Some(last)) => last,
                    (_, None) => 0,
                },
            };
            self.last_tool = Some(oai);
            let idx = match self.tools.get(&oai) {
                Some((idx, _)) => {
                    let idx = *idx;
                    if self.open != Some((Open::Tool(oai), idx)) {
                        // A late fragment for a call whose block was closed: reopen is impossible in
                        // Anthropic's model, so it is appended to the current block only if it is this call.
                        if self.open.map(|(k, _)| k) != Some(Open::Tool(oai)) {
                            self.close(out);
                            self.open = Some((Open::Tool(oai), idx));
                        }
                    }
                    idx
                }
                None => {
                    let call_id =
                        id.map_or_else(|| format!("call_{}", self.next_index), str::to_owned);
                    let name = c
                        .pointer("/function/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let idx = self.ensure(
                        Open::Tool(oai),
                        BlockKind::ToolUse {
                            id: call_id.clone(),
                            name,
                        },
                        out,
                    );
                    self.tools.insert(oai, (idx, call_id));
                    idx
                }
            };
            if let Some(a) = c
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
            {
                out.push(StreamEvent::Delta {
                    index: idx,
                    delta: Delta::ToolArgs(a.to_owned()),
                });
            }
        }
    }

    /// The upstream closed the stream.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ApiError> {
        if self.done {
            return Ok(());
        }
        if self.finished {
            // Some compatible servers close right after the finish chunk without `[DONE]`.
            self.close(out);
            self.done = true;
            out.push(StreamEvent::End);
            return Ok(());
        }
        Err(ApiError::new(
            ErrorKind::Api,
            "upstream stream ended before it was complete",
        ))
    }
}

/// Canonical events -> OpenAI chunks for the client.
#[derive(Debug, Default)]
pub struct Encoder {
    include_usage: bool,
    id: String,
    model: String,
    created: i64,
    /// Canonical block index -> OpenAI tool call index.
    tool_index: HashMap<u32, u32>,
    usage: Usage,
    stopped: bool,
    failed: bool,
}

impl Encoder {
    /// `include_usage`: the client set `stream_options.include_usage`.
    pub fn new(include_usage: bool) -> Self {
        Self {
            include_usage,
            ..Self::default()
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>, out: &mut Vec<u8>) {
        self.chunk_raw(&delta.to_string(), finish, out);
    }

    /// A chunk written directly (every delta goes through here: no map is built per chunk);
    /// the same bytes `json!` would produce, as a property test checks.
    fn chunk_raw(&self, delta: &str, finish: Option<&str>, out: &mut Vec<u8>) {
        let js = |s: &str| serde_json::to_string(s).unwrap_or_default();
        out.extend_from_slice(b"data: {\"id\":");
        out.extend_from_slice(js(&self.id).as_bytes());
        out.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        out.extend_from_slice(self.created.to_string().as_bytes());
        out.extend_from_slice(b",\"model\":");
        out.extend_from_slice(js(&self.model).as_bytes());
        out.extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":");
        out.extend_from_slice(delta.as_bytes());
        out.extend_from_slice(b",\"logprobs\":null,\"finish_reason\":");
        match finish {
            Some(f) => out.extend_from_slice(js(f).as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}]");
        if self.include_usage {
            out.extend_from_slice(b",\"usage\":null");
        }
        out.extend_from_slice(b"}\n\n");
    }

    fn text_delta(&self, key: &str, t: &str, out: &mut Vec<u8>) {
        let mut d = String::with_capacity(t.len() + key.len() + 8);
        d.push_str("{\"");
        d.push_str(key);
        d.push_str("\":");
        d.push_str(&serde_json::to_string(t).unwrap_or_default());
        d.push('}');
        self.chunk_raw(&d, None, out);
    }

    /// Encodes one event.
    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        match ev {
            StreamEvent::Start {
                id,
                model,
                usage,
                created,
            } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
                self.created = created.unwrap_or(0);
                self.usage = *usage;
                self.chunk(json!({"role": "assistant", "content": ""}), None, out);
            }
            StreamEvent::BlockStart {
                index,
                block: BlockKind::ToolUse { id, name },
            } => {
                let n = self.tool_index.len() as u32;
                self.tool_index.insert(*index, n);
                self.chunk(
                    json!({"tool_calls": [{"index": n, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                    None,
                    out,
                );
            }
            StreamEvent::BlockStart { .. } | StreamEvent::BlockStop { .. } => {}
            StreamEvent::Delta { index, delta } => match delta {
                Delta::Text(t) => self.text_delta("content", t, out),
                Delta::Thinking(t) => self.text_delta("reasoning_content", t, out),
                Delta::ToolArgs(a) => {
                    let n = self.tool_index.get(index).copied().unwrap_or(0);
                    self.chunk(
                        json!({"tool_calls": [{"index": n, "function": {"arguments": a}}]}),
                        None,
                        out,
                    );
                }
                Delta::Signature(_) => {}
            },
            StreamEvent::Usage(u) => self.usage = self.usage.merge(*u),
            StreamEvent::Stop { reason, .. } => {
                if !self.stopped {
                    self.stopped = true;
                    self.chunk(json!({}), Some(finish_reason(*reason)), out);
                }
            }
            StreamEvent::Error(e) => {
                self.failed = true;
                write_sse(out, None, &json!({"error": error_object(e)}).to_string());
            }
            StreamEvent::End => {
                if self.failed {
                    return;
                }
                if !self.stopped {
                    self.stopped = true;
                    self.chunk(json!({}), Some("stop"), out);
                }
                if self.include_usage {
                    let c = json!({
                        "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": self.model, "choices": [], "usage": usage_json(&self.usage),
                    });
                    write_sse(out, None, &c.to_string());
                }
                write_sse(out, None, "[DONE]");
            }
        }
    }
}
