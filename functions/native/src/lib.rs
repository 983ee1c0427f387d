//! Ports for the native runtimes (the local server and AWS Lambda): outbound HTTP on hyper
//! (rustls, proxies from the environment, gzip), the system clock, log lines to stderr (each at
//! once, or buffered for the local server), and a DynamoDB store configured the AWS way. Both
//! binaries use these, so they cannot drift apart.

use gw_auth::sigv4::Credentials;
use gw_ports::{Clock, LogSink, Timestamp};
use gw_route::Config;
use gw_state::dynamo::DynamoStore;
use gw_state::{Command, MemoryStore, Reply, StateStore, StoreError};
use std::io::Write;
use std::time::Duration;

mod http;
mod logbuf;
pub use http::NativeHttp;
pub use logbuf::BufferedStderr;

/// The configuration built into every binary.
pub const EMBEDDED_CONFIG: &str = include_str!("../../../config/gateway.yaml");

/// The system clock, with tokio timers.
#[derive(Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(
        clippy::disallowed_methods,
        reason = "the adapter is where the clock is read"
    )]
    fn now(&self) -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_micros() as u64)
    }
    async fn sleep(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Log lines to stderr (the terminal locally, CloudWatch on Lambda).
pub struct Stderr;

impl LogSink for Stderr {
    fn emit(&self, line: &str) {
        // One write per line: lines from concurrent requests never interleave.
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        let _ = std::io::stderr().lock().write_all(&buf);
    }
}

/// Log lines to stderr with CloudWatch Embedded Metric Format on request lines (Lambda): the same
/// line, plus an `_aws` block that makes CloudWatch extract metrics from it, with no extra calls.
pub struct EmfStderr;

impl LogSink for EmfStderr {
    fn emit(&self, line: &str) {
        Stderr.emit(&with_emf(line));
    }
}

/// Adds EMF to a request log line (namespace `Gateway`, dimensions `Provider` and `Model`):
/// `Requests`, `Errors` (5xx), `InputTokens`, `OutputTokens`, `CostUSD`, `DurationMs` and
/// `TTFBMs`. Other lines (events, alerts) pass unchanged.
pub fn with_emf(line: &str) -> String {
    let Ok(serde_json::Value::Object(mut m)) = serde_json::from_str::<serde_json::Value>(line)
    else {
        return line.to_owned();
    };
    if !m.contains_key("request_id") || !m.contains_key("status") {
        return line.to_owned();
    }
    let num = |v: Option<&serde_json::Value>| v.and_then(serde_json::Value::as_f64).unwrap_or(0.0);
    let usage = m.get("usage").cloned().unwrap_or_default();
    let input =
        num(usage.get("input")) + num(usage.get("cache_read")) + num(usage.get("cache_write"));
    let text = |k: &str| {
        m.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("none")
            .to_owned()
    };
    let metrics = [
        ("Requests", "Count", 1.0),
        (
            "Errors",
            "Count",
            f64::from(u8::from(num(m.get("status")) >= 500.0)),
        ),
        ("InputTokens", "Count", input),
        ("OutputTokens", "Count", num(usage.get("output"))),
        ("CostUSD", "None", num(m.get("cost_usd"))),
        ("DurationMs", "Milliseconds", num(m.get("duration_ms"))),
        ("TTFBMs", "Milliseconds", num(m.get("ttfb_ms"))),
    ];
    let (provider, model) = (text("provider"), text("upstream_model"));
    m.insert("Provider".into(), provider.into());
    m.insert("Model".into(), model.into());
    for (name, _, v) in &metrics {
        m.insert((*name).into(), (*v).into());
    }
    m.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": num(m.get("ts")) as u64,
            "CloudWatchMetrics": [{
                "Namespace": "Gateway",
                "Dimensions": [["Provider", "Model"], ["Provider"]],
                "Metrics": metrics.iter().map(|(n, u, _)| serde_json::json!({"Name": n, "Unit": u})).collect::<Vec<_>>(),
            }],
        }),
    );
    serde_json::Value::Object(m).to_string()
}

/// Loads a config, interpolating `${VAR}` from the process environment. Key files named by a
/// path (`GOOGLE_APPLICATION_CREDENTIALS=/path/key.json`) are read here.
pub fn load_config(text: &str, name: &str) -> Result<Config, String> {
    Config::load(text, name, &env_or_file).map_err(|e| e.to_string())
}

/// A variable, or for `file:<path>` that file's contents.
pub fn env_or_file(k: &str) -> Option<String> {
    match k.strip_prefix(gw_route::FILE_PREFIX) {
        Some(path) => std::fs::read_to_string(path).ok(),
        None => std::env::var(k).ok(),
    }
}

/// A store every native runtime can share with others, or keep to itself.
pub enum SharedStore {
    /// This process only.
    Memory(MemoryStore),
    /// One DynamoDB table for every instance (gateways, Lambda invocations).
    Dynamo(DynamoStore<NativeHttp, SystemClock>),
}

impl StateStore for SharedStore {
    async fn apply(&self, key: &str, cmd: &Command, now_ms: u64) -> Result<Reply, StoreError> {
        match self {
            Self::Memory(s) => s.apply_now(key, cmd, now_ms),
            Self::Dynamo(s) => s.apply(key, cmd, now_ms).await,
        }
    }
}

/// A DynamoDB table configured the AWS way: `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (Lambda sets all four), and
/// `AWS_ENDPOINT_URL_DYNAMODB` (or `AWS_ENDPOINT_URL`) for DynamoDB Local.
pub fn dynamo_from_env(
    table: &str,
    http: &NativeHttp,
) -> Result<(DynamoStore<NativeHttp, SystemClock>, String), String> {
    dynamo_from(table, http, &|k| std::env::var(k).ok())
}

/// [`dynamo_from_env`] over any variable lookup (tests).
pub fn dynamo_from(
    table: &str,
    http: &NativeHttp,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(DynamoStore<NativeHttp, SystemClock>, String), String> {
    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    let region = var("AWS_REGION")
        .or_else(|| var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".into());
    let endpoint = var("AWS_ENDPOINT_URL_DYNAMODB")
        .or_else(|| var("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| format!("https://dynamodb.{region}.amazonaws.com"));
    let creds = Credentials {
        access_key_id: var("AWS_ACCESS_KEY_ID").ok_or("DynamoDB state needs AWS_ACCESS_KEY_ID")?,
        secret_access_key: var("AWS_SECRET_ACCESS_KEY")
            .ok_or("DynamoDB state needs AWS_SECRET_ACCESS_KEY")?,
        session_token: var("AWS_SESSION_TOKEN"),
    };
    let store = DynamoStore::new(
        http.clone(),
        SystemClock,
        endpoint.clone(),
        region,
        table.to_owned(),
        creds,
    );
    Ok((store, endpoint))
}

#[cfg(test)]
mod emf_tests {
    use super::with_emf;
    use serde_json::{Value, json};

    #[test]
    fn request_lines_carry_embedded_metrics_and_other_lines_pass_unchanged() {
        let line = json!({"ts": 1796233510500u64, "request_id": "r1", "provider": "openai", "upstream_model": "gpt-4o",
            "status": 502, "duration_ms": 12.5, "ttfb_ms": 3.0, "cost_usd": 0.01,
            "usage": {"input": 10, "output": 5, "cache_read": 4, "cache_write": 0, "reasoning": 0}})
        .to_string();
        let v: Value = serde_json::from_str(&with_emf(&line)).unwrap();
        assert_eq!(v["request_id"], "r1", "the line itself is kept");
        assert_eq!(
            (&v["Provider"], &v["Model"]),
            (&json!("openai"), &json!("gpt-4o"))
        );
        assert_eq!(
            (
                &v["Requests"],
                &v["Errors"],
                &v["InputTokens"],
                &v["OutputTokens"]
            ),
            (&json!(1.0), &json!(1.0), &json!(14.0), &json!(5.0))
        );
        let aws = &v["_aws"];
        assert_eq!(aws["Timestamp"], 1796233510500u64);
        let m = &aws["CloudWatchMetrics"][0];
        assert_eq!(m["Namespace"], "Gateway");
        assert_eq!(m["Dimensions"][0], json!(["Provider", "Model"]));
        let names: Vec<&str> = m["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["Name"].as_str().unwrap())
            .collect();
        for n in &names {
            assert!(
                v.get(*n).is_some(),
                "every declared metric has a value: {n}"
            );
        }
        let event = json!({"event": "budget_alert", "threshold_percent": 50}).to_string();
        assert_eq!(with_emf(&event), event);
        assert_eq!(with_emf("not json"), "not json");
        // A refused request has no provider: the dimension still has a value.
        let refused = json!({"ts": 1, "request_id": "r2", "status": 401}).to_string();
        assert_eq!(
            serde_json::from_str::<Value>(&with_emf(&refused)).unwrap()["Provider"],
            "none"
        );
    }
}
