//! `cdniuc`: a URI container (`hash:`, `regex:`, anything) read from a
//! token and matched against the request URI.
//!
//! Input: the container on the first line, a request path on the second, a
//! canonical query on the third. The container travels in a signed token's
//! claims and is matched as the gate matches it. Checks: the container
//! never panics or stalls; the `hash:` of the request URI and a `regex:`
//! spelling it out match it, and a `regex:` pattern that matches nothing else
//! opens nothing.

#![no_main]

use std::sync::LazyLock;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cdn_node::fuzzing::jwt::{AUDIENCE, Gate, ISSUER, Reject, RequestFacts};
use cdn_node::fuzzing::request::{canonical, canonicalize_bytes, parse};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

const NOW: u64 = 1_700_000_000;
const HOST: &str = "cdn.example";

static GATE: LazyLock<Gate> = LazyLock::new(Gate::new);

fn open(container: &str, facts: &RequestFacts<'_>) -> Result<(), Reject> {
    let claims = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": NOW + 60,
        "cdniuc": container,
    });
    let token = GATE.sign(
        br#"{"alg":"HS256","kid":"k1"}"#,
        claims.to_string().as_bytes(),
    );
    GATE.verifier().authorize(&token, facts, NOW).map(|_| ())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(3, '\n');
    let container = lines.next().unwrap_or_default();
    let path = lines
        .next()
        .and_then(|raw| canonicalize_bytes(raw.as_bytes()).ok())
        .unwrap_or_else(|| "/a".to_owned());
    let query = lines
        .next()
        .and_then(|raw| parse(raw).ok())
        .map(|pairs| canonical(&pairs, |_| true))
        .unwrap_or_default();
    let facts = RequestFacts {
        path: &path,
        client: None,
        host: Some(HOST),
        query: &query,
    };
    match open(container, &facts) {
        Ok(())
        | Err(Reject::UriMismatch)
        | Err(Reject::Malformed)
        | Err(Reject::UnsupportedUriContainer) => {}
        Err(other) => panic!("unexpected refusal {other:?} for {container:?}"),
    }

    // The URI the gate matches: scheme, host, canonical path and query.
    let mut uri = format!("http://{HOST}{path}");
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(&query);
    }
    let hash = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, uri.as_bytes()));
    assert_eq!(open(&format!("hash:{hash}"), &facts), Ok(()), "{uri}");
    let exact = format!("regex:{}", regex::escape(&uri));
    assert_eq!(open(&exact, &facts), Ok(()), "{uri}");
    // Anchored: the exact pattern of a longer URI does not open this one.
    let longer = format!("regex:{}", regex::escape(&format!("{uri}x")));
    assert_eq!(open(&longer, &facts), Err(Reject::UriMismatch), "{uri}");
});
