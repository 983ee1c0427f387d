//! Ports: the only way the pure core reaches the network and the clock.
//!
//! One trait definition serves tokio (futures must be `Send`) and wasm (they cannot be), through
//! the `MaybeSend` / `MaybeSync` markers.

use bytes::Bytes;
use std::future::Future;

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    /// `Send` on native targets, nothing on wasm.
    pub trait MaybeSend: Send {}
    impl<T: Send + ?Sized> MaybeSend for T {}
    /// `Sync` on native targets, nothing on wasm.
    pub trait MaybeSync: Sync {}
    impl<T: Sync + ?Sized> MaybeSync for T {}
    /// A boxed stream of body chunks.
    pub type ByteStream = std::pin::Pin<
        Box<dyn futures_core::Stream<Item = Result<bytes::Bytes, super::TransportError>> + Send>,
    >;
    /// A boxed future.
    pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
    /// A boxed stream of response body chunks produced by the engine.
    pub type BodyStream = std::pin::Pin<Box<dyn futures_core::Stream<Item = bytes::Bytes> + Send>>;
}

#[cfg(target_arch = "wasm32")]
mod imp {
    /// `Send` on native targets, nothing on wasm.
    pub trait MaybeSend {}
    impl<T: ?Sized> MaybeSend for T {}
    /// `Sync` on native targets, nothing on wasm.
    pub trait MaybeSync {}
    impl<T: ?Sized> MaybeSync for T {}
    /// A boxed stream of body chunks.
    pub type ByteStream = std::pin::Pin<
        Box<dyn futures_core::Stream<Item = Result<bytes::Bytes, super::TransportError>>>,
    >;
    /// A boxed future.
    pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'a>>;
    /// A boxed stream of response body chunks produced by the engine.
    pub type BodyStream = std::pin::Pin<Box<dyn futures_core::Stream<Item = bytes::Bytes>>>;
}

pub use imp::{BodyStream, BoxFuture, ByteStream, MaybeSend, MaybeSync};

/// Why an upstream exchange failed below HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportErrorKind {
    /// Could not connect (refused, DNS, TLS).
    Connect,
    /// Timed out.
    Timeout,
    /// The connection broke mid-body.
    Body,
    /// Anything else.
    Other,
}

/// A transport failure. The message must not contain secrets (adapters strip URLs' credentials).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    /// Category, for failover and logs.
    pub kind: TransportErrorKind,
    /// What happened.
    pub message: String,
}

impl TransportError {
    /// Builds an error.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// Outbound HTTP.
pub trait HttpClient: MaybeSend + MaybeSync + 'static {
    /// Sends a request; resolves once the response head arrived. The body streams.
    fn send(
        &self,
        req: http::Request<Bytes>,
    ) -> impl Future<Output = Result<http::Response<ByteStream>, TransportError>> + MaybeSend;

    /// Sends a request whose body is still arriving (pass-through). Runtimes that can stream a
    /// request body override this; the default reads it whole, then sends.
    fn send_streaming(
        &self,
        req: http::Request<ByteStream>,
    ) -> impl Future<Output = Result<http::Response<ByteStream>, TransportError>> + MaybeSend {
        async move {
            use futures_util::StreamExt;
            let (parts, mut body) = req.into_parts();
            let mut buf = Vec::new();
            while let Some(chunk) = body.next().await {
                buf.extend_from_slice(&chunk?);
            }
            self.send(http::Request::from_parts(parts, Bytes::from(buf)))
                .await
        }
    }
}

/// Microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Milliseconds elapsed since `earlier` (0 if the clock went backwards).
    pub fn ms_since(self, earlier: Self) -> f64 {
        self.0.saturating_sub(earlier.0) as f64 / 1000.0
    }
}

/// Time, as a port: the core never reads a clock itself.
pub trait Clock: MaybeSend + MaybeSync + 'static {
    /// Now. On Workers this only advances across I/O, which is all the core needs.
    fn now(&self) -> Timestamp;
    /// Resolves after `ms` milliseconds.
    fn sleep(&self, ms: u64) -> impl Future<Output = ()> + MaybeSend;
}

/// Where log lines go (stderr locally, console on Workers, CloudWatch on Lambda).
pub trait LogSink: MaybeSend + MaybeSync + 'static {
    /// Emits one complete line (already JSON).
    fn emit(&self, line: &str);
}
