//! Cheap checks on a request body before it is decoded: nesting depth, model-name length and
//! message count. A small body can otherwise cost far more memory and CPU to decode than it
//! weighs (100k one-character messages, a name the size of the body echoed into every log line).

use gw_model::ApiError;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// What one request body may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest nesting of arrays and objects.
    pub max_depth: usize,
    /// Longest `model` string, in bytes (as written, escapes included).
    pub max_model_bytes: usize,
    /// Most elements of the top-level conversation array: `messages` (OpenAI, Anthropic,
    /// Cohere), `input` (Responses) or `contents` (Gemini).
    pub max_messages: usize,
}

/// Checks `body` against `limits`, in one pass that builds nothing. Bodies that are not JSON
/// pass: the decoder names that error.
pub fn check(body: &[u8], limits: &Limits) -> Result<(), ApiError> {
    let seed = TopSeed(limits.max_depth);
    let top = match seed.deserialize(&mut serde_json::Deserializer::from_slice(body)) {
        Ok(t) => t,
        Err(e) if e.to_string().starts_with(TOO_DEEP) => {
            return Err(ApiError::invalid(format!(
                "request body nests more than {} levels deep (server.max_json_depth)",
                limits.max_depth
            )));
        }
        Err(_) => return Ok(()),
    };
    if top.model_bytes > limits.max_model_bytes {
        return Err(ApiError::invalid(format!(
            "`model` is {} bytes long; the limit is {} (server.max_model_bytes)",
            top.model_bytes, limits.max_model_bytes
        ))
        .with_param("model"));
    }
    if let Some((key, n)) = top.messages.filter(|(_, n)| *n > limits.max_messages) {
        let what = if key == "messages" {
            "messages"
        } else {
            "items"
        };
        return Err(ApiError::invalid(format!(
            "`{key}` holds {n} {what}; the limit is {} (server.max_messages)",
            limits.max_messages
        ))
        .with_param(key));
    }
    Ok(())
}

const TOO_DEEP: &str = "nesting limit";

/// The deepest nesting of `[` and `{` outside strings, in one pass over the bytes.
pub fn max_depth(body: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let (mut in_str, mut escaped) = (false, false);
    for &b in body {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// The top level: the model's length and the message count.
#[derive(Default)]
struct Top {
    model_bytes: usize,
    /// The longest conversation array and its key.
    messages: Option<(&'static str, usize)>,
}

/// Reads the top-level object; the `usize` is the nesting allowed, the object included.
struct TopSeed(usize);

impl<'de> DeserializeSeed<'de> for TopSeed {
    type Value = Top;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed {
    type Value = Top;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Top, A::Error> {
        let left = deeper::<A::Error>(self.0)?;
        let mut top = Top::default();
        while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
            match k.as_ref() {
                "model" => {
                    let raw = m.next_value::<&'de serde_json::value::RawValue>()?;
                    top.model_bytes = raw.get().len().saturating_sub(2);
                }
                key @ ("messages" | "input" | "contents") => {
                    let key = match key {
                        "messages" => "messages",
                        "input" => "input",
                        _ => "contents",
                    };
                    let n = m.next_value_seed(Skip(left))?;
                    if top.messages.is_none_or(|(_, most)| n > most) {
                        top.messages = Some((key, n));
                    }
                }
                _ => {
                    m.next_value_seed(Skip(left))?;
                }
            }
        }
        Ok(top)
    }
}

/// One more level of nesting, or the error that stops the parse.
fn deeper<E: serde::de::Error>(left: usize) -> Result<usize, E> {
    left.checked_sub(1).ok_or_else(|| E::custom(TOO_DEEP))
}

/// Skips a value, failing past the allowed nesting; yields an array's length (0 otherwise).
struct Skip(usize);

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<usize, A::Error> {
        let left = deeper::<A::Error>(self.0)?;
        let mut n = 0;
        while s.next_element_seed(Self(left))?.is_some() {
            n += 1;
        }
        Ok(n)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<usize, A::Error> {
        let left = deeper::<A::Error>(self.0)?;
        while m.next_key::<IgnoredAny>()?.is_some() {
            m.next_value_seed(Self(left))?;
        }
        Ok(0)
    }
    fn visit_str<E>(self, _: &str) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_bool<E>(self, _: bool) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_i64<E>(self, _: i64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_u64<E>(self, _: u64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_f64<E>(self, _: f64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_unit<E>(self) -> Result<usize, E> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const L: Limits = Limits {
        max_depth: 8,
        max_model_bytes: 16,
        max_messages: 3,
    };

    #[test]
    fn each_limit_is_named_when_crossed() {
        let ok = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"[[[[[[[[[["}]}"#;
        assert!(check(ok, &L).is_ok(), "brackets inside strings do not nest");
        let deep = format!(
            r#"{{"model":"m","metadata":{}1{}}}"#,
            "[".repeat(9),
            "]".repeat(9)
        );
        let e = check(deep.as_bytes(), &L).unwrap_err();
        assert!(e.message.contains("server.max_json_depth"), "{}", e.message);
        let nested = format!(
            r#"{{"model":"m","metadata":{{"d":{}1{}}}}}"#,
            "[".repeat(7),
            "]".repeat(7)
        );
        assert!(
            check(nested.as_bytes(), &L)
                .unwrap_err()
                .message
                .contains("max_json_depth")
        );
        let at_limit = format!(
            r#"{{"model":"m","metadata":{}1{}}}"#,
            "[".repeat(6),
            "]".repeat(6)
        );
        assert!(
            check(at_limit.as_bytes(), &L).is_ok(),
            "8 levels: object, metadata, 6 arrays"
        );
        let long = format!(r#"{{"model":"{}","messages":[]}}"#, "x".repeat(17));
        let e = check(long.as_bytes(), &L).unwrap_err();
        assert!(
            e.message.contains("server.max_model_bytes"),
            "{}",
            e.message
        );
        assert!(
            !e.message.contains(&"x".repeat(17)),
            "the name is not echoed"
        );
        let many = br#"{"model":"m","messages":[1,2,3,4]}"#;
        let e = check(many, &L).unwrap_err();
        assert!(
            e.message.contains("holds 4 messages") && e.message.contains("server.max_messages")
        );
        assert!(check(br#"{"model":"m","messages":[1,2,3]}"#, &L).is_ok());
        // The Responses API's `input` and Gemini's `contents` are held to the same limit.
        for key in ["input", "contents"] {
            let body = format!(r#"{{"model":"m","{key}":[1,2,3,4]}}"#);
            let e = check(body.as_bytes(), &L).unwrap_err();
            assert!(
                e.message.contains(&format!("`{key}` holds 4 items")),
                "{}",
                e.message
            );
            assert_eq!(e.param.as_deref(), Some(key));
        }
        assert!(check(br#"{"model":"m","input":"a long string is one item"}"#, &L).is_ok());
        assert!(
            check(br#"{"messages":"x","model":5}"#, &L).is_ok(),
            "types are the decoder's job"
        );
        assert!(check(b"not json", &L).is_ok());
    }

    #[test]
    fn escaped_quotes_do_not_end_strings() {
        assert_eq!(max_depth(br#"{"a":"\"[[[","b":[[1]]}"#), 3);
        assert_eq!(max_depth(br#"["\\",[[]]]"#), 3);
    }

    proptest! {
        #[test]
        fn depth_matches_serde(v in any::<u8>().prop_flat_map(|d| {
            let d = d as usize % 40;
            Just(format!("{}\"]{{\\\"\"{}", "[".repeat(d), "]".repeat(d)))
        })) {
            // `[[..."]{\""]]...`: the string holds brackets and an escaped quote.
            let parsed: serde_json::Value = serde_json::from_str(&v).unwrap();
            let mut depth = 0;
            let mut cur = &parsed;
            while let Some(a) = cur.as_array() {
                depth += 1;
                match a.first() { Some(x) => cur = x, None => break }
            }
            prop_assert_eq!(max_depth(v.as_bytes()), depth);
            // The one-pass check agrees: the object adds a level.
            let body = format!(r#"{{"model":"m","x":{v}}}"#);
            for allowed in [depth, depth + 1, depth + 2] {
                let lim = Limits { max_depth: allowed, ..L };
                prop_assert_eq!(check(body.as_bytes(), &lim).is_ok(), depth < allowed, "{} allowed {}", body, allowed);
            }
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = check(&bytes, &L);
        }
    }
}
