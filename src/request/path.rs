//! The canonical form of a request path.
//!
//! One canonical string serves three purposes: the auth check compares it, the
//! cache keys on it, and it is sent to S3 as the object URI. It is therefore
//! built to be exactly the SigV4 canonical URI for S3 (single encoding, no
//! normalisation): every decoded byte that is not unreserved
//! (`ALPHA DIGIT - . _ ~`) is written as `%XX` with uppercase hex, unreserved
//! bytes are written raw, and the `/` separators stay raw. So `%7E` and `~`,
//! `%2a` and `%2A`, `(` and `%28`, or raw UTF-8 and its `%XX` form all give
//! the same path.
//!
//! Anything that could make two different strings name one object in a
//! different way, or escape the bucket prefix, is rejected instead: dot
//! segments, encoded separators, backslashes, empty segments, control
//! characters, broken escapes and bytes that are not UTF-8. Each rejection is
//! a [`PathError`], and every one of them is an HTTP 400.

use http::StatusCode;
use thiserror::Error;

use super::{decode_escape, push_encoded};

/// Why a request path was refused. Every variant is a client error (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PathError {
    #[error("path does not start with '/'")]
    NotAbsolute,
    #[error("path has a '.' or '..' segment")]
    DotSegment,
    #[error("path has an encoded '/' or '\\' (%2F or %5C)")]
    EncodedSeparator,
    #[error("path has a raw backslash")]
    Backslash,
    #[error("path has an empty segment ('//')")]
    EmptySegment,
    #[error("path has a control character")]
    ControlChar,
    #[error("path has an invalid percent-encoding")]
    InvalidPercentEncoding,
    #[error("path is not valid UTF-8")]
    InvalidUtf8,
}

impl PathError {
    /// A short stable label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PathError::NotAbsolute => "path_not_absolute",
            PathError::DotSegment => "path_dot_segment",
            PathError::EncodedSeparator => "path_encoded_separator",
            PathError::Backslash => "path_backslash",
            PathError::EmptySegment => "path_empty_segment",
            PathError::ControlChar => "path_control_char",
            PathError::InvalidPercentEncoding => "path_invalid_percent_encoding",
            PathError::InvalidUtf8 => "path_invalid_utf8",
        }
    }

    /// The HTTP status to answer with: always 400 Bad Request.
    pub fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
}

/// The canonical form of `raw_path`, the path part of an origin-form request
/// target (no query, no scheme or authority).
///
/// A trailing slash is kept. The output is pure ASCII.
pub fn canonicalize(raw_path: &str) -> Result<String, PathError> {
    canonicalize_bytes(raw_path.as_bytes())
}

/// [`canonicalize`] for a path given as raw bytes (as read off the wire);
/// non-ASCII bytes are accepted only when they are valid UTF-8.
pub fn canonicalize_bytes(raw_path: &[u8]) -> Result<String, PathError> {
    let rest = raw_path.strip_prefix(b"/").ok_or(PathError::NotAbsolute)?;
    let mut out = String::with_capacity(raw_path.len() + 16);
    let mut decoded = Vec::with_capacity(raw_path.len());
    let mut segments = rest.split(|&b| b == b'/').peekable();
    while let Some(segment) = segments.next() {
        let is_last = segments.peek().is_none();
        // Only the final segment may be empty: that is "/" itself or a
        // trailing slash.
        if segment.is_empty() && !is_last {
            return Err(PathError::EmptySegment);
        }
        decoded.clear();
        decode_segment(segment, &mut decoded)?;
        if decoded == b"." || decoded == b".." {
            return Err(PathError::DotSegment);
        }
        let text = std::str::from_utf8(&decoded).map_err(|_| PathError::InvalidUtf8)?;
        // C0 and DEL were refused byte by byte; this also catches C1 controls.
        if text.chars().any(char::is_control) {
            return Err(PathError::ControlChar);
        }
        out.push('/');
        push_encoded(&mut out, &decoded);
    }
    Ok(out)
}

fn is_ascii_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// Decodes one segment (no raw `/` in it) into `out`.
fn decode_segment(segment: &[u8], out: &mut Vec<u8>) -> Result<(), PathError> {
    let mut i = 0;
    while i < segment.len() {
        let b = segment[i];
        match b {
            b'%' => {
                let d = decode_escape(segment, i).ok_or(PathError::InvalidPercentEncoding)?;
                if d == b'/' || d == b'\\' {
                    return Err(PathError::EncodedSeparator);
                }
                if is_ascii_control(d) {
                    return Err(PathError::ControlChar);
                }
                out.push(d);
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            _ if is_ascii_control(b) => return Err(PathError::ControlChar),
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepted paths and their canonical form.
    const CASES: &[(&str, &str)] = &[
        ("/", "/"),
        ("/a", "/a"),
        ("/bucket/video.mp4", "/bucket/video.mp4"),
        ("/a/b/", "/a/b/"),
        ("/a/", "/a/"),
        // unreserved characters are decoded
        ("/%41%42c", "/ABc"),
        ("/%61%7a%30%39", "/az09"),
        ("/a%2Db%2ec%5Fd%7E", "/a-b.c_d~"),
        ("/%7e", "/~"),
        ("/~user", "/~user"),
        // everything else is encoded with uppercase hex
        ("/a%2ab", "/a%2Ab"),
        ("/a%2Ab", "/a%2Ab"),
        ("/a*b", "/a%2Ab"),
        ("/a b", "/a%20b"),
        ("/a%20b", "/a%20b"),
        ("/a+b", "/a%2Bb"),
        ("/a%2bb", "/a%2Bb"),
        ("/(1)", "/%281%29"),
        ("/a;b=c,d", "/a%3Bb%3Dc%2Cd"),
        ("/a:b@c", "/a%3Ab%40c"),
        ("/a%25b", "/a%25b"),
        ("/100%25", "/100%25"),
        ("/a#b", "/a%23b"),
        // dots that are not whole segments are ordinary names
        ("/...", "/..."),
        ("/.a", "/.a"),
        ("/a.", "/a."),
        ("/..a/b..", "/..a/b.."),
        ("/.well-known/x", "/.well-known/x"),
        ("/%2e%2e%2e", "/..."),
        // non-ASCII: raw UTF-8 and its encoding agree
        ("/vidéo.mp4", "/vid%C3%A9o.mp4"),
        ("/vid%c3%a9o.mp4", "/vid%C3%A9o.mp4"),
        ("/vid%C3%A9o.mp4", "/vid%C3%A9o.mp4"),
        (
            "/日本/動画.mp4",
            "/%E6%97%A5%E6%9C%AC/%E5%8B%95%E7%94%BB.mp4",
        ),
        ("/😀", "/%F0%9F%98%80"),
    ];

    #[test]
    fn canonical_forms() {
        for (input, want) in CASES {
            let got = canonicalize(input);
            assert_eq!(got.as_deref(), Ok(*want), "input {input:?}");
            // Canonical output is a fixed point and pure ASCII.
            let again = canonicalize(want);
            assert_eq!(again.as_deref(), Ok(*want), "re-canonicalize {want:?}");
            assert!(want.is_ascii());
        }
    }

    /// Refused paths and why.
    const REJECTS: &[(&str, PathError)] = &[
        ("", PathError::NotAbsolute),
        ("a/b", PathError::NotAbsolute),
        ("*", PathError::NotAbsolute),
        ("http://h/a", PathError::NotAbsolute),
        ("%2Fa", PathError::NotAbsolute),
        // dot segments, raw, encoded, mixed, anywhere
        ("/.", PathError::DotSegment),
        ("/..", PathError::DotSegment),
        ("/./a", PathError::DotSegment),
        ("/a/../b", PathError::DotSegment),
        ("/a/..", PathError::DotSegment),
        ("/a/../", PathError::DotSegment),
        ("/a/./", PathError::DotSegment),
        ("/%2e", PathError::DotSegment),
        ("/%2E/a", PathError::DotSegment),
        ("/a/%2e%2e/b", PathError::DotSegment),
        ("/a/%2E%2E", PathError::DotSegment),
        ("/a/.%2e/b", PathError::DotSegment),
        ("/a/%2E./b", PathError::DotSegment),
        ("/a/%2e%2E/", PathError::DotSegment),
        // encoded separators
        ("/a%2fb", PathError::EncodedSeparator),
        ("/a%2Fb", PathError::EncodedSeparator),
        ("/a%5cb", PathError::EncodedSeparator),
        ("/a%5Cb", PathError::EncodedSeparator),
        ("/%2e%2e%2f", PathError::EncodedSeparator),
        ("/..%2f..%2fetc", PathError::EncodedSeparator),
        // raw backslash
        ("/a\\b", PathError::Backslash),
        ("/\\", PathError::Backslash),
        ("/..\\..\\x", PathError::Backslash),
        // empty segments
        ("//", PathError::EmptySegment),
        ("//a", PathError::EmptySegment),
        ("/a//b", PathError::EmptySegment),
        ("/a/b//", PathError::EmptySegment),
        ("///", PathError::EmptySegment),
        // control characters, raw and encoded
        ("/a\0b", PathError::ControlChar),
        ("/a%00b", PathError::ControlChar),
        ("/a%00", PathError::ControlChar),
        ("/a\nb", PathError::ControlChar),
        ("/a%0Ab", PathError::ControlChar),
        ("/a%0db", PathError::ControlChar),
        ("/a\tb", PathError::ControlChar),
        ("/a%09b", PathError::ControlChar),
        ("/a%1fb", PathError::ControlChar),
        ("/a%1Fb", PathError::ControlChar),
        ("/a\x7fb", PathError::ControlChar),
        ("/a%7fb", PathError::ControlChar),
        ("/a%7Fb", PathError::ControlChar),
        ("/a\u{85}b", PathError::ControlChar),
        ("/a%C2%85b", PathError::ControlChar),
        ("/a%c2%9fb", PathError::ControlChar),
        // broken percent-encoding
        ("/a%zzb", PathError::InvalidPercentEncoding),
        ("/a%4", PathError::InvalidPercentEncoding),
        ("/a%", PathError::InvalidPercentEncoding),
        ("/%", PathError::InvalidPercentEncoding),
        ("/a%4/b", PathError::InvalidPercentEncoding),
        ("/a%g1", PathError::InvalidPercentEncoding),
        ("/a%1g", PathError::InvalidPercentEncoding),
        ("/a%%41", PathError::InvalidPercentEncoding),
        ("/a%+1", PathError::InvalidPercentEncoding),
        ("/a%-1", PathError::InvalidPercentEncoding),
        ("/é%", PathError::InvalidPercentEncoding),
        // encodings of bytes that are not UTF-8
        ("/a%FFb", PathError::InvalidUtf8),
        ("/a%C3", PathError::InvalidUtf8),
        ("/a%C3b", PathError::InvalidUtf8),
        ("/%C0%AF", PathError::InvalidUtf8),
        ("/%ED%A0%80", PathError::InvalidUtf8),
        ("/%80", PathError::InvalidUtf8),
    ];

    #[test]
    fn rejects() {
        for (input, want) in REJECTS {
            assert_eq!(canonicalize(input), Err(*want), "input {input:?}");
            assert_eq!(want.status(), StatusCode::BAD_REQUEST);
        }
    }

    /// Raw bytes that are not UTF-8 are refused; valid UTF-8 is encoded.
    const BYTE_CASES: &[(&[u8], Result<&str, PathError>)] = &[
        (b"/a\xffb", Err(PathError::InvalidUtf8)),
        (b"/a\xc3", Err(PathError::InvalidUtf8)),
        (b"/\xc3/\xa9", Err(PathError::InvalidUtf8)),
        (b"/\xed\xa0\x80", Err(PathError::InvalidUtf8)),
        (b"/\xc3\xa9", Ok("/%C3%A9")),
        (b"/\xc3%a9", Ok("/%C3%A9")),
        (b"/a", Ok("/a")),
        (b"", Err(PathError::NotAbsolute)),
    ];

    #[test]
    fn raw_bytes() {
        for (input, want) in BYTE_CASES {
            let got = canonicalize_bytes(input);
            assert_eq!(got.as_deref(), want.as_deref(), "input {input:?}");
        }
    }

    /// Spellings that must all give one canonical path.
    const SAME: &[(&str, &str)] = &[
        ("/%7E", "/~"),
        ("/%2a", "/%2A"),
        ("/%2a", "/*"),
        ("/%41", "/A"),
        ("/é", "/%c3%a9"),
        ("/a/b/", "/%61/%62/"),
    ];

    #[test]
    fn equivalent_spellings() {
        for (a, b) in SAME {
            assert_eq!(canonicalize(a), canonicalize(b), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn reasons_are_distinct() {
        let all = [
            PathError::NotAbsolute,
            PathError::DotSegment,
            PathError::EncodedSeparator,
            PathError::Backslash,
            PathError::EmptySegment,
            PathError::ControlChar,
            PathError::InvalidPercentEncoding,
            PathError::InvalidUtf8,
        ];
        let mut reasons: Vec<&str> = all.iter().map(PathError::reason).collect();
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), all.len());
    }

    #[test]
    fn never_panics_on_any_short_input() {
        // Every string of up to four pieces from an alphabet of the
        // interesting bytes: output, when any, must be canonical.
        let alphabet = ["/", "%", "2", "e", "E", "f", "F", ".", "\\", "a", "\0", "é"];
        let mut inputs = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for s in &inputs {
                for c in alphabet {
                    next.push(format!("{s}{c}"));
                }
            }
            inputs.extend(next);
            inputs.sort();
            inputs.dedup();
        }
        for input in &inputs {
            let path = format!("/{input}");
            if let Ok(out) = canonicalize(&path) {
                assert_eq!(canonicalize(&out).as_deref(), Ok(out.as_str()), "{path:?}");
                assert!(out.is_ascii());
            }
        }
    }

    mod proptests {
        use super::*;
        use proptest::prelude::*;

        /// Pieces of paths: separators, dots raw and encoded, escapes of every byte,
        /// unreserved and reserved characters, non-ASCII text.
        fn piece() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("/".to_owned()),
                Just(".".to_owned()),
                Just("..".to_owned()),
                Just("%2e".to_owned()),
                Just("%2E".to_owned()),
                Just("%2f".to_owned()),
                Just("%5C".to_owned()),
                Just("\\".to_owned()),
                Just("%".to_owned()),
                any::<u8>().prop_map(|b| format!("%{b:02x}")),
                any::<u8>().prop_map(|b| format!("%{b:02X}")),
                "[A-Za-z0-9._~-]{1,4}",
                "[ !$&'()*+,;=:@?#\\[\\]]",
                any::<char>().prop_map(String::from),
            ]
        }

        fn path() -> impl Strategy<Value = String> {
            proptest::collection::vec(piece(), 0..16).prop_map(|p| format!("/{}", p.concat()))
        }

        /// `%XX` decoded; other bytes as they are.
        fn decoded(bytes: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                match (bytes[i], decode_escape(bytes, i)) {
                    (b'%', Some(b)) => {
                        out.push(b);
                        i += 3;
                    }
                    (b, _) => {
                        out.push(b);
                        i += 1;
                    }
                }
            }
            out
        }

        fn check(input: &[u8]) -> Result<(), TestCaseError> {
            let Ok(out) = canonicalize_bytes(input) else {
                return Ok(());
            };
            prop_assert!(out.is_ascii(), "{:?}", out);
            let again = canonicalize(&out);
            prop_assert_eq!(again.as_deref(), Ok(out.as_str()), "idempotent");
            let segments: Vec<&str> = out[1..].split('/').collect();
            for (i, segment) in segments.iter().enumerate() {
                prop_assert!(*segment != "." && *segment != "..", "{:?}", out);
                prop_assert!(!segment.is_empty() || i + 1 == segments.len(), "{:?}", out);
            }
            prop_assert_eq!(decoded(out.as_bytes()), decoded(input), "names one object");
            Ok(())
        }

        proptest! {
            /// The canonical path is ASCII, canonical again unchanged, free of dot and
            /// empty segments, and names the bytes the request named.
            #[test]
            fn canonical_paths_are_fixed_points(p in path()) {
                check(p.as_bytes())?;
            }

            /// Arbitrary bytes: refused or canonical, never a panic.
            #[test]
            fn any_bytes_are_refused_or_canonical(mut raw in proptest::collection::vec(any::<u8>(), 0..48)) {
                raw.insert(0, b'/');
                check(&raw)?;
            }

            /// Every spelling of the same bytes gives one path: each byte of a segment
            /// written raw or as `%XX` in either case.
            #[test]
            fn spellings_agree(
                segments in proptest::collection::vec("[^/\\\\%\\x00-\\x1f\\x7f]{1,6}", 1..5),
                mask in any::<u64>(),
            ) {
                let plain = format!("/{}", segments.join("/"));
                let mut spelt = String::new();
                for (i, b) in plain.bytes().enumerate() {
                    match (b, (mask >> (i % 64)) & 1, i % 3) {
                        (b'/', _, _) | (_, 0, _) if b.is_ascii() => spelt.push(char::from(b)),
                        (_, _, 0) => spelt.push_str(&format!("%{b:02x}")),
                        _ => spelt.push_str(&format!("%{b:02X}")),
                    }
                }
                prop_assert_eq!(canonicalize(&plain), canonicalize(&spelt), "{:?}", spelt);
            }
        }
    }
}
