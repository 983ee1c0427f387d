//! Server-Sent Events (WHATWG HTML §9.2.6): an incremental parser and a writer.
//!
//! The parser accepts the stream split at any byte boundary (including inside `\r\n` or inside a
//! UTF-8 sequence) and yields the same frames; only complete lines are decoded.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseFrame {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The event's bytes as received, when the parser was built with [`SseParser::capturing`].
    pub raw: Vec<u8>,
}

/// An event (or a line) grew past the parser's limit: the stream cannot be trusted further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow {
    /// The limit that was crossed, in bytes.
    pub limit: usize,
}

impl std::fmt::Display for Overflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a stream event grew past {} bytes", self.limit)
    }
}

/// Incremental SSE parser. Memory is bounded by the limit: an upstream that sends a line or an
/// event that never ends gets an [`Overflow`], not the gateway's memory.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    event: Option<String>,
    data: String,
    has_data: bool,
    /// The previous chunk ended in `\r`: a leading `\n` belongs to that line ending.
    skip_lf: bool,
    /// Still at the very start (a UTF-8 BOM is dropped there).
    at_start: bool,
    capture: bool,
    raw: Vec<u8>,
    /// Bytes of the event in progress (every line since the last dispatch, partial line included).
    pending: usize,
    /// Most bytes one event may take (`usize::MAX` when unset).
    limit: usize,
    overflowed: bool,
}

impl SseParser {
    /// A parser that only yields `event` and `data`.
    pub fn new() -> Self {
        Self {
            at_start: true,
            limit: usize::MAX,
            ..Self::default()
        }
    }

    /// The same parser, failing once one event takes more than `limit` bytes.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// A parser that also keeps each event's raw bytes, for forwarding them unchanged.
    pub fn capturing() -> Self {
        Self {
            capture: true,
            ..Self::new()
        }
    }

    /// Feeds a chunk; complete events are appended to `out`. After an [`Overflow`] every call
    /// fails again and the buffers are released.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<SseFrame>) -> Result<(), Overflow> {
        if self.overflowed {
            return Err(self.overflow());
        }
        if self.skip_lf && !chunk.is_empty() {
            self.skip_lf = false;
            if let Some((&b'\n', rest)) = chunk.split_first() {
                if self.capture {
                    self.raw.push(b'\n');
                }
                chunk = rest;
            }
        }
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (line, rest) = chunk.split_at(pos);
            let cr = rest[0] == b'\r';
            let mut consumed = 1;
            if cr {
                match rest.get(1) {
                    Some(b'\n') => consumed = 2,
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            self.pending = self.pending.saturating_add(line.len() + consumed);
            if self.pending > self.limit {
                return Err(self.overflow());
            }
            if self.capture {
                self.raw.extend_from_slice(line);
                self.raw.extend_from_slice(&rest[..consumed]);
            }
            if self.line.is_empty() {
                self.process_line(line, out);
            } else {
                self.line.extend_from_slice(line);
                let full = std::mem::take(&mut self.line);
                self.process_line(&full, out);
                self.line = full;
                self.line.clear();
            }
            chunk = &rest[consumed..];
        }
        if !chunk.is_empty() {
            self.pending = self.pending.saturating_add(chunk.len());
            if self.pending > self.limit {
                return Err(self.overflow());
            }
            if self.capture {
                self.raw.extend_from_slice(chunk);
            }
            self.line.extend_from_slice(chunk);
        }
        Ok(())
    }

    fn overflow(&mut self) -> Overflow {
        self.overflowed = true;
        self.line = Vec::new();
        self.data = String::new();
        self.raw = Vec::new();
        Overflow { limit: self.limit }
    }

    /// Ends the stream: a last event not followed by a blank line is still dispatched
    /// (upstreams that close right after `data: [DONE]` exist).
    pub fn finish(&mut self, out: &mut Vec<SseFrame>) {
        if self.overflowed {
            return;
        }
        if !self.line.is_empty() {
            let full = std::mem::take(&mut self.line);
            self.process_line(&full, out);
        }
        self.dispatch(out);
    }

    fn process_line(&mut self, mut line: &[u8], out: &mut Vec<SseFrame>) {
        if self.at_start {
            self.at_start = false;
            if let Some(rest) = line.strip_prefix(b"\xEF\xBB\xBF") {
                line = rest;
            }
        }
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return; // comment (keep-alive)
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&String::from_utf8_lossy(value));
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {} // id, retry and unknown fields carry nothing the gateway needs
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseFrame>) {
        if self.has_data || self.event.is_some() {
            out.push(SseFrame {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
                raw: std::mem::take(&mut self.raw),
            });
        } else {
            self.raw.clear();
        }
        self.has_data = false;
        self.pending = 0;
    }
}

/// Appends one event to `buf`. Multi-line data is split into several `data:` lines.
pub fn write_sse(buf: &mut Vec<u8>, event: Option<&str>, data: &str) {
    if let Some(e) = event {
        buf.extend_from_slice(b"event: ");
        buf.extend_from_slice(e.as_bytes());
        buf.push(b'\n');
    }
    for line in data.split('\n') {
        buf.extend_from_slice(b"data: ");
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
    }
    buf.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseFrame> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        p.finish(&mut out);
        out
    }

    fn frame(event: Option<&str>, data: &str) -> SseFrame {
        SseFrame {
            event: event.map(str::to_owned),
            data: data.to_owned(),
            raw: Vec::new(),
        }
    }

    #[test]
    fn fields_comments_and_multiline_data() {
        let got = parse_all(&[
            b"\xEF\xBB\xBF: keep-alive\nevent: message_start\ndata: {\"a\":1}\n\ndata: line1\ndata:line2\nid: 7\nretry: 10\n\n",
        ]);
        assert_eq!(
            got,
            vec![
                frame(Some("message_start"), "{\"a\":1}"),
                frame(None, "line1\nline2")
            ]
        );
    }

    #[test]
    fn all_line_endings() {
        let got = parse_all(&[b"data: a\r\n\r\ndata: b\r\rdata: c\n\n"]);
        assert_eq!(
            got,
            vec![frame(None, "a"), frame(None, "b"), frame(None, "c")]
        );
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_ending() {
        let got = parse_all(&[b"data: a\r", b"\n", b"\r", b"\ndata: b\n\n"]);
        assert_eq!(got, vec![frame(None, "a"), frame(None, "b")]);
    }

    #[test]
    fn unterminated_last_event_is_flushed_on_finish() {
        assert_eq!(parse_all(&[b"data: [DONE]"]), vec![frame(None, "[DONE]")]);
        assert!(parse_all(&[b"\n\n: only a comment\n"]).is_empty());
    }

    #[test]
    fn capture_keeps_raw_bytes() {
        let mut p = SseParser::capturing();
        let mut out = Vec::new();
        let input = b"event: x\r\ndata: 1\r\n\r\ndata: 2\n\n";
        p.feed(&input[..5], &mut out).unwrap();
        p.feed(&input[5..], &mut out).unwrap();
        assert_eq!(out[0].raw, b"event: x\r\ndata: 1\r\n\r\n");
        assert_eq!(out[1].raw, b"data: 2\n\n");
        let joined: Vec<u8> = out.iter().flat_map(|f| f.raw.clone()).collect();
        assert_eq!(joined, input);
    }

    #[test]
    fn an_endless_line_or_event_overflows_at_the_limit() {
        // One line that never ends, fed in small chunks: fails once past the limit.
        let mut p = SseParser::capturing().with_limit(64);
        let mut out = Vec::new();
        p.feed(b"data: {\"x\":\"", &mut out).unwrap();
        let mut fed = 11;
        let err = loop {
            match p.feed(&[b'a'; 10], &mut out) {
                Ok(()) => fed += 10,
                Err(e) => break e,
            }
            assert!(fed <= 64, "accepted {fed} bytes past a 64-byte limit");
        };
        assert_eq!(err, Overflow { limit: 64 });
        assert!(
            p.feed(b"\n\n", &mut out).is_err(),
            "an overflowed parser stays failed"
        );
        assert!(out.is_empty());
        // Many short data lines without a blank line are one event too.
        let mut p = SseParser::new().with_limit(100);
        let r: Result<(), Overflow> = (0..50).try_for_each(|_| p.feed(b"data: 12345\n", &mut out));
        assert!(r.is_err());
        // Events under the limit pass, however many: the count restarts at each event.
        let mut p = SseParser::new().with_limit(32);
        for _ in 0..1000 {
            p.feed(b"data: {\"a\":1}\n\n", &mut out).unwrap();
        }
        assert_eq!(out.len(), 1000);
    }

    #[test]
    fn writer_round_trips() {
        let mut buf = Vec::new();
        write_sse(&mut buf, Some("ping"), "{}");
        write_sse(&mut buf, None, "a\nb");
        assert_eq!(
            parse_all(&[&buf]),
            vec![frame(Some("ping"), "{}"), frame(None, "a\nb")]
        );
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_frames(
            events in proptest::collection::vec(("[a-z_]{0,8}", "[ -~é€😀\n]{0,40}"), 0..8),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
            crlf in any::<bool>(),
        ) {
            let mut buf = Vec::new();
            for (e, d) in &events {
                write_sse(&mut buf, (!e.is_empty()).then_some(e.as_str()), d);
            }
            if crlf {
                buf = String::from_utf8(buf).unwrap().replace('\n', "\r\n").into_bytes();
            }
            let whole = parse_all(&[&buf]);
            let mut idx: Vec<usize> = cuts.iter().map(|c| c % (buf.len() + 1)).collect();
            idx.sort_unstable();
            let mut parts = Vec::new();
            let mut last = 0;
            for i in idx { parts.push(&buf[last..i]); last = i; }
            parts.push(&buf[last..]);
            prop_assert_eq!(parse_all(&parts), whole.clone());
            prop_assert_eq!(whole.len(), events.len());
        }

        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_all(&[&data]);
        }
    }
}
