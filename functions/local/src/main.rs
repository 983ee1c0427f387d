//! `gateway`: the local server. Hyper on 127.0.0.1:8317 around the shared engine; this file
//! only converts types and implements the ports (reqwest, tokio time, stderr).

mod store;

use bytes::Bytes;
use futures_util::StreamExt;
use gw_engine::Gateway;
use gw_ports::{
    ByteStream, Clock, HttpClient, LogSink, Timestamp, TransportError, TransportErrorKind,
};
use gw_route::{Config, KeySpec};
use gw_state::{Command, MemoryStore, Reply, StateStore, StoreError};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const EMBEDDED_CONFIG: &str = include_str!("../../../config/gateway.yaml");
const USAGE: &str = "usage: gateway [--listen ADDR] [--config FILE]

  --listen ADDR   address to listen on (default 127.0.0.1:8317)
  --config FILE   gateway YAML (default: the built-in config/gateway.yaml)
  --state PATH    state file (breakers; default $GATEWAY_STATE, else
                  $XDG_STATE_HOME/gateway/state.redb or ~/.local/state/gateway/state.redb);
                  `memory` keeps state in memory only

Proxy key: GATEWAY_PROXY_KEY, or named keys in the config; with neither, a key is generated
and printed once. Provider keys come from the variables named in the config (OPENAI_API_KEY, ...);
base URLs can be overridden with <PROVIDER>_BASE_URL.";

/// Outbound HTTP through reqwest (rustls, pooled connections).
struct Reqwest(reqwest::Client);

impl HttpClient for Reqwest {
    async fn send(
        &self,
        req: http::Request<Bytes>,
    ) -> Result<http::Response<ByteStream>, TransportError> {
        let (parts, body) = req.into_parts();
        let resp = self
            .0
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

struct TokioClock;

impl Clock for TokioClock {
    #[expect(
        clippy::disallowed_methods,
        reason = "the adapter is where the clock is read"
    )]
    fn now(&self) -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_micros() as u64)
    }
    async fn sleep(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

struct Stderr;

impl LogSink for Stderr {
    fn emit(&self, line: &str) {
        // One write per line: lines from concurrent requests never interleave.
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        let _ = std::io::stderr().lock().write_all(&buf);
    }
}

struct Args {
    listen: SocketAddr,
    config: Option<String>,
    state: Option<String>,
}

/// The local state store: the embedded file by default, memory on request.
enum LocalStore {
    File(store::RedbStore),
    Memory(MemoryStore),
}

impl StateStore for LocalStore {
    async fn apply(&self, key: &str, cmd: &Command, now_ms: u64) -> Result<Reply, StoreError> {
        match self {
            Self::File(s) => s.apply(key, cmd, now_ms).await,
            Self::Memory(s) => s.apply_now(key, cmd, now_ms),
        }
    }
}

fn open_store(arg: Option<String>) -> Result<(LocalStore, String), String> {
    let path = arg
        .or_else(|| std::env::var("GATEWAY_STATE").ok())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| {
            let base = std::env::var("XDG_STATE_HOME")
                .ok()
                .filter(|p| !p.is_empty())
                .or_else(|| {
                    std::env::var("HOME")
                        .ok()
                        .map(|h| format!("{h}/.local/state"))
                })
                .unwrap_or_else(|| ".".into());
            format!("{base}/gateway/state.redb")
        });
    if path == "memory" {
        return Ok((LocalStore::Memory(MemoryStore::new()), "memory".into()));
    }
    let s = store::RedbStore::open(std::path::Path::new(&path)).map_err(|e| {
        format!("cannot open the state file {e} (another gateway using it? pass --state)")
    })?;
    Ok((LocalStore::File(s), path))
}

fn parse_args() -> Result<Args, String> {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 8317).into();
    let mut config = None;
    let mut state = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (a.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--listen" => {
                listen = value("--listen")?
                    .parse()
                    .map_err(|e| format!("--listen: {e}"))?
            }
            "--config" => config = Some(value("--config")?),
            "--state" => state = Some(value("--state")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "-V" | "--version" => {
                println!("gateway {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`\n\n{USAGE}")),
        }
    }
    Ok(Args {
        listen,
        config,
        state,
    })
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: refuse to invent a guessable key.
        eprintln!(
            "gateway: no OS randomness available to generate a proxy key; set GATEWAY_PROXY_KEY"
        );
        std::process::exit(2);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn load_config(args: &Args) -> Result<Config, String> {
    let (text, name) = match &args.config {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| format!("{path}: cannot read: {e}"))?,
            path.clone(),
        ),
        None => (
            EMBEDDED_CONFIG.to_owned(),
            "config/gateway.yaml (built in)".to_owned(),
        ),
    };
    let cfg = Config::load(&text, &name, &|k| std::env::var(k).ok()).map_err(|e| e.to_string())?;
    // Pointing a provider at the gateway itself would loop forever (an easy mistake with
    // ANTHROPIC_BASE_URL, which Claude Code also reads).
    for p in &cfg.providers {
        let host = p
            .base_url
            .split("://")
            .nth(1)
            .unwrap_or_default()
            .split('/')
            .next()
            .unwrap_or_default();
        let me = args.listen.to_string();
        let local = format!("localhost:{}", args.listen.port());
        if !host.is_empty() && (host == me || host == local) {
            return Err(format!(
                "{name}: providers.{}.base_url: `{}` is this gateway's own address ({}); unset {} or point it at the provider",
                p.id,
                p.base_url,
                me,
                p.base_url_var()
            ));
        }
    }
    Ok(cfg)
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gateway: {e}");
            std::process::exit(2);
        }
    };
    let mut cfg = match load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gateway: config error: {e}");
            std::process::exit(2);
        }
    };
    if cfg.keys.is_empty() {
        let key = format!("gw-{}", random_hex(24));
        eprintln!(
            "gateway: no proxy key configured (GATEWAY_PROXY_KEY or `keys:`); generated one for this run:\n\n    {key}\n"
        );
        cfg.keys.push(KeySpec {
            name: "generated".into(),
            key,
        });
    }
    let configured: Vec<&str> = cfg
        .providers
        .iter()
        .filter(|p| p.missing().is_none())
        .map(|p| p.id.as_str())
        .collect();
    eprintln!(
        "gateway: providers configured: {}",
        if configured.is_empty() {
            "none (set e.g. OPENAI_API_KEY or ANTHROPIC_API_KEY)".to_owned()
        } else {
            configured.join(", ")
        }
    );
    let client = match reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_millis(
            cfg.timeouts.per_attempt_ms.min(30_000),
        ))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gateway: cannot build HTTP client: {e}");
            std::process::exit(1);
        }
    };
    let max_body = cfg.server.max_body_bytes;
    let (store, where_) = match open_store(args.state.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gateway: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("gateway: state in {where_}");
    let gw = Gateway::new(cfg, Reqwest(client), TokioClock, Stderr, store);
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("gateway: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    eprintln!("gateway: listening on http://{}", args.listen);
    let seed = u64::from_str_radix(&random_hex(8), 16).unwrap_or(0);
    let counter = std::sync::Arc::new(AtomicU64::new(seed));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            conn = listener.accept() => {
                let Ok((stream, _)) = conn else { continue };
                let _ = stream.set_nodelay(true);
                let gw = gw.clone();
                let counter = counter.clone();
                let svc = service_fn(move |req: http::Request<Incoming>| {
                    let gw = gw.clone();
                    let id = format!("req_{:016x}", counter.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed));
                    async move { Ok::<_, Infallible>(serve(&gw, req, id, max_body).await) }
                });
                let conn = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), svc);
                let fut = graceful.watch(conn);
                tokio::spawn(async move { let _ = fut.await; });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    eprintln!("gateway: shutting down; letting in-flight requests finish (up to 30 s)");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(30)) => eprintln!("gateway: in-flight requests still running after 30 s; exiting"),
    }
}

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

async fn serve(
    gw: &Gateway<Reqwest, TokioClock, Stderr, LocalStore>,
    req: http::Request<Incoming>,
    id: String,
    max_body: usize,
) -> http::Response<Body> {
    let (parts, mut body) = req.into_parts();
    // Read at most one byte past the limit: the engine answers 413 in the client's format.
    let mut buf = bytes::BytesMut::new();
    while buf.len() <= max_body {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    buf.extend_from_slice(&d);
                }
            }
            Some(Err(_)) | None => break,
        }
    }
    let handled = gw
        .handle(http::Request::from_parts(parts, buf.freeze()), id)
        .await;
    // State writes run beside the response, never in front of it.
    tokio::spawn(handled.after);
    let (parts, stream) = handled.response.into_parts();
    let body = StreamBody::new(stream.map(|b| Ok::<_, Infallible>(Frame::data(b))));
    http::Response::from_parts(parts, BodyExt::boxed_unsync(body))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
