//! The canonical path, from the raw bytes of a request target's path.
//!
//! Checks: the canonical form is ASCII, absolute, a fixed point, holds no
//! `.` or `..` segment nor an empty one (but a trailing slash), no encoded
//! separator, and decodes to the same bytes as the input.

#![no_main]

use cdn_node::fuzzing::request::{canonicalize, canonicalize_bytes};
use libfuzzer_sys::fuzz_target;

/// `%XX` decoded (valid escapes only; the canonical path has no others).
fn decode(bytes: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| Some((hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?)))
            .flatten();
        if let Some((hi, lo)) = escape {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(out) = canonicalize_bytes(data) else {
        return;
    };
    assert!(out.is_ascii(), "{out:?}");
    assert!(out.starts_with('/'), "{out:?}");
    assert_eq!(
        canonicalize(&out).as_deref(),
        Ok(out.as_str()),
        "not a fixed point"
    );
    let segments: Vec<&str> = out[1..].split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        assert!(*segment != "." && *segment != "..", "{out:?}");
        assert!(!segment.is_empty() || i == segments.len() - 1, "{out:?}");
    }
    let upper = out.to_ascii_uppercase();
    assert!(!upper.contains("%2F") && !upper.contains("%5C"), "{out:?}");
    assert!(!out.contains('\\'), "{out:?}");
    assert_eq!(decode(out.as_bytes()), decode(data), "another object named");
});
