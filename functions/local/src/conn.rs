//! Client connections of the local server: what hyper does not bound by itself. A deadline for
//! the request head (counted from its first byte, so a client trickling bytes cannot extend it),
//! an idle deadline between requests, a connection cap, back-off when `accept` fails, and JSON
//! bodies for the error replies hyper writes on its own (400, 414, 431).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Milliseconds on a monotonic clock (tokio's, so paused-time tests would see it too).
fn now_ms() -> u64 {
    static BASE: OnceLock<tokio::time::Instant> = OnceLock::new();
    BASE.get_or_init(tokio::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

/// Deadlines of one connection, in milliseconds.
#[derive(Clone, Copy)]
pub(crate) struct Deadlines {
    /// From the first byte of a request to the end of its head.
    pub(crate) head_ms: u64,
    /// With no request in flight and no bytes moving.
    pub(crate) idle_ms: u64,
}

/// Where a connection is: waiting, reading a head, or serving (the engine bounds that phase).
#[derive(Default)]
pub(crate) struct ConnState {
    busy: AtomicUsize,
    head: AtomicBool,
    /// When the current phase began (the head's first byte, or the end of the last response).
    since: AtomicU64,
    last_write: AtomicU64,
}

impl ConnState {
    pub(crate) fn new() -> Arc<Self> {
        let s = Self::default();
        s.since.store(now_ms(), Ordering::Relaxed);
        Arc::new(s)
    }

    fn on_read(&self) {
        if self.busy.load(Ordering::Relaxed) == 0 && !self.head.swap(true, Ordering::Relaxed) {
            self.since.store(now_ms(), Ordering::Relaxed);
        }
    }

    fn on_write(&self) {
        self.last_write.store(now_ms(), Ordering::Relaxed);
    }

    /// A request reached the service; the guard ends its phase when its response body is done.
    pub(crate) fn begin(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.head.store(false, Ordering::Relaxed);
        Busy(Arc::clone(self))
    }

    /// When the connection must be closed, if nothing changes before.
    fn deadline(&self, d: Deadlines) -> Option<u64> {
        if self.busy.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let since = self.since.load(Ordering::Relaxed);
        if self.head.load(Ordering::Relaxed) {
            Some(since + d.head_ms)
        } else {
            // A slow reader still taking the last response keeps the connection alive.
            Some(since.max(self.last_write.load(Ordering::Relaxed)) + d.idle_ms)
        }
    }
}

/// Held while a request is served.
pub(crate) struct Busy(Arc<ConnState>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.since.store(now_ms(), Ordering::Relaxed);
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Drives a connection until it ends or misses a deadline (then it is dropped: the socket
/// closes). A request in flight has no deadline here: the engine bounds its body and upstream.
pub(crate) async fn guard<F: Future>(conn: F, state: Arc<ConnState>, d: Deadlines) {
    let mut conn = std::pin::pin!(conn);
    loop {
        // Never sleep past the shortest limit: a phase that starts meanwhile (a head's first
        // byte) may have an earlier deadline than the one computed now.
        let shortest = d.head_ms.min(d.idle_ms);
        let wait = state
            .deadline(d)
            .map_or(shortest, |at| at.saturating_sub(now_ms()).min(shortest));
        tokio::select! {
            _ = &mut conn => return,
            () = tokio::time::sleep(Duration::from_millis(wait.max(1))) => {
                if state.deadline(d).is_some_and(|at| now_ms() >= at) {
                    return;
                }
            }
        }
    }
}

/// A client socket that reports activity and gives hyper's bodiless error replies a JSON body.
pub(crate) struct Io {
    inner: TcpStream,
    state: Arc<ConnState>,
    /// A reply being written in place of hyper's: bytes, how many are out, the length hyper gave.
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl Io {
    pub(crate) fn new(inner: TcpStream, state: Arc<ConnState>) -> Self {
        Self {
            inner,
            state,
            replacing: None,
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.on_read();
        }
        r
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none()
            && let Some(r) = json_reply(buf)
        {
            this.replacing = Some((r, 0, buf.len()));
        }
        if let Some((r, done, given)) = &mut this.replacing {
            while *done < r.len() {
                let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &r[*done..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *done += n;
            }
            let given = *given;
            this.replacing = None;
            this.state.on_write();
            return Poll::Ready(Ok(given));
        }
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.state.on_write();
        }
        r
    }

    // Vectored, as the socket is: hyper then queues body chunks instead of copying them into
    // one buffer. Its error replies are a head alone, so they arrive as one slice.
    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (nonempty.next(), nonempty.next())
            && (self.replacing.is_some() || json_reply(only).is_some())
        {
            return self.poll_write(cx, only);
        }
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.state.on_write();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A complete HTTP response with a JSON error body in a neutral shape (no API format is known
/// before a request was parsed).
fn error_reply(status: u16, reason: &str, code: &str, message: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "error": {"type": "invalid_request_error", "code": code, "message": message}
    })
    .to_string();
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// hyper's automatic reply to a request it could not parse (a head alone, no content type,
/// `content-length: 0`; every response of the gateway itself has a content type), as JSON.
fn json_reply(buf: &[u8]) -> Option<Vec<u8>> {
    let status: u16 = std::str::from_utf8(buf.strip_prefix(b"HTTP/1.1 ")?.get(..3)?)
        .ok()?
        .parse()
        .ok()?;
    if !(400..600).contains(&status) || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let head = String::from_utf8_lossy(buf).to_ascii_lowercase();
    if head.matches("\r\n\r\n").count() != 1
        || head.contains("\r\ncontent-type:")
        || !head.contains("\r\ncontent-length: 0\r\n")
    {
        return None;
    }
    let (reason, code, message) = match status {
        414 => (
            "URI Too Long",
            "uri_too_long",
            "the request URI is too long",
        ),
        431 => (
            "Request Header Fields Too Large",
            "headers_too_large",
            "the request headers are too large or too many",
        ),
        400 => (
            "Bad Request",
            "malformed_request",
            "the request is not valid HTTP/1.1",
        ),
        _ => ("Error", "http_error", "the request could not be handled"),
    };
    Some(error_reply(status, reason, code, message))
}

/// Refuses a connection over the cap: a 503 with `Retry-After`, then closes. The request is
/// drained first (briefly), so the close does not reset the connection before the reply is read.
pub(crate) async fn refuse(mut stream: TcpStream, max: usize) {
    let reply = error_reply(
        503,
        "Service Unavailable",
        "too_many_connections",
        &format!("the gateway has {max} open connections (server.max_connections); retry shortly"),
    );
    let reply = String::from_utf8_lossy(&reply).replacen(
        "connection: close\r\n",
        "connection: close\r\nretry-after: 1\r\n",
        1,
    );
    let work = async {
        stream.write_all(reply.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), work).await;
}

/// Connections the server may hold, and the back-off when `accept` fails.
pub(crate) struct Acceptor {
    permits: Arc<tokio::sync::Semaphore>,
    max: usize,
    backoff_ms: u64,
}

impl Acceptor {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(max)),
            max,
            backoff_ms: 0,
        }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// A slot for a new connection, if one is free.
    pub(crate) fn slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        Arc::clone(&self.permits).try_acquire_owned().ok()
    }

    pub(crate) fn accepted(&mut self) {
        self.backoff_ms = 0;
    }

    /// `accept` failed. Out of file descriptors (or memory) it fails again at once until a
    /// connection closes: wait, doubling up to a second, instead of spinning a core.
    pub(crate) async fn failed(&mut self, e: &io::Error) {
        if matches!(
            e.kind(),
            io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
        ) {
            return;
        }
        if self.backoff_ms == 0 {
            eprintln!("gateway: accept failed ({e}); backing off until connections close");
        }
        self.backoff_ms = (self.backoff_ms * 2).clamp(5, 1000);
        tokio::time::sleep(Duration::from_millis(self.backoff_ms)).await;
    }
}

/// Raises the soft open-file limit to the hard one (as Go's runtime does): each connection is a
/// descriptor, and the usual soft default of 1024 is far below `server.max_connections`.
pub(crate) fn raise_fd_limit(max_connections: usize) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let l = getrlimit(Resource::Nofile);
    if l.current != l.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: l.maximum,
                maximum: l.maximum,
            },
        );
    }
    let now = getrlimit(Resource::Nofile).current;
    if let Some(n) = now
        && n < max_connections as u64 + 64
    {
        eprintln!(
            "gateway: the open-file limit ({n}) is below server.max_connections ({max_connections}) + 64; new connections wait when it is reached"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::json_reply;

    #[test]
    fn only_hypers_bodiless_error_replies_are_rewritten() {
        let hyper = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 10:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(json_reply(hyper).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "malformed_request");
        assert!(
            json_reply(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n"
            )
            .is_some()
        );
        // The gateway's own replies always carry a content type; bodies are never touched.
        assert!(json_reply(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(json_reply(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(json_reply(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}").is_none());
        assert!(json_reply(b"data: {}\n\n").is_none());
    }
}
