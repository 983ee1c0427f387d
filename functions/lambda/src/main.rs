//! `gateway-lambda`: the AWS Lambda runtime. A Function URL in `RESPONSE_STREAM` mode calls this
//! handler, which runs the shared engine and streams its answer back as it is produced. State
//! (breakers) lives in the DynamoDB table named by `GATEWAY_TABLE`, so every concurrent
//! execution environment sees the same state. This file only converts types.

use bytes::Bytes;
use futures_util::StreamExt;
use gw_engine::Gateway;
use gw_native::{EMBEDDED_CONFIG, EmfStderr, NativeHttp, SharedStore, SystemClock};
use gw_state::MemoryStore;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use lambda_http::{Body, Error, Request, RequestExt, Response, service_fn};
use std::sync::atomic::{AtomicU64, Ordering};

type Gw = Gateway<NativeHttp, SystemClock, EmfStderr, SharedStore>;
type OutBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Error>;

/// The config text and a name for errors: `GATEWAY_CONFIG` (the path of a file in the bundle or
/// a layer, else inline YAML, which may be one line of flow YAML from a SAM parameter) or the
/// built-in `config/gateway.yaml`. The value itself is never echoed: it may hold keys.
fn config_source(var: Option<String>) -> Result<(String, String), String> {
    let Some(v) = var.filter(|v| !v.trim().is_empty()) else {
        return Ok((
            EMBEDDED_CONFIG.to_owned(),
            "config/gateway.yaml (built in)".into(),
        ));
    };
    let path = std::path::Path::new(v.trim());
    if !v.contains('\n') && path.is_file() {
        return std::fs::read_to_string(path)
            .map(|t| (t, v.trim().to_owned()))
            .map_err(|e| format!("GATEWAY_CONFIG: cannot read the file it names: {e}"));
    }
    Ok((v, "GATEWAY_CONFIG (inline)".into()))
}

/// Builds the gateway from the environment, once per execution environment.
fn build() -> Result<Gw, String> {
    let (text, name) = config_source(std::env::var("GATEWAY_CONFIG").ok())?;
    let cfg = gw_native::load_config(&text, &name).map_err(|e| format!("config error: {e}"))?;
    let http = NativeHttp::new(cfg.timeouts.per_attempt_ms.min(30_000))?;
    let store = match std::env::var("GATEWAY_TABLE")
        .ok()
        .filter(|t| !t.is_empty())
    {
        Some(table) => {
            let (store, endpoint) = gw_native::dynamo_from_env(&table, &http)?;
            eprintln!("gateway: state in DynamoDB table {table} at {endpoint}");
            SharedStore::Dynamo(store)
        }
        None => {
            eprintln!(
                "gateway: GATEWAY_TABLE is not set: breaker state is per execution environment"
            );
            SharedStore::Memory(MemoryStore::new())
        }
    };
    if cfg.keys.is_empty() {
        eprintln!(
            "gateway: no proxy key configured (GATEWAY_PROXY_KEY): every API request gets a 503"
        );
    }
    Ok(Gateway::new(cfg, http, SystemClock, EmfStderr, store))
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// One invocation: the event's request in, the engine's stream out. The deferred state writes
/// run when the body is exhausted, before the invocation ends: Lambda freezes the environment
/// after that, so a detached task might never run.
async fn handle(gw: &Gw, req: Request) -> Result<Response<OutBody>, Error> {
    let id = req.lambda_context_ref().map_or_else(
        || format!("req_{:016x}", COUNTER.fetch_add(1, Ordering::Relaxed)),
        |c| c.request_id.clone(),
    );
    let (parts, body) = req.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(t) => Bytes::from(t),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    let handled = gw.handle(http::Request::from_parts(parts, body), id).await;
    let (parts, stream) = handled.response.into_parts();
    let tail = futures_util::stream::once(handled.after).filter_map(|()| async { None });
    let frames = stream.chain(tail).map(|b| Ok::<_, Error>(Frame::data(b)));
    Ok(Response::from_parts(
        parts,
        BodyExt::boxed_unsync(StreamBody::new(frames)),
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let gw = build().map_err(|e| {
        eprintln!("gateway: {e}");
        Error::from(e)
    })?;
    lambda_http::run_with_streaming_response(service_fn(move |req| {
        let gw = gw.clone();
        async move { handle(&gw, req).await }
    }))
    .await
}

#[cfg(test)]
mod tests;
