//! Gemini function calls carry no ids, but their `thoughtSignature` must come back on the same
//! part in later turns (Gemini 3 refuses the request otherwise). Clients of other formats echo
//! only a call's id, so the id carries the signature: `call_<n>_<tag>` + `_gts_` + the signature
//! in URL-safe base64 without padding (ids stay within Anthropic's `[a-zA-Z0-9_-]`).

const MARK: &str = "_gts_";

/// An id for the `n`th call of response `response_id`, carrying `signature` when there is one.
pub(crate) fn call_id(response_id: &str, n: usize, signature: Option<&str>) -> String {
    let tag: String = response_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    let base = format!("call_{n}_{tag}");
    match signature {
        Some(s) if !s.is_empty() => format!("{base}{MARK}{}", to_url_safe(s)),
        _ => base,
    }
}

/// The signature an id carries, as Gemini issued it.
pub(crate) fn signature_of(id: &str) -> Option<String> {
    let (_, s) = id.split_once(MARK)?;
    (!s.is_empty()).then(|| from_url_safe(s))
}

/// The id without its signature (for upstreams that limit id length, e.g. OpenAI's 40).
pub(crate) fn bare(id: &str) -> &str {
    id.split_once(MARK).map_or(id, |(b, _)| b)
}

/// Bytes fields as standard padded base64, whichever alphabet the client used (the google-genai
/// SDK writes them URL-safe).
pub(crate) fn standard_base64(s: &str) -> String {
    from_url_safe(s.trim_end_matches('='))
}

/// Whether `s` can go in a bytes field (base64 in either alphabet): a Gemini client's SDK
/// refuses the response otherwise.
pub(crate) fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    let in_alphabet = |extra: [u8; 2]| {
        body.bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
    };
    !body.is_empty() && body.len() % 4 != 1 && (in_alphabet(*b"+/") || in_alphabet(*b"-_"))
}

const WRAP: &[u8] = b"gw-sig:";

/// A signature as a bytes field for a Gemini client: base64 ones as they are; any other (another
/// provider's) wrapped in base64 with a marker, so it comes back whole.
pub(crate) fn wrap_signature(s: &str) -> String {
    if is_base64(s) {
        return s.to_owned();
    }
    base64_encode(&[WRAP, s.as_bytes()].concat())
}

/// A signature from a Gemini client: standard base64, or the original of a wrapped one.
pub(crate) fn unwrap_signature(s: &str) -> String {
    let std = standard_base64(s);
    match base64_decode(&std) {
        Some(b) if b.starts_with(WRAP) => String::from_utf8_lossy(&b[WRAP.len()..]).into_owned(),
        _ => std,
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let body = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in body.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// What Google documents for calls made by another model (no signature to return): skips the
/// check that Gemini 3 makes on function calls in the current turn.
pub(crate) const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

fn to_url_safe(b64: &str) -> String {
    b64.trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect()
}

fn from_url_safe(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_signature_survives_the_id_byte_for_byte() {
        let sig = "EqUCCqICAb4+9vsh8Pd5taZV/oPzSvjWWw==";
        let id = call_id("b36LacjwM668nsEP2tbsgQQ", 0, Some(sig));
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{id}"
        );
        assert_eq!(signature_of(&id).as_deref(), Some(sig));
        assert_eq!(bare(&id), "call_0_b36LacjwM668");
        assert_eq!(signature_of(&call_id("r", 1, None)), None);
        assert_eq!(signature_of("toolu_01abc"), None);
        assert!(
            is_base64("EqUC+/==") && is_base64("EqUC-_") && !is_base64("sig-+/") && !is_base64("")
        );
    }

    #[test]
    fn signatures_that_are_not_base64_are_wrapped_and_come_back_whole() {
        for sig in ["sig-++++////MSPC/g==", "EqUCCqICAb4+9vsh", "a b"] {
            let w = wrap_signature(sig);
            assert!(is_base64(&w), "{w}");
            // The google-genai SDK sends bytes fields back URL-safe.
            let url_safe: String = w
                .chars()
                .map(|c| match c {
                    '+' => '-',
                    '/' => '_',
                    c => c,
                })
                .collect();
            assert_eq!(unwrap_signature(&url_safe), sig);
        }
    }

    proptest! {
        #[test]
        fn any_padded_base64_round_trips(bytes in proptest::collection::vec(any::<u8>(), 1..200)) {
            // Standard base64 of arbitrary bytes, computed here without a dependency.
            const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut s = String::new();
            for c in bytes.chunks(3) {
                let n = (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
                for i in 0..4 {
                    if i <= c.len() { s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char); } else { s.push('='); }
                }
            }
            prop_assert_eq!(signature_of(&call_id("x", 0, Some(&s))), Some(s));
        }
    }
}
