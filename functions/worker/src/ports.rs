//! The engine's ports on Workers: outbound `fetch`, the isolate clock and `console.log`.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use gw_ports::TransportErrorKind as Kind;
use gw_ports::{ByteStream, Clock, HttpClient, LogSink, Timestamp, TransportError};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use worker::js_sys::Uint8Array;
use worker::{AbortController, Date, Delay, Fetch, Headers, Method, Request, RequestInit};

/// Outbound HTTP through the runtime's `fetch` (subrequests).
pub(crate) struct WorkerFetch;

impl HttpClient for WorkerFetch {
    async fn send(
        &self,
        req: http::Request<Bytes>,
    ) -> Result<http::Response<ByteStream>, TransportError> {
        let (parts, body) = req.into_parts();
        let headers = Headers::new();
        for (k, v) in &parts.headers {
            headers
                .append(k.as_str(), &String::from_utf8_lossy(v.as_bytes()))
                .map_err(|e| error(Kind::Other, &e))?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::from(parts.method.as_str().to_owned()))
            .with_headers(headers);
        if !body.is_empty() {
            init.with_body(Some(Uint8Array::from(&body[..]).into()));
        }
        let request = Request::new_with_init(&parts.uri.to_string(), &init)
            .map_err(|e| error(Kind::Other, &e))?;
        // The engine drops this future on its per-attempt timeout, and the body stream when the
        // client goes away: both must cancel the subrequest, not leave it running.
        let abort = AbortOnDrop(Some(AbortController::default()));
        let signal = abort.signal();
        let mut resp = Fetch::Request(request)
            .send_with_signal(&signal)
            .await
            .map_err(|e| {
                let kind = if e.to_string().to_ascii_lowercase().contains("timed out") {
                    Kind::Timeout
                } else {
                    Kind::Connect
                };
                error(kind, &e)
            })?;
        let mut b = http::Response::builder().status(resp.status_code());
        for (k, v) in resp.headers().entries() {
            b = b.header(k, v);
        }
        let stream: ByteStream = match resp.stream() {
            Ok(s) => Box::pin(Body { inner: s, abort }),
            // No body at all (204, HEAD): an empty stream.
            Err(_) => Box::pin(futures_util::stream::empty()),
        };
        b.body(stream).map_err(|e| error(Kind::Other, &e))
    }
}

/// Aborts the subrequest when dropped before it finished.
struct AbortOnDrop(Option<AbortController>);

impl AbortOnDrop {
    fn signal(&self) -> worker::AbortSignal {
        self.0
            .as_ref()
            .map_or_else(worker::AbortSignal::abort, AbortController::signal)
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.abort();
        }
    }
}

/// The upstream body; a finished body disarms the abort.
struct Body {
    inner: worker::ByteStream,
    abort: AbortOnDrop,
}

impl Stream for Body {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(None) => {
                self.abort.0 = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(r)) => {
                Poll::Ready(Some(r.map(Bytes::from).map_err(|e| error(Kind::Body, &e))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A transport error whose message never carries a URL (some providers take keys in the query).
fn error(kind: Kind, e: &dyn std::fmt::Display) -> TransportError {
    let text = e.to_string();
    let words: Vec<&str> = text
        .split(' ')
        .map(|w| if w.contains("://") { "<url>" } else { w })
        .collect();
    TransportError::new(kind, words.join(" "))
}

/// `Date.now()`: on Workers it advances only across I/O, which is all the engine needs.
pub(crate) struct WorkerClock;

impl Clock for WorkerClock {
    fn now(&self) -> Timestamp {
        Timestamp(Date::now().as_millis() * 1000)
    }

    async fn sleep(&self, ms: u64) {
        Delay::from(Duration::from_millis(ms)).await;
    }
}

/// One `console.log` line per log line (Workers Logs / `wrangler tail` collect them).
pub(crate) struct Console;

impl LogSink for Console {
    fn emit(&self, line: &str) {
        worker::console_log!("{line}");
    }
}
