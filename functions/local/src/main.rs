//! `gateway`: the local server. Hyper on 127.0.0.1:8317 around the shared engine; this file
//! only converts types and wires the ports (gw-native: hyper HTTP, system clock, stderr).

mod auth;
mod check;
mod conn;
mod store;
mod workers;

use bytes::Bytes;
use futures_util::StreamExt;
use gw_engine::{Body as EngineBody, Gateway};
use gw_native::{BufferedStderr, EMBEDDED_CONFIG, NativeHttp, SharedStore, SystemClock};
use gw_ports::{BoxFuture, ByteStream, TransportError, TransportErrorKind};
use gw_route::{Config, KeySpec};
use gw_state::{Command, MemoryStore, Reply, StateStore, StoreError};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

const USAGE: &str = "usage: gateway [--listen ADDR] [--config FILE]
       gateway config check [--config FILE]   validate, and show what each provider misses
       gateway auth copilot                   sign in to GitHub (device flow); prints a GITHUB_TOKEN

  --listen ADDR   address to listen on (default 127.0.0.1:8317)
  --config FILE   gateway YAML (default: the built-in config/gateway.yaml)
  --state PATH    state file (breakers; default $GATEWAY_STATE, else
                  $XDG_STATE_HOME/gateway/state.redb or ~/.local/state/gateway/state.redb);
                  `memory` keeps state in memory only; `dynamodb:TABLE` shares it with
                  other instances (AWS_REGION, AWS_ACCESS_KEY_ID, ..., AWS_ENDPOINT_URL_DYNAMODB)

Proxy key: GATEWAY_PROXY_KEY, or named keys in the config; with neither, a key is generated
and printed once. GATEWAY_THREADS: worker threads (1 to 1024; default one per core). Outbound
calls go through HTTPS_PROXY / HTTP_PROXY / ALL_PROXY (http:// proxies) except NO_PROXY. Provider keys come from the variables named in the config (OPENAI_API_KEY, ...);
base URLs can be overridden with <PROVIDER>_BASE_URL.";

/// The gateway as the local server runs it.
pub(crate) type Gw = Gateway<NativeHttp, SystemClock, BufferedStderr, LocalStore>;
/// How often the spend ledger is booked in the store (a crash loses at most this much of it).
const LEDGER_FLUSH_MS: u64 = 1_000;

struct Args {
    /// `gateway config check`: report and exit.
    check: bool,
    listen: SocketAddr,
    config: Option<String>,
    state: Option<String>,
}

/// The local state store: the embedded file by default, memory or DynamoDB on request.
enum LocalStore {
    File(store::RedbStore),
    Shared(SharedStore),
}

impl StateStore for LocalStore {
    async fn apply(&self, key: &str, cmd: &Command, now_ms: u64) -> Result<Reply, StoreError> {
        match self {
            Self::File(s) => s.apply(key, cmd, now_ms).await,
            Self::Shared(s) => s.apply(key, cmd, now_ms).await,
        }
    }
}

/// A DynamoDB table shared with other instances; created (with TTL) when missing, which needs
/// the permission to do so, else it must exist.
async fn open_dynamo(table: &str, http: &NativeHttp) -> Result<LocalStore, String> {
    let (store, endpoint) = gw_native::dynamo_from_env(table, http)?;
    if let Err(e) = store.create_table().await {
        eprintln!(
            "gateway: could not create DynamoDB table {table} at {endpoint} ({e}); assuming it exists"
        );
    }
    Ok(LocalStore::Shared(SharedStore::Dynamo(store)))
}

/// `arg`: `--state`, else `GATEWAY_STATE` (resolved by the caller).
fn open_store(arg: Option<String>) -> Result<(LocalStore, String), String> {
    let path = arg.filter(|p| !p.is_empty()).unwrap_or_else(|| {
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
        return Ok((
            LocalStore::Shared(SharedStore::Memory(MemoryStore::new())),
            "memory".into(),
        ));
    }
    let s = store::RedbStore::open(std::path::Path::new(&path)).map_err(|e| {
        format!("cannot open the state file {e} (another gateway using it? pass --state)")
    })?;
    Ok((LocalStore::File(s), path))
}

/// `GATEWAY_THREADS` (unset or empty: one worker per core).
fn worker_threads(var: Option<String>) -> Result<usize, String> {
    match var.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
        Some(v) => match v.parse::<usize>() {
            Ok(n @ 1..=1024) => Ok(n),
            _ => Err(format!(
                "GATEWAY_THREADS={v:?}: expected a number of worker threads, 1 to 1024"
            )),
        },
    }
}

fn parse_args() -> Result<Args, String> {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 8317).into();
    let mut config = None;
    let mut state = None;
    let mut check = false;
    let mut it = std::env::args().skip(1).peekable();
    if it.peek().map(String::as_str) == Some("config") {
        it.next();
        match it.next().as_deref() {
            Some("check") => check = true,
            _ => return Err(format!("`gateway config` takes `check`\n\n{USAGE}")),
        }
    }
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
        check,
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
    let cfg = gw_native::load_config(&text, &name)?;
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

// The main thread accepts connections and runs the timers; requests run on the workers.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("auth") {
        if std::env::args().nth(2).as_deref() != Some("copilot") {
            eprintln!("gateway: `gateway auth` takes `copilot`\n\n{USAGE}");
            std::process::exit(2);
        }
        match auth::copilot().await {
            Ok(token) => {
                println!("{token}");
                eprintln!(
                    "gateway: store it as GITHUB_TOKEN (a secret) for the github-copilot provider"
                );
                return;
            }
            Err(e) => {
                eprintln!("gateway: {e}");
                std::process::exit(1);
            }
        }
    }
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
    if args.check {
        let name = args
            .config
            .as_deref()
            .unwrap_or("config/gateway.yaml (built in)");
        print!("{}", check::report(&cfg, name));
        return;
    }
    let threads = match worker_threads(std::env::var("GATEWAY_THREADS").ok()) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("gateway: {e}");
            std::process::exit(2);
        }
    };
    if cfg.keys.is_empty() {
        let key = format!("gw-{}", random_hex(24));
        eprintln!(
            "gateway: no proxy key configured (GATEWAY_PROXY_KEY or `keys:`); generated one for this run:\n\n    {key}\n"
        );
        cfg.keys.push(KeySpec::plain("generated", key));
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
    let http = match NativeHttp::per_thread(cfg.timeouts.per_attempt_ms.min(30_000)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gateway: {e}");
            std::process::exit(1);
        }
    };
    let sv = cfg.server.clone();
    conn::raise_fd_limit(sv.max_connections);
    let state_arg = args
        .state
        .clone()
        .or_else(|| std::env::var("GATEWAY_STATE").ok());
    let opened = match state_arg
        .as_deref()
        .and_then(|s| s.strip_prefix("dynamodb:"))
    {
        Some(table) => open_dynamo(table, &http)
            .await
            .map(|s| (s, format!("DynamoDB table {table}"))),
        None => open_store(state_arg),
    };
    let (store, where_) = match opened {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gateway: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("gateway: state in {where_}");
    let file = match &store {
        LocalStore::File(s) => Some(s.clone()),
        LocalStore::Shared(_) => None,
    };
    let log = BufferedStderr::start();
    let gw = Gateway::new(cfg, http, SystemClock, log.clone(), store);
    // Spend is booked once a second (not a store write per request), and at shutdown.
    gw.batch_ledger(LEDGER_FLUSH_MS);
    let g = gw.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(LEDGER_FLUSH_MS)).await;
            g.flush_ledger().await;
        }
    });
    let every = gw.config().health_checks.interval_s;
    if every > 0 {
        // Active health checks: a round at start, then one per interval.
        let g = gw.clone();
        tokio::spawn(async move {
            loop {
                g.health_check().await;
                tokio::time::sleep(std::time::Duration::from_secs(every)).await;
            }
        });
    }
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("gateway: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    eprintln!("gateway: listening on http://{}", args.listen);
    let seed = u64::from_str_radix(&random_hex(8), 16).unwrap_or(0);
    let deadlines = conn::Deadlines {
        head_ms: sv.header_read_timeout_ms,
        idle_ms: sv.idle_timeout_ms,
    };
    let workers = workers::Workers::start(threads, &gw, deadlines, seed);
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let mut acceptor = conn::Acceptor::new(sv.max_connections);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        acceptor.failed(&e).await;
                        continue;
                    }
                };
                acceptor.accepted();
                let Some(permit) = acceptor.slot() else {
                    tokio::spawn(conn::refuse(stream, acceptor.max()));
                    continue;
                };
                workers.dispatch(stream, permit);
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    eprintln!("gateway: shutting down; letting in-flight requests finish (up to 30 s)");
    workers.shutdown().await;
    gw.flush_ledger().await;
    if let Some(f) = file {
        f.sync(); // everything written reaches the file before the process ends
    }
    log.flush();
}

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// One request: the response, and its deferred writes when they did not finish at once (the
/// caller spawns them).
pub(crate) async fn serve(
    gw: &Gw,
    req: http::Request<Incoming>,
    id: String,
    busy: conn::Busy,
) -> (http::Response<Body>, Option<BoxFuture<'static, ()>>) {
    let (parts, body) = req.into_parts();
    // The engine reads the body itself, after the proxy key, with its size and time limits; a
    // body hyper reports broken (cut short, bad chunk framing) arrives as an error item.
    let body: ByteStream = Box::pin(
        body.into_data_stream()
            .map(|r| r.map_err(|e| TransportError::new(TransportErrorKind::Body, e.to_string()))),
    );
    let handled = gw
        .handle_body(
            http::Request::from_parts(parts, EngineBody::Stream(body)),
            id,
        )
        .await;
    // State writes run beside the response, never in front of it.
    // Its synchronous prefix runs here (a memory-store record finishes in one poll, saving a
    // task and a cross-thread wake per request); anything that waits is spawned.
    let mut after = handled.after;
    let after = futures_util::FutureExt::now_or_never(&mut after)
        .is_none()
        .then_some(after);
    let (parts, stream) = handled.response.into_parts();
    // The connection counts as busy until the last chunk was taken (then its idle clock starts).
    let mut busy = Some(busy);
    let stream = stream.chain(futures_util::stream::poll_fn(move |_| {
        busy.take();
        std::task::Poll::Ready(None)
    }));
    let body = StreamBody::new(stream.map(|b| Ok::<_, Infallible>(Frame::data(b))));
    (
        http::Response::from_parts(parts, BodyExt::boxed_unsync(body)),
        after,
    )
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
