//! `gw-worker`: the gateway on Cloudflare Workers. A fetch handler around the shared engine; this
//! crate only converts types and implements the ports (`fetch`, `Date.now`, `console.log`, a
//! Durable Object store).

mod ports;
mod store;

use bytes::Bytes;
use futures_util::StreamExt;
use gw_engine::Gateway;
use gw_model::{ApiError, ErrorKind, Format};
use gw_route::Config;
use ports::{Console, WorkerClock, WorkerFetch};
use std::cell::RefCell;
use store::DoStore;
use worker::{Context, Env, Headers, Request, Response, event, js_sys};

pub use store::GatewayState;

const EMBEDDED_CONFIG: &str = include_str!("../../../config/gateway.yaml");

type Gw = Gateway<WorkerFetch, WorkerClock, Console, DoStore>;

thread_local! {
    /// One gateway per isolate: the config comes from bindings, which do not change while the
    /// isolate lives (a new secret or variable means a new deployment, hence a new isolate).
    static GATEWAY: RefCell<Option<Gw>> = const { RefCell::new(None) };
}

/// The variable lookup for `${VAR}` and `<ID>_BASE_URL`: Workers have no process environment,
/// only bindings. Secrets and `[vars]` are both string bindings, read the same way.
fn lookup(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string())
}

fn load_gateway(env: &Env) -> Result<Gw, ApiError> {
    let (text, name) = match lookup(env, "GATEWAY_CONFIG").filter(|t| !t.trim().is_empty()) {
        Some(t) => (t, "GATEWAY_CONFIG (variable)"),
        None => (EMBEDDED_CONFIG.to_owned(), "config/gateway.yaml (built in)"),
    };
    let cfg = Config::load(&text, name, &|k| lookup(env, k)).map_err(|e| {
        // The detail can quote the config, keys included: it goes to the log, not to callers.
        worker::console_error!("gateway: config error: {e}");
        not_ready(
            "config_error",
            "the gateway's configuration is invalid; the reason is in the Worker's logs (`wrangler tail`)".into(),
        )
    })?;
    // No generated key here, unlike the local server (nobody would see it): with no key the
    // engine refuses every request with a 503 naming GATEWAY_PROXY_KEY.
    let store = DoStore::new(env).map_err(|e| not_ready("state_not_configured", e))?;
    Ok(Gateway::new(cfg, WorkerFetch, WorkerClock, Console, store))
}

fn not_ready(code: &str, message: String) -> ApiError {
    ApiError::new(ErrorKind::Api, message)
        .with_status(503)
        .with_code(code)
}

fn gateway(env: &Env) -> Result<Gw, ApiError> {
    if let Some(gw) = GATEWAY.with(|g| g.borrow().clone()) {
        return Ok(gw);
    }
    // Errors are not cached: they are cheap to recompute and the answer stays current.
    let gw = load_gateway(env)?;
    GATEWAY.with(|g| *g.borrow_mut() = Some(gw.clone()));
    Ok(gw)
}

/// A request id when the client sent none (not a secret: `Math.random` is enough).
fn request_id() -> String {
    let hi = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    let lo = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    format!("req_{:016x}", (hi << 32) | lo)
}

/// Cron Triggers (`[triggers] crons` in wrangler.toml): one round of active health checks.
#[event(scheduled)]
pub async fn scheduled(_event: worker::ScheduledEvent, env: Env, _ctx: worker::ScheduleContext) {
    if let Ok(gw) = gateway(&env) {
        gw.health_check().await;
    }
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let url = req.url()?;
    let mut head = http::HeaderMap::new();
    if req.headers().has("anthropic-version")? {
        head.insert("anthropic-version", http::HeaderValue::from_static("1"));
    }
    // The engine's rule, for errors before there is an engine.
    let format = gw_translate::wire::client_format(url.path(), &head);
    let test_endpoints = lookup(&env, "GW_TEST_ENDPOINTS").as_deref() == Some("1");
    if test_endpoints && url.path() == "/__gw/conformance" && req.method() == worker::Method::Post {
        return conformance(&env).await;
    }
    let gw = match gateway(&env) {
        Ok(gw) => gw,
        Err(e) => return error_response(format, &e),
    };
    let mut b = http::Request::builder()
        .method(req.inner().method().as_str())
        .uri(match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        });
    for (k, v) in req.headers().entries() {
        b = b.header(k, v);
    }
    // The engine reads the body itself, after the proxy key, bounded in size and time.
    let body: gw_ports::ByteStream = match req.stream() {
        Ok(s) => Box::pin(s.map(|r| {
            r.map(Bytes::from).map_err(|e| {
                gw_ports::TransportError::new(gw_ports::TransportErrorKind::Body, e.to_string())
            })
        })),
        Err(_) => Box::pin(futures_util::stream::empty()),
    };
    let http_req = match b.body(gw_engine::Body::Stream(body)) {
        Ok(r) => r,
        Err(e) => return error_response(format, &ApiError::invalid(e.to_string())),
    };
    let handled = gw.handle_body(http_req, request_id()).await;
    // State writes run beside the response, never in front of it.
    ctx.wait_until(handled.after);
    to_worker(handled.response)
}

fn to_worker(resp: http::Response<gw_ports::BodyStream>) -> worker::Result<Response> {
    let (parts, stream) = resp.into_parts();
    let headers = Headers::new();
    for (k, v) in &parts.headers {
        headers.append(k.as_str(), &String::from_utf8_lossy(v.as_bytes()))?;
    }
    let chunks = stream.map(|b| Ok::<Vec<u8>, worker::Error>(b.into()));
    Ok(Response::from_stream(chunks)?
        .with_status(parts.status.as_u16())
        .with_headers(headers))
}

fn error_response(format: Format, e: &ApiError) -> worker::Result<Response> {
    to_worker(gw_engine::error_response(format, e))
}

/// `POST /__gw/conformance` (only with `GW_TEST_ENDPOINTS=1`): the state store suite against the
/// real Durable Objects, under a fresh key prefix.
async fn conformance(env: &Env) -> worker::Result<Response> {
    let store = match DoStore::new(env) {
        Ok(s) => s,
        Err(e) => return Response::error(e, 500),
    };
    let prefix = format!("conformance-{}", request_id());
    match gw_state::conformance::run_all(&store, &prefix).await {
        Ok(()) => Response::ok("ok"),
        Err(e) => Response::error(e, 500),
    }
}
