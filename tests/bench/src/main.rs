//! `gw-bench`: runs a fast mock upstream, the real `gateway` binary in front of it, and a load
//! generator, and reports in one run: added latency (p50/p99 vs the upstream directly) at a fixed
//! rate, maximum throughput, memory (idle, under load, with many open streams) and the per-chunk
//! cost of stream translation. A benchmark, not a test: it asserts nothing.
#![allow(clippy::disallowed_methods, reason = "a benchmark measures wall time")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark aborts on setup failure"
)]

mod canned;
mod floor;
mod peer;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use canned::{CHAT, KEY, anthropic_json, anthropic_sse, openai_json, openai_sse};

/// The mock upstream: OpenAI at /openai/v1, Anthropic at /anthropic; `"model":"slow"` streams one
/// chunk every 100 ms (for the many-open-streams memory figure).
async fn mock(listener: tokio::net::TcpListener) {
    loop {
        let Ok((s, _)) = listener.accept().await else {
            continue;
        };
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                let anthropic = req.uri().path().starts_with("/anthropic");
                let embed = req.uri().path().ends_with("/embeddings")
                    || req.uri().path().ends_with("/v2/embed");
                let cohere = req.uri().path().starts_with("/cohere");
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let stream = body.windows(13).any(|w| w == b"\"stream\":true");
                let slow = body.windows(14).any(|w| w == b"\"model\":\"slow\"");
                type B = http_body_util::combinators::BoxBody<Bytes, Infallible>;
                let resp: http::Response<B> = if embed {
                    http::Response::builder()
                        .header("content-type", "application/json")
                        .body(BodyExt::boxed(Full::new(embeddings_json(cohere))))
                        .unwrap()
                } else if stream {
                    let chunks = if anthropic {
                        anthropic_sse()
                    } else {
                        openai_sse()
                    };
                    let s = futures_util::stream::iter(chunks).then(move |b| async move {
                        if slow {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Ok::<_, Infallible>(Frame::data(b))
                    });
                    http::Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(BodyExt::boxed(StreamBody::new(s)))
                        .unwrap()
                } else {
                    let b = if anthropic {
                        anthropic_json()
                    } else {
                        openai_json()
                    };
                    http::Response::builder()
                        .header("content-type", "application/json")
                        .body(BodyExt::boxed(Full::new(b)))
                        .unwrap()
                };
                Ok::<_, Infallible>(resp)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(s), svc)
                .await;
        });
    }
}

/// Two 256-dimension vectors, as OpenAI and Cohere print them.
fn embeddings_json(cohere: bool) -> Bytes {
    let v: Vec<String> = (0..256)
        .map(|i| format!("{:.8}", ((i * 7919) % 1000) as f64 / 1000.0 - 0.5))
        .collect();
    let v = format!("[{}]", v.join(","));
    Bytes::from(if cohere {
        format!(
            r#"{{"id":"e1","embeddings":{{"float":[{v},{v}]}},"texts":["Say hello","and goodbye"],"meta":{{"billed_units":{{"input_tokens":5}}}}}}"#
        )
    } else {
        format!(
            r#"{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":{v}}},{{"object":"embedding","index":1,"embedding":{v}}}],"model":"text-embedding-3-small","usage":{{"prompt_tokens":5,"total_tokens":5}}}}"#
        )
    })
}

type HClient = Client<HttpConnector, Full<Bytes>>;

struct Scenario {
    name: &'static str,
    path: &'static str,
    model: &'static str,
    stream: bool,
    /// Upstream path for the direct call.
    direct: &'static str,
}

fn body(s: &Scenario, model: &str) -> Bytes {
    let b = if s.path == "/v2/embed" {
        format!(
            r#"{{"model":"{model}","texts":["Say hello","and goodbye"],"input_type":"search_document","embedding_types":["float"]}}"#
        )
    } else if s.path == "/v1/embeddings" {
        format!(
            r#"{{"model":"{model}","input":["Say hello","and goodbye"],"encoding_format":"float"}}"#
        )
    } else if s.path == "/v1/messages" {
        canned::messages_body(model, s.stream)
    } else {
        canned::chat_body(model, s.stream)
    };
    Bytes::from(b)
}

/// The peer gateway's address (`--peer`): its requests name their provider in `x-provider`.
static PEER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
/// The provider the peer's requests name (the scenario's upstream).
static PEER_PROVIDER: std::sync::Mutex<&str> = std::sync::Mutex::new("openai");

/// One request to completion (last body byte); returns its latency and, when the body had any,
/// the time to its first byte.
async fn one(client: &HClient, url: &str, body: Bytes) -> (Duration, Option<Duration>) {
    let mut req = http::Request::post(url);
    if PEER.get().is_some_and(|p| url.starts_with(p.as_str())) {
        req = req.header(
            "x-provider",
            *PEER_PROVIDER.lock().unwrap_or_else(|e| e.into_inner()),
        );
    }
    let req = req
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {KEY}"))
        .header("x-api-key", "upstream-key")
        .header("anthropic-version", "2023-06-01")
        .body(Full::new(body))
        .unwrap();
    let t = Instant::now();
    let resp = client.request(req).await.expect("request failed");
    assert!(resp.status().is_success(), "status {}", resp.status());
    let mut body = resp.into_body();
    let mut first = None;
    while let Some(f) = body.frame().await {
        let f = f.expect("body failed");
        if first.is_none() && f.data_ref().is_some_and(|d| !d.is_empty()) {
            first = Some(t.elapsed());
        }
    }
    (t.elapsed(), first)
}

/// Time to the first body byte of every fixed-rate request since the last `take_first_bytes`
/// (the closed loop records none: its client CPU is measured).
static FIRST_BYTES: std::sync::Mutex<Vec<Duration>> = std::sync::Mutex::new(Vec::new());

fn take_first_bytes() -> Vec<Duration> {
    std::mem::take(&mut *FIRST_BYTES.lock().unwrap_or_else(|e| e.into_inner()))
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e3
}

/// Open loop at `rate` req/s for `secs`: latencies of every request.
async fn fixed_rate(
    client: &HClient,
    url: &str,
    body: Bytes,
    rate: u64,
    secs: u64,
) -> Vec<Duration> {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    for _ in 0..rate * secs {
        tick.tick().await;
        let (c, u, b) = (client.clone(), url.to_owned(), body.clone());
        tasks.push(tokio::spawn(async move { one(&c, &u, b).await }));
    }
    let mut out = Vec::new();
    let mut firsts = Vec::new();
    for t in tasks {
        let (total, first) = t.await.unwrap();
        out.push(total);
        firsts.extend(first);
    }
    FIRST_BYTES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(firsts);
    out
}

/// Closed loop with `conc` workers for `secs`: requests per second.
async fn max_throughput(client: &HClient, url: &str, body: Bytes, conc: usize, secs: u64) -> f64 {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (c, u, b) = (client.clone(), url.to_owned(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < end {
                one(&c, &u, b.clone()).await;
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / secs as f64
}

/// The bench's own process, the mock's and the gateway's CPU at one moment.
struct Cpu {
    pids: [u32; 3],
    at: [f64; 3],
}

impl Cpu {
    fn now(gateway: u32, mock: u32) -> Self {
        let pids = [gateway, mock, std::process::id()];
        Self {
            pids,
            at: pids.map(cpu_secs),
        }
    }

    /// CPU µs per request since `now`, for [gateway, mock, client].
    fn per_request(&self, requests: f64) -> [f64; 3] {
        std::array::from_fn(|i| (cpu_secs(self.pids[i]) - self.at[i]) * 1e6 / requests.max(1.0))
    }
}

/// A port on 127.0.0.1 nothing listens on (the OS picks it).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// Waits (up to 10 s) until a server accepts connections on `port`, then a moment for the rest
/// of its start-up.
pub(crate) async fn wait_listening(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Starts `gw-bench --mock-only` and reads the address it serves on.
async fn start_mock() -> (tokio::process::Child, SocketAddr, u32) {
    start_child(&["--mock-only"]).await
}

/// Starts the floor proxy (`floor.rs`) in front of the mock, in a process of its own.
pub(crate) async fn start_floor(mock: SocketAddr) -> (tokio::process::Child, String, u32) {
    let (child, addr, pid) = start_child(&["--floor-only", &mock.to_string()]).await;
    (child, format!("http://{addr}"), pid)
}

/// Runs this binary with `args`; it prints the address it serves on.
async fn start_child(args: &[&str]) -> (tokio::process::Child, SocketAddr, u32) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start the mock process");
    let out = child.stdout.take().unwrap();
    let mut line = String::new();
    tokio::io::BufReader::new(out)
        .read_line(&mut line)
        .await
        .unwrap();
    let pid = child.id().unwrap();
    (child, line.trim().parse().unwrap(), pid)
}

/// CPU seconds (user + system) the process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)` part; utime and stime are the 12th and 13th of those.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_mb(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// What the hardening checks cost: the request limits (depth, model, message count) on a 4 KB
/// chat request, in µs per request, and the fast path's JSON check of each forwarded event of a
/// real recorded stream, in µs per chunk.
fn check_costs() -> (f64, f64) {
    let turn = r#"{"role":"user","content":"Please summarise the following paragraph in two sentences, keeping the names and the numbers exactly as they are written."},{"role":"assistant","content":"Sure: here is a two-sentence summary that keeps every name and number as written."}"#;
    let tool = r#"{"type":"function","function":{"name":"get_weather","description":"Weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["c","f"]}},"required":["city"]}}}"#;
    let mut body = String::from(r#"{"model":"gpt-4o-mini","stream":true,"messages":["#);
    while body.len() < 3600 {
        body.push_str(turn);
        body.push(',');
    }
    body.push_str(r#"{"role":"user","content":"Go."}],"tools":["#);
    body.push_str(tool);
    body.push_str("]}");
    let limits = gw_translate::limits::Limits {
        max_depth: 64,
        max_model_bytes: 256,
        max_messages: 10_000,
    };
    let rounds = 20_000;
    let t = Instant::now();
    for _ in 0..rounds {
        assert!(
            gw_translate::limits::check(std::hint::black_box(body.as_bytes()), &limits).is_ok()
        );
    }
    let per_request = t.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    let text = include_str!("../../../shared/translate/tests/fixtures/openai-text.chunks.txt");
    let chunks: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let rounds = 300;
    let t = Instant::now();
    for _ in 0..rounds {
        for c in &chunks {
            let ok = serde_json::from_str::<serde::de::IgnoredAny>(std::hint::black_box(c));
            assert!(ok.is_ok());
        }
    }
    let per_chunk = t.elapsed().as_secs_f64() * 1e6 / (rounds * chunks.len()) as f64;
    (per_request, per_chunk)
}

/// Per-chunk cost (frame + decode + encode) of each recorded upstream stream translated for
/// each client format: (upstream fixture, client format, µs per chunk, chunks).
fn per_chunk_pairs() -> Vec<(&'static str, &'static str, f64, usize)> {
    use gw_translate::Format;
    let fx = |name: &str| {
        std::fs::read(format!(
            "{}/../../shared/translate/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let lines = |name: &str| String::from_utf8(fx(name)).unwrap();
    let sse = |text: String, named: bool, done: bool| {
        let mut out = String::new();
        for l in text.lines().filter(|l| !l.is_empty()) {
            if named {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                out.push_str(&format!("event: {}\n", v["type"].as_str().unwrap_or("")));
            }
            out.push_str(&format!("data: {l}\n\n"));
        }
        if done {
            out.push_str("data: [DONE]\n\n");
        }
        out.into_bytes()
    };
    // A long Gemini text stream: the recorded OpenAI text stream as Gemini would send it (the
    // recorded Gemini stream is two chunks, mostly per-stream work).
    let openai_text = sse(lines("openai-text.chunks.txt"), false, true);
    let gemini_text = {
        let mut p = gw_codec::Framer::sse(false, usize::MAX);
        let mut d = gw_translate::Decoder::new(Format::OpenAi);
        let mut e = gw_translate::Encoder::new(Format::Gemini, true);
        let (mut frames, mut events, mut o) = (Vec::new(), Vec::new(), Vec::new());
        p.feed(&openai_text, &mut frames).unwrap();
        for f in &frames {
            d.feed(f, &mut events).unwrap();
        }
        d.finish(&mut events).unwrap();
        for ev in &events {
            e.encode(ev, &mut o);
        }
        o
    };
    let upstreams: Vec<(&str, Format, Vec<u8>)> = vec![
        ("gemini (text)", Format::Gemini, gemini_text),
        (
            "gemini",
            Format::Gemini,
            sse(lines("google-tool-call.chunks.txt"), false, false),
        ),
        (
            "cohere",
            Format::Cohere,
            sse(lines("cohere-tool-call.chunks.txt"), true, false),
        ),
        (
            "bedrock",
            Format::Bedrock,
            fx("amazon-bedrock-text.eventstream.bin"),
        ),
        (
            "openai",
            Format::OpenAi,
            sse(lines("openai-text.chunks.txt"), false, true),
        ),
    ];
    let clients = [
        ("openai", Format::OpenAi),
        ("anthropic", Format::Anthropic),
        ("gemini", Format::Gemini),
    ];
    let mut out = Vec::new();
    for (uname, up, bytes) in &upstreams {
        for (cname, client) in clients {
            if *up == client {
                continue;
            }
            let rounds = 500;
            let mut chunks = 0;
            let t = Instant::now();
            for _ in 0..rounds {
                let mut p = match gw_translate::wire::framing(*up, gw_model::Operation::Chat) {
                    gw_model::Framing::Sse => gw_codec::Framer::sse(false, usize::MAX),
                    gw_model::Framing::EventStream => gw_codec::Framer::event_stream(1 << 24),
                };
                let mut d = gw_translate::Decoder::new(*up);
                let mut e = gw_translate::Encoder::new(client, true);
                let (mut frames, mut events, mut o) = (Vec::new(), Vec::new(), Vec::new());
                p.feed(std::hint::black_box(bytes), &mut frames).unwrap();
                for f in &frames {
                    events.clear();
                    d.feed(f, &mut events).unwrap();
                    for ev in &events {
                        e.encode(ev, &mut o);
                    }
                }
                events.clear();
                d.finish(&mut events).unwrap();
                for ev in &events {
                    e.encode(ev, &mut o);
                }
                chunks = frames.len();
                assert!(!o.is_empty());
            }
            out.push((
                *uname,
                cname,
                t.elapsed().as_secs_f64() * 1e6 / (rounds * chunks) as f64,
                chunks,
            ));
        }
    }
    out
}

/// Per-request translation work of a non-streamed call from an OpenAI client to each upstream
/// format: decode the client's request, encode it for the upstream, decode the upstream's
/// answer (made by that format's own encoder from one canonical answer), encode it for the
/// client. In µs per request; everything else a translated call costs is the same for all.
fn per_request_translation() -> Vec<(&'static str, f64)> {
    use gw_model::*;
    use gw_translate::Format;
    let client_body = br#"{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"What is the weather in Paris today? Answer in one sentence."}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],"max_completion_tokens":200}"#;
    let answer = ChatResponse {
        id: "r1".into(),
        model: "m".into(),
        content: vec![Part::Text {
            text: "It is sunny and 21 degrees in Paris today, with a light breeze.".into(),
            cache: None,
        }],
        stop_reason: StopReason::EndTurn,
        stop_sequence: None,
        usage: Usage {
            input: 40,
            output: 15,
            ..Usage::default()
        },
        created: Some(1),
    };
    let mut out = Vec::new();
    for (name, up) in [
        ("anthropic", Format::Anthropic),
        ("gemini", Format::Gemini),
        ("cohere", Format::Cohere),
        ("bedrock", Format::Bedrock),
    ] {
        let upstream_answer = gw_translate::encode_response(up, &ChatRequest::default(), &answer);
        let opts = gw_translate::EncodeOpts {
            model: "m",
            provider: name,
            default_max_tokens: 4096,
            max_tokens_field: "max_tokens",
        };
        let rounds = 20_000;
        let t = Instant::now();
        for _ in 0..rounds {
            let req =
                gw_translate::decode_request(Format::OpenAi, std::hint::black_box(client_body))
                    .unwrap();
            let body = gw_translate::encode_request(up, &req, &opts).unwrap();
            std::hint::black_box(body);
            let r =
                gw_translate::decode_response(up, std::hint::black_box(&upstream_answer)).unwrap();
            std::hint::black_box(gw_translate::encode_response(Format::OpenAi, &req, &r));
        }
        out.push((name, t.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)));
    }
    out
}

/// Per-chunk cost of translating a real recorded OpenAI stream into Anthropic SSE (parse + decode + encode).
fn per_chunk_us() -> (f64, usize) {
    let text = include_str!("../../../shared/translate/tests/fixtures/openai-text.chunks.txt");
    let mut sse = String::new();
    let mut n = 0;
    for l in text.lines().filter(|l| !l.is_empty()) {
        sse.push_str("data: ");
        sse.push_str(l);
        sse.push_str("\n\n");
        n += 1;
    }
    sse.push_str("data: [DONE]\n\n");
    let bytes = sse.into_bytes();
    let rounds = 300;
    let t = Instant::now();
    let mut out_len = 0;
    for _ in 0..rounds {
        let mut p = gw_codec::SseParser::new();
        let mut d = gw_translate::Decoder::new(gw_translate::Format::OpenAi);
        let mut e = gw_translate::Encoder::new(gw_translate::Format::Anthropic, false);
        let (mut frames, mut events, mut out) = (Vec::new(), Vec::new(), Vec::new());
        p.feed(&bytes, &mut frames).unwrap();
        for f in &frames {
            events.clear();
            d.feed(f, &mut events).unwrap();
            for ev in &events {
                e.encode(ev, &mut out);
            }
        }
        out_len += out.len();
    }
    assert!(out_len > 0);
    (
        t.elapsed().as_secs_f64() * 1e6 / (rounds * (n + 1)) as f64,
        n + 1,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--mock-only") {
        // The child process of `start_mock`: serve and print the address.
        let ml = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", ml.local_addr().unwrap());
        mock(ml).await;
        return;
    }
    if let Some(upstream) = flag(&args, "--floor-only") {
        // The child process of `start_floor`.
        floor::serve(upstream.parse().expect("--floor-only MOCK_ADDR"));
    }
    let gateway = args
        .iter()
        .position(|a| a == "--gateway")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| {
            format!(
                "{}/release/gateway",
                std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into())
            )
        });
    let rate: u64 = args
        .iter()
        .position(|a| a == "--rate")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let secs: u64 = args
        .iter()
        .position(|a| a == "--secs")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);

    let (us, chunks) = per_chunk_us();
    println!(
        "per-chunk translation (OpenAI -> Anthropic, real {chunks}-chunk stream): {us:.2} us/chunk"
    );
    let per_request = per_request_translation();
    let base = per_request[0].1;
    for (up, us) in &per_request {
        println!(
            "translated non-streamed request, OpenAI client -> {up}: {us:.2} us of translation ({:.2}x the Anthropic path)",
            us / base
        );
    }
    for (up, client, us, n) in per_chunk_pairs() {
        println!(
            "per-chunk translation {up} -> {client} client ({n}-chunk recorded stream): {us:.2} us/chunk"
        );
    }
    let (one_ns, many_ns) = token_source_ns().await;
    println!(
        "token source, warm cache: {one_ns:.0} ns per request alone; {many_ns:.0} ns per request with 1,000 concurrent requests"
    );
    // Counted by `gw-bench-allocs`, beside this binary.
    let allocs = std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.join("gw-bench-allocs")));
    match allocs.map(|a| std::process::Command::new(a).output()) {
        Some(Ok(out)) if out.status.success() => {
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
        _ => println!(
            "heap allocations per request: gw-bench-allocs did not run (cargo build --release -p gw-bench)"
        ),
    }
    if args.iter().any(|a| a == "--allocs-only") {
        return;
    }
    let (req_us, event_us) = check_costs();
    println!(
        "hardening checks: request limits {req_us:.2} us per 4 KB request; fast-path event JSON check {event_us:.3} us/chunk"
    );

    // The mock upstream runs in a process of its own, so its CPU is counted apart from the
    // client's (this process) and the gateway's.
    let (_mock_child, mock_addr, mock_pid) = start_mock().await;
    if let Some(bin) = flag(&args, "--peer") {
        peer::compare(&http_client(), &gateway, &bin, mock_addr, rate, secs).await;
        return;
    }
    if let Some(other) = flag(&args, "--compare") {
        peer::compare_builds(&http_client(), &gateway, &other, mock_addr, rate, secs).await;
        return;
    }
    if let Some(limits) = flag(&args, "--limits-compare") {
        limits_compare(&http_client(), &gateway, &limits, mock_addr, rate, secs).await;
        return;
    }
    let state = args
        .iter()
        .position(|a| a == "--state")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "memory".into());
    println!("gateway state store: {state}");
    // `--gateway-config FILE`: the gateway's config (e.g. one with limits and budgets on).
    let config = flag(&args, "--gateway-config");
    if let Some(f) = &config {
        println!("gateway config: {f}");
    }
    let client = http_client();
    let (mut child, gw, pid) = start_gateway(&gateway, &state, config.as_deref(), mock_addr).await;
    println!("gateway RSS idle: {:.1} MB", rss_mb(pid));

    let scenarios = [
        Scenario {
            name: "OpenAI->OpenAI (fast path)",
            path: "/v1/chat/completions",
            model: "gpt-4o-mini",
            stream: false,
            direct: "/openai/v1/chat/completions",
        },
        Scenario {
            name: "OpenAI->OpenAI (fast path), streamed",
            path: "/v1/chat/completions",
            model: "gpt-4o-mini",
            stream: true,
            direct: "/openai/v1/chat/completions",
        },
        Scenario {
            name: "OpenAI->Anthropic (translated)",
            path: "/v1/chat/completions",
            model: "claude-haiku-4-5",
            stream: false,
            direct: "/anthropic/v1/messages",
        },
        Scenario {
            name: "OpenAI->Anthropic (translated), streamed",
            path: "/v1/chat/completions",
            model: "claude-haiku-4-5",
            stream: true,
            direct: "/anthropic/v1/messages",
        },
        Scenario {
            name: "embeddings OpenAI->OpenAI (fast path)",
            path: "/v1/embeddings",
            model: "openai/text-embedding-3-small",
            stream: false,
            direct: "/openai/v1/embeddings",
        },
        Scenario {
            name: "embeddings OpenAI->Cohere (translated)",
            path: "/v1/embeddings",
            model: "cohere/embed-v4.0",
            stream: false,
            direct: "/cohere/v2/embed",
        },
    ];
    println!(
        "\n{rate} req/s for {secs} s each; latency to the last byte; 'added' = via gateway - direct"
    );
    println!(
        "max: closed loop, 32 connections; CPU per request of the gateway, the mock and the client (this\n\
         process) during it, from /proc; 'cores' = all three together (at most {} here)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<42} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11} {:>10} {:>11} {:>11} {:>11} {:>6}",
        "scenario",
        "dir p50",
        "dir p99",
        "gw p50",
        "gw p99",
        "add p50",
        "add p99",
        "gw cpu/req",
        "max req/s",
        "gw @max",
        "mock @max",
        "client @max",
        "cores"
    );
    // `--only "NAME;NAME"`: run just these scenarios (e.g. to profile one path).
    let only = flag(&args, "--only");
    let picked = |name: &str| {
        only.as_ref()
            .is_none_or(|o| o.split(';').any(|n| n == name))
    };
    for s in scenarios.iter().filter(|s| picked(s.name)) {
        let direct_body = if s.direct.starts_with("/cohere") {
            body(
                &Scenario {
                    path: "/v2/embed",
                    ..*s
                },
                "embed-v4.0",
            )
        } else if s.direct == "/openai/v1/embeddings" {
            body(s, "text-embedding-3-small")
        } else if s.direct.starts_with("/anthropic") {
            body(
                &Scenario {
                    path: "/v1/messages",
                    ..*s
                },
                s.model,
            )
        } else {
            body(s, s.model)
        };
        let durl = format!("http://{mock_addr}{}", s.direct);
        let gurl = format!("{gw}{}", s.path);
        // Warm both paths' connection pools.
        let _ = fixed_rate(&client, &durl, direct_body.clone(), 200, 1).await;
        let _ = fixed_rate(&client, &gurl, body(s, s.model), 200, 1).await;
        take_first_bytes();
        let mut d = fixed_rate(&client, &durl, direct_body, rate, secs).await;
        let mut d_first = take_first_bytes();
        let cpu0 = cpu_secs(pid);
        let mut g = fixed_rate(&client, &gurl, body(s, s.model), rate, secs).await;
        let cpu_us = (cpu_secs(pid) - cpu0) * 1e6 / g.len() as f64;
        let mut g_first = take_first_bytes();
        let (d50, d99, g50, g99) = (
            pct(&mut d, 0.5),
            pct(&mut d, 0.99),
            pct(&mut g, 0.5),
            pct(&mut g, 0.99),
        );
        let cpu = Cpu::now(pid, mock_pid);
        let max = max_throughput(&client, &gurl, body(s, s.model), 32, secs).await;
        let at_max = cpu.per_request(max * secs as f64);
        println!(
            "{:<42} {d50:>8.3}ms {d99:>8.3}ms {g50:>8.3}ms {g99:>8.3}ms {:>8.3}ms {:>8.3}ms {cpu_us:>9.1}us {max:>10.0} {:>9.1}us {:>9.1}us {:>9.1}us {:>6.2}",
            s.name,
            g50 - d50,
            g99 - d99,
            at_max[0],
            at_max[1],
            at_max[2],
            at_max.iter().sum::<f64>() * max / 1e6,
        );
        if s.stream {
            let (d1, g1) = (pct(&mut d_first, 0.5), pct(&mut g_first, 0.5));
            let (d9, g9) = (pct(&mut d_first, 0.99), pct(&mut g_first, 0.99));
            println!(
                "  time to first byte at {rate} req/s: direct p50 {d1:.3}ms p99 {d9:.3}ms, via gateway p50 {g1:.3}ms p99 {g9:.3}ms: added p50 {:.3}ms p99 {:.3}ms",
                g1 - d1,
                g9 - d9
            );
        }
    }
    println!("gateway RSS after load: {:.1} MB", rss_mb(pid));

    // Many concurrent slow streams held open at once.
    let n = 1000;
    let s = &scenarios[3];
    let b = body(s, "anthropic/slow");
    let url = format!("{gw}{}", s.path);
    let mut tasks = Vec::new();
    let before = rss_mb(pid);
    for _ in 0..n {
        let (c, u, b) = (client.clone(), url.clone(), b.clone());
        tasks.push(tokio::spawn(async move { one(&c, &u, b).await }));
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let during = rss_mb(pid);
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "{n} concurrent translated streams: RSS {before:.1} MB -> {during:.1} MB ({:.1} KB per stream)",
        (during - before) * 1024.0 / n as f64
    );
    let _ = child.kill().await;
}

/// The load generator's client: pooled keep-alive connections, no Nagle delay.
fn http_client() -> HClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(512)
        .build(connector)
}

/// The value after `name` on the command line.
fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Starts the gateway on a free port in front of the mock; returns it, its URL and pid once it
/// accepts connections.
async fn start_gateway(
    gateway: &str,
    state: &str,
    config: Option<&str>,
    mock_addr: SocketAddr,
) -> (tokio::process::Child, String, u32) {
    let gw_port = free_port();
    let child = tokio::process::Command::new(gateway)
        .args([
            "--listen",
            &format!("127.0.0.1:{gw_port}"),
            "--state",
            state,
        ])
        .args(config.map(|f| ["--config", f]).into_iter().flatten())
        .env("GATEWAY_PROXY_KEY", KEY)
        .env("OPENAI_API_KEY", "upstream-key")
        .env("ANTHROPIC_API_KEY", "upstream-key")
        .env("OPENAI_BASE_URL", format!("http://{mock_addr}/openai/v1"))
        .env("COHERE_API_KEY", "upstream-key")
        .env("COHERE_BASE_URL", format!("http://{mock_addr}/cohere"))
        .env(
            "ANTHROPIC_BASE_URL",
            format!("http://{mock_addr}/anthropic"),
        )
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {gateway}: {e} (build it: cargo build --release -p gw-local)")
        });
    let pid = child.id().expect("the gateway exited at once");
    wait_listening(gw_port).await;
    (child, format!("http://127.0.0.1:{gw_port}"), pid)
}

/// `--limits-compare FILE`: the same chat scenarios through two gateways on the memory store, one
/// with the default config (no limits, no budgets) and one with FILE (limits and budgets on every
/// target), measured alternately in one run: gateway CPU per request and added latency.
async fn limits_compare(
    client: &HClient,
    gateway: &str,
    limits: &str,
    mock_addr: SocketAddr,
    rate: u64,
    secs: u64,
) {
    let (_off, off_url, off_pid) = start_gateway(gateway, "memory", None, mock_addr).await;
    let (_on, on_url, on_pid) = start_gateway(gateway, "memory", Some(limits), mock_addr).await;
    println!(
        "limits and budgets off vs on ({limits}), memory store, {rate} req/s for {secs} s, 3 alternating rounds"
    );
    println!(
        "{:<42} {:>12} {:>12} {:>7} {:>11} {:>11}",
        "scenario", "cpu/req off", "cpu/req on", "ratio", "p50 off", "p50 on"
    );
    for (name, model, stream) in CHAT {
        let s = Scenario {
            name,
            path: "/v1/chat/completions",
            model,
            stream,
            direct: "",
        };
        let mut cpu = [0.0f64; 2];
        let mut n = [0usize; 2];
        let mut lat: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
        for _round in 0..3 {
            for (i, (url, pid)) in [(&off_url, off_pid), (&on_url, on_pid)]
                .into_iter()
                .enumerate()
            {
                let url = format!("{url}{}", s.path);
                let _ = fixed_rate(client, &url, body(&s, model), 200, 1).await;
                let c0 = cpu_secs(pid);
                let got = fixed_rate(client, &url, body(&s, model), rate, secs).await;
                cpu[i] += cpu_secs(pid) - c0;
                n[i] += got.len();
                lat[i].extend(got);
            }
        }
        let us = |i: usize| cpu[i] * 1e6 / n[i] as f64;
        println!(
            "{name:<42} {:>10.1}us {:>10.1}us {:>6.2}x {:>9.3}ms {:>9.3}ms",
            us(0),
            us(1),
            us(1) / us(0),
            pct(&mut lat[0], 0.5),
            pct(&mut lat[1], 0.5)
        );
    }
}

/// An Azure AD token endpoint answered in process (only the first call reaches it).
struct TokenEndpoint;

impl gw_ports::HttpClient for TokenEndpoint {
    async fn send(
        &self,
        _req: http::Request<Bytes>,
    ) -> Result<http::Response<gw_ports::ByteStream>, gw_ports::TransportError> {
        let body = Bytes::from_static(
            br#"{"token_type":"Bearer","expires_in":3599,"access_token":"bench-token"}"#,
        );
        let chunks: Vec<Result<Bytes, gw_ports::TransportError>> = vec![Ok(body)];
        let s: gw_ports::ByteStream = Box::pin(futures_util::stream::iter(chunks));
        Ok(http::Response::new(s))
    }
}

/// What a warm token source costs a request: alone, and under 1,000 concurrent requests on
/// every core (a lock convoy would show here).
async fn token_source_ns() -> (f64, f64) {
    use gw_auth::token::{Exchange, TokenSource};
    use std::sync::Arc;
    let src = Arc::new(TokenSource::new(
        Exchange::ClientCredentials {
            token_url: "https://login.example/t/oauth2/v2.0/token".into(),
            client_id: "c".into(),
            client_secret: "s".into(),
            scope: "https://cognitiveservices.azure.com/.default".into(),
        },
        "t/c".into(),
    ));
    let http = Arc::new(TokenEndpoint);
    src.token(&*http, 1000).await.unwrap();
    let n = 200_000u32;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(src.token(&*http, 1000).await.unwrap());
    }
    let one = t.elapsed().as_nanos() as f64 / f64::from(n);
    let (tasks, per) = (1000u32, 200u32);
    let t = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (src, http) = (Arc::clone(&src), Arc::clone(&http));
            tokio::spawn(async move {
                for i in 0..per {
                    std::hint::black_box(src.token(&*http, 1000).await.unwrap());
                    if i % 16 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let many = t.elapsed().as_nanos() as f64 / f64::from(tasks * per);
    (one, many)
}
