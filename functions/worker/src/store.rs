//! State in Durable Objects: one object per key (so keys never contend), each running
//! `gw_state::apply` on its own SQLite storage.
//!
//! The object reads, applies and writes through the synchronous SQL API, with no `await` in
//! between: nothing else can run inside the object meanwhile, so every command is atomic
//! without transactions or retries.

use gw_state::{Command, Record, Reply, StateStore, StoreError, apply, is_live};
use serde::{Deserialize, Serialize};
use worker::{
    DurableObject, Env, Method, ObjectNamespace, Request, RequestInit, Response, SqlStorage,
    SqlStorageValue, State, durable_object, wasm_bindgen::JsValue,
};

/// The Durable Object binding in wrangler.toml.
pub(crate) const BINDING: &str = "STATE";

/// What the worker sends the object.
#[derive(Serialize)]
struct CallRef<'a> {
    key: &'a str,
    cmd: &'a Command,
    now_ms: u64,
}

/// What the object receives.
#[derive(Deserialize)]
struct Call {
    key: String,
    cmd: Command,
    now_ms: u64,
}

/// The store the engine sees: each command is one `fetch` to the key's object.
pub(crate) struct DoStore {
    ns: ObjectNamespace,
}

impl DoStore {
    pub(crate) fn new(env: &Env) -> Result<Self, String> {
        env.durable_object(BINDING)
            .map(|ns| Self { ns })
            .map_err(|e| format!("Durable Object binding `{BINDING}`: {e}"))
    }
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

impl StateStore for DoStore {
    async fn apply(&self, key: &str, cmd: &Command, now_ms: u64) -> Result<Reply, StoreError> {
        let body = serde_json::to_string(&CallRef { key, cmd, now_ms }).map_err(err)?;
        let stub = self.ns.id_from_name(key).and_then(|id| id.get_stub());
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(JsValue::from_str(&body)));
        // The host is never resolved: a stub's fetch goes straight to the object.
        let req = Request::new_with_init("https://state.internal/apply", &init).map_err(err)?;
        let mut resp = stub
            .map_err(err)?
            .fetch_with_request(req)
            .await
            .map_err(err)?;
        let text = resp.text().await.map_err(err)?;
        if resp.status_code() != 200 {
            return Err(StoreError(format!(
                "Durable Object answered {}: {text}",
                resp.status_code()
            )));
        }
        serde_json::from_str(&text).map_err(err)
    }
}

/// The Durable Object class (`class_name = "GatewayState"`).
#[durable_object]
pub struct GatewayState {
    sql: SqlStorage,
    /// Table creation, done once per object start; its error is reported on every call.
    ready: Result<(), String>,
}

impl DurableObject for GatewayState {
    fn new(state: State, _env: Env) -> Self {
        let sql = state.storage().sql();
        let ready = sql
            .exec(
                "CREATE TABLE IF NOT EXISTS records (key TEXT PRIMARY KEY, record TEXT NOT NULL)",
                None,
            )
            .map(drop)
            .map_err(|e| e.to_string());
        Self { sql, ready }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        // The only await: reading the call, before any storage access. Parsed by serde_json, not
        // by JavaScript: limits up to u64::MAX must not pass through an f64.
        let text = match req.text().await {
            Ok(t) => t,
            Err(e) => return Response::error(format!("bad call: {e}"), 400),
        };
        let call: Call = match serde_json::from_str(&text) {
            Ok(c) => c,
            Err(e) => return Response::error(format!("bad call: {e}"), 400),
        };
        match self.run(&call) {
            Ok(reply) => match serde_json::to_string(&reply) {
                Ok(body) => Response::ok(body),
                Err(e) => Response::error(e.to_string(), 500),
            },
            Err(e) => Response::error(e, 500),
        }
    }
}

impl GatewayState {
    /// Read, apply, write: synchronous, hence atomic inside the object.
    fn run(&self, call: &Call) -> Result<Reply, String> {
        self.ready.clone()?;
        let stored: Option<String> = self
            .sql
            .exec(
                "SELECT record FROM records WHERE key = ?",
                vec![SqlStorageValue::from(call.key.as_str())],
            )
            .map_err(|e| e.to_string())?
            .raw()
            .next()
            .transpose()
            .map_err(|e| e.to_string())?
            .and_then(|row| match row.into_iter().next() {
                Some(SqlStorageValue::String(s)) => Some(s),
                _ => None,
            });
        let prev: Option<Record> = stored.as_deref().and_then(|s| serde_json::from_str(s).ok());
        let live = prev.filter(|r| is_live(r, call.now_ms));
        let (next, reply) = apply(live.as_ref(), &call.cmd, call.now_ms);
        match next {
            Some(rec) => {
                let json = serde_json::to_string(&rec).map_err(|e| e.to_string())?;
                self.sql
                    .exec(
                        "INSERT OR REPLACE INTO records (key, record) VALUES (?, ?)",
                        vec![
                            SqlStorageValue::from(call.key.as_str()),
                            SqlStorageValue::from(json),
                        ],
                    )
                    .map_err(|e| e.to_string())?;
            }
            // Nothing to keep, but a dead (or unreadable) record is still on disk: drop it.
            None if stored.is_some() && live.is_none() => {
                self.sql
                    .exec(
                        "DELETE FROM records WHERE key = ?",
                        vec![SqlStorageValue::from(call.key.as_str())],
                    )
                    .map_err(|e| e.to_string())?;
            }
            None => {}
        }
        Ok(reply)
    }
}
