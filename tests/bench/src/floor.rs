//! The floor: a pass-through HTTP/1 proxy on the gateway's own stack (a current-thread runtime
//! per core, hyper server, pooled hyper client, no Nagle) that does nothing else. It forwards
//! every request to the mock's OpenAI path and streams the answer back unread. What it costs per
//! request is what any proxy on this stack and kernel pays; the gateway's figure above it is the
//! gateway's own work.

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;

/// Serves on a free port with one thread per core, each with its own `SO_REUSEPORT` listener and
/// upstream pool; prints the address once all listen, and never returns.
pub(crate) fn serve(upstream: SocketAddr) -> ! {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let addr = SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
    let (ready, listening) = std::sync::mpsc::channel();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let ready = ready.clone();
            std::thread::spawn(move || run(addr, upstream, ready))
        })
        .collect();
    for _ in 0..threads {
        listening.recv().expect("a floor thread listens");
    }
    println!("{addr}");
    for h in handles {
        let _ = h.join();
    }
    std::process::exit(0)
}

fn run(addr: SocketAddr, upstream: SocketAddr, ready: std::sync::mpsc::Sender<()>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async move {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket.set_reuseport(true).expect("SO_REUSEPORT");
        socket.bind(addr).expect("bind the floor's port");
        let listener = socket.listen(1024).expect("listen");
        let _ = ready.send(());
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(512)
            .build(connector);
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            let client = client.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<Incoming>| {
                    let client = client.clone();
                    async move {
                        let (mut parts, body) = req.into_parts();
                        let uri = format!("http://{upstream}/openai{}", parts.uri.path());
                        parts.uri = uri.parse().expect("an upstream URI");
                        client.request(http::Request::from_parts(parts, body)).await
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    })
}
