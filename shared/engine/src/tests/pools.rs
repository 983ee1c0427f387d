//! Credential pools: a provider's keys taken in turn (or the first first), each with its own
//! breaker; a 429 with `retry-after` cools one key down in the store while the others serve.

use super::*;

const POOL: &str = "
providers:
  oa:
    format: openai
    base_url: 'http://oa'
    auth: {type: bearer, env: [OA_KEY]}
    pool: {env: [OA_KEY_2, OA_KEY_UNSET, OA_KEY_3], strategy: STRATEGY}
    models: [gpt-x]
";

/// Answers 429 with `retry-after: 30` to the keys in `busy`, a small completion to the others;
/// records the key of every call.
#[derive(Default)]
struct ByKey {
    busy: Vec<&'static str>,
    seen: Mutex<Vec<String>>,
}

impl gw_ports::HttpClient for ByKey {
    fn send(
        &self,
        req: Request<Bytes>,
    ) -> impl std::future::Future<Output = Result<http::Response<ByteStream>, TransportError>> + Send
    {
        let key = req.headers()["authorization"]
            .to_str()
            .unwrap()
            .trim_start_matches("Bearer ")
            .to_owned();
        self.seen.lock().unwrap().push(key.clone());
        let busy = self.busy.contains(&key.as_str());
        async move {
            let body: &'static str = if busy {
                r#"{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}"#
            } else {
                r#"{"id":"c1","object":"chat.completion","created":1,"model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#
            };
            let mut r = http::Response::new(Box::pin(futures_util::stream::iter([Ok(
                Bytes::from_static(body.as_bytes()),
            )])) as ByteStream);
            if busy {
                *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                r.headers_mut().insert("retry-after", "30".parse().unwrap());
            }
            Ok(r)
        }
    }
}

fn pool_gateway(
    strategy: &str,
    busy: Vec<&'static str>,
) -> Gateway<ByKey, TestClock, Lines, MemoryStore> {
    let env = |k: &str| match k {
        "OA_KEY" => Some("key-a".to_owned()),
        "OA_KEY_2" => Some("key-b".to_owned()),
        "OA_KEY_3" => Some("key-c".to_owned()),
        "GATEWAY_PROXY_KEY" => Some("proxy-key-123".to_owned()),
        _ => None,
    };
    let cfg = Config::load(&POOL.replace("STRATEGY", strategy), "t.yaml", &env).unwrap();
    let http = ByKey {
        busy,
        ..ByKey::default()
    };
    Gateway::new(
        cfg,
        http,
        TestClock { fire: false },
        Lines::default(),
        MemoryStore::new(),
    )
}

fn chat() -> Request<Bytes> {
    post(
        "/v1/chat/completions",
        json!({"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}),
    )
}

fn seen(g: &Gateway<ByKey, TestClock, Lines, MemoryStore>) -> Vec<String> {
    g.inner.http.seen.lock().unwrap().clone()
}

#[test]
fn round_robin_takes_the_keys_in_turn_and_skips_unset_ones() {
    let g = pool_gateway("round_robin", vec![]);
    assert_eq!(g.config().providers[0].credentials.len(), 3);
    for _ in 0..4 {
        assert_eq!(run(&g, chat()).0, 200);
    }
    assert_eq!(seen(&g), ["key-a", "key-b", "key-c", "key-a"]);
}

#[test]
fn fill_first_uses_the_first_key_while_it_works() {
    let g = pool_gateway("fill_first", vec![]);
    for _ in 0..3 {
        assert_eq!(run(&g, chat()).0, 200);
    }
    assert_eq!(seen(&g), ["key-a", "key-a", "key-a"]);
}

#[test]
fn a_429_cools_one_key_down_while_the_others_serve() {
    let g = pool_gateway("fill_first", vec!["key-a"]);
    let lines = g.inner.log.clone();
    // key-a answers 429 (retry-after 30): the same request goes on to key-b.
    assert_eq!(run(&g, chat()).0, 200);
    let log = last_log(&lines);
    let tried: Vec<(&str, &str)> = log["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["credential"].as_str().unwrap(),
                a["error_class"].as_str().unwrap_or("ok"),
            )
        })
        .collect();
    assert_eq!(tried, [("OA_KEY", "rate_limited"), ("OA_KEY_2", "ok")]);
    // The cooldown is in the store: later requests skip key-a without calling it.
    for _ in 0..3 {
        assert_eq!(run(&g, chat()).0, 200);
    }
    assert_eq!(seen(&g), ["key-a", "key-b", "key-b", "key-b", "key-b"]);
    let log = last_log(&lines);
    assert_eq!(log["attempts"][0]["error_class"], "circuit_open");
    // In the store, under the key's fingerprint (never the key), until 30 s from now.
    let bkey = format!("breaker:oa:{}", gw_auth::fingerprint("key-a"));
    let r = g
        .inner
        .store
        .apply_now(
            &bkey,
            &gw_state::Command::Admit(g.config().breaker.clone()),
            1_700_000_000_000 + 29_000,
        )
        .unwrap();
    assert_eq!(
        r,
        Reply::Reject {
            retry_after_ms: 1_000
        }
    );
}

#[test]
fn every_key_busy_is_the_upstreams_429_with_its_retry_after() {
    let g = pool_gateway("round_robin", vec!["key-a", "key-b", "key-c"]);
    let (status, headers, _) = run(&g, chat());
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "30");
    assert_eq!(seen(&g).len(), 3, "each key tried once");
}

#[test]
fn a_pool_needs_a_keyed_scheme() {
    let yaml = "
providers:
  b:
    format: bedrock
    base_url: 'http://b'
    auth: {type: aws_sigv4, service: bedrock, region: us-east-1}
    pool: {env: [X]}
";
    let e = Config::load(yaml, "t.yaml", &|_| None).unwrap_err();
    assert_eq!(e.path, "providers.b.pool");
}
