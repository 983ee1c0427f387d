//! One interface over every stream framing an upstream may use: bytes in, frames out, each
//! frame with its event name, its data as text and its raw bytes (for byte-exact forwarding).

use crate::eventstream;
use crate::sse::{SseFrame, SseParser};

/// A frame parser for one stream.
#[derive(Debug)]
pub enum Framer {
    /// Server-Sent Events.
    Sse(SseParser),
    /// AWS event-stream: each message becomes a frame named by its `:event-type` (exceptions
    /// by `exception:` and their `:exception-type`), its payload as the data.
    EventStream(eventstream::Decoder),
}

/// The stream cannot be framed further (an event over the limit, a bad checksum, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameFail {
    /// What went wrong.
    pub message: String,
    /// The size limit was what failed.
    pub too_large: bool,
}

impl Framer {
    /// SSE, keeping raw bytes when `capture`, failing past `limit` bytes an event.
    pub fn sse(capture: bool, limit: usize) -> Self {
        let p = if capture {
            SseParser::capturing()
        } else {
            SseParser::new()
        };
        Self::Sse(p.with_limit(limit))
    }

    /// AWS event-stream, failing past `limit` bytes a message.
    pub fn event_stream(limit: usize) -> Self {
        Self::EventStream(eventstream::Decoder::new(limit))
    }

    /// Feeds bytes; complete frames are appended to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseFrame>) -> Result<(), FrameFail> {
        match self {
            Self::Sse(p) => p.feed(bytes, out).map_err(|o| FrameFail {
                message: o.to_string(),
                too_large: true,
            }),
            Self::EventStream(d) => {
                let mut msgs = Vec::new();
                let r = d.feed(bytes, &mut msgs);
                for (m, raw) in msgs {
                    let event = match m.header_str(":message-type") {
                        Some("exception") | Some("error") => format!(
                            "exception:{}",
                            m.header_str(":exception-type")
                                .or_else(|| m.header_str(":error-code"))
                                .unwrap_or("unknown")
                        ),
                        _ => m.header_str(":event-type").unwrap_or_default().to_owned(),
                    };
                    out.push(SseFrame {
                        event: Some(event),
                        data: String::from_utf8_lossy(&m.payload).into_owned(),
                        raw,
                    });
                }
                r.map_err(|e| FrameFail {
                    too_large: matches!(e, eventstream::FrameError::Length(_)),
                    message: e.to_string(),
                })
            }
        }
    }

    /// The stream ended: flushes what the framing allows (SSE's last unterminated event).
    pub fn finish(&mut self, out: &mut Vec<SseFrame>) {
        match self {
            Self::Sse(p) => p.finish(out),
            // A cut message is simply incomplete; the decoder above reports the missing end.
            Self::EventStream(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_stream_messages_become_named_frames() {
        let mut f = Framer::event_stream(1 << 20);
        let mut out = Vec::new();
        let a = eventstream::encode(
            &[(":event-type", "messageStart"), (":message-type", "event")],
            br#"{"role":"assistant"}"#,
        );
        let b = eventstream::encode(
            &[
                (":exception-type", "throttlingException"),
                (":message-type", "exception"),
            ],
            br#"{"message":"slow down"}"#,
        );
        let both = [a.clone(), b].concat();
        f.feed(&both[..7], &mut out).unwrap();
        f.feed(&both[7..], &mut out).unwrap();
        assert_eq!(out[0].event.as_deref(), Some("messageStart"));
        assert_eq!(out[0].raw, a);
        assert_eq!(
            out[1].event.as_deref(),
            Some("exception:throttlingException")
        );
        assert_eq!(out[1].data, r#"{"message":"slow down"}"#);
        let mut bad = both.clone();
        bad[20] ^= 1;
        let mut f = Framer::event_stream(1 << 20);
        assert!(f.feed(&bad, &mut Vec::new()).is_err());
    }
}
