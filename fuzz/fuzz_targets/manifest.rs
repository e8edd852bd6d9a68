//! The manifest rewriter: HLS playlists and DASH MPDs given the request's
//! token on every URI that stays on this host.
//!
//! Input: the first byte picks the format (`h`: HLS, anything else: DASH),
//! the rest is the body. Checks: never a panic (nor a stall: libFuzzer's
//! timeout); a rewritten body is UTF-8, no shorter than the original, and
//! rewriting it again changes nothing.

#![no_main]

use cdn_node::manifest::{Kind, Token, rewrite};
use libfuzzer_sys::fuzz_target;

const TOKEN: Token<'static> = Token {
    param: "jwt",
    value: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzLTcifQ.c2ln",
    known_params: &["jwt", "token"],
};
const HOST: Option<&str> = Some("cdn.example");

fuzz_target!(|data: &[u8]| {
    let Some((&format, body)) = data.split_first() else {
        return;
    };
    let kind = if format == b'h' {
        Kind::Hls
    } else {
        Kind::Dash
    };
    let Ok(out) = rewrite(kind, body, &TOKEN, HOST) else {
        return;
    };
    assert!(std::str::from_utf8(&out).is_ok(), "not UTF-8");
    assert!(out.len() >= body.len(), "the rewrite lost bytes");
    let again = rewrite(kind, &out, &TOKEN, HOST);
    assert_eq!(again.as_deref(), Ok(&out[..]), "not idempotent");
});
