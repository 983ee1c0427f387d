//! Fakes for the ports, shared by the tests of every crate that drives the engine: scripted
//! upstreams keyed by host, a clock whose timers fire at once or never, and a log sink that
//! keeps its lines.
#![allow(
    clippy::unwrap_used,
    reason = "test support: a poisoned lock is a failed test"
)]

use bytes::Bytes;
use futures_util::StreamExt;
use gw_ports::{
    ByteStream, Clock, HttpClient, LogSink, Timestamp, TransportError, TransportErrorKind,
};
use http::{HeaderMap, Request, Response, StatusCode};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What a fake upstream host answers.
#[derive(Clone)]
pub enum Script {
    /// This status and body.
    Status(u16, &'static str),
    /// A 200 stream of these chunks.
    Sse(Vec<&'static str>),
    /// A 200 stream of these binary chunks (AWS event-stream).
    Binary(Vec<Vec<u8>>),
    /// Sends these chunks, then the connection breaks.
    SseThenBreak(Vec<&'static str>),
    /// Sends these chunks, then stays open without sending more.
    SseThenHang(Vec<&'static str>),
    /// A 200 stream of these chunks, each after the reader has let the executor run twice (as a
    /// client's connection task hands over chunks it already read).
    SseHandedOver(Vec<&'static str>),
    /// The connection is refused.
    Refused,
    /// No answer, ever.
    Hang,
}

/// An HTTP client whose upstreams follow scripts, recording what it was sent.
#[derive(Default)]
pub struct FakeHttp {
    /// What each upstream host answers.
    pub by_host: HashMap<&'static str, Script>,
    /// Every request sent: URL, headers, JSON body.
    pub seen: Mutex<Vec<(String, HeaderMap, Value)>>,
}

impl HttpClient for FakeHttp {
    fn send(
        &self,
        req: Request<Bytes>,
    ) -> impl std::future::Future<Output = Result<Response<ByteStream>, TransportError>> + Send
    {
        let host = req.uri().host().unwrap_or_default().to_owned();
        let body: Value = serde_json::from_slice(req.body()).unwrap_or(Value::Null);
        self.seen
            .lock()
            .unwrap()
            .push((req.uri().to_string(), req.headers().clone(), body));
        let script = self
            .by_host
            .iter()
            .find(|(h, _)| **h == host)
            .map(|(_, s)| s.clone());
        async move {
            let chunks = |v: Vec<&'static str>, brk: bool| -> ByteStream {
                let mut items: Vec<Result<Bytes, TransportError>> = v
                    .into_iter()
                    .map(|c| Ok(Bytes::from_static(c.as_bytes())))
                    .collect();
                if brk {
                    items.push(Err(TransportError::new(
                        TransportErrorKind::Body,
                        "connection reset",
                    )));
                }
                Box::pin(futures_util::stream::iter(items))
            };
            let resp = |status: u16, s: ByteStream| {
                let mut r = Response::new(s);
                *r.status_mut() = StatusCode::from_u16(status).unwrap();
                Ok(r)
            };
            match script.unwrap_or(Script::Refused) {
                Script::Status(s, b) => resp(s, chunks(vec![b], false)),
                Script::Sse(v) => resp(200, chunks(v, false)),
                Script::Binary(v) => resp(
                    200,
                    Box::pin(futures_util::stream::iter(
                        v.into_iter()
                            .map(|c| Ok(Bytes::from(c)))
                            .collect::<Vec<_>>(),
                    )),
                ),
                Script::SseThenBreak(v) => resp(200, chunks(v, true)),
                Script::SseHandedOver(v) => {
                    let mut items = v.into_iter();
                    let mut turns = 0;
                    resp(
                        200,
                        Box::pin(futures_util::stream::poll_fn(move |cx| {
                            if turns < 2 {
                                turns += 1;
                                cx.waker().wake_by_ref();
                                return std::task::Poll::Pending;
                            }
                            turns = 0;
                            std::task::Poll::Ready(
                                items.next().map(|c| Ok(Bytes::from_static(c.as_bytes()))),
                            )
                        })),
                    )
                }
                Script::SseThenHang(v) => resp(
                    200,
                    Box::pin(chunks(v, false).chain(futures_util::stream::pending())),
                ),
                Script::Refused => Err(TransportError::new(
                    TransportErrorKind::Connect,
                    "connection refused",
                )),
                Script::Hang => futures_util::future::pending().await,
            }
        }
    }
}

/// A fixed clock; timers fire at once when `fire` is set, otherwise never.
pub struct TestClock {
    /// Timers fire at once (else never).
    pub fire: bool,
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp(1_700_000_000_000_000)
    }
    fn sleep(&self, _ms: u64) -> impl std::future::Future<Output = ()> + Send {
        let fire = self.fire;
        async move {
            if !fire {
                futures_util::future::pending::<()>().await;
            }
        }
    }
}

/// A log sink that keeps every line.
#[derive(Default, Clone)]
pub struct Lines(pub Arc<Mutex<Vec<String>>>);

impl LogSink for Lines {
    fn emit(&self, line: &str) {
        self.0.lock().unwrap().push(line.to_owned());
    }
}
