//! Query string parsing and the canonical query.
//!
//! [`parse`] decodes a raw query into name/value pairs. [`canonical`] keeps
//! the allowed pairs and writes them in the SigV4 canonical form: each name
//! and value `%XX`-encoded (uppercase) except unreserved bytes, pairs sorted by
//! their encoded (name, value) bytes, `name=value` joined with `&`. The same
//! string is the query part of the cache key and the query sent to (and
//! signed for) S3, so what is cached is exactly what was fetched.

use std::borrow::Cow;

use thiserror::Error;

use super::{decode_escape, push_encoded};

/// Why a query string was refused. Every variant is a client error (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum QueryError {
    #[error("query has an invalid percent-encoding")]
    InvalidPercentEncoding,
    #[error("query decodes to invalid UTF-8")]
    InvalidUtf8,
}

/// One decoded query parameter: borrowed from the raw query when it holds
/// no escape and no `+`, as most names and tokens do.
pub type Pair<'q> = (Cow<'q, str>, Cow<'q, str>);

/// Splits `raw_query` (the part after `?`, without it) on `&` into decoded
/// `(name, value)` pairs, in order. A pair without `=` has an empty value;
/// empty pairs (`a=1&&b=2`, a trailing `&`) are skipped. `+` decodes to a
/// space, as in `application/x-www-form-urlencoded`, in names and values
/// alike; `%2B` is a literal `+`.
pub fn parse(raw_query: &str) -> Result<Vec<Pair<'_>>, QueryError> {
    let mut pairs = Vec::new();
    for pair in raw_query.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        pairs.push((decode(name)?, decode(value)?));
    }
    Ok(pairs)
}

fn decode(raw: &str) -> Result<Cow<'_, str>, QueryError> {
    let bytes = raw.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || b == b'+') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let d = decode_escape(bytes, i).ok_or(QueryError::InvalidPercentEncoding)?;
                out.push(d);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| QueryError::InvalidUtf8)
}

/// Whether a parameter name is refused whatever the allow-list says:
/// S3 response overrides (`response-*`) and presign parameters (`X-Amz-*`),
/// compared without regard to ASCII case.
pub fn is_forbidden(name: &str) -> bool {
    starts_with_ignore_case(name, "response-") || starts_with_ignore_case(name, "x-amz-")
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// The canonical query of `pairs`: only names for which `keep` is true (and
/// that are not [`is_forbidden`]), each name and value encoded with uppercase
/// `%XX` for every byte but the unreserved ones, sorted by the encoded
/// `(name, value)` bytes, written `name=value` and joined with `&`. Empty when
/// nothing is kept. Duplicate pairs are kept (sorted next to each other).
///
/// Sorting on the encoded bytes is what SigV4 does, so the result is the
/// SigV4 canonical query string itself.
pub fn canonical(pairs: &[Pair<'_>], keep: impl Fn(&str) -> bool) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .iter()
        .filter(|(name, _)| !is_forbidden(name) && keep(name))
        .map(|(name, value)| (encode(name), encode(value)))
        .collect();
    encoded.sort_unstable();
    let mut out = String::new();
    for (i, (name, value)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_encoded(&mut out, s.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_pairs_are_borrowed_and_escaped_ones_decoded() {
        let pairs = parse("jwt=eyJ.a-b_c&name=a+b&x=%41").unwrap();
        assert!(matches!(
            pairs[0],
            (Cow::Borrowed("jwt"), Cow::Borrowed("eyJ.a-b_c"))
        ));
        assert!(matches!(&pairs[1].1, Cow::Owned(v) if v == "a b"));
        assert!(matches!(&pairs[2].1, Cow::Owned(v) if v == "A"));
    }

    fn owned(pairs: &[(&str, &str)]) -> Vec<Pair<'static>> {
        pairs
            .iter()
            .map(|(n, v)| (Cow::Owned(n.to_string()), Cow::Owned(v.to_string())))
            .collect()
    }

    /// Raw query and the pairs it parses to.
    const CASES: &[(&str, &[(&str, &str)])] = &[
        ("", &[]),
        ("&", &[]),
        ("&&&", &[]),
        ("a=1", &[("a", "1")]),
        ("a=1&b=2", &[("a", "1"), ("b", "2")]),
        ("b=2&a=1", &[("b", "2"), ("a", "1")]),
        ("a=1&&b=2&", &[("a", "1"), ("b", "2")]),
        ("a", &[("a", "")]),
        ("a=", &[("a", "")]),
        ("=1", &[("", "1")]),
        ("=", &[("", "")]),
        ("a=b=c", &[("a", "b=c")]),
        ("a=1&a=2", &[("a", "1"), ("a", "2")]),
        ("q=a+b", &[("q", "a b")]),
        ("q=a%20b", &[("q", "a b")]),
        ("q=a%2Bb", &[("q", "a+b")]),
        ("q=a%2bb", &[("q", "a+b")]),
        ("a+b=1", &[("a b", "1")]),
        ("q=%7E%7e~", &[("q", "~~~")]),
        ("q=%26%3D", &[("q", "&=")]),
        ("q=%C3%A9", &[("q", "é")]),
        ("q=é", &[("q", "é")]),
        ("q=%00", &[("q", "\0")]),
        (
            "token=abc.def.ghi&partNumber=1",
            &[("token", "abc.def.ghi"), ("partNumber", "1")],
        ),
    ];

    #[test]
    fn parses() {
        for (input, want) in CASES {
            assert_eq!(parse(input), Ok(owned(want)), "input {input:?}");
        }
    }

    const REJECTS: &[(&str, QueryError)] = &[
        ("a=%zz", QueryError::InvalidPercentEncoding),
        ("a=%4", QueryError::InvalidPercentEncoding),
        ("a=%", QueryError::InvalidPercentEncoding),
        ("%=1", QueryError::InvalidPercentEncoding),
        ("ok=1&a%g0=1", QueryError::InvalidPercentEncoding),
        ("a=%FF", QueryError::InvalidUtf8),
        ("a=%C3", QueryError::InvalidUtf8),
        ("%C0%AF=1", QueryError::InvalidUtf8),
    ];

    #[test]
    fn rejects() {
        for (input, want) in REJECTS {
            assert_eq!(parse(input), Err(*want), "input {input:?}");
        }
    }

    fn allow_all(_: &str) -> bool {
        true
    }

    fn allow_some(name: &str) -> bool {
        matches!(name, "partNumber" | "versionId" | "q" | "a" | "b")
    }

    /// Raw query, canonical query with everything allowed, canonical query
    /// with the short allow-list.
    const CANONICAL: &[(&str, &str, &str)] = &[
        ("", "", ""),
        ("a=1", "a=1", "a=1"),
        ("b=2&a=1", "a=1&b=2", "a=1&b=2"),
        ("a=2&a=1", "a=1&a=2", "a=1&a=2"),
        ("a=1&a=1", "a=1&a=1", "a=1&a=1"),
        ("a", "a=", "a="),
        ("a=", "a=", "a="),
        ("q=a+b", "q=a%20b", "q=a%20b"),
        ("q=a%20b", "q=a%20b", "q=a%20b"),
        ("q=a%2bb", "q=a%2Bb", "q=a%2Bb"),
        ("q=%7e", "q=~", "q=~"),
        ("q=*", "q=%2A", "q=%2A"),
        ("q=%2a", "q=%2A", "q=%2A"),
        ("q=é", "q=%C3%A9", "q=%C3%A9"),
        ("q=/a?b", "q=%2Fa%3Fb", "q=%2Fa%3Fb"),
        ("q=%26%3D", "q=%26%3D", "q=%26%3D"),
        (
            "token=x&partNumber=1",
            "partNumber=1&token=x",
            "partNumber=1",
        ),
        (
            "versionId=v2&partNumber=3",
            "partNumber=3&versionId=v2",
            "partNumber=3&versionId=v2",
        ),
        // never forwarded, whatever keep says
        ("response-content-type=text/html", "", ""),
        ("Response-Content-Disposition=x", "", ""),
        ("X-Amz-Signature=abc&X-Amz-Credential=k", "", ""),
        ("x-amz-date=1&x-amz-security-token=t", "", ""),
        ("X-AMZ-Expires=1&a=1", "a=1", "a=1"),
        ("response=1", "response=1", ""),
        ("x-amzfoo=1", "x-amzfoo=1", ""),
        // sorted on the encoded bytes: '%' sorts before every unreserved byte
        ("q=A&q=%5B", "q=%5B&q=A", "q=%5B&q=A"),
        ("q=a&q=a%20", "q=a&q=a%20", "q=a&q=a%20"),
        ("b=1&a%20=1&a=1", "a=1&a%20=1&b=1", "a=1&b=1"),
        ("B=1&a=1", "B=1&a=1", "a=1"),
    ];

    #[test]
    fn canonical_queries() {
        for (raw, all, some) in CANONICAL {
            let pairs = parse(raw).expect("valid query");
            assert_eq!(canonical(&pairs, allow_all), *all, "all, raw {raw:?}");
            assert_eq!(canonical(&pairs, allow_some), *some, "some, raw {raw:?}");
            // The canonical query parses back to the same canonical query.
            let again = parse(all).expect("canonical parses");
            assert_eq!(canonical(&again, allow_all), *all, "fixed point {all:?}");
        }
    }

    const FORBIDDEN: &[(&str, bool)] = &[
        ("response-content-type", true),
        ("response-cache-control", true),
        ("RESPONSE-EXPIRES", true),
        ("response-", true),
        ("X-Amz-Signature", true),
        ("x-amz-credential", true),
        ("X-AMZ-SECURITY-TOKEN", true),
        ("x-amz-", true),
        ("response", false),
        ("responses-x", false),
        ("x-amz", false),
        ("partNumber", false),
        ("", false),
        ("é-response-", false),
    ];

    #[test]
    fn forbidden_names() {
        for (name, want) in FORBIDDEN {
            assert_eq!(is_forbidden(name), *want, "name {name:?}");
        }
    }

    mod proptests {
        use super::*;
        use proptest::prelude::*;

        fn piece() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("&".to_owned()),
                Just("=".to_owned()),
                Just("+".to_owned()),
                Just("%".to_owned()),
                any::<u8>().prop_map(|b| format!("%{b:02x}")),
                any::<u8>().prop_map(|b| format!("%{b:02X}")),
                "[A-Za-z0-9._~-]{1,4}",
                Just("response-".to_owned()),
                Just("X-Amz-".to_owned()),
                any::<char>().prop_map(String::from),
            ]
        }

        fn raw_query() -> impl Strategy<Value = String> {
            proptest::collection::vec(piece(), 0..16).prop_map(|p| p.concat())
        }

        fn all(_: &str) -> bool {
            true
        }

        proptest! {
            /// The canonical query is ASCII, parses back to itself, does not depend on
            /// the order of the pairs, and forwards no S3 override or presign parameter.
            #[test]
            fn canonical_queries_are_fixed_points(raw in raw_query(), turn in 0usize..16) {
                let Ok(pairs) = parse(&raw) else {
                    return Ok(());
                };
                let out = canonical(&pairs, all);
                prop_assert!(out.is_ascii(), "{:?}", out);
                let again = parse(&out).expect("a canonical query parses");
                prop_assert_eq!(&canonical(&again, all), &out, "idempotent");
                prop_assert!(again.iter().all(|(name, _)| !is_forbidden(name)));
                let mut moved = pairs.clone();
                moved.reverse();
                let turn = turn % moved.len().max(1);
                moved.rotate_left(turn);
                prop_assert_eq!(&canonical(&moved, all), &out, "order-insensitive");
            }

            /// Any names and values, written encoded, parse back to themselves.
            #[test]
            fn encoded_pairs_parse_back(
                pairs in proptest::collection::vec((".{1,8}", ".{0,8}"), 0..6),
            ) {
                let raw: Vec<String> = pairs
                    .iter()
                    .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
                    .collect();
                let raw = raw.join("&");
                let parsed = parse(&raw).expect("encoded pairs parse");
                let parsed: Vec<(String, String)> = parsed
                    .into_iter()
                    .map(|(n, v)| (n.into_owned(), v.into_owned()))
                    .collect();
                prop_assert_eq!(parsed, pairs);
            }
        }
    }
}
