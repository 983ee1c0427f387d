//! Inbound proxy-key checks, upstream signers and secret hygiene.
//!
//! Keys are compared as SHA-256 digests in constant time, over every configured key, so neither
//! timing nor length reveals how close a guess was.

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The configured proxy keys, by name.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<(String, [u8; 32])>,
}

impl KeySet {
    /// Builds the set from (name, key) pairs.
    pub fn new<'a>(keys: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            keys: keys
                .into_iter()
                .map(|(n, k)| (n.to_owned(), digest(k)))
                .collect(),
        }
    }

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The name of the key `presented` matches, checked against every key in constant time.
    pub fn check(&self, presented: &str) -> Option<&str> {
        let d = digest(presented);
        let mut found = None;
        for (name, k) in &self.keys {
            if bool::from(k.ct_eq(&d)) && found.is_none() {
                found = Some(name.as_str());
            }
        }
        found
    }
}

pub mod google;
pub mod signer;
pub mod sigv4;
pub mod token;

pub use signer::{SignError, Signer};

/// A short, stable, non-reversible tag for a secret (16 hex chars of its SHA-256), to key state
/// by credential without storing the credential.
pub fn fingerprint(secret: &str) -> String {
    hex(&digest(secret)[..8])
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// The proxy key a client presented: `X-Proxy-Key`, `Authorization: Bearer`, `x-api-key` or
/// `x-goog-api-key`, in that order.
pub fn presented_key(h: &HeaderMap) -> Option<&str> {
    let get = |n: &str| {
        h.get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    get("x-proxy-key")
        .or_else(|| {
            get("authorization").and_then(|a| {
                let (scheme, rest) = a.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
        })
        .or_else(|| get("x-api-key"))
        .or_else(|| get("x-goog-api-key"))
}

/// Removes every known secret from text that leaves the gateway (errors, logs).
#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    secrets: Vec<String>,
    /// Every form `scrub` replaces, searched for first: most text (every log line) holds none,
    /// and prebuilt searchers find that out without building one per secret per line.
    forms: Vec<memchr::memmem::Finder<'static>>,
}

impl Scrubber {
    /// Secrets shorter than 6 characters are ignored: replacing them would mangle ordinary text.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| s.len() >= 6).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        // A secret with partial forms contains its prefix: searching for that finds it too.
        let mut forms: Vec<_> = Self::partials(&secrets).flatten().collect();
        forms.extend(
            secrets
                .iter()
                .filter(|s| !Self::has_partials(s))
                .map(String::as_str),
        );
        let forms = forms
            .into_iter()
            .map(|f| memchr::memmem::Finder::new(f.as_bytes()).into_owned())
            .collect();
        Self { secrets, forms }
    }

    /// Whether `s` is long enough to have an 8-character prefix and suffix of its own.
    fn has_partials(s: &str) -> bool {
        s.len() >= 16 && s.is_char_boundary(8) && s.is_char_boundary(s.len() - 8)
    }

    /// The 8-character prefix and suffix of each secret long enough to have them.
    fn partials(secrets: &[String]) -> impl Iterator<Item = [&str; 2]> {
        secrets
            .iter()
            .filter(|s| Self::has_partials(s))
            .map(|s| [&s[..8], &s[s.len() - 8..]])
    }

    /// [`Scrubber::scrub`] without a copy when there is nothing to remove.
    pub fn scrub_cow<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        let hay = text.as_bytes();
        if self.forms.iter().all(|f| f.find(hay).is_none()) {
            return std::borrow::Cow::Borrowed(text);
        }
        std::borrow::Cow::Owned(self.replace_all(text))
    }

    /// `text` with each secret, and any 8+ character prefix or suffix of one (providers echo
    /// keys masked like `sk-abc...wxyz`), replaced by `[REDACTED]`. Every whole secret goes
    /// before any partial form: keys that share a prefix (`sk-proj-...`) must not have their
    /// whole form broken up by another key's prefix.
    pub fn scrub(&self, text: &str) -> String {
        self.scrub_cow(text).into_owned()
    }

    fn replace_all(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "[REDACTED]");
            }
        }
        for parts in Self::partials(&self.secrets) {
            for part in parts {
                if out.contains(part) {
                    out = out.replace(part, "[REDACTED]");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_by_name() {
        let ks = KeySet::new([("a", "key-aaaa"), ("b", "key-bbbb")]);
        assert_eq!(ks.check("key-bbbb"), Some("b"));
        assert_eq!(ks.check("key-bbb"), None);
        assert_eq!(ks.check(""), None);
        assert!(KeySet::default().check("x").is_none());
    }

    #[test]
    fn presented_key_headers_in_order() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert("x-goog-api-key", "g".parse().unwrap());
        assert_eq!(presented_key(&h), Some("g"));
        h.insert("x-api-key", "x".parse().unwrap());
        assert_eq!(presented_key(&h), Some("x"));
        h.insert("authorization", "Bearer  b ".parse().unwrap());
        assert_eq!(presented_key(&h), Some("b"));
        h.insert("x-proxy-key", "p".parse().unwrap());
        assert_eq!(presented_key(&h), Some("p"));
        let mut h = HeaderMap::new();
        h.insert("authorization", "Basic zzz".parse().unwrap());
        assert_eq!(presented_key(&h), None);
    }

    #[test]
    fn scrubs_whole_and_masked_secrets() {
        let s = Scrubber::new(["sk-upstream-SECRET-123456".to_owned(), "abc".to_owned()]);
        assert_eq!(
            s.scrub("bad key sk-upstream-SECRET-123456!"),
            "bad key [REDACTED]!"
        );
        assert_eq!(
            s.scrub("Incorrect API key provided: sk-upstr*****123456"),
            "Incorrect API key provided: [REDACTED]*****123456"
        );
        assert_eq!(s.scrub("abc is fine"), "abc is fine");
        // A suffix alone is found too (the prebuilt search must hold every form).
        assert_eq!(s.scrub("key ...RET-123456"), "key ...RE[REDACTED]");
        assert!(matches!(
            s.scrub_cow("nothing secret here"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn look_alike_keys_are_replaced_whole() {
        // Two OpenAI project keys: same 8-character prefix, different lengths.
        let short = "sk-proj-AAAAbbbbCCCCddddEEEE".to_owned();
        let long = "sk-proj-ZZZZyyyyXXXXwwwwVVVVuuuuTTTT".to_owned();
        let s = Scrubber::new([long.clone(), short.clone()]);
        for key in [&short, &long] {
            let out = s.scrub(&format!("Incorrect API key provided: {key}."));
            assert_eq!(out, "Incorrect API key provided: [REDACTED].");
        }
        let both = s.scrub(&format!("{short} and {long}"));
        assert_eq!(both, "[REDACTED] and [REDACTED]");
        // Whatever the order or overlap, no 8+ character run of a key survives.
        let out = s.scrub(&format!("{short}{long}{short}"));
        for k in [&short, &long] {
            for w in k.as_bytes().windows(8) {
                let w = std::str::from_utf8(w).unwrap();
                assert!(!out.contains(w) || w.starts_with("[RED"), "{out} keeps {w}");
            }
        }
    }

    #[test]
    fn a_fingerprint_is_the_first_8_bytes_of_sha256_in_hex() {
        // State keys written by earlier versions name credentials this way: it must not drift.
        assert_eq!(fingerprint("abc"), "ba7816bf8f01cfea");
    }
}
