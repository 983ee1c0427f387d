//! Opening upstream connections: TCP (no Nagle) and rustls with HTTP/2 by ALPN, through the
//! proxies the environment names (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, as curl
//! reads them), the whole handshake bounded by the connect timeout.

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Stream = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;

/// The connect timeout ran out (told apart from other connect failures).
#[derive(Debug)]
pub(crate) struct ConnectTimeout(pub(crate) u64);

impl std::fmt::Display for ConnectTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no connection within {} ms", self.0)
    }
}

impl std::error::Error for ConnectTimeout {}

/// The proxies the environment asks for.
pub(crate) struct Proxies {
    matcher: Matcher,
    /// Where `https://` destinations go: a CONNECT tunnel through this proxy.
    tunnel: Option<HttpsConnector<Tunnel<HttpConnector>>>,
    /// Where `http://` destinations go: requests in absolute form to this proxy.
    forward: Option<Intercept>,
}

impl Proxies {
    /// `None` when `matcher` names no proxy. Only `http://` proxies are
    /// supported: anything else is refused rather than silently bypassed.
    pub(crate) fn new(matcher: Matcher, http: &HttpConnector) -> Result<Option<Self>, String> {
        // NO_PROXY is checked per destination; these probes only read which proxy applies.
        let probe = |s: &'static str| matcher.intercept(&http::Uri::from_static(s));
        let (https, plain) = (
            probe("https://proxy-probe.invalid"),
            probe("http://proxy-probe.invalid"),
        );
        for i in https.iter().chain(plain.iter()) {
            if i.uri().scheme_str() != Some("http") {
                return Err(format!(
                    "proxy {}://{}: only http:// proxies are supported (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY)",
                    i.uri().scheme_str().unwrap_or(""),
                    i.uri().host().unwrap_or("")
                ));
            }
        }
        if https.is_none() && plain.is_none() {
            return Ok(None);
        }
        let tunnel = https.map(|i| {
            let mut t = Tunnel::new(i.uri().clone(), http.clone());
            if let Some(auth) = i.basic_auth() {
                t = t.with_auth(auth.clone());
            }
            tls()
                .https_only()
                .enable_http1()
                .enable_http2()
                .wrap_connector(t)
        });
        Ok(Some(Self {
            matcher,
            tunnel,
            forward: plain,
        }))
    }

    /// The proxy that forwards a plain `http://` request to `uri`, if one does. Never one for
    /// `https://`: its credentials are for the proxy, and inside a tunnel they would reach the
    /// provider.
    pub(crate) fn forwarding(&self, uri: &http::Uri) -> Option<&Intercept> {
        if uri.scheme_str() != Some("http") {
            return None;
        }
        let f = self.forward.as_ref()?;
        self.matcher.intercept(uri).map(|_| f)
    }
}

/// The variables that name proxies (`NO_PROXY` aside), as curl reads them.
const PROXY_VARS: [&str; 6] = [
    "ALL_PROXY",
    "all_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
];

/// Why a proxy variable cannot be used: a scheme other than `http://` (the matcher would skip
/// some, such as `ftp://`, and the traffic would go around the proxy unnoticed).
pub(crate) fn unsupported_proxy<'a>(
    vars: impl Iterator<Item = (&'a str, String)>,
) -> Option<String> {
    vars.filter_map(|(k, v)| {
        let (scheme, _) = v.trim().split_once("://")?;
        (!scheme.eq_ignore_ascii_case("http")).then(|| {
            format!("{k}: a {scheme}:// proxy; only http:// proxies are supported (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY)")
        })
    })
    .next()
}

fn tls() -> hyper_rustls::HttpsConnectorBuilder<hyper_rustls::builderstates::WantsSchemes> {
    hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots()
}

/// The connector the pooled client calls for each new connection.
#[derive(Clone)]
pub(crate) struct Connector {
    direct: HttpsConnector<HttpConnector>,
    proxies: Option<Arc<Proxies>>,
    timeout_ms: u64,
}

impl Connector {
    /// Proxies as the environment names them.
    pub(crate) fn new(timeout_ms: u64) -> Result<Self, String> {
        let vars = PROXY_VARS
            .iter()
            .filter_map(|&k| std::env::var(k).ok().map(|v| (k, v)));
        if let Some(why) = unsupported_proxy(vars) {
            return Err(why);
        }
        Self::with_proxies(timeout_ms, Matcher::from_env())
    }

    pub(crate) fn with_proxies(timeout_ms: u64, proxies: Matcher) -> Result<Self, String> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let proxies = Proxies::new(proxies, &http)?.map(Arc::new);
        let direct = tls()
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        Ok(Self {
            direct,
            proxies,
            timeout_ms,
        })
    }

    pub(crate) fn proxies(&self) -> Option<&Proxies> {
        self.proxies.as_deref()
    }
}

impl Service<http::Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Both inner connectors are always ready (hyper-rustls and HttpConnector say so).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: http::Uri) -> Self::Future {
        let proxy = self
            .proxies
            .as_ref()
            .filter(|p| p.matcher.intercept(&dst).is_some());
        let https = dst.scheme_str() == Some("https");
        let (connecting, proxied) = match proxy {
            Some(p) if https => match &p.tunnel {
                Some(t) => (t.clone().call(dst), false),
                None => (self.direct.call(dst), false),
            },
            Some(p) => match &p.forward {
                Some(f) => (self.direct.call(f.uri().clone()), true),
                None => (self.direct.call(dst), false),
            },
            None => (self.direct.call(dst), false),
        };
        let ms = self.timeout_ms;
        Box::pin(async move {
            match tokio::time::timeout(Duration::from_millis(ms), connecting).await {
                Ok(Ok(io)) => Ok(Conn { io, proxied }),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(Box::new(ConnectTimeout(ms)) as BoxError),
            }
        })
    }
}

/// A connection, marked when it goes to a forwarding proxy (requests then use absolute URIs).
pub(crate) struct Conn {
    io: Stream,
    proxied: bool,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
