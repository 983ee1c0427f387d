//! Every client shape to every upstream shape and back: inputs in order, vectors exact.

use super::*;
use serde_json::json;

fn body(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

#[test]
fn openai_inputs_in_every_shape() {
    let r = decode_request(
        Format::OpenAi,
        false,
        None,
        &body(json!({"model": "m", "input": "a"})),
    )
    .unwrap();
    assert_eq!(r.inputs, [EmbedInput::Text("a".into())]);
    let r = decode_request(Format::OpenAi, false, None, &body(json!({"model": "m", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 8}))).unwrap();
    assert_eq!(r.inputs.len(), 2);
    assert!(r.base64);
    assert_eq!(r.dimensions, Some(8));
    let r = decode_request(
        Format::OpenAi,
        false,
        None,
        &body(json!({"model": "m", "input": [1, 2, 3]})),
    )
    .unwrap();
    assert_eq!(r.inputs, [EmbedInput::Tokens(vec![1, 2, 3])]);
    let r = decode_request(
        Format::OpenAi,
        false,
        None,
        &body(json!({"model": "m", "input": [[1], [2, 3]]})),
    )
    .unwrap();
    assert_eq!(r.inputs.len(), 2);
    for bad in [
        json!({"model": "m", "input": [{"x": 1}]}),
        json!({"model": "m"}),
        json!({"model": "m", "input": []}),
        json!({"input": "a"}),
        json!({"model": "m", "input": "a", "encoding_format": "int8"}),
        json!({"model": "m", "input": "a", "dimensions": 0}),
    ] {
        assert!(
            decode_request(Format::OpenAi, false, None, &body(bad.clone())).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn vectors_survive_every_upstream_exactly_and_in_order() {
    let req = EmbedRequest {
        model: "m".into(),
        inputs: vec![
            EmbedInput::Text("one".into()),
            EmbedInput::Text("two".into()),
        ],
        dimensions: Some(3),
        task: Some("RETRIEVAL_QUERY".into()),
        ..Default::default()
    };
    let a = [-0.0069292835, 0.013168523, 1e-7];
    let b = [0.5, -0.25, 0.123456789];
    // The OpenAI answer lists them out of order: the index decides.
    let answers: [(EmbedWire, Vec<Value>); 5] = [
        (
            EmbedWire::OpenAi,
            vec![json!({"object": "list", "model": "m-2", "data": [
            {"object": "embedding", "index": 1, "embedding": b}, {"object": "embedding", "index": 0, "embedding": a}],
            "usage": {"prompt_tokens": 4, "total_tokens": 4}})],
        ),
        (
            EmbedWire::Gemini,
            vec![json!({"embeddings": [{"values": a}, {"values": b}]})],
        ),
        (
            EmbedWire::VertexPredict,
            vec![json!({"predictions": [
            {"embeddings": {"values": a, "statistics": {"token_count": 1.0, "truncated": false}}},
            {"embeddings": {"values": b, "statistics": {"token_count": 3.0, "truncated": false}}}]})],
        ),
        (
            EmbedWire::Cohere,
            vec![
                json!({"id": "x", "embeddings": {"float": [a, b]}, "texts": ["one", "two"],
            "meta": {"billed_units": {"input_tokens": 4}}}),
            ],
        ),
        (
            EmbedWire::Bedrock,
            vec![
                json!({"embedding": a, "inputTextTokenCount": 1}),
                json!({"embedding": b, "inputTextTokenCount": 3}),
            ],
        ),
    ];
    for (wire, answer) in answers {
        let sent = encode_requests(wire, "m", &req).unwrap();
        assert_eq!(sent.len(), answer.len(), "{wire:?}");
        let bodies: Vec<Vec<u8>> = answer.iter().map(|v| body(v.clone())).collect();
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        let got = decode_responses(wire, "m", &refs).unwrap();
        assert_eq!(got.vectors, [a.to_vec(), b.to_vec()], "{wire:?}");
        assert_eq!(
            got.input_tokens,
            (wire != EmbedWire::Gemini).then_some(4),
            "{wire:?}"
        );
        // Printed back exactly as the upstream printed them.
        let out = String::from_utf8(encode_response(Format::OpenAi, false, &req, &got)).unwrap();
        assert!(
            out.contains("[-0.0069292835,0.013168523,1e-7]")
                && out.contains("[0.5,-0.25,0.123456789]"),
            "{out}"
        );
    }
}

#[test]
fn upstream_bodies_carry_the_options() {
    let req = EmbedRequest {
        model: "m".into(),
        inputs: vec![EmbedInput::Text("x".into())],
        dimensions: Some(256),
        task: Some("CLUSTERING".into()),
        ..Default::default()
    };
    let one = |w, m| -> Value {
        serde_json::from_slice(&encode_requests(w, m, &req).unwrap()[0]).unwrap()
    };
    assert_eq!(
        one(EmbedWire::OpenAi, "m"),
        json!({"model": "m", "input": ["x"], "encoding_format": "float", "dimensions": 256})
    );
    assert_eq!(
        one(EmbedWire::Gemini, "text-embedding-004"),
        json!({"requests": [{"model": "models/text-embedding-004",
        "content": {"parts": [{"text": "x"}]}, "taskType": "CLUSTERING", "outputDimensionality": 256}]})
    );
    assert_eq!(
        one(EmbedWire::VertexPredict, "m"),
        json!({"instances": [{"content": "x", "task_type": "CLUSTERING"}],
        "parameters": {"outputDimensionality": 256}})
    );
    assert_eq!(
        one(EmbedWire::Cohere, "embed-v4.0"),
        json!({"model": "embed-v4.0", "texts": ["x"], "input_type": "clustering",
        "embedding_types": ["float"], "output_dimension": 256})
    );
    assert_eq!(
        one(EmbedWire::Bedrock, "amazon.titan-embed-text-v2:0"),
        json!({"inputText": "x", "dimensions": 256})
    );
    assert_eq!(
        one(EmbedWire::Bedrock, "cohere.embed-english-v3"),
        json!({"texts": ["x"], "input_type": "clustering",
        "embedding_types": ["float"]})
    );
    let tokens = EmbedRequest {
        inputs: vec![EmbedInput::Tokens(vec![1])],
        ..req.clone()
    };
    assert!(encode_requests(EmbedWire::OpenAi, "m", &tokens).is_ok());
    let e = encode_requests(EmbedWire::Cohere, "m", &tokens).unwrap_err();
    assert!(e.message.contains("token-id inputs"), "{}", e.message);
}

#[test]
fn base64_is_little_endian_float32_and_reads_back() {
    let req = EmbedRequest {
        base64: true,
        inputs: vec![EmbedInput::Text("x".into())],
        ..Default::default()
    };
    let resp = EmbedResponse {
        vectors: vec![vec![1.0, -2.5]],
        input_tokens: Some(1),
        model: "m".into(),
    };
    let out: Value =
        serde_json::from_slice(&encode_response(Format::OpenAi, false, &req, &resp)).unwrap();
    // 1.0f32 = 00 00 80 3f, -2.5f32 = 00 00 20 c0
    assert_eq!(out["data"][0]["embedding"], "AACAPwAAIMA=");
    let back = decode_responses(EmbedWire::OpenAi, "m", &[&body(out)]).unwrap();
    assert_eq!(back.vectors, [vec![1.0, -2.5]]);
}

#[test]
fn gemini_client_shapes() {
    let single = body(
        json!({"content": {"parts": [{"text": "hi "}, {"text": "there"}]}, "taskType": "RETRIEVAL_QUERY"}),
    );
    let r = decode_request(Format::Gemini, false, Some("text-embedding-004"), &single).unwrap();
    assert_eq!(
        (r.model.as_str(), &r.inputs[..], r.task.as_deref()),
        (
            "text-embedding-004",
            &[EmbedInput::Text("hi there".into())][..],
            Some("RETRIEVAL_QUERY")
        )
    );
    let resp = EmbedResponse {
        vectors: vec![vec![0.25]],
        ..Default::default()
    };
    assert_eq!(
        serde_json::from_slice::<Value>(&encode_response(Format::Gemini, false, &r, &resp))
            .unwrap(),
        json!({"embedding": {"values": [0.25]}})
    );
    let batch = body(
        json!({"requests": [{"model": "models/e", "content": {"parts": [{"text": "a"}]}, "output_dimensionality": 4},
                                          {"model": "models/e", "content": {"parts": [{"text": "b"}]}}]}),
    );
    let r = decode_request(Format::Gemini, true, Some("e"), &batch).unwrap();
    assert_eq!((r.inputs.len(), r.dimensions), (2, Some(4)));
    let resp = EmbedResponse {
        vectors: vec![vec![1.0], vec![2.0]],
        ..Default::default()
    };
    assert_eq!(
        serde_json::from_slice::<Value>(&encode_response(Format::Gemini, true, &r, &resp)).unwrap(),
        json!({"embeddings": [{"values": [1.0]}, {"values": [2.0]}]})
    );
}

#[test]
fn garbage_answers_are_errors_not_panics() {
    for (w, b) in [
        (EmbedWire::OpenAi, "{}"),
        (EmbedWire::OpenAi, r#"{"data":[{"embedding":"!!"}]}"#),
        (EmbedWire::Gemini, r#"{"embeddings":[{"values":["x"]}]}"#),
        (EmbedWire::VertexPredict, "[]"),
        (EmbedWire::Cohere, r#"{"embeddings":{"float":7}}"#),
        (EmbedWire::Bedrock, "not json"),
    ] {
        assert!(
            decode_responses(w, "m", &[b.as_bytes()]).is_err(),
            "{w:?} {b}"
        );
    }
}
