//! Answers in `Content-Encoding: gzip` or `deflate`, decoded as they stream in. Input is fed in
//! small slices so one compressed chunk cannot expand into one huge buffer: the engine's body
//! limits then see the decoded bytes a piece at a time.

use bytes::Bytes;
use futures_util::Stream;
use gw_ports::{ByteStream, TransportError, TransportErrorKind};
use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

/// How much compressed input goes in per step (≤ ~1 MB out at deflate's maximum ratio).
const STEP: usize = 1024;

enum Inflate {
    Gzip(flate2::write::MultiGzDecoder<Vec<u8>>),
    Zlib(flate2::write::ZlibDecoder<Vec<u8>>),
}

impl Inflate {
    /// Decodes `b`; the flush hands over everything decoded so far (flate2 otherwise keeps a
    /// write's output until the next one, and an event would wait for the next chunk).
    fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Gzip(d) => d.write_all(b).and_then(|()| d.flush()),
            Self::Zlib(d) => d.write_all(b).and_then(|()| d.flush()),
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        match self {
            Self::Gzip(d) => d.try_finish(),
            Self::Zlib(d) => d.try_finish(),
        }
    }

    fn take(&mut self) -> Vec<u8> {
        let out = match self {
            Self::Gzip(d) => d.get_mut(),
            Self::Zlib(d) => d.get_mut(),
        };
        std::mem::take(out)
    }
}

/// The decoder for a `Content-Encoding` value, if it is one we decode.
pub(crate) fn decoder(encoding: &[u8]) -> Option<fn(ByteStream) -> ByteStream> {
    let e = std::str::from_utf8(encoding).ok()?.trim();
    if e.eq_ignore_ascii_case("gzip") || e.eq_ignore_ascii_case("x-gzip") {
        Some(|s| {
            Box::pin(Decoded::new(
                s,
                Inflate::Gzip(flate2::write::MultiGzDecoder::new(Vec::new())),
            ))
        })
    } else if e.eq_ignore_ascii_case("deflate") {
        Some(|s| {
            Box::pin(Decoded::new(
                s,
                Inflate::Zlib(flate2::write::ZlibDecoder::new(Vec::new())),
            ))
        })
    } else {
        None
    }
}

struct Decoded {
    inner: Option<ByteStream>,
    inflate: Inflate,
    pending: Bytes,
    /// Whether any compressed byte arrived (an empty body is an empty answer, not a bad one).
    any: bool,
}

impl Decoded {
    fn new(inner: ByteStream, inflate: Inflate) -> Self {
        Self {
            inner: Some(inner),
            inflate,
            pending: Bytes::new(),
            any: false,
        }
    }
}

fn bad(e: &std::io::Error) -> TransportError {
    TransportError::new(
        TransportErrorKind::Body,
        format!("the compressed answer does not decode: {e}"),
    )
}

impl Stream for Decoded {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if !this.pending.is_empty() {
                let step = this.pending.split_to(this.pending.len().min(STEP));
                if let Err(e) = this.inflate.write(&step) {
                    this.inner = None;
                    this.pending.clear();
                    return Poll::Ready(Some(Err(bad(&e))));
                }
                let out = this.inflate.take();
                if !out.is_empty() {
                    return Poll::Ready(Some(Ok(out.into())));
                }
                continue;
            }
            let Some(inner) = this.inner.as_mut() else {
                return Poll::Ready(None);
            };
            match inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(b))) => {
                    this.any |= !b.is_empty();
                    this.pending = b;
                }
                Poll::Ready(Some(Err(e))) => {
                    this.inner = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.inner = None;
                    if !this.any {
                        return Poll::Ready(None);
                    }
                    if let Err(e) = this.inflate.finish() {
                        return Poll::Ready(Some(Err(bad(&e))));
                    }
                    let out = this.inflate.take();
                    return Poll::Ready((!out.is_empty()).then(|| Ok(out.into())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn chunks(parts: Vec<Vec<u8>>) -> ByteStream {
        Box::pin(futures_util::stream::iter(
            parts.into_iter().map(|p| Ok(Bytes::from(p))),
        ))
    }

    async fn collect(s: ByteStream) -> Result<Vec<u8>, TransportError> {
        let mut out = Vec::new();
        let mut s = s;
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap_or_default();
        e.finish().unwrap_or_default()
    }

    #[tokio::test]
    async fn gzip_split_anywhere_decodes_whole() {
        let text = br#"{"choices":[{"message":{"content":"hello"}}]}"#.repeat(200);
        let z = gzip(&text);
        for cut in [1, 7, z.len() / 2, z.len() - 1] {
            let dec =
                decoder(b" GZIP ").map(|d| d(chunks(vec![z[..cut].to_vec(), z[cut..].to_vec()])));
            let got = collect(dec.unwrap_or_else(|| chunks(vec![]))).await;
            assert_eq!(got.ok().as_deref(), Some(&text[..]), "cut at {cut}");
        }
    }

    #[tokio::test]
    async fn each_chunk_is_decoded_as_it_arrives() {
        // Two events, the first sync-flushed: its bytes must come out before the second arrives.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"data: one\n\n").unwrap_or_default();
        e.flush().unwrap_or_default();
        let first = std::mem::take(e.get_mut());
        e.write_all(b"data: two\n\n").unwrap_or_default();
        let second = e.finish().unwrap_or_default();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let input: ByteStream = Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
        let _ = tx.send(Ok(Bytes::from(first)));
        let mut s = decoder(b"gzip")
            .map(|d| d(input))
            .unwrap_or_else(|| chunks(vec![]));
        let got = tokio::time::timeout(std::time::Duration::from_secs(2), s.next()).await;
        let got = got.ok().flatten().and_then(Result::ok);
        assert_eq!(got.as_deref(), Some(&b"data: one\n\n"[..]));
        let _ = tx.send(Ok(Bytes::from(second)));
        drop(tx);
        assert_eq!(
            collect(s).await.ok().as_deref(),
            Some(&b"data: two\n\n"[..])
        );
    }

    #[tokio::test]
    async fn deflate_is_zlib_wrapped() {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"deflated").unwrap_or_default();
        let z = e.finish().unwrap_or_default();
        let dec = decoder(b"deflate").map(|d| d(chunks(vec![z])));
        let got = collect(dec.unwrap_or_else(|| chunks(vec![]))).await;
        assert_eq!(got.ok().as_deref(), Some(&b"deflated"[..]));
    }

    #[tokio::test]
    async fn garbage_and_truncation_are_body_errors_and_empty_is_empty() {
        let dec = |parts| decoder(b"gzip").map(|d| d(chunks(parts)));
        let garbage =
            collect(dec(vec![b"<html>not gzip</html>".to_vec()]).unwrap_or_else(|| chunks(vec![])))
                .await;
        assert_eq!(
            garbage.err().map(|e| e.kind),
            Some(TransportErrorKind::Body)
        );
        let z = gzip(b"cut short");
        let cut =
            collect(dec(vec![z[..z.len() - 4].to_vec()]).unwrap_or_else(|| chunks(vec![]))).await;
        assert_eq!(cut.err().map(|e| e.kind), Some(TransportErrorKind::Body));
        let empty = collect(dec(vec![]).unwrap_or_else(|| chunks(vec![b"x".to_vec()]))).await;
        assert_eq!(empty.ok(), Some(vec![]));
        assert!(decoder(b"br").is_none() && decoder(b"identity").is_none());
    }

    #[tokio::test]
    async fn a_bomb_comes_out_in_bounded_pieces() {
        let z = gzip(&vec![0u8; 32 << 20]);
        let mut s = decoder(b"gzip")
            .map(|d| d(chunks(vec![z])))
            .unwrap_or_else(|| chunks(vec![]));
        let (mut total, mut biggest) = (0, 0);
        while let Some(Ok(c)) = s.next().await {
            total += c.len();
            biggest = biggest.max(c.len());
        }
        assert_eq!(total, 32 << 20);
        assert!(biggest <= 2 << 20, "one piece was {biggest} bytes");
    }
}
