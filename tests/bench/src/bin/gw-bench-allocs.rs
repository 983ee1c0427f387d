//! `gw-bench-allocs`: heap allocations per request through the engine, in process: the shipped
//! config, upstreams answered from memory (so only the gateway's own work is counted), the memory
//! store, spend booked once a second (as the local server does) and a log that keeps nothing.
//! Counted by a counting global allocator around many requests, after a warm-up. `gw-bench` runs
//! it; a binary of its own, so the counting allocator costs the bench's processes nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark aborts on setup failure"
)]

#[path = "../canned.rs"]
mod canned;

use bytes::Bytes;
use canned::{CHAT, KEY, anthropic_json, anthropic_sse, openai_json, openai_sse};
use futures_util::StreamExt;
use gw_engine::Gateway;
use gw_ports::{ByteStream, HttpClient, LogSink, TransportError};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Answers every upstream call from memory: OpenAI or Anthropic, whole or streamed.
struct Canned;

impl HttpClient for Canned {
    async fn send(
        &self,
        req: http::Request<Bytes>,
    ) -> Result<http::Response<ByteStream>, TransportError> {
        let anthropic = req.uri().path().ends_with("/v1/messages");
        let stream = req.body().windows(13).any(|w| w == b"\"stream\":true");
        let chunks: Vec<Bytes> = match (anthropic, stream) {
            (false, false) => vec![openai_json()],
            (true, false) => vec![anthropic_json()],
            (false, true) => openai_sse(),
            (true, true) => anthropic_sse(),
        };
        let ct = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let s: ByteStream = Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)));
        let mut r = http::Response::new(s);
        r.headers_mut()
            .insert("content-type", http::HeaderValue::from_static(ct));
        Ok(r)
    }
}

struct Quiet;

impl LogSink for Quiet {
    fn emit(&self, _line: &str) {}
}

fn request(model: &str, stream: bool) -> http::Request<Bytes> {
    http::Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .body(Bytes::from(canned::chat_body(model, stream)))
        .unwrap()
}

/// (scenario, allocations (and reallocations) per request, bytes allocated per request).
async fn per_request() -> Vec<(&'static str, f64, f64)> {
    let env = |k: &str| match k {
        "GATEWAY_PROXY_KEY" => Some(KEY.to_owned()),
        "OPENAI_API_KEY" | "ANTHROPIC_API_KEY" => Some("upstream-key".to_owned()),
        _ => None,
    };
    let cfg = gw_route::Config::load(gw_native::EMBEDDED_CONFIG, "gateway.yaml", &env).unwrap();
    let gw = Gateway::new(
        cfg,
        Canned,
        gw_native::SystemClock,
        Quiet,
        gw_state::MemoryStore::new(),
    );
    gw.batch_ledger(1_000); // as the local server runs it
    let mut out = Vec::new();
    for (name, model, stream) in CHAT {
        let one = || async {
            let h = gw.handle(request(model, stream), "bench".into()).await;
            assert!(
                h.response.status().is_success(),
                "{name}: {}",
                h.response.status()
            );
            let mut body = h.response.into_body();
            while body.next().await.is_some() {}
            h.after.await;
        };
        for _ in 0..200 {
            one().await;
        }
        let n = 2_000;
        let region = Region::new(GLOBAL);
        for _ in 0..n {
            one().await;
        }
        let c = region.change();
        out.push((
            name,
            (c.allocations + c.reallocations) as f64 / f64::from(n),
            c.bytes_allocated as f64 / f64::from(n),
        ));
    }
    out
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    for (name, n, bytes) in per_request().await {
        println!(
            "heap allocations per request through the engine, {name}: {n:.0} ({bytes:.0} bytes)"
        );
    }
}
