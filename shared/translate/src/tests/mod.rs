//! Unit tests: recorded provider streams decoded to golden canonical events, split-anywhere
//! properties, cross-format stream round trips, and request/response mapping facts.

use crate::*;
use gw_codec::{Framer, SseFrame};
use gw_model::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::path::PathBuf;

fn fixture_dir() -> PathBuf {
    // The run-time value (cargo and nextest set it): a binary cached from a clone elsewhere
    // must read this checkout's files, not the compile-time path.
    let root =
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    PathBuf::from(root).join("tests/fixtures")
}

/// (name, upstream format, SSE bytes). `.chunks.txt` fixtures hold one JSON event per line with
/// the framing removed; they are re-framed exactly as the provider sends them.
fn fixtures() -> Vec<(String, Format, Vec<u8>)> {
    let dir = fixture_dir();
    let mut out = Vec::new();
    for (name, format) in [
        ("anthropic-text.chunks.txt", Format::Anthropic),
        ("anthropic-json-tool.1.chunks.txt", Format::Anthropic),
        ("openai-text.chunks.txt", Format::OpenAi),
        ("groq-tool-call.chunks.txt", Format::OpenAi),
        ("mistral-tool-call.chunks.txt", Format::OpenAi),
        ("google-tool-call.chunks.txt", Format::Gemini),
        ("cohere-tool-call.chunks.txt", Format::Cohere),
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let mut sse = String::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match format {
                Format::OpenAi => sse.push_str(&format!("data: {line}\n\n")),
                Format::Gemini => sse.push_str(&format!("data: {line}\r\n\r\n")),
                Format::Cohere => {
                    let v: Value = serde_json::from_str(line).unwrap();
                    let ty = v["type"].as_str().unwrap();
                    sse.push_str(&format!("event: {ty}\ndata: {line}\n\n"));
                }
                Format::Bedrock | Format::Responses | Format::Replicate => {
                    unreachable!("no text fixture of this format")
                }
                Format::Anthropic => {
                    let v: Value = serde_json::from_str(line).unwrap();
                    sse.push_str(&format!(
                        "event: {}\ndata: {line}\n\n",
                        v["type"].as_str().unwrap()
                    ));
                }
            }
        }
        if format == Format::OpenAi {
            sse.push_str("data: [DONE]\n\n");
        }
        out.push((
            name.trim_end_matches(".chunks.txt").to_owned(),
            format,
            sse.into_bytes(),
        ));
    }
    // The Bedrock transcript as real binary event-stream messages.
    out.push((
        "amazon-bedrock-text".to_owned(),
        Format::Bedrock,
        std::fs::read(dir.join("amazon-bedrock-text.eventstream.bin")).unwrap(),
    ));
    for name in [
        "basic_response",
        "tool_use_response",
        "refusal_response",
        "incomplete_partial_json_response",
    ] {
        let bytes = std::fs::read(dir.join(format!("anthropic-sdk-python/{name}.txt"))).unwrap();
        out.push((format!("anthropic-sdk-{name}"), Format::Anthropic, bytes));
    }
    out
}

/// Decodes a stream fed in the given pieces; a decode error becomes a final `Error` event.
fn decode(format: Format, pieces: &[&[u8]]) -> Vec<StreamEvent> {
    let mut p = match wire::framing(format, Operation::Chat) {
        Framing::Sse => Framer::sse(false, usize::MAX),
        Framing::EventStream => Framer::event_stream(1 << 24),
    };
    let mut d = Decoder::new(format);
    let mut frames: Vec<SseFrame> = Vec::new();
    let mut events = Vec::new();
    for piece in pieces {
        p.feed(piece, &mut frames).unwrap();
    }
    p.finish(&mut frames);
    for f in &frames {
        if let Err(e) = d.feed(f, &mut events) {
            events.push(StreamEvent::Error(e));
            return events;
        }
    }
    if let Err(e) = d.finish(&mut events) {
        events.push(StreamEvent::Error(e));
    }
    events
}

#[test]
fn fixtures_decode_to_golden_events() {
    let golden_dir = fixture_dir().join("golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for (name, format, bytes) in fixtures() {
        let events = decode(format, &[&bytes]);
        let got = serde_json::to_string_pretty(&events).unwrap() + "\n";
        let path = golden_dir.join(format!("{name}.events.json"));
        if update {
            std::fs::create_dir_all(&golden_dir).unwrap();
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("missing golden {path:?}; run with UPDATE_GOLDEN=1"));
        assert_eq!(
            got, want,
            "{name}: decoded events differ from the golden file"
        );
    }
}

fn text_of(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Delta {
                delta: Delta::Text(t),
                ..
            } => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn fixture_facts() {
    let all = fixtures();
    let get = |n: &str| {
        let (_, f, b) = all.iter().find(|(name, ..)| name == n).unwrap();
        decode(*f, &[b])
    };
    let ev = get("anthropic-text");
    assert_eq!(
        text_of(&ev),
        "Hello! I'm doing well, thank you for asking. How are you doing today? Is there anything I can help you with?"
    );
    assert!(
        matches!(&ev[0], StreamEvent::Start { id, usage, .. } if id == "msg_01QC4g3HwBThD4BaNtBckFDJ" && usage.input == 12)
    );
    assert!(ev.contains(&StreamEvent::Stop {
        reason: StopReason::EndTurn,
        stop_sequence: None
    }));
    assert_eq!(ev.last(), Some(&StreamEvent::End));

    let ev = get("groq-tool-call");
    assert!(ev.contains(&StreamEvent::BlockStart {
        index: 0,
        block: BlockKind::ToolUse {
            id: "tk85n1k4m".into(),
            name: "weather".into()
        }
    }));
    assert!(ev.contains(&StreamEvent::Stop {
        reason: StopReason::ToolUse,
        stop_sequence: None
    }));
    assert!(
        ev.iter()
            .any(|e| matches!(e, StreamEvent::Usage(u) if u.input == 210 && u.output == 15))
    );

    let ev = get("mistral-tool-call");
    assert!(
        ev.contains(&StreamEvent::BlockStart {
            index: 0,
            block: BlockKind::ToolUse {
                id: "gSIMJiOkT".into(),
                name: "weather".into()
            }
        }),
        "Mistral's index-less tool call"
    );
    assert!(ev.contains(&StreamEvent::Delta {
        index: 0,
        delta: Delta::ToolArgs("{\"location\": \"San Francisco\"}".into())
    }));

    let ev = get("openai-text");
    assert!(
        ev.iter()
            .any(|e| matches!(e, StreamEvent::Usage(u) if u.input == 16 && u.output == 300))
    );
    assert!(text_of(&ev).starts_with("**Holiday Name:**"));

    let ev = get("anthropic-sdk-refusal_response");
    assert!(ev.iter().any(|e| matches!(
        e,
        StreamEvent::Stop {
            reason: StopReason::Refusal,
            ..
        }
    )));

    let ev = get("anthropic-sdk-incomplete_partial_json_response");
    assert_eq!(
        ev.last(),
        Some(&StreamEvent::End),
        "incomplete partial JSON is passed through, not judged"
    );
}

#[test]
fn a_stream_cut_short_is_an_error() {
    let (_, _, bytes) = fixtures()
        .into_iter()
        .find(|(n, ..)| n == "anthropic-text")
        .unwrap();
    let cut = &bytes[..bytes.len() / 2];
    assert!(
        matches!(decode(Format::Anthropic, &[cut]).last(), Some(StreamEvent::Error(e)) if e.message.contains("message_stop"))
    );
    let ev = decode(
        Format::OpenAi,
        &[b"data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"],
    );
    assert!(matches!(ev.last(), Some(StreamEvent::Error(_))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn fixtures_split_anywhere_decode_identically(which in 0usize..12, cuts in proptest::collection::vec(any::<usize>(), 1..40)) {
        let all = fixtures();
        let (_, format, bytes) = &all[which % all.len()];
        let whole = decode(*format, &[bytes]);
        let mut idx: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        idx.sort_unstable();
        let mut pieces = Vec::new();
        let mut last = 0;
        for i in idx { pieces.push(&bytes[last..i]); last = i; }
        pieces.push(&bytes[last..]);
        prop_assert_eq!(decode(*format, &pieces), whole);
    }
}

/// What a client would rebuild from a stream: text, thinking, tool calls, stop, usage.
#[derive(Debug, PartialEq, Default)]
struct Summary {
    text: String,
    thinking: String,
    signature: String,
    tools: Vec<(String, String, String)>,
    stop: Option<StopReason>,
    usage: Usage,
}

fn summarize(events: &[StreamEvent]) -> Summary {
    let mut s = Summary::default();
    let mut tool_at = std::collections::HashMap::new();
    for e in events {
        match e {
            StreamEvent::Start { usage, .. } => s.usage = s.usage.merge(*usage),
            StreamEvent::BlockStart {
                index,
                block: BlockKind::ToolUse { id, name },
            } => {
                tool_at.insert(*index, s.tools.len());
                s.tools.push((id.clone(), name.clone(), String::new()));
            }
            StreamEvent::Delta { index, delta } => match delta {
                Delta::Text(t) => s.text.push_str(t),
                Delta::Thinking(t) => s.thinking.push_str(t),
                Delta::Signature(t) => s.signature.push_str(t),
                Delta::ToolArgs(a) => s.tools[tool_at[index]].2.push_str(a),
            },
            StreamEvent::Stop { reason, .. } => s.stop = Some(*reason),
            StreamEvent::Usage(u) => s.usage = s.usage.merge(*u),
            _ => {}
        }
    }
    s
}

fn reencode(events: &[StreamEvent], client: Format, include_usage: bool) -> Vec<u8> {
    let mut enc = Encoder::new(client, include_usage);
    let mut out = Vec::new();
    for e in events {
        enc.encode(e, &mut out);
    }
    out
}

#[test]
fn every_fixture_survives_translation_into_both_client_formats() {
    for (name, format, bytes) in fixtures() {
        let events = decode(format, &[&bytes]);
        let want = summarize(&events);
        for client in [
            Format::OpenAi,
            Format::Anthropic,
            Format::Gemini,
            Format::Cohere,
            Format::Bedrock,
            Format::Responses,
        ] {
            let sse = reencode(&events, client, true);
            let back = decode(client, &[&sse]);
            assert_eq!(
                back.last(),
                Some(&StreamEvent::End),
                "{name} -> {client:?}: stream must end properly"
            );
            let mut got = summarize(&back);
            if client == Format::OpenAi {
                assert_eq!(got.signature, "", "no signature reaches an OpenAI client");
                got.signature.clone_from(&want.signature);
            }
            // Stop reasons that the client format cannot express collapse as documented.
            let collapse = |r: Option<StopReason>| match (client, r) {
                (
                    Format::OpenAi,
                    Some(StopReason::StopSequence | StopReason::Pause | StopReason::Error),
                ) => Some(StopReason::EndTurn),
                (Format::OpenAi, Some(StopReason::Refusal)) => Some(StopReason::ContentFilter),
                (Format::Anthropic, Some(StopReason::ContentFilter)) => Some(StopReason::Refusal),
                (Format::Gemini, Some(StopReason::Refusal)) => Some(StopReason::ContentFilter),
                (
                    Format::Cohere,
                    Some(StopReason::Pause | StopReason::ContentFilter | StopReason::Refusal),
                ) => Some(StopReason::EndTurn),
                (Format::Bedrock, Some(StopReason::Pause | StopReason::Error)) => {
                    Some(StopReason::EndTurn)
                }
                (Format::Bedrock, Some(StopReason::Refusal)) => Some(StopReason::ContentFilter),
                // Responses has only completed / incomplete (max tokens) / tool calls.
                (
                    Format::Responses,
                    Some(
                        StopReason::StopSequence
                        | StopReason::Pause
                        | StopReason::Error
                        | StopReason::ContentFilter
                        | StopReason::Refusal,
                    ),
                ) => Some(StopReason::EndTurn),
                (Format::Gemini, Some(StopReason::StopSequence | StopReason::Pause)) => {
                    Some(StopReason::EndTurn) // Gemini says STOP for all three
                }
                (_, r) => r,
            };
            let mut want_c = Summary {
                stop: collapse(want.stop),
                ..Summary::default()
            };
            want_c.text.clone_from(&want.text);
            want_c.thinking.clone_from(&want.thinking);
            want_c.signature.clone_from(&want.signature);
            want_c.tools.clone_from(&want.tools);
            want_c.usage = want.usage;
            if matches!(client, Format::Anthropic | Format::Cohere | Format::Bedrock) {
                // No reasoning count in their usage (it is inside the output tokens).
                want_c.usage.reasoning = 0;
            }
            if client == Format::Cohere {
                // Cohere streams no signatures.
                want_c.signature.clear();
            }
            if client == Format::Gemini {
                // Gemini carries arguments as objects: the same JSON, not the same bytes (and
                // arguments cut short, which are no object, become an empty one).
                for t in want_c.tools.iter_mut() {
                    t.2 = serde_json::from_str::<Value>(&t.2)
                        .map_or_else(|_| "{}".to_owned(), |v| v.to_string());
                }
            }
            assert_eq!(got, want_c, "{name} -> {client:?}");
        }
    }
}

#[test]
fn openai_client_gets_usage_chunk_only_when_asked() {
    let (_, f, b) = fixtures()
        .into_iter()
        .find(|(n, ..)| n == "anthropic-text")
        .unwrap();
    let events = decode(f, &[&b]);
    let with = String::from_utf8(reencode(&events, Format::OpenAi, true)).unwrap();
    let without = String::from_utf8(reencode(&events, Format::OpenAi, false)).unwrap();
    assert!(
        with.contains("\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":30"),
        "{with}"
    );
    assert!(!without.contains("\"usage\""));
    assert!(with.ends_with("data: [DONE]\n\n") && without.ends_with("data: [DONE]\n\n"));
}

#[test]
fn anthropic_client_gets_message_start_first_and_cumulative_usage_last() {
    let (_, f, b) = fixtures()
        .into_iter()
        .find(|(n, ..)| n == "openai-text")
        .unwrap();
    let sse = String::from_utf8(reencode(&decode(f, &[&b]), Format::Anthropic, true)).unwrap();
    assert!(sse.starts_with("event: message_start\n"));
    let delta_line = sse
        .lines()
        .find(|l| l.contains("\"message_delta\""))
        .unwrap();
    let v: Value = serde_json::from_str(delta_line.trim_start_matches("data: ")).unwrap();
    assert_eq!(v["usage"]["output_tokens"], 300);
    assert_eq!(v["usage"]["input_tokens"], 16);
    assert_eq!(v["delta"]["stop_reason"], "end_turn");
    assert!(
        sse.trim_end()
            .ends_with("data: {\"type\":\"message_stop\"}")
    );
}

#[test]
fn anthropic_client_gets_an_input_estimate_at_start_and_the_exact_figure_at_the_end() {
    let (_, f, b) = fixtures()
        .into_iter()
        .find(|(n, ..)| n == "openai-text")
        .unwrap();
    let req = ChatRequest {
        system: vec![Part::Text {
            text: "x".repeat(4000),
            cache: None,
        }],
        stream: true,
        ..ChatRequest::default()
    };
    let estimate = req.estimate_input_tokens();
    assert!((1000..1100).contains(&estimate), "{estimate}");
    let mut enc = Encoder::for_client(Format::Anthropic, &req);
    let mut out = Vec::new();
    for ev in decode(f, &[&b]) {
        enc.encode(&ev, &mut out);
    }
    let sse = String::from_utf8(out).unwrap();
    let usage = |event: &str| -> Value {
        let line = sse.lines().find(|l| l.contains(event)).unwrap();
        let v: Value = serde_json::from_str(line.trim_start_matches("data: ")).unwrap();
        v.pointer("/message/usage").unwrap_or(&v["usage"]).clone()
    };
    assert_eq!(
        usage("\"message_start\"")["input_tokens"],
        estimate,
        "{sse}"
    );
    assert_eq!(
        usage("\"message_delta\"")["input_tokens"],
        16,
        "the upstream's own figure"
    );
    // An upstream that reports input at the start (Anthropic) keeps its figure.
    let (_, f, b) = fixtures()
        .into_iter()
        .find(|(n, ..)| n == "anthropic-text")
        .unwrap();
    let mut enc = Encoder::for_client(Format::Anthropic, &req);
    let mut out = Vec::new();
    for ev in decode(f, &[&b]) {
        enc.encode(&ev, &mut out);
    }
    let sse = String::from_utf8(out).unwrap();
    assert!(
        !sse.contains(&format!("\"input_tokens\":{estimate}")),
        "{sse}"
    );
}

#[test]
fn thinking_signature_survives_anthropic_round_trip_byte_for_byte() {
    let sig = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds+/Ab==";
    let up = format!(
        "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"m\",\"model\":\"c\",\"usage\":{{\"input_tokens\":5,\"cache_read_input_tokens\":7}}}}}}\n\n\
         event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}}}\n\n\
         event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}}}\n\n\
         event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"signature_delta\",\"signature\":\"{sig}\"}}}}\n\n\
         event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
         event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{{\"type\":\"redacted_thinking\",\"data\":\"opaque+/=\"}}}}\n\n\
         event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":1}}\n\n\
         event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\"}},\"usage\":{{\"output_tokens\":9}}}}\n\n\
         event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
    );
    let events = decode(Format::Anthropic, &[up.as_bytes()]);
    let again = decode(
        Format::Anthropic,
        &[&reencode(&events, Format::Anthropic, true)],
    );
    assert_eq!(summarize(&again).signature, sig);
    assert!(again.contains(&StreamEvent::BlockStart {
        index: 1,
        block: BlockKind::RedactedThinking {
            data: "opaque+/=".into()
        }
    }));
    // To an OpenAI client: reasoning_content, usage with cached tokens folded into the prompt.
    let oai = String::from_utf8(reencode(&events, Format::OpenAi, true)).unwrap();
    assert!(oai.contains("\"reasoning_content\":\"hmm\""));
    assert!(
        oai.contains("\"prompt_tokens\":12") && oai.contains("\"cached_tokens\":7"),
        "{oai}"
    );
}

fn opts<'a>(model: &'a str, provider: &'a str) -> EncodeOpts<'a> {
    EncodeOpts {
        model,
        provider,
        default_max_tokens: 4096,
        max_tokens_field: "max_tokens",
    }
}

fn to_json(b: Vec<u8>) -> Value {
    serde_json::from_slice(&b).unwrap()
}

mod agents;
mod fuzz;
mod requests;
