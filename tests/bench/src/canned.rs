//! What the bench's mock upstream answers and the chat scenarios, shared by the bench and the
//! allocation counter (`gw-bench-allocs`, a binary of its own so that its counting allocator
//! does not slow the bench's client, mock and floor).

use bytes::Bytes;

pub(crate) const KEY: &str = "bench-proxy-key";
pub(crate) const CHUNKS: usize = 20;

pub(crate) fn openai_json() -> Bytes {
    Bytes::from_static(br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, this is a benchmark answer.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}"#)
}

pub(crate) fn anthropic_json() -> Bytes {
    Bytes::from_static(br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Hello there, this is a benchmark answer."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":9}}"#)
}

pub(crate) fn openai_sse() -> Vec<Bytes> {
    let mut v = Vec::new();
    for i in 0..CHUNKS {
        v.push(Bytes::from(format!("data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n")));
    }
    v.push(Bytes::from_static(b"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"));
    v.push(Bytes::from_static(b"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":20,\"total_tokens\":32}}\n\ndata: [DONE]\n\n"));
    v
}

pub(crate) fn anthropic_sse() -> Vec<Bytes> {
    let mut v = vec![Bytes::from_static(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")];
    for i in 0..CHUNKS {
        v.push(Bytes::from(format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"tok{i} \"}}}}\n\n")));
    }
    v.push(Bytes::from_static(b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":20}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    v
}

/// The chat scenarios every comparison runs: (name, model, streamed). The mock serves `gpt-*`
/// as OpenAI and `claude-*` as Anthropic, so the second pair is translated.
pub(crate) const CHAT: [(&str, &str, bool); 4] = [
    ("OpenAI->OpenAI (fast path)", "gpt-4o-mini", false),
    ("OpenAI->OpenAI (fast path), streamed", "gpt-4o-mini", true),
    ("OpenAI->Anthropic (translated)", "claude-haiku-4-5", false),
    (
        "OpenAI->Anthropic (translated), streamed",
        "claude-haiku-4-5",
        true,
    ),
];

/// The messages, tools and settings of the bench's chat requests (about 1 KB in all, as a real
/// agent turn is at the least): a system prompt, three turns and one tool.
const CHAT_REST: &str = r#""messages":[{"role":"system","content":"You are a concise assistant for a travel company. Answer in at most three sentences, cite the booking reference when the user gives one, and never invent prices or schedules you have not looked up."},{"role":"user","content":"I booked a flight from Lisbon to Berlin for next Tuesday, reference TX-4821. Can I still add a checked bag, and how much would it cost?"},{"role":"assistant","content":"Yes, bags can be added up to 24 hours before departure. Let me look up the current price for your fare."},{"role":"user","content":"Thanks. Also, can I change my seat to an aisle seat near the front of the plane?"}],"tools":[{"type":"function","function":{"name":"lookup_booking","description":"Fetch a booking, its fare rules and its seat map by the booking reference","parameters":{"type":"object","properties":{"reference":{"type":"string","description":"The booking reference, e.g. TX-4821"}},"required":["reference"]}}}],"temperature":0.3,"max_tokens":256"#;

/// The same request in Anthropic's shape (for calling the mock directly).
const MESSAGES_REST: &str = r#""system":"You are a concise assistant for a travel company. Answer in at most three sentences, cite the booking reference when the user gives one, and never invent prices or schedules you have not looked up.","messages":[{"role":"user","content":"I booked a flight from Lisbon to Berlin for next Tuesday, reference TX-4821. Can I still add a checked bag, and how much would it cost?"},{"role":"assistant","content":"Yes, bags can be added up to 24 hours before departure. Let me look up the current price for your fare."},{"role":"user","content":"Thanks. Also, can I change my seat to an aisle seat near the front of the plane?"}],"tools":[{"name":"lookup_booking","description":"Fetch a booking, its fare rules and its seat map by the booking reference","input_schema":{"type":"object","properties":{"reference":{"type":"string","description":"The booking reference, e.g. TX-4821"}},"required":["reference"]}}],"temperature":0.3,"max_tokens":256"#;

/// An OpenAI chat completions request body.
pub(crate) fn chat_body(model: &str, stream: bool) -> String {
    format!(r#"{{"model":"{model}","stream":{stream},{CHAT_REST}}}"#)
}

/// An Anthropic messages request body.
#[allow(
    dead_code,
    reason = "the allocation counter sends only OpenAI requests"
)]
pub(crate) fn messages_body(model: &str, stream: bool) -> String {
    format!(r#"{{"model":"{model}","stream":{stream},{MESSAGES_REST}}}"#)
}
