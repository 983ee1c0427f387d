//! The AWS SigV4 signing test suite (header signing): canonical request, string to sign and
//! signature for every case in tests/aws-signing-test-suite/v4.
#![allow(
    clippy::unwrap_used,
    reason = "a test harness: a malformed fixture should fail loudly"
)]

use bytes::Bytes;
use gw_auth::sigv4::{self, Credentials, Settings};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Parses the suite's raw HTTP request format (continuation lines fold into one value).
fn parse_request(raw: &str) -> http::Request<Bytes> {
    let (head, body) = raw.split_once("\n\n").unwrap_or((raw, ""));
    let mut lines = head.lines();
    let first = lines.next().unwrap();
    let (method, rest) = first.split_once(' ').unwrap();

    let target = rest.rsplit_once(' ').map_or(rest, |(t, _)| t);
    // http::Uri takes ASCII only: raw bytes and spaces are sent percent-encoded.
    let mut uri = String::new();
    for b in target.bytes() {
        if b.is_ascii_graphic() {
            uri.push(b as char)
        } else {
            uri.push_str(&format!("%{b:02X}"))
        }
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    for l in lines {
        if l.starts_with(' ') || l.starts_with('\t') {
            let last = headers.last_mut().unwrap();
            last.1.push(' ');
            last.1.push_str(l.trim());
        } else if let Some((n, v)) = l.split_once(':') {
            headers.push((n.to_owned(), v.trim().to_owned()));
        }
    }
    let mut b = http::Request::builder().method(method).uri(uri);
    for (n, v) in headers {
        b = b.header(n, v);
    }
    b.body(Bytes::from(body.to_owned())).unwrap()
}

fn unix(ts: &str) -> u64 {
    // "2015-08-30T12:36:00Z": days from civil.
    let (y, m, d) = (
        ts[0..4].parse::<i64>().unwrap(),
        ts[5..7].parse::<i64>().unwrap(),
        ts[8..10].parse::<i64>().unwrap(),
    );
    let (hh, mm, ss) = (
        ts[11..13].parse::<u64>().unwrap(),
        ts[14..16].parse::<u64>().unwrap(),
        ts[17..19].parse::<u64>().unwrap(),
    );
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe - 719_468) as u64;
    days * 86_400 + hh * 3600 + mm * 60 + ss
}

#[test]
fn aws_sigv4_suite() {
    // The run-time value (cargo and nextest set it): a binary cached from a clone elsewhere
    // must read this checkout's files, not the compile-time path.
    let root =
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let dir = Path::new(&root).join("tests/aws-signing-test-suite/v4");
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let case = entry.unwrap().path();
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let read = |f: &str| std::fs::read_to_string(case.join(f)).ok();
        let mut req = parse_request(&read("request.txt").unwrap());
        let want_canonical = read("header-canonical-request.txt").unwrap();
        match read("context.json") {
            None => {
                // Legacy cases: a real service's path, encoded again (x-amz-date already present).
                // Their harness re-signs at the time in the expected output: take x-amz-date from there.
                let date = want_canonical
                    .lines()
                    .find_map(|l| l.strip_prefix("x-amz-date:"))
                    .unwrap();
                req.headers_mut()
                    .insert("x-amz-date", date.parse().unwrap());
                let hash = format!("{:x}", Sha256::digest(req.body()));
                let s = Settings::default();
                assert_eq!(
                    sigv4::canonical_request(&req, &hash, s).0,
                    want_canonical,
                    "{name}"
                );
            }
            Some(ctx) => {
                let ctx: serde_json::Value = serde_json::from_str(&ctx).unwrap();
                let c = &ctx["credentials"];
                let creds = Credentials {
                    access_key_id: c["access_key_id"].as_str().unwrap().into(),
                    secret_access_key: c["secret_access_key"].as_str().unwrap().into(),
                    session_token: c["token"].as_str().map(str::to_owned),
                };
                let s = Settings {
                    double_encode_path: false,
                    normalize_path: ctx["normalize"].as_bool().unwrap(),
                    sign_body_header: ctx["sign_body"].as_bool().unwrap(),
                    omit_session_token: ctx["omit_session_token"].as_bool().unwrap_or(false),
                };
                let t = unix(ctx["timestamp"].as_str().unwrap());
                sigv4::sign(
                    &mut req,
                    &creds,
                    ctx["region"].as_str().unwrap(),
                    ctx["service"].as_str().unwrap(),
                    t,
                    s,
                );
                let hash = format!("{:x}", Sha256::digest(req.body()));
                let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
                if let Some(sig) = read("header-signature.txt") {
                    assert!(
                        auth.ends_with(&format!("Signature={}", sig.trim())),
                        "{name}: {auth}"
                    );
                }
                let mut unsigned = req.clone();
                unsigned.headers_mut().remove("authorization");
                if s.omit_session_token {
                    unsigned.headers_mut().remove("x-amz-security-token");
                }
                assert_eq!(
                    sigv4::canonical_request(&unsigned, &hash, s).0,
                    want_canonical,
                    "{name}"
                );
            }
        }
        cases += 1;
    }
    assert_eq!(cases, 40);
}

#[test]
fn amz_date_formats_unix_time() {
    assert_eq!(sigv4::amz_date(1_440_938_160), "20150830T123600Z");
    assert_eq!(sigv4::amz_date(951_782_400), "20000229T000000Z");
    assert_eq!(sigv4::amz_date(0), "19700101T000000Z");
}
