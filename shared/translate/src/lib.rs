//! Wire formats to and from the canonical model (hub and spoke).
//!
//! Every format module has the same shape: `decode_request` / `encode_request`,
//! `decode_response` / `encode_response`, a stream `Decoder` (upstream SSE frames -> canonical
//! events) and `Encoder` (canonical events -> client SSE bytes), and `decode_error` / `encode_error`.
//! Dispatch is a `match` on [`Format`], never `dyn`. What else a format owns on the wire
//! (endpoints, paths, headers, framing, usage on the fast path, error meaning) is in [`wire`],
//! and the same-format byte path in [`fast`].

pub mod anthropic;
pub mod bedrock;
pub mod cohere;
pub mod embed;
pub mod fast;
pub mod gemini;
mod json;
mod lax;
pub mod limits;
pub mod openai;
pub mod replicate;
pub mod responses;
pub mod wire;

pub use gw_model::Format;
use gw_model::{ApiError, ChatRequest, ChatResponse, StreamEvent};

/// Per-target knobs for request encoding.
#[derive(Debug, Clone)]
pub struct EncodeOpts<'a> {
    /// The model name to send upstream.
    pub model: &'a str,
    /// Provider id, for error messages.
    pub provider: &'a str,
    /// `max_tokens` default for formats that require it.
    pub default_max_tokens: u64,
    /// OpenAI-format field for the output limit (`max_tokens` or `max_completion_tokens`).
    pub max_tokens_field: &'a str,
}

/// Decodes a request body in `format`.
pub fn decode_request(format: Format, body: &[u8]) -> Result<ChatRequest, ApiError> {
    match format {
        Format::OpenAi => openai::decode_request(body),
        Format::Anthropic => anthropic::decode_request(body),
        Format::Gemini => gemini::decode_request(body),
        Format::Cohere => cohere::decode_request(body),
        Format::Replicate => replicate::decode_request(body),
        Format::Bedrock => bedrock::decode_request(body),
        Format::Responses => responses::decode_request(body),
    }
}

/// Encodes a canonical request for an upstream of `format`.
pub fn encode_request(
    format: Format,
    req: &ChatRequest,
    opts: &EncodeOpts<'_>,
) -> Result<Vec<u8>, ApiError> {
    if format != Format::Responses {
        // What only a stored-response provider can do is refused before it is lost; hosted
        // tools it merely offers are left out (nobody else can run them).
        responses::check_translatable(req)?;
        if let Some(r) = responses::without_hosted_offers(req) {
            return encode_request(format, &r, opts);
        }
    }
    match format {
        Format::OpenAi => openai::encode_request(req, opts),
        Format::Anthropic => anthropic::encode_request(req, opts),
        Format::Gemini => gemini::encode_request(req, opts),
        Format::Cohere => cohere::encode_request(req, opts),
        Format::Replicate => replicate::encode_request(req, opts),
        Format::Bedrock => bedrock::encode_request(req, opts),
        Format::Responses => responses::encode_request(req, opts),
    }
}

/// Decodes a complete upstream response.
pub fn decode_response(format: Format, body: &[u8]) -> Result<ChatResponse, ApiError> {
    match format {
        Format::OpenAi => openai::decode_response(body),
        Format::Anthropic => anthropic::decode_response(body),
        Format::Gemini => gemini::decode_response(body),
        Format::Cohere => cohere::decode_response(body),
        Format::Replicate => replicate::decode_response(body),
        Format::Bedrock => bedrock::decode_response(body),
        Format::Responses => responses::decode_response(body),
    }
}

/// Encodes a complete response for a client of `format`.
pub fn encode_response(format: Format, req: &ChatRequest, resp: &ChatResponse) -> Vec<u8> {
    match format {
        Format::OpenAi => openai::encode_response(resp),
        Format::Anthropic => anthropic::encode_response(resp),
        Format::Gemini => gemini::encode_response(resp),
        Format::Cohere => cohere::encode_response(resp),
        Format::Replicate => replicate::encode_response(resp),
        Format::Bedrock => bedrock::encode_response(resp),
        Format::Responses => responses::encode_response(resp, &req.tool_namespaces),
    }
}

/// Decodes an upstream error body.
pub fn decode_error(format: Format, status: u16, body: &[u8]) -> ApiError {
    match format {
        Format::OpenAi => openai::decode_error(status, body),
        Format::Anthropic => anthropic::decode_error(status, body),
        Format::Gemini => gemini::decode_error(status, body),
        Format::Cohere => cohere::decode_error(status, body),
        Format::Replicate => replicate::decode_error(status, body),
        Format::Bedrock => bedrock::decode_error(status, body),
        Format::Responses => openai::decode_error(status, body),
    }
}

/// Encodes an error body for a client of `format`.
pub fn encode_error(format: Format, err: &ApiError) -> Vec<u8> {
    match format {
        Format::OpenAi => openai::encode_error(err),
        Format::Anthropic => anthropic::encode_error(err),
        Format::Gemini => gemini::encode_error(err),
        Format::Cohere => cohere::encode_error(err),
        Format::Replicate => replicate::encode_error(err),
        Format::Bedrock => bedrock::encode_error(err),
        Format::Responses => openai::encode_error(err),
    }
}

/// A stream decoder for any format.
#[derive(Debug)]
pub enum Decoder {
    /// OpenAI chunks.
    OpenAi(openai::Decoder),
    /// Anthropic events.
    Anthropic(anthropic::Decoder),
    /// Gemini response chunks.
    Gemini(gemini::Decoder),
    /// Cohere v2 events.
    Cohere(cohere::Decoder),
    /// Bedrock ConverseStream events.
    Bedrock(bedrock::Decoder),
    /// Responses API events.
    Responses(responses::Decoder),
    /// Replicate prediction stream events.
    Replicate(replicate::Decoder),
}

impl Decoder {
    /// A fresh decoder for upstream `format`.
    pub fn new(format: Format) -> Self {
        match format {
            Format::OpenAi => Self::OpenAi(openai::Decoder::default()),
            Format::Anthropic => Self::Anthropic(anthropic::Decoder::default()),
            Format::Gemini => Self::Gemini(gemini::Decoder::default()),
            Format::Cohere => Self::Cohere(cohere::Decoder::default()),
            Format::Bedrock => Self::Bedrock(bedrock::Decoder::default()),
            Format::Responses => Self::Responses(responses::Decoder::default()),
            Format::Replicate => Self::Replicate(replicate::Decoder::default()),
        }
    }

    /// Feeds one SSE frame; canonical events are appended to `out`.
    pub fn feed(
        &mut self,
        frame: &gw_codec::SseFrame,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), ApiError> {
        match self {
            Self::OpenAi(d) => d.feed(frame, out),
            Self::Anthropic(d) => d.feed(frame, out),
            Self::Gemini(d) => d.feed(frame, out),
            Self::Cohere(d) => d.feed(frame, out),
            Self::Bedrock(d) => d.feed(frame, out),
            Self::Responses(d) => d.feed(frame, out),
            Self::Replicate(d) => d.feed(frame, out),
        }
    }

    /// The upstream closed the stream; errors if it never sent its end marker.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ApiError> {
        match self {
            Self::OpenAi(d) => d.finish(out),
            Self::Anthropic(d) => d.finish(out),
            Self::Gemini(d) => d.finish(out),
            Self::Cohere(d) => d.finish(out),
            Self::Bedrock(d) => d.finish(out),
            Self::Responses(d) => d.finish(out),
            Self::Replicate(d) => d.finish(out),
        }
    }
}

/// A stream encoder for any format.
#[derive(Debug)]
pub enum Encoder {
    /// OpenAI chunks.
    OpenAi(openai::Encoder),
    /// Anthropic events.
    Anthropic(anthropic::Encoder),
    /// Gemini response chunks.
    Gemini(gemini::Encoder),
    /// Cohere v2 events.
    Cohere(cohere::Encoder),
    /// Bedrock ConverseStream events.
    Bedrock(bedrock::Encoder),
    /// Responses API events.
    Responses(responses::Encoder),
    /// Replicate prediction stream events.
    Replicate(replicate::Encoder),
}

impl Encoder {
    /// A fresh encoder for a client of `format`. `include_usage` is OpenAI's `stream_options.include_usage`.
    pub fn new(format: Format, include_usage: bool) -> Self {
        match format {
            Format::OpenAi => Self::OpenAi(openai::Encoder::new(include_usage)),
            Format::Anthropic => Self::Anthropic(anthropic::Encoder::default()),
            Format::Gemini => Self::Gemini(gemini::Encoder::new(false)),
            Format::Cohere => Self::Cohere(cohere::Encoder::default()),
            Format::Bedrock => Self::Bedrock(bedrock::Encoder::default()),
            Format::Responses => Self::Responses(responses::Encoder::default()),
            Format::Replicate => Self::Replicate(replicate::Encoder::default()),
        }
    }

    /// A fresh encoder for the stream a client asked for (its format and stream options).
    pub fn for_client(format: Format, req: &ChatRequest) -> Self {
        match format {
            Format::Gemini => Self::Gemini(gemini::Encoder::new(req.stream_json_array)),
            Format::Responses => Self::Responses(responses::Encoder::with_namespaces(
                req.tool_namespaces.clone(),
            )),
            Format::Anthropic => Self::Anthropic(anthropic::Encoder::with_input_estimate(
                req.estimate_input_tokens(),
            )),
            other => Self::new(other, req.include_usage),
        }
    }

    /// Encodes one event, appending bytes to `out`.
    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        match self {
            Self::OpenAi(e) => e.encode(ev, out),
            Self::Anthropic(e) => e.encode(ev, out),
            Self::Gemini(e) => e.encode(ev, out),
            Self::Cohere(e) => e.encode(ev, out),
            Self::Bedrock(e) => e.encode(ev, out),
            Self::Responses(e) => e.encode(ev, out),
            Self::Replicate(e) => e.encode(ev, out),
        }
    }
}

#[cfg(test)]
mod tests;
