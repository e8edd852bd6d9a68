//! Turning a cached `200` header into the answer to the client's `Range`
//! (the `range_header_filter` hook): 206 single, 206 multipart, 416, or the
//! whole object. Pingora applies the returned `RangeType` to the body: it
//! seeks the hit handler (or the fill's reader) to each part and, for
//! multipart, frames the parts with the boundary and headers of the
//! `MultiRangeInfo` returned here.

use std::ops::Range;

use http::header::{
    ACCEPT_RANGES, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE,
    LAST_MODIFIED, RANGE, TRANSFER_ENCODING,
};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{MultiRangeInfo, RangeType};

use super::plan::{Plan, resolve};
use super::spec::{Parsed, parse};

/// Applies the request's `Range` (and `If-Range`) to `resp`, the header of
/// the whole object, and says which body Pingora must send.
///
/// Only a `200` with a `Content-Length` is ranged; it always gets
/// `Accept-Ranges: bytes`. Only GET is ranged (RFC 9110 §14.2): HEAD gets
/// the whole object's headers.
pub fn apply(req: &RequestHeader, resp: &mut ResponseHeader) -> RangeType {
    let Some(len) = advertise(resp) else {
        return RangeType::None;
    };
    if req.method != http::Method::GET {
        return RangeType::None;
    }
    let mut values = req.headers.get_all(RANGE).iter();
    let (Some(range), None) = (values.next(), values.next()) else {
        // No Range, or several: nothing to act on.
        return RangeType::None;
    };
    if let Some(if_range) = req.headers.get(IF_RANGE)
        && !if_range_holds(if_range.as_bytes(), resp)
    {
        return RangeType::None;
    }
    let Parsed::Bytes(specs) = parse(range.as_bytes()) else {
        return RangeType::None;
    };
    match resolve(&specs, len) {
        Plan::Whole => RangeType::None,
        Plan::Unsatisfiable => unsatisfiable(resp, len),
        Plan::Single(r) => single(resp, r, len),
        Plan::Multi(parts) => multi(resp, parts, len),
    }
}

/// Gives `resp` `Accept-Ranges: bytes` when it is an answer the node ranges
/// (a `200` with one `Content-Length`), and says that length. Done once
/// before an origin answer is stored (S3 sends the field, not every
/// S3-compatible server does), a hit finds it there and inserts nothing.
pub fn advertise(resp: &mut ResponseHeader) -> Option<u64> {
    if resp.status.as_u16() != 200 {
        return None;
    }
    let len = content_length(resp)?;
    let mut accept = resp.headers.get_all(ACCEPT_RANGES).iter();
    if !matches!((accept.next(), accept.next()), (Some(v), None) if v == "bytes") {
        // Cannot fail for a static value.
        let _ = resp.insert_header(ACCEPT_RANGES, "bytes");
    }
    Some(len)
}

fn content_length(resp: &ResponseHeader) -> Option<u64> {
    if resp.headers.get_all(CONTENT_LENGTH).iter().count() != 1 {
        return None;
    }
    let v = resp.headers.get(CONTENT_LENGTH)?.to_str().ok()?;
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// RFC 9110 §13.1.5: an entity-tag must match the current `ETag` by strong
/// comparison (a weak tag never does); an HTTP-date must equal the current
/// `Last-Modified`. Anything else, or a missing validator, does not match
/// and the whole object is served.
fn if_range_holds(value: &[u8], resp: &ResponseHeader) -> bool {
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    let value = value.trim_matches([' ', '\t']);
    if value.starts_with("W/") {
        return false;
    }
    if value.starts_with('"') {
        let valid = value.len() >= 2 && value.ends_with('"');
        return valid
            && resp
                .headers
                .get(ETAG)
                .and_then(|e| e.to_str().ok())
                .is_some_and(|e| e.trim_matches([' ', '\t']) == value);
    }
    let Ok(date) = httpdate::parse_http_date(value) else {
        return false;
    };
    resp.headers
        .get(LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|modified| modified == date)
}

fn to_usize(r: &Range<u64>) -> Option<Range<usize>> {
    Some(usize::try_from(r.start).ok()?..usize::try_from(r.end).ok()?)
}

fn unsatisfiable(resp: &mut ResponseHeader, len: u64) -> RangeType {
    let _ = resp.set_status(416);
    let _ = resp.insert_header(CONTENT_LENGTH, "0");
    let _ = resp.insert_header(CONTENT_RANGE, format!("bytes */{len}"));
    for name in [CONTENT_TYPE, CONTENT_ENCODING, TRANSFER_ENCODING] {
        resp.remove_header(&name);
    }
    RangeType::Invalid
}

fn single(resp: &mut ResponseHeader, r: Range<u64>, len: u64) -> RangeType {
    let Some(span) = to_usize(&r) else {
        return RangeType::None;
    };
    let _ = resp.set_status(206);
    let _ = resp.insert_header(CONTENT_LENGTH, r.end - r.start);
    let _ = resp.insert_header(
        CONTENT_RANGE,
        format!("bytes {}-{}/{len}", r.start, r.end - 1),
    );
    RangeType::Single(span)
}

fn multi(resp: &mut ResponseHeader, parts: Vec<Range<u64>>, len: u64) -> RangeType {
    let Some(spans) = parts.iter().map(to_usize).collect::<Option<Vec<_>>>() else {
        return RangeType::None;
    };
    // Pingora counts the multipart length in `usize` without overflow
    // checks: for an object within a few KiB of 2^64 bytes the sum of the
    // parts and their headers would wrap (and the answer's length be
    // wrong). Half the range leaves room for any framing of 32 parts.
    let Some(total) = usize::try_from(len).ok().filter(|t| *t <= usize::MAX / 2) else {
        return RangeType::None;
    };
    let mut info = MultiRangeInfo::new(spans);
    info.set_total_length(total);
    if let Some(ct) = resp.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        info.set_content_type(ct.to_string());
    }
    let body_len = info.calculate_multipart_length();
    // Part headers can outweigh tiny parts: never send more than the whole.
    if body_len >= total {
        return RangeType::None;
    }
    let _ = resp.set_status(206);
    let _ = resp.insert_header(CONTENT_LENGTH, body_len);
    let _ = resp.insert_header(
        CONTENT_TYPE,
        format!("multipart/byteranges; boundary={}", info.boundary),
    );
    resp.remove_header(&CONTENT_RANGE);
    RangeType::Multi(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, b"/v.mp4", None).unwrap();
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    fn resp(len: u64) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).unwrap();
        r.insert_header("content-length", len).unwrap();
        r.insert_header("content-type", "video/mp4").unwrap();
        r.insert_header("etag", "\"abc\"").unwrap();
        r.insert_header("last-modified", "Tue, 15 Nov 1994 12:45:26 GMT")
            .unwrap();
        r
    }

    fn h<'a>(r: &'a ResponseHeader, name: &str) -> Option<&'a str> {
        r.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Whatever the stored header said of ranges, the answer says `bytes`,
    /// once.
    #[test]
    fn accept_ranges_is_bytes_once() {
        for stored in [
            &[][..],
            &["bytes"],
            &["none"],
            &["bytes", "none"],
            &["BYTES"],
        ] {
            let mut r = resp(10);
            for v in stored {
                r.append_header("accept-ranges", *v).unwrap();
            }
            apply(&req("GET", &[]), &mut r);
            let got: Vec<_> = r.headers.get_all("accept-ranges").iter().collect();
            assert_eq!(got, ["bytes"], "stored {stored:?}");
        }
    }

    /// What `advertise` gives and adds before an answer is stored, and that
    /// the range filter then leaves a stored `Accept-Ranges` where it is.
    #[test]
    fn advertise_marks_only_rangeable_answers() {
        let build = |status: u16, fields: &[(&str, &str)]| {
            let mut r = ResponseHeader::build(status, None).unwrap();
            for (n, v) in fields {
                r.append_header(n.to_string(), *v).unwrap();
            }
            r
        };
        // (status, fields, length given back)
        type Case<'a> = (u16, &'a [(&'a str, &'a str)], Option<u64>);
        let cases: &[Case] = &[
            (200, &[("content-length", "10")], Some(10)),
            (200, &[("content-length", "0")], Some(0)),
            (
                200,
                &[("content-length", "10"), ("accept-ranges", "none")],
                Some(10),
            ),
            (206, &[("content-length", "10")], None),
            (404, &[("content-length", "10")], None),
            (200, &[("transfer-encoding", "chunked")], None),
            (200, &[("content-length", "1x")], None),
            (
                200,
                &[("content-length", "10"), ("content-length", "10")],
                None,
            ),
        ];
        for (status, fields, want) in cases {
            let mut r = build(*status, fields);
            assert_eq!(advertise(&mut r), *want, "{status} {fields:?}");
            let got: Vec<_> = r.headers.get_all("accept-ranges").iter().collect();
            if want.is_some() {
                assert_eq!(got, ["bytes"], "{status} {fields:?}");
            } else {
                assert!(got.is_empty(), "{status} {fields:?}");
            }
        }
        // Stored advertised, then answered: nothing is inserted again, so
        // the field keeps its place among the stored ones.
        let mut stored = resp(10);
        advertise(&mut stored);
        let order = |r: &ResponseHeader| {
            let mut wire = Vec::new();
            r.header_to_h1_wire(&mut wire);
            String::from_utf8(wire).unwrap()
        };
        let before = order(&stored);
        assert_eq!(apply(&req("GET", &[]), &mut stored), RangeType::None);
        assert_eq!(order(&stored), before);
    }

    /// (request headers, method, length, status, content-range, kind)
    #[test]
    fn table() {
        #[derive(Debug, PartialEq)]
        enum Kind {
            None,
            Single(Range<usize>),
            Multi(usize),
            Invalid,
        }
        type Case = (
            &'static str,
            &'static [(&'static str, &'static str)],
            u64,
            u16,
            Option<&'static str>,
            Kind,
        );
        let cases: &[Case] = &[
            ("GET", &[], 100, 200, None, Kind::None),
            (
                "GET",
                &[("range", "bytes=0-9")],
                100,
                206,
                Some("bytes 0-9/100"),
                Kind::Single(0..10),
            ),
            (
                "GET",
                &[("range", "bytes=90-")],
                100,
                206,
                Some("bytes 90-99/100"),
                Kind::Single(90..100),
            ),
            (
                "GET",
                &[("range", "bytes=-5")],
                100,
                206,
                Some("bytes 95-99/100"),
                Kind::Single(95..100),
            ),
            (
                "GET",
                &[("range", "bytes=-0")],
                100,
                416,
                Some("bytes */100"),
                Kind::Invalid,
            ),
            ("GET", &[("range", "bytes=-5")], 0, 200, None, Kind::None),
            (
                "GET",
                &[("range", "bytes=0-")],
                0,
                416,
                Some("bytes */0"),
                Kind::Invalid,
            ),
            (
                "GET",
                &[("range", "bytes=100-")],
                100,
                416,
                Some("bytes */100"),
                Kind::Invalid,
            ),
            ("GET", &[("range", "bytes=5-1")], 100, 200, None, Kind::None),
            ("GET", &[("range", "pages=1-2")], 100, 200, None, Kind::None),
            (
                "GET",
                &[("range", "bytes=0-9"), ("range", "bytes=0-9")],
                100,
                200,
                None,
                Kind::None,
            ),
            (
                "HEAD",
                &[("range", "bytes=0-9")],
                100,
                200,
                None,
                Kind::None,
            ),
            (
                "GET",
                &[("range", "bytes=0-9,50-59")],
                10_000,
                206,
                None,
                Kind::Multi(2),
            ),
            // The parts and their framing would not fit in a usize: the whole
            // object (the range fuzz target caught Pingora's count overflowing).
            (
                "GET",
                &[("range", "bytes=0-1,3-")],
                u64::MAX,
                200,
                None,
                Kind::None,
            ),
            (
                "GET",
                &[("range", "bytes=0-1,3-")],
                u64::MAX / 2 + 1,
                200,
                None,
                Kind::None,
            ),
            (
                "GET",
                &[("range", "bytes=0-1,3-4")],
                u64::MAX / 2,
                206,
                None,
                Kind::Multi(2),
            ),
            // Single ranges of any object are counted in u64.
            (
                "GET",
                &[("range", "bytes=3-")],
                u64::MAX,
                206,
                Some("bytes 3-18446744073709551614/18446744073709551615"),
                Kind::Single(3..usize::MAX),
            ),
            // Multipart framing would outweigh the object: the whole object.
            (
                "GET",
                &[("range", "bytes=0-0,5-5")],
                100,
                200,
                None,
                Kind::None,
            ),
            (
                "GET",
                &[("range", "bytes=0-9"), ("if-range", "\"abc\"")],
                100,
                206,
                Some("bytes 0-9/100"),
                Kind::Single(0..10),
            ),
            (
                "GET",
                &[("range", "bytes=0-9"), ("if-range", "\"abd\"")],
                100,
                200,
                None,
                Kind::None,
            ),
            (
                "GET",
                &[("range", "bytes=0-9"), ("if-range", "W/\"abc\"")],
                100,
                200,
                None,
                Kind::None,
            ),
            (
                "GET",
                &[("range", "bytes=0-9"), ("if-range", "\"abc")],
                100,
                200,
                None,
                Kind::None,
            ),
            (
                "GET",
                &[
                    ("range", "bytes=0-9"),
                    ("if-range", "Tue, 15 Nov 1994 12:45:26 GMT"),
                ],
                100,
                206,
                Some("bytes 0-9/100"),
                Kind::Single(0..10),
            ),
            (
                "GET",
                &[
                    ("range", "bytes=0-9"),
                    ("if-range", "Tue, 15 Nov 1994 12:45:27 GMT"),
                ],
                100,
                200,
                None,
                Kind::None,
            ),
            (
                "GET",
                &[("range", "bytes=0-9"), ("if-range", "yesterday")],
                100,
                200,
                None,
                Kind::None,
            ),
        ];
        for (method, headers, len, status, content_range, kind) in cases {
            let mut r = resp(*len);
            let got = apply(&req(method, headers), &mut r);
            let got_kind = match &got {
                RangeType::None => Kind::None,
                RangeType::Single(s) => Kind::Single(s.clone()),
                RangeType::Multi(m) => Kind::Multi(m.ranges.len()),
                RangeType::Invalid => Kind::Invalid,
            };
            let what = format!("{method} {headers:?} on {len}");
            assert_eq!(&got_kind, kind, "{what}");
            assert_eq!(r.status.as_u16(), *status, "{what}");
            assert_eq!(h(&r, "content-range"), *content_range, "{what}");
            assert_eq!(h(&r, "accept-ranges"), Some("bytes"), "{what}");
            match got {
                RangeType::Single(s) => {
                    assert_eq!(h(&r, "content-length"), Some(&*(s.len()).to_string()))
                }
                RangeType::Invalid => {
                    assert_eq!(h(&r, "content-length"), Some("0"));
                    assert_eq!(h(&r, "content-type"), None);
                }
                RangeType::Multi(m) => {
                    let ct = h(&r, "content-type").unwrap();
                    assert_eq!(ct, format!("multipart/byteranges; boundary={}", m.boundary));
                    assert_eq!(
                        h(&r, "content-length"),
                        Some(&*m.calculate_multipart_length().to_string())
                    );
                }
                RangeType::None => assert_eq!(h(&r, "content-length"), Some(&*len.to_string())),
            }
        }
    }

    #[test]
    fn only_whole_200s_with_a_length_are_ranged() {
        let get = req("GET", &[("range", "bytes=0-1")]);
        let mut not_ok = ResponseHeader::build(404, None).unwrap();
        not_ok.insert_header("content-length", "10").unwrap();
        assert_eq!(apply(&get, &mut not_ok), RangeType::None);
        assert_eq!(not_ok.status.as_u16(), 404);
        assert!(not_ok.headers.get("accept-ranges").is_none());
        let mut chunked = ResponseHeader::build(200, None).unwrap();
        chunked
            .insert_header("transfer-encoding", "chunked")
            .unwrap();
        assert_eq!(apply(&get, &mut chunked), RangeType::None);
        assert!(chunked.headers.get("accept-ranges").is_none());
        let mut bad = ResponseHeader::build(200, None).unwrap();
        bad.insert_header("content-length", "1x").unwrap();
        assert_eq!(apply(&get, &mut bad), RangeType::None);
    }
}
