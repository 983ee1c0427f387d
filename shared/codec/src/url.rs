//! Percent-encoding for URL paths and queries (RFC 3986), byte-safe in both directions.

/// Decodes `%XX` escapes; malformed escapes stay as they are, invalid UTF-8 becomes U+FFFD.
pub fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if let (b'%', Some(&h), Some(&l)) = (b[i], b.get(i + 1), b.get(i + 2))
            && let (Some(h), Some(l)) = (hex(h), hex(l))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes every byte outside RFC 3986's unreserved set (`A-Z a-z 0-9 - . _ ~`), so the value
/// is one path segment or one query value whatever it holds (`/`, `:`, `?`, `&`, spaces).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decoding_never_panics_and_keeps_bad_escapes() {
        assert_eq!(percent_decode("groq%2Fllama-3%3A1"), "groq/llama-3:1");
        assert_eq!(percent_decode("a%zz%"), "a%zz%");
        assert_eq!(percent_decode("%é%4"), "%é%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }

    #[test]
    fn encoding_leaves_only_unreserved_bytes() {
        assert_eq!(
            percent_encode("us.anthropic.claude-3:0/x y?é"),
            "us.anthropic.claude-3%3A0%2Fx%20y%3F%C3%A9"
        );
    }

    proptest! {
        #[test]
        fn round_trips(s in "\\PC*") {
            prop_assert_eq!(percent_decode(&percent_encode(&s)), s);
        }
    }
}
