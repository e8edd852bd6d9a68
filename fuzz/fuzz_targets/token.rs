//! Finding the token: query parameters, `Authorization: Bearer`, a custom
//! header, cookies.
//!
//! Input: the raw query on the first line, then one `name: value` header a
//! line (lines that make no valid header are skipped). Checks: a token found
//! is non-empty and is one of the values the request carries; no token is
//! found in a request that carries none; the token parameters are never part
//! of the canonical query.

#![no_main]

use cdn_node::fuzzing::request::{canonical, parse};
use cdn_node::fuzzing::token::{
    Reject, SourceKind, TokenSource, default_token_sources, find_token, is_token_param,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let Ok(raw_query) = std::str::from_utf8(lines.next().unwrap_or_default()) else {
        return;
    };
    let Ok(pairs) = parse(raw_query) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }

    let mut sources = default_token_sources();
    sources.push(TokenSource::Header("x-edge-token".into()));
    sources.push(TokenSource::Cookie("edge".into()));
    let result = find_token(&sources, &pairs, &headers);
    match &result {
        Ok(Some(found)) => {
            assert!(!found.token.is_empty());
            assert!(found.source_index < sources.len());
            let carried = match found.kind {
                SourceKind::Query => pairs.iter().any(|(_, v)| v == found.token),
                // Other cookies of the header may hold any bytes.
                SourceKind::Header | SourceKind::Cookie => headers.values().any(|v| {
                    v.as_bytes()
                        .windows(found.token.len())
                        .any(|w| w == found.token.as_bytes())
                }),
            };
            assert!(carried, "{:?} is not in the request", found.token);
        }
        Ok(None) | Err(Reject::Conflict) | Err(Reject::Malformed) => {}
        Err(other) => panic!("unexpected refusal {other:?}"),
    }
    // Nothing in any source: nothing found.
    let empty = HeaderMap::new();
    let no_tokens: Vec<_> = pairs
        .iter()
        .filter(|(name, _)| !is_token_param(&sources, name))
        .cloned()
        .collect();
    assert_eq!(find_token(&sources, &no_tokens, &empty), Ok(None));
    // A token in the query alone is found, whatever else the query holds.
    let mut with_token = no_tokens.clone();
    with_token.push(("jwt".into(), "t.o.k".into()));
    let found = find_token(&sources, &with_token, &empty)
        .expect("one token")
        .expect("found");
    assert_eq!((found.token, found.kind), ("t.o.k", SourceKind::Query));
    // Token parameters never reach the canonical query.
    let query = canonical(&pairs, |name| !is_token_param(&sources, name));
    let again = parse(&query).expect("a canonical query parses");
    assert!(
        again
            .iter()
            .all(|(name, _)| !is_token_param(&sources, name))
    );
});
