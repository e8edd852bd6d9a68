//! The token gate: the JOSE header read before the key is chosen, and the
//! claims of a token whose signature holds.
//!
//! Input: the header JSON on the first line, the claims JSON on the second,
//! optionally a request path on the third. The whole input is also tried as
//! a token as it stands (the header is read, the signature never holds).
//! The header and claims are then signed with the gate's key, so that any
//! claims reach the claim checks. Checks: a token that opens a request names
//! the configured issuer and audience and is within its lifetime; a renewed
//! token verifies.

#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::LazyLock;

use cdn_node::fuzzing::jwt::{AUDIENCE, Gate, ISSUER, Reject, RequestFacts};
use cdn_node::fuzzing::request::canonicalize_bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const NOW: u64 = 1_700_000_000;

static GATE: LazyLock<Gate> = LazyLock::new(Gate::new);

fuzz_target!(|data: &[u8]| {
    let gate = &*GATE;
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = gate.verifier().verify(text, NOW);
    }

    let mut lines = data.splitn(3, |&b| b == b'\n');
    let header = lines.next().unwrap_or_default();
    let claims = lines.next().unwrap_or_default();
    let path = lines
        .next()
        .and_then(|raw| canonicalize_bytes(raw).ok())
        .unwrap_or_else(|| "/courses/101/seg-1.ts".to_owned());
    let token = gate.sign(header, claims);
    let facts = RequestFacts {
        path: &path,
        client: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
        host: Some("cdn.example"),
        query: "",
    };
    let Ok(grant) = gate.verifier().authorize(&token, &facts, NOW) else {
        return;
    };
    let all = &grant.claims.all;
    assert_eq!(all.get("iss").and_then(Value::as_str), Some(ISSUER));
    let aud_ok = match all.get("aud") {
        Some(Value::String(one)) => one == AUDIENCE,
        Some(Value::Array(many)) => many.iter().any(|v| v.as_str() == Some(AUDIENCE)),
        _ => false,
    };
    assert!(aud_ok, "audience {:?}", all.get("aud"));
    let exp = grant.claims.exp.expect("exp is required");
    assert!(exp.saturating_add(5) >= NOW, "expired token let through");
    assert!(
        grant.claims.nbf.is_none_or(|nbf| nbf <= NOW + 5),
        "token not valid yet let through"
    );
    // The same token again: now from the verified-token cache.
    assert!(gate.verifier().authorize(&token, &facts, NOW).is_ok());

    if let Some(renewed) = gate.verifier().renewal(&grant, &facts, NOW) {
        let token = if renewed.name == "set-cookie" {
            let (_, rest) = renewed.value.split_once('=').expect("name=value");
            rest.split(';').next().unwrap_or_default().to_owned()
        } else {
            renewed.value.clone()
        };
        match gate.verifier().verify(&token, NOW) {
            Ok(_) | Err(Reject::TooLarge) => {}
            Err(e) => panic!("a renewed token does not verify: {e:?}"),
        }
    }
});
