//! `Range` header: parse, plan against an object length, rewrite the answer.
//!
//! Input: `LEN\nRANGE[\nIF-RANGE]`, LEN in decimal (an unreadable LEN is the
//! input's own length). Checks that a plan never reaches past the object,
//! never holds an empty part, and that parts are sorted and disjoint.

#![no_main]

use cdn_node::fuzzing::range::{MAX_PARTS, MAX_SPECS, Parsed, Plan, apply, parse, resolve};
use libfuzzer_sys::fuzz_target;
use pingora_http::{RequestHeader, ResponseHeader};

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(3, |&b| b == b'\n');
    let len_line = lines.next().unwrap_or_default();
    let range = lines.next().unwrap_or_default();
    let if_range = lines.next();
    let len = std::str::from_utf8(len_line)
        .ok()
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(data.len() as u64);

    let specs = match parse(range) {
        Parsed::Bytes(specs) => specs,
        Parsed::Ignore => Vec::new(),
    };
    assert!(specs.len() <= MAX_SPECS);
    if !specs.is_empty() {
        match resolve(&specs, len) {
            Plan::Whole | Plan::Unsatisfiable => {}
            Plan::Single(r) => {
                assert!(r.start < r.end && r.end <= len, "{r:?} of {len}");
            }
            Plan::Multi(parts) => {
                assert!(parts.len() >= 2 && parts.len() <= MAX_PARTS);
                for r in &parts {
                    assert!(r.start < r.end && r.end <= len, "{r:?} of {len}");
                }
                for pair in parts.windows(2) {
                    // Sorted, and neither overlapping nor adjacent.
                    assert!(pair[0].end < pair[1].start, "{parts:?}");
                }
            }
        }
    }

    // The whole header rewrite, when the bytes make a request header.
    let Ok(mut req) = RequestHeader::build("GET", b"/v.mp4", None) else {
        return;
    };
    if req.append_header("range", range).is_err() {
        return;
    }
    if let Some(v) = if_range {
        if req.append_header("if-range", v).is_err() {
            return;
        }
    }
    let Ok(mut resp) = ResponseHeader::build(200, None) else {
        return;
    };
    let _ = resp.insert_header("content-length", len);
    let _ = resp.insert_header("content-type", "video/mp4");
    let _ = resp.insert_header("etag", "\"abc\"");
    let _ = resp.insert_header("last-modified", "Tue, 15 Nov 1994 12:45:26 GMT");
    let _ = apply(&req, &mut resp);
    if resp.status.as_u16() == 206 {
        let body_len: u64 = resp
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("a 206 has a content-length");
        assert!(body_len > 0);
        if resp.headers.get("content-range").is_some() {
            assert!(body_len <= len, "a single part is at most the object");
        } else {
            assert!(
                body_len < len,
                "a multipart answer is smaller than the object"
            );
        }
    }
});
