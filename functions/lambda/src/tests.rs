//! In-process tests of the Lambda handler: a `lambda_http::Request` as the Function URL would
//! build it, the engine's frames read as the streaming runtime reads them, against a tiny
//! OpenAI-speaking upstream on a loopback port.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "tests: failures should be loud, and frame timing is measured on the wall clock"
)]

use super::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONFIG: &str = "
keys: [{name: t, key: pk-lambda-test}]
providers:
  up:
    format: openai
    base_url: ${UP_URL}
    auth: {type: bearer, env: [UP_KEY]}
    models: [m1]
routes:
  slow: [up/m1]
";

/// An upstream that streams three SSE chunks 150 ms apart, each request on its own connection.
async fn upstream() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                // Read the head and a Content-Length body.
                loop {
                    let n = s.read(&mut tmp).await.unwrap();
                    buf.extend_from_slice(&tmp[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len || n == 0 {
                            break;
                        }
                    }
                }
                if !String::from_utf8_lossy(&buf).contains(r#""stream":true"#) {
                    let body = r#"{"id":"c1","object":"chat.completion","created":1,"model":"m1","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                    return;
                }
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
                s.write_all(head.as_bytes()).await.unwrap();
                let chunks = [
                    r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m1","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}"#,
                    r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m1","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}"#,
                    r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
                    "data: [DONE]",
                ];
                for c in chunks {
                    let ev = format!("{c}\n\n");
                    let frame = format!("{:x}\r\n{ev}\r\n", ev.len());
                    if s.write_all(frame.as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
                let _ = s.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    format!("http://{addr}/v1")
}

fn gateway(up: &str) -> Gw {
    let env = |k: &str| match k {
        "UP_URL" => Some(up.to_owned()),
        "UP_KEY" => Some("sk-up-secret".to_owned()),
        _ => None,
    };
    let cfg = gw_route::Config::load(CONFIG, "t.yaml", &env).unwrap();
    Gateway::new(
        cfg,
        NativeHttp::new(2_000).unwrap(),
        SystemClock,
        EmfStderr,
        SharedStore::Memory(MemoryStore::new()),
    )
}

fn request(path: &str, body: Body, key: &str) -> Request {
    let mut r = http::Request::builder()
        .method("POST")
        .uri(format!("https://abc.lambda-url.us-east-1.on.aws{path}"))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let mut ctx = lambda_http::Context::default();
    ctx.request_id = "lambda-req-42".into();
    r.extensions_mut().insert(ctx);
    r
}

/// Reads the body frame by frame, noting when each arrived.
async fn read_frames(
    resp: Response<OutBody>,
) -> (http::StatusCode, http::HeaderMap, Vec<(Duration, Bytes)>) {
    let (parts, mut body) = resp.into_parts();
    let t0 = Instant::now();
    let mut out = Vec::new();
    while let Some(f) = body.frame().await {
        if let Ok(d) = f.unwrap().into_data() {
            out.push((t0.elapsed(), d));
        }
    }
    (parts.status, parts.headers, out)
}

#[tokio::test]
async fn streams_frames_as_they_arrive_and_uses_the_lambda_request_id() {
    let gw = gateway(&upstream().await);
    let body =
        json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let resp = handle(
        &gw,
        request(
            "/v1/chat/completions",
            Body::Text(body.to_string()),
            "pk-lambda-test",
        ),
    )
    .await
    .unwrap();
    let (status, headers, frames) = read_frames(resp).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-request-id"], "lambda-req-42");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text: String = frames
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).to_string())
        .collect();
    assert!(
        text.contains(r#""content":"Hel""#) && text.contains(r#""content":"lo""#),
        "{text}"
    );
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    // Streamed, not buffered: the last frame comes well after the first.
    let (first, last) = (frames.first().unwrap().0, frames.last().unwrap().0);
    assert!(
        last - first >= Duration::from_millis(250),
        "frames at {:?}",
        frames.iter().map(|f| f.0).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn binary_bodies_are_decoded_and_errors_use_the_clients_format() {
    let gw = gateway(&upstream().await);
    let body =
        json!({"model": "slow", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    // Function URLs base64-encode some bodies: lambda_http hands them over as Binary.
    let resp = handle(
        &gw,
        request(
            "/v1/messages",
            Body::Binary(body.to_string().into_bytes()),
            "pk-lambda-test",
        ),
    )
    .await
    .unwrap();
    let (status, _, frames) = read_frames(resp).await;
    assert_eq!(status, 200);
    let all: Vec<u8> = frames.iter().flat_map(|(_, b)| b.to_vec()).collect();
    let v: Value = serde_json::from_slice(&all).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], "Hello");

    let resp = handle(
        &gw,
        request("/v1/messages", Body::Text(body.to_string()), "wrong"),
    )
    .await
    .unwrap();
    let (status, _, frames) = read_frames(resp).await;
    assert_eq!(status, 401);
    let v: Value = serde_json::from_slice(&frames[0].1).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");

    let resp = handle(
        &gw,
        request("/v1/chat/completions", Body::Empty, "pk-lambda-test"),
    )
    .await
    .unwrap();
    let (status, _, frames) = read_frames(resp).await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_slice(&frames[0].1).unwrap();
    assert!(v["error"]["message"].is_string(), "{v}");
}

#[test]
fn config_comes_from_a_path_inline_yaml_or_the_build() {
    let (text, name) = config_source(None).unwrap();
    assert_eq!(text, EMBEDDED_CONFIG);
    assert!(name.contains("built in"));
    let (text, name) = config_source(Some("keys: []\nproviders: {}\n".into())).unwrap();
    assert!(text.starts_with("keys"));
    assert!(name.contains("inline"));
    let dir = std::env::temp_dir().join(format!("gw-lambda-cfg-{}", std::process::id()));
    std::fs::write(&dir, "providers: {}").unwrap();
    let (text, name) = config_source(Some(dir.to_string_lossy().into())).unwrap();
    assert_eq!(text, "providers: {}");
    assert_eq!(name, dir.to_string_lossy());
    let _ = std::fs::remove_file(&dir);
    // One line that is not a file: flow YAML, as a SAM parameter gives it.
    let one_line = "{providers: {}, keys: [{name: a, key: sk-secret}]}";
    let (text, name) = config_source(Some(one_line.into())).unwrap();
    assert_eq!(text, one_line);
    assert!(name.contains("inline") && !name.contains("sk-secret"));
}
