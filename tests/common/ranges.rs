//! Random `Range` headers and a byte-for-byte check of the answers against
//! the source object, shared by the range and slice tests.

use std::ops::Range;

use super::http::{Headers, header};

/// A small deterministic generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// One range-spec as the test wrote it.
#[derive(Debug, Clone, Copy)]
pub enum Spec {
    Closed(u64, u64),
    Open(u64),
    Suffix(u64),
}

/// A random `Range` header for an object of `len` bytes, with the specs it
/// holds (`None`: deliberately invalid, to be ignored by the node).
pub fn random_header(rng: &mut Rng, len: u64) -> (String, Option<Vec<Spec>>) {
    let kind = rng.below(20);
    if kind == 0 {
        let bad = [
            "bytes=5-2",
            "bytes=abc",
            "items=0-1",
            "bytes=",
            "bytes=-",
            "bytes=1-2-3",
            "bytes 0-1",
        ];
        return (bad[rng.below(bad.len() as u64) as usize].to_string(), None);
    }
    let parts = match kind {
        1..=11 => 1,
        12..=16 => 2 + rng.below(3),
        _ => 5 + rng.below(40),
    };
    // Positions around and beyond the end, biased towards small objects' edges.
    let span = len + 3;
    let mut specs = Vec::new();
    for _ in 0..parts {
        let spec = match rng.below(6) {
            0..=2 => {
                let a = rng.below(span);
                let width = if rng.below(2) == 0 { 16 } else { span };
                let b = a + rng.below(width);
                Spec::Closed(a, b)
            }
            3..=4 => Spec::Open(rng.below(span)),
            _ => Spec::Suffix(rng.below(span)),
        };
        specs.push(spec);
    }
    let text: Vec<String> = specs
        .iter()
        .map(|s| match s {
            Spec::Closed(a, b) => format!("{a}-{b}"),
            Spec::Open(a) => format!("{a}-"),
            Spec::Suffix(n) => format!("-{n}"),
        })
        .collect();
    let sep = if rng.below(4) == 0 { " , " } else { "," };
    (format!("bytes={}", text.join(sep)), Some(specs))
}

/// The satisfiable ranges of `specs`, sorted, overlapping and adjacent ones
/// merged: the bytes the answer must carry.
pub fn expected_parts(specs: &[Spec], len: u64) -> Vec<Range<u64>> {
    let mut v: Vec<Range<u64>> = specs
        .iter()
        .filter_map(|s| match *s {
            Spec::Closed(a, b) if a < len => Some(a..(b + 1).min(len)),
            Spec::Open(a) if a < len => Some(a..len),
            Spec::Suffix(n) if n > 0 && len > 0 => Some(len - n.min(len)..len),
            _ => None,
        })
        .collect();
    v.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::new();
    for r in v {
        match out.last_mut() {
            Some(l) if r.start <= l.end => l.end = l.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// The parts of a `multipart/byteranges` body: (content-range, bytes).
pub fn multipart(headers: &Headers, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let ct = header(headers, "content-type").expect("content-type");
    let boundary = ct
        .split_once("boundary=")
        .map(|(_, b)| b.trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("no boundary in {ct:?}"));
    let mut rest = body;
    let mut parts = Vec::new();
    loop {
        let open = format!("\r\n--{boundary}\r\n");
        let close = format!("\r\n--{boundary}--\r\n");
        if rest == close.as_bytes() {
            return parts;
        }
        assert!(
            rest.starts_with(open.as_bytes()),
            "bad part start: {:?}",
            String::from_utf8_lossy(&rest[..rest.len().min(80)])
        );
        rest = &rest[open.len()..];
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("part head");
        let head = String::from_utf8_lossy(&rest[..end]).to_string();
        rest = &rest[end + 4..];
        let cr = head
            .split("\r\n")
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-range")
                    .then(|| v.trim().to_string())
            })
            .expect("part content-range");
        let (a, b) = parse_content_range(&cr).0.expect("part range");
        let n = (b - a + 1) as usize;
        parts.push((cr, rest[..n].to_vec()));
        rest = &rest[n..];
    }
}

/// `bytes a-b/len` -> (Some((a, b)), len); `bytes */len` -> (None, len).
pub fn parse_content_range(v: &str) -> (Option<(u64, u64)>, u64) {
    let rest = v.strip_prefix("bytes ").expect("bytes unit");
    let (span, len) = rest.split_once('/').expect("slash");
    let len = len.parse().expect("length");
    if span == "*" {
        return (None, len);
    }
    let (a, b) = span.split_once('-').expect("dash");
    (Some((a.parse().unwrap(), b.parse().unwrap())), len)
}

/// Checks one answer to `range` against the source object.
pub fn check(object: &[u8], range: &str, specs: Option<&[Spec]>, answer: &(u16, Headers, Vec<u8>)) {
    let (status, headers, body) = answer;
    let len = object.len() as u64;
    let ctx = format!("{range} on {len} bytes: {status} {headers:?}");
    if let Some(cl) = header(headers, "content-length") {
        assert_eq!(cl.parse::<usize>().unwrap(), body.len(), "{ctx}");
    }
    let Some(specs) = specs else {
        assert_eq!(*status, 200, "{ctx}");
        assert!(body == object, "{ctx}");
        return;
    };
    let parts = expected_parts(specs, len);
    match parts.len() {
        0 => {
            let empty_suffix =
                len == 0 && specs.iter().any(|s| matches!(s, Spec::Suffix(n) if *n > 0));
            if empty_suffix {
                assert_eq!(*status, 200, "{ctx}");
                assert!(body.is_empty(), "{ctx}");
            } else {
                assert_eq!(*status, 416, "{ctx}");
                assert_eq!(
                    header(headers, "content-range"),
                    Some(&*format!("bytes */{len}")),
                    "{ctx}"
                );
                assert!(body.is_empty(), "{ctx}");
            }
        }
        1 => {
            assert_eq!(*status, 206, "{ctx}");
            let r = &parts[0];
            let want = format!("bytes {}-{}/{len}", r.start, r.end - 1);
            assert_eq!(header(headers, "content-range"), Some(&*want), "{ctx}");
            assert!(
                body[..] == object[r.start as usize..r.end as usize],
                "{ctx}"
            );
        }
        n => {
            if *status == 200 {
                // Allowed when the parts would outweigh the object or are too many.
                assert!(n > 32 || len < 64 * 1024, "{ctx}");
                assert!(body == object, "{ctx}");
                return;
            }
            assert_eq!(*status, 206, "{ctx}");
            assert!(header(headers, "content-range").is_none(), "{ctx}");
            let got = multipart(headers, body);
            assert_eq!(got.len(), n, "{ctx}");
            for ((cr, bytes), r) in got.iter().zip(&parts) {
                assert_eq!(
                    cr,
                    &format!("bytes {}-{}/{len}", r.start, r.end - 1),
                    "{ctx}"
                );
                assert!(
                    bytes[..] == object[r.start as usize..r.end as usize],
                    "{ctx}"
                );
            }
        }
    }
}
