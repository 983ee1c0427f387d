//! Thread per core: each worker thread runs a current-thread tokio runtime that owns its
//! connections, their requests and (through the per-thread HTTP client) their upstream
//! connections, so a request never crosses threads and never wakes another core. The accept
//! loop (main thread) gives each new connection to the worker holding the fewest.

use crate::conn;
use crate::{Gw, serve};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Largest request head (request line and headers) the server reads.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A connection handed to a worker, with its slot under the connection cap.
struct Handoff {
    stream: std::net::TcpStream,
    permit: tokio::sync::OwnedSemaphorePermit,
}

struct Worker {
    tx: mpsc::UnboundedSender<Handoff>,
    /// Connections it holds now.
    open: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<()>,
}

/// The worker threads.
pub(crate) struct Workers {
    workers: Vec<Worker>,
    stop: watch::Sender<bool>,
}

/// Deferred state writes still running on a worker: waited for at shutdown.
#[derive(Default)]
struct Pending(AtomicUsize, tokio::sync::Notify);

impl Workers {
    /// Starts `n` workers serving with `gw`.
    pub(crate) fn start(n: usize, gw: &Gw, deadlines: conn::Deadlines, seed: u64) -> Self {
        let (stop, stopped) = watch::channel(false);
        let workers = (0..n.max(1))
            .map(|i| {
                let (tx, rx) = mpsc::unbounded_channel();
                let open = Arc::new(AtomicUsize::new(0));
                let (gw, o, stopped) = (gw.clone(), Arc::clone(&open), stopped.clone());
                // Each worker numbers its requests from its own seed.
                let ids = seed ^ (i as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93);
                let thread = std::thread::Builder::new()
                    .name(format!("worker-{i}"))
                    .spawn(move || run(rx, stopped, gw, o, deadlines, ids))
                    .unwrap_or_else(|e| {
                        eprintln!("gateway: cannot start a worker thread: {e}");
                        std::process::exit(1);
                    });
                Worker { tx, open, thread }
            })
            .collect();
        Self { workers, stop }
    }

    /// Gives a new connection to the worker holding the fewest.
    pub(crate) fn dispatch(
        &self,
        stream: tokio::net::TcpStream,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let Ok(stream) = stream.into_std() else {
            return;
        };
        let Some(w) = self
            .workers
            .iter()
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
        else {
            return;
        };
        w.open.fetch_add(1, Ordering::Relaxed);
        let _ = w.tx.send(Handoff { stream, permit });
    }

    /// Stops taking connections, lets in-flight requests finish (up to 30 s) and their deferred
    /// writes too (up to 5 s more), then ends the threads.
    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(true);
        let threads: Vec<_> = self.workers.into_iter().map(|w| w.thread).collect();
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

fn run(
    mut rx: mpsc::UnboundedReceiver<Handoff>,
    mut stopped: watch::Receiver<bool>,
    gw: Gw,
    open: Arc<AtomicUsize>,
    deadlines: conn::Deadlines,
    seed: u64,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gateway: cannot start a worker runtime: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(async move {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let pending = Arc::new(Pending::default());
        let counter = Arc::new(AtomicU64::new(seed));
        loop {
            tokio::select! {
                got = rx.recv() => {
                    let Some(h) = got else { break };
                    let Ok(stream) = tokio::net::TcpStream::from_std(h.stream) else {
                        open.fetch_sub(1, Ordering::Relaxed);
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let (gw, counter, pending) = (gw.clone(), counter.clone(), pending.clone());
                    let state = conn::ConnState::new();
                    let svc_state = state.clone();
                    let svc = service_fn(move |req: http::Request<Incoming>| {
                        let (gw, pending) = (gw.clone(), pending.clone());
                        let busy = svc_state.begin();
                        let id = format!("req_{:016x}", counter.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed));
                        async move {
                            let (resp, after) = serve(&gw, req, id, busy).await;
                            if let Some(after) = after {
                                pending.0.fetch_add(1, Ordering::Relaxed);
                                tokio::spawn(async move {
                                    after.await;
                                    if pending.0.fetch_sub(1, Ordering::Relaxed) == 1 {
                                        pending.1.notify_waiters();
                                    }
                                });
                            }
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let io = TokioIo::new(conn::Io::new(stream, state.clone()));
                    // A 64 KiB head at most (hyper's default is ~400 KiB): larger gets hyper's 431.
                    let conn = http1::Builder::new()
                        .keep_alive(true)
                        .max_buf_size(MAX_HEAD_BYTES)
                        .serve_connection(io, svc);
                    let fut = graceful.watch(conn);
                    let (open, permit) = (open.clone(), h.permit);
                    tokio::spawn(async move {
                        conn::guard(fut, state, deadlines).await;
                        open.fetch_sub(1, Ordering::Relaxed);
                        drop(permit);
                    });
                }
                _ = stopped.changed() => break,
            }
        }
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(Duration::from_secs(30)) => eprintln!("gateway: in-flight requests still running after 30 s; exiting"),
        }
        // The answers' deferred writes (breaker outcomes, limit corrections).
        let drained = async {
            while pending.0.load(Ordering::Relaxed) > 0 {
                let woken = pending.1.notified();
                if pending.0.load(Ordering::Relaxed) == 0 {
                    break;
                }
                woken.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), drained).await;
    });
}
