//! Outbound HTTP on hyper's pooled client: rustls, HTTP/2 by ALPN, proxies from the environment,
//! gzip/deflate answers decoded, no redirects followed (a 3xx is the upstream's answer). The
//! request goes out as the engine built it, with no URL string round trip. With one runtime per
//! thread (the local server), each thread gets a pool of its own: its connections' tasks then run
//! on the thread that uses them, and a request never wakes another core.

mod connect;
mod decode;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use gw_ports::{ByteStream, HttpClient, TransportError, TransportErrorKind};
use http::header::{
    ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, PROXY_AUTHORIZATION,
};
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

type Streamed = StreamBody<futures_util::stream::MapOk<ByteStream, fn(Bytes) -> Frame<Bytes>>>;
type ReqBody = Either<Full<Bytes>, Streamed>;
type Pool = Client<connect::Connector, ReqBody>;

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's pools of per-thread clients, by their id.
    static POOLS: RefCell<HashMap<usize, Pool>> = RefCell::new(HashMap::new());
}

/// An HTTP client: one pool for all threads, or one per thread. Clones share it.
#[derive(Clone)]
pub struct NativeHttp(std::sync::Arc<Inner>);

struct Inner {
    connector: connect::Connector,
    /// The pool every thread shares, or the id of this client's per-thread pools.
    pool: Result<Pool, usize>,
}

fn pool(connector: &connect::Connector) -> Pool {
    // The timer lets the pool close idle connections in the background, not only on checkout.
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector.clone())
}

impl NativeHttp {
    /// A pooled client; `connect_timeout_ms` bounds the TCP, proxy and TLS handshakes. Fails when
    /// the environment names a proxy it cannot use.
    pub fn new(connect_timeout_ms: u64) -> Result<Self, String> {
        Ok(Self::on(connect::Connector::new(connect_timeout_ms)?))
    }

    fn on(connector: connect::Connector) -> Self {
        Self(std::sync::Arc::new(Inner {
            pool: Ok(pool(&connector)),
            connector,
        }))
    }

    /// A client with a pool per thread (for one runtime per thread).
    pub fn per_thread(connect_timeout_ms: u64) -> Result<Self, String> {
        Ok(Self(std::sync::Arc::new(Inner {
            connector: connect::Connector::new(connect_timeout_ms)?,
            pool: Err(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
        })))
    }

    fn with_pool<T>(&self, f: impl FnOnce(&Pool) -> T) -> T {
        match &self.0.pool {
            Ok(p) => f(p),
            Err(id) => POOLS.with(|m| {
                f(m.borrow_mut()
                    .entry(*id)
                    .or_insert_with(|| pool(&self.0.connector)))
            }),
        }
    }

    /// Sends the request and hands back the answer as it streams in, decoded.
    async fn exchange(
        &self,
        mut req: http::Request<ReqBody>,
    ) -> Result<http::Response<ByteStream>, TransportError> {
        // What reqwest sent by default; some servers answer nothing useful without `Accept`.
        let h = req.headers_mut();
        if !h.contains_key(ACCEPT) {
            h.insert(ACCEPT, http::HeaderValue::from_static("*/*"));
        }
        if !h.contains_key(ACCEPT_ENCODING) {
            h.insert(
                ACCEPT_ENCODING,
                http::HeaderValue::from_static("gzip, deflate"),
            );
        }
        if let Some(auth) = self
            .0
            .connector
            .proxies()
            .and_then(|p| p.forwarding(req.uri()))
            .and_then(|i| i.basic_auth())
        {
            req.headers_mut()
                .entry(PROXY_AUTHORIZATION)
                .or_insert_with(|| auth.clone());
        }
        let resp = self
            .with_pool(|p| p.request(req))
            .await
            .map_err(send_error)?;
        let (mut parts, body) = resp.into_parts();
        let mut stream: ByteStream = Box::pin(
            body.into_data_stream()
                .map(|r| r.map_err(|e| TransportError::new(TransportErrorKind::Body, chain(&e)))),
        );
        if let Some(decode) = parts
            .headers
            .get(CONTENT_ENCODING)
            .and_then(|v| decode::decoder(v.as_bytes()))
        {
            stream = decode(stream);
            parts.headers.remove(CONTENT_ENCODING);
            parts.headers.remove(CONTENT_LENGTH);
        }
        Ok(http::Response::from_parts(parts, stream))
    }
}

impl HttpClient for NativeHttp {
    async fn send(
        &self,
        req: http::Request<Bytes>,
    ) -> Result<http::Response<ByteStream>, TransportError> {
        self.exchange(req.map(|b| Either::Left(Full::new(b)))).await
    }

    async fn send_streaming(
        &self,
        req: http::Request<ByteStream>,
    ) -> Result<http::Response<ByteStream>, TransportError> {
        let frame: fn(Bytes) -> Frame<Bytes> = Frame::data;
        self.exchange(req.map(|b| Either::Right(StreamBody::new(b.map_ok(frame)))))
            .await
    }
}

/// Sorts a failed exchange for failover and logs. Messages never hold the URL: some providers
/// take keys in the query string, and hyper's errors do not print it.
fn send_error(e: hyper_util::client::legacy::Error) -> TransportError {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    let mut timed_out = false;
    while let Some(s) = src {
        timed_out |= s.is::<connect::ConnectTimeout>();
        src = s.source();
    }
    let kind = if timed_out {
        TransportErrorKind::Timeout
    } else if e.is_connect() {
        TransportErrorKind::Connect
    } else {
        TransportErrorKind::Other
    };
    TransportError::new(kind, chain(&e))
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests;
