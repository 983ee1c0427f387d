//! The canonical model: a lossless superset of every wire format's request, response and stream.
//!
//! Formats decode into these types and encode from them (hub and spoke), so N formats need 2N
//! converters instead of N². Opaque provider data (signatures, cache marks, unknown fields) is
//! carried verbatim so it survives a round trip byte for byte.

mod call;
mod embed;
mod estimate;

pub use call::{Fault, Framing, Operation, UpstreamError};
pub use embed::{EmbedInput, EmbedRequest, EmbedResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The wire formats the gateway speaks, on either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// OpenAI Chat Completions (and every OpenAI-compatible provider).
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini `generateContent` (Google AI Studio).
    Gemini,
    /// Cohere v2 chat.
    Cohere,
    /// AWS Bedrock Converse.
    Bedrock,
    /// The OpenAI Responses API.
    Responses,
    /// Replicate predictions (upstream only: a prompt in, text out).
    Replicate,
}

impl Format {
    /// The short name used in config and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Cohere => "cohere",
            Self::Bedrock => "bedrock",
            Self::Responses => "responses",
            Self::Replicate => "replicate",
        }
    }
}

/// A chat request in canonical form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    /// The model the client asked for (before routing).
    pub model: String,
    /// System prompt parts, in order (OpenAI system/developer messages, Anthropic `system`).
    pub system: Vec<Part>,
    /// The conversation; roles alternate freely, tool results live in user turns.
    pub messages: Vec<Message>,
    /// Tool definitions.
    pub tools: Vec<Tool>,
    /// How the model may use the tools.
    pub tool_choice: Option<ToolChoice>,
    /// `Some(false)` forbids parallel tool calls.
    pub parallel_tool_calls: Option<bool>,
    /// Sampling and length parameters.
    pub sampling: Sampling,
    /// Structured output request.
    pub response_format: Option<ResponseFormat>,
    /// Reasoning / extended thinking request.
    pub reasoning: Option<Reasoning>,
    /// Whether the client wants a stream.
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`: the client wants a final usage chunk.
    pub include_usage: bool,
    /// Gemini `:streamGenerateContent` without `alt=sse`: the client reads one JSON array.
    pub stream_json_array: bool,
    /// End-user id (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user: Option<String>,
    /// Tool namespaces the client declared (Responses `namespace` tools): their functions are in
    /// `tools` as `{namespace}__{name}`, and calls to them go back to the client split again.
    pub tool_namespaces: Vec<String>,
    /// Fields this model has no slot for, with the format they came from; passed through only
    /// to an upstream of the same format.
    pub extra: Extra,
}

impl ChatRequest {
    /// The parts of mid-conversation instructions, in order.
    pub fn mid_system(&self) -> impl Iterator<Item = &Part> {
        self.messages
            .iter()
            .filter(|m| m.role == Role::System)
            .flat_map(|m| m.content.iter())
    }
}

/// Unknown top-level fields and the format they were written in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extra {
    /// The format that produced `fields`; `None` when empty.
    pub format: Option<Format>,
    /// The fields, verbatim and in their original order.
    pub fields: Map<String, Value>,
}

/// One conversation turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Who spoke.
    pub role: Role,
    /// What was said, in order.
    pub content: Vec<Part>,
}

/// Speaker of a turn. Tool results are `User` turns holding [`Part::ToolResult`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The human / calling program.
    User,
    /// The model.
    Assistant,
    /// Instructions in the middle of the conversation (OpenAI `system`/`developer` messages after
    /// the first turn, Anthropic's mid-conversation system messages). Formats with no place for
    /// them fold them into the system prompt.
    System,
}

/// A content part of a message or of the system prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    /// Plain text.
    Text {
        /// The text.
        text: String,
        /// Anthropic `cache_control`, verbatim.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        cache: Option<Value>,
    },
    /// An image, by URL or inline bytes.
    Image {
        /// Where the pixels are.
        source: ImageSource,
        /// OpenAI `detail` hint.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        detail: Option<String>,
        /// Anthropic `cache_control`, verbatim.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        cache: Option<Value>,
    },
    /// A block this model has no slot for (Anthropic `document`, server tool results, ...),
    /// kept verbatim with the format it is written in.
    Opaque {
        /// The format of `block`.
        format: Format,
        /// The whole block.
        block: Value,
    },
    /// A tool call made by the model.
    ToolUse {
        /// Call id, echoed by the result.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments as JSON text, verbatim (OpenAI sends a string; it may not even be valid JSON).
        arguments: String,
        /// Anthropic `cache_control`, verbatim.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        cache: Option<Value>,
    },
    /// The result of a tool call, sent back by the client.
    ToolResult {
        /// The call this answers.
        tool_use_id: String,
        /// Result content (text and images).
        content: Vec<Self>,
        /// The tool failed.
        #[serde(default)]
        is_error: bool,
        /// Anthropic `cache_control`, verbatim.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        cache: Option<Value>,
    },
    /// Visible reasoning, with the provider's signature kept byte for byte.
    Thinking {
        /// The reasoning text.
        text: String,
        /// Opaque signature; `None` when the provider gave none (never forged).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        signature: Option<String>,
    },
    /// Encrypted reasoning, opaque.
    RedactedThinking {
        /// The opaque payload.
        data: String,
    },
}

/// Where an image's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageSource {
    /// A URL the provider fetches.
    Url {
        /// The URL.
        url: String,
    },
    /// Inline base64 bytes.
    Base64 {
        /// MIME type, e.g. `image/png`.
        media_type: String,
        /// Base64 data, without a `data:` prefix.
        data: String,
    },
}

/// A tool definition.
#[derive(Debug, Clone, PartialEq)]
pub enum Tool {
    /// A function tool with a JSON-schema for its input.
    Function {
        /// Name.
        name: String,
        /// What it does.
        description: Option<String>,
        /// JSON schema of the arguments.
        parameters: Value,
        /// OpenAI `strict`.
        strict: Option<bool>,
        /// Anthropic `cache_control`, verbatim.
        cache: Option<Value>,
    },
    /// A provider-hosted tool (e.g. Anthropic `web_search_20250305`), verbatim, with its format.
    Native {
        /// The format this definition is written in.
        format: Format,
        /// The definition.
        def: Value,
    },
}

/// How the model may call tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// Model decides.
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call (OpenAI `required`, Anthropic `any`).
    Required,
    /// This tool.
    Named(String),
}

/// Sampling and length parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sampling {
    /// Maximum output tokens.
    pub max_tokens: Option<u64>,
    /// Temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Top-k sampling (Anthropic).
    pub top_k: Option<u64>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Seed (OpenAI).
    pub seed: Option<i64>,
    /// Presence penalty (OpenAI).
    pub presence_penalty: Option<f64>,
    /// Frequency penalty (OpenAI).
    pub frequency_penalty: Option<f64>,
}

/// Structured output.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// Schema name.
        name: String,
        /// The schema.
        schema: Value,
        /// Strict adherence.
        strict: Option<bool>,
    },
}

/// Reasoning request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reasoning {
    /// OpenAI `reasoning_effort` (`minimal`, `low`, `medium`, `high`).
    pub effort: Option<String>,
    /// Anthropic `thinking.budget_tokens`.
    pub budget_tokens: Option<u64>,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Natural end.
    EndTurn,
    /// Hit the token limit.
    MaxTokens,
    /// Hit a stop sequence.
    StopSequence,
    /// Wants tool results.
    ToolUse,
    /// Blocked by a content filter.
    ContentFilter,
    /// Paused a long turn (Anthropic `pause_turn`).
    Pause,
    /// Declined (Anthropic `refusal`).
    Refusal,
    /// Ended by an upstream error condition.
    Error,
}

/// Token usage. `input` excludes cached tokens (Anthropic semantics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens (including reasoning).
    pub output: u64,
    /// Input tokens read from cache.
    pub cache_read: u64,
    /// Input tokens written to cache.
    pub cache_write: u64,
    /// Reasoning tokens (a part of `output`).
    pub reasoning: u64,
}

impl Usage {
    /// All prompt tokens, cached or not (OpenAI `prompt_tokens`).
    /// Saturating: the counts come from upstreams.
    pub fn prompt_total(&self) -> u64 {
        self.input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
    }

    /// Every token, prompt and output (`total_tokens`).
    pub fn total(&self) -> u64 {
        self.prompt_total().saturating_add(self.output)
    }

    /// Folds a later report into this one: non-zero fields supersede (Anthropic reports input
    /// tokens only at the start, OpenAI reports everything at the end; both are cumulative).
    pub fn merge(self, newer: Self) -> Self {
        let pick = |a: u64, b: u64| if b == 0 { a } else { b };
        Self {
            input: pick(self.input, newer.input),
            output: pick(self.output, newer.output),
            cache_read: pick(self.cache_read, newer.cache_read),
            cache_write: pick(self.cache_write, newer.cache_write),
            reasoning: pick(self.reasoning, newer.reasoning),
        }
    }
}

/// A complete (non-streamed) response.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// Response id.
    pub id: String,
    /// Model that answered.
    pub model: String,
    /// Content in order.
    pub content: Vec<Part>,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// The stop sequence hit, if any.
    pub stop_sequence: Option<String>,
    /// Token usage.
    pub usage: Usage,
    /// Unix seconds (OpenAI `created`).
    pub created: Option<i64>,
}

/// The kind of a content block opening in a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockKind {
    /// Text.
    Text,
    /// A tool call.
    ToolUse {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
    },
    /// Reasoning text (deltas follow, then possibly a signature).
    Thinking,
    /// Opaque reasoning, complete at start.
    RedactedThinking {
        /// The payload.
        data: String,
    },
}

/// A fragment inside an open block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Delta {
    /// Text.
    Text(String),
    /// A fragment of a tool call's JSON arguments.
    ToolArgs(String),
    /// Reasoning text.
    Thinking(String),
    /// A reasoning signature, verbatim.
    Signature(String),
}

/// One canonical stream event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StreamEvent {
    /// The message begins.
    Start {
        /// Response id.
        id: String,
        /// Model that answers.
        model: String,
        /// Usage known at start (Anthropic reports input tokens here).
        usage: Usage,
        /// Unix seconds, when the upstream says.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        created: Option<i64>,
    },
    /// A content block opens.
    BlockStart {
        /// Block index, unique in this message.
        index: u32,
        /// What kind of block.
        block: BlockKind,
    },
    /// A fragment for an open block.
    Delta {
        /// Block index.
        index: u32,
        /// The fragment.
        delta: Delta,
    },
    /// A content block closes.
    BlockStop {
        /// Block index.
        index: u32,
    },
    /// Usage so far (cumulative; later events supersede earlier ones).
    Usage(Usage),
    /// The stop reason.
    Stop {
        /// Why.
        reason: StopReason,
        /// Which stop sequence, if any.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        stop_sequence: Option<String>,
    },
    /// The upstream reported an error mid-stream.
    Error(ApiError),
    /// The upstream finished the stream properly.
    End,
}

/// Error categories shared by every format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Malformed or invalid request (400).
    InvalidRequest,
    /// Missing or bad credentials (401).
    Authentication,
    /// Not allowed (403).
    Permission,
    /// No such model or resource (404).
    NotFound,
    /// Body too large (413).
    RequestTooLarge,
    /// Rate limited (429).
    RateLimit,
    /// Upstream or gateway failure (500/502).
    Api,
    /// Upstream overloaded (529 / 503).
    Overloaded,
    /// Timed out (504).
    Timeout,
}

/// An error as data, independent of wire format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// HTTP status to answer with.
    pub status: u16,
    /// Category.
    pub kind: ErrorKind,
    /// Human-readable message (never contains a secret).
    pub message: String,
    /// The offending parameter (OpenAI `param`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub param: Option<String>,
    /// Machine code (OpenAI `code`), e.g. `model_not_found`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<String>,
}

impl ApiError {
    /// A new error with the kind's default status.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let status = match kind {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::Permission => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::RequestTooLarge => 413,
            ErrorKind::RateLimit => 429,
            ErrorKind::Api => 502,
            ErrorKind::Overloaded => 503,
            ErrorKind::Timeout => 504,
        };
        Self {
            status,
            kind,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    /// 400 invalid_request.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// Sets `param`.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Sets `code`.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Overrides the status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The kind a bare HTTP status implies.
    pub fn kind_for_status(status: u16) -> ErrorKind {
        match status {
            400 | 422 => ErrorKind::InvalidRequest,
            401 => ErrorKind::Authentication,
            403 => ErrorKind::Permission,
            404 => ErrorKind::NotFound,
            413 => ErrorKind::RequestTooLarge,
            408 | 504 => ErrorKind::Timeout,
            429 => ErrorKind::RateLimit,
            503 | 529 => ErrorKind::Overloaded,
            _ => ErrorKind::Api,
        }
    }
}
