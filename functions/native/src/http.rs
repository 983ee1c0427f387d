//! Outbound HTTP through reqwest (rustls, pooled connections). With one runtime per thread
//! (the local server), each thread gets a client of its own: its connections' tasks then run on
//! the thread that uses them, and a request never wakes another core.

use bytes::Bytes;
use futures_util::StreamExt;
use gw_ports::{ByteStream, HttpClient, TransportError, TransportErrorKind};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's clients of per-thread `Reqwest`s, by their id.
    static CLIENTS: RefCell<HashMap<usize, reqwest::Client>> = RefCell::new(HashMap::new());
}

/// An HTTP client: one pool for all threads, or one per thread.
#[derive(Clone)]
pub struct Reqwest {
    shared: reqwest::Client,
    /// (id, connect timeout ms) when each thread builds its own client.
    per_thread: Option<(usize, u64)>,
}

fn build(connect_timeout_ms: u64) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_millis(connect_timeout_ms))
        .build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))
}

impl Reqwest {
    /// A pooled client; `connect_timeout_ms` bounds the TCP + TLS handshake.
    pub fn new(connect_timeout_ms: u64) -> Result<Self, String> {
        Ok(Self {
            shared: build(connect_timeout_ms)?,
            per_thread: None,
        })
    }

    /// A client with a pool per thread (for one runtime per thread).
    pub fn per_thread(connect_timeout_ms: u64) -> Result<Self, String> {
        Ok(Self {
            shared: build(connect_timeout_ms)?,
            per_thread: Some((NEXT_ID.fetch_add(1, Ordering::Relaxed), connect_timeout_ms)),
        })
    }

    fn client(&self) -> reqwest::Client {
        let Some((id, timeout)) = self.per_thread else {
            return self.shared.clone();
        };
        CLIENTS.with(|m| {
            let mut m = m.borrow_mut();
            match m.get(&id) {
                Some(c) => c.clone(),
                None => {
                    // The settings were built once already: this cannot fail differently.
                    let c = build(timeout).unwrap_or_else(|_| self.shared.clone());
                    m.insert(id, c.clone());
                    c
                }
            }
        })
    }
}

impl Reqwest {
    /// Sends the request with `body` and hands back the answer as it streams in.
    async fn exchange(
        &self,
        parts: http::request::Parts,
        body: reqwest::Body,
    ) -> Result<http::Response<ByteStream>, TransportError> {
        let resp = self
            .client()
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        let mut b = http::Response::builder().status(resp.status());
        if let Some(h) = b.headers_mut() {
            *h = resp.headers().clone();
        }
        let stream: ByteStream = Box::pin(resp.bytes_stream().map(|r| r.map_err(transport_error)));
        b.body(stream)
            .map_err(|e| TransportError::new(TransportErrorKind::Other, e.to_string()))
    }
}

impl HttpClient for Reqwest {
    async fn send(
        &self,
        req: http::Request<Bytes>,
    ) -> Result<http::Response<ByteStream>, TransportError> {
        let (parts, body) = req.into_parts();
        self.exchange(parts, body.into()).await
    }

    async fn send_streaming(
        &self,
        req: http::Request<ByteStream>,
    ) -> Result<http::Response<ByteStream>, TransportError> {
        let (parts, body) = req.into_parts();
        self.exchange(parts, reqwest::Body::wrap_stream(body)).await
    }
}

fn transport_error(e: reqwest::Error) -> TransportError {
    let kind = if e.is_connect() {
        TransportErrorKind::Connect
    } else if e.is_timeout() {
        TransportErrorKind::Timeout
    } else if e.is_body() || e.is_decode() {
        TransportErrorKind::Body
    } else {
        TransportErrorKind::Other
    };
    // URLs stay out of messages: some providers take keys in the query string.
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    TransportError::new(kind, msg)
}
