//! AWS event-stream framing (`application/vnd.amazon.eventstream`), sans-IO: a length-prefixed
//! binary message with typed headers and CRC32 checksums over the prelude and the whole
//! message. Bedrock's `ConverseStream` answers in it. The decoder accepts input split at any
//! byte and never allocates more than one message's declared length, itself bounded.

/// A header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Type 0 / 1.
    Bool(bool),
    /// Type 2.
    Byte(i8),
    /// Type 3.
    Short(i16),
    /// Type 4.
    Int(i32),
    /// Type 5.
    Long(i64),
    /// Type 6.
    Bytes(Vec<u8>),
    /// Type 7.
    String(String),
    /// Type 8: milliseconds since the epoch.
    Timestamp(i64),
    /// Type 9.
    Uuid([u8; 16]),
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Headers in order.
    pub headers: Vec<(String, HeaderValue)>,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Message {
    /// A string header's value (`:event-type`, `:message-type`, `:exception-type`, ...).
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }
}

/// Why a stream is not valid event-stream framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The prelude's checksum does not match.
    PreludeChecksum,
    /// The message's checksum does not match.
    MessageChecksum,
    /// Declared lengths are impossible or over the limit.
    Length(String),
    /// A header is malformed.
    Header(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PreludeChecksum => f.write_str("event-stream prelude checksum mismatch"),
            Self::MessageChecksum => f.write_str("event-stream message checksum mismatch"),
            Self::Length(s) => write!(f, "event-stream length error: {s}"),
            Self::Header(s) => write!(f, "event-stream header error: {s}"),
        }
    }
}

const PRELUDE: usize = 12;
const MIN_MESSAGE: usize = PRELUDE + 4;
/// AWS's own bounds: 16 MiB a message, 128 KiB of headers.
const MAX_HEADERS: usize = 128 * 1024;

/// Incremental decoder.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    max_message: usize,
    failed: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(16 * 1024 * 1024)
    }
}

impl Decoder {
    /// A decoder refusing messages longer than `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_message: max_message.max(MIN_MESSAGE),
            failed: false,
        }
    }

    /// Feeds bytes; complete messages are appended to `out` with their raw bytes. After an
    /// error every call fails again.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<(Message, Vec<u8>)>,
    ) -> Result<(), FrameError> {
        if self.failed {
            return Err(FrameError::Length("the stream already failed".into()));
        }
        self.buf.extend_from_slice(bytes);
        let r = self.drain(out);
        if r.is_err() {
            self.failed = true;
            self.buf = Vec::new();
        }
        r
    }

    /// Whether bytes of an unfinished message remain (the stream was cut if it ends now).
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    fn drain(&mut self, out: &mut Vec<(Message, Vec<u8>)>) -> Result<(), FrameError> {
        let mut start = 0;
        while self.buf.len() - start >= PRELUDE {
            let b = &self.buf[start..];
            let total = be32(&b[0..4]) as usize;
            let headers_len = be32(&b[4..8]) as usize;
            if crc32(&b[0..8]) != be32(&b[8..12]) {
                return Err(FrameError::PreludeChecksum);
            }
            if total < MIN_MESSAGE || total > self.max_message {
                return Err(FrameError::Length(format!(
                    "message of {total} bytes (limit {})",
                    self.max_message
                )));
            }
            if headers_len > MAX_HEADERS || headers_len > total - MIN_MESSAGE {
                return Err(FrameError::Length(format!(
                    "{headers_len} bytes of headers in a {total}-byte message"
                )));
            }
            if b.len() < total {
                break;
            }
            let msg = &b[..total];
            if crc32(&msg[..total - 4]) != be32(&msg[total - 4..]) {
                return Err(FrameError::MessageChecksum);
            }
            let headers = parse_headers(&msg[PRELUDE..PRELUDE + headers_len])?;
            let payload = msg[PRELUDE + headers_len..total - 4].to_vec();
            out.push((Message { headers, payload }, msg.to_vec()));
            start += total;
        }
        self.buf.drain(..start);
        Ok(())
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn parse_headers(mut h: &[u8]) -> Result<Vec<(String, HeaderValue)>, FrameError> {
    fn take<'a>(h: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], FrameError> {
        if h.len() < n {
            return Err(FrameError::Header(format!("{what} cut off")));
        }
        let (a, b) = h.split_at(n);
        *h = b;
        Ok(a)
    }
    let mut out = Vec::new();
    while !h.is_empty() {
        let n = take(&mut h, 1, "name length")?[0] as usize;
        if n == 0 {
            return Err(FrameError::Header("empty header name".into()));
        }
        let name = String::from_utf8(take(&mut h, n, "name")?.to_vec())
            .map_err(|_| FrameError::Header("name is not UTF-8".into()))?;
        let ty = take(&mut h, 1, "value type")?[0];
        let fixed = |h: &mut &[u8], n: usize| -> Result<Vec<u8>, FrameError> {
            take(h, n, "value").map(<[u8]>::to_vec)
        };
        let value = match ty {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(fixed(&mut h, 1)?[0] as i8),
            3 => {
                let v = fixed(&mut h, 2)?;
                HeaderValue::Short(i16::from_be_bytes([v[0], v[1]]))
            }
            4 => {
                let v = fixed(&mut h, 4)?;
                HeaderValue::Int(i32::from_be_bytes([v[0], v[1], v[2], v[3]]))
            }
            5 | 8 => {
                let v = fixed(&mut h, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(&v);
                let n = i64::from_be_bytes(a);
                if ty == 5 {
                    HeaderValue::Long(n)
                } else {
                    HeaderValue::Timestamp(n)
                }
            }
            6 | 7 => {
                let l = fixed(&mut h, 2)?;
                let len = u16::from_be_bytes([l[0], l[1]]) as usize;
                let v = fixed(&mut h, len)?;
                if ty == 6 {
                    HeaderValue::Bytes(v)
                } else {
                    HeaderValue::String(
                        String::from_utf8(v)
                            .map_err(|_| FrameError::Header("string is not UTF-8".into()))?,
                    )
                }
            }
            9 => {
                let v = fixed(&mut h, 16)?;
                let mut a = [0u8; 16];
                a.copy_from_slice(&v);
                HeaderValue::Uuid(a)
            }
            other => return Err(FrameError::Header(format!("unknown value type {other}"))),
        };
        out.push((name, value));
    }
    Ok(out)
}

/// Encodes a message (string headers only: what the gateway writes).
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut hb = Vec::new();
    for (n, v) in headers {
        hb.push(n.len() as u8);
        hb.extend_from_slice(n.as_bytes());
        hb.push(7);
        hb.extend_from_slice(&(v.len() as u16).to_be_bytes());
        hb.extend_from_slice(v.as_bytes());
    }
    let total = (PRELUDE + hb.len() + payload.len() + 4) as u32;
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&(hb.len() as u32).to_be_bytes());
    let prelude_crc = crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&hb);
    out.extend_from_slice(payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it).
pub fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut c = !0u32;
    for &b in data {
        c = TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vector(name: &str) -> Vec<u8> {
        let dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        std::fs::read(
            std::path::Path::new(&dir)
                .join("tests/fixtures/aws-eventstream-vectors")
                .join(name),
        )
        .unwrap()
    }

    fn decode_all(bytes: &[u8]) -> Result<Vec<Message>, FrameError> {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        d.feed(bytes, &mut out)?;
        assert!(!d.has_partial(), "a whole vector leaves nothing behind");
        Ok(out.into_iter().map(|(m, _)| m).collect())
    }

    #[test]
    fn the_aws_vectors() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        let m = &decode_all(&vector("valid_with_all_headers_and_payload")).unwrap()[0];
        assert_eq!(m.payload, b"some payload");
        let names: Vec<&str> = m.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "true", "false", "byte", "short", "int", "long", "bytes", "str", "time", "uuid"
            ]
        );
        assert_eq!(m.headers[0].1, HeaderValue::Bool(true));
        assert_eq!(m.headers[3].1, HeaderValue::Short(20000));
        assert_eq!(m.header_str("str"), Some("some str"));
        assert_eq!(m.headers[8].1, HeaderValue::Timestamp(5_000_000_000));
        let m = &decode_all(&vector("valid_no_headers")).unwrap()[0];
        assert_eq!(
            (m.headers.len(), m.payload.as_slice()),
            (0, &b"another test payload"[..])
        );
        let m = &decode_all(&vector("valid_empty_payload")).unwrap()[0];
        assert_eq!((m.headers.len(), m.payload.len()), (1, 0));
        for bad in [
            "invalid_header_name_length",
            "invalid_header_name_length_too_long",
            "invalid_header_string_length_cut_off",
            "invalid_header_string_value_length",
            "invalid_header_value_type",
            "invalid_headers_length",
            "invalid_message_checksum",
            "invalid_prelude_checksum",
        ] {
            let mut d = Decoder::default();
            let mut out = Vec::new();
            let r = d.feed(&vector(bad), &mut out);
            assert!(r.is_err() && out.is_empty(), "{bad} was accepted");
        }
    }

    #[test]
    fn encode_round_trips_and_lengths_are_bounded() {
        let m = encode(
            &[(":event-type", "messageStart"), (":message-type", "event")],
            br#"{"role":"assistant"}"#,
        );
        let got = decode_all(&m).unwrap();
        assert_eq!(got[0].header_str(":event-type"), Some("messageStart"));
        let mut d = Decoder::new(64);
        let mut out = Vec::new();
        let big = encode(&[], &[b'x'; 200]);
        assert!(
            matches!(d.feed(&big[..12], &mut out), Err(FrameError::Length(_))),
            "refused from the prelude alone"
        );
    }

    proptest! {
        #[test]
        fn split_anywhere_gives_the_same_messages(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..5),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
        ) {
            let mut stream = Vec::new();
            for p in &payloads {
                stream.extend(encode(&[(":event-type", "x")], p));
            }
            let whole = decode_all(&stream).unwrap();
            let mut idx: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
            idx.sort_unstable();
            let mut d = Decoder::default();
            let mut out = Vec::new();
            let mut last = 0;
            for i in idx.into_iter().chain([stream.len()]) {
                d.feed(&stream[last..i], &mut out).unwrap();
                last = i;
            }
            let parts: Vec<Message> = out.into_iter().map(|(m, _)| m).collect();
            prop_assert_eq!(parts, whole);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut d = Decoder::default();
            let _ = d.feed(&bytes, &mut Vec::new());
        }
    }
}
