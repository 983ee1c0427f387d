//! The client against small servers on 127.0.0.1: bodies both ways, decoding, proxies (forward
//! and CONNECT, with their credentials, and NO_PROXY), and how failures are sorted.

use super::*;
use hyper_util::client::proxy::matcher::Matcher;
use std::io::Write as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads one request (head and a content-length body); returns the head and the body.
async fn read_request(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0usize);
            let mut body = buf[end + 4..].to_vec();
            while body.len() < len {
                let n = s.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            return (head, body);
        }
        let n = s.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return (String::from_utf8_lossy(&buf).to_string(), Vec::new());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A server answering each connection's first request with `answer`, reporting what it got.
async fn server(
    answer: Vec<u8>,
) -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
) {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let got = read_request(&mut s).await;
            let _ = tx.send(got);
            let _ = s.write_all(&answer).await;
        }
    });
    (addr, rx)
}

fn ok(body: &[u8], extra: &str) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

async fn text(resp: http::Response<ByteStream>) -> Result<String, TransportError> {
    let mut out = Vec::new();
    let mut b = resp.into_body();
    while let Some(c) = b.next().await {
        out.extend_from_slice(&c?);
    }
    Ok(String::from_utf8_lossy(&out).to_string())
}

fn post(uri: &str, body: &'static str) -> http::Request<Bytes> {
    http::Request::post(uri)
        .header("authorization", "Bearer sk-test")
        .body(Bytes::from_static(body.as_bytes()))
        .unwrap_or_default()
}

fn client(proxies: Matcher, timeout_ms: u64) -> NativeHttp {
    match connect::Connector::with_proxies(timeout_ms, proxies) {
        Ok(c) => NativeHttp::on(c),
        Err(e) => panic!("{e}"),
    }
}

fn no_proxies() -> Matcher {
    Matcher::builder().build()
}

#[tokio::test]
async fn sends_whole_and_streamed_bodies_and_reads_the_answer() {
    let (addr, mut got) = server(ok(b"{\"ok\":true}", "")).await;
    let c = client(no_proxies(), 2_000);
    let resp = c
        .send(post(&format!("http://{addr}/v1/chat?x=1"), "{\"a\":1}"))
        .await;
    let resp = resp.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 200);
    assert_eq!(text(resp).await.ok().as_deref(), Some("{\"ok\":true}"));
    let (head, body) = got.recv().await.unwrap_or_default();
    assert!(head.starts_with("POST /v1/chat?x=1 HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("accept-encoding: gzip, deflate"),
        "{head}"
    );
    assert_eq!(body, b"{\"a\":1}");

    let parts: Vec<Result<Bytes, TransportError>> = vec![
        Ok(Bytes::from_static(b"{\"b\":")),
        Ok(Bytes::from_static(b"2}")),
    ];
    let streamed: ByteStream = Box::pin(futures_util::stream::iter(parts));
    let req = http::Request::post(format!("http://{addr}/up"))
        .header("content-length", "7")
        .body(streamed)
        .unwrap_or_else(|e| panic!("{e}"));
    let resp = c
        .send_streaming(req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 200);
    let (head, body) = got.recv().await.unwrap_or_default();
    assert!(head.starts_with("POST /up HTTP/1.1"), "{head}");
    assert_eq!(body, b"{\"b\":2}");
}

#[tokio::test]
async fn a_gzip_answer_comes_back_decoded_without_its_encoding_headers() {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b"{\"msg\":\"unzipped\"}").unwrap_or_default();
    let z = e.finish().unwrap_or_default();
    let (addr, _got) = server(ok(&z, "content-encoding: gzip\r\n")).await;
    let resp = client(no_proxies(), 2_000)
        .send(post(&format!("http://{addr}/"), "{}"))
        .await;
    let resp = resp.unwrap_or_else(|e| panic!("{e}"));
    assert!(resp.headers().get("content-encoding").is_none());
    assert!(resp.headers().get("content-length").is_none());
    assert_eq!(
        text(resp).await.ok().as_deref(),
        Some("{\"msg\":\"unzipped\"}")
    );
}

#[tokio::test]
async fn a_plain_request_goes_to_the_forward_proxy_in_absolute_form_with_its_credentials() {
    let (proxy, mut got) = server(ok(b"via proxy", "")).await;
    let m = Matcher::builder()
        .http(format!("http://user:pa55@{proxy}"))
        .build();
    let resp = client(m, 2_000)
        .send(post("http://upstream.test:8080/v1/x", "{}"))
        .await;
    let resp = resp.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text(resp).await.ok().as_deref(), Some("via proxy"));
    let (head, _) = got.recv().await.unwrap_or_default();
    assert!(
        head.starts_with("POST http://upstream.test:8080/v1/x HTTP/1.1\r\n"),
        "{head}"
    );
    // base64("user:pa55")
    assert!(
        head.contains("proxy-authorization: Basic dXNlcjpwYTU1"),
        "{head}"
    );
    assert!(head.contains("authorization: Bearer sk-test"), "{head}");
}

#[tokio::test]
async fn an_https_request_tunnels_through_connect_and_no_proxy_goes_direct() {
    // The proxy refuses the tunnel: the CONNECT it saw is what matters here.
    let (proxy, mut got) =
        server(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n".to_vec()).await;
    let (direct, mut direct_got) = server(ok(b"direct", "")).await;
    let m = Matcher::builder()
        .all(format!("http://user:pa55@{proxy}"))
        .no("127.0.0.1")
        .build();
    let c = client(m, 2_000);
    let err = c
        .send(post("https://api.example.com/v1/x", "{}"))
        .await
        .err();
    assert_eq!(err.map(|e| e.kind), Some(TransportErrorKind::Connect));
    let (head, _) = got.recv().await.unwrap_or_default();
    assert!(
        head.starts_with("CONNECT api.example.com:443 HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.contains("Proxy-Authorization: Basic dXNlcjpwYTU1"),
        "{head}"
    );

    let resp = c.send(post(&format!("http://{direct}/d"), "{}")).await;
    assert_eq!(
        text(resp.unwrap_or_else(|e| panic!("{e}")))
            .await
            .ok()
            .as_deref(),
        Some("direct")
    );
    let (head, _) = direct_got.recv().await.unwrap_or_default();
    assert!(head.starts_with("POST /d HTTP/1.1"), "{head}");
}

#[tokio::test]
async fn the_connect_timeout_bounds_the_whole_handshake() {
    // A proxy that accepts and never answers the CONNECT.
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let proxy = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    let c = client(
        Matcher::builder().https(format!("http://{proxy}")).build(),
        300,
    );
    // Well before the engine's own attempt timeout would end it.
    let sent = tokio::time::timeout(
        Duration::from_secs(2),
        c.send(post("https://api.example.com/", "{}")),
    )
    .await;
    let err = sent.ok().and_then(|r| r.err());
    assert_eq!(
        err.as_ref().map(|e| e.kind),
        Some(TransportErrorKind::Timeout),
        "{err:?}"
    );
}

#[tokio::test]
async fn refused_connections_are_connect_errors_without_the_url() {
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(9);
    let err = client(no_proxies(), 2_000)
        .send(post(
            &format!("http://127.0.0.1:{port}/v1?key=secret-in-query"),
            "{}",
        ))
        .await
        .err();
    let err = err.unwrap_or_else(|| TransportError::new(TransportErrorKind::Other, "sent"));
    assert_eq!(err.kind, TransportErrorKind::Connect, "{err:?}");
    assert!(!err.message.contains("secret-in-query"), "{}", err.message);
}

#[test]
fn proxy_credentials_never_go_with_an_https_request() {
    // ALL_PROXY with credentials: the plain request carries them to the proxy; the https one
    // goes through a tunnel, where a Proxy-Authorization header would reach the provider.
    let m = Matcher::builder()
        .all("http://user:pa55@127.0.0.1:3128")
        .build();
    let c = connect::Connector::with_proxies(1_000, m).unwrap_or_else(|e| panic!("{e}"));
    let p = c.proxies().unwrap_or_else(|| panic!("no proxies"));
    let plain = http::Uri::from_static("http://upstream.test/v1");
    let tls = http::Uri::from_static("https://api.openai.com/v1");
    assert!(p.forwarding(&plain).and_then(|i| i.basic_auth()).is_some());
    assert!(p.forwarding(&tls).is_none());
}

#[test]
fn proxy_variables_with_other_schemes_are_refused() {
    let vars = |v: &[(&'static str, &str)]| {
        connect::unsupported_proxy(v.iter().map(|&(k, v)| (k, v.to_owned())))
    };
    assert!(
        vars(&[
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("http_proxy", "proxy:3128")
        ])
        .is_none()
    );
    assert!(vars(&[("HTTP_PROXY", "HTTP://proxy:3128")]).is_none());
    let why = vars(&[
        ("HTTPS_PROXY", "http://p:1"),
        ("all_proxy", "ftp://user:pw@p:21"),
    ]);
    let why = why.unwrap_or_default();
    assert!(why.starts_with("all_proxy: a ftp:// proxy"), "{why}");
    assert!(!why.contains("pw"), "{why}");
}

#[test]
fn only_http_proxies_are_accepted() {
    let m = Matcher::builder().all("socks5://127.0.0.1:1080").build();
    let err = connect::Connector::with_proxies(1_000, m)
        .err()
        .unwrap_or_default();
    assert!(err.contains("only http:// proxies"), "{err}");
}
