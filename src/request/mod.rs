//! Pure request reading: the canonical path and query, methods as a set,
//! and the host a request names.
//!
//! The path and the query share one encoding rule, the one SigV4 uses for
//! S3: every byte that is not an RFC 3986 unreserved character
//! (`ALPHA DIGIT - . _ ~`) is written as `%XX` with uppercase hex. The path
//! keeps its `/` separators raw.

pub mod host;
pub mod method;
pub mod path;
pub mod query;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// Every byte except the RFC 3986 unreserved characters.
pub(crate) const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Appends `bytes` to `out`, `%XX`-encoding (uppercase) all but unreserved bytes.
pub(crate) fn push_encoded(out: &mut String, bytes: &[u8]) {
    out.extend(percent_encoding::percent_encode(bytes, NOT_UNRESERVED));
}

/// The value of one ASCII hex digit, either case.
pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes the two hex digits after a `%` at `bytes[at]`; `None` when they are
/// missing or not hex.
pub(crate) fn decode_escape(bytes: &[u8], at: usize) -> Option<u8> {
    let hi = hex_value(*bytes.get(at + 1)?)?;
    let lo = hex_value(*bytes.get(at + 2)?)?;
    Some(hi << 4 | lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENCODE_CASES: &[(&[u8], &str)] = &[
        (b"", ""),
        (b"AZaz09-._~", "AZaz09-._~"),
        (b" ", "%20"),
        (b"+", "%2B"),
        (b"/", "%2F"),
        (b"%", "%25"),
        (b"*", "%2A"),
        (b"\x00\x7f\xff", "%00%7F%FF"),
        ("é".as_bytes(), "%C3%A9"),
    ];

    #[test]
    fn push_encoded_encodes_all_but_unreserved() {
        for (input, want) in ENCODE_CASES {
            let mut out = String::new();
            push_encoded(&mut out, input);
            assert_eq!(out, *want, "input {input:?}");
        }
    }

    const ESCAPE_CASES: &[(&str, usize, Option<u8>)] = &[
        ("%41", 0, Some(0x41)),
        ("%2a", 0, Some(0x2a)),
        ("%2A", 0, Some(0x2a)),
        ("x%ff", 1, Some(0xff)),
        ("%4", 0, None),
        ("%", 0, None),
        ("%zz", 0, None),
        ("%g0", 0, None),
        ("%0g", 0, None),
    ];

    #[test]
    fn decode_escape_cases() {
        for (input, at, want) in ESCAPE_CASES {
            assert_eq!(
                decode_escape(input.as_bytes(), *at),
                *want,
                "input {input:?}"
            );
        }
    }
}
