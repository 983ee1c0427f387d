//! Relaying an upstream stream to the client: byte forwarding on the fast path (each event still
//! checked, usage read on the side), or frames -> canonical events -> client frames through
//! stateful decoder and encoder.

use crate::Inner;
use crate::log::{LogGuard, Outcome};
use bytes::Bytes;
use futures_util::future::{Either, select};
use futures_util::{FutureExt, StreamExt};
use gw_codec::{Framer, SseFrame};
use gw_model::{ApiError, ChatRequest, ErrorKind, Format, Framing, Operation, StreamEvent};
use gw_ports::{BodyStream, ByteStream, Clock, HttpClient, LogSink};
use gw_state::StateStore;
use gw_translate::fast::FastStream;
use gw_translate::{Decoder, Encoder};
use http::{HeaderValue, Response, StatusCode};
use std::sync::Arc;

/// Most bytes gathered from already-buffered upstream chunks into one client write.
const COALESCE_LIMIT: usize = 64 * 1024;
/// Executor turns given to the upstream's connection before a coalesced write goes out.
const IDLE_TURNS: u32 = 3;
/// Executor turns one write may wait through in all.
const MAX_TURNS: u32 = 128;

#[expect(
    clippy::large_enum_variant,
    reason = "one per stream, never moved after creation"
)]
enum Mode {
    Fast(FastStream),
    Translate {
        dec: Decoder,
        enc: Encoder,
        ident: Identity,
    },
}

/// What an answer is called when the upstream does not say (Bedrock names no id or model):
/// the gateway's id for it, the model it was sent to, the time it started.
#[derive(Debug, Clone, Default)]
pub(crate) struct Identity {
    pub(crate) id: String,
    pub(crate) model: String,
    pub(crate) created: i64,
}

impl Identity {
    /// Fills what `ev` (a start event) leaves empty.
    fn fill(&self, ev: &mut StreamEvent) {
        if let StreamEvent::Start {
            id, model, created, ..
        } = ev
        {
            if id.is_empty() {
                id.clone_from(&self.id);
            }
            if model.is_empty() {
                model.clone_from(&self.model);
            }
            created.get_or_insert(self.created);
        }
    }
}

struct Relay<H: HttpClient, C: Clock, L: LogSink, S: StateStore> {
    inner: Arc<Inner<H, C, L, S>>,
    client: Format,
    rest: ByteStream,
    first: Option<Bytes>,
    parser: Framer,
    mode: Mode,
    log: LogGuard<H, C, L, S>,
    frames: Vec<SseFrame>,
    events: Vec<StreamEvent>,
    finished: bool,
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site, all parts of one relay"
)]
pub(crate) fn stream_response<H: HttpClient, C: Clock, L: LogSink, S: StateStore>(
    inner: Arc<Inner<H, C, L, S>>,
    client: Format,
    upstream: Format,
    fast: bool,
    req: &ChatRequest,
    ident: Identity,
    first: Bytes,
    rest: ByteStream,
    mut log: LogGuard<H, C, L, S>,
) -> Response<BodyStream> {
    log.set_status(200);
    // Until the stream ends cleanly, a dropped relay means the client went away.
    log.outcome(Outcome::ClientDisconnected);
    let mode = if fast {
        Mode::Fast(FastStream::new(upstream, req.include_usage))
    } else {
        Mode::Translate {
            dec: Decoder::new(upstream),
            enc: Encoder::for_client(client, req),
            ident,
        }
    };
    let limit = inner.cfg.server.max_upstream_event_bytes;
    let relay = Relay {
        inner,
        client,
        rest,
        first: Some(first),
        parser: framer(upstream, fast, limit),
        mode,
        log,
        frames: Vec::new(),
        events: Vec::new(),
        finished: false,
    };
    let body = futures_util::stream::unfold(relay, |mut r| async move {
        loop {
            if r.finished {
                return None;
            }
            let opening = r.first.is_some();
            let chunk = match r.first.take() {
                Some(f) => Some(Ok(f)),
                // Arm the idle timer only when the upstream has nothing buffered.
                None => match r.rest.next().now_or_never() {
                    Some(x) => x,
                    None => {
                        let idle = r.inner.cfg.timeouts.stream_idle_ms;
                        let next = {
                            let timer = Box::pin(r.inner.clock.sleep(idle));
                            match select(r.rest.next(), timer).await {
                                Either::Left((x, _)) => Ok(x),
                                Either::Right(_) => Err(()),
                            }
                        };
                        match next {
                            Ok(x) => x,
                            Err(()) => {
                                let out = r.fail(ApiError::new(
                                    ErrorKind::Timeout,
                                    format!("upstream stream was silent for {idle} ms"),
                                ));
                                return Some((out, r));
                            }
                        }
                    }
                },
            };
            let mut out = match chunk {
                Some(Ok(bytes)) => r.process(&bytes, false),
                Some(Err(e)) => {
                    let out = r.fail(ApiError::new(
                        ErrorKind::Api,
                        format!("upstream stream broke: {}", e.message),
                    ));
                    return Some((out, r));
                }
                None => {
                    r.finished = true;
                    r.process(&[], true)
                }
            };
            // Coalesce what the upstream already delivered into one write (bounded), so a burst
            // of small chunks costs one syscall instead of one each; nothing waits for more data.
            // An HTTP client hands over one chunk at a time from its connection task, which
            // decodes the next (often already read) only when it runs: so when nothing is ready,
            // let the executor run other tasks a few turns (hyper's needs two), and stop after
            // `IDLE_TURNS` that bring nothing. A turn costs a task switch, a write a syscall.
            // `MAX_TURNS` in all bounds what a steady upstream can hold back. The opening write
            // never waits: the time to the first token is what a streaming client feels.
            let (mut idle, mut turns) = (0, 0);
            while !r.finished && out.len() < COALESCE_LIMIT {
                match r.rest.next().now_or_never() {
                    None if opening || idle == IDLE_TURNS || turns == MAX_TURNS => break,
                    None => {
                        crate::util::YieldOnce::default().await;
                        idle += 1;
                        turns += 1;
                    }
                    Some(Some(Ok(bytes))) => {
                        idle = 0;
                        out.extend_from_slice(&r.process(&bytes, false));
                    }
                    Some(Some(Err(e))) => out.extend_from_slice(&r.fail(ApiError::new(
                        ErrorKind::Api,
                        format!("upstream stream broke: {}", e.message),
                    ))),
                    Some(None) => {
                        r.finished = true;
                        out.extend_from_slice(&r.process(&[], true));
                    }
                }
            }
            if !out.is_empty() {
                return Some((Bytes::from(out), r));
            }
        }
    });
    let mut resp = Response::new(Box::pin(body) as BodyStream);
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static(gw_translate::wire::stream_content_type(client, req)),
    );
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// The frame parser for the upstream's framing (the format names it); the fast path keeps each
/// event's raw bytes to forward them unchanged.
fn framer(upstream: Format, fast: bool, limit: usize) -> Framer {
    match gw_translate::wire::framing(upstream, Operation::Chat) {
        Framing::Sse => Framer::sse(fast, limit),
        Framing::EventStream => Framer::event_stream(limit),
    }
}

impl<H: HttpClient, C: Clock, L: LogSink, S: StateStore> Relay<H, C, L, S> {
    /// Ends the client's stream with an error event in its format.
    fn fail(&mut self, e: ApiError) -> Bytes {
        self.finished = true;
        let mut e = e;
        e.message = self.inner.scrub.scrub(&e.message);
        if !self.log.outcome_is(Outcome::Error) {
            self.log.outcome(Outcome::UpstreamIncomplete);
        }
        let mut out = Vec::new();
        match &mut self.mode {
            Mode::Translate { enc, .. } => enc.encode(&StreamEvent::Error(e), &mut out),
            Mode::Fast(fs) => fs
                .error_encoder(self.client)
                .encode(&StreamEvent::Error(e), &mut out),
        }
        Bytes::from(out)
    }

    fn process(&mut self, bytes: &[u8], end: bool) -> Vec<u8> {
        self.frames.clear();
        // Frames completed before an overflow are still relayed; the error event follows them.
        let overflow = self.parser.feed(bytes, &mut self.frames).err();
        if end && overflow.is_none() {
            self.parser.finish(&mut self.frames);
        }
        let out = Vec::with_capacity(bytes.len() + 64);
        let frames = std::mem::take(&mut self.frames);
        let out = match overflow {
            None => self.relay_frames(&frames, end, out),
            Some(o) => {
                let mut out = self.relay_frames(&frames, false, out);
                if !self.finished {
                    let why = if o.too_large {
                        format!(
                            "upstream stream event too large: {} (server.max_upstream_event_bytes)",
                            o.message
                        )
                    } else {
                        format!("upstream stream framing broke: {}", o.message)
                    };
                    out.extend_from_slice(&self.fail(ApiError::new(ErrorKind::Api, why)));
                }
                out
            }
        };
        self.frames = frames;
        out
    }

    fn relay_frames(&mut self, frames: &[SseFrame], end: bool, mut out: Vec<u8>) -> Vec<u8> {
        match &mut self.mode {
            Mode::Fast(fs) => {
                let mut bad = None;
                for f in frames {
                    match fs.frame(f) {
                        Ok(seen) => {
                            if let Some(u) = seen.usage {
                                self.log.usage(u);
                            }
                            if seen.error {
                                self.log.outcome(Outcome::Error);
                            }
                            if seen.forward && seen.error {
                                // An upstream's error text may echo a credential.
                                match std::str::from_utf8(&f.raw) {
                                    Ok(s) => {
                                        out.extend_from_slice(self.inner.scrub.scrub(s).as_bytes())
                                    }
                                    Err(_) => out.extend_from_slice(&f.raw),
                                }
                            } else if seen.forward {
                                out.extend_from_slice(&f.raw);
                            }
                        }
                        Err(e) => {
                            bad = Some(e);
                            break;
                        }
                    }
                    // The end marker settles the outcome: clients may hang up before the upstream's EOF.
                    if fs.completed() && self.log.outcome_is(Outcome::ClientDisconnected) {
                        self.log.outcome(Outcome::Ok);
                    }
                }
                let completed = fs.completed();
                if let Some(e) = bad {
                    out.extend_from_slice(&self.fail(e));
                } else if end && !completed {
                    out.extend_from_slice(&self.fail(ApiError::new(
                        ErrorKind::Api,
                        "upstream stream ended before it was complete",
                    )));
                } else if end && !self.log.outcome_is(Outcome::Error) {
                    self.log.outcome(Outcome::Ok);
                }
            }
            Mode::Translate { dec, enc, ident } => {
                let mut failed = None;
                for f in frames {
                    self.events.clear();
                    if let Err(e) = dec.feed(f, &mut self.events) {
                        failed = Some(e);
                        break;
                    }
                    for ev in self.events.iter_mut() {
                        ident.fill(ev);
                        scrub_error(ev, &self.inner.scrub);
                    }
                    for ev in &self.events {
                        note_event(ev, &mut self.log);
                        enc.encode(ev, &mut out);
                    }
                }
                if failed.is_none() && end {
                    self.events.clear();
                    match dec.finish(&mut self.events) {
                        Ok(()) => {
                            for ev in self.events.iter_mut() {
                                scrub_error(ev, &self.inner.scrub);
                            }
                            for ev in &self.events {
                                note_event(ev, &mut self.log);
                                enc.encode(ev, &mut out);
                            }
                            if !self.log.outcome_is(Outcome::Error) {
                                self.log.outcome(Outcome::Ok);
                            }
                        }
                        Err(e) => failed = Some(e),
                    }
                }
                if let Some(e) = failed {
                    out.extend_from_slice(&self.fail(e));
                }
            }
        }
        out
    }
}

fn note_event<H: HttpClient, C: Clock, L: LogSink, S: StateStore>(
    ev: &StreamEvent,
    log: &mut LogGuard<H, C, L, S>,
) {
    match ev {
        StreamEvent::Start { usage, .. } => log.usage(*usage),
        StreamEvent::Usage(u) => log.usage(*u),
        StreamEvent::Error(_) => log.outcome(Outcome::Error),
        // The end marker settles the outcome: clients may hang up before the upstream's EOF.
        StreamEvent::End if log.outcome_is(Outcome::ClientDisconnected) => log.outcome(Outcome::Ok),
        _ => {}
    }
}

/// An upstream's error text may echo a credential: it reaches the client scrubbed.
fn scrub_error(ev: &mut StreamEvent, scrub: &gw_auth::Scrubber) {
    if let StreamEvent::Error(e) = ev {
        e.message = scrub.scrub(&e.message);
    }
}
