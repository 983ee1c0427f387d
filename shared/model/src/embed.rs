//! Embeddings, canonical: what every client API asks for and every provider answers, so any
//! client reaches any provider that embeds.

/// One input to embed.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbedInput {
    /// Text.
    Text(String),
    /// Token ids (OpenAI's API only).
    Tokens(Vec<u32>),
}

/// An embeddings request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EmbedRequest {
    /// The requested model (routed like a chat model).
    pub model: String,
    /// The inputs, in order.
    pub inputs: Vec<EmbedInput>,
    /// Output dimensions, where the model can shorten its vectors.
    pub dimensions: Option<u32>,
    /// The client wants OpenAI's base64 (little-endian float32) vectors.
    pub base64: bool,
    /// What the text is for (Gemini `taskType`, Cohere `input_type`), in Gemini's words
    /// (`RETRIEVAL_DOCUMENT`, `RETRIEVAL_QUERY`, ...).
    pub task: Option<String>,
    /// OpenAI's end-user id.
    pub user: Option<String>,
}

/// An embeddings answer: one vector per input, in input order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EmbedResponse {
    /// The vectors. `f64` keeps every value the upstream printed exactly.
    pub vectors: Vec<Vec<f64>>,
    /// Input tokens, as the upstream counted them (`None`: it does not say).
    pub input_tokens: Option<u64>,
    /// The model that answered.
    pub model: String,
}

impl EmbedRequest {
    /// A rough input token count (four characters a token), for upstreams that report none.
    pub fn estimate_tokens(&self) -> u64 {
        self.inputs
            .iter()
            .map(|i| match i {
                EmbedInput::Text(t) => (t.chars().count() as u64).div_ceil(4),
                EmbedInput::Tokens(t) => t.len() as u64,
            })
            .sum()
    }
}
