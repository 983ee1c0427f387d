//! Lenient typed fields for decoding upstream answers without a JSON tree: a field of the wrong
//! type reads as absent, as `Value::get(..).and_then(as_str)` did, instead of failing the whole
//! answer. Strings are borrowed from the body where they have no escapes.

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// A string field: `None` when absent or not a string.
#[derive(Debug, Default)]
pub(crate) struct Str<'a>(pub(crate) Option<Cow<'a, str>>);

impl<'a> Str<'a> {
    pub(crate) fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The string, or empty.
    pub(crate) fn owned(self) -> String {
        self.0.map(Cow::into_owned).unwrap_or_default()
    }
}

/// An unsigned integer field: 0 when absent or not one.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct U64(pub(crate) u64);

/// An array field kept as its elements' raw text: empty when absent or not an array.
#[derive(Debug, Default)]
pub(crate) struct RawList<'a>(pub(crate) Vec<&'a RawValue>);

/// Skips what a visitor does not take.
macro_rules! skip_rest {
    ($out:expr) => {
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok($out)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($out)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($out)
        }
    };
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Borrowed(s))))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Owned(s.to_owned()))))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Owned(s))))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Str(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Str(None))
            }
            skip_rest!(Str(None));
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for U64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = U64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
                Ok(U64(n))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(U64(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(U64(0))
            }
            skip_rest!(U64(0));
        }
        d.deserialize_any(V)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawList<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawList<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(s.size_hint().unwrap_or(0));
                while let Some(e) = s.next_element::<&'de RawValue>()? {
                    out.push(e);
                }
                Ok(RawList(out))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(RawList(Vec::new()))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(RawList(Vec::new()))
            }
            skip_rest!(RawList(Vec::new()));
        }
        d.deserialize_any(V)
    }
}

/// An object's fields, each key with its value's text, in order; nothing is parsed further. A
/// key may repeat: `get` gives the last, as a JSON tree would keep it.
pub(crate) struct Fields<'a>(pub(crate) Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Fields<'a> {
    pub(crate) fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(m.size_hint().unwrap_or(16));
                while let Some(k) = m.next_key::<Cow<'de, str>>()? {
                    v.push((k, m.next_value::<&'de RawValue>()?));
                }
                Ok(Fields(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// `T` read from an object's text, or `None` when it is not an object or not one of `T`'s
/// shape. serde would read an array as a struct's fields in order, hence the check.
pub(crate) fn object_text<'a, T: Deserialize<'a>>(raw: &'a str) -> Option<T> {
    if raw.trim_start().starts_with('{') {
        serde_json::from_str(raw).ok()
    } else {
        None
    }
}

/// `T` read from an object's text; anything else (or a field that fails) reads as the default.
pub(crate) fn object_from_str<'a, T: Deserialize<'a> + Default>(raw: &'a str) -> T {
    object_text(raw).unwrap_or_default()
}

/// For `deserialize_with`: a nested object field read as `object_from_str` reads it.
pub(crate) fn object<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    let raw: &'de RawValue = Deserialize::deserialize(d)?;
    Ok(object_from_str(raw.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct T<'a> {
        #[serde(default, borrow)]
        s: Str<'a>,
        #[serde(default)]
        n: U64,
        #[serde(default, borrow)]
        l: RawList<'a>,
    }

    #[test]
    fn fields_of_the_wrong_type_read_as_absent() {
        for body in [
            r#"{"s": 1, "n": "x", "l": {"a": [1]}}"#,
            r#"{"s": [1, {"b": 2}], "n": -3, "l": "no"}"#,
            r#"{"s": {"k": "v"}, "n": 1.5, "l": null}"#,
            r#"{"s": null, "n": [2], "l": true}"#,
            r#"{}"#,
        ] {
            let t: T<'_> = serde_json::from_str(body).unwrap();
            assert!(t.s.as_deref().is_none(), "{body}");
            assert_eq!(t.n.0, 0, "{body}");
            assert!(t.l.0.is_empty(), "{body}");
        }
    }

    #[test]
    fn good_fields_are_read_and_plain_strings_borrowed() {
        let body = r#"{"s": "plain", "n": 42, "l": [{"a": 1}, "x", [2]], "other": {"z": [1]}}"#;
        let t: T<'_> = serde_json::from_str(body).unwrap();
        assert!(matches!(t.s.0, Some(Cow::Borrowed("plain"))));
        assert_eq!(t.n.0, 42);
        let raw: Vec<&str> = t.l.0.iter().map(|r| r.get()).collect();
        assert_eq!(raw, [r#"{"a": 1}"#, r#""x""#, "[2]"]);
        let t: T<'_> = serde_json::from_str(r#"{"s": "a\"b"}"#).unwrap();
        assert_eq!(t.s.owned(), "a\"b");
    }
}
