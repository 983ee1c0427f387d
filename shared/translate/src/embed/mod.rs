//! Embeddings on the wire: the client APIs (OpenAI `/v1/embeddings`, Gemini `:embedContent` and
//! `:batchEmbedContents`) and the upstream shapes ([`EmbedWire`]), to and from the canonical
//! [`EmbedRequest`] / [`EmbedResponse`]. Vectors keep every printed digit (`f64`), come back in
//! input order, and are encoded as base64 float32 when an OpenAI client asks for it.

mod cohere;
mod google;
mod openai;

use crate::Format;
use gw_model::{ApiError, EmbedInput, EmbedRequest, EmbedResponse};
use serde_json::Value;

/// How a provider is asked for embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbedWire {
    /// OpenAI `/embeddings` (and every OpenAI-compatible provider, Azure included).
    OpenAi,
    /// Gemini API `:batchEmbedContents`.
    Gemini,
    /// Vertex AI `:predict` (`instances` / `predictions`).
    VertexPredict,
    /// Cohere v2 `/v2/embed`.
    Cohere,
    /// Bedrock `InvokeModel`: Titan (one text per call) or Cohere bodies, by model id.
    Bedrock,
}

impl EmbedWire {
    /// A format's own embeddings API, if it has one.
    pub fn of(format: Format) -> Option<Self> {
        match format {
            Format::OpenAi | Format::Responses => Some(Self::OpenAi),
            Format::Gemini => Some(Self::Gemini),
            Format::Cohere => Some(Self::Cohere),
            Format::Bedrock => Some(Self::Bedrock),
            Format::Anthropic | Format::Replicate => None,
        }
    }

    /// The default path after the base URL.
    pub fn default_path(self) -> &'static str {
        match self {
            Self::OpenAi => "/embeddings",
            Self::Gemini => "/models/{model}:batchEmbedContents",
            Self::VertexPredict => "/models/{model}:predict",
            Self::Cohere => "/v2/embed",
            Self::Bedrock => "/model/{model}/invoke",
        }
    }
}

/// Whether a client of `client`'s API may get this upstream's bytes as they are (the fast path).
pub fn forwards_bytes(client: Format, wire: EmbedWire) -> bool {
    client == Format::OpenAi && wire == EmbedWire::OpenAi
}

/// A client's request. `batch`: Gemini's `:batchEmbedContents` (else `:embedContent`);
/// `model`: the model the URL names (Gemini).
pub fn decode_request(
    client: Format,
    batch: bool,
    model: Option<&str>,
    body: &[u8],
) -> Result<EmbedRequest, ApiError> {
    let mut req = match client {
        Format::Gemini => google::decode_client(batch, body)?,
        _ => openai::decode_request(body)?,
    };
    if let Some(m) = model {
        m.clone_into(&mut req.model);
    }
    if req.model.is_empty() {
        return Err(ApiError::invalid("`model` is required").with_param("model"));
    }
    if req.inputs.is_empty() {
        return Err(
            ApiError::invalid("there is nothing to embed: `input` is empty").with_param("input"),
        );
    }
    Ok(req)
}

/// The upstream bodies for `req` (Bedrock's Titan takes one text per call: one body each). The
/// error is the client's: the request cannot be expressed there.
pub fn encode_requests(
    wire: EmbedWire,
    model: &str,
    req: &EmbedRequest,
) -> Result<Vec<Vec<u8>>, ApiError> {
    if wire != EmbedWire::OpenAi
        && req
            .inputs
            .iter()
            .any(|i| matches!(i, EmbedInput::Tokens(_)))
    {
        return Err(ApiError::invalid(
            "token-id inputs can only be embedded by OpenAI-format providers; send text",
        )
        .with_param("input"));
    }
    let texts = || -> Vec<&str> {
        req.inputs
            .iter()
            .map(|i| match i {
                EmbedInput::Text(t) => t.as_str(),
                EmbedInput::Tokens(_) => "",
            })
            .collect()
    };
    let one = |v: Value| Ok(vec![v.to_string().into_bytes()]);
    match wire {
        EmbedWire::OpenAi => one(openai::encode_request(model, req)),
        EmbedWire::Gemini => one(google::encode_batch(model, req, &texts())),
        EmbedWire::VertexPredict => one(google::encode_predict(req, &texts())),
        EmbedWire::Cohere => one(cohere::encode_v2(model, req, &texts())),
        EmbedWire::Bedrock => Ok(cohere::encode_bedrock(model, req, &texts())
            .into_iter()
            .map(|v| v.to_string().into_bytes())
            .collect()),
    }
}

/// The canonical answer from the upstream's bodies (one per request body, in order).
pub fn decode_responses(
    wire: EmbedWire,
    model: &str,
    bodies: &[&[u8]],
) -> Result<EmbedResponse, ApiError> {
    let mut out = EmbedResponse {
        model: model.to_owned(),
        ..Default::default()
    };
    for b in bodies {
        let v: Value = serde_json::from_slice(b).map_err(|e| {
            ApiError::new(
                gw_model::ErrorKind::Api,
                format!("upstream sent an embeddings answer that is not JSON: {e}"),
            )
        })?;
        let (vectors, tokens) = match wire {
            EmbedWire::OpenAi => openai::decode_response(&v, &mut out.model)?,
            EmbedWire::Gemini => google::decode_batch(&v)?,
            EmbedWire::VertexPredict => google::decode_predict(&v)?,
            EmbedWire::Cohere | EmbedWire::Bedrock => cohere::decode(&v)?,
        };
        out.vectors.extend(vectors);
        if let Some(t) = tokens {
            *out.input_tokens.get_or_insert(0) += t;
        }
    }
    Ok(out)
}

/// The answer in the client's shape.
pub fn encode_response(
    client: Format,
    batch: bool,
    req: &EmbedRequest,
    resp: &EmbedResponse,
) -> Vec<u8> {
    match client {
        Format::Gemini => google::encode_client(batch, resp),
        _ => openai::encode_response(req, resp),
    }
    .to_string()
    .into_bytes()
}

/// The input tokens an OpenAI-shaped answer reports (the fast path reads only this).
pub fn usage_of_openai_body(body: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct U {
        prompt_tokens: Option<u64>,
    }
    #[derive(serde::Deserialize)]
    struct B {
        usage: Option<U>,
    }
    serde_json::from_slice::<B>(body).ok()?.usage?.prompt_tokens
}

/// A vector from a JSON array of numbers.
fn vector(v: &Value) -> Result<Vec<f64>, ApiError> {
    v.as_array()
        .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
        .ok_or_else(|| malformed("a vector is not an array of numbers"))
}

fn malformed(what: &str) -> ApiError {
    ApiError::new(
        gw_model::ErrorKind::Api,
        format!("upstream sent a malformed embeddings answer: {what}"),
    )
}

#[cfg(test)]
mod tests;
