//! OpenAI requests of the common shapes (text, tool calls and results, function tools, the usual
//! settings) decoded straight from the body's text, with no JSON tree: most strings are
//! borrowed until the canonical request takes them. Anything else (another part type, a field
//! of an odd type, a repeated key inside an object, a missing field) returns `None`, and the
//! tree decoder in `request.rs` decodes it or names the error. So this module only has to be
//! exact for what it accepts; a test holds it to the tree decoder's result.
//!
//! Every object is read through `Obj` (in its container's pass) or `obj` (from a field's text):
//! both take only a `{`, where serde would read an array as a struct's fields in order.

use super::request::{KNOWN, push};
use crate::lax::{self, Fields};
use gw_model::*;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use std::fmt;

/// A field's raw text: `None` when absent; `null` is kept (some fields tell it apart).
type Raw<'a> = Option<&'a RawValue>;

fn some_raw<'de, D: Deserializer<'de>>(d: D) -> Result<Raw<'de>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

fn is_null(r: &RawValue) -> bool {
    r.get() == "null"
}

/// An object's fields read as `T`, or `None` when it is not an object or not one of `T`'s shape.
fn obj<'a, T: Deserialize<'a>>(r: &'a RawValue) -> Option<T> {
    lax::object_text(r.get())
}

/// A struct read only from an object (see the module doc), in the same pass as its container.
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(m))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData)).map(Obj)
    }
}

/// An optional field: `Some(None)` when absent or null, `Some(Some(v))` when a `T`, `None`
/// (decode with the tree) otherwise.
fn opt<'a, T: Deserialize<'a>>(r: Raw<'a>) -> Option<Option<T>> {
    match r {
        None => Some(None),
        Some(r) if is_null(r) => Some(None),
        Some(r) => serde_json::from_str(r.get()).ok().map(Some),
    }
}

/// A required field of type `T`.
fn required<'a, T: Deserialize<'a>>(r: Raw<'a>) -> Option<T> {
    opt(r).flatten()
}

/// A required string.
fn req_string(r: Raw<'_>) -> Option<String> {
    required::<Cow<'_, str>>(r).map(Cow::into_owned)
}

/// An optional string.
fn opt_string(r: Raw<'_>) -> Option<Option<String>> {
    opt::<Cow<'_, str>>(r).map(|s| s.map(Cow::into_owned))
}

#[derive(Deserialize)]
struct MessageIn<'a> {
    #[serde(borrow, default, deserialize_with = "some_raw")]
    role: Raw<'a>,
    #[serde(borrow, default, deserialize_with = "some_raw")]
    content: Raw<'a>,
    #[serde(borrow, default, deserialize_with = "some_raw")]
    reasoning_content: Raw<'a>,
    #[serde(borrow, default, deserialize_with = "some_raw")]
    refusal: Raw<'a>,
    #[serde(borrow, default, deserialize_with = "some_raw")]
    tool_calls: Raw<'a>,
    #[serde(borrow, default, deserialize_with = "some_raw")]
    tool_call_id: Raw<'a>,
}

#[derive(Deserialize)]
struct PartIn<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "some_raw")]
    kind: Raw<'a>,
    #[serde(borrow, default, deserialize_with = "some_raw")]
    text: Raw<'a>,
    #[serde(borrow, default, deserialize_with = "some_raw")]
    cache_control: Raw<'a>,
}

#[derive(Deserialize)]
struct CallIn<'a> {
    #[serde(borrow, default, deserialize_with = "some_raw")]
    id: Raw<'a>,
    #[serde(borrow, default, deserialize_with = "some_raw")]
    function: Raw<'a>,
}

#[derive(Deserialize)]
struct CallFunctionIn<'a> {
    #[serde(borrow, default, deserialize_with = "some_raw")]
    name: Raw<'a>,
    #[serde(borrow, default, deserialize_with = "some_raw")]
    arguments: Raw<'a>,
}

#[derive(Deserialize)]
struct ToolIn<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "some_raw")]
    kind: Raw<'a>,
    #[serde(borrow, default, deserialize_with = "some_raw")]
    function: Raw<'a>,
    #[serde(borrow, default, deserialize_with = "some_raw")]
    cache_control: Raw<'a>,
}

#[derive(Deserialize)]
struct FunctionIn<'a> {
    #[serde(borrow, default, deserialize_with = "some_raw")]
    name: Raw<'a>,
    #[serde(borrow, default, deserialize_with = "some_raw")]
    description: Raw<'a>,
    #[serde(borrow, default, deserialize_with = "some_raw")]
    parameters: Raw<'a>,
    #[serde(borrow, default, deserialize_with = "some_raw")]
    strict: Raw<'a>,
}

#[derive(Deserialize)]
struct IncludeUsage<'a> {
    #[serde(borrow, default, deserialize_with = "some_raw")]
    include_usage: Raw<'a>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow, default, deserialize_with = "some_raw")]
    function: Raw<'a>,
}

#[derive(Deserialize)]
struct NameOnly<'a> {
    #[serde(borrow, default, deserialize_with = "some_raw")]
    name: Raw<'a>,
}

/// A JSON tree for a value kept verbatim.
fn tree(r: &RawValue) -> Option<Value> {
    serde_json::from_str(r.get()).ok()
}

/// A field kept verbatim when present (`null` included): `Some(None)` when absent.
fn kept(r: Raw<'_>) -> Option<Option<Value>> {
    match r {
        None => Some(None),
        Some(r) => tree(r).map(Some),
    }
}

/// The request, when it has only the shapes this module reads.
pub(super) fn decode(body: &[u8]) -> Option<ChatRequest> {
    let top: Fields<'_> = serde_json::from_slice(body).ok()?;
    let model = req_string(top.get("model"))?;
    if model.is_empty() || top.get("response_format").is_some_and(|r| !is_null(r)) {
        return None;
    }
    let mut req = ChatRequest {
        model,
        ..ChatRequest::default()
    };
    let messages: Vec<Obj<MessageIn<'_>>> = required(top.get("messages"))?;
    if messages.is_empty() {
        return None;
    }
    for Obj(m) in messages {
        message(m, &mut req)?;
    }
    if let Some(tools) = opt::<Vec<&RawValue>>(top.get("tools"))? {
        for t in tools {
            req.tools.push(tool(t)?);
        }
    }
    req.tool_choice = match top.get("tool_choice") {
        None => None,
        Some(r) if is_null(r) => None,
        Some(r) if r.get().starts_with('"') => {
            Some(match required::<Cow<'_, str>>(Some(r))?.as_ref() {
                "auto" => ToolChoice::Auto,
                "none" => ToolChoice::None,
                "required" => ToolChoice::Required,
                _ => return None,
            })
        }
        Some(r) => {
            let f = obj::<Named<'_>>(r)?.function.filter(|f| !is_null(f))?;
            Some(ToolChoice::Named(req_string(obj::<NameOnly<'_>>(f)?.name)?))
        }
    };
    req.parallel_tool_calls = opt(top.get("parallel_tool_calls"))?;
    let s = &mut req.sampling;
    let completion: Option<u64> = opt(top.get("max_completion_tokens"))?;
    let max: Option<u64> = opt(top.get("max_tokens"))?;
    s.max_tokens = completion.or(max);
    s.temperature = opt(top.get("temperature"))?;
    s.top_p = opt(top.get("top_p"))?;
    s.seed = opt(top.get("seed"))?;
    s.presence_penalty = opt(top.get("presence_penalty"))?;
    s.frequency_penalty = opt(top.get("frequency_penalty"))?;
    s.stop = match top.get("stop") {
        None => Vec::new(),
        Some(r) if is_null(r) => Vec::new(),
        Some(r) if r.get().starts_with('"') => vec![req_string(Some(r))?],
        Some(r) => serde_json::from_str::<Vec<String>>(r.get()).ok()?,
    };
    if let Some(effort) = opt_string(top.get("reasoning_effort"))? {
        req.reasoning = Some(Reasoning {
            effort: Some(effort),
            budget_tokens: None,
        });
    }
    req.stream = opt(top.get("stream"))?.unwrap_or(false);
    match top.get("stream_options") {
        None => {}
        Some(r) if is_null(r) => {}
        Some(r) => {
            req.include_usage = opt(obj::<IncludeUsage<'_>>(r)?.include_usage)?.unwrap_or(false);
        }
    }
    req.user = opt_string(top.get("user"))?;
    let mut extra = Map::new();
    for (k, v) in &top.0 {
        if !KNOWN.contains(&k.as_ref()) {
            extra.insert(k.clone().into_owned(), tree(v)?);
        }
    }
    if !extra.is_empty() {
        req.extra = Extra {
            format: Some(Format::OpenAi),
            fields: extra,
        };
    }
    Some(req)
}

fn message(m: MessageIn<'_>, req: &mut ChatRequest) -> Option<()> {
    let role = required::<Cow<'_, str>>(m.role)?;
    match role.as_ref() {
        "system" | "developer" => {
            let parts = content(m.content?)?;
            if req.messages.is_empty() {
                req.system.extend(parts);
            } else {
                push(req, Role::System, parts);
            }
        }
        "user" => {
            let parts = content(m.content?)?;
            push(req, Role::User, parts);
        }
        "assistant" => {
            let mut parts = Vec::new();
            if let Some(r) = opt_string(m.reasoning_content)?
                && !r.is_empty()
            {
                parts.push(Part::Thinking {
                    text: r,
                    signature: None,
                });
            }
            if let Some(c) = m.content.filter(|c| !is_null(c)) {
                parts.extend(content(c)?);
            }
            if let Some(r) = opt_string(m.refusal)? {
                parts.push(Part::Text {
                    text: r,
                    cache: None,
                });
            }
            for Obj(c) in opt::<Vec<Obj<CallIn<'_>>>>(m.tool_calls)?.unwrap_or_default() {
                let f: CallFunctionIn<'_> = obj(c.function.filter(|f| !is_null(f))?)?;
                parts.push(Part::ToolUse {
                    id: req_string(c.id)?,
                    name: req_string(f.name)?,
                    arguments: opt_string(f.arguments)?.unwrap_or_else(|| "{}".into()),
                    cache: None,
                });
            }
            push(req, Role::Assistant, parts);
        }
        "tool" => {
            let id = req_string(m.tool_call_id)?;
            let parts = content(m.content?)?;
            push(
                req,
                Role::User,
                vec![Part::ToolResult {
                    tool_use_id: id,
                    content: parts,
                    is_error: false,
                    cache: None,
                }],
            );
        }
        _ => return None,
    }
    Some(())
}

/// A string, or an array of text parts.
fn content(r: &RawValue) -> Option<Vec<Part>> {
    if r.get().starts_with('"') {
        return Some(vec![Part::Text {
            text: req_string(Some(r))?,
            cache: None,
        }]);
    }
    let parts: Vec<Obj<PartIn<'_>>> = serde_json::from_str(r.get()).ok()?;
    parts
        .into_iter()
        .map(|Obj(p)| {
            if required::<Cow<'_, str>>(p.kind)? != "text" {
                return None;
            }
            Some(Part::Text {
                text: req_string(p.text)?,
                cache: kept(p.cache_control)?,
            })
        })
        .collect()
}

fn tool(r: &RawValue) -> Option<Tool> {
    let t: ToolIn<'_> = obj(r)?;
    if required::<Cow<'_, str>>(t.kind)? != "function" {
        return Some(Tool::Native {
            format: Format::OpenAi,
            def: tree(r)?,
        });
    }
    let f: FunctionIn<'_> = obj(t.function.filter(|f| !is_null(f))?)?;
    let parameters = match f.parameters {
        None => json!({"type": "object", "properties": {}}),
        Some(p) if is_null(p) => json!({"type": "object", "properties": {}}),
        Some(p) if p.get().starts_with('{') => tree(p)?,
        Some(_) => return None,
    };
    Some(Tool::Function {
        name: req_string(f.name)?,
        description: opt_string(f.description)?,
        parameters,
        strict: opt(f.strict)?,
        cache: kept(t.cache_control)?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::request::decode_tree;
    use super::decode;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// Whatever the typed decoder accepts, it decodes as the tree decoder does.
    fn same(body: &[u8]) -> bool {
        let typed = decode(body);
        if let Some(t) = &typed {
            let tree = decode_tree(body);
            assert_eq!(
                Some(t),
                tree.as_ref().ok(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        typed.is_some()
    }

    #[test]
    fn common_requests_are_decoded_typed_exactly_as_through_a_tree() {
        let accepted = [
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
            json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "developer", "content": [{"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}]},
                    {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b", "cache_control": null}], "name": "ann"},
                    {"role": "system", "content": "mid-conversation"},
                    {"role": "assistant", "reasoning_content": "think", "content": null, "refusal": null,
                     "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                                    {"id": "c2", "function": {"name": "g"}}]},
                    {"role": "tool", "tool_call_id": "c1", "content": "r1"},
                    {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "r2"}]},
                    {"role": "assistant", "content": "done", "reasoning_content": ""},
                ],
                "tools": [
                    {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {"a": {"type": "number"}}}, "strict": true}, "cache_control": {"type": "ephemeral"}},
                    {"type": "function", "function": {"name": "g", "parameters": null}},
                    {"type": "web_search", "search_context_size": "low"},
                ],
                "tool_choice": {"type": "function", "function": {"name": "f"}},
                "parallel_tool_calls": false, "max_completion_tokens": 100, "max_tokens": 7,
                "temperature": 0.3, "top_p": 1, "seed": -4, "presence_penalty": 0.5, "frequency_penalty": -0.5,
                "stop": ["x", "y"], "reasoning_effort": "low", "user": "u1",
                "metadata": {"a": "b"}, "store": false, "n": 1, "functions": [1], "function_call": "auto"}),
            json!({"model": "m", "messages": [{"role": "user", "content": []}], "stop": "s", "tool_choice": "required", "tools": null, "stream_options": null}),
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "none", "stop": null, "response_format": null, "user": null}),
        ];
        for v in &accepted {
            assert!(same(v.to_string().as_bytes()), "not decoded typed: {v}");
        }
        // Repeated keys: the last wins at the top level, as in the tree.
        let twice = br#"{"model":"a","messages":[{"role":"user","content":"x"}],"model":"b","extra":1,"extra":2}"#;
        assert!(same(twice));
        assert_eq!(decode(twice).map(|r| r.model), Some("b".to_owned()));
        // Escapes are decoded.
        assert!(same(
            br#"{"model":"m\u002dx","messages":[{"role":"user","content":"a\"b\\c\n\u00e9"}]}"#
        ));
    }

    #[test]
    fn other_shapes_and_every_error_go_to_the_tree_decoder() {
        let deferred = [
            json!([1]),
            json!({"model": "", "messages": [{"role": "user", "content": "x"}]}),
            json!({"model": 5, "messages": [{"role": "user", "content": "x"}]}),
            json!({"model": "m", "messages": []}),
            json!({"model": "m", "messages": {}}),
            json!({"model": "m", "messages": [["user", "x"]]}),
            json!({"model": "m", "messages": [{"role": "user"}]}),
            json!({"model": "m", "messages": [{"role": "user", "content": null}]}),
            json!({"model": "m", "messages": [{"role": "function", "content": "x"}]}),
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}),
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}]}),
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": 5}}]}]}),
            json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}),
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5.0}),
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "seed": 1e3}),
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}),
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": [1]}),
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"}),
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]}),
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}),
        ];
        for v in &deferred {
            assert!(!same(v.to_string().as_bytes()), "decoded typed: {v}");
        }
        // A key repeated inside a message.
        assert!(!same(
            br#"{"model":"m","messages":[{"role":"user","content":"a","content":"b"}]}"#
        ));
        assert!(!same(b"{\"model\":\"m\""));
    }

    fn pick(options: Vec<Option<Value>>) -> impl Strategy<Value = Option<Value>> + Clone {
        proptest::sample::select(options)
    }

    /// Mostly one of `good`, sometimes one of `bad`.
    fn mostly(
        good: Vec<Option<Value>>,
        bad: Vec<Option<Value>>,
    ) -> impl Strategy<Value = Option<Value>> + Clone {
        prop_oneof![9 => pick(good), 1 => pick(bad)]
    }

    /// A message of a role with fields of that role, mostly well formed.
    fn good_message() -> impl Strategy<Value = Value> {
        let content = mostly(
            vec![
                Some(json!("hello")),
                Some(
                    json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}}]),
                ),
                Some(json!([{"type": "text", "text": "a", "cache_control": null}])),
                Some(json!([])),
            ],
            vec![
                Some(json!([{"type": "refusal", "refusal": "no"}])),
                Some(json!([5])),
                Some(Value::Null),
                None,
            ],
        );
        let opt_text = mostly(
            vec![Some(json!("r")), Some(json!("")), Some(Value::Null), None],
            vec![Some(json!(1))],
        );
        let calls = mostly(
            vec![
                Some(
                    json!([{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]),
                ),
                Some(
                    json!([{"id": "c", "function": {"name": "f"}}, {"id": "d", "function": {"name": "g", "arguments": null}}]),
                ),
                Some(Value::Null),
                None,
            ],
            vec![
                Some(json!([{"id": "c", "function": null}])),
                Some(json!({"id": "c"})),
            ],
        );
        let role =
            proptest::sample::select(vec!["system", "developer", "user", "assistant", "tool"]);
        (role, content, opt_text.clone(), opt_text, calls).prop_map(
            |(role, content, reasoning, refusal, calls)| {
                let mut m = serde_json::Map::new();
                m.insert("role".into(), json!(role));
                let mut put = |k: &str, v: Option<Value>| {
                    if let Some(v) = v {
                        m.insert(k.into(), v);
                    }
                };
                put("content", content);
                if role == "assistant" {
                    put("reasoning_content", reasoning);
                    put("refusal", refusal);
                    put("tool_calls", calls);
                }
                if role == "tool" {
                    put("tool_call_id", Some(json!("c")));
                }
                Value::Object(m)
            },
        )
    }

    fn message() -> impl Strategy<Value = Value> {
        let role = pick(vec![
            Some(json!("system")),
            Some(json!("developer")),
            Some(json!("user")),
            Some(json!("assistant")),
            Some(json!("tool")),
            Some(json!("function")),
            Some(json!(3)),
            None,
        ]);
        let text = pick(vec![
            Some(json!("hello")),
            Some(
                json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}}]),
            ),
            Some(json!([{"type": "text", "text": "a", "cache_control": null}])),
            Some(json!([{"type": "refusal", "refusal": "no"}])),
            Some(json!([{"type": "image_url", "image_url": "data:image/png;base64,AA=="}])),
            Some(json!([])),
            Some(json!([5])),
            Some(Value::Null),
            Some(json!(7)),
            None,
        ]);
        let opt_text = pick(vec![
            Some(json!("r")),
            Some(json!("")),
            Some(Value::Null),
            Some(json!(1)),
            None,
        ]);
        let calls = pick(vec![
            Some(
                json!([{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]),
            ),
            Some(
                json!([{"id": "c", "function": {"name": "f"}}, {"id": "d", "function": {"name": "g", "arguments": null}}]),
            ),
            Some(json!([{"id": "c", "function": null}])),
            Some(json!([{"id": 1, "function": {"name": "f"}}])),
            Some(json!({"id": "c"})),
            Some(Value::Null),
            None,
        ]);
        let call_id = pick(vec![
            Some(json!("c")),
            Some(json!(2)),
            Some(Value::Null),
            None,
        ]);
        (role, text, opt_text.clone(), opt_text, calls, call_id).prop_map(
            |(role, content, reasoning, refusal, calls, id)| {
                let mut m = serde_json::Map::new();
                for (k, v) in [
                    ("role", role),
                    ("content", content),
                    ("reasoning_content", reasoning),
                    ("refusal", refusal),
                    ("tool_calls", calls),
                    ("tool_call_id", id),
                ] {
                    if let Some(v) = v {
                        m.insert(k.into(), v);
                    }
                }
                Value::Object(m)
            },
        )
    }

    fn request() -> impl Strategy<Value = Value> {
        let model = mostly(
            vec![Some(json!("m"))],
            vec![Some(json!("")), Some(json!(1)), None],
        );
        let messages =
            prop::collection::vec(prop_oneof![9 => good_message(), 1 => message()], 1..5);
        let tools = mostly(
            vec![
                Some(
                    json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": false}}]),
                ),
                Some(
                    json!([{"type": "function", "function": {"name": "f", "description": null}, "cache_control": null}]),
                ),
                Some(json!([{"type": "code_interpreter"}])),
                Some(Value::Null),
                None,
            ],
            vec![
                Some(json!([{"type": "function", "function": {"name": "f", "parameters": "x"}}])),
                Some(json!([{"function": {"name": "f"}}])),
                Some(json!({})),
            ],
        );
        let choice = mostly(
            vec![
                Some(json!("auto")),
                Some(json!({"function": {"name": "f"}})),
                None,
            ],
            vec![
                Some(json!("maybe")),
                Some(json!({"function": null})),
                Some(json!({"function": {"name": 1}})),
                Some(json!(true)),
            ],
        );
        let number = mostly(
            vec![
                Some(json!(3)),
                Some(json!(u64::MAX)),
                Some(Value::Null),
                None,
            ],
            vec![
                Some(json!(0.5)),
                Some(json!(-2)),
                Some(json!(1e300)),
                Some(json!("3")),
            ],
        );
        let flag = mostly(
            vec![
                Some(json!(true)),
                Some(json!(false)),
                Some(Value::Null),
                None,
            ],
            vec![Some(json!("true"))],
        );
        let misc = mostly(
            vec![
                Some(json!({"stop": "s"})),
                Some(json!({"stream_options": {"include_usage": true}})),
                Some(json!({"reasoning_effort": "high", "user": "u"})),
                Some(json!({"metadata": {"k": [1, {"z": null}]}, "functions": {}})),
                None,
            ],
            vec![
                Some(json!({"stop": ["a", 1]})),
                Some(json!({"stream_options": {"include_usage": "y"}})),
                Some(json!({"stream_options": []})),
                Some(json!({"response_format": {"type": "text"}})),
            ],
        );
        (
            model,
            messages,
            tools,
            choice,
            number.clone(),
            number.clone(),
            number,
            flag.clone(),
            flag,
            misc,
        )
            .prop_map(
                |(model, messages, tools, choice, max, temp, seed, stream, parallel, misc)| {
                    let mut m = serde_json::Map::new();
                    for (k, v) in [
                        ("model", model),
                        ("messages", Some(Value::Array(messages))),
                        ("tools", tools),
                        ("tool_choice", choice),
                        ("max_tokens", max),
                        ("temperature", temp),
                        ("seed", seed),
                        ("stream", stream),
                        ("parallel_tool_calls", parallel),
                    ] {
                        if let Some(v) = v {
                            m.insert(k.into(), v);
                        }
                    }
                    if let Some(Value::Object(extra)) = misc {
                        m.extend(extra);
                    }
                    Value::Object(m)
                },
            )
    }

    #[test]
    fn the_generated_requests_exercise_both_decoders() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let n = 2000;
        let typed = (0..n)
            .filter(|_| {
                let v = request().new_tree(&mut runner).unwrap().current();
                same(v.to_string().as_bytes())
            })
            .count();
        assert!(
            n / 50 < typed && typed < n - n / 50,
            "{typed} of {n} decoded typed"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn typed_and_tree_decoders_agree(v in request()) {
            same(v.to_string().as_bytes());
        }
    }
}
