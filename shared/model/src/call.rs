//! What a call is (the operation) and how one failed (whose fault, and what may follow).

use crate::ApiError;
use serde::Serialize;

/// The operations a client can call, in any format that has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// A chat turn (OpenAI Chat Completions, Anthropic Messages).
    Chat,
    /// Counting a chat request's input tokens.
    CountTokens,
    /// A chat turn in the Responses API, to a provider that serves it natively.
    Responses,
    /// Embedding texts as vectors.
    Embeddings,
    /// OpenAI's legacy text completions, forwarded to providers that declare them.
    Completions,
}

impl Operation {
    /// The name used in config (`paths:` keys) and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::CountTokens => "count_tokens",
            Self::Responses => "responses",
            Self::Embeddings => "embeddings",
            Self::Completions => "completions",
        }
    }
}

/// How an upstream delivers a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Server-Sent Events.
    Sse,
    /// AWS event-stream (binary, checksummed messages).
    EventStream,
}

/// Whose fault a failed upstream call was: it decides failover, the breaker and the client's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The request itself (400, 404, 413, 422): another target would refuse it too.
    Client,
    /// The provider (connect errors, timeouts, 408/409/429/5xx/529, garbage).
    Upstream,
    /// The gateway's own credential for the provider (401, 403).
    Credential,
}

impl Fault {
    /// Whether the request may go on to the next target.
    pub fn fails_over(self) -> bool {
        !matches!(self, Self::Client)
    }

    /// Whether the target's breaker counts it as a failure.
    pub fn counts_against_target(self) -> bool {
        !matches!(self, Self::Client)
    }
}

/// A failed upstream call, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamError {
    /// What the client is told (its status is the client's, not necessarily the upstream's).
    pub error: ApiError,
    /// Whose fault.
    pub fault: Fault,
    /// The upstream's status, when a response head arrived.
    pub status: Option<u16>,
    /// Short class for logs (`rate_limited`, `timeout`, `upstream_auth`, ...).
    pub class: &'static str,
    /// The upstream's `Retry-After`, in seconds.
    pub retry_after_secs: Option<u64>,
}
