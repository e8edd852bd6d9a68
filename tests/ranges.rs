//! Byte ranges through the real node and a real S3-compatible origin:
//! random single, multipart, suffix, open, unsatisfiable and invalid ranges
//! compared byte for byte with the source object, on warm objects, on cold
//! ones and while a fill is still arriving; `If-Range`; HEAD.

mod common;

use std::ops::Range;
use std::time::Duration;

use common::bytes;
use common::http::{Headers, header, raw};
use common::node::{Node, Options, cache_section};
use common::s3::S3;
use common::tap::{Mode, Tap};
use common::token::{good_claims, hs256};

struct World {
    _s3: S3,
    tap: Tap,
    _cache_dir: tempfile::TempDir,
    node: Node,
    token: String,
}

async fn world(objects: &[(&str, &[u8])]) -> World {
    let s3 = S3::start(objects).await;
    let tap = Tap::start(s3.port).await;
    let cache_dir = tempfile::tempdir().unwrap();
    let mut opts = Options::new(tap.port);
    opts.cache = Some(cache_section(cache_dir.path(), ""));
    let node = Node::start(opts).await;
    World {
        _s3: s3,
        tap,
        _cache_dir: cache_dir,
        node,
        token: hs256(&good_claims("alice")),
    }
}

impl World {
    async fn request(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
    ) -> (u16, Headers, Vec<u8>) {
        raw(
            self.node.http,
            method,
            &format!("{path}?jwt={}", self.token),
            extra,
        )
        .await
    }

    async fn range(&self, path: &str, range: &str) -> (u16, Headers, Vec<u8>) {
        self.request("GET", path, &[("range", range)]).await
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// One range-spec as the test wrote it.
#[derive(Debug, Clone, Copy)]
enum Spec {
    Closed(u64, u64),
    Open(u64),
    Suffix(u64),
}

/// A random `Range` header for an object of `len` bytes, with the specs it
/// holds (`None`: deliberately invalid, to be ignored by the node).
fn random_header(rng: &mut Rng, len: u64) -> (String, Option<Vec<Spec>>) {
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
fn expected_parts(specs: &[Spec], len: u64) -> Vec<Range<u64>> {
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
fn multipart(headers: &Headers, body: &[u8]) -> Vec<(String, Vec<u8>)> {
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
fn parse_content_range(v: &str) -> (Option<(u64, u64)>, u64) {
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
fn check(object: &[u8], range: &str, specs: Option<&[Spec]>, answer: &(u16, Headers, Vec<u8>)) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_random_ranges_on_warm_objects_match_the_source() {
    let sizes: [usize; 6] = [0, 1, 2, 100, 70_000, 1024 * 1024 + 3];
    let objects: Vec<(String, Vec<u8>)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (format!("v/warm-{i}.mp4"), bytes(n, 100 + i as u64)))
        .collect();
    let refs: Vec<(&str, &[u8])> = objects.iter().map(|(k, b)| (k.as_str(), &b[..])).collect();
    let w = world(&refs).await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (key, object) in &objects {
        let path = format!("/{key}");
        let (status, headers, body) = w.request("GET", &path, &[]).await;
        assert_eq!(status, 200);
        assert!(body == *object);
        assert_eq!(header(&headers, "accept-ranges"), Some("bytes"));
        for _ in 0..60 {
            let (range, specs) = random_header(&mut rng, object.len() as u64);
            let answer = w.range(&path, &range).await;
            check(object, &range, specs.as_deref(), &answer);
            assert_eq!(header(&answer.1, "x-cache"), Some("HIT"), "{range}");
        }
    }
    assert_eq!(
        w.tap.requests(),
        objects.len(),
        "ranges on hits reached the origin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_edge_cases_on_a_warm_object() {
    let object = bytes(1000, 7);
    let w = world(&[("v/e.mp4", &object)]).await;
    assert_eq!(w.request("GET", "/v/e.mp4", &[]).await.0, 200);
    let cases: &[(&str, Option<&[Spec]>)] = &[
        ("bytes=-0", Some(&[Spec::Suffix(0)])),
        ("bytes=1000-", Some(&[Spec::Open(1000)])),
        ("bytes=0-0", Some(&[Spec::Closed(0, 0)])),
        ("bytes=999-", Some(&[Spec::Open(999)])),
        ("bytes=-1", Some(&[Spec::Suffix(1)])),
        ("bytes=-5000", Some(&[Spec::Suffix(5000)])),
        (
            "bytes=0-99999999999",
            Some(&[Spec::Closed(0, 99_999_999_999)]),
        ),
        (
            "bytes=0-99,50-149",
            Some(&[Spec::Closed(0, 99), Spec::Closed(50, 149)]),
        ),
        ("bytes=5-1", None),
        ("bytes=0-1;x", None),
    ];
    for (range, specs) in cases {
        let answer = w.range("/v/e.mp4", range).await;
        check(&object, range, *specs, &answer);
    }
    // Overlaps never amplify: a thousand copies of the whole object are
    // one copy.
    let many = vec!["0-"; 90].join(",");
    let (status, headers, body) = w.range("/v/e.mp4", &format!("bytes={many}")).await;
    assert_eq!(status, 206);
    assert_eq!(header(&headers, "content-range"), Some("bytes 0-999/1000"));
    assert!(body == object);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_length_object_never_breaks_a_suffix_range() {
    let w = world(&[("v/empty.mp4", b"")]).await;
    assert_eq!(w.request("GET", "/v/empty.mp4", &[]).await.0, 200);
    let (status, headers, body) = w.range("/v/empty.mp4", "bytes=-10").await;
    assert_eq!(status, 200, "{headers:?}");
    assert!(body.is_empty());
    let (status, headers, _) = w.range("/v/empty.mp4", "bytes=-0").await;
    assert_eq!(status, 416);
    assert_eq!(header(&headers, "content-range"), Some("bytes */0"));
    let (status, headers, _) = w.range("/v/empty.mp4", "bytes=0-").await;
    assert_eq!(status, 416);
    assert_eq!(header(&headers, "content-range"), Some("bytes */0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_ranges_are_answered_with_exactly_their_bytes() {
    let object = bytes(3 * 1024 * 1024 + 11, 8);
    let cases: &[(&str, Option<&[Spec]>)] = &[
        (
            "bytes=2000000-2100000",
            Some(&[Spec::Closed(2_000_000, 2_100_000)]),
        ),
        ("bytes=3000000-", Some(&[Spec::Open(3_000_000)])),
        ("bytes=-70000", Some(&[Spec::Suffix(70_000)])),
        (
            "bytes=10-20,1000000-1000100,-5",
            Some(&[
                Spec::Closed(10, 20),
                Spec::Closed(1_000_000, 1_000_100),
                Spec::Suffix(5),
            ]),
        ),
        ("bytes=9999999-", Some(&[Spec::Open(9_999_999)])),
        ("bytes=-0", Some(&[Spec::Suffix(0)])),
    ];
    let keys: Vec<String> = (0..cases.len())
        .map(|i| format!("v/cold-{i}.mp4"))
        .collect();
    let refs: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), &object[..])).collect();
    let w = world(&refs).await;
    for (key, (range, specs)) in keys.iter().zip(cases) {
        let answer = w.range(&format!("/{key}"), range).await;
        assert_eq!(header(&answer.1, "x-cache"), Some("MISS"), "{range}");
        check(&object, range, *specs, &answer);
    }
    // The fills completed: every object is now a hit with the whole body.
    for key in &keys {
        let (status, headers, body) = w.request("GET", &format!("/{key}"), &[]).await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "x-cache"), Some("HIT"));
        assert!(body == object);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_during_a_fill_are_served_from_it() {
    let object = bytes(4 * 1024 * 1024, 9);
    let w = world(&[("v/fill.mp4", &object)]).await;
    let held = 1024 * 1024;
    w.tap.set_mode(Mode::HoldAfter(held));
    let url = w.node.url(&format!("/v/fill.mp4?jwt={}", w.token));
    let filler = tokio::spawn(async move {
        let resp = reqwest::get(url).await.expect("filler");
        resp.bytes().await.expect("filler body")
    });
    common::eventually("the fill to be under way", Duration::from_secs(10), || {
        let passed = w.tap.response_bytes();
        async move { (passed >= held).then_some(()) }
    })
    .await;
    // Bytes already on disk are served while the origin holds the rest.
    let mut rng = Rng(42);
    for _ in 0..40 {
        let a = rng.below(held / 2);
        let b = a + rng.below(held / 4);
        let range = format!("bytes={a}-{b}");
        let answer = w.range("/v/fill.mp4", &range).await;
        check(&object, &range, Some(&[Spec::Closed(a, b)]), &answer);
    }
    let range = "bytes=100-200,300000-300100";
    let answer = w.range("/v/fill.mp4", range).await;
    check(
        &object,
        range,
        Some(&[Spec::Closed(100, 200), Spec::Closed(300_000, 300_100)]),
        &answer,
    );
    // A range beyond what arrived waits for it.
    let node = w.node.http;
    let target = format!("/v/fill.mp4?jwt={}", w.token);
    let late = tokio::spawn(async move {
        raw(
            node,
            "GET",
            &target,
            &[("range", "bytes=3000000-3500000,-100")],
        )
        .await
    });
    w.tap.set_mode(Mode::Forward);
    let answer = late.await.unwrap();
    check(
        &object,
        "late",
        Some(&[Spec::Closed(3_000_000, 3_500_000), Spec::Suffix(100)]),
        &answer,
    );
    assert!(filler.await.unwrap()[..] == object[..]);
    assert_eq!(w.tap.requests(), 1, "{:#?}", w.tap.heads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_range_matches_the_etag_or_the_date_exactly() {
    let object = bytes(10_000, 10);
    let w = world(&[("v/ir.mp4", &object)]).await;
    let (_, headers, _) = w.request("GET", "/v/ir.mp4", &[]).await;
    let etag = header(&headers, "etag").expect("etag").to_string();
    let modified = header(&headers, "last-modified")
        .expect("last-modified")
        .to_string();
    let good: &[&str] = &[&etag, &modified];
    for ir in good {
        let (status, h, body) = w
            .request(
                "GET",
                "/v/ir.mp4",
                &[("range", "bytes=10-19"), ("if-range", ir)],
            )
            .await;
        assert_eq!(status, 206, "If-Range {ir}");
        assert_eq!(header(&h, "content-range"), Some("bytes 10-19/10000"));
        assert!(body[..] == object[10..20]);
    }
    let weak = format!("W/{etag}");
    let bad: &[&str] = &[
        "\"other\"",
        &weak,
        "Thu, 01 Jan 1970 00:00:00 GMT",
        "garbage",
    ];
    for ir in bad {
        let (status, _, body) = w
            .request(
                "GET",
                "/v/ir.mp4",
                &[("range", "bytes=10-19"), ("if-range", ir)],
            )
            .await;
        assert_eq!(status, 200, "If-Range {ir}");
        assert!(body == object);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_with_the_full_headers_and_no_body() {
    let object = bytes(123_456, 11);
    let w = world(&[("v/h.mp4", &object)]).await;
    for (expect_cache, extra) in [
        ("MISS", &[][..]),
        ("HIT", &[][..]),
        ("HIT", &[("range", "bytes=0-9")][..]),
    ] {
        let (status, headers, body) = w.request("HEAD", "/v/h.mp4", extra).await;
        assert_eq!(status, 200, "{extra:?}");
        assert_eq!(header(&headers, "content-length"), Some("123456"));
        assert_eq!(header(&headers, "accept-ranges"), Some("bytes"));
        assert_eq!(header(&headers, "x-cache"), Some(expect_cache));
        assert!(header(&headers, "content-range").is_none());
        assert!(body.is_empty());
    }
}
