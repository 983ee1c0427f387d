//! The prompt template, predictions both ways, the two-step call and the stream.

use super::*;
use gw_codec::SseFrame;
use gw_model::{Delta, Sampling, StreamEvent, Tool};

fn opts() -> EncodeOpts<'static> {
    EncodeOpts {
        model: "meta/meta-llama-3-70b-instruct",
        provider: "replicate",
        default_max_tokens: 512,
        max_tokens_field: "max_tokens",
    }
}

fn text(t: &str) -> Vec<Part> {
    vec![Part::Text {
        text: t.into(),
        cache: None,
    }]
}

fn msg(role: Role, t: &str) -> Message {
    Message {
        role,
        content: text(t),
    }
}

#[test]
fn chat_becomes_prompt_and_system_prompt() {
    let req = ChatRequest {
        system: text("Be brief."),
        messages: vec![msg(Role::User, "Hi")],
        sampling: Sampling {
            temperature: Some(0.5),
            stop: vec!["END".into(), "STOP".into()],
            ..Sampling::default()
        },
        stream: true,
        ..ChatRequest::default()
    };
    let v: Value = serde_json::from_slice(&encode_request(&req, &opts()).unwrap()).unwrap();
    assert_eq!(
        v,
        json!({"version": "meta/meta-llama-3-70b-instruct", "input": {"prompt": "Hi", "system_prompt": "Be brief.",
               "max_tokens": 512, "temperature": 0.5, "stop_sequences": "END,STOP"}, "stream": true})
    );
    let req = ChatRequest {
        messages: vec![
            msg(Role::User, "Hi"),
            msg(Role::Assistant, "Hello!"),
            msg(Role::System, "Answer in French."),
            msg(Role::User, "How are you?"),
        ],
        ..ChatRequest::default()
    };
    let v: Value = serde_json::from_slice(&encode_request(&req, &opts()).unwrap()).unwrap();
    assert_eq!(
        v["input"]["prompt"],
        "User: Hi\n\nAssistant: Hello!\n\nUser: How are you?\n\nAssistant:"
    );
    assert_eq!(v["input"]["system_prompt"], "Answer in French.");
}

#[test]
fn tools_and_images_are_refused_by_name() {
    let tools = ChatRequest {
        messages: vec![msg(Role::User, "x")],
        tools: vec![Tool::Function {
            name: "f".into(),
            description: None,
            parameters: json!({"type": "object"}),
            strict: None,
            cache: None,
        }],
        ..ChatRequest::default()
    };
    assert!(
        encode_request(&tools, &opts())
            .unwrap_err()
            .message
            .contains("tools")
    );
    let image = ChatRequest {
        messages: vec![Message {
            role: Role::User,
            content: vec![Part::Image {
                source: gw_model::ImageSource::Url {
                    url: "https://example.com/a.png".into(),
                },
                detail: None,
                cache: None,
            }],
        }],
        ..ChatRequest::default()
    };
    assert!(
        encode_request(&image, &opts())
            .unwrap_err()
            .message
            .contains("images")
    );
}

#[test]
fn a_prediction_is_read_where_it_points() {
    let created = br#"{"id":"p1","status":"starting","urls":{"get":"https://api.replicate.com/v1/predictions/p1","stream":"https://stream.replicate.com/v1/files/abc"}}"#;
    assert_eq!(
        follow_up(true, created),
        Some(FollowUp {
            url: "https://stream.replicate.com/v1/files/abc".into(),
            stream: true
        })
    );
    assert_eq!(
        follow_up(false, created),
        Some(FollowUp {
            url: "https://api.replicate.com/v1/predictions/p1".into(),
            stream: false
        })
    );
    let done = br#"{"id":"p1","model":"meta/x","status":"succeeded","output":["Hel","lo"],"metrics":{"input_token_count":7,"output_token_count":2},"urls":{"get":"https://api.replicate.com/v1/predictions/p1"}}"#;
    assert_eq!(follow_up(false, done), None);
    let r = decode_response(done).unwrap();
    assert_eq!(r.content, text("Hello"));
    assert_eq!((r.usage.input, r.usage.output), (7, 2));
    let failed = br#"{"id":"p1","status":"failed","error":"CUDA out of memory"}"#;
    assert!(
        decode_response(failed)
            .unwrap_err()
            .message
            .contains("CUDA out of memory")
    );
    assert_eq!(follow_up(true, b"not json"), None);
}

#[test]
fn the_stream_decodes_output_done_and_error() {
    let f = |e: &str, d: &str| SseFrame {
        event: Some(e.into()),
        data: d.into(),
        raw: Vec::new(),
    };
    let mut d = Decoder::default();
    let mut out = Vec::new();
    for fr in [
        f("output", "Hel"),
        f("output", "lo\nworld"),
        f("done", "{}"),
    ] {
        d.feed(&fr, &mut out).unwrap();
    }
    d.finish(&mut out).unwrap();
    let texts: String = out
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Delta {
                delta: Delta::Text(t),
                ..
            } => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, "Hello\nworld");
    assert!(matches!(out.last(), Some(StreamEvent::End)));
    let mut d = Decoder::default();
    let mut out = Vec::new();
    d.feed(&f("error", r#"{"detail":"boom"}"#), &mut out)
        .unwrap();
    assert!(matches!(&out[0], StreamEvent::Error(e) if e.message.contains("boom")));
    let mut d = Decoder::default();
    d.feed(&f("output", "x"), &mut Vec::new()).unwrap();
    assert!(d.finish(&mut Vec::new()).is_err(), "cut short");
}
