//! AWS Signature Version 4 (header signing), sans-IO: time is an argument.
//!
//! Verified against the AWS signing test suite (tests/aws-signing-test-suite). Used for DynamoDB
//! (shared state) and, later, Bedrock.

use crate::hex;
use bytes::Bytes;
use gw_codec::percent_decode;
use hmac::{Hmac, Mac};
use http::{HeaderValue, Request};
use sha2::{Digest, Sha256};

/// AWS credentials.
#[derive(Clone)]
pub struct Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token (temporary credentials, e.g. a Lambda role's).
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// How to build the canonical request.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Percent-encode the path as sent once more (every AWS service but S3).
    pub double_encode_path: bool,
    /// Remove `.`/`..` segments and empty segments from the path.
    pub normalize_path: bool,
    /// Add `x-amz-content-sha256`.
    pub sign_body_header: bool,
    /// Leave `x-amz-security-token` out of the signature (added after signing; a few services want that).
    pub omit_session_token: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            double_encode_path: true,
            normalize_path: true,
            sign_body_header: false,
            omit_session_token: false,
        }
    }
}

/// Signs `req` in place: adds `x-amz-date` (and `x-amz-security-token`, `x-amz-content-sha256`
/// as configured) and `authorization`. `unix_secs` is the signing time.
pub fn sign(
    req: &mut Request<Bytes>,
    creds: &Credentials,
    region: &str,
    service: &str,
    unix_secs: u64,
    s: Settings,
) {
    let amz_date = amz_date(unix_secs);
    let date = &amz_date[..8];
    let h = req.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&amz_date) {
        h.insert("x-amz-date", v);
    }
    let token = creds
        .session_token
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok());
    if let (Some(t), false) = (&token, s.omit_session_token) {
        h.insert("x-amz-security-token", t.clone());
    }
    let payload_hash = hex(&Sha256::digest(req.body()));
    if s.sign_body_header
        && let Ok(v) = HeaderValue::from_str(&payload_hash)
    {
        req.headers_mut().insert("x-amz-content-sha256", v);
    }
    let (canonical, signed_headers) = canonical_request(req, &payload_hash, s);
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", creds.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, to_sign.as_bytes()));
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key_id
    );
    if let Ok(v) = HeaderValue::from_str(&auth) {
        req.headers_mut().insert("authorization", v);
    }
    if let (Some(t), true) = (token, s.omit_session_token) {
        req.headers_mut().insert("x-amz-security-token", t);
    }
}

/// The canonical request and the signed-headers list.
pub fn canonical_request(
    req: &Request<Bytes>,
    payload_hash: &str,
    s: Settings,
) -> (String, String) {
    let uri = req.uri();
    let raw_path = if uri.path().is_empty() {
        "/"
    } else {
        uri.path()
    };
    let path = if s.normalize_path {
        normalize(raw_path)
    } else {
        raw_path.to_owned()
    };
    let path = if s.double_encode_path {
        encode(&path, false)
    } else {
        encode(&percent_decode(&path), false)
    };
    let mut query: Vec<(String, String)> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                encode(&percent_decode(k), true),
                encode(&percent_decode(v), true),
            )
        })
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, value) in req.headers() {
        let v = String::from_utf8_lossy(value.as_bytes());
        let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
        match headers.iter_mut().find(|(n, _)| n == name.as_str()) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            None => headers.push((name.as_str().to_owned(), v)),
        }
    }
    if !headers.iter().any(|(n, _)| n == "host")
        && let Some(a) = uri.authority()
    {
        headers.push(("host".into(), a.as_str().to_owned()));
    }
    headers.sort();
    let signed = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canon_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let canonical = format!(
        "{}\n{path}\n{query}\n{canon_headers}\n{signed}\n{payload_hash}",
        req.method()
    );
    (canonical, signed)
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length: new_from_slice cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// RFC 3986 unreserved characters stay; everything else is `%XX`. Slashes stay in paths.
fn encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// RFC 3986 remove-dot-segments, also dropping empty segments; keeps a trailing slash.
fn normalize(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut p = format!("/{}", out.join("/"));
    let trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    if trailing && p != "/" {
        p.push('/');
    }
    p
}

/// `YYYYMMDD'T'HHMMSS'Z'` for a Unix time (civil-from-days, no calendar crate).
pub fn amz_date(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
