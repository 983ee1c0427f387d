//! Same-format fast path: forward the client's bytes, touching only named top-level fields.
//!
//! The body is scanned once into borrowed raw values (no value is parsed or re-serialised), so
//! everything the gateway does not understand — thinking signatures, cache marks, new fields —
//! reaches the upstream exactly as the client wrote it.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

struct TopLevel<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(m.size_hint().unwrap_or(8));
                while let Some(k) = m.next_key::<Cow<'de, str>>()? {
                    v.push((k, m.next_value::<&'de RawValue>()?));
                }
                Ok(TopLevel(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// Rewrites top-level fields of a JSON object: each `(key, Some(raw_json))` replaces or appends
/// the field, each `(key, None)` removes it. Other fields keep their bytes and order.
/// Returns `None` if `body` is not a JSON object.
pub fn patch_fields(body: &[u8], patches: &[(&str, Option<&str>)]) -> Option<Vec<u8>> {
    let top: TopLevel<'_> = serde_json::from_slice(body).ok()?;
    let mut out = Vec::with_capacity(body.len() + 64);
    out.push(b'{');
    let mut first = true;
    let mut push = |out: &mut Vec<u8>, k: &str, v: &str| {
        if !first {
            out.push(b',');
        }
        first = false;
        // Keys are re-escaped only if they needed escaping; plain keys are copied as is.
        out.extend_from_slice(serde_json::to_string(k).unwrap_or_default().as_bytes());
        out.push(b':');
        out.extend_from_slice(v.as_bytes());
    };
    let mut applied = vec![false; patches.len()];
    for (k, v) in &top.0 {
        match patches.iter().position(|(pk, _)| *pk == k.as_ref()) {
            Some(i) => {
                applied[i] = true;
                if let Some(nv) = patches[i].1 {
                    push(&mut out, k, nv);
                }
            }
            None => push(&mut out, k, v.get()),
        }
    }
    for (i, (k, v)) in patches.iter().enumerate() {
        if let (false, Some(v)) = (applied[i], v) {
            push(&mut out, k, v);
        }
    }
    out.push(b'}');
    Some(out)
}

/// A JSON string literal for `s`.
pub fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_the_named_fields_and_keeps_bytes() {
        let body = br#"{ "model" : "gpt-4", "messages":[{"role":"user","content":"h\u00e9"}],"x":{"sig":"a\/b=="} }"#;
        let out = patch_fields(body, &[("model", Some("\"gpt-4o\""))]).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"h\u00e9"}],"x":{"sig":"a\/b=="}}"#
        );
    }

    #[test]
    fn appends_and_removes() {
        let out = patch_fields(br#"{"a":1,"b":2}"#, &[("b", None), ("c", Some("true"))]).unwrap();
        assert_eq!(out, br#"{"a":1,"c":true}"#);
        assert!(patch_fields(b"[1]", &[]).is_none());
        assert!(patch_fields(b"{", &[]).is_none());
    }
}
